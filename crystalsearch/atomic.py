"""File helpers shared by checkpoints and indexes: atomic folder replacement (readers see the old or the
new version, never a mix) and streaming SHA-256 checksums."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path


def swap_in(tmp: Path, dest: Path) -> None:
    """Replace folder ``dest`` by the finished folder ``tmp`` (a sibling on the same filesystem)."""
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dest, old)
        os.replace(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, dest)


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
