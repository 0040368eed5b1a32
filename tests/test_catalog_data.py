"""The shipped 2025 Materials Project release: exact compact storage and the ``mp2025`` label joins."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest

from crystalsearch.data import catalog_data, datasets
from crystalsearch.data.structpack import pack, read_jsonl, unpack

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "mp2025_structures.jsonl.gz"


@pytest.fixture(scope="module")
def mp2025() -> datasets.Dataset:
    return datasets.load("mp2025")


def _rows(records: list[datasets.Record]) -> list[dict[str, object]]:
    return [
        {"material_id": r.material_id, "formula": r.formula, "lattice": r.lattice.tolist(),
         "species": list(r.species), "frac_coords": r.frac_coords.tolist()}
        for r in records
    ]  # fmt: skip


def test_pack_round_trip_is_exact(tmp_path: Path, mp_sample: list[datasets.Record]) -> None:
    rows = _rows(mp_sample[:50])
    for row in rows:  # values with at most 6 (lattice) and 7 (coordinates) decimals, as in the release
        row["lattice"] = np.round(np.array(row["lattice"]), 6).tolist()
        row["frac_coords"] = np.round(np.array(row["frac_coords"]), 7).tolist()
    sizes = pack(rows, tmp_path / "x.npz")
    assert sizes["structures"] == 50 and sizes["sites"] == sum(len(r["species"]) for r in rows)  # type: ignore[arg-type]
    table = unpack(tmp_path / "x.npz")
    assert table.material_id == tuple(r["material_id"] for r in rows)
    for i, row in enumerate(rows):
        sl = table.sites(i)
        assert np.array_equal(table.lattice[i], np.array(row["lattice"]))  # bit-exact, not approximately
        assert np.array_equal(table.frac_coords[sl], np.array(row["frac_coords"]))
        assert len(table.numbers[sl]) == len(row["species"])  # type: ignore[arg-type]


def test_pack_refuses_numbers_it_cannot_store_exactly(tmp_path: Path) -> None:
    row = {"material_id": "x-1", "formula": "Na", "lattice": [[3.0, 0, 0], [0, 3.0, 0], [0, 0, 3.12345678]],
           "species": ["Na"], "frac_coords": [[0.0, 0.0, 0.0]]}  # fmt: skip
    with pytest.raises(ValueError, match="lattice.*more decimals"):
        pack([row], tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()


def test_mp2025_counts_and_textbook_materials(mp2025: datasets.Dataset) -> None:
    assert len(mp2025) == 170_451 and len(set(mp2025.material_ids)) == 170_451
    by_id = {r.material_id: r for r in mp2025.records}
    diamond, srtio3 = by_id["mp-66"], by_id["mp-5229"]  # absent from the 2018 set
    assert diamond.reduced_formula == "C" and set(diamond.species) == {"C"}
    assert srtio3.reduced_formula == "SrTiO3" and srtio3.num_sites == 5
    assert "mp-66" not in {r.material_id for r in datasets.load("mp_structures").records}
    report = mp2025.join_report
    assert report.n_records == 170_451 and report.heuristic and "2018" in report.description


def test_mp2025_labels_keep_their_provenance(mp2025: datasets.Dataset) -> None:
    by_id = {r.material_id: r for r in mp2025.records}
    old = {r.material_id: r for r in datasets.load("mp_structures").records}
    counts: dict[tuple[str, str], int] = {}
    for r in mp2025.records:
        for column, source in r.provenance.items():
            assert math.isfinite(r.properties[column]), (r.material_id, column)
            counts[(column, source)] = counts.get((column, source), 0) + 1
        for column, value in r.properties.items():
            assert (column in r.provenance) == math.isfinite(value)
    # 2018 labels: the MEGNet set (one release, one correction scheme) first, mp_structures for the rest;
    # the Fermi level only mp_structures has
    release = {row["material_id"]: row for row in catalog_data._megnet_rows()}
    shared = next(i for i in ("mp-22862", "mp-149") if i in old and i in release)
    assert by_id[shared].properties["band_gap"] == float(release[shared]["band_gap"])
    assert by_id[shared].provenance["band_gap"] == "megnet_2018"
    assert by_id[shared].properties["efermi"] == old[shared].properties["efermi"]
    assert by_id[shared].provenance["efermi"] == "mp_structures"
    only_old = next(r for r in mp2025.records if r.material_id in old and r.material_id not in release
                    and math.isfinite(r.properties["formation_energy_per_atom"]))  # fmt: skip
    assert only_old.provenance["formation_energy_per_atom"] == "mp_structures"
    assert only_old.properties["formation_energy_per_atom"] == old[only_old.material_id].properties[
        "formation_energy_per_atom"]  # fmt: skip
    # where the sources disagree, the release's value is the one joined (LiMnF3: -3.01 vs -1.42 eV/atom)
    moved = by_id["mp-778697"].properties["formation_energy_per_atom"]
    assert moved == float(release["mp-778697"]["formation_energy_per_atom"])
    assert abs(moved - old["mp-778697"].properties["formation_energy_per_atom"]) > 0.5
    assert counts[("formation_energy_per_atom", "megnet_2018")] == 51_145
    assert counts[("formation_energy_per_atom", "mp_structures")] == 261
    assert counts[("bulk_modulus_vrh", "mp_elasticity")] == 6_096
    assert counts[("melting_temperature", "material_id")] == 417
    assert set(s for (c, s) in counts if c == "thermal_conductivity") == {"formula"}
    elastic = {r.material_id: r for r in datasets.load("mp_elasticity").records}
    some = next(i for i in elastic if i in by_id)
    assert by_id[some].properties["bulk_modulus_vrh"] == elastic[some].properties["bulk_modulus_vrh"]
    assert set(mp2025.units) == set(datasets.PROPERTY_UNITS)


@pytest.mark.skipif(not SHARED.is_file(), reason="needs ../shared/data (the source JSON lines)")
def test_mp2025_is_the_source_unchanged(mp2025: datasets.Dataset) -> None:
    """Every 97th structure equals the source JSON exactly (format change only, no cell reduction)."""
    by_id = {r.material_id: r for r in mp2025.records}
    n = 0
    with gzip.open(SHARED, "rt") as fh:
        for i, line in enumerate(fh):
            if i % 97:
                continue
            row = json.loads(line)
            rec = by_id[row["material_id"]]
            assert rec.formula == row["formula"] and list(rec.species) == row["species"]
            assert np.array_equal(rec.lattice, np.array(row["lattice"]))
            assert np.array_equal(rec.frac_coords, np.array(row["frac_coords"]).reshape(-1, 3))
            n += 1
    assert n == len(range(0, 170_451, 97))
    assert next(read_jsonl(SHARED))["material_id"] == mp2025.records[0].material_id


def test_catalog_counts_that_info_shows_are_the_data() -> None:
    """`crystalsearch info` shows CATALOG_COUNTS without loading anything: they must equal the default catalog."""
    from collections import Counter

    from crystalsearch.data.catalog_data import CATALOG_COUNTS, catalog_name
    from crystalsearch.data.entries import entries_from_datasets

    entries = entries_from_datasets("all")
    counts = Counter(k for e in entries for k in e.properties)
    assert {"materials": len(entries), **counts} == CATALOG_COUNTS
    assert "2025.02.12" in catalog_name({"mp2025": 170_451, "mp_elasticity": 6_111})
    assert "2018" in catalog_name({"mp_structures": 36_738})
