"""What "the same material" means: the Materials Project's criterion (reduced formula, space group,
pymatgen's StructureMatcher) and the verdict types built on it.

The Materials Project groups calculations into one material (emmet's materials builder) when they have
the same reduced formula, the **same space group** (spglib, ``symprec`` 0.1 Å) and pymatgen's
**StructureMatcher** matches them with ``ltol`` 0.2, ``stol`` 0.3, ``angle_tol`` 5°, both reduced to primitive
cells, volumes scaled to each other, no supercells or subsets, species compared by element.
:class:`MatchCriterion` holds exactly these settings as defaults. Polymorphs are never merged: different space
groups are different materials even where StructureMatcher alone would match them.

Comparisons run on plain arrays (:mod:`crystalsearch.structure.cellmatch`, pymatgen's algorithm without its
objects). :func:`pymatgen_fit_rms` is the reference, StructureMatcher itself; it is the one place that calls
StructureMatcher's private steps (``_preprocess``, ``_match``): :func:`_best_mapping` guards them by pymatgen
version and falls back to the public ``get_rms_dist``.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from crystalsearch.structure.reduction import reduce_cell, reduce_structure

if TYPE_CHECKING:
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.core import Structure

    from crystalsearch.structure.cellmatch import Cell

__all__ = ["Match", "MatchCriterion", "QueryKey", "Verdict", "fit_cells", "fit_rms", "noise_spacegroups",
           "pymatgen_fit_rms", "query_key", "reduce_cell", "reduce_structure", "same_material"]  # fmt: skip


@dataclass(frozen=True)
class MatchCriterion:
    """When two crystals are the same material (defaults: the Materials Project's, emmet ``SETTINGS``).

    ``symprec``: spglib tolerance (Å) of the space-group comparison; ``ltol``, ``stol``, ``angle_tol``:
    StructureMatcher's tolerances; ``max_pairs``: at most this many same-formula, same-space-group catalog
    entries (the most similar first) are compared with StructureMatcher per query.

    ``noise_symprec``: sites moved by a few hundredths of an Å often lower the space group spglib finds at
    0.1 Å (every site moved by 0.03 Å: 188 of 300 MP structures, benchmark notes); when nothing matches in
    the space group found at ``symprec``, the query's space groups halfway to and at ``noise_symprec`` are
    tried in turn (187 of those 188 recover their own at 0.15 Å, all at 0.2 Å; the catalog side keeps
    ``symprec``). A distorted polymorph is merged with its parent only if it is absent from the catalog and
    its distortion is below ``noise_symprec`` (BaTiO3's P4mm, R3m and Amm2 stay apart up to 0.2 Å).
    ``None``: the Materials Project's criterion to the letter.

    ``disordered``: MatterGen's disordered matching: elements of one class of
    :mod:`crystalsearch.structure.interchangeable` (similar atomic radius and electronegativity) count as
    the same element; every step (formula, space group, StructureMatcher) sees each element replaced by its
    class representative (:meth:`view`).
    """

    symprec: float = 0.1
    ltol: float = 0.2
    stol: float = 0.3
    angle_tol: float = 5.0
    max_pairs: int = 16
    noise_symprec: float | None = 0.2
    disordered: bool = False

    def noise_tolerances(self) -> tuple[float, ...]:
        """The looser spglib tolerances tried, in order, when nothing matches at ``symprec``."""
        if self.noise_symprec is None or self.noise_symprec <= self.symprec:
            return ()
        return (round((self.symprec + self.noise_symprec) / 2, 6), self.noise_symprec)

    def view(self, structure: Structure) -> Structure:
        """The structure as this criterion compares it: each element replaced by its class representative
        when ``disordered`` (idempotent), else unchanged."""
        if not self.disordered:
            return structure
        from crystalsearch.structure.interchangeable import to_classes

        return to_classes(structure)

    def view_cell(self, cell: Cell) -> Cell:
        """:meth:`view` of a cell (its atomic numbers replaced by those of the class representatives)."""
        if not self.disordered:
            return cell
        import dataclasses

        from crystalsearch.structure.interchangeable import representative_numbers

        return dataclasses.replace(cell, numbers=representative_numbers(cell.numbers))

    def formula_key(self, formula: str) -> str:
        """The reduced formula as this criterion compares it (the class formula when ``disordered``)."""
        if not self.disordered:
            return formula
        from crystalsearch.structure.interchangeable import class_formula

        return class_formula(formula)

    def matcher(self) -> StructureMatcher:
        return _matcher(self.ltol, self.stol, self.angle_tol)

    def describe(self) -> dict[str, Any]:
        out = {
            "symprec": self.symprec, "ltol": self.ltol, "stol": self.stol, "angle_tol": self.angle_tol,
            "primitive_cell": True, "scale": True, "attempt_supercell": False, "comparator": "ElementComparator",
            "max_pairs": self.max_pairs, "noise_symprec": self.noise_symprec,
        }  # fmt: skip
        if self.disordered:  # absent by default: journals written without the option stay valid
            out["disordered"] = "interchangeable elements (crystalsearch.structure.interchangeable)"
        return out


MatcherConfig = MatchCriterion  # the name used before the space-group criterion


@functools.lru_cache(maxsize=8)
def _matcher(ltol: float, stol: float, angle_tol: float) -> StructureMatcher:
    from pymatgen.analysis.structure_matcher import ElementComparator, StructureMatcher

    return StructureMatcher(ltol=ltol, stol=stol, angle_tol=angle_tol, primitive_cell=True, scale=True,
                            attempt_supercell=False, allow_subset=False, comparator=ElementComparator())  # fmt: skip


@dataclass(frozen=True)
class QueryKey:
    """The exact keys of a structure: reduced formula, space group at ``symprec``, prototype label."""

    formula: str
    spacegroup: int
    prototype: str


def query_key(structure: Structure, *, symprec: float = 0.1) -> QueryKey:
    from crystalsearch.structure.prototype import symmetry_label

    numbers = np.array([site.specie.Z for site in structure], dtype=np.int64)
    label = symmetry_label(structure.lattice.matrix, structure.frac_coords, numbers, symprec=symprec)
    return QueryKey(str(structure.composition.reduced_formula), label.number, label.prototype)


def noise_spacegroups(
    structure: Structure | Cell, criterion: MatchCriterion, *, steps: int | None = None
) -> tuple[int, ...]:
    """The space groups spglib finds at the criterion's looser tolerances (:meth:`MatchCriterion.noise_tolerances`,
    in order, the first ``steps`` of them; empty when ``noise_symprec`` is off): where noise has lowered the one
    found at ``symprec``."""
    from crystalsearch.structure.cellmatch import Cell
    from crystalsearch.structure.symmetry import symmetry_of

    cell = structure if isinstance(structure, Cell) else Cell.of(structure)
    return tuple(symmetry_of(cell.lattice, cell.frac, cell.numbers, symprec=tol).number
                 for tol in criterion.noise_tolerances()[:steps])  # fmt: skip


@dataclass(frozen=True)
class Match:
    """One catalog entry that is the same material as the query."""

    material_id: str
    rms: float  # pymatgen's RMS displacement, normalised by (V/n)^1/3
    rms_angstrom: float  # the same in Å at the entry's volume per atom
    similarity: float  # cosine similarity of the representations
    row: int = field(default=-1, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"material_id": self.material_id, "rms": round(self.rms, 6), "rms_angstrom": round(self.rms_angstrom, 5),
                "similarity": round(self.similarity, 6)}  # fmt: skip


@dataclass(frozen=True)
class Verdict:
    """Known (``matches``: best first) or novel, with the reason in words."""

    formula: str
    spacegroup: int
    matches: tuple[Match, ...] = ()
    reason: str = ""
    pairs: int = 0  # StructureMatcher comparisons made
    prototype: str = ""
    loose: tuple[int, ...] = ()  # the query's space groups at the first noise tolerances, where computed

    @property
    def known(self) -> bool:
        return bool(self.matches)

    @property
    def best(self) -> Match | None:
        return self.matches[0] if self.matches else None

    def text(self) -> str:
        if not self.matches:
            return "novel"
        best = self.matches[0]
        more = f"; also {', '.join(m.material_id for m in self.matches[1:])}" if len(self.matches) > 1 else ""
        return f"known as {best.material_id} (RMS {best.rms_angstrom:.3f} Å){more}"

    def to_dict(self) -> dict[str, Any]:
        best = self.best
        return {
            "status": "known" if best else "novel", "material_id": best.material_id if best else None,
            "rms": round(best.rms, 6) if best else None, "rms_angstrom": round(best.rms_angstrom, 5) if best else None,
            "matches": [m.to_dict() for m in self.matches], "formula": self.formula,
            "spacegroup_number": self.spacegroup, "reason": self.reason,
        }  # fmt: skip


def fit_rms(a: Structure, b: Structure, criterion: MatchCriterion, *, reduced: bool = False) -> float | None:
    """StructureMatcher's verdict on two structures (``fit``): their normalised RMS displacement if they
    match, else None. ``reduced``: both already through :func:`reduce_structure`."""
    from crystalsearch.structure.cellmatch import Cell

    ca, cb = Cell.of(a), Cell.of(b)
    if not reduced:
        ca, cb = reduce_cell(ca), reduce_cell(cb)
    return fit_cells(ca, cb, criterion)


def fit_cells(a: Cell, b: Cell, criterion: MatchCriterion) -> float | None:
    """:func:`fit_rms` of two reduced cells (:func:`~crystalsearch.structure.cellmatch.cell_rms` with the
    criterion's tolerances); degenerate lattices are not a match."""
    from crystalsearch.structure.cellmatch import cell_rms

    with np.errstate(all="ignore"):
        try:
            return cell_rms(a, b, ltol=criterion.ltol, stol=criterion.stol, angle_tol=criterion.angle_tol)
        except (ValueError, ArithmeticError, IndexError, np.linalg.LinAlgError):
            return None


def pymatgen_fit_rms(a: Structure, b: Structure, criterion: MatchCriterion) -> float | None:
    """The reference for :func:`fit_rms`: pymatgen's StructureMatcher itself on two reduced structures (the
    mapping of smallest RMS, then ``fit``); slower, used by the tests and the accuracy benchmark."""
    matcher = criterion.matcher()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            best = _best_mapping(matcher, a, b)
            if best is None:
                return None
            if best[1] < matcher.stol or matcher.fit(a, b, skip_structure_reduction=True):
                return best[0]
        except (ValueError, ArithmeticError, IndexError):  # degenerate lattices: not a match
            return None
    return None


def same_material(a: Structure, b: Structure, criterion: MatchCriterion = MatchCriterion()) -> bool:
    """The criterion on two structures: same reduced formula and space group, and a StructureMatcher match."""
    a, b = criterion.view(a), criterion.view(b)
    ka, kb = query_key(a, symprec=criterion.symprec), query_key(b, symprec=criterion.symprec)
    return (ka.formula, ka.spacegroup) == (kb.formula, kb.spacegroup) and fit_rms(a, b, criterion) is not None


# pymatgen releases whose private StructureMatcher steps have the signatures used below (checked by a test).
PRIVATE_API_VERSIONS = ((2024, 1, 1), (2026, 99, 99))


def _private_api_usable() -> bool:
    """Whether this pymatgen's ``_preprocess``/``_match`` are the ones :func:`_best_mapping` was written for."""
    from importlib.metadata import PackageNotFoundError, version

    from pymatgen.analysis.structure_matcher import StructureMatcher

    try:
        parts = tuple(int(x) for x in version("pymatgen").split(".")[:3])
    except (PackageNotFoundError, ValueError):
        return False
    low, high = PRIVATE_API_VERSIONS
    return low <= parts <= high and all(hasattr(StructureMatcher, n) for n in ("_preprocess", "_match"))


@functools.lru_cache(maxsize=1)
def private_api() -> bool:
    """:func:`_private_api_usable`, decided once per process."""
    return _private_api_usable()


def _best_mapping(matcher: StructureMatcher, a: Structure, b: Structure) -> tuple[float, float] | None:
    """(normalised RMS, largest displacement) of the best mapping of two reduced structures, or None.

    The one use of StructureMatcher's private steps: they take ``skip_structure_reduction`` (both inputs were
    reduced once by :func:`reduce_structure`), which the public ``get_rms_dist`` cannot. On a pymatgen outside
    :data:`PRIVATE_API_VERSIONS` the public call gives the same answer, reducing again.
    """
    if private_api():
        s1, s2, fu, s1_supercell = matcher._preprocess(a, b, skip_structure_reduction=True)
        best = matcher._match(s1, s2, fu, s1_supercell, use_rms=True, break_on_match=False)
        return None if best is None else (float(best[0]), float(np.max(best[1])))
    found = matcher.get_rms_dist(a, b)
    return None if found is None else (float(found[0]), float(found[1]))
