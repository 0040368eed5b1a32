"""Sharded index builds (``torchrun``, gloo on CPU): ranks embed disjoint chunks, rank 0 assembles the same index
a one-process build writes; finished chunks of a killed run are reused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from crystalsearch.catalog import embedding
from crystalsearch.catalog.build import build_index, build_plan, chunk_path, partial_dir, prepare, save_chunk
from crystalsearch.catalog.manifest import read_manifest
from crystalsearch.catalog.shard import build_sharded, embed_share
from crystalsearch.data.entries import Entry, entries_from_datasets
from crystalsearch.identity.catalog import Catalog
from crystalsearch.model.embed import Encoder

REPO = Path(__file__).resolve().parents[1]
DATASET = "melting_temperature"  # 435 real MP structures: 7 chunks of 64
CHUNK = 64


@pytest.fixture(scope="module", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["CRYSTALSEARCH_CACHE"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return Encoder.random(seed=0)


@pytest.fixture(scope="module")
def entries() -> list[Entry]:
    return entries_from_datasets(DATASET)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, entries: list[Entry], encoder: Encoder) -> Path:
    """The one-process build of the same entries."""
    out = tmp_path_factory.mktemp("ref") / "index"
    build_index(entries, encoder=encoder, out=out, progress=False, chunk_size=CHUNK)
    return out


def assert_same_index(a: Path, b: Path) -> None:
    """Same rows in the same order (every metadata column), same vectors, same FAISS factory and count."""
    ma, mb = read_manifest(a), read_manifest(b)
    assert (ma.count, ma.faiss_factory, ma.encoder, ma.sources) == (mb.count, mb.faiss_factory, mb.encoder, mb.sources)
    with Catalog.open(a) as ca, Catalog.open(b) as cb:
        rows = list(range(len(ca)))
        assert len(ca) == len(cb) == ma.count
        assert ca.db.materials(rows) == cb.db.materials(rows)
        np.testing.assert_allclose(ca.vectors.vectors(), cb.vectors.vectors(), atol=1e-6)


def test_ranks_embed_disjoint_shares_that_build_index_reuses(
    tmp_path: Path, entries: list[Entry], encoder: Encoder, reference: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the ranks of a 2-process run do before the barrier, one after the other in this process: every
    chunk is embedded exactly once, by the rank ``i % 2`` names, and the assembly embeds nothing more."""
    out = tmp_path / "index"
    work = partial_dir(out)
    work.mkdir()
    prepare(work, build_plan(entries, encoder, CHUNK), resume=True)
    calls: list[int] = []
    real = embedding.embed_chunk

    def counted(part, enc, advance):  # type: ignore[no-untyped-def]
        calls.append(len(part))
        return real(part, enc, advance)

    monkeypatch.setattr(embedding, "embed_chunk", counted)
    stats = [embed_share(entries, encoder=encoder, work=work, rank=r, world_size=2, chunk_size=CHUNK) for r in (0, 1)]
    assert [(s.chunks, s.embedded, s.reused) for s in stats] == [(4, 4, 0), (3, 3, 0)]
    assert sum(calls) == len(entries) and stats[1].structures_embedded == 3 * CHUNK
    assert sorted(p.name for p in work.glob("chunk_*.npz")) == [f"chunk_{i:05d}.npz" for i in range(7)]
    again = embed_share(entries, encoder=encoder, work=work, rank=1, world_size=2, chunk_size=CHUNK)
    assert (again.embedded, again.reused) == (0, 3)
    calls.clear()
    build_index(entries, encoder=encoder, out=out, progress=False, chunk_size=CHUNK)
    assert calls == [] and not work.exists()
    assert_same_index(out, reference)


def test_one_process_sharded_build_is_build_index(tmp_path: Path, entries: list[Entry], encoder: Encoder,
                                                  reference: Path) -> None:  # fmt: skip
    result = build_sharded(entries[:100], encoder=encoder, out=tmp_path / "one", progress=False, chunk_size=CHUNK)
    assert result.manifest is not None and result.manifest.count == 100 and result.world_size == 1
    assert [(s.rank, s.chunks, s.embedded, s.reused) for s in result.shards] == [(0, 2, 2, 0)]
    with Catalog.open(tmp_path / "one") as one, Catalog.open(reference) as ref:
        np.testing.assert_allclose(one.vectors.vectors(), ref.vectors.vectors()[:100], atol=1e-6)


