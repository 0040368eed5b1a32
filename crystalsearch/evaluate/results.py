"""The results folder (``training/results`` by default): ``table1.json``, its provenance, jsonl run logs.

* ``table1.json`` holds exactly ``{"random_forest": {property: {method: {"mae_mean", "mae_std"}}},
  "finetune": {property: {init: {"mae_mean", "mae_std"}}}}`` (public shape, nothing else);
* ``evaluations.json`` holds the provenance of every cell (seeds, per-seed MAEs, data sizes, wall times,
  encoders, commands) and of the figures; the report is rendered from these two files.

Every update is a read-modify-write under an exclusive lock (``flock`` on the folder) followed by an
atomic replace, so commands running side by side (random forest and fine-tuning) never lose cells.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import shlex
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

TABLE1 = "table1.json"
EVALUATIONS = "evaluations.json"
REPORT = "report.md"
TABLE_PROPERTIES = ("melting_temperature", "thermal_conductivity", "bulk_modulus")  # the paper's column order
HALVES = ("random_forest", "finetune")
DEFAULT_OUT = Path("training/results")


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population standard deviation (``numpy.std``, ddof = 0) of the per-seed MAEs."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = sum(values) / n
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / n)


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in ["crystalsearch", *sys.argv[1:]])


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary sibling and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; these are results to share
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_default) + "\n")


def _default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_json(path: Path, default: Any) -> Any:
    from crystalsearch.errors import InputError

    if not path.is_file():
        return default
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise InputError(str(path), f"not valid JSON ({exc})") from None


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Exclusive advisory lock on the folder itself (no lock file to commit; no-op without ``fcntl``)."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def empty_table1() -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    return {half: {} for half in HALVES}


def check_table1(table: Any, *, where: str = TABLE1) -> None:
    """Raise ``InputError`` unless ``table`` has exactly the public ``table1.json`` shape."""
    from crystalsearch.errors import InputError

    if not isinstance(table, dict) or set(table) != set(HALVES):
        raise InputError(where, f"top-level keys must be {list(HALVES)}")
    for half, props in table.items():
        if not isinstance(props, dict):
            raise InputError(where, f"{half} must be an object")
        for prop, methods in props.items():
            if prop not in TABLE_PROPERTIES or not isinstance(methods, dict):
                raise InputError(where, f"{half}: unexpected property {prop!r}")
            for method, cell in methods.items():
                if not isinstance(cell, dict) or set(cell) != {"mae_mean", "mae_std"}:
                    raise InputError(where, f"{half}.{prop}.{method} must be {{mae_mean, mae_std}}")


def update(
    out: Path,
    *,
    half: str,
    cells: dict[str, dict[str, dict[str, Any]]],
    section: str | None = None,
    extra: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """Merge ``cells`` (``{property: {method: provenance}}``, each provenance with ``maes``) into
    ``table1.json[half]`` and ``evaluations.json[section or half]``, then regenerate the report.

    ``half`` may be ``""`` to leave ``table1.json`` alone (figures); ``extra`` edits the evaluations
    dictionary in place under the same lock.
    """
    from crystalsearch.evaluate.report import write_report

    out = Path(out)
    with locked(out):
        table = read_json(out / TABLE1, empty_table1())
        for h in HALVES:
            table.setdefault(h, {})
        evaluations = read_json(out / EVALUATIONS, {})
        key = section or half
        for prop, methods in cells.items():
            for method, prov in methods.items():
                if half:
                    mean, std = mean_std(prov["maes"])
                    table[half].setdefault(prop, {})[method] = {"mae_mean": mean, "mae_std": std}
                    prov = {**prov, "mae_mean": mean, "mae_std": std}
                evaluations.setdefault(key, {}).setdefault(prop, {})[method] = prov
        if extra is not None:
            extra(evaluations)
        if half:
            check_table1(table, where=str(out / TABLE1))
            write_json(out / TABLE1, table)
        write_json(out / EVALUATIONS, evaluations)
        write_report(out)


def append_jsonl(path: Path, row: dict[str, Any]) -> None:
    """Append one JSON line and fsync it (a finished run survives an interruption right after)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fh.write(json.dumps(row, default=_default) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a jsonl file; a torn last line (interrupted write) is ignored."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            rows.append(json.loads(line))
    return rows
