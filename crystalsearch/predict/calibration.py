"""`evaluate calibration`: how far a head ensemble's numbers can be trusted, on its protocol test split.

Per property (the ensemble must have been trained under :mod:`crystalsearch.train.protocol`):

- test MAE of the ensemble mean, of a random forest on Magpie features (sklearn defaults, as Table 1) and
  of a gradient-boosted model on Magpie, all trained on the same records as the heads;
- the stacked prediction ``w * ensemble + (1 - w) * Magpie model`` with ``w`` fitted on the validation split,
  and, where validation has at least :data:`crystalsearch.predict.stacking.MIN_FIT` materials, the residual stack
  (:mod:`crystalsearch.predict.stacking`) fitted there; the point prediction is whichever has the lower validation MAE
  (the stack's measured out of fold);
- split-conformal intervals (:mod:`crystalsearch.predict.conformal`) calibrated on the calibration split, for the
  normalised score (scaled by the ensemble spread) and the absolute one: coverage and mean / median width
  on validation and test, and test coverage among flagged and unflagged materials; the score written by
  ``fit`` is the one with the narrowest validation intervals at nominal coverage (``score="auto"``);
- out-of-distribution flags: error ratio (test MAE of flagged / unflagged materials) and firing rate, for
  the ensemble-spread flag and for the nearest-neighbour similarity flag ``predict`` used before (best
  cosine similarity of the default encoder's h to the train and validation materials).

With ``fit`` the chosen calibration (and composition model, when stacking helps on validation, as plain arrays:
:mod:`crystalsearch.predict.boosting`) is written into the heads folder with a ``manifest.json`` of their
SHA-256 (:mod:`crystalsearch.predict.manifest`), where ``predict`` reads and checks them.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from crystalsearch.data.records import Record
    from crystalsearch.predict.conformal import Calibration
    from crystalsearch.predict.predictor import Predictor


@dataclass(frozen=True)
class CalibrationConfig:
    """What ``evaluate calibration`` measures (``folders``: property -> heads folder; default the shipped)."""

    properties: tuple[str, ...]
    folders: tuple[tuple[str, str], ...] = ()
    coverage: float = 0.9
    fit: bool = False
    score: str = "auto"  # the score written by ``fit``: normalised, absolute, or auto (chosen on validation)
    jobs: int = 1
    command: str = ""  # the command line, for the ensemble cards


def member_predictions(predictor: Predictor, records: list[Record]) -> np.ndarray:
    """Members' predictions [m, n] (units) for dataset records, through a cached graph store."""
    import torch

    from crystalsearch.train.finetune import predict_store

    store = predictor.graph.store_for_records(records)
    idx = np.arange(len(records))
    out = np.zeros((len(predictor.members), len(records)))
    with torch.random.fork_rng(devices=[]):
        for m, member in enumerate(predictor.members):
            out[m] = member.transform.inverse(predict_store(member.model, store, idx, device=torch.device("cpu")))
    return out


def magpie_matrix(records: list[Record]) -> np.ndarray:
    """Magpie features (cached, :mod:`crystalsearch.structure.descriptors`), NaN columns filled with means."""
    from crystalsearch.structure.descriptors import fingerprints

    x = fingerprints(records, "magpie")
    means = np.nan_to_num(np.nanmean(np.where(np.isfinite(x), x, np.nan), axis=0))
    return np.where(np.isfinite(x), x, means)


def fit_weight(head: np.ndarray, other: np.ndarray, y: np.ndarray) -> float:
    """Weight ``w`` of ``head`` in ``w * head + (1 - w) * other`` with the least MAE (grid of 0.05)."""
    grid = np.linspace(0, 1, 21)
    maes = [np.mean(np.abs(w * head + (1 - w) * other - y)) for w in grid]
    return float(grid[int(np.argmin(maes))])


def choose_score(intervals: dict[str, dict[str, Any]], coverage: float) -> str:
    """The nonconformity score with the narrowest mean interval on the validation split among those whose
    validation coverage is within 0.02 of nominal (the test split plays no part in the choice)."""
    ok = [s for s, d in intervals.items() if d["val_coverage"] >= coverage - 0.02] or list(intervals)
    return min(ok, key=lambda s: intervals[s]["val_mean_width"])


def flag_stats(flag: np.ndarray, err: np.ndarray) -> dict[str, Any]:
    """Firing rate and error ratio (MAE flagged / MAE unflagged) of a boolean flag on absolute errors."""
    n_on = int(flag.sum())
    on = float(err[flag].mean()) if n_on else None
    off = float(err[~flag].mean()) if n_on < len(err) else None
    ratio = on / off if on is not None and off else None
    return {"firing_rate": n_on / len(err), "n_flagged": n_on, "mae_flagged": on, "mae_unflagged": off,
            "error_ratio": ratio}  # fmt: skip


