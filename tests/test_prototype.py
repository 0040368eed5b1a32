"""Prototype labels: isostructural crystals share one, polytypes and polymorphs do not (real and textbook cells)."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from crystalsearch.structure.prototype import labels_many, shipped_labels, symmetry_label


def _label(s: Structure) -> str:
    return symmetry_label(s.lattice.matrix, s.frac_coords, np.array(s.atomic_numbers)).prototype


def _built(sg: str, lattice: Lattice, species: list[str], coords: list[list[float]]) -> Structure:
    return Structure.from_spacegroup(sg, lattice, species, coords)


ROCKSALT = [("Fm-3m", Lattice.cubic(a), [x, y], [[0, 0, 0], [0.5, 0.5, 0.5]]) for a, x, y in
            [(5.64, "Na", "Cl"), (6.29, "K", "Cl"), (4.03, "Li", "F"), (4.21, "Mg", "O")]]  # fmt: skip
PEROVSKITE = [("Pm-3m", Lattice.cubic(a), [x, "Ti", "O"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0]])
              for a, x in [(3.905, "Sr"), (4.0, "Ba")]]  # fmt: skip
ZINCBLENDE = ("F-43m", Lattice.cubic(5.65), ["Ga", "As"], [[0, 0, 0], [0.25, 0.25, 0.25]])
WURTZITE = ("P6_3mc", Lattice.hexagonal(4.0, 6.53), ["Ga", "As"], [[1 / 3, 2 / 3, 0], [1 / 3, 2 / 3, 0.375]])
DIAMOND = ("Fd-3m", Lattice.cubic(5.43), ["Si"], [[0, 0, 0]])
RUTILE = ("P4_2/mnm", Lattice.tetragonal(4.59, 2.96), ["Ti", "O"], [[0, 0, 0], [0.305, 0.305, 0]])
ANATASE = ("I4_1/amd", Lattice.tetragonal(3.78, 9.51), ["Ti", "O"], [[0, 0.75, 0.125], [0, 0.75, 0.3333]])


@pytest.mark.parametrize("family", [ROCKSALT, PEROVSKITE])
def test_isostructural_crystals_share_a_label(family: list[tuple]) -> None:  # type: ignore[type-arg]
    labels = {_label(_built(*spec)) for spec in family}
    assert len(labels) == 1, labels


def test_label_independent_of_cell_choice_and_orientation() -> None:
    s = _built(*PEROVSKITE[0])
    turn = np.array([[0, 1, 0], [-1, 0, 0], [0, 0, 1]])
    rotated = Structure(Lattice(s.lattice.matrix @ turn), s.species, s.frac_coords)
    shifted = s.copy()
    shifted.translate_sites(range(len(s)), [0.5, 0.5, 0.5])  # Ti at the origin: spglib's letters change, not ours
    variants = [s, s.get_primitive_structure(), s * (2, 1, 1), s * (2, 2, 3), rotated, shifted]
    assert {_label(v) for v in variants} == {"ABC3_cP5_221_m-3m_m-3m_4/mm.m"}


def test_polytypes_and_polymorphs_get_different_labels() -> None:
    zb, wz = _label(_built(*ZINCBLENDE)), _label(_built(*WURTZITE))
    assert zb == "AB_cF8_216_-43m_-43m" and wz.startswith("AB_hP4_186_") and zb != wz
    assert _label(_built(*RUTILE)) != _label(_built(*ANATASE))
    assert _label(_built(*DIAMOND)) != _label(_built(*ZINCBLENDE))  # one species vs two
    assert _label(_built(*ROCKSALT[0])) != zb


def test_shipped_table_matches_spglib_on_real_structures(mp_sample: list) -> None:  # type: ignore[type-arg]
    table = shipped_labels()
    if not table:
        pytest.skip("no shipped prototype table")
    cells = [(r.lattice, r.frac_coords, r.atomic_numbers) for r in mp_sample[:40]]
    assert labels_many(cells) == [symmetry_label(*c) for c in cells]
