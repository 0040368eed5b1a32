"""The cell StructureMatcher compares: a crystal reduced to its primitive cell, on a Niggli-reduced lattice.

:func:`reduce_cell` gives the reduced cell of pymatgen's ``StructureMatcher`` (``primitive_cell=True``):
``get_primitive_structure`` (tolerance 0.25 Å) on the Niggli-reduced cell, with spglib's primitive cell
where noise defeats pymatgen's search, and without the search where its first step shows no smaller cell
exists."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pymatgen.core import Structure

    from crystalsearch.structure.cellmatch import Cell

__all__ = ["PRIMITIVE_TOLERANCE", "niggli_cell", "reduce_cell", "reduce_structure"]


def reduce_structure(structure: Structure, *, symprec: float | None = None) -> Structure:
    """:func:`reduce_cell` of a pymatgen structure, as a structure."""
    from crystalsearch.structure.cellmatch import Cell

    return reduce_cell(Cell.of(structure), symprec=symprec).structure()


def reduce_cell(cell: Cell, *, symprec: float | None = None) -> Cell:
    """The cell StructureMatcher compares (``primitive_cell=True``): primitive, then Niggli-reduced.

    Reduced once per structure here: pymatgen's own cache of reduced structures compares a hit site by site
    (quadratic in the number of sites), which dominated. A cell of one formula unit is primitive already (only
    Niggli-reduced). ``symprec`` (for inputs, which may be noisy): spglib's primitive cell at ``symprec``
    (positions not idealised) is taken when it has one formula unit (no cell is smaller); otherwise pymatgen's
    primitive search (tolerance 0.25 Å) runs on the smaller of spglib's cell and the input: sites moved by a
    few hundredths of an Å defeat pymatgen's search on conventional cells (the hexagonal cell of R-3m SmSI
    stays 18 sites instead of 6), and StructureMatcher, which compares primitive cells only, then never
    matches; on a supercell, searching spglib's cell instead is also many times faster.
    """
    floor = _formula_units_floor(cell.numbers)
    niggli = niggli_cell(cell)
    if len(cell) == floor or _surely_primitive(niggli):  # pymatgen's search would find nothing: no search
        return niggli
    spglib_cell = _spglib_primitive(cell, symprec) if symprec is not None else None
    if spglib_cell is not None and len(spglib_cell) == floor:  # no smaller cell exists: pymatgen's search not needed
        return spglib_cell
    start = spglib_cell if spglib_cell is not None and len(spglib_cell) < len(cell) else niggli
    from crystalsearch.structure.cellmatch import Cell

    return Cell.of(start.structure().get_primitive_structure())


PRIMITIVE_TOLERANCE = 0.25  # Å, pymatgen's get_primitive_structure default (what StructureMatcher uses)


def _surely_primitive(cell: Cell, *, tolerance: float = PRIMITIVE_TOLERANCE) -> bool:
    """Whether pymatgen's ``get_primitive_structure`` (on this Niggli-reduced cell) finds no smaller cell: its
    first step, on arrays. Its candidate translations are the positions of the smallest group of one element
    (the first such group in order of element symbol) relative to its first site, kept when they map every
    site onto a site of its element within twice the tolerance per axis; when only the null translation is
    left (or the element counts share no factor), no smaller cell is possible and it returns the cell as is.
    """
    numbers = np.asarray(cell.numbers)
    elements = sorted(np.unique(numbers).tolist(), key=_symbol)
    groups = [cell.frac[numbers == z] for z in elements]
    if np.gcd.reduce([len(g) for g in groups]) == 1:
        return True
    lengths = np.sqrt(np.sum(cell.lattice**2, axis=1))
    tol2 = 2 * tolerance / lengths
    smallest = min(groups, key=len)
    vectors = smallest - smallest[0]
    for group in sorted(groups, key=len):
        for f in group:  # a vector stays when some (site - f) of the group is within tol2, for every site f
            d = vectors[:, None, :] - (group - f)[None, :, :]
            d = np.abs(d - np.round(d))
            vectors = vectors[np.all(d < tol2, axis=-1).any(axis=1)]
            if len(vectors) <= 1:
                return True
    return False


@functools.lru_cache(maxsize=256)
def _symbol(z: int) -> str:
    from pymatgen.core import Element

    return str(Element.from_Z(int(z)).symbol)


def niggli_cell(cell: Cell) -> Cell:
    """The cell on pymatgen's Niggli-reduced lattice, sites wrapped into it (``get_reduced_structure``); the
    same cell when the lattice is reduced already."""
    from pymatgen.core import Lattice

    from crystalsearch.structure.cellmatch import Cell

    lattice = Lattice(cell.lattice)
    reduced = np.array(lattice.get_niggli_reduced_lattice().matrix)
    if np.allclose(reduced, cell.lattice):
        return cell
    frac = np.mod((cell.frac @ cell.lattice) @ np.linalg.inv(reduced), 1.0)
    return Cell(reduced, frac, cell.numbers)


def _spglib_primitive(cell: Cell, symprec: float) -> Cell | None:
    """spglib's primitive cell at ``symprec`` (positions not idealised: each the mean of the sites it stands
    for), Niggli-reduced; None where spglib fails. From the symmetry dataset the space group came from (one
    symmetry search per crystal, :func:`~crystalsearch.structure.symmetry.spglib_dataset` keeps the last ones)."""
    from crystalsearch.structure.cellmatch import Cell
    from crystalsearch.structure.symmetry import spglib_dataset

    dataset = spglib_dataset(cell.lattice, cell.frac, cell.numbers, symprec=symprec)
    if dataset is None:
        return None
    lattice = np.asarray(dataset.primitive_lattice, dtype=np.float64)
    mapping = np.asarray(dataset.mapping_to_primitive, dtype=np.int64)
    frac = (cell.frac @ cell.lattice) @ np.linalg.inv(lattice)
    first = np.array([np.flatnonzero(mapping == p)[0] for p in range(int(mapping.max()) + 1)])
    offsets = frac - frac[first[mapping]]
    offsets -= np.round(offsets)  # each site next to the first it stands for
    counts = np.bincount(mapping).astype(np.float64)
    mean = np.stack([np.bincount(mapping, weights=offsets[:, k]) for k in range(3)], axis=1) / counts[:, None]
    positions = np.mod(frac[first] + mean, 1.0)
    return niggli_cell(Cell(lattice, positions, np.asarray(cell.numbers)[first]))


def _formula_units_floor(numbers: np.ndarray) -> int:
    """Sites of one formula unit: no primitive cell is smaller."""
    counts = np.unique(numbers, return_counts=True)[1]
    return int(len(numbers) // np.gcd.reduce(counts)) if len(counts) else 0
