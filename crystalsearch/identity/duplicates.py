"""Duplicates among candidates: which candidates of a batch are the same material as an earlier one.

"The same material" is the criterion of :mod:`crystalsearch.identity.known` made symmetric for two inputs
that may both be noisy: same reduced formula, a StructureMatcher match, and the same space group at
``symprec`` or, where none of those matched, a space group shared at the noise tolerances
(:meth:`~crystalsearch.identity.known.MatchCriterion.noise_tolerances`). Candidates known as the same
catalog entry are the same material without a comparison.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from crystalsearch.identity.known import SETTLED_RMS_ANGSTROM
from crystalsearch.structure.cellmatch import Cell, cell_from_json
from crystalsearch.structure.matching import MatchCriterion, fit_cells, noise_spacegroups, reduce_cell

if TYPE_CHECKING:
    from collections.abc import Sequence


__all__ = ["group_duplicates"]

LOOSE_STEPS = 1  # in-batch: the space group at the first noise tolerance only (0.15 Å by default; measured
# in docs/novelty.md: both tolerances find 99.9% of noisy pairs but merge twice as many distinct materials)


def group_duplicates(candidates: Sequence[Any], criterion: MatchCriterion, *, workers: int = 1) -> list[Any]:
    """Mark each candidate that is the same material as an earlier one (``duplicate_of``, the verdict of the
    earlier one).

    Candidates known as the same catalog entry are the same material (no comparison needed); candidates known
    as different entries are different materials (the catalog tells them apart). The others are
    compared within their reduced formula (their class formula when ``criterion.disordered``; groups in
    ``workers`` processes) with the space-group rule of the
    catalog check made symmetric: first the earlier representatives in the same space group at ``symprec``,
    then, where none matched, those sharing a space group at the noise tolerances (``Candidate.loose``; noise
    lowers the group spglib finds, differently for two copies); at most ``criterion.max_pairs`` of them, the
    most similar first."""
    import dataclasses

    out = list(candidates)
    groups: dict[str | None, list[int]] = {}
    first_known: dict[str, int] = {}
    found: list[list[tuple[int, int]]] = [[]]
    for i, c in enumerate(out):
        if c.status == "error" or c.structure is None:
            continue
        if c.status == "known" and c.material_id is not None:
            if c.material_id in first_known:
                found[0].append((i, first_known[c.material_id]))
                continue
            first_known[c.material_id] = i
        groups.setdefault(None if c.formula is None else criterion.formula_key(c.formula), []).append(i)
    tasks = [[_item(i, out[i]) for i in idx] for idx in groups.values() if len(idx) > 1]
    if workers > 1 and len(tasks) > 1:
        import multiprocessing

        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        with multiprocessing.get_context(method).Pool(workers) as pool:
            found += pool.starmap(_group, [(task, criterion) for task in tasks], chunksize=8)
    else:
        found += [_group(task, criterion) for task in tasks]
    for i, j in sorted(pair for pairs in found for pair in pairs):
        rep = out[j]
        out[i] = dataclasses.replace(
            out[i], status=rep.status, material_id=rep.material_id, rms_angstrom=rep.rms_angstrom,
            matches=rep.matches, duplicate_of=rep.label, reason=f"duplicate of candidate {rep.label}; {rep.reason}",
        )  # fmt: skip
    return out


def _item(i: int, c: Any) -> _GroupItem:
    known = frozenset(c.matches) if c.status == "known" else frozenset()
    return _GroupItem(i, str(c.structure), c.vector, c.spacegroup, c.loose, known)


@dataclass(frozen=True)
class _GroupItem:
    index: int
    structure: str
    vector: np.ndarray | None
    spacegroup: int | None
    loose: tuple[int, ...] | None = None  # None: not computed yet
    known: frozenset[str] = frozenset()  # the catalog entries it is known as


def _group(items: list[_GroupItem], criterion: MatchCriterion) -> list[tuple[int, int]]:
    """(duplicate, representative) pairs among one formula's candidates, greedily in input order."""
    reps: list[tuple[_GroupItem, Cell]] = []  # (item, as read)
    loose: dict[int, set[int | None]] = {}  # space groups at symprec and the noise tolerances, when needed
    cells: dict[int, Cell] = {}  # reduced cells, when compared

    def groups(item: _GroupItem, s: Cell) -> set[int | None]:
        if item.index not in loose:
            found = noise_spacegroups(s, criterion, steps=LOOSE_STEPS) if item.loose is None else item.loose
            loose[item.index] = {item.spacegroup, *found[:LOOSE_STEPS]}
        return loose[item.index]

    def reduced(item: _GroupItem, s: Cell) -> Cell:
        if item.index not in cells:
            cells[item.index] = reduce_cell(s, symprec=criterion.symprec)
        return cells[item.index]

    def fits(item: _GroupItem, s: Cell, ks: list[int]) -> tuple[int, float] | None:
        """The first of ``ks`` that matches, with its RMS displacement in Å."""
        for k in ks:
            other = reduced(*reps[k])
            rms = fit_cells(reduced(item, s), other, criterion)
            if rms is not None:
                return k, rms * (other.volume / len(other)) ** (1 / 3)
        return None

    pairs = []
    for item in items:
        s = criterion.view_cell(cell_from_json(item.structure))  # classes of elements when disordered
        apart = {k for k, (r, _) in enumerate(reps) if r.known and item.known and not r.known & item.known}
        sims = [_similarity(item.vector, r.vector) for r, _ in reps]
        ranked = sorted((k for k in range(len(reps)) if k not in apart), key=lambda k: -sims[k])
        same = [k for k in ranked if reps[k][0].spacegroup == item.spacegroup][: criterion.max_pairs]
        match = fits(item, s, same)
        others = [k for k in ranked if reps[k][0].spacegroup != item.spacegroup]
        settled = match is not None and match[1] <= SETTLED_RMS_ANGSTROM
        if not settled and others and criterion.noise_tolerances():
            mine = groups(item, s)
            near = [k for k in others if groups(*reps[k]) & mine]
            other = fits(item, s, near[: criterion.max_pairs - len(same)])
            if other is not None and (match is None or other[1] < match[1]):
                match = other  # closer across space groups: the first was a polymorph seen through noise
        if match is not None:
            pairs.append((item.index, reps[match[0]][0].index))
        else:
            reps.append((item, s))
    return pairs


def _similarity(a: np.ndarray | None, b: np.ndarray | None) -> float:
    return 0.0 if a is None or b is None else float(np.dot(a, b))
