"""Disordered matching (elements of similar radius and electronegativity interchangeable) on real 2025 MP
structures: substituted copies of P4mm BaTiO3 (mp-5986) and of rocksalt RbCl."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from crystalsearch.catalog.build import build_index
from crystalsearch.cli import app
from crystalsearch.data import datasets
from crystalsearch.data.entries import entry_from_record
from crystalsearch.identity.catalog import Catalog
from crystalsearch.identity.known import KnownChecker, MatchCriterion
from crystalsearch.model.embed import Encoder
from crystalsearch.structure.interchangeable import (
    class_formula,
    element_classes,
    formulas_of,
    interchangeable,
    representative,
)

FORMULAS = ("BaTiO3", "NaCl", "KCl", "TiO2")
DISORDERED = MatchCriterion(disordered=True)


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["CRYSTALSEARCH_CACHE"] = str(tmp_path_factory.mktemp("disordered-cache"))


@pytest.fixture(scope="module")
def records() -> dict[str, Any]:
    return {r.material_id: r for r in datasets.load("mp2025").records}


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory, records: dict[str, Any]) -> Path:
    entries = [entry_from_record(r, source="mp2025") for r in records.values() if r.reduced_formula in FORMULAS]
    out = tmp_path_factory.mktemp("disordered-idx") / "idx"
    build_index(entries, encoder=Encoder.random(seed=0), out=out, progress=False, chunk_size=64)
    return out


def substituted(structure: Any, mapping: dict[str, str], seed: int) -> Any:
    """The structure with elements replaced, rotated, origin shifted and every site moved by 0.02 Å."""
    from pymatgen.core import Lattice, Structure
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    s = structure.copy()
    s.replace_species(mapping)
    rot = Rotation.random(random_state=seed).as_matrix()
    s = Structure(Lattice(s.lattice.matrix @ rot.T), s.species, (s.frac_coords + rng.random(3)) % 1.0)
    d = rng.normal(size=(len(s), 3))
    d *= 0.02 / np.linalg.norm(d, axis=1)[:, None]
    for i, v in enumerate(d):
        s.translate_sites([i], v, frac_coords=False, to_unit_cell=True)
    return s


def test_classes_follow_the_rule() -> None:
    classes = element_classes()
    members = [m for c in classes for m in c]
    assert len(members) == len(set(members)) == 118  # a partition of the periodic table
    for c in classes:  # every two members of a class are interchangeable under the rule
        assert all(interchangeable(a, b) for a, b in itertools.combinations(c, 2)), c
    assert interchangeable("Ba", "Ca") and interchangeable("Ba", "Sr") and representative("Ba") == representative("Ca")
    assert not interchangeable("Ba", "Pb") and representative("Ba") != representative("Pb")  # Pauling 0.89 vs 2.33
    assert representative("Rb") == representative("Cs") != representative("Na")
    assert class_formula("CaTiO3") == class_formula("BaTiO3") != class_formula("PbTiO3")
    assert {"BaTiO3", "CaTiO3", "SrTiO3"} <= set(formulas_of(class_formula("CaTiO3")))
    assert MatchCriterion().describe() == {k: v for k, v in DISORDERED.describe().items() if k != "disordered"}


def test_substituted_copy_is_known_only_when_disordered(index_dir: Path, records: dict[str, Any]) -> None:
    p4mm = records["mp-5986"].structure
    with Catalog.open(index_dir, encoder=Encoder.random(seed=0)) as catalog:
        plain, loose = KnownChecker(catalog), KnownChecker(catalog, DISORDERED)
        for n, element in enumerate(("Ca", "Sr")):
            copy = substituted(p4mm, {"Ba": element}, n)
            assert not plain.check(copy).known  # no catalog material of that formula
            v = loose.check(copy)
            assert [m.material_id for m in v.matches] == ["mp-5986"], v  # polymorphs still kept apart
        assert [m.material_id for m in loose.check(records["mp-2998"].structure).matches] == ["mp-2998"]
        lead = substituted(p4mm, {"Ba": "Pb"}, 7)
        assert not plain.check(lead).known and not loose.check(lead).known


def test_own_formula_is_the_best_match_when_disordered(index_dir: Path, records: dict[str, Any]) -> None:
    """Rocksalt NaCl and KCl are one material under the disordered rule, yet each is known as its own entry
    first (the entry of its own formula before other members of the class, whatever their RMS)."""
    with Catalog.open(index_dir, encoder=Encoder.random(seed=0)) as catalog:
        loose = KnownChecker(catalog, DISORDERED)
        for own, other in (("mp-22862", "mp-23193"), ("mp-23193", "mp-22862")):
            ids = [m.material_id for m in loose.check(records[own].structure).matches]
            assert ids[0] == own and other in ids, ids


def test_novelty_cli_disordered(tmp_path: Path, index_dir: Path, records: dict[str, Any]) -> None:
    from pymatgen.io.cif import CifWriter

    folder = tmp_path / "cands"
    folder.mkdir()
    p4mm, rbcl = records["mp-5986"].structure, records["mp-23295"].structure
    copies = {"a_ca.cif": substituted(p4mm, {"Ba": "Ca"}, 1), "b_sr.cif": substituted(p4mm, {"Ba": "Sr"}, 2),
              "c_pb.cif": substituted(p4mm, {"Ba": "Pb"}, 3), "d_rbcl.cif": substituted(rbcl, {}, 4),
              "e_cscl.cif": substituted(rbcl, {"Rb": "Cs"}, 5)}  # fmt: skip
    for name, s in copies.items():
        CifWriter(s).write_file(folder / name)

    def run(*extra: str) -> dict[str, Any]:
        result = CliRunner().invoke(app, ["novelty", str(folder), "--index", str(index_dir), "--json", "-j", "1",
                                          *extra])  # fmt: skip
        assert result.exit_code == 0, result.output
        out = json.loads(result.stdout)
        return {Path(r["query"]).name: r for r in out["results"]}

    plain = run()
    assert all(r["status"] == "novel" and r["unique"] for r in plain.values()), plain
    by = run("--disordered")
    assert by["a_ca.cif"]["material_id"] == "mp-5986" and by["a_ca.cif"]["formula"] == "CaTiO3"
    assert by["b_sr.cif"]["duplicate_of"] == str(folder / "a_ca.cif")  # known as the same entry
    assert by["c_pb.cif"]["status"] == "novel" and by["c_pb.cif"]["unique"]
    assert by["d_rbcl.cif"]["status"] == "novel" and by["e_cscl.cif"]["duplicate_of"] == str(folder / "d_rbcl.cif")