def evaluate_property(prop: str, folder: Path, config: CalibrationConfig, *,
                      log: Callable[[str], None] = print) -> dict[str, Any]:  # fmt: skip
    """All measurements for one property (see the module docstring); fits into ``folder`` if asked."""
    from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor

    from crystalsearch.data import datasets
    from crystalsearch.predict.conformal import SCORES, Calibration, bounded, from_target, label_floor, to_target
    from crystalsearch.predict.predictor import Predictor
    from crystalsearch.predict.stacking import MIN_FIT, fit_residual
    from crystalsearch.train.finetune import property_spec
    from crystalsearch.train.protocol import protocol_split

    t0 = time.perf_counter()
    spec = property_spec(prop)
    predictor = Predictor.load(prop, folder=folder)
    meta = json.loads(next(iter(sorted(folder.glob("seed*/model.json")))).read_text())["metadata"]
    if "protocol" not in meta:
        raise ValueError(f"{folder}: heads not trained under the protocol split (crystalsearch train heads)")
    ds = datasets.load(spec.dataset)
    split = protocol_split(prop, dataset=ds)
    split = split.capped(int(meta["protocol"]["n_train"]) if meta["protocol"]["n_train"] < len(split.train) else 0)
    y_all = ds.targets(spec.column)
    parts = {p: split.part(p) for p in ("train", "val", "calib", "test")}
    recs = {p: [ds.records[int(i)] for i in idx] for p, idx in parts.items()}
    y = {p: y_all[idx] for p, idx in parts.items()}
    members = {p: member_predictions(predictor, recs[p]) for p in ("val", "calib", "test")}
    floor = label_floor(y["train"], log=spec.log)
    head = {p: bounded(m.mean(axis=0), floor) for p, m in members.items()}
    log(f"{prop}: ensemble predictions ready ({time.perf_counter() - t0:.0f} s)")
    x = {p: magpie_matrix(recs[p]) for p in parts}
    t = functools.partial(to_target, log=spec.log)
    t_inv = functools.partial(from_target, log=spec.log)
    rf = RandomForestRegressor(random_state=0, n_jobs=config.jobs).fit(x["train"], y["train"])
    rf_test = rf.predict(x["test"])
    gb = HistGradientBoostingRegressor(random_state=0).fit(x["train"], t(y["train"]))
    comp = {p: bounded(t_inv(gb.predict(x[p])), floor) for p in ("val", "calib", "test")}
    weight = fit_weight(head["val"], comp["val"], y["val"])
    point = blend = {p: weight * head[p] + (1 - weight) * comp[p] for p in ("val", "calib", "test")}
    stack, residual, val_mae = "blend", None, {"blend": float(np.mean(np.abs(blend["val"] - y["val"])))}
    if len(y["val"]) >= MIN_FIT:
        residual, oof = fit_residual(heads=head["val"], members=members["val"], magpie=x["val"], y=y["val"],
                                     log=spec.log, composition=gb)  # fmt: skip
        stacked = {"val": bounded(oof, floor), **{p: bounded(residual.point(head[p], members[p], x[p]), floor)
                                                   for p in ("calib", "test")}}  # fmt: skip
        val_mae["residual"] = float(np.mean(np.abs(stacked["val"] - y["val"])))
        if val_mae["residual"] < val_mae["blend"]:
            stack, point = "residual", stacked
    log(f"{prop}: Magpie models fitted ({time.perf_counter() - t0:.0f} s)")

    def mae(pred: np.ndarray) -> float:
        return float(np.mean(np.abs(pred - y["test"])))

    intervals: dict[str, dict[str, Any]] = {}
    calibrations: dict[str, Calibration] = {}
    err = np.abs(point["test"] - y["test"])
    for score in SCORES:
        cal = Calibration.fit(prop=prop, log=spec.log, score=score, point=point["calib"], members=members["calib"],
                              y=y["calib"], weight=weight, stack=stack, split=split.to_dict())  # fmt: skip
        calibrations[score] = cal
        intervals[score] = {}
        for part in ("val", "test"):
            inside, width = cal.covered(point[part], members[part], y[part], config.coverage)
            key = "" if part == "test" else "val_"
            intervals[score].update({f"{key}coverage": float(inside.mean()), f"{key}mean_width": float(np.mean(width)),
                                     f"{key}median_width": float(np.median(width))})  # fmt: skip
            if part == "test":
                flagged = cal.out_of_distribution(members["test"])
                intervals[score]["coverage_flagged"] = float(inside[flagged].mean()) if flagged.any() else None
                intervals[score]["coverage_unflagged"] = float(inside[~flagged].mean()) if (~flagged).any() else None
    score = choose_score(intervals, config.coverage) if config.score == "auto" else config.score
    chosen = calibrations[score]
    flags = {"spread": flag_stats(chosen.out_of_distribution(members["test"]), err)}
    flags.update(similarity_flags(ds, parts, err))
    resplits = resplit_coverage(chosen, point=np.concatenate([point["calib"], point["test"]]),
                                members=np.concatenate([members["calib"], members["test"]], axis=1),
                                y=np.concatenate([y["calib"], y["test"]]), n_calib=len(y["calib"]),
                                coverage=config.coverage)  # fmt: skip
    result = {
        "property": prop, "unit": spec.unit, "dataset": spec.dataset, "split": split.to_dict(),
        "heads": str(folder), "ensemble_size": len(predictor.members), "nominal_coverage": config.coverage,
        "mae": {"ensemble": mae(head["test"]), "members": [mae(m) for m in members["test"]],
                "rf_magpie": mae(rf_test), "gbm_magpie": mae(comp["test"]), "stacked": mae(point["test"]),
                "mean_baseline": mae(np.full_like(y["test"], y["train"].mean())),
                "blend": mae(blend["test"]),
                "residual_stack": None if residual is None else mae(stacked["test"])},
        "stack_weight": weight, "stack": stack, "val_mae": val_mae,
        "intervals": intervals,
        "interval_score": score, "interval_score_chosen_by": config.score, "coverage_resplits": resplits,
        "ood": flags, "wall_time_s": round(time.perf_counter() - t0, 1), "command": config.command,
    }  # fmt: skip
    if config.fit:
        _install(folder, chosen, residual if stack == "residual" else gb if weight < 1 else None, result)
    return result


