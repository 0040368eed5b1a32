"""One novelty batch over several processes (``torchrun``): each rank checks its share, rank 0 reports.

Every rank expands the same candidate inputs (in the same order) and checks the sources ``i`` with
``i % world_size == rank`` against the catalog (:func:`~crystalsearch.identity.novelty.check_candidates`). The
checked candidates travel to rank 0 in their journal form (plain JSON values: labels, verdicts, structures,
float32 embeddings), which merges them in input order and groups duplicates among all of them, as a
single-process :func:`~crystalsearch.identity.novelty.check_novelty` does: the report is the same.

Launch::

    torchrun --standalone --nproc_per_node 2 -m crystalsearch novelty generated/ --json
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from crystalsearch.errors import CrystalSearchError
from crystalsearch.identity.known import MatchCriterion
from crystalsearch.identity.novelty import Candidate, NoveltyReport, assemble, check_candidates

if TYPE_CHECKING:
    from crystalsearch.distributed import DistInfo

__all__ = ["check_novelty_sharded"]

TIMEOUT_S = 24 * 3600.0  # a rank may wait this long for the slowest share


def check_novelty_sharded(
    candidates: Sequence[str | os.PathLike[str]],
    *,
    index: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] = "default",
    criterion: MatchCriterion = MatchCriterion(),
    workers: int = 1,
    progress: bool = False,
    info: DistInfo | None = None,
) -> NoveltyReport | None:
    """:func:`~crystalsearch.identity.novelty.check_novelty` with the checking shared by the ``torchrun``
    ranks (gloo); ``workers``: processes per rank. Returns the report on rank 0 and None on the others. An
    error on any rank is raised on every rank (none is left waiting)."""
    import torch

    from crystalsearch import distributed as D

    started = info is None
    info = info or D.init_distributed(torch.device("cpu"), timeout_s=TIMEOUT_S)
    try:
        error, shared = None, {}
        try:
            share = (info.rank, info.world_size)
            checked = check_candidates(candidates, index=index, criterion=criterion, workers=workers,
                                       progress=progress and info.is_main, shard=share)  # fmt: skip
            shared = {sid: [c.to_journal() for c in found] for sid, found in checked.results.items()}
        except CrystalSearchError as exc:
            error = f"rank {info.rank}: {exc}" if info.rank else str(exc)
        parts = D.gather_objects((error, shared), info)
        first = next((e for e, _ in parts if e), None)
        if first:
            raise CrystalSearchError(first)
        if not info.is_main:
            return None
        checked.results = merge_shares([p for _, p in parts])
        return assemble(checked, criterion, workers=workers)
    finally:
        if started:
            D.shutdown(info)


def merge_shares(shares: Sequence[dict[str, list[dict[str, Any]]]]) -> dict[str, list[Candidate]]:
    """The candidates of every source from the ranks' shares (journal form); a source checked twice is an error."""
    merged: dict[str, list[Candidate]] = {}
    for share in shares:
        for sid, found in share.items():
            if sid in merged:
                raise CrystalSearchError(f"{sid}: checked by two ranks (were they given other candidates?)")
            merged[sid] = [Candidate.from_journal(dict(c)) for c in found]
    return merged
