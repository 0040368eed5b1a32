"""The results folder (``training/results`` by default): ``table1.json``, its provenance, jsonl run logs.

* ``table1.json`` holds exactly ``{"random_forest": {property: {method: {"mae_mean", "mae_std"}}},
  "finetune": {property: {init: {"mae_mean", "mae_std"}}}}`` (public shape, nothing else);
* ``evaluations.json`` holds the provenance of every cell (seeds, per-seed MAEs, data sizes, wall times,
  encoders, commands) and of the figures; the report is rendered from these two files.

Every update (:func:`crystalsearch.evaluate.record.update`) is a read-modify-write under an exclusive
lock followed by an atomic replace, so commands running side by side (random forest and fine-tuning)
never lose cells.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from crystalsearch import atomic
from crystalsearch.atomic import atomic_write_json, read_jsonl  # noqa: F401 - re-exported
from crystalsearch.paths import command_line  # noqa: F401 - re-exported

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


def write_json(path: Path, obj: Any) -> None:
    atomic_write_json(path, obj, default=_default)


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


def locked(folder: Path) -> contextlib.AbstractContextManager[None]:
    """Exclusive lock on the results folder (``.lock``, git-ignored), waiting as long as it takes."""
    folder.mkdir(parents=True, exist_ok=True)
    return atomic.locked(folder, exclusive=True)


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


def append_jsonl(path: Path, row: dict[str, Any]) -> None:
    """Append one run log line (numpy values and paths as JSON), fsynced."""
    atomic.append_jsonl(path, row, default=_default)
