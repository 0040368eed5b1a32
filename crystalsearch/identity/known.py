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
3. StructureMatcher on at most ``max_pairs`` of them, in that order; if none matches, or the best match is
   farther than :data:`SETTLED_RMS_ANGSTROM` (a polymorph seen through noise may match too), the same with
   the query's space group at looser tolerances (``noise_symprec``, below; each computed only when needed),
   the closest match winning.

Inputs are reduced once each (primitive, then Niggli; spglib's primitive cell when pymatgen's primitive
search is defeated by noise) and compared as arrays (:mod:`crystalsearch.structure.cellmatch`: pymatgen's
StructureMatcher algorithm, the same verdicts in a fraction of the time).

The best match is the matching entry with the smallest RMS displacement; other matching entries are
listed too (the catalog itself holds duplicates then). The RMS displacement is pymatgen's (normalised
by (V/n)^1/3, volumes scaled) and, for reading, in Å at the catalog entry's volume per atom.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from crystalsearch.structure.cellmatch import Cell, cell_from_json
from crystalsearch.structure.matching import (
    Match,
    MatchCriterion,
    QueryKey,
    Verdict,
    fit_cells,
    fit_rms,
    noise_spacegroups,
    query_key,
    reduce_cell,
    reduce_structure,
    same_material,
)

if TYPE_CHECKING:
    from pymatgen.core import Structure

    from crystalsearch.catalog.reader import MaterialRow

__all__ = ["KnownChecker", "Match", "MatchCriterion", "QueryKey", "Verdict", "fit_rms", "matching_rows",
           "noise_spacegroups", "query_key", "reduce_structure", "same_material"]  # fmt: skip


SETTLED_RMS_ANGSTROM = 0.01  # a match this close settles the verdict; a farther one may be a polymorph seen
# through noise (a cubic BaTiO3 copy moved by 0.05 Å is P4mm at 0.1 Å and matches P4mm BaTiO3): then the space
# groups at the noise tolerances are tried too and the closest match wins


@dataclass(frozen=True)
class _Candidate:
    row: int
    similarity: float
    material: MaterialRow


