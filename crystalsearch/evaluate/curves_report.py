"""Summaries of the learning curves: per-size statistics, paired differences, the crossing point, figures,
the markdown table and the compact reference data that ``train finetune`` / ``train heads`` read.

The paired difference at a size is ``MAE(random start) - MAE(pretrained start)`` seed by seed (same draw, same
validation part, same head initialisation): positive when pretraining helps. Pretraining *pays* at a size when
the mean difference exceeds the standard deviation of the differences (the seed spread).
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crystalsearch.evaluate.curves import CELLS, LABELS, METHODS, PROPERTIES, journal, size_label

if TYPE_CHECKING:
    from crystalsearch.evaluate.curves import CurvesConfig

REFERENCE_VERSION = 1
NOTES = "notes.md"  # the run's own notes (machine, load, what was left for later), shown in the report


def _stats(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0, "n": len(arr)}


def latest_cells(rows: list[dict[str, Any]]) -> dict[tuple[str, str, int, str], dict[str, Any]]:
    """One row per (property, size, seed, method): the latest written."""
    out: dict[tuple[str, str, int, str], dict[str, Any]] = {}
    for r in rows:
        out[(r["property"], r["size"], int(r["seed"]), r["method"])] = r
    return out


def _size_order(size: str) -> float:
    return math.inf if size == "all" else float(size)


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``{property: {"unit", "sizes": {size: {"n_labels", "methods": {m: stats}, "paired": stats}}, "pays_below",
    "verdict"}}`` from the journal rows."""
    cells = latest_cells(rows)
    by_prop: dict[str, dict[str, Any]] = defaultdict(lambda: {"sizes": {}})
    grouped: dict[tuple[str, str], dict[str, dict[int, dict[str, Any]]]] = defaultdict(lambda: defaultdict(dict))
    for (prop, size, seed, method), r in cells.items():
        grouped[(prop, size)][method][seed] = r
        by_prop[prop]["unit"] = r["unit"]
    for (prop, size), methods in grouped.items():
        entry: dict[str, Any] = {"methods": {}, "n_labels": None}
        for method, seeds in methods.items():
            maes = [seeds[s]["mae"] for s in sorted(seeds)]
            walls = [seeds[s]["wall_time_s"] for s in sorted(seeds)]
            cpus = [seeds[s].get("cpu_time_s", np.nan) for s in sorted(seeds)]
            entry["methods"][method] = {**_stats(maes), "maes": maes, "seeds": sorted(seeds),
                                        "wall_time_s": float(np.mean(walls)),
                                        "cpu_time_s": float(np.mean(cpus))}  # fmt: skip
            entry["n_labels"] = next(iter(seeds.values()))["n_labels"]
        both = sorted(set(methods.get("finetune_pretrained", {})) & set(methods.get("finetune_random", {})))
        if both:
            diffs = [methods["finetune_random"][s]["mae"] - methods["finetune_pretrained"][s]["mae"] for s in both]
            entry["paired"] = {**_stats(diffs), "diffs": diffs, "seeds": both,
                               "wins": int(sum(d > 0 for d in diffs))}  # fmt: skip
        by_prop[prop]["sizes"][size] = entry
    for info in by_prop.values():
        info["sizes"] = dict(sorted(info["sizes"].items(), key=lambda kv: _size_order(kv[0])))
        info.update(crossing(info["sizes"]))
        worse = [s for s, e in info["sizes"].items() if hurts(e.get("paired"))]
        info["random_better_at"] = worse
        if worse:
            info["verdict"] += f"; random init beats it by more than the seed spread at {', '.join(worse)} labels"
    return dict(by_prop)


def pays(paired: dict[str, Any] | None) -> bool | None:
    """Pretraining beats random init by more than the seed spread (None: fewer than two paired seeds)."""
    if not paired or paired["n"] < 2:
        return None
    return bool(paired["mean"] > paired["std"])


def hurts(paired: dict[str, Any] | None) -> bool:
    """Random init beats pretraining by more than the seed spread."""
    return bool(paired and paired["n"] >= 2 and -paired["mean"] > paired["std"])


