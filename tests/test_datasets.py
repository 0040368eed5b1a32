"""crystalsearch.data.datasets on the shipped data: counts, joins, lazy structures and splits."""

from __future__ import annotations

import csv
import gzip
import json
import math
import subprocess
import sys
import warnings
from collections import defaultdict
from importlib import resources

import numpy as np
import pytest

from crystalsearch.data import datasets

DATA = resources.files("crystalsearch").joinpath("data")


@pytest.fixture(scope="module")
def mp() -> datasets.Dataset:
    return datasets.load("mp_structures")


@pytest.fixture(scope="module")
def lowest_energy() -> dict[str, tuple[float, str]]:
    """Reduced formula -> (energy, id) of the lowest-energy polymorph, straight from the raw file."""
    from pymatgen.core import Composition

    best: dict[str, tuple[float, str]] = {}
    with gzip.open(str(DATA.joinpath("mp_structures.jsonl.gz")), "rt") as fh:
        for line in fh:
            row = json.loads(line)
            with warnings.catch_warnings():  # noble gases have no Pauling electronegativity
                warnings.simplefilter("ignore", UserWarning)
                key = Composition(row["formula"]).reduced_formula
            cand = (row["formation_energy_per_atom"], row["material_id"])
            best[key] = min(best.get(key, cand), cand)
    return best


def test_names_and_units() -> None:
    assert datasets.DATASETS == (
        "mp_structures",
        "mp_elasticity",
        "thermal_conductivity",
        "melting_temperature",
        "mp2025",
    )
    with pytest.raises(ValueError, match="mp_structures, mp_elasticity, thermal_conductivity"):
        datasets.load("mp_structure")
    assert datasets.PROPERTY_UNITS["bulk_modulus_vrh"] == "GPa"
    assert datasets.load("mp_elasticity").units == {"bulk_modulus_vrh": "GPa", "shear_modulus_vrh": "GPa"}


def test_import_is_light() -> None:
    code = "import sys, crystalsearch.data.datasets; assert 'pymatgen.core' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_source_datasets(mp: datasets.Dataset) -> None:
    el = datasets.load("mp_elasticity")
    assert (len(mp), len(el)) == (36_738, 6_111)
    assert datasets.load("mp_structures") is mp  # cached per process
    for ds in (mp, el):
        rep = ds.join_report
        assert rep.n_own_structures == rep.n_source_rows == rep.n_records == len(ds)
        assert not rep.heuristic and "own structures" in rep.description
        assert {r.join for r in ds} == {"source"}
    assert mp.properties == ("formation_energy_per_atom", "band_gap", "efermi")
    assert el.properties == ("bulk_modulus_vrh", "shear_modulus_vrh")
    assert all(0 < k <= 500 for k in el.targets("bulk_modulus_vrh"))


def test_known_record(mp: datasets.Dataset) -> None:
    rec = mp[mp.material_ids.index("mp-1000")]
    assert (rec.formula, rec.species, rec.num_sites) == ("BaTe", ("Ba", "Te"), 2)
    assert rec.properties["formation_energy_per_atom"] == pytest.approx(-1.7923372100000003, abs=0)
    assert rec.properties["band_gap"] == 1.593
    np.testing.assert_array_equal(rec.lattice[2], [0.0, 0.0, 5.013216])
    np.testing.assert_array_equal(rec.frac_coords, [[0, 0, 0], [0.5, 0.5, 0.5]])
    np.testing.assert_array_equal(rec.atomic_numbers, [56, 52])
    assert rec.atomic_numbers.dtype == np.int64
    assert not rec.lattice.flags.writeable and not rec.frac_coords.flags.writeable
    with pytest.raises(TypeError):
        rec.properties["band_gap"] = 0.0  # type: ignore[index]
    missing = mp[mp.material_ids.index("mp-10810")]  # efermi is null in the source
    assert math.isnan(missing.properties["efermi"])
    energies = mp.targets("formation_energy_per_atom")
    assert energies.dtype == np.float64 and energies.shape == (len(mp),)
    with pytest.raises(ValueError, match="no property"):
        mp.targets("bulk_modulus_vrh")


def test_lazy_structure(mp: datasets.Dataset) -> None:
    rec = mp[mp.material_ids.index("mp-10000")]  # Hf2S, 6 sites
    s = rec.structure
    assert s is rec.structure  # cached
    np.testing.assert_allclose(s.lattice.matrix, rec.lattice)
    np.testing.assert_allclose(s.frac_coords, rec.frac_coords)
    assert [site.specie.symbol for site in s] == list(rec.species)
    assert s.composition.reduced_formula == rec.reduced_formula == "Hf2S"


