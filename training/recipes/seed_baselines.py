"""Copy the baseline cells of a finished Table 1 (fingerprint random forests, the mean predictor, fine-tuning
from random init) into another results folder, so that an evaluation of a new encoder there is compared
with the same measured baselines (same data, splits and seeds) without re-running them.

    python training/recipes/seed_baselines.py training/results training/results/longer_pretraining

Each copied provenance keeps its original command and date and gains ``copied_from``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from crystalsearch.evaluate.results import EVALUATIONS, read_json, update

BASELINES = {"random_forest": ("sitestats", "sine_coulomb", "magpie", "mean"), "finetune": ("random",)}


def main(src: str, dst: str) -> None:
    evaluations = read_json(Path(src) / EVALUATIONS, {})
    for half, methods in BASELINES.items():
        cells = {
            prop: {m: {**by_method[m], "copied_from": str(Path(src) / EVALUATIONS)} for m in methods if m in by_method}
            for prop, by_method in evaluations.get(half, {}).items()
        }
        update(Path(dst), half=half, cells=cells)
        print(f"{half}: copied {sum(len(c) for c in cells.values())} cells into {dst}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
