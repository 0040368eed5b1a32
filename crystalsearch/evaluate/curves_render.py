"""Figures and the markdown page of the learning curves (from :func:`.curves_report.summarise`)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crystalsearch.evaluate.curves import FINETUNE, LABELS, METHODS, budget, size_label

if TYPE_CHECKING:
    from crystalsearch.evaluate.curves import CurvesConfig

COLOURS = {"finetune_pretrained": "#1f77b4", "finetune_random": "#d62728", "ridge_frozen": "#9467bd",
           "rf_frozen": "#8c564b", "knn_frozen": "#e377c2", "rf_magpie": "#2ca02c", "blend": "#ff7f0e"}  # fmt: skip


HEADER = """# When does pretraining pay? Learning curves

Test MAE against the number of training labels, on each property's fixed protocol test split
(`crystalsearch/train/protocol.py`). For each of {seeds} seeds the protocol train part is shuffled once and the
training set of N labels is its first N (each smaller set inside the larger). On every set: fine-tuning from
the shipped CrystalCLR+CS encoder and from random weights of the same architecture (same budget; the learning
rate and the stopping epoch are chosen on a validation part of 20% of the N labels, never on test), ridge,
random forest and kNN (k = 5, cosine) on the frozen CrystalCLR+CS representation, a random forest on Magpie
features, and the blend the shipped heads use (fine-tuned + gradient boosting on Magpie, weight fitted on the
validation part; gradient boosting's 20-material leaves make it a constant below 40 fitting labels, where the
blend is the fine-tuned model; the residual stack needs 1,000 validation materials, which only band gap at
"all" would have, so the blend here is the linear one). Every model learns in the heads' target space (log for
moduli and conductivity). The paired difference is random-start MAE minus pretrained-start MAE, seed by seed
(positive: pretraining helps); it *pays* at a size when the mean difference exceeds the standard deviation of
the differences. Times are wall-clock seconds of one thread (torch and BLAS limited to one) on the machine
that ran each cell, with the process's CPU seconds in brackets (less than the wall time where other work shared
the machine).

Reproduce (CPU, resumable: each finished cell is journalled in `runs/curves/cells.jsonl`, and an interrupted
fine-tuning cell continues from its last epoch):

```
crystalsearch evaluate curves --out runs/curves --report docs/learning-curves.md --sizes 25,50,100,200,500,1000
crystalsearch evaluate curves --out runs/curves --report docs/learning-curves.md --sizes all \\
    -p bulk_modulus,shear_modulus,melting_temperature,thermal_conductivity
crystalsearch evaluate curves --out runs/curves --report docs/learning-curves.md --sizes all -p band_gap
```

The same command started twice on one `--out` uses two cores (each process takes the cells the other does not
hold). The recipe `bash training/recipes/curves.sh` (`JOBS=2` for two processes) runs the three in order and
continues from the committed journal (`training/results/curves/cells.jsonl`). Every cell, with its settings,
chosen learning rate, epochs and times: `learning-curves/curves.json`.

What the commands do with it: `crystalsearch train finetune` and `train heads` print the start these curves
recommend for the number of labels given (`crystalsearch/data/learning_curves.json`, written with
`--reference`): the random start only where it beat the pretrained one by more than the seed spread at the
nearest size measured with at least two paired seeds, else the pretrained default; `--from` overrides, and the
model card records both.

"""


def plot(prop: str, info: Mapping[str, Any], path: Path) -> Path:
    """MAE against labels (log x), one line per method with a band of ± one seed standard deviation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from crystalsearch.atomic import atomic_write

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for method in METHODS:
        pts = [(e["n_labels"], e["methods"][method]) for e in info["sizes"].values() if method in e["methods"]]
        if not pts:
            continue
        n = np.array([p[0] for p in pts], dtype=float)
        mean = np.array([p[1]["mean"] for p in pts])
        std = np.array([p[1]["std"] for p in pts])
        style = "-" if method in FINETUNE else "--"
        ax.plot(n, mean, style, marker="o", ms=3, color=COLOURS[method], label=LABELS[method])
        ax.fill_between(n, mean - std, mean + std, color=COLOURS[method], alpha=0.15, lw=0)
    ax.set_xscale("log")
    ax.set_xlabel("training labels")
    ax.set_ylabel(f"test MAE ({info['unit']})")
    ax.set_title(f"{prop.replace('_', ' ')}: protocol test split, mean ± std over seeds")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=120))
    plt.close(fig)
    return path