def test_thermal_conductivity_join(mp: datasets.Dataset, lowest_energy: dict[str, tuple[float, str]]) -> None:
    ds = datasets.load("thermal_conductivity")
    rep = ds.join_report
    assert (rep.n_source_rows, rep.n_joined_by_id, rep.n_joined_by_formula) == (4_887, 0, 3_676)
    assert (rep.n_unmatched, rep.n_duplicates, rep.heuristic) == (1_211, 0, True)
    assert rep.n_joined_by_id + rep.n_joined_by_formula + rep.n_unmatched == rep.n_source_rows
    assert len(ds) == rep.n_records == 3_676 and {r.join for r in ds} == {"formula"}
    assert len(set(ds.material_ids)) == len(ds)
    assert ds.units == {"thermal_conductivity": "W/m/K", "formation_energy_per_atom": "eV/atom"}
    # AFLOW writes "Ho2In1Ni2"-style formulas: values come through unchanged under the MP structure
    with DATA.joinpath("aflow_thermal_conductivity_300K.csv").open() as fh:
        source = {
            datasets.reduced_formula(r["formula"]): float(r["thermal_conductivity_300K"]) for r in csv.DictReader(fh)
        }
    kappa = dict(zip((r.reduced_formula for r in ds), ds.targets("thermal_conductivity"), strict=True))
    assert kappa["LaSe"] == 4.97254
    assert all(source[f] == v for f, v in kappa.items())
    # the lowest-energy polymorph is chosen, recomputed independently from the raw file
    for rec in ds:
        assert (rec.properties["formation_energy_per_atom"], rec.material_id) == lowest_energy[rec.reduced_formula]
    polymorphs = defaultdict(list)
    for rec in mp:
        polymorphs[rec.reduced_formula].append(rec)
    multi = [r for r in ds if len(polymorphs[r.reduced_formula]) > 1]
    assert len(multi) > 100
    tio2 = next(r for r in ds if r.reduced_formula == "TiO2")
    assert len(polymorphs["TiO2"]) > 5 and tio2.material_id == "mp-554278"


def test_melting_temperature_join(lowest_energy: dict[str, tuple[float, str]]) -> None:
    ds = datasets.load("melting_temperature")
    rep = ds.join_report
    assert (rep.n_source_rows, rep.n_joined_by_id, rep.n_joined_by_formula, rep.n_unmatched) == (
        476,
        417,
        18,
        41,
    )
    assert rep.n_joined_by_id + rep.n_joined_by_formula + rep.n_unmatched == rep.n_source_rows
    assert rep.heuristic and "68 to mp_elasticity" in rep.description and rep.n_duplicates == 0
    assert len(ds) == 435 and sum(r.join == "material_id" for r in ds) == 417
    with DATA.joinpath("melting_temperature.csv").open() as fh:
        rows = {r["material_id"]: r for r in csv.DictReader(fh)}
    elastic_ids = set(datasets.load("mp_elasticity").material_ids)
    mp_ids = set(datasets.load("mp_structures").material_ids)
    assert sum(r.material_id in elastic_ids - mp_ids for r in ds if r.join == "material_id") == 68
    for rec in ds:
        if rec.join == "material_id":
            assert rec.properties["melting_temperature"] == float(rows[rec.material_id]["melting_temperature_K"])
        else:
            assert lowest_energy[rec.reduced_formula][1] == rec.material_id
    assert ds.units == {"melting_temperature": "K"}


def test_split_random(mp: datasets.Dataset) -> None:
    a, b, c = mp.split(seed=0), mp.split(seed=0), mp.split(seed=1)
    n = len(mp)
    for part in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(a, part), getattr(b, part))
    assert not np.array_equal(a.test, c.test)
    assert (len(a.train), len(a.val), len(a.test)) == (
        round(0.8 * n),
        round(0.1 * n),
        n - round(0.8 * n) - round(0.1 * n),
    )
    everything = np.concatenate([a.train, a.val, a.test])
    assert everything.dtype == np.int64 and np.array_equal(np.sort(everything), np.arange(n))
    small = datasets.load("melting_temperature").split(seed=3, fractions=(0.5, 0.25, 0.25))
    assert (len(small.train), len(small.val), len(small.test)) == (218, 109, 108)
    with pytest.raises(ValueError, match="fractions"):
        mp.split(fractions=(0.8, 0.1))


def test_split_labelled_drops_missing_and_implausible_labels() -> None:
    """mp-2363's shear modulus (1.25e11 GPa in the source) is read as NaN and left out of every part."""
    ds = datasets.load("mp_elasticity")
    shear = ds.targets("shear_modulus_vrh")
    bad = int(ds.material_ids.index("mp-2363"))
    assert math.isnan(shear[bad]) and int(np.isnan(shear).sum()) == 1
    sp = ds.split(seed=0)
    lab = sp.labelled(shear)
    for full, kept in ((sp.train, lab.train), (sp.val, lab.val), (sp.test, lab.test)):
        np.testing.assert_array_equal(kept, full[full != bad])
    head = sp.labelled(shear, n=1000)
    assert max(int(head.train.max()), int(head.val.max()), int(head.test.max())) < 1000
    assert len(head.train) + len(head.val) + len(head.test) == int(np.isfinite(shear[:1000]).sum())


def test_split_group_by_formula(mp: datasets.Dataset) -> None:
    sp = mp.split(seed=0, group_by_formula=True)
    assert np.array_equal(sp.train, mp.split(seed=0, group_by_formula=True).train)
    n = len(mp)
    assert np.array_equal(np.sort(np.concatenate([sp.train, sp.val, sp.test])), np.arange(n))
    formulas = np.array([r.reduced_formula for r in mp])
    parts = [set(formulas[idx]) for idx in (sp.train, sp.val, sp.test)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    part_of = np.empty(n, dtype=np.int64)
    for k, idx in enumerate((sp.train, sp.val, sp.test)):
        part_of[idx] = k
    assert (formulas == "SiO2").sum() == 166 and len(set(part_of[formulas == "SiO2"])) == 1
    assert abs(len(sp.train) - 0.8 * n) < 200 and abs(len(sp.val) - 0.1 * n) < 200