def torchrun_build(out: Path, cwd: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
        "-m", "crystalsearch", "index", "build", "--dataset", DATASET, "--encoder", "random:0",
        "--chunk-size", str(CHUNK), "--out", str(out), *extra,
    ]  # fmt: skip
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_torchrun_two_processes_build_the_one_process_index(
    tmp_path: Path, entries: list[Entry], encoder: Encoder, reference: Path
) -> None:
    """``torchrun --nproc_per_node 2 -m crystalsearch index build`` (gloo): rank 1 was killed in an earlier run
    after finishing chunk 1, which is reused; only rank 0 prints; the index is the one-process index."""
    out = tmp_path / "index"
    work = partial_dir(out)
    work.mkdir()
    prepare(work, build_plan(entries, encoder, CHUNK), resume=True)
    save_chunk(chunk_path(work, 1), embedding.embed_chunk(entries[CHUNK : 2 * CHUNK], encoder, lambda n: None))
    proc = torchrun_build(out, tmp_path, "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    decoder = json.JSONDecoder()
    summary, end = decoder.raw_decode(proc.stdout.lstrip())
    assert proc.stdout.lstrip()[end:].strip() == "", "only rank 0 prints"
    assert summary["command"] == "index build" and summary["count"] == len(entries)
    ranks = [(r["rank"], r["chunks"], r["embedded"], r["reused"]) for r in summary["ranks"]]
    assert ranks == [(0, 4, 4, 0), (1, 3, 2, 1)]
    assert not work.exists()
    assert_same_index(out, reference)


def descendants(pid: int) -> list[int]:
    """Process ids below ``pid`` (torchrun starts its workers in POSIX sessions of their own)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in children:
            found += [child, *descendants(child)]
    return found


@pytest.mark.slow
def test_sigkilled_torchrun_build_resumes_from_every_ranks_chunks(tmp_path: Path, reference: Path) -> None:
    """Both ranks and torchrun killed with SIGKILL mid-build; the next run reuses every finished chunk (of either
    rank) and gives the one-process index."""
    import signal
    import time

    script = tmp_path / "build.py"
    script.write_text(
        "import json, sys, time\n"
        "from pathlib import Path\n"
        "from crystalsearch.model.embed import Encoder\n"
        "from crystalsearch.data.entries import entries_from_datasets\n"
        "from crystalsearch.catalog.shard import build_sharded\n"
        f"r = build_sharded(entries_from_datasets({DATASET!r}), encoder=Encoder.random(seed=0), out=Path(sys.argv[1]),"
        f" progress=lambda n: time.sleep(float(sys.argv[2])), chunk_size={CHUNK})\n"
        "if r.manifest is not None:\n"
        "    print(json.dumps([[s.rank, s.embedded, s.reused] for s in r.shards]))\n"
    )
    out, work = tmp_path / "index", tmp_path / "index.partial"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone", str(script),
           str(out)]  # fmt: skip
    proc = subprocess.Popen([*cmd, "2.0"], env=env, cwd=tmp_path)  # rank 0 sleeps 2 s a chunk, rank 1 does not
    deadline = time.monotonic() + 240
    while len(list(work.glob("chunk_*.npz"))) < 4 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    for pid in [*descendants(proc.pid), proc.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()
    time.sleep(0.5)
    done = sorted(int(p.stem.split("_")[1]) for p in work.glob("chunk_*.npz"))
    assert len(done) >= 4 and len(done) < 7 and not out.exists(), done
    rerun = subprocess.run([*cmd, "0"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    shards = json.loads(rerun.stdout.strip().splitlines()[-1])
    reused = {r: sum(1 for i in done if i % 2 == r) for r in (0, 1)}
    assert shards == [[0, 4 - reused[0], reused[0]], [1, 3 - reused[1], reused[1]]]
    assert_same_index(out, reference)