def crossing(sizes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Where pretraining stops paying: ``pays_below`` is the first measured size (in label order) at which it
    no longer beats random init by more than the seed spread, after paying at every smaller size
    (None when it pays at every measured size or at none)."""
    verdicts = [(s, pays(e.get("paired"))) for s, e in sizes.items() if pays(e.get("paired")) is not None]
    if not verdicts:
        return {"pays_below": None, "verdict": "not measured"}
    paying = [s for s, v in verdicts if v]
    if not paying:
        return {"pays_below": None, "verdict": "pretraining does not beat random init by more than the seed spread "
                "at any measured size"}  # fmt: skip
    first_no = next((s for s, v in verdicts if not v), None)
    if first_no is None:
        return {"pays_below": None, "verdict": "pretraining beats random init by more than the seed spread at every "
                "measured size"}  # fmt: skip
    if verdicts[0][1]:
        return {"pays_below": first_no, "verdict": f"pretraining beats random init by more than the seed spread "
                f"below {first_no} labels"}  # fmt: skip
    return {"pays_below": None, "verdict": f"mixed: pays at {', '.join(paying)} labels only"}


def reference_data(summary: dict[str, Any]) -> dict[str, Any]:
    """The compact data the training commands read: per property and size, mean MAE of both starts and the
    paired difference (units)."""
    props: dict[str, Any] = {}
    for prop, info in summary.items():
        rows = []
        for size, e in info["sizes"].items():
            m, p = e["methods"], e.get("paired")
            if p is None or p["n"] < 2 or "finetune_pretrained" not in m or "finetune_random" not in m:
                continue  # one paired seed has no spread to weigh the difference against
            rows.append({"size": size, "n_labels": e["n_labels"],
                         "pretrained": round(m["finetune_pretrained"]["mean"], 6),
                         "random": round(m["finetune_random"]["mean"], 6), "diff_mean": round(p["mean"], 6),
                         "diff_std": round(p["std"], 6), "seeds": p["n"]})  # fmt: skip
        if rows:
            props[prop] = {"unit": info["unit"], "sizes": rows}
    return {"version": REFERENCE_VERSION, "source": "crystalsearch evaluate curves (docs/learning-curves.md)",
            "properties": props}  # fmt: skip


def write_outputs(out: Path, *, config: CurvesConfig, report: Path, reference: Path | None = None) -> dict[str, Any]:
    """``curves.json``, one PNG per property and the markdown ``report`` (figures and JSON in the folder named
    after it; ``out/notes.md``, when present, as its run notes); with ``reference``, the compact recommendation
    data too. Every property with finished cells in ``out`` is reported, whichever ``config.properties`` a run
    computed (a run of one property does not drop the others). Returns the summary."""
    from crystalsearch.atomic import atomic_write_json, atomic_write_text
    from crystalsearch.evaluate.curves_render import markdown, plot

    rows = journal(
        out, dataclasses.replace(config, properties=PROPERTIES)
    )  # every property finished, not only this run's
    if not rows:  # an empty report would also blank the recommendation data
        from crystalsearch.errors import InputError

        raise InputError(str(Path(out) / CELLS), "no finished cells to report (run `evaluate curves` without "
                         "--report-only first, or point --out at the folder of its journal)")  # fmt: skip
    summary = summarise(rows)
    folder = report.parent / report.stem
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / "curves.json", {"summary": summary, "cells": rows})
    figures = {prop: plot(prop, info, folder / f"{prop}.png") for prop, info in summary.items()}
    notes = (out / NOTES).read_text() if (out / NOTES).is_file() else ""
    text = markdown(summary, config=config, figures=figures, rows=rows, relative_to=report.parent, notes=notes)
    atomic_write_text(report, text)
    if reference is not None:
        atomic_write_json(reference, reference_data(summary))
    return summary


__all__ = ["LABELS", "METHODS", "crossing", "reference_data", "size_label", "summarise", "write_outputs"]
