""" "Is it known?": the Materials Project's notion of *the same material*, as a verdict on a catalog.

The Materials Project groups calculations into one material (emmet's materials builder) when they have
the same reduced formula, the **same space group** (spglib, ``symprec`` 0.1 Å) and pymatgen's
**StructureMatcher** matches them with ``ltol`` 0.2 (fractional lattice length tolerance), ``stol`` 0.3
(site tolerance, a fraction of the average free length per atom, (V/n)^1/3), ``angle_tol`` 5°, both
reduced to primitive cells, volumes scaled to each other, no supercells or subsets, species compared by
element (oxidation states ignored). :class:`MatchCriterion` holds exactly these settings as defaults, and a
query is *known as X* when it is the same material as the catalog entry X under them. Polymorphs are
never merged: different space groups are different materials even where StructureMatcher alone would
match them (cubic BaTiO3 mp-2998 and its slightly distorted P4mm, R3m and Amm2 polymorphs).

Fast by construction, each step only on what the previous one left:

1. exact keys: catalog rows with the query's reduced formula (an SQL index lookup), then those with its
   space group (the index's ``spacegroup_number`` column, computed with the same spglib tolerance; other
   tolerances recompute the catalog side);
2. the survivors ranked by embedding similarity (cosine of the index's vectors), same prototype label first;
3. StructureMatcher on at most ``max_pairs`` of them, in that order; if none matches, the same with the
   query's space group at looser tolerances (``noise_symprec``, below).

Inputs are reduced once each (Niggli, then primitive; spglib's primitive cell when pymatgen's primitive
search is defeated by noise) and compared with ``skip_structure_reduction``.

The best match is the matching entry with the smallest RMS displacement; other matching entries are
listed too (the catalog itself holds duplicates then). The RMS displacement is pymatgen's (normalised
by (V/n)^1/3, volumes scaled) and, for reading, in Å at the catalog entry's volume per atom.
"""

from __future__ import annotations

import functools
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.core import Structure

    from crystalsearch.search.reader import MaterialRow

