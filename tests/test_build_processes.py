"""A killed index build leaves no processes: its embedding workers die with it (``kill -9`` and ``kill -TERM``)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


def _build_command(out: Path) -> list[str]:
    """`index build` of 435 real MP structures in chunks of 8 with two embedding workers."""
    return [sys.executable, "-m", "crystalsearch", "index", "build", "--dataset", "melting_temperature",
            "--encoder", "random", "--workers", "2", "--chunk-size", "8", "--out", str(out)]  # fmt: skip


def _parent(pid: int) -> int | None:
    """Parent pid of a live (not zombie) process, None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return None if fields[0] in ("Z", "X") else int(fields[1])


def _children(pid: int) -> set[int]:
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _parent(int(entry.name)) == pid:
            out.add(int(entry.name))
    return out


def _descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        for child in _children(todo.pop()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_build_leaves_no_worker_processes(tmp_path: Path, sig: signal.Signals) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "CRYSTALSEARCH_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen(_build_command(tmp_path / "index"), env=env)
    everything: set[int] = set()
    try:
        workers: set[int] = set()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:  # wait until both workers are embedding
            workers = {p for p in _descendants(proc.pid) if "spawn_main" in _cmdline(p)}
            if len(workers) >= 2:
                break
            time.sleep(0.2)
        assert len(workers) >= 2, "the build did not start its two workers"
        everything = _descendants(proc.pid)
        time.sleep(1.0)  # let the workers take up their chunks
        proc.send_signal(sig)
        proc.wait(timeout=30)
        if sig == signal.SIGTERM:
            assert proc.returncode == 128 + signal.SIGTERM  # the build tore its pool down and exited itself
        deadline = time.monotonic() + 10
        alive = everything
        while alive and time.monotonic() < deadline:
            alive = {p for p in everything if _parent(p) is not None}
            time.sleep(0.1)
        assert not alive, f"processes of the killed build still running: {sorted(alive)}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in everything:  # leave nothing behind, whatever the outcome
            if _parent(pid) is not None:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
