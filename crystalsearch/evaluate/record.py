"""Recording evaluation results: merge cells into ``table1.json`` and ``evaluations.json``, then re-render
the report (kept apart from :mod:`~crystalsearch.evaluate.results`, which the report itself reads), and
copy measured baselines from one results folder into another::

    python -m crystalsearch.evaluate.record training/results training/results/longer_pretraining
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from crystalsearch.evaluate.report import write_report
from crystalsearch.evaluate.results import (
    EVALUATIONS,
    HALVES,
    TABLE1,
    check_table1,
    empty_table1,
    locked,
    mean_std,
    read_json,
    write_json,
)

__all__ = ["BASELINES", "copy_baselines", "update"]

BASELINES = {"random_forest": ("sitestats", "sine_coulomb", "magpie", "mean"), "finetune": ("random",)}


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


def copy_baselines(src: Path, dst: Path) -> dict[str, int]:
    """Copy the baseline cells of a finished Table 1 (fingerprint random forests, the mean predictor,
    fine-tuning from random init) from ``src`` into ``dst``, so that a new encoder evaluated there is
    compared with the same measured baselines (same data, splits and seeds) without re-running them.
    Each copied provenance keeps its command and date and gains ``copied_from``. Returns cells per half."""
    evaluations = read_json(Path(src) / EVALUATIONS, {})
    copied = {}
    for half, methods in BASELINES.items():
        cells = {
            prop: {m: {**by_method[m], "copied_from": str(Path(src) / EVALUATIONS)} for m in methods if m in by_method}
            for prop, by_method in evaluations.get(half, {}).items()
        }
        update(Path(dst), half=half, cells=cells)
        copied[half] = sum(len(c) for c in cells.values())
    return copied


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 3:
        sys.exit("usage: python -m crystalsearch.evaluate.record SRC_RESULTS DST_RESULTS")
    for half, n in copy_baselines(Path(sys.argv[1]), Path(sys.argv[2])).items():
        print(f"{half}: copied {n} cells into {sys.argv[2]}")