def _table(prop: str, info: Mapping[str, Any]) -> list[str]:
    methods = [m for m in METHODS if any(m in e["methods"] for e in info["sizes"].values())]
    head = ["labels", *(LABELS[m] for m in methods), "random − pretrained (paired)", "wins"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for size, e in info["sizes"].items():
        cells = [f"{size} ({e['n_labels']})" if size == "all" else size]
        for m in methods:
            s = e["methods"].get(m)
            cells.append("—" if s is None else f"{s['mean']:.4g} ± {s['std']:.2g} ({s['n']})")
        p = e.get("paired")
        cells.append("—" if p is None else f"{p['mean']:+.3g} ± {p['std']:.2g}")
        cells.append("—" if p is None else f"{p['wins']}/{p['n']}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _overview(summary: Mapping[str, Any]) -> list[str]:
    sizes = sorted({s for info in summary.values() for s in info["sizes"]}, key=lambda s: 1e9 if s == "all" else int(s))
    lines = ["| property (unit) | " + " | ".join(sizes) + " |", "|---|" + "---|" * len(sizes)]
    for prop, info in summary.items():
        row = []
        for s in sizes:
            p = info["sizes"].get(s, {}).get("paired")
            row.append("—" if p is None else f"{p['mean']:+.3g} ± {p['std']:.2g} ({p['wins']}/{p['n']})")
        lines.append(f"| {prop} ({info['unit']}) | " + " | ".join(row) + " |")
    return lines


def _seconds(cell: Mapping[str, Any]) -> str:
    """``wall (CPU)`` seconds of a cell; the CPU time is what the cell cost when the machine was shared."""
    cpu = cell.get("cpu_time_s")
    wall = f"{cell['wall_time_s']:.1f}"
    return wall if cpu is None or not math.isfinite(cpu) else f"{wall} ({cpu:.1f})"


def _times(info: Mapping[str, Any]) -> list[str]:
    """Wall (CPU) time per cell of one property: a row per method, a column per size (mean over its seeds)."""
    sizes = list(info["sizes"])
    lines = ["| method | " + " | ".join(sizes) + " |", "|---|" + "---|" * len(sizes)]
    for m in METHODS:
        cells = [info["sizes"][s]["methods"].get(m) for s in sizes]
        if any(c is not None for c in cells):
            lines.append(f"| {LABELS[m]} | " + " | ".join("—" if c is None else _seconds(c) for c in cells) + " |")
    return lines


def _pool(prop: str) -> int:
    from crystalsearch.train.protocol import protocol_split

    return len(protocol_split(prop).train)


def _missing(rows: list[dict[str, Any]], config: CurvesConfig) -> list[str]:
    have = {(r["property"], r["size"]) for r in rows}
    counts: dict[tuple[str, str], int] = {}
    for r in rows:
        counts[(r["property"], r["size"])] = counts.get((r["property"], r["size"]), 0) + 1
    full = len(config.seeds) * len(config.methods)
    out = []
    for prop in config.properties:
        for size in map(size_label, config.sizes):
            n = counts.get((prop, size), 0)
            if (prop, size) not in have:
                if size != "all" and int(size) >= _pool(prop):
                    continue  # larger than the train part: its "all" point stands for it
                out.append(f"{prop} {size}: not run")
            elif n < full:
                out.append(f"{prop} {size}: {n} of {full} cells")
    return out


def _budget_text(config: CurvesConfig) -> str:
    sizes = [20, 40, 80, 160, 400, 800, 3422]
    shown = ", ".join(f"{n} → {budget(n, config)[0]} epochs (batch {budget(n, config)[1]})" for n in sizes)
    return (f"learning rates {', '.join(f'{lr:g}' for lr in config.lrs)} each trained with early stopping "
            f"(patience {config.patience}) on the validation part; at most ⌈{config.passes} / n_fit⌉ epochs clipped "
            f"to [{config.min_epochs}, {config.max_epochs}]; for fitting sets of {shown}; MSE on the standardised "
            "(log for moduli and conductivity) target, Adam, constant rate, no compilation")  # fmt: skip


def markdown(summary: Mapping[str, Any], *, config: CurvesConfig, figures: Mapping[str, Path],
             rows: list[dict[str, Any]], relative_to: Path, notes: str = "") -> str:  # fmt: skip
    """The learning-curves page (the tables, the verdicts, the figures, the run's ``notes``, what is missing)."""
    parts = [*HEADER.format(seeds=len(config.seeds)).splitlines(), "## Verdicts", ""]
    parts += [f"- **{prop}**: {info['verdict']}" for prop, info in summary.items()]
    parts += ["", "## Random start minus pretrained start, test MAE paired by seed (mean ± std, pretrained wins)",
              "", *_overview(summary)]  # fmt: skip
    for prop, info in summary.items():
        fig = os.path.relpath(figures[prop], relative_to)
        parts += ["", f"## {prop.replace('_', ' ')} (test MAE, {info['unit']}; mean ± std over seeds (n))", "",
                  f"![{prop}]({fig})", "", *_table(prop, info), "",
                  "Time per cell, wall-clock (CPU) s, mean over seeds; one thread:", "", *_times(info)]  # fmt: skip
    parts += ["", "## Fine-tuning budget", "", _budget_text(config) + ".", ""]
    if notes:
        parts += ["## Run notes", "", notes.strip(), ""]
    missing = _missing(rows, config)
    if missing:
        parts += ["## Missing cells (partial run; rerun the same command to continue)", "",
                  *(f"- {m}" for m in missing), ""]  # fmt: skip
    return "\n".join(parts)
