"""What goes into an index: material ids for structure files, and the entries of a build or an ``add``.

Structures from files get ids from their file names: the stem (``a/x.cif`` -> ``x``), with ``#block`` for the
blocks of a multi-block CIF and ``#N`` for the items of a JSON list; ``ids`` name them explicitly. An id must be
printable (no newline, tab or other control character, which would split a row of the tab-separated output),
without leading or trailing spaces, at most :data:`MAX_ID_LENGTH` characters, and new: an id already in the index,
used twice in one batch, or differing from one of those only in case (``MP-149`` next to ``mp-149``) is refused
with a one-line error while the other structures still go in.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from crystalsearch.errors import InputError

if TYPE_CHECKING:
    from pymatgen.core import Structure

    from crystalsearch.catalog.build import AddReport
    from crystalsearch.data.entries import Entry
    from crystalsearch.data.materials_project import MPQuery

__all__ = ["MAX_ID_LENGTH", "AddOutcome", "Gathered", "add_files", "gather_entries", "id_problem", "material_id",
           "name_structures"]  # fmt: skip

MAX_ID_LENGTH = 200
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})  # controls, format, surrogates, separators


def material_id(source_id: str) -> str:
    """The id a structure file gets in an index: its file stem (plus ``#block``/``#N``); MP ids unchanged."""
    path, sep, part = source_id.partition("#")
    name = Path(path).name
    for suffix in (".gz",):
        name = name.removesuffix(suffix)
    stem = Path(name).stem if "." in name else name
    return stem + (f"#{part}" if sep else "")


def id_problem(mid: str) -> str | None:
    """Why ``mid`` cannot be a material id (None when it can)."""
    if not mid.strip():
        return "empty id"
    bad = next((c for c in mid if unicodedata.category(c) in _UNPRINTABLE), None)
    if bad is not None:
        return f"id {mid!r} contains the control character {bad!r}; ids are printable text on one line"
    if mid != mid.strip():
        return f"id {mid!r} has leading or trailing spaces"
    if len(mid) > MAX_ID_LENGTH:
        return f"id of {len(mid)} characters; at most {MAX_ID_LENGTH}"
    return None


def name_structures(
    items: Iterable[tuple[str, Structure]], *, ids: list[str] | None, taken: Iterable[str] | None = None
) -> tuple[list[tuple[str, Structure]], list[InputError]]:
    """(id, structure) pairs named by file stem or ``ids``; malformed ids, ids used twice and ids in ``taken``
    (compared without regard to case) become errors."""
    items = list(items)
    if ids and len(ids) != len(items):
        raise InputError("--id", f"{len(ids)} id(s) given for {len(items)} structure(s); give one --id per structure")
    existing = {t.casefold(): t for t in taken or ()}
    named: list[tuple[str, Structure]] = []
    errors: list[InputError] = []
    seen: dict[str, tuple[str, str]] = {}
    for i, (source_id, structure) in enumerate(items):
        mid = ids[i] if ids else material_id(source_id)
        problem = id_problem(mid)
        fold = mid.casefold()
        if problem is None and fold in seen:
            other, used = seen[fold]
            case = "" if used == mid else f" (as {used!r}; ids must differ in more than case)"
            problem = f"id {mid!r} is already used by {other} in this batch{case}; rename the file or name it with --id"
        elif problem is None and fold in existing:
            have = existing[fold]
            case = "" if have == mid else f" as {have!r} (ids must differ in more than case)"
            problem = f"id {mid!r} is already in the index{case}; name it with --id or leave it out"
        if problem is not None:
            errors.append(InputError(source_id, problem))
        else:
            seen[fold] = (source_id, mid)
            named.append((mid, structure))
    return named, errors


@dataclass
class Gathered:
    """The entries of a build and what could not be used (one error each)."""

    entries: list[Entry] = field(default_factory=list)
    failed: list[InputError] = field(default_factory=list)
    skipped_disordered: int = 0

    @property
    def exit_code(self) -> int:
        """2 if any input failed, else 0 (the CLI's exit status)."""
        return 2 if self.failed else 0


def gather_entries(
    paths: list[str] | None, *, dataset: str | None = None, ids: list[str] | None = None, mp: MPQuery | None = None
) -> Gathered:
    """Entries of a build: shipped ``dataset`` (``"all"`` when nothing else is given), structure ``paths`` (named
    by :func:`name_structures`) and a Materials Project download (``mp``)."""
    from crystalsearch.data.entries import entries_from_datasets, entries_from_structures
    from crystalsearch.io import ReadReport, read_structures

    out = Gathered()
    if dataset is not None or (not paths and mp is None):
        out.entries += entries_from_datasets(dataset or "all")
    if paths:
        report = ReadReport()
        taken = [e.material_id for e in out.entries]
        named, refused = name_structures(read_structures(paths, report=report), ids=ids or None, taken=taken)
        out.failed += [*report.failed, *refused]
        out.entries += entries_from_structures(named)
    if mp is not None:
        from crystalsearch.data.materials_project import fetch_mp_entries

        download = fetch_mp_entries(mp)
        out.entries += download.entries
        out.skipped_disordered = download.skipped_disordered
    return out


@dataclass(frozen=True)
class AddOutcome:
    """Outcome of :func:`add_files`: the add itself (None when nothing could be added), the inputs that failed
    (unreadable files and refused ids) and, among them, those refused for their ids."""

    report: AddReport | None
    failed: list[InputError]
    refused: list[InputError]

    @property
    def exit_code(self) -> int:
        return 2 if self.failed else 0


def add_files(paths: list[str], *, index: Path, ids: list[str] | None = None) -> AddOutcome:
    """Read structure files and add them to the index folder ``index`` (ids checked as in :func:`name_structures`
    against the index's ids). The index is verified first: a damaged one is refused in one line."""
    from crystalsearch.catalog.build import add_to_index
    from crystalsearch.catalog.manifest import DB_FILE, read_manifest, verify_files
    from crystalsearch.catalog.reader import MetadataReader
    from crystalsearch.data.entries import entries_from_structures
    from crystalsearch.io import ReadReport, read_structures

    index = Path(index)
    verify_files(index, read_manifest(index))
    report = ReadReport()
    items = list(read_structures(paths, report=report))
    reader = MetadataReader(index / DB_FILE)
    try:
        taken = reader.ids_like(ids or [material_id(sid) for sid, _ in items])
    finally:
        reader.close()
    named, refused = name_structures(items, ids=ids, taken=taken)
    added = add_to_index(entries_from_structures(named), index=index) if named else None
    return AddOutcome(added, [*report.failed, *refused], refused)
