"""Index builds over several processes (``torchrun``): each rank embeds its share, rank 0 assembles.

Every rank reads the same entries and makes the same plan as :func:`crystalsearch.catalog.build.build_index`
(same chunks); rank ``r`` of ``w`` embeds chunks ``i`` with ``i % w == r`` and saves each one, atomically, into
the shared ``<out>.partial`` folder as soon as it is finished. After a barrier, rank 0 runs ``build_index`` on
the same entries, which finds every chunk done and assembles rows, vectors and the FAISS index exactly as a
single-process build does: the result is the same index (same rows in the same order, same vectors up to
float rounding). A killed run leaves its finished chunks behind; the next run with the same inputs (any
number of ranks) reuses them. Rank 0 holds the folder's lock from the plan to the barrier, so no other build
can clear the chunks meanwhile. The ranks must see one file system (one machine, or a shared one).

Launch::

    torchrun --standalone --nproc_per_node 2 -m crystalsearch index build --dataset all --out my_index

(without ``torchrun``, :func:`build_sharded` is :func:`~crystalsearch.catalog.build.build_index`).
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crystalsearch.catalog.build import (
    Progress,
    _bar,
    build_index,
    build_plan,
    chunk_path,
    load_chunk,
    partial_dir,
    prepare,
    save_chunk,
)  # fmt: skip
from crystalsearch.catalog.embedding import run_chunks
from crystalsearch.catalog.manifest import locked
from crystalsearch.data.entries import as_entries
from crystalsearch.errors import CrystalSearchError

if TYPE_CHECKING:
    from crystalsearch.catalog.manifest import Manifest
    from crystalsearch.distributed import DistInfo
    from crystalsearch.model.embed import Encoder

__all__ = ["ShardStats", "ShardedBuild", "build_launched", "build_sharded", "embed_share"]

TIMEOUT_S = 24 * 3600.0  # a rank may wait this long for the others (rank 0 trains IVF on millions of vectors)


@dataclass(frozen=True)
class ShardStats:
    """One rank's part of a build: chunks embedded in this run, chunks found finished by an earlier run."""

    rank: int
    chunks: int
    embedded: int
    reused: int
    structures_embedded: int
    seconds: float


@dataclass(frozen=True)
class ShardedBuild:
    """Outcome on every rank: the manifest (rank 0 only, None elsewhere) and every rank's statistics."""

    manifest: Manifest | None
    rank: int
    world_size: int
    shards: tuple[ShardStats, ...]