def resplit_coverage(chosen: Calibration, *, point: np.ndarray, members: np.ndarray, y: np.ndarray, n_calib: int,
                     coverage: float, repeats: int = 200, seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """Test coverage of the conformal procedure over ``repeats`` random re-splits of the pooled calibration and
    test materials (same sizes, same score, point predictions and ensemble): what one fixed split of a few dozen
    materials cannot show (melting temperature: 43 test materials, so a single coverage moves in steps of 0.023)."""
    from crystalsearch.predict.conformal import Calibration

    rng = np.random.default_rng(seed)
    got = []
    for _ in range(repeats):
        order = rng.permutation(len(y))
        cal, held = order[:n_calib], order[n_calib:]
        fitted = Calibration.fit(prop=chosen.property, log=chosen.log, score=chosen.score, point=point[cal],
                                 members=members[:, cal], y=y[cal])  # fmt: skip
        got.append(float(fitted.covered(point[held], members[:, held], y[held], coverage)[0].mean()))
    arr = np.array(got)
    return {"repeats": repeats, "mean": float(arr.mean()), "std": float(arr.std()),
            "p05": float(np.percentile(arr, 5)), "p95": float(np.percentile(arr, 95))}  # fmt: skip


def similarity_flags(ds: Any, parts: dict[str, np.ndarray], err: np.ndarray) -> dict[str, Any]:
    """The nearest-neighbour flag: best cosine similarity (default encoder h) of each test material to the
    train + validation materials, below the 1st (old ``predict`` rule) or 10th percentile of calibration's."""
    from crystalsearch.model.embed import Encoder

    enc = Encoder.load("default", device="cpu")

    def unit_h(idx: np.ndarray) -> np.ndarray:
        store = enc.graph.store_for_records([ds.records[int(i)] for i in idx])
        h = enc.embed_store(store).astype(np.float64)
        return h / np.maximum(np.linalg.norm(h, axis=1, keepdims=True), 1e-12)

    ref = unit_h(np.concatenate([parts["train"], parts["val"]]))
    best = {p: np.max(unit_h(parts[p]) @ ref.T, axis=1) for p in ("calib", "test")}
    out = {}
    for name, pct in (("similarity_p1", 1), ("similarity_p10", 10)):
        threshold = float(np.percentile(best["calib"], pct))
        out[name] = {**flag_stats(best["test"] < threshold, err), "threshold": threshold}
    return out


def _install(folder: Path, calibration: Calibration, model: Any, result: dict[str, Any]) -> None:
    """Write calibration.json (with the measured numbers), composition.npz when stacking (arrays only), the
    manifest with both files' SHA-256, and the card."""
    import dataclasses

    from crystalsearch.atomic import atomic_write_text
    from crystalsearch.predict.conformal import COMPOSITION_MODEL, FILE, save_calibration
    from crystalsearch.predict.manifest import write_manifest
    from crystalsearch.predict.stacking import save_composition

    measured = {k: result[k] for k in ("mae", "intervals", "ood", "nominal_coverage", "split")}
    save_calibration(folder, dataclasses.replace(calibration, measured=measured))
    path = folder / COMPOSITION_MODEL
    if model is not None:
        save_composition(path, model)
    elif path.exists():
        path.unlink()
    (folder / "composition.pkl").unlink(missing_ok=True)  # the pickle earlier versions wrote
    write_manifest(folder, [FILE, COMPOSITION_MODEL] if model is not None else [FILE])
    atomic_write_text(folder / "README.md", ensemble_card(result))


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
