"""Duplicates among candidates: which candidates of a batch are the same material as an earlier one.

"The same material" is the criterion of :mod:`crystalsearch.identity.known` made symmetric for two inputs
that may both be noisy: same reduced formula, a StructureMatcher match, and the same space group at
``symprec`` or, where none of those matched, a space group shared at the noise tolerances
(:meth:`~crystalsearch.identity.known.MatchCriterion.noise_tolerances`). Candidates known as the same
catalog entry are the same material without a comparison.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from crystalsearch.structure.matching import MatchCriterion, fit_rms, reduce_structure

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pymatgen.core import Structure

    from crystalsearch.identity.novelty import Candidate

__all__ = ["group_duplicates"]

LOOSE_STEPS = 2


def group_duplicates(
    candidates: Sequence[Candidate], criterion: MatchCriterion, *, workers: int = 1
) -> list[Candidate]:
    """Mark each candidate that is the same material as an earlier one (``duplicate_of``, the verdict of the
    earlier one).

    Candidates known as the same catalog entry are the same material (no comparison needed). The others are
    compared within their reduced formula (groups in ``workers`` processes) with the space-group rule of the
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
        groups.setdefault(c.formula, []).append(i)
    tasks = [[_GroupItem(i, str(out[i].structure), out[i].vector, out[i].spacegroup, out[i].loose) for i in idx]
             for idx in groups.values() if len(idx) > 1]  # fmt: skip
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


@dataclass(frozen=True)
class _GroupItem:
    index: int
    structure: str
    vector: np.ndarray | None
    spacegroup: int | None
    loose: tuple[int, ...] = ()

    def groups(self) -> set[int | None]:
        return {self.spacegroup, *self.loose[:LOOSE_STEPS]}


def _group(items: list[_GroupItem], criterion: MatchCriterion) -> list[tuple[int, int]]:
    """(duplicate, representative) pairs among one formula's candidates, greedily in input order."""
    from crystalsearch.data.entries import structure_from_json

    reps: list[tuple[_GroupItem, Structure]] = []
    pairs = []
    for item in items:
        s = reduce_structure(structure_from_json(item.structure), symprec=criterion.symprec)
        same = [k for k, (r, _) in enumerate(reps) if r.spacegroup == item.spacegroup]
        loose = [k for k, (r, _) in enumerate(reps) if k not in same and r.groups() & item.groups()]
        sims = [_similarity(item.vector, r.vector) for r, _ in reps]
        order = sorted(same, key=lambda k: -sims[k]) + sorted(loose, key=lambda k: -sims[k])
        for k in order[: criterion.max_pairs]:
            if fit_rms(s, reps[k][1], criterion, reduced=True) is not None:
                pairs.append((item.index, reps[k][0].index))
                break
        else:
            reps.append((item, s))
    return pairs


def _similarity(a: np.ndarray | None, b: np.ndarray | None) -> float:
    return 0.0 if a is None or b is None else float(np.dot(a, b))
