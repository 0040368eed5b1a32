"""What ``evaluate calibration`` writes for people: the ensemble folder's model card and the Markdown summary
of all properties (:mod:`crystalsearch.predict.calibration` measures the numbers)."""

from __future__ import annotations

from typing import Any


def ensemble_card(r: dict[str, Any]) -> str:
    """The ensemble folder's model card: protocol, test MAEs, interval coverage, OOD flag."""
    s, m, u = r["split"], r["mae"], r["unit"]
    iv = r["intervals"][r["interval_score"]]
    fl = r["ood"]["spread"]
    cap = f" (seeded subset of {s['n_train_full']:,})" if s["n_train"] < s["n_train_full"] else ""
    stack = (
        "ensemble mean alone"
        if r["stack_weight"] == 1
        else f"{r['stack_weight']:.2f} x ensemble mean + {1 - r['stack_weight']:.2f} x gradient boosting on Magpie"
    )
    if r.get("stack") == "residual":
        stack = (
            "ensemble mean + a gradient-boosted residual on [Magpie, heads, spread, Magpie model] fitted on val "
            "(`crystalsearch/predict/stacking.py`)"
        )
    ratio = "n/a" if fl["error_ratio"] is None else f"{fl['error_ratio']:.2f}"
    grouped = ", grouped by formula" if s["by_formula"] else ""
    return f"""# {r["property"]} heads: {r["ensemble_size"]}-member seed ensemble

Protocol split (`crystalsearch/train/protocol.py`, seed {s["seed"]}{grouped}) of `{s["dataset"]}`:
{s["n_train"]:,} train{cap} / {s["n_val"]:,} val / {s["n_calib"]:,} calibration / {s["n_test"]:,} test.
Members differ by initialisation and batch order only. Point prediction: {stack} (fitted and chosen on val).

| test split | MAE ({u}) |
|---|---|
| **ensemble (point prediction)** | **{m["stacked"]:.4g}** |
| ensemble mean of the heads alone | {m["ensemble"]:.4g} |
| members | {", ".join(f"{v:.4g}" for v in m["members"])} |
| random forest on Magpie (same train records) | {m["rf_magpie"]:.4g} |
| gradient boosting on Magpie | {m["gbm_magpie"]:.4g} |
| blend ({r["stack_weight"]:.2f} x ensemble + rest boosting) | {m.get("blend", m["stacked"]):.4g} |
| residual stack (`crystalsearch/predict/stacking.py`) | {_opt(m.get("residual_stack"))} |

{r["nominal_coverage"]:.0%} interval (split conformal, {r["interval_score"]} score, calibrated on the
calibration split): empirical coverage on test **{iv["coverage"]:.3f}**, mean width {iv["mean_width"]:.4g} {u}.
Out-of-distribution flag (ensemble spread in {u} above its 90th percentile on calibration): fires on
{fl["firing_rate"]:.1%} of test materials; their MAE is {ratio} x that of the others.

Measured by `{r.get("command") or "crystalsearch evaluate calibration --fit"}`.
"""


def report(results: list[dict[str, Any]], *, command: str) -> str:
    """Markdown summary: one row per property."""
    lines = [
        "# Calibration of the property heads (protocol test splits)", "", f"`{command}`", "",
        "| property | n train / calib / test | ensemble MAE | stacked MAE (w) | RF-Magpie MAE | coverage "
        "(nominal) | mean width | OOD spread flag: error ratio, fires | old similarity flag: ratio, fires |",
        "|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for r in results:
        s, m, u = r["split"], r["mae"], r["unit"]
        iv = r["intervals"][r["interval_score"]]
        sp, old = r["ood"]["spread"], r["ood"]["similarity_p1"]

        def ratio(f: dict[str, Any]) -> str:
            return "n/a" if f["error_ratio"] is None else f"{f['error_ratio']:.2f}"

        lines.append(
            f"| {r['property']} ({u}) | {s['n_train']:,} / {s['n_calib']:,} / {s['n_test']:,} | {m['ensemble']:.4g} | "
            f"{m['stacked']:.4g} ({_how(r)}) | {m['rf_magpie']:.4g} | {iv['coverage']:.3f} "
            f"({r['nominal_coverage']:.2f}) | {iv['mean_width']:.4g} | {ratio(sp)}, {sp['firing_rate']:.1%} | "
            f"{ratio(old)}, {old['firing_rate']:.1%} |"
        )  # fmt: skip
    lines += [
        "",
        "Interval scores compared: validation coverage / mean width (what chooses the score), then test "
        "coverage / mean width / median width, test coverage of flagged | unflagged materials:",
        "",
    ]
    for r in results:
        cells = ", ".join(
            f"{k}: val {v['val_coverage']:.3f} / {v['val_mean_width']:.4g}, test {v['coverage']:.3f} / "
            f"{v['mean_width']:.4g} / {v['median_width']:.4g}, {_pct(v['coverage_flagged'])} | "
            f"{_pct(v['coverage_unflagged'])}"
            for k, v in r["intervals"].items()
        )
        cells = f"**{r['interval_score']}** chosen; " + cells
        p10 = r["ood"]["similarity_p10"]
        lines.append(f"- {r['property']}: {cells}; similarity flag at the 10th percentile: error ratio "
                     f"{'n/a' if p10['error_ratio'] is None else format(p10['error_ratio'], '.2f')}, "
                     f"fires on {p10['firing_rate']:.1%}{_resplits(r)}")  # fmt: skip
    return "\n".join(lines) + "\n"


def _resplits(r: dict[str, Any]) -> str:
    rs = r.get("coverage_resplits")
    if not rs:
        return ""
    return (f"; coverage over {rs['repeats']} random re-splits of calibration + test: mean {rs['mean']:.3f} "
            f"(5-95%: {rs['p05']:.3f}-{rs['p95']:.3f})")  # fmt: skip


def _how(r: dict[str, Any]) -> str:
    """How the point prediction was stacked: ``residual`` or the blend weight of the heads."""
    return "residual" if r.get("stack") == "residual" else f"{r['stack_weight']:.2f}"


def _opt(v: float | None) -> str:
    return "not fitted (validation split too small)" if v is None else f"{v:.4g}"


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"