__all__ = ["KnownChecker", "Match", "MatchCriterion", "MatcherConfig", "QueryKey", "Verdict", "fit_rms",
           "matching_rows", "query_key", "reduce_structure", "same_material"]  # fmt: skip


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
    """

    symprec: float = 0.1
    ltol: float = 0.2
    stol: float = 0.3
    angle_tol: float = 5.0
    max_pairs: int = 16
    noise_symprec: float | None = 0.2

    def noise_tolerances(self) -> tuple[float, ...]:
        """The looser spglib tolerances tried, in order, when nothing matches at ``symprec``."""
        if self.noise_symprec is None or self.noise_symprec <= self.symprec:
            return ()
        return (round((self.symprec + self.noise_symprec) / 2, 6), self.noise_symprec)

    def matcher(self) -> StructureMatcher:
        return _matcher(self.ltol, self.stol, self.angle_tol)

    def describe(self) -> dict[str, Any]:
        return {
            "symprec": self.symprec, "ltol": self.ltol, "stol": self.stol, "angle_tol": self.angle_tol,
            "primitive_cell": True, "scale": True, "attempt_supercell": False, "comparator": "ElementComparator",
            "max_pairs": self.max_pairs, "noise_symprec": self.noise_symprec,
        }  # fmt: skip


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
    from crystalsearch.search.prototype import symmetry_label

    numbers = np.array([site.specie.Z for site in structure], dtype=np.int64)
    label = symmetry_label(structure.lattice.matrix, structure.frac_coords, numbers, symprec=symprec)
    return QueryKey(str(structure.composition.reduced_formula), label.number, label.prototype)


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


@dataclass(frozen=True)
class _Candidate:
    row: int
    similarity: float
    material: MaterialRow


class KnownChecker:
    """Verdicts against one catalog (an opened :class:`~crystalsearch.search.catalog.Catalog`)."""

    def __init__(self, catalog: Any, criterion: MatchCriterion = MatchCriterion(), *, cache: int = 512) -> None:
        from crystalsearch.search.prototype import SYMPREC

        self.catalog = catalog
        self.criterion = criterion
        self._stored_sg = abs(criterion.symprec - SYMPREC) < 1e-12  # the index's column is at this tolerance
        self._structures: OrderedDict[int, Structure] = OrderedDict()
        self._spacegroups: dict[int, int] = {}
        self._cache = cache

    def structure(self, row: int, *, reduced: bool = False) -> Structure:
        """A catalog structure; ``reduced``: its :func:`reduce_structure` (kept in a small LRU cache, bulk
        checks meet the same entries again)."""
        from crystalsearch.search.entries import structure_from_json

        if not reduced:
            return structure_from_json(self.catalog.db.structures([row])[row])
        s = self._structures.get(row)
        if s is None:
            s = reduce_structure(structure_from_json(self.catalog.db.structures([row])[row]))
            self._structures[row] = s
            if len(self._structures) > self._cache:
                self._structures.popitem(last=False)
        else:
            self._structures.move_to_end(row)
        return s

    def _spacegroup(self, m: MaterialRow) -> int:
        if self._stored_sg:
            return int(m.spacegroup_number)
        sg = self._spacegroups.get(m.id)
        if sg is None:
            sg = self._spacegroups[m.id] = query_key(self.structure(m.id), symprec=self.criterion.symprec).spacegroup
        return sg

    def same_formula(self, formula: str) -> list[MaterialRow]:
        rows = self.catalog.db.ids_with_formula(formula)
        rows = rows[rows < len(self.catalog)]
        found = self.catalog.db.materials(rows.tolist())
        return [found[int(r)] for r in rows if int(r) in found]

    def candidates(
        self, same: Sequence[MaterialRow], spacegroup: int, vector: np.ndarray | None, prototype: str = ""
    ) -> list[_Candidate]:
        """The rows of ``same`` (one formula) in ``spacegroup``, most similar first (same prototype label first)."""
        keep = [m for m in same if self._spacegroup(m) == spacegroup]
        if not keep:
            return []
        rows = np.array([m.id for m in keep], dtype=np.int64)
        vectors = self.catalog.vectors
        if vector is not None and np.shape(vector) == (vectors.dim,):  # laid out like the index's rows
            stored = vectors.rows(rows) if hasattr(vectors, "rows") else vectors.vectors()[rows]  # only these decoded
            sims = stored @ np.asarray(vector, dtype=np.float32)
        else:
            sims = np.zeros(len(rows), dtype=np.float32)
        proto = np.array([0 if prototype and m.prototype == prototype else 1 for m in keep])
        order = np.lexsort((rows, -sims, proto))
        return [_Candidate(int(rows[i]), float(sims[i]), keep[i]) for i in order]

    def check(self, structure: Structure, vector: np.ndarray | None = None, *, key: QueryKey | None = None) -> Verdict:
        """The verdict on one structure (``vector``: its representation laid out like the index's rows, for
        the ranking; without it, catalog order)."""
        c = self.criterion
        key = key or query_key(structure, symprec=c.symprec)
        same = self.same_formula(key.formula)
        if not same:
            return Verdict(key.formula, key.spacegroup, (), f"no catalog material with formula {key.formula}", 0,
                           key.prototype)  # fmt: skip
        reduced: list[Structure] = []
        pairs = 0
        notes = []
        steps: list[tuple[int, str]] = [(key.spacegroup, "")]
        while steps:
            spacegroup, how = steps.pop(0)
            ranked = self.candidates(same, spacegroup, vector, key.prototype if not how else "")
            tried = ranked[: c.max_pairs]
            if tried and not reduced:
                reduced.append(reduce_structure(structure, symprec=c.symprec))
            matches = [m for m in (self._compare(reduced[0], cand) for cand in tried) if m is not None]
            pairs += len(tried)
            if matches:
                matches.sort(key=lambda m: (m.rms, -m.similarity, m.row))
                why = f"same formula and space group {spacegroup}{how} as {matches[0].material_id}"
                why += ", StructureMatcher match"
                if len(matches) > 1:
                    why += f"; the catalog holds {len(matches)} entries of this material"
                return Verdict(key.formula, spacegroup, tuple(matches), why, pairs, key.prototype)
            skipped = f" ({len(ranked) - len(tried)} less similar not compared)" if len(ranked) > len(tried) else ""
            notes.append(
                f"{len(ranked)} in space group {spacegroup}{how}" + (f", none matching{skipped}" if ranked else "")
            )
            if not how:
                seen = {spacegroup}
                for tol in c.noise_tolerances():
                    loose = query_key(structure, symprec=tol).spacegroup
                    if loose not in seen:
                        seen.add(loose)
                        steps.append((loose, f" (at symprec {tol:g}; {spacegroup} at {c.symprec:g})"))
        why = f"{len(same)} catalog material(s) with formula {key.formula}: " + "; ".join(notes)
        return Verdict(key.formula, key.spacegroup, (), why, pairs, key.prototype)

    def _compare(self, reduced: Structure, cand: _Candidate) -> Match | None:
        rms = fit_rms(reduced, self.structure(cand.row, reduced=True), self.criterion, reduced=True)
        if rms is None:
            return None
        scale = float(cand.material.volume_per_atom) ** (1 / 3)
        return Match(cand.material.material_id, rms, rms * scale, cand.similarity, cand.row)


def reduce_structure(structure: Structure, *, symprec: float | None = None) -> Structure:
    """The cell StructureMatcher compares (``primitive_cell=True``): Niggli-reduced, then primitive.

    Reduced once per structure here and passed with ``skip_structure_reduction``: pymatgen's own cache of
    reduced structures compares a hit site by site (quadratic in the number of sites), which dominated.
    ``symprec`` (for inputs, which may be noisy): when spglib's primitive cell at ``symprec`` has fewer sites
    than pymatgen's, spglib's (positions not idealised) is used: sites moved by a few hundredths of an Å
    defeat pymatgen's primitive search on conventional cells (the hexagonal cell of R-3m SmSI stays 18 sites
    instead of 6), and StructureMatcher, which compares primitive cells only, then never matches.
    """
    reduced = structure.get_reduced_structure(reduction_algo="niggli").get_primitive_structure()
    if symprec is None or len(reduced) == _formula_units_floor(structure):
        return reduced
    import spglib
    from pymatgen.core import Element, Lattice, Structure

    cell = (structure.lattice.matrix, structure.frac_coords, [site.specie.Z for site in structure])
    try:
        found = spglib.standardize_cell(cell, to_primitive=True, no_idealize=True, symprec=symprec)  # type: ignore[arg-type]
    except (spglib.SpglibError, ValueError, TypeError):
        found = None
    if found is None or len(found[2]) >= len(reduced):
        return reduced
    lattice, frac, numbers = found
    primitive = Structure(Lattice(lattice), [Element.from_Z(int(z)) for z in numbers], frac)
    return primitive.get_reduced_structure(reduction_algo="niggli")


def _formula_units_floor(structure: Structure) -> int:
    """Sites of one formula unit: no primitive cell is smaller."""
    return int(round(structure.composition.reduced_composition.num_atoms))


def fit_rms(a: Structure, b: Structure, criterion: MatchCriterion, *, reduced: bool = False) -> float | None:
    """StructureMatcher's verdict on two structures (``fit``): their normalised RMS displacement if they
    match, else None. ``reduced``: both already through :func:`reduce_structure`.

    One pass finds the mapping of smallest RMS; it decides whenever its largest displacement is within
    ``stol`` (then ``fit`` is true) or no mapping's RMS is (then ``fit`` is false); otherwise ``fit`` decides.
    """
    matcher = criterion.matcher()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if not reduced:
                a, b = reduce_structure(a), reduce_structure(b)
            s1, s2, fu, s1_supercell = matcher._preprocess(a, b, skip_structure_reduction=True)
            best = matcher._match(s1, s2, fu, s1_supercell, use_rms=True, break_on_match=False)
            if best is None:
                return None
            if float(np.max(best[1])) < matcher.stol or matcher.fit(a, b, skip_structure_reduction=True):
                return float(best[0])
        except (ValueError, ArithmeticError, IndexError):  # degenerate lattices: not a match
            return None
    return None


def same_material(a: Structure, b: Structure, criterion: MatchCriterion = MatchCriterion()) -> bool:
    """The criterion on two structures: same reduced formula and space group, and a StructureMatcher match."""
    ka, kb = query_key(a, symprec=criterion.symprec), query_key(b, symprec=criterion.symprec)
    return (ka.formula, ka.spacegroup) == (kb.formula, kb.spacegroup) and fit_rms(a, b, criterion) is not None


def matching_rows(
    query: Structure, candidates: Sequence[tuple[int, Structure]], *, config: MatchCriterion = MatchCriterion()
) -> list[int]:
    """Rows of the candidates that are the same material as ``query`` (:func:`same_material`)."""
    return [row for row, s in candidates[: config.max_pairs] if same_material(query, s, config)]
