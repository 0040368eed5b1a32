"""Every file and folder the package writes goes through here.

* :func:`atomic_write` (and ``_bytes``/``_text``/``_json``): a hidden temporary sibling, written, fsynced,
  given the umask's mode, then ``os.replace`` — readers see the old file or the new one, never a torn one.
* :func:`staged_dir` / :func:`swap_in`: a folder is built beside its destination, then exchanged with
  it in one step. On Linux the exchange is ``renameat2(RENAME_EXCHANGE)`` (readers see the old or the
  new folder, never no folder); where that is not available the destination is a symbolic link to a
  versioned sibling (``.<name>.v<token>``) and the link is replaced atomically.
* :func:`append_jsonl` / :func:`read_jsonl` / :func:`write_jsonl`: JSON-lines logs (fsynced appends; a
  reader drops only a torn last line).
* :func:`locked`: an advisory ``flock`` (shared or exclusive) on a folder's lock file.
* :func:`file_sha256`: streaming checksums of checkpoints and indexes.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from crystalsearch.errors import CrystalSearchError, InputError

LOCK_FILE = ".lock"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_UNSUPPORTED = {errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)}


class LockTimeout(CrystalSearchError):
    """Another process held a lock for longer than the caller was willing to wait."""


def file_mode() -> int:
    """``0o666`` minus the process umask (what ``open()`` would give a new file)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: Path, write: Callable[[BinaryIO], object], *, mode: int | None = None) -> None:
    """Write ``path`` through ``write(fh)`` into a hidden temporary sibling, fsync, then ``os.replace``.

    ``mode`` defaults to :func:`file_mode` (``mkstemp`` alone would leave the file private, 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        os.fchmod(fd, file_mode() if mode is None else mode)
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda fh: fh.write(text.encode()))


def atomic_write_json(path: Path, obj: Any, *, indent: int | None = 2, default: Any = None) -> None:
    """``obj`` as JSON (one trailing newline), written atomically."""
    atomic_write_text(path, json.dumps(obj, indent=indent, default=default) + "\n")


def write_jsonl(path: Path, rows: Iterable[Any]) -> None:
    """A whole JSON-lines file, written atomically."""
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def append_jsonl(path: Path, row: Any, *, default: Any = None) -> None:
    """Append one JSON line and fsync it (a finished run survives an interruption right after)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fh.write(json.dumps(row, default=default) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_jsonl(path: Path, *, on_torn: Callable[[int], None] | None = None) -> list[Any]:
    """Rows of a JSON-lines file. Only the last line may be torn (an append cut short or garbled: not JSON, or
    not UTF-8 text), and only it is dropped (``on_torn`` is told its line number); an unreadable line anywhere
    else is damage, reported as :class:`InputError`."""
    return [row for _, row in read_jsonl_numbered(path, on_torn=on_torn)]


def read_jsonl_numbered(path: Path, *, on_torn: Callable[[int], None] | None = None) -> list[tuple[int, Any]]:
    """:func:`read_jsonl` with each row's line number (1-based)."""
    if not path.is_file():
        return []
    lines = path.read_bytes().split(b"\n")
    last = max((n for n, line in enumerate(lines, 1) if line.strip()), default=0)
    rows = []
    for n, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            rows.append((n, json.loads(raw.decode("utf-8"))))
        except UnicodeDecodeError:
            if n == last:
                _torn(on_torn, n)
                break
            raise InputError(str(path), f"line {n} is not UTF-8 text") from None
        except ValueError:
            if n == last:
                _torn(on_torn, n)
                break
            raise InputError(str(path), f"line {n} is not JSON") from None
    return rows


def _torn(on_torn: Callable[[int], None] | None, n: int) -> None:
    if on_torn is not None:
        on_torn(n)


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# -- folders ------------------------------------------------------------------------------------------
def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one step (Linux ``renameat2``); False where that is not supported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False  # libc before glibc 2.28
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in _UNSUPPORTED:
        return False  # e.g. a filesystem without RENAME_EXCHANGE
    raise OSError(err, os.strerror(err), str(b))


def _discard(path: Path) -> None:
    """Remove a replaced version: a folder, or a version link and the folder it points to."""
    if path.is_symlink():
        target = path.parent / os.readlink(path)
        path.unlink()
        shutil.rmtree(target, ignore_errors=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


SWAP_GRACE_S = 30.0  # how long a replaced version stays for readers that resolved it (link fallback)


def _swap_by_link(tmp: Path, dest: Path) -> None:
    """Fallback: ``dest`` is a link to ``.<name>.v<token>``; the new version gets its own folder and the
    link is replaced with ``os.replace`` (atomic). A plain folder at ``dest`` is first moved into a
    versioned folder (the only moment readers can miss it, once per destination). A replaced version is
    kept for :data:`SWAP_GRACE_S` seconds after it was replaced (and the one just replaced always until the
    next swap): a reader whose ``open`` resolved the old link an instant before the switch, then was held
    off the CPU across further swaps, still finds its files."""
    version = dest.with_name(f".{dest.name}.v{uuid.uuid4().hex[:12]}")
    os.replace(tmp, version)
    link = dest.with_name(f".{dest.name}.link.partial")
    link.unlink(missing_ok=True)
    os.symlink(version.name, link)
    old: Path | None = None
    if dest.is_symlink():
        old = dest.parent / os.readlink(dest)
    elif dest.exists():
        old = dest.with_name(f".{dest.name}.v{uuid.uuid4().hex[:12]}")
        os.replace(dest, old)
    os.replace(link, dest)
    if old is not None:
        os.utime(old)  # when it was replaced: the start of its grace period
    _discard_versions(dest, keep={version.name, *((old.name,) if old is not None else ())}, grace=SWAP_GRACE_S)


def _discard_versions(dest: Path, *, keep: set[str], grace: float = 0.0) -> None:
    """Remove the version folders of ``dest``'s link fallback, except those named in ``keep`` and those
    replaced less than ``grace`` seconds ago."""
    now = time.time()
    for stale in dest.parent.glob(f".{dest.name}.v*"):
        if stale.name in keep:
            continue
        try:
            recent = now - stale.stat().st_mtime < grace
        except FileNotFoundError:
            continue
        if not recent:
            shutil.rmtree(stale, ignore_errors=True)


def swap_in(tmp: Path, dest: Path) -> None:
    """Replace folder ``dest`` by the finished folder ``tmp`` (a sibling on the same filesystem).

    Readers looking at ``dest`` meanwhile see the old version or the new one, never nothing.
    """
    if not dest.exists() and not dest.is_symlink():
        try:
            os.rename(tmp, dest)  # fails if dest appeared meanwhile; then exchange below
            return
        except OSError:
            if not dest.exists():
                raise
    if _exchange(tmp, dest):
        _discard(tmp)  # now holds the old version
        _discard_versions(dest, keep=set())  # versions kept by an earlier link fallback
    else:
        _swap_by_link(tmp, dest)


@contextlib.contextmanager
def staged_dir(dest: Path) -> Iterator[Path]:
    """A fresh temporary sibling of ``dest`` to fill; swapped in for ``dest`` when the block succeeds."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".partial"))
    try:
        yield tmp
        swap_in(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# -- locking ------------------------------------------------------------------------------------------
@contextlib.contextmanager
def locked(
    folder: Path,
    *,
    exclusive: bool = True,
    timeout: float | None = None,
    busy: str = "busy in another process",
    error: Callable[[str], Exception] = LockTimeout,
) -> Iterator[None]:
    """Hold ``folder/.lock`` (shared or exclusive ``flock``); wait at most ``timeout`` s (None: forever).

    Raises ``error("<folder>: <busy>")`` (:class:`LockTimeout` by default) when the wait runs out. A
    folder where no lock file can be created (read-only, e.g. inside an installed package) is not
    locked: nobody writes there.
    """
    folder = Path(folder)
    try:
        fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield
        return
    mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(fd, mode | (0 if deadline is None else fcntl.LOCK_NB))
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() > deadline:
                    raise error(f"{folder}: {busy}") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)
