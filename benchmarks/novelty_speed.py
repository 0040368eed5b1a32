"""`novelty` speed against the time pymatgen takes to just read the same files, in the same run.

Usage::

    nice -n 10 python benchmarks/novelty_speed.py --candidates 1000             # vs the default index
    nice -n 10 python benchmarks/novelty_speed.py --candidates 10000 --journal  # resumable, RSS reported
    python benchmarks/novelty_speed.py --folder my_cifs/ --index my_index/

Candidates (unless ``--folder``): CIF files written by pymatgen's ``CifWriter`` from a seeded sample of the
MP 2025 release (at most 40 sites): half disguised copies of catalog materials (:func:`novelty.disguise`:
rotated, re-celled, moved by 0.01-0.03 Å), a quarter with one element replaced by another of its group,
a quarter unchanged. Timed, in this order: (1) pymatgen reading every file (``Structure.from_file``, one
process: the floor any tool that reads CIFs with pymatgen pays); (2) ``check_novelty`` with ``--workers``
processes (wall clock, reading included; the index opened once before, as a running tool has it). Peak
resident memory of this process and of the largest worker is reported, and the peak of the sum of the
proportional set sizes of all of them (shared pages counted once: the memory the run takes from the machine).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def write_candidates(n: int, folder: Path, seed: int) -> None:
    import novelty as bench  # benchmarks/novelty.py, beside this script
    from pymatgen.io.cif import CifWriter

    from crystalsearch.data import datasets

    records = [r for r in datasets.load("mp2025").records if r.num_sites <= 40]
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i, r in enumerate(random.Random(seed).sample(records, n)):
        s = r.structure
        if i % 4 in (0, 1):
            s = bench.disguise(s, rng)
        elif i % 4 == 2:
            s = bench.substitute(s, rng) or s
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            CifWriter(s).write_file(folder / f"c{i:06d}_{r.material_id}.cif")


class MemorySampler:
    """Peak memory of this process and its children, sampled every ``every`` seconds in a thread: the sum of
    their proportional set sizes (PSS: pages shared between the forked workers counted once) and the largest
    single resident set size."""

    def __init__(self, every: float = 0.5) -> None:
        import threading

        self.every, self.peak_pss, self.peak_rss = every, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            pss, rss = 0, 0
            for pid in _family(os.getpid()):
                fields = _rollup(pid)
                pss += fields.get("Pss", 0)
                rss = max(rss, fields.get("Rss", 0))
            self.peak_pss, self.peak_rss = max(self.peak_pss, pss), max(self.peak_rss, rss)


def _family(pid: int) -> list[int]:
    """``pid`` and its descendants (from /proc)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        todo += [int(c) for c in children]
    return out


def _rollup(pid: int) -> dict[str, int]:
    """KiB fields of /proc/PID/smaps_rollup (empty where unreadable)."""
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return {}
    out = {}
    for line in lines[1:]:
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            out[parts[0].rstrip(":")] = int(parts[1])
    return out


def read_all(files: list[Path]) -> float:
    from pymatgen.core import Structure

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for f in files:
            Structure.from_file(f)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--candidates", type=int, default=1000)
    ap.add_argument("--folder", type=Path, default=None, help="time these files instead of generated ones")
    ap.add_argument("--index", default="default")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--journal", action="store_true", help="write the resumable journal (as users would)")
    ap.add_argument("--json", type=Path, default=None, metavar="FILE")
    args = ap.parse_args()
    from crystalsearch.identity.catalog import Catalog
    from crystalsearch.identity.novelty import check_novelty

    tmp = Path(tempfile.mkdtemp(prefix="novelty-speed-"))
    try:
        folder = args.folder or tmp / "candidates"
        if args.folder is None:
            write_candidates(args.candidates, folder, args.seed)
        files = sorted(folder.rglob("*.cif"))
        with Catalog.open(args.index, progress=False) as catalog:  # built/verified before the clock starts
            index, materials = str(catalog.path), len(catalog)
        t_read = read_all(files)
        journal = tmp / "novelty.jsonl" if args.journal else None
        t0 = time.perf_counter()
        with MemorySampler() as memory:
            report = check_novelty([str(folder)], index=index, workers=args.workers, journal=journal)
        t_novelty = time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    kib = 1024
    rows = {"files": len(files), "index": index, "index_materials": materials, "workers": args.workers,
            "pymatgen_read_s": t_read, "novelty_s": t_novelty, "ratio": t_novelty / t_read,
            "per_candidate_ms": 1000 * t_novelty / max(len(files), 1), "summary": report.summary(),
            "peak_rss_main_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / kib,
            "peak_rss_worker_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / kib,
            "peak_pss_total_mib": memory.peak_pss / kib, "peak_rss_largest_mib": memory.peak_rss / kib,
            "cpus": os.cpu_count(), "load_average": os.getloadavg()[0]}  # fmt: skip
    print(f"{len(files)} CIFs vs {materials} materials ({index}), {args.workers} workers on {os.cpu_count()} CPUs "
          f"(load average {rows['load_average']:.1f})")  # fmt: skip
    print(f"pymatgen reading them, 1 process: {t_read:.1f} s; novelty: {t_novelty:.1f} s; ratio {rows['ratio']:.2f}x; "
          f"{rows['per_candidate_ms']:.1f} ms per candidate")  # fmt: skip
    print(f"peak RSS: main {rows['peak_rss_main_mib']:.0f} MiB, largest worker {rows['peak_rss_worker_mib']:.0f} MiB; "
          f"peak total PSS (main and workers, shared pages once) {rows['peak_pss_total_mib']:.0f} MiB")  # fmt: skip
    print(report.summary())
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
