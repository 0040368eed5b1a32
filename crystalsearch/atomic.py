"""Atomic replacement of files and folders: readers see the old or the new version, never a mix."""

from __future__ import annotations

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