def embed_share(
    entries: Any,
    *,
    encoder: Encoder,
    work: Path,
    rank: int,
    world_size: int,
    chunk_size: int,
    progress: Progress = False,
    workers: int = 1,
) -> ShardStats:
    """Embed and save rank ``rank``'s missing chunks of the plan (``i % world_size == rank``) into ``work``."""
    t0 = time.perf_counter()
    entries = as_entries(entries)
    mine = list(range(rank, -(-len(entries) // chunk_size), world_size))
    jobs = []
    for i in mine:
        part = entries[i * chunk_size : (i + 1) * chunk_size]
        if load_chunk(chunk_path(work, i), len(part), encoder.dim) is None:
            jobs.append((i, part))
    todo = sum(len(p) for _, p in jobs)
    label = f"embedding {todo:,} crystals (rank {rank} of {world_size})"
    with _bar(progress, todo, label) as advance:
        run_chunks(jobs, encoder, workers=workers, advance=advance,
                   on_done=lambda i, chunk: save_chunk(chunk_path(work, i), chunk))  # fmt: skip
    return ShardStats(rank=rank, chunks=len(mine), embedded=len(jobs), reused=len(mine) - len(jobs),
                      structures_embedded=todo, seconds=round(time.perf_counter() - t0, 2))  # fmt: skip


def build_sharded(
    records_or_dataset: Any,
    *,
    encoder: Encoder,
    out: Path,
    faiss_factory: str = "auto",
    progress: Progress = True,
    resume: bool = True,
    chunk_size: int = 1024,
    workers: int = 1,
    info: DistInfo | None = None,
) -> ShardedBuild:
    """Build ``out`` like :func:`~crystalsearch.catalog.build.build_index`, the embedding shared by the ranks of
    ``torchrun`` (the process group is started here unless ``info`` is given, and closed again when started here).

    Every rank must pass the same entries (refused otherwise). ``workers``: embedding processes per rank.
    """
    import torch

    from crystalsearch import distributed as D

    started = info is None
    info = info or D.init_distributed(torch.device("cpu"), timeout_s=TIMEOUT_S)
    try:
        entries = as_entries(records_or_dataset)
        return _sharded(entries, encoder=encoder, out=Path(out), faiss_factory=faiss_factory, progress=progress,
                        resume=resume, chunk_size=chunk_size, workers=workers, info=info)  # fmt: skip
    finally:
        if started:
            D.shutdown(info)


def _agree(error: str | None, info: DistInfo) -> None:
    """Every rank learns every rank's error and all raise the first one together (none is left waiting)."""
    from crystalsearch.distributed import gather_objects

    first = next((e for e in gather_objects(error, info) if e), None)
    if first:
        raise CrystalSearchError(first)


def _sharded(entries: list[Any], *, encoder: Encoder, out: Path, faiss_factory: str, progress: Progress,
             resume: bool, chunk_size: int, workers: int, info: DistInfo) -> ShardedBuild:  # fmt: skip
    from crystalsearch.distributed import gather_objects

    if not entries:
        raise CrystalSearchError("nothing to index: no structures given")
    plan = build_plan(entries, encoder, chunk_size)
    work = partial_dir(out)
    error = None
    if gather_objects(plan, info)[0] != plan:
        error = f"rank {info.rank} was given other structures than rank 0 (the plans differ); give every rank the same"
    with ExitStack() as stack:
        if info.is_main and error is None:
            try:
                work.mkdir(parents=True, exist_ok=True)
                stack.enter_context(locked(work, exclusive=True, timeout=0.0))
                prepare(work, plan, resume=resume)
            except CrystalSearchError as exc:
                error = str(exc)
            except OSError as exc:
                error = f"{work}: {exc.strerror or exc}"
        _agree(error, info)
        stats = None
        try:
            stats = embed_share(entries, encoder=encoder, work=work, rank=info.rank, world_size=info.world_size,
                                chunk_size=chunk_size, progress=progress if info.is_main else False,
                                workers=workers)  # fmt: skip
        except CrystalSearchError as exc:
            error = f"rank {info.rank}: {exc}"
        shards = tuple(gather_objects(stats, info))
        _agree(error, info)
    manifest = None
    if info.is_main:  # every chunk is on disk: build_index reads and assembles them as a one-process build does
        manifest = build_index(entries, encoder=encoder, out=out, faiss_factory=faiss_factory, progress=progress,
                               resume=True, chunk_size=chunk_size, workers=workers)  # fmt: skip
    return ShardedBuild(manifest, info.rank, info.world_size, shards)


def build_launched(
    records_or_dataset: Any,
    *,
    encoder: Encoder,
    out: Path,
    faiss_factory: str = "auto",
    progress: Progress = True,
    resume: bool = True,
    chunk_size: int = 1024,
    workers: int | None = None,
) -> ShardedBuild:
    """One call for both launches: :func:`build_sharded` under ``torchrun`` (``WORLD_SIZE`` > 1), else
    :func:`~crystalsearch.catalog.build.build_index` in this process (``workers``: embedding processes, default
    automatic). The manifest is None on ranks other than 0."""
    from crystalsearch.distributed import launched_world_size

    if launched_world_size() > 1:
        return build_sharded(records_or_dataset, encoder=encoder, out=out, faiss_factory=faiss_factory,
                             progress=progress, resume=resume, chunk_size=chunk_size, workers=workers or 1)  # fmt: skip
    manifest = build_index(records_or_dataset, encoder=encoder, out=out, faiss_factory=faiss_factory,
                           progress=progress, resume=resume, chunk_size=chunk_size, workers=workers)  # fmt: skip
    return ShardedBuild(manifest, 0, 1, ())
