"""Reading crystal structures from files, folders, glob patterns and Materials Project ids.

Formats (by file name; ``.gz`` compressed files are read transparently):

* CIF (``*.cif``, ``*.mcif``): one structure per data block; ids ``file.cif#blockname`` when a file has
  several structure blocks, else ``file.cif``.
* POSCAR/CONTCAR (``*.vasp``, ``*.poscar``, names containing ``POSCAR`` or ``CONTCAR``).
* pymatgen Structure JSON (``*.json``): ``Structure.as_dict()`` output (or a dict holding it under
  ``"structure"``), or a list of them; ids ``file.json#0``, ``file.json#1``... for a list.
* A file given explicitly with another name is sniffed: JSON if it starts with ``{``/``[``, CIF if it has
  a ``data_`` line.

Every structure passes :func:`crystalsearch.io.checks.check_structure`. Parsing runs with pymatgen's
warnings silenced and, in the main thread, under a ``PARSE_TIME_LIMIT_S`` alarm as a last guard
against parser hangs.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import json
import signal
import threading
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crystalsearch.errors import InputError
from crystalsearch.io.checks import check_structure, max_sites_limit
from crystalsearch.io.cif import iter_cif_blocks, one_line
from crystalsearch.io.sources import KNOWN_FORMATS, PathLike, Source, expand_sources

if TYPE_CHECKING:
    from pymatgen.core import Structure

__all__ = ["MAX_FILE_BYTES", "PARSE_TIME_LIMIT_S", "ReadReport", "read_items", "read_structure", "read_structures"]

MAX_FILE_BYTES = 256 * 1024 * 1024
PARSE_TIME_LIMIT_S = 20.0
_MP_DATASETS = ("mp_structures", "mp_elasticity")


@dataclass
class ReadReport:
    """Outcome of a batch read: ``ok`` structures yielded, ``failed`` inputs (one InputError each)."""

    ok: int = 0
    failed: list[InputError] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """2 if any input failed, else 0 (the CLI's exit status)."""
        return 2 if self.failed else 0


class _ParseTimeout(BaseException):
    """Raised by the alarm handler; a BaseException so that parser ``except Exception`` can't eat it."""


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Interrupt the body after ``seconds`` (SIGALRM; only in the main thread and if the timer is free)."""
    usable = (
        hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, signal.SIG_IGN, None)
        and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    )
    if not usable:
        yield
        return

    def _raise(signum: int, frame: Any) -> None:
        raise _ParseTimeout

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0.0)
        signal.signal(signal.SIGALRM, previous)


def _read_text(source: Source) -> str:
    assert source.path is not None  # noqa: S101 - an invariant that narrows the type, not an input check
    sid = source.source_id
    try:
        size = source.path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InputError(sid, f"file too large ({size / 2**20:.0f} MiB > {MAX_FILE_BYTES // 2**20} MiB)")
        data = source.path.read_bytes()
    except OSError as exc:
        raise InputError(sid, f"cannot read file: {exc.strerror or one_line(exc)}") from None
    if source.gzipped:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, ValueError) as exc:
            raise InputError(sid, f"corrupt gzip file: {one_line(exc)}") from None
    if not data.strip():
        raise InputError(sid, "empty file")
    if b"\x00" in data[:65536]:
        raise InputError(sid, "binary file, not a text structure file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        sample = data[:65536]
        odd = sum(1 for byte in sample if byte < 9 or 13 < byte < 32 or byte == 127)
        if odd > 0.01 * len(sample):
            raise InputError(sid, "binary file, not a text structure file") from None
        return data.decode("latin-1")


def _sniff(text: str) -> str | None:
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        return "json"
    if any(line.lstrip().lower().startswith("data_") for line in text.splitlines()):
        return "cif"
    return None


def _floats(line: str, n: int = 3) -> bool:
    parts = line.split()[:n]
    try:
        return len(parts) == n and all(float(p) == float(p) for p in parts)
    except ValueError:
        return False


def check_poscar_counts(text: str, sid: str) -> None:
    """The counts line must match the coordinate lines that follow it (error naming the line if not)."""
    lines = text.splitlines()
    if len(lines) < 7:
        return
    at = 6 if lines[5].split() and not lines[5].split()[0].lstrip("+-").isdigit() else 5  # species line?
    try:
        counts = [int(c) for c in lines[at].split()]
    except ValueError:
        raise InputError(sid, f"line {at + 1}: expected atom counts, got {lines[at].strip()!r}") from None
    mode = at + 1
    if mode < len(lines) and lines[mode].strip()[:1] in ("s", "S"):
        mode += 1  # Selective dynamics
    start = mode + 1
    n = 0
    while start + n < len(lines) and _floats(lines[start + n]):
        n += 1
    total = sum(counts)
    if n != total and n > 0:
        short = n < total
        raise InputError(sid, f"{'truncated POSCAR: ' if short else ''}line {at + 1}: atom counts "
                         f"{lines[at].strip()!r} declare {total} atoms but {'only ' if short else ''}{n} "
                         f"coordinate lines follow (lines {start + 1}-{start + n})")  # fmt: skip


def _parse_poscar(text: str, sid: str) -> Iterator[tuple[str, Structure | InputError]]:
    from pymatgen.io.vasp import Poscar

    if len([line for line in text.splitlines() if line.strip()]) < 8:
        raise InputError(sid, "truncated POSCAR: fewer than 8 non-blank lines (no atoms?)")
    check_poscar_counts(text, sid)
    try:
        structure = Poscar.from_str(text, read_velocities=False).structure
    except IndexError:
        raise InputError(sid, "truncated POSCAR: fewer lines than its atom counts declare") from None
    except Exception as exc:  # noqa: BLE001 - pymatgen raises any type on malformed input: one InputError line
        raise InputError(sid, f"unparseable POSCAR: {one_line(exc)}") from None
    yield sid, structure


def _structure_from_dict(obj: Any, sid: str) -> Structure:
    from pymatgen.core import Structure

    if isinstance(obj, dict) and "lattice" not in obj and isinstance(obj.get("structure"), dict):
        obj = obj["structure"]
    if not isinstance(obj, dict) or "sites" not in obj:
        raise InputError(sid, "JSON is not a pymatgen Structure (expected Structure.as_dict() output)")
    if "lattice" not in obj:
        raise InputError(sid, "no lattice: JSON structure has no 'lattice' (a Molecule?)")
    try:
        return Structure.from_dict(obj)
    except Exception as exc:  # noqa: BLE001 - pymatgen raises any type on malformed input: one InputError line
        raise InputError(sid, f"invalid Structure JSON: {one_line(exc)}") from None


def _parse_json(text: str, sid: str) -> Iterator[tuple[str, Structure | InputError]]:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(sid, f"invalid JSON (truncated?): {exc.msg} at line {exc.lineno}") from None
    if isinstance(obj, list):
        if not obj:
            raise InputError(sid, "no structures: the JSON list is empty")
        for index, item in enumerate(obj):
            item_id = f"{sid}#{index}"
            try:
                yield item_id, _structure_from_dict(item, item_id)
            except InputError as err:
                yield item_id, err
    else:
        yield sid, _structure_from_dict(obj, sid)


def _parse_file(source: Source) -> list[tuple[str, Structure | InputError]]:
    """Parse a file completely (under the time limit) into (id, structure or per-item error)."""
    sid = source.source_id
    text = _read_text(source)
    fmt = source.fmt or _sniff(text)
    if fmt is None:
        raise InputError(sid, f"unknown structure format (expected {KNOWN_FORMATS})")
    try:
        with _time_limit(PARSE_TIME_LIMIT_S), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if fmt == "cif":
                return list(iter_cif_blocks(text, source=sid))
            if fmt == "json":
                return list(_parse_json(text, sid))
            return list(_parse_poscar(text, sid))
    except _ParseTimeout:
        raise InputError(sid, f"parsing took longer than {PARSE_TIME_LIMIT_S:g} s (pathological file?)") from None


@functools.cache
def _mp_index(name: str) -> dict[str, Any]:
    from crystalsearch.data import datasets

    return {record.material_id: record for record in datasets.load(name).records}


def _resolve_mp_id(mp_id: str) -> Structure:
    try:
        for name in _MP_DATASETS:
            record = _mp_index(name).get(mp_id)
            if record is not None:
                structure: Structure = record.structure.copy()
                return structure
    except ImportError as exc:
        raise InputError(mp_id, f"Materials Project lookup unavailable: {one_line(exc)}") from None
    raise InputError(mp_id, "unknown Materials Project id (not in the shipped mp_structures or mp_elasticity data)")


def _items(source: Source) -> list[tuple[str, Structure | InputError]]:
    if source.mp_id is not None:
        return [(source.source_id, _resolve_mp_id(source.mp_id))]
    return _parse_file(source)


def read_structures(
    paths: PathLike | Iterable[PathLike],
    *,
    strict: bool = False,
    report: ReadReport | None = None,
    max_sites: int | None = None,
) -> Iterator[tuple[str, Structure]]:
    """Yield ``(source_id, Structure)`` for every structure in ``paths``, in order.

    ``paths`` is one or an iterable of: structure files, folders (searched recursively, sorted),
    glob patterns (``examples/*.cif``) or Materials Project ids (``mp-149``, resolved from the shipped
    ``mp_structures`` then ``mp_elasticity`` data, no download). The id is the path as given (files
    found in folders: folder/relative path), ``path#block`` for multi-block CIFs and JSON lists, or the
    MP id.

    Bad inputs (unreadable, empty, truncated, binary, no lattice/atoms, disordered, overlapping atoms,
    absurd cells, more than ``max_sites`` sites (default :func:`~crystalsearch.io.checks.max_sites_limit`)...)
    become one-line
    :class:`~crystalsearch.errors.InputError` naming the input. With a ``report`` and ``strict=False``
    they are recorded in ``report.failed`` and skipped; with ``strict=True`` *or no report* the first
    one is raised (it is recorded in ``report`` too, if given). ``report.ok`` counts yielded structures.
    """
    fail_fast = strict or report is None
    for source_id, item in read_items(paths, max_sites=max_sites):
        if isinstance(item, InputError):
            if report is not None:
                report.failed.append(item)
            if fail_fast:
                raise item
            continue
        if report is not None:
            report.ok += 1
        yield source_id, item


def read_items(
    paths: PathLike | Iterable[PathLike], *, max_sites: int | None = None
) -> Iterator[tuple[str, Structure | InputError]]:
    """Like :func:`read_structures`, but every input, good or bad, in input order: ``(id, Structure)``
    or ``(id, InputError)`` (for commands that report each query, failures included, in order)."""
    max_sites = max_sites_limit() if max_sites is None else max_sites
    for entry in expand_sources(paths):
        items: list[tuple[str, Structure | InputError]]
        if isinstance(entry, InputError):
            items = [(entry.source, entry)]
        else:
            try:
                items = _items(entry)
            except InputError as err:
                items = [(err.source, err)]
        for source_id, item in items:
            if not isinstance(item, InputError):
                try:
                    check_structure(item, source=source_id, max_sites=max_sites)
                except InputError as err:
                    item = err
            yield source_id, item


def read_structure(path: PathLike, *, max_sites: int | None = None) -> Structure:
    """The first structure in ``path`` (file, folder, glob or MP id); raises InputError on any problem."""
    for _source_id, structure in read_structures(path, strict=True, max_sites=max_sites):
        return structure
    raise InputError(str(path), "no structure found")
