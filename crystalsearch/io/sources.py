"""Expanding user inputs (files, folders, glob patterns, Materials Project ids) into read jobs."""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeAlias

from crystalsearch.errors import InputError

__all__ = ["MP_ID", "Source", "detect_format", "expand_sources"]

PathLike: TypeAlias = "str | os.PathLike[str]"
Format: TypeAlias = Literal["cif", "poscar", "json"]

MP_ID = re.compile(r"(?:mp|mvc)-\d+")
_GLOB_CHARS = re.compile(r"[*?\[]")
_SUFFIXES: dict[str, Format] = {
    ".cif": "cif",
    ".mcif": "cif",
    ".json": "json",
    ".vasp": "poscar",
    ".poscar": "poscar",
}
KNOWN_FORMATS = "*.cif, *.mcif, *.json, *.vasp, POSCAR*/CONTCAR* (optionally .gz)"


@dataclass(frozen=True)
class Source:
    """One thing to read: a file (``path`` and ``fmt``) or a Materials Project id (``mp_id``)."""

    source_id: str
    path: Path | None = None
    fmt: Format | None = None
    gzipped: bool = False
    mp_id: str | None = None


def detect_format(path: Path) -> tuple[Format | None, bool]:
    """(format, gzipped) from a file name; format is None for names crystalsearch does not know."""
    name = path.name
    gzipped = name.lower().endswith(".gz")
    if gzipped:
        name = name[:-3]
    suffix = Path(name).suffix.lower()
    if suffix in _SUFFIXES:
        return _SUFFIXES[suffix], gzipped
    upper = name.upper()
    if "POSCAR" in upper or "CONTCAR" in upper:
        return "poscar", gzipped
    return None, gzipped


def _file_source(path: Path, source_id: str) -> Source:
    fmt, gzipped = detect_format(path)
    return Source(source_id=source_id, path=path, fmt=fmt, gzipped=gzipped)


def _folder_sources(folder: Path, display: str) -> Iterator[Source | InputError]:
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            path = Path(root) / name
            if not name.startswith(".") and detect_format(path)[0] is not None:
                found.append(path)
    if not found:
        yield InputError(display, f"no structure files in this folder (looked for {KNOWN_FORMATS})")
        return
    base = Path(display)
    for path in sorted(found, key=lambda p: p.relative_to(folder).as_posix()):
        yield _file_source(path, str(base / path.relative_to(folder)))


def _one_source(item: str) -> Iterator[Source | InputError]:
    path = Path(item).expanduser()
    if path.is_dir():
        yield from _folder_sources(path, item)
    elif path.exists():
        if not path.is_file():
            yield InputError(item, "not a regular file")
        else:
            yield _file_source(path, item)
    elif _GLOB_CHARS.search(item):
        matches = sorted(glob.glob(os.path.expanduser(item), recursive=True))
        if not matches:
            yield InputError(item, "no files match this pattern")
        for match in matches:
            if Path(match).is_dir():
                yield from _folder_sources(Path(match), match)
            elif Path(match).is_file():
                yield _file_source(Path(match), match)
    elif MP_ID.fullmatch(item.strip()):
        yield Source(source_id=item.strip(), mp_id=item.strip())
    else:
        yield InputError(item, "file not found")


def expand_sources(paths: PathLike | Iterable[PathLike]) -> Iterator[Source | InputError]:
    """Expand inputs in order; problems with an input are yielded as InputError, not raised."""
    items: Iterable[PathLike] = [paths] if isinstance(paths, (str, os.PathLike)) else paths
    for item in items:
        text = os.fspath(item)
        if not text.strip():
            yield InputError(repr(text), "empty path")
            continue
        yield from _one_source(text)
