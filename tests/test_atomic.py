"""The one atomic writer, folder swaps that readers never see missing, locks and JSON-lines logs."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

from crystalsearch import atomic
from crystalsearch.atomic import (
    LockTimeout,
    append_jsonl,
    atomic_write,
    atomic_write_text,
    locked,
    read_jsonl,
    staged_dir,
    swap_in,
)
from crystalsearch.errors import InputError


def _version(folder: Path, text: str) -> Path:
    folder.mkdir()
    (folder / "version.txt").write_text(text)
    return folder


def _swap_under_reader(tmp_path: Path, swaps: int) -> tuple[list[str], set[str]]:
    """Swap ``dest`` ``swaps`` times while a thread reads ``dest/version.txt`` in a loop."""
    dest = tmp_path / "index"
    swap_in(_version(tmp_path / ".index.a", "v0"), dest)  # first install
    swap_in(_version(tmp_path / ".index.b", "v0"), dest)  # (without renameat2: the folder becomes a link, once)
    missing: list[str] = []
    seen: set[str] = set()
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                seen.add((dest / "version.txt").read_text())
            except (FileNotFoundError, NotADirectoryError) as exc:
                missing.append(type(exc).__name__)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(1, swaps + 1):
            swap_in(_version(tmp_path / f".index.{i}", f"v{i}"), dest)
    finally:
        stop.set()
        thread.join()
    assert (dest / "version.txt").read_text() == f"v{swaps}"
    return missing, seen


def test_swap_is_never_seen_missing(tmp_path: Path) -> None:
    missing, seen = _swap_under_reader(tmp_path, 300)
    assert missing == [] and len(seen) > 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]  # old versions removed


def test_swap_fallback_versioned_link(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without renameat2 the destination is a link to a versioned folder, replaced atomically."""
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    missing, seen = _swap_under_reader(tmp_path, 150)
    assert missing == [] and len(seen) > 1
    assert (tmp_path / "index").is_symlink()
    versions = [p for p in tmp_path.iterdir() if p.name.startswith(".index.v")]
    assert len(versions) > 2  # versions replaced within the grace period stay for in-flight readers
    monkeypatch.setattr(atomic, "SWAP_GRACE_S", 0.0)
    swap_in(_version(tmp_path / ".index.last", "last"), tmp_path / "index")
    versions = [p for p in tmp_path.iterdir() if p.name.startswith(".index.v")]
    assert len(versions) == 2  # past the grace: the current version and the one it just replaced


def test_swap_after_fallback_with_exchange(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as m:
        m.setattr(atomic, "_exchange", lambda a, b: False)
        swap_in(_version(tmp_path / "a", "1"), tmp_path / "d")
        swap_in(_version(tmp_path / "b", "2"), tmp_path / "d")
    swap_in(_version(tmp_path / "c", "3"), tmp_path / "d")
    assert (tmp_path / "d" / "version.txt").read_text() == "3"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # the link and its version folder are gone


def test_staged_dir_swaps_on_success_and_cleans_up_on_error(tmp_path: Path) -> None:
    with staged_dir(tmp_path / "out") as tmp:
        (tmp / "f").write_text("x")
    assert (tmp_path / "out" / "f").read_text() == "x"
    with pytest.raises(RuntimeError), staged_dir(tmp_path / "out") as tmp:
        (tmp / "f").write_text("half")
        raise RuntimeError("killed")
    assert (tmp_path / "out" / "f").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_atomic_write_mode_and_no_leftovers(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "hello")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").read_text() == "hello"
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644  # not mkstemp's private 0600

    def fail(fh: object) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(tmp_path / "a.txt", fail)
    assert (tmp_path / "a.txt").read_text() == "hello"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_read_jsonl_drops_only_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    for i in range(3):
        append_jsonl(path, {"epoch": i})
    with open(path, "a") as fh:
        fh.write('{"epoch": 3, "lo')  # an append cut short
    assert read_jsonl(path) == [{"epoch": 0}, {"epoch": 1}, {"epoch": 2}]
    path.write_text('{"epoch": 0}\nnot json\n{"epoch": 2}\n')
    with pytest.raises(InputError, match="line 2 is not JSON"):
        read_jsonl(path)
    assert read_jsonl(tmp_path / "none.jsonl") == []


def test_locked_shared_exclusive_and_timeout(tmp_path: Path) -> None:
    with locked(tmp_path, exclusive=False), locked(tmp_path, exclusive=False, timeout=0.1):
        pass  # two readers at once
    with locked(tmp_path, exclusive=True):
        fd = os.open(tmp_path / atomic.LOCK_FILE, os.O_RDWR)
        try:
            import fcntl

            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    ready, release = threading.Event(), threading.Event()

    def holder() -> None:
        with locked(tmp_path, exclusive=True):
            ready.set()
            release.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    ready.wait(5)
    try:
        with pytest.raises(LockTimeout, match="busy"), locked(tmp_path, exclusive=False, timeout=0.1):
            pass
        with pytest.raises(InputError), locked(tmp_path, timeout=0.0, error=lambda m: InputError("x", m)):
            pass
    finally:
        release.set()
        thread.join()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="renameat2 is Linux-only")
def test_exchange_swaps_two_folders_in_one_step(tmp_path: Path) -> None:
    a, b = _version(tmp_path / "a", "A"), _version(tmp_path / "b", "B")
    if not atomic._exchange(a, b):
        pytest.skip("this filesystem has no RENAME_EXCHANGE (the versioned-link fallback is tested above)")
    assert (a / "version.txt").read_text() == "B" and (b / "version.txt").read_text() == "A"
    swap_in(_version(tmp_path / "c", "C"), b)
    assert not b.is_symlink() and (b / "version.txt").read_text() == "C"  # exchanged, not linked
    with pytest.raises(FileNotFoundError):
        atomic._exchange(tmp_path / "missing", b)  # real errors are raised, not taken for "unsupported"
