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

from crystalsearch.paths import display_path

if TYPE_CHECKING:
    from crystalsearch.data.properties import PropertySpec
    from crystalsearch.data.records import Record
    from crystalsearch.predict.conformal import Calibration
    from crystalsearch.predict.predictor import Predictor
    from crystalsearch.predict.stacking import ResidualStack
    from crystalsearch.train.protocol import ProtocolSplit


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


@dataclass(frozen=True)
class _Data:
    """One property's protocol split: labels, members' predictions [m, n] and their mean (``head``, raised to
    the label ``floor``) on val / calib / test, and Magpie features ``x`` of every part."""

    spec: PropertySpec
    ds: Any
    split: ProtocolSplit
    parts: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    members: dict[str, np.ndarray]
    head: dict[str, np.ndarray]
    x: dict[str, np.ndarray]
    floor: float | None


@dataclass(frozen=True)
class _Points:
    """The Magpie models and the point predictions they give with the heads (``point``: the blend or the
    residual stack, whichever ``val_mae`` chose; ``stacked``: the residual stack's, when fitted)."""

    rf_test: np.ndarray
    gb: Any
    comp: dict[str, np.ndarray]
    weight: float
    blend: dict[str, np.ndarray]
    stack: str
    residual: ResidualStack | None
    stacked: dict[str, np.ndarray] | None
    point: dict[str, np.ndarray]
    val_mae: dict[str, float]


def evaluate_property(prop: str, folder: Path, config: CalibrationConfig, *,
                      log: Callable[[str], None] = print) -> dict[str, Any]:  # fmt: skip
    """All measurements for one property (see the module docstring); fits into ``folder`` if asked."""
    from crystalsearch.predict.predictor import Predictor

    t0 = time.perf_counter()
    predictor = Predictor.load(prop, folder=folder)
    data = _protocol_data(prop, folder, predictor)
    log(f"{prop}: ensemble predictions ready ({time.perf_counter() - t0:.0f} s)")
    pts = _fit_points(data, config)
    log(f"{prop}: Magpie models fitted ({time.perf_counter() - t0:.0f} s)")
    y, members, point = data.y, data.members, pts.point

    def mae(pred: np.ndarray) -> float:
        return float(np.mean(np.abs(pred - y["test"])))

    intervals, calibrations = _fit_intervals(prop, data, pts, config)
    score = choose_score(intervals, config.coverage) if config.score == "auto" else config.score
    chosen = calibrations[score]
    err = np.abs(point["test"] - y["test"])
    flags = {"spread": flag_stats(chosen.out_of_distribution(members["test"]), err)}
    flags.update(similarity_flags(data.ds, data.parts, err))
    resplits = resplit_coverage(chosen, point=np.concatenate([point["calib"], point["test"]]),
                                members=np.concatenate([members["calib"], members["test"]], axis=1),
                                y=np.concatenate([y["calib"], y["test"]]), n_calib=len(y["calib"]),
                                coverage=config.coverage)  # fmt: skip
    result = {
        "property": prop, "unit": data.spec.unit, "dataset": data.spec.dataset, "split": data.split.to_dict(),
        "heads": display_path(folder), "ensemble_size": len(predictor.members), "nominal_coverage": config.coverage,
        "mae": {"ensemble": mae(data.head["test"]), "members": [mae(m) for m in members["test"]],
                "rf_magpie": mae(pts.rf_test), "gbm_magpie": mae(pts.comp["test"]), "stacked": mae(point["test"]),
                "mean_baseline": mae(np.full_like(y["test"], y["train"].mean())),
                "blend": mae(pts.blend["test"]),
                "residual_stack": None if pts.stacked is None else mae(pts.stacked["test"])},
        "stack_weight": pts.weight, "stack": pts.stack, "val_mae": pts.val_mae,
        "intervals": intervals,
        "interval_score": score, "interval_score_chosen_by": config.score, "coverage_resplits": resplits,
        "ood": flags, "wall_time_s": round(time.perf_counter() - t0, 1), "command": config.command,
    }  # fmt: skip
    if config.fit:
        model = pts.residual if pts.stack == "residual" else pts.gb if pts.weight < 1 else None
        _install(folder, chosen, model, result)
    return result


def _protocol_data(prop: str, folder: Path, predictor: Predictor) -> _Data:
    """The heads' protocol split (capped as they were trained), labels, members' predictions and Magpie."""
    from crystalsearch.data import datasets
    from crystalsearch.predict.conformal import bounded, label_floor
    from crystalsearch.train.finetune import property_spec
    from crystalsearch.train.protocol import protocol_split

    spec = property_spec(prop)
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
    x = {p: magpie_matrix(recs[p]) for p in parts}
    return _Data(spec=spec, ds=ds, split=split, parts=parts, y=y, members=members, head=head, x=x, floor=floor)


