"""StructureMatcher on arrays (crystalsearch.structure.cellmatch) against pymatgen's StructureMatcher itself, and
the reduced cells (crystalsearch.structure.reduction) against pymatgen's primitive-cell search, on real
structures: disguised copies (matches), other materials of the same formula (polymorphs: mostly not) and
element substitutions (never)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from crystalsearch.data.records import Record
from crystalsearch.structure.cellmatch import Cell, cell_from_json, cell_rms
from crystalsearch.structure.matching import MatchCriterion, fit_rms, pymatgen_fit_rms, reduce_structure
from crystalsearch.structure.reduction import _surely_primitive, niggli_cell, reduce_cell

SUBSTITUTES = {"O": "S", "S": "Se", "Na": "K", "K": "Rb", "Mg": "Ca", "Ca": "Sr", "Cl": "Br", "F": "Cl", "Si": "Ge"}


def _disguised(s: Structure, seed: int) -> Structure:
    """Another setting of the lattice (a doubled cell for even seeds), rotated, origin shifted, every site
    moved by 0.02 Å, every third strained by 1%."""
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    out = s.copy()
    out.make_supercell([[1, 1, 0], [0, 1, 0], [0, 0, 1 + (seed % 2 == 0)]])
    rot = Rotation.random(random_state=seed).as_matrix()
    out = Structure(Lattice(out.lattice.matrix @ rot.T), out.species, (out.frac_coords + rng.random(3)) % 1.0)
    step = rng.normal(size=(len(out), 3))
    cart = out.cart_coords + 0.02 * step / np.linalg.norm(step, axis=1, keepdims=True)
    out = Structure(out.lattice, out.species, cart, coords_are_cartesian=True)
    if seed % 3 == 0:
        out.apply_strain(0.01)
    return out


def _pairs(records: Sequence[Record]) -> list[tuple[str, Structure, Structure]]:
    by_formula: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        by_formula[r.reduced_formula].append(r)
    small = [r for r in records if 2 <= r.num_sites <= 16]
    pairs = []
    for i, r in enumerate(small[::613][:40]):
        pairs.append(("copy", _disguised(r.structure, i), r.structure))
        others = [o for o in by_formula[r.reduced_formula] if o.material_id != r.material_id and o.num_sites <= 24]
        if others:
            pairs.append(("same formula", r.structure, others[0].structure))
        swap = {el: SUBSTITUTES[el] for el in r.structure.symbol_set if el in SUBSTITUTES}
        if swap and not set(swap.values()) & set(r.structure.symbol_set):
            other = r.structure.copy()
            other.replace_species(swap)  # type: ignore[arg-type]
            pairs.append(("substituted", other, r.structure))
    return pairs


def test_same_verdicts_and_rms_as_pymatgen(mp_records: Sequence[Record]) -> None:
    criterion = MatchCriterion()
    pairs = _pairs(mp_records)
    kinds: dict[tuple[str, bool], int] = defaultdict(int)
    for kind, a, b in pairs:
        ra, rb = reduce_structure(a, symprec=0.1), reduce_structure(b, symprec=0.1)
        want = pymatgen_fit_rms(ra, rb, criterion)
        got = fit_rms(ra, rb, criterion, reduced=True)
        assert (got is None) == (want is None), (kind, a.composition.reduced_formula, got, want)
        if got is not None and want is not None:
            assert got == pytest.approx(want, abs=1e-7)
        kinds[(kind, got is not None)] += 1
    assert kinds[("copy", True)] >= 25 and kinds[("copy", False)] == 0  # disguised copies match
    assert kinds[("substituted", True)] == 0 and kinds[("substituted", False)] >= 5
    assert kinds[("same formula", False)] >= 5  # polymorphs are compared and told apart


def test_tolerances_are_the_criterions(mp_records: Sequence[Record]) -> None:
    """A copy moved by 0.02 Å matches at the default ``stol`` and not at a tiny one; a 20% strain is beyond ``ltol``."""
    s = next(r.structure for r in mp_records if r.num_sites == 4)
    a = Cell.of(reduce_structure(_disguised(s, 1), symprec=0.1))
    b = Cell.of(reduce_structure(s, symprec=0.1))
    assert cell_rms(a, b) is not None
    assert cell_rms(a, b, stol=0.001) is None
    strained = s.copy()
    strained.apply_strain([0.3, 0.0, 0.0])
    assert cell_rms(Cell.of(reduce_structure(strained)), b) is None
    other = Cell(b.lattice, b.frac, np.where(b.numbers == b.numbers[0], 1, b.numbers))  # another species
    assert cell_rms(a, other) is None
    assert cell_rms(a, Cell(b.lattice, b.frac[:-1], b.numbers[:-1])) is None  # another site count


def test_reduced_cells_have_pymatgens_primitive_size(mp_records: Sequence[Record]) -> None:
    """The reduced cell has as many sites as pymatgen's primitive cell, and the first step of pymatgen's search
    never claims a cell primitive that pymatgen reduces (doubled cells included)."""
    claimed = 0
    for i, r in enumerate(mp_records[::1021][:36]):
        s = r.structure if i % 2 else r.structure * (1, 1, 2)
        pymatgen_cell = s.get_reduced_structure().get_primitive_structure()
        assert len(reduce_cell(Cell.of(s))) == len(pymatgen_cell)
        niggli = niggli_cell(Cell.of(s))
        if _surely_primitive(niggli):
            claimed += 1
            assert len(pymatgen_cell) == len(s)
        np.testing.assert_allclose(niggli.lattice, s.get_reduced_structure().lattice.matrix, atol=1e-9)
    assert claimed >= 10  # most MP cells are primitive: the search is skipped for them


def test_cell_from_json_reads_the_stored_form(mp_records: Sequence[Record]) -> None:
    from crystalsearch.data.entries import structure_to_json

    r = mp_records[5]
    s = r.structure
    cell = cell_from_json(structure_to_json(s.lattice.matrix, [site.specie.symbol for site in s], s.frac_coords))
    np.testing.assert_allclose(cell.lattice, s.lattice.matrix)
    np.testing.assert_allclose(cell.frac, s.frac_coords)
    assert cell.numbers.tolist() == [site.specie.Z for site in s]