class KnownChecker:
    """Verdicts against one catalog (an opened :class:`~crystalsearch.identity.catalog.Catalog`)."""

    def __init__(self, catalog: Any, criterion: MatchCriterion = MatchCriterion(), *, cache: int = 512) -> None:
        from crystalsearch.structure.prototype import SYMPREC

        self.catalog = catalog
        self.criterion = criterion
        self._stored_sg = abs(criterion.symprec - SYMPREC) < 1e-12  # the index's column is at this tolerance
        self._cells: OrderedDict[int, Cell] = OrderedDict()
        self._spacegroups: dict[int, int] = {}
        self._counts: dict[str, int] = {}
        self._cache = cache

    def structure(self, row: int) -> Structure:
        """A catalog structure as the criterion compares it (:meth:`MatchCriterion.view`)."""
        from crystalsearch.data.entries import structure_from_json

        return self.criterion.view(structure_from_json(self.catalog.db.structures([row])[row]))

    def cell(self, row: int) -> Cell:
        """A catalog entry's reduced cell (:func:`reduce_cell`, spglib first; kept in a small LRU cache: bulk
        checks meet the same entries again)."""
        cell = self._cells.get(row)
        if cell is not None:
            self._cells.move_to_end(row)
            return cell
        stored = self.criterion.view_cell(cell_from_json(self.catalog.db.structures([row])[row]))
        cell = self._cells[row] = reduce_cell(stored, symprec=self.criterion.symprec)
        if len(self._cells) > self._cache:
            self._cells.popitem(last=False)
        return cell

    def _spacegroup(self, m: MaterialRow) -> int:
        if self._stored_sg:
            return int(m.spacegroup_number)
        sg = self._spacegroups.get(m.id)
        if sg is None:
            sg = self._spacegroups[m.id] = query_key(self.structure(m.id), symprec=self.criterion.symprec).spacegroup
        return sg

    def same_formula(self, formula: str) -> list[MaterialRow]:
        """Catalog rows of one reduced formula; with ``disordered``, ``formula`` is a class formula and the rows
        are those of every formula it stands for (:func:`~crystalsearch.structure.interchangeable.formulas_of`)."""
        if not self.criterion.disordered:
            return self._rows_of(formula)
        from crystalsearch.structure.interchangeable import formulas_of

        return [m for f in formulas_of(formula) for m in self._rows_of(f)]

    def formula_count(self, formula: str) -> int:
        """How many catalog entries :meth:`same_formula` gives (counted in SQL, cached)."""
        n = self._counts.get(formula)
        if n is None:
            if self.criterion.disordered:
                n = len(self.same_formula(formula))
            else:
                rows = self.catalog.db.ids_with_formula(formula)
                n = int(np.count_nonzero(rows < len(self.catalog)))
            self._counts[formula] = n
        return n

    def _rows_of(self, formula: str) -> list[MaterialRow]:
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

    def check(
        self,
        structure: Structure,
        vector: np.ndarray | None = None,
        *,
        key: QueryKey | None = None,
        loose: tuple[int, ...] | None = None,
    ) -> Verdict:
        """The verdict on one structure (``vector``: its representation laid out like the index's rows, for
        the ranking; without it, catalog order). ``key``, ``loose``: its :func:`query_key` and
        :func:`noise_spacegroups` where already computed (of ``criterion.view(structure)`` when ``disordered``:
        then the formula is the class formula)."""
        c = self.criterion
        real = str(structure.composition.reduced_formula)  # with ``disordered``: its own formula first
        structure = c.view(structure)
        key = key or query_key(structure, symprec=c.symprec)
        same = self.same_formula(key.formula)
        if not same:
            return Verdict(key.formula, key.spacegroup, (), f"no catalog material with formula {key.formula}", 0,
                           key.prototype)  # fmt: skip
        reduced: list[Cell] = []
        pairs = 0
        notes = []
        tolerances = list(zip(c.noise_tolerances(), loose)) if loose is not None else None
        seen: set[int] = set()
        done: set[float] = set()
        loose_found: list[int] = []  # the query's space groups at the noise tolerances, in order, as computed
        step: tuple[int, str] | None = (key.spacegroup, "")
        found: Verdict | None = None
        found_other = True
        while step is not None:
            spacegroup, how = step
            seen.add(spacegroup)
            ranked = self.candidates(same, spacegroup, vector, key.prototype if not how else "")
            tried = ranked[: c.max_pairs]
            if tried and not reduced:
                reduced.append(reduce_cell(Cell.of(structure), symprec=c.symprec))
            matches = [m for m in (self._compare(reduced[0], cand) for cand in tried) if m is not None]
            pairs += len(tried)
            other = {cand.row for cand in tried if cand.material.reduced_formula != real}
            if matches:
                matches.sort(key=lambda m: (m.row in other, m.rms, -m.similarity, m.row))
                why = f"same formula and space group {spacegroup}{how} as {matches[0].material_id}"
                why += ", StructureMatcher match"
                if len(matches) > 1:
                    why += f"; the catalog holds {len(matches)} entries of this material"
                if found is None or (matches[0].row in other, matches[0].rms) < (found_other, found.matches[0].rms):
                    found_other = matches[0].row in other
                    found = Verdict(key.formula, spacegroup, tuple(matches), why, pairs, key.prototype)
                if found.matches[0].rms_angstrom <= SETTLED_RMS_ANGSTROM or c.noise_symprec is None:
                    break
                step = self._next_step(structure, key, seen, done, tolerances, same, loose_found)
                continue
            skipped = f" ({len(ranked) - len(tried)} less similar not compared)" if len(ranked) > len(tried) else ""
            notes.append(
                f"{len(ranked)} in space group {spacegroup}{how}" + (f", none matching{skipped}" if ranked else "")
            )
            step = self._next_step(structure, key, seen, done, tolerances, same, loose_found)
        if found is not None:
            return dataclasses.replace(found, pairs=pairs, loose=tuple(loose_found))
        why = f"{len(same)} catalog material(s) with formula {key.formula}: " + "; ".join(notes)
        return Verdict(key.formula, key.spacegroup, (), why, pairs, key.prototype, tuple(loose_found))

    def _next_step(
        self,
        structure: Structure,
        key: QueryKey,
        seen: set[int],
        done: set[float],
        given: list[tuple[float, int]] | None,
        same: Sequence[MaterialRow],
        found: list[int],
    ) -> tuple[int, str] | None:
        """The next space group to try: the query's at the next looser tolerance that gives a new one (each
        computed only when the previous ones matched nothing, and only while some catalog entry of the formula
        is in a space group not tried yet), or None."""
        c = self.criterion
        if not {self._spacegroup(m) for m in same} - seen:
            return None
        for i, tol in enumerate(c.noise_tolerances()):
            if tol in done:
                continue
            done.add(tol)
            number = given[i][1] if given is not None and i < len(given) else _spacegroup_at(structure, tol)
            found.append(number)
            if number not in seen:
                return number, f" (at symprec {tol:g}; {key.spacegroup} at {c.symprec:g})"
        return None

    def _compare(self, reduced: Cell, cand: _Candidate) -> Match | None:
        rms = fit_cells(reduced, self.cell(cand.row), self.criterion)
        if rms is None:
            return None
        scale = float(cand.material.volume_per_atom) ** (1 / 3)
        return Match(cand.material.material_id, rms, rms * scale, cand.similarity, cand.row)


def _spacegroup_at(structure: Structure, symprec: float) -> int:
    from crystalsearch.structure.symmetry import symmetry_of

    numbers = np.array([site.specie.Z for site in structure], dtype=np.int64)
    return symmetry_of(structure.lattice.matrix, structure.frac_coords, numbers, symprec=symprec).number


def matching_rows(
    query: Structure, candidates: Sequence[tuple[int, Structure]], *, config: MatchCriterion = MatchCriterion()
) -> list[int]:
    """Rows of the candidates that are the same material as ``query`` (:func:`same_material`)."""
    return [row for row, s in candidates[: config.max_pairs] if same_material(query, s, config)]
