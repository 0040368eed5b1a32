"""Embedding index entries, in this process or in worker processes (one torch thread each).

On a small, shared CPU one torch thread per process is several times faster per crystal than
torch's multi-threaded kernels (which spin while they wait for a busy core), so large builds embed
chunks in up to ``workers`` spawned processes, each single-threaded, and small ones in-process.

Workers die with the build: on Linux each asks the kernel to kill it when its parent dies
(``prctl(PR_SET_PDEATHSIG)``, which covers ``kill -9`` of the build), and every worker also watches its
parent's pid once a second (other systems); ``SIGTERM`` to the build terminates the workers before it exits.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from crystalsearch.data.entries import Entry
from crystalsearch.structure.prototype import labels_many

if TYPE_CHECKING:
    from crystalsearch.model.embed import Encoder

__all__ = ["auto_workers", "embed_chunk", "embed_entries", "run_chunks", "threads"]

# crystals per forward pass: 32 keeps the edge tensors in cache (1.2 vs 1.6 ms per crystal at 128, one thread)
BATCH_SIZE = 32
MIN_ENTRIES_FOR_WORKERS = 4096
_WORKER_ENCODER: Any = None
# Keep freed tensor memory in the workers' heaps instead of returning it to the OS after every batch:
# saves ~80% of the page faults (system time was ~20% of a build's CPU time).
_WORKER_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(256 << 20)}


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[None]:
    """Run torch and FAISS with ``n`` threads inside the block (``None``: leave them alone).

    One small query takes ~1 ms single-threaded but can take hundreds of ms when OpenMP threads spin
    against other busy processes, so searches default to one thread.
    """
    if n is None:
        yield
        return
    import faiss
    import torch

    before = torch.get_num_threads(), faiss.omp_get_max_threads()
    torch.set_num_threads(n)
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before[0])
        faiss.omp_set_num_threads(before[1])


def embed_entries(
    entries: Sequence[Entry], encoder: Encoder, *, advance: Callable[[int], None], batch_size: int = BATCH_SIZE
) -> np.ndarray:
    """L2-normalised embeddings of entries (graphs built straight from the arrays, no pymatgen)."""
    from crystalsearch.catalog.faiss_index import normalise

    if not entries:
        return np.zeros((0, encoder.dim), dtype=np.float32)
    store = encoder.graph.store([e.cell() for e in entries])
    return normalise(encoder.embed_store(store, batch_size=batch_size, progress=advance))


def embed_chunk(entries: Sequence[Entry], encoder: Encoder, advance: Callable[[int], None]) -> dict[str, np.ndarray]:
    """What a build saves per chunk: embeddings, structure fingerprints, space group numbers, prototype labels
    and the entry count."""
    from crystalsearch.structure.fingerprint import fingerprints

    embeddings = embed_entries(entries, encoder, advance=advance)
    structure = fingerprints([(e.lattice, e.frac_coords) for e in entries])
    labels = labels_many(e.cell() for e in entries)
    numbers = np.array([lab.number for lab in labels], dtype=np.int16)
    prototypes = np.array([lab.prototype for lab in labels], dtype=np.str_)
    return {"embeddings": embeddings, "structure": structure, "spacegroup": numbers, "prototype": prototypes,
            "n": np.array([len(entries)])}  # fmt: skip


def auto_workers(n_entries: int, encoder: Encoder | None = None) -> int:
    """Worker processes for a build: 2 on CPU for large builds, else 0 extra (in-process)."""
    if n_entries < MIN_ENTRIES_FOR_WORKERS or (encoder is not None and encoder.device.type != "cpu"):
        return 1
    return max(1, min(2, os.cpu_count() or 1))


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PARENT_POLL_S = 1.0


def die_with_parent(parent: int) -> None:
    """End this process when ``parent`` (the process that started it) ends, however it ends.

    Linux: the kernel sends SIGKILL when the parent dies (``prctl(PR_SET_PDEATHSIG)`` through ctypes). Everywhere,
    and for a parent gone before the request: a daemon thread exits once the parent pid is no longer ours.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL_S)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _init_worker(encoder: Encoder, parent: int) -> None:
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the build decides and ends us
    import torch

    global _WORKER_ENCODER
    torch.set_num_threads(1)
    _WORKER_ENCODER = encoder


def _terminate(pool: Any) -> None:
    """Stop a pool's workers now (a running chunk is dropped; finished chunks are saved already)."""
    pool.shutdown(wait=False, cancel_futures=True)
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(OSError, ValueError):
            process.terminate()


@contextlib.contextmanager
def _term_raises() -> Iterator[None]:
    """Inside the block SIGTERM raises SystemExit(143) in the main thread, so that the pool is torn down."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    before = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


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
    cpu = encoder.device.type == "cpu"
    if workers <= 1 or len(jobs) < 2:
        with threads(1 if cpu else None):
            for i, part in jobs:
                on_done(i, embed_chunk(part, encoder, advance))
        return
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    ctx = multiprocessing.get_context("spawn")
    todo = list(jobs)
    saved = {k: os.environ.get(k) for k in _WORKER_MALLOC}
    for k, v in _WORKER_MALLOC.items():
        os.environ.setdefault(k, v)  # read by glibc when the workers start
    try:
        with (
            _term_raises(),
            ProcessPoolExecutor(
                max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(encoder, os.getpid())
            ) as pool,
        ):
            running: dict[Any, tuple[int, Sequence[Entry]]] = {}
            try:
                while todo or running:
                    while todo and len(running) < 2 * workers:
                        i, part = todo.pop(0)
                        running[pool.submit(_work, list(part))] = (i, part)
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        i, part = running.pop(future)
                        try:
                            on_done(i, future.result())
                        except BrokenProcessPool:
                            todo.insert(0, (i, part))
                            raise
                        advance(len(part))
            except BrokenProcessPool:
                todo = [*[(i, p) for i, p in running.values()], *todo]
                raise
            except BaseException:
                _terminate(pool)
                raise
    except BrokenProcessPool:
        # workers could not start (e.g. a script without an ``if __name__ == "__main__":`` guard): go on here
        run_chunks(sorted(todo), encoder, workers=1, on_done=on_done, advance=advance)
    finally:
        for k, old in saved.items():
            if old is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = old