def _fit_points(data: _Data, config: CalibrationConfig) -> _Points:
    """Random forest and gradient boosting on Magpie (train part), the blend weight (val) and, with enough
    validation materials, the residual stack; the point prediction is whichever has the lower val MAE."""
    from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor

    from crystalsearch.predict.conformal import bounded, from_target, to_target
    from crystalsearch.predict.stacking import MIN_FIT, fit_residual

    x, y, head, members, floor, log = data.x, data.y, data.head, data.members, data.floor, data.spec.log
    t = functools.partial(to_target, log=log)
    t_inv = functools.partial(from_target, log=log)
    rf = RandomForestRegressor(random_state=0, n_jobs=config.jobs).fit(x["train"], y["train"])
    gb = HistGradientBoostingRegressor(random_state=0).fit(x["train"], t(y["train"]))
    comp = {p: bounded(t_inv(gb.predict(x[p])), floor) for p in ("val", "calib", "test")}
    weight = fit_weight(head["val"], comp["val"], y["val"])
    point = blend = {p: weight * head[p] + (1 - weight) * comp[p] for p in ("val", "calib", "test")}
    stack, residual, stacked = "blend", None, None
    val_mae = {"blend": float(np.mean(np.abs(blend["val"] - y["val"])))}
    if len(y["val"]) >= MIN_FIT:
        residual, oof = fit_residual(heads=head["val"], members=members["val"], magpie=x["val"], y=y["val"],
                                     log=log, composition=gb)  # fmt: skip
        stacked = {"val": bounded(oof, floor), **{p: bounded(residual.point(head[p], members[p], x[p]), floor)
                                                   for p in ("calib", "test")}}  # fmt: skip
        val_mae["residual"] = float(np.mean(np.abs(stacked["val"] - y["val"])))
        if val_mae["residual"] < val_mae["blend"]:
            stack, point = "residual", stacked
    return _Points(rf_test=rf.predict(x["test"]), gb=gb, comp=comp, weight=weight, blend=blend, stack=stack,
                   residual=residual, stacked=stacked, point=point, val_mae=val_mae)  # fmt: skip


def _fit_intervals(prop: str, data: _Data, pts: _Points,
                   config: CalibrationConfig) -> tuple[dict[str, dict[str, Any]], dict[str, Calibration]]:  # fmt: skip
    """Per nonconformity score: the calibration (fitted on the calibration split) and its coverage and widths
    on val and test, with test coverage among flagged and unflagged materials."""
    from crystalsearch.predict.conformal import SCORES, Calibration

    y, members, point = data.y, data.members, pts.point
    intervals: dict[str, dict[str, Any]] = {}
    calibrations: dict[str, Calibration] = {}
    for score in SCORES:
        cal = Calibration.fit(prop=prop, log=data.spec.log, score=score, point=point["calib"],
                              members=members["calib"], y=y["calib"], weight=pts.weight, stack=pts.stack,
                              split=data.split.to_dict())  # fmt: skip
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
    return intervals, calibrations


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
    """Write calibration.json (with the measured numbers), composition.npz when stacking, the manifest and the
    card."""
    import dataclasses

    from crystalsearch.atomic import atomic_write_text
    from crystalsearch.predict.calibration_report import ensemble_card

    measured = {k: result[k] for k in ("mae", "intervals", "ood", "nominal_coverage", "split")}
    write_calibration(folder, dataclasses.replace(calibration, measured=measured), model=model)
    atomic_write_text(folder / "README.md", ensemble_card(result))


def write_calibration(folder: Path, calibration: Calibration, *, model: Any = None) -> None:
    """A heads folder's calibration.json, its composition.npz when ``model`` stacks one (arrays only; an older
    one is removed otherwise) and the manifest with both files' SHA-256, which ``predict`` checks."""
    from crystalsearch.predict.conformal import COMPOSITION_MODEL, FILE, save_calibration
    from crystalsearch.predict.manifest import write_manifest
    from crystalsearch.predict.stacking import save_composition

    save_calibration(folder, calibration)
    path = folder / COMPOSITION_MODEL
    if model is not None:
        save_composition(path, model)
    else:
        path.unlink(missing_ok=True)
    (folder / "composition.pkl").unlink(missing_ok=True)  # the pickle earlier versions wrote
    write_manifest(folder, [FILE, COMPOSITION_MODEL] if model is not None else [FILE])
