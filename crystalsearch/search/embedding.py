"""Embedding index entries, in this process or in worker processes (one torch thread each).

On a small, shared CPU one torch thread per process is several times faster per crystal than
torch's multi-threaded kernels (which spin while they wait for a busy core), so large builds embed
chunks in up to ``workers`` spawned processes, each single-threaded, and small ones in-process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from crystalsearch.search.entries import Entry
from crystalsearch.search.symmetry import symmetry_many

if TYPE_CHECKING:
    from crystalsearch.embed import Encoder

__all__ = ["auto_workers", "embed_chunk", "embed_entries", "run_chunks"]

BATCH_SIZE = 128
MIN_ENTRIES_FOR_WORKERS = 4096
_WORKER_ENCODER: Any = None


def embed_entries(
    entries: Sequence[Entry], encoder: Encoder, *, advance: Callable[[int], None], batch_size: int = BATCH_SIZE
) -> np.ndarray:
    """L2-normalised embeddings of entries (graphs built straight from the arrays, no pymatgen)."""
    from crystalsearch.graph.store import build_store
    from crystalsearch.search.faiss_index import normalise

    if not entries:
        return np.zeros((0, encoder.dim), dtype=np.float32)
    k = encoder.max_neighbors
    store = build_store([e.cell() for e in entries], radius=encoder.radius, max_neighbors=k, num_candidates=k)
    return normalise(encoder.embed_store(store, batch_size=batch_size, progress=advance))


def embed_chunk(entries: Sequence[Entry], encoder: Encoder, advance: Callable[[int], None]) -> dict[str, np.ndarray]:
    """What a build saves per chunk: embeddings, space group numbers and the entry count."""
    embeddings = embed_entries(entries, encoder, advance=advance)
    numbers = np.array([s.number for s in symmetry_many(e.cell() for e in entries)], dtype=np.int16)
    return {"embeddings": embeddings, "spacegroup": numbers, "n": np.array([len(entries)])}


def auto_workers(n_entries: int) -> int:
    if n_entries < MIN_ENTRIES_FOR_WORKERS:
        return 1
    return max(1, min(2, os.cpu_count() or 1))


def _init_worker(encoder: Encoder) -> None:
    import torch

    global _WORKER_ENCODER
    torch.set_num_threads(1)
    _WORKER_ENCODER = encoder


def _work(entries: list[Entry]) -> dict[str, np.ndarray]:
    return embed_chunk(entries, _WORKER_ENCODER, lambda n: None)


def run_chunks(
    jobs: Sequence[tuple[int, Sequence[Entry]]],
    encoder: Encoder,
    *,
    workers: int,
    on_done: Callable[[int, dict[str, np.ndarray]], None],
    advance: Callable[[int], None],
) -> None:
    """Embed each ``(chunk number, entries)`` job and hand the result to ``on_done`` as soon as it is ready."""
    if workers <= 1 or len(jobs) < 2:
        for i, part in jobs:
            on_done(i, embed_chunk(part, encoder, advance))
        return
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(encoder,)
    ) as pool:
        todo = list(jobs)
        running: dict[Any, tuple[int, int]] = {}
        try:
            while todo or running:
                while todo and len(running) < 2 * workers:
                    i, part = todo.pop(0)
                    running[pool.submit(_work, list(part))] = (i, len(part))
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    i, n = running.pop(future)
                    on_done(i, future.result())
                    advance(n)
        except BaseException:
            for future in running:
                future.cancel()
            raise
