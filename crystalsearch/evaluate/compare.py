"""Paired comparison of Table 1 cells across results folders (same data, splits and seeds), as markdown::

    python -m crystalsearch.evaluate.compare training/results/mp2025_pretraining \\
        finetune/crystalclr_cs finetune/random training/results/longer_pretraining:finetune/crystalclr_cs

Each argument after the folder is ``[FOLDER:]HALF/METHOD``: a cell of that folder's ``evaluations.json``
(default folder: the first argument). The first cell is compared with every other one, seed by seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crystalsearch.evaluate.results import EVALUATIONS, read_json

__all__ = ["Paired", "paired", "render"]


@dataclass(frozen=True)
class Paired:
    """``a`` minus ``b`` on the seeds both have: mean and std of the per-seed differences, the larger of the
    two cells' own seed-to-seed std (``spread``), and on how many seeds ``a`` is lower (better)."""

    prop: str
    a: str
    b: str
    mean_a: float
    mean_b: float
    diff_mean: float
    diff_std: float
    spread: float
    better: int
    seeds: int

    @property
    def beyond_spread(self) -> bool:
        """``a`` better than ``b`` by more than the seed-to-seed spread of either."""
        return -self.diff_mean > self.spread


def _cell(spec: str, default: Path) -> tuple[str, dict[str, dict[str, object]]]:
    folder, _, cell = spec.rpartition(":")
    half, _, method = cell.partition("/")
    evaluations = read_json(Path(folder or default) / EVALUATIONS, {})
    cells = {prop: by_method[method] for prop, by_method in evaluations.get(half, {}).items() if method in by_method}
    if not cells:
        raise SystemExit(f"{folder or default}: no {half}/{method} cells in {EVALUATIONS}")
    return spec, cells


def paired(a: dict[str, object], b: dict[str, object], *, prop: str, names: tuple[str, str]) -> Paired:
    """Per-seed comparison of two cells of one property (their ``seeds`` and ``maes`` lists)."""
    sa = dict(zip(a["seeds"], a["maes"], strict=True))  # type: ignore[call-overload]
    sb = dict(zip(b["seeds"], b["maes"], strict=True))  # type: ignore[call-overload]
    common = sorted(set(sa) & set(sb))
    xa, xb = np.array([sa[s] for s in common]), np.array([sb[s] for s in common])
    d = xa - xb
    return Paired(prop=prop, a=names[0], b=names[1], mean_a=float(xa.mean()), mean_b=float(xb.mean()),
                  diff_mean=float(d.mean()), diff_std=float(d.std(ddof=1)) if len(d) > 1 else 0.0,
                  spread=float(max(xa.std(ddof=1), xb.std(ddof=1))) if len(d) > 1 else 0.0,
                  better=int((d < 0).sum()), seeds=len(common))  # fmt: skip


def render(rows: list[Paired]) -> str:
    head = ("| property | A | B | A mean | B mean | A − B per seed | A better on | seed spread | beyond spread |\n"
            "|---|---|---|---|---|---|---|---|---|")  # fmt: skip
    lines = [
        f"| {r.prop} | {r.a} | {r.b} | {r.mean_a:.4g} | {r.mean_b:.4g} | {r.diff_mean:+.3g} ± {r.diff_std:.2g} | "
        f"{r.better} of {r.seeds} | {r.spread:.3g} | {'yes' if r.beyond_spread else 'no'} |"
        for r in rows
    ]
    return "\n".join([head, *lines])


def main(argv: list[str]) -> str:
    if len(argv) < 3:
        raise SystemExit(__doc__)
    default = Path(argv[0])
    (name_a, a), *others = [_cell(spec, default) for spec in argv[1:]]
    rows = [
        paired(a[prop], b[prop], prop=prop, names=(name_a, name_b)) for name_b, b in others for prop in a if prop in b
    ]
    return render(rows)


if __name__ == "__main__":
    import sys

    print(main(sys.argv[1:]))
