"""The structure-retrieval evaluation's parts: framework verdicts (cached), the four precisions, textbook cells."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crystalsearch.evaluate.structure_retrieval import VerdictCache, _Meta, _precisions
from crystalsearch.evaluate.textbook import textbook_structures
from crystalsearch.structure.prototype import symmetry_label


def test_framework_verdicts_ignore_species_and_are_cached(tmp_path: Path) -> None:
    cells = textbook_structures()
    by_id = {"nacl": cells["rocksalt NaCl"], "kcl": cells["rocksalt NaCl"].copy(), "zb": cells["zincblende GaAs"]}
    by_id["kcl"].replace_species({"Na": "K"})
    by_id["kcl"].scale_lattice(by_id["kcl"].volume * 1.3)
    cache = VerdictCache(tmp_path / "v.jsonl")
    assert cache.same_type("nacl", "kcl", by_id.__getitem__) and not cache.same_type("zb", "nacl", by_id.__getitem__)
    assert cache.computed == 2
    with open(tmp_path / "v.jsonl", "a") as fh:
        fh.write('["half", "writ')  # a torn last line is skipped
    again = VerdictCache(tmp_path / "v.jsonl")
    assert again.same_type("kcl", "nacl", lambda _: pytest.fail("not recomputed")) and again.computed == 0


def test_precisions_by_hand() -> None:
    elements = [frozenset("AB"), frozenset("AC"), frozenset("DE"), frozenset("AB")]
    meta = _Meta(ids=["q", "a", "b", "c"], elements=elements, formula=["AB", "AC", "DE", "AB"],
                 spacegroup=np.zeros(4), nsites=np.ones(4))  # fmt: skip
    same = {(0, 1): True, (0, 2): True, (0, 3): False}
    got = _precisions(0, [1, 2, 3], meta, lambda a, b: same[(a, b)])
    assert got == pytest.approx({"structure_type": 2 / 3, "shares_element": 2 / 3, "analogue": 1 / 3,
                                 "same_element_set": 1 / 3})  # fmt: skip


def test_textbook_cells_are_the_named_structure_types() -> None:
    cells = textbook_structures()
    label = {
        n: symmetry_label(s.lattice.matrix, s.frac_coords, np.array(s.atomic_numbers)).prototype
        for n, s in cells.items()
    }
    assert label["diamond C"] == "A_cF8_227_-43m" and len(cells["diamond C"]) == 8
    assert label["rocksalt NaCl"] == "AB_cF8_225_m-3m_m-3m" and label["zincblende GaAs"] == "AB_cF8_216_-43m_-43m"
    assert cells["spinel MgAl2O4"].composition.reduced_formula == "MgAl2O4" and len(cells["spinel MgAl2O4"]) == 56
    assert len(set(label.values())) == len(cells)  # fourteen different structure types
