"""A head from a user's own labels: ``crystalsearch train finetune --property P --labels my.csv``.

The CSV has a structure (a file path, relative to the CSV's folder, or a Materials Project id resolved from
the shipped data) and a value of property ``P`` in its unit: the first two columns, or, under a header, the
columns it names (:data:`STRUCTURE_NAMES`, :data:`VALUE_NAMES` or ``P``), other columns ignored.
Rows that cannot be used (unreadable structure, unknown id, a value that is not a positive/finite number where
the head needs one) are reported one line each and skipped.

The labels are split once (seeded; a repeated structure, or for compositional properties a reduced formula,
stays within one part): a validation part (:data:`VAL_FRACTION`: learning rate, early stopping),
and — when the set is large enough to give at least :data:`MIN_CALIBRATION` materials — a calibration part
(:data:`CALIB_FRACTION`) that no member trains or stops on. With it the folder gets a split-conformal
``calibration.json`` (absolute score: interval widths from the calibration residuals), so ``crystalsearch
predict --heads OUT`` gives calibrated intervals, and the calibration part's MAE is an honest error estimate.
Without it the head has no interval and its only error estimate is the (optimistic) validation MAE; the
summary says so. The start (pretrained or random) follows the learning curves unless given.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crystalsearch.errors import InputError

if TYPE_CHECKING:
    from crystalsearch.data.properties import PropertySpec
    from crystalsearch.data.records import Record
    from crystalsearch.train.config import FinetuneConfig

VAL_FRACTION = 0.2
CALIB_FRACTION = 0.15
MIN_CALIBRATION = 20
MIN_LABELS = 10


@dataclass
class LabelSet:
    """Usable rows of a labels CSV (``records``: structures as dataset records) and the skipped rows' reasons."""

    path: Path
    ids: list[str] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _record(source: str, structure: Any) -> Record:
    from crystalsearch.data.records import Record

    species = tuple(str(site.specie) for site in structure)
    return Record(material_id=source, formula=structure.composition.reduced_formula,
                  lattice=np.asarray(structure.lattice.matrix, dtype=np.float64), species=species,
                  frac_coords=np.asarray(structure.frac_coords, dtype=np.float64), properties={})  # fmt: skip


def _structure(item: str, folder: Path) -> Any:
    from crystalsearch.io.readers import read_structure

    path = Path(item).expanduser()
    path = path if path.is_absolute() else folder / path
    return read_structure(path if path.exists() else item)


def read_labels(path: Path, *, log_target: bool, prop: str = "") -> LabelSet:
    """Rows of ``path`` (see the module docstring); a missing file, an unreadable header or no usable row is an
    InputError. Skipped rows are named by their line in the file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), "a folder, not a labels CSV" if path.is_dir() else "labels file not found")
    out = LabelSet(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            rows = [(reader.line_num, r) for r in reader if any(c.strip() for c in r) and not r[0].startswith("#")]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(str(path), f"not a readable CSV text file ({exc})") from None
    columns = (0, 1)
    if rows and not any(_number(c) is not None for c in rows[0][1]):  # a header row
        columns = _columns(rows[0][1], [r for _, r in rows[1:21]], prop=prop, where=str(path))
        rows = rows[1:]
    for line, row in rows:
        _add_row(out, row, line=line, columns=columns, log_target=log_target)
    if len(out.values) < MIN_LABELS:
        raise InputError(str(path), f"{len(out.values)} usable labels (at least {MIN_LABELS} needed)")
    return out


STRUCTURE_NAMES = ("structure", "file", "filename", "path", "cif", "material_id", "mp_id", "id")
VALUE_NAMES = ("value", "y", "target", "label")


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _columns(header: list[str], first: list[list[str]], *, prop: str, where: str) -> tuple[int, int]:
    """(structure, value) columns named by a header: a structure name of :data:`STRUCTURE_NAMES`, the value
    named as the property or one of :data:`VALUE_NAMES`, else the only other column whose ``first`` rows are
    numbers; with two columns, one name is enough."""
    names = [h.strip().lower() for h in header]
    structure = next((i for i, n in enumerate(names) if n in STRUCTURE_NAMES), None)
    value = next((i for i, n in enumerate(names) if n == prop.lower() or n in VALUE_NAMES), None)
    if value is None and structure is not None and first:
        numeric = [i for i in range(len(names)) if i != structure
                   and all(len(r) > i and _number(r[i]) is not None for r in first)]  # fmt: skip
        value = numeric[0] if len(numeric) == 1 else None
    if len(names) == 2:  # one recognised name places the other column
        if structure is None:
            structure = 0 if value is None else 1 - value
        if value is None:
            value = 1 - structure
    if structure is None or value is None or structure == value:
        also = f" or {prop!r}" if prop else ""
        raise InputError(where, f"header {', '.join(header)}: name the structure column 'structure' (or file, "
                         f"material_id, ...) and the value column 'value'{also}")  # fmt: skip
    return structure, value


def _add_row(out: LabelSet, row: list[str], *, line: int, columns: tuple[int, int], log_target: bool) -> None:
    """One data row into ``out``, or its reason into ``out.skipped``."""
    where = f"{out.path}:{line}"
    if len(row) <= max(columns):
        out.skipped.append(f"{where}: expected at least {max(columns) + 1} columns, got {len(row)}")
        return
    item, text = row[columns[0]].strip(), row[columns[1]].strip()
    value = _number(text)
    if value is None:
        out.skipped.append(f"{where}: value {text!r} is not a number")
        return
    if not math.isfinite(value) or (log_target and value <= 0):
        out.skipped.append(f"{where}: value {text} unusable ({'must be > 0' if log_target else 'not finite'})")
        return
    try:
        structure = _structure(item, out.path.parent)
    except InputError as exc:
        out.skipped.append(f"{where}: {exc}")
        return
    out.ids.append(item)
    out.records.append(_record(item, structure))
    out.values.append(value)


def split_labels(n: int, *, seed: int, groups: list[str] | None = None) -> dict[str, np.ndarray]:
    """Seeded ``train``/``val``/``calib`` parts of ``n`` labels (``calib`` empty when it would hold fewer than
    :data:`MIN_CALIBRATION`). Labels sharing a group (``groups[i]``) land in the same part; the parts are
    filled group by group in a seeded order, so with all groups distinct this is a plain seeded shuffle."""
    rng = np.random.default_rng([seed, n])
    keys = list(range(n)) if groups is None else groups
    by_group: dict[str, list[int]] = {}  # in order of first appearance
    for i, key in enumerate(keys):
        by_group.setdefault(str(key), []).append(i)
    members = list(by_group.values())
    n_calib = int(round(CALIB_FRACTION * n))
    n_calib = n_calib if n_calib >= MIN_CALIBRATION else 0
    n_val = max(2, int(round(VAL_FRACTION * n)))
    parts: dict[str, list[int]] = {"calib": [], "val": [], "train": []}
    for g in rng.permutation(len(members)):
        part = "calib" if len(parts["calib"]) < n_calib else "val" if len(parts["val"]) < n_val else "train"
        parts[part] += members[int(g)]
    return {k: np.sort(np.asarray(v, dtype=np.int64)) for k, v in parts.items()}


def label_groups(labels: LabelSet, *, by_formula: bool) -> list[str]:
    """What must stay in one part: a repeated structure (the same id or file), and for labels that belong to a
    composition (melting temperature, thermal conductivity) every structure of one reduced formula."""
    return [r.formula if by_formula else labels.ids[i] for i, r in enumerate(labels.records)]


def calibration_threshold() -> int:
    """The smallest number of labels that holds out a calibration part."""
    return next(n for n in range(MIN_LABELS, 100_000) if int(round(CALIB_FRACTION * n)) >= MIN_CALIBRATION)


def log_target(spec: PropertySpec, config: FinetuneConfig) -> bool:
    """Whether the head learns log(y): the property's own choice unless the config's ``log_target`` says."""
    return spec.log if config.log_target == "auto" else config.log_target == "yes"


def train_on_labels(labels: LabelSet, config: FinetuneConfig, *, spec: PropertySpec, seeds: int, out: Path,
                    start: dict[str, Any], log: Callable[[str], None] = print) -> dict[str, Any]:  # fmt: skip
    """Fine-tune ``seeds`` members on the labels of ``spec`` (a registry property or one's own,
    :func:`~crystalsearch.data.properties.own_property`) into ``out/seed<k>`` and, where there is a calibration
    part, calibrate the ensemble into ``out``; returns the summary."""
    from crystalsearch.train.finetune import init_graph

    y = np.asarray(labels.values, dtype=np.float64)
    by_formula = spec.compositional or config.group_by_formula
    groups = label_groups(labels, by_formula=by_formula)
    parts = split_labels(len(y), seed=config.seed, groups=groups)
    shared = len(groups) - len(set(groups))
    kept = ("labels of one reduced formula are kept in one part (the label belongs to the composition)"
            if by_formula else "a structure listed more than once is kept in one part")  # fmt: skip
    if shared:
        verb = "label shares" if shared == 1 else "labels share"
        log(f"{shared} {verb} a {'formula' if by_formula else 'structure'} with an earlier row: {kept}")
    graph = init_graph(config.init)
    store = graph.store_for_records(labels.records)
    members, preds = [], []
    for seed in range(config.seed, config.seed + seeds):
        result, member = _member(store, y, parts, replace(config, seed=seed), spec=spec, graph=graph, labels=labels,
                                 out=out, start=start)  # fmt: skip
        members.append(member)
        preds.append(result)
        log(f"seed {seed}: lr {member['lr']:g}, {member['epochs_run']} epochs, val MAE {member['val_mae']:.4g} "
            f"{spec.unit} -> {member['checkpoint']}")  # fmt: skip
    summary: dict[str, Any] = {
        "property": spec.name,
        "unit": spec.unit,
        "shipped_property": spec.shipped,
        "labels": str(labels.path),
        "n_labels": len(y),
        "skipped": labels.skipped,
        "n_train": len(parts["train"]),
        "n_val": len(parts["val"]),
        "n_calib": len(parts["calib"]),
        "grouping": kept,
        "n_sharing": shared,
        "members": members,
        "out": str(out),
        "start": start,
    }
    summary.update(_calibrate(np.array(preds), y, parts["calib"], prop=spec.name, log_target=log_target(spec, config),
                              out=out))  # fmt: skip
    return summary


def _member(store: Any, y: np.ndarray, parts: dict[str, np.ndarray], config: FinetuneConfig, *, spec: PropertySpec,
            graph: Any, labels: LabelSet, out: Path,
            start: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:  # fmt: skip
    """One member: every learning rate with early stopping on ``val``; saved with its card; its predictions on
    the calibration part (units)."""
    import torch

    from crystalsearch.model.embed import select_device
    from crystalsearch.train.card import hardware_of, start_note
    from crystalsearch.train.finetune import (
        FinetuneResult,
        TargetTransform,
        _train_one,
        init_model,
        predict_store,
        save_finetuned,
    )  # fmt: skip

    device = select_device(None if config.device == "auto" else config.device)
    transform = TargetTransform.fit(y[parts["train"]], log=log_target(spec, config))
    t0 = time.perf_counter()
    runs = {lr: _train_one(init_model(config.init, seed=config.seed), store, y, parts["train"], parts["val"],
                           transform=transform, config=config, lr=lr, device=device,
                           rng=np.random.default_rng([config.seed, 7])) for lr in config.lrs}  # fmt: skip
    best = min(runs, key=lambda lr: runs[lr][1])
    model, val_mae, epochs = runs[best]
    held = parts["calib"] if len(parts["calib"]) else parts["val"]
    pred = transform.inverse(predict_store(model, store, held, device=device))
    result = FinetuneResult(
        property=config.property, init=config.init, lr=best, epochs_run=epochs, val_mae=val_mae,
        test_mae=float(np.mean(np.abs(pred - y[held]))), unit=spec.unit, n_train=len(parts["train"]),
        n_val=len(parts["val"]), n_test=len(held), wall_time_s=time.perf_counter() - t0,
        lr_grid={lr: r[1] for lr, r in runs.items()}, model=model.cpu(), transform=transform, test_predictions=pred,
        test_indices=held, graph=graph, hardware=hardware_of(torch.device("cpu") if device.type == "cpu" else device),
    )  # fmt: skip
    note = (
        f"\nTrained on the labels in `{labels.path.name}` ({len(y)} usable, {len(labels.skipped)} skipped); "
        f"the 'test' MAE above is on the {'calibration' if len(parts['calib']) else 'validation'} part.\n"
    )
    folder = save_finetuned(result, out / f"seed{config.seed}", config, extra_card=note + start_note(start),
                            metadata={"labels": str(labels.path), "start": start, "n_labels": len(y)},
                            spec=spec)  # fmt: skip
    return pred, {"seed": config.seed, "checkpoint": str(folder), "lr": best, "epochs_run": epochs,
                  "val_mae": val_mae, "held_out_mae": result.test_mae}  # fmt: skip


def _calibrate(preds: np.ndarray, y: np.ndarray, calib: np.ndarray, *, prop: str, log_target: bool,
               out: Path) -> dict[str, Any]:  # fmt: skip
    """Split-conformal calibration of the ensemble on the calibration part (absolute score), or why not."""
    if not len(calib):
        return {"calibrated": False, "calibration_note": (
            f"{len(y)} labels are too few to hold out a calibration part ({MIN_CALIBRATION} materials needs "
            f"{calibration_threshold()} labels): the head predicts without a calibrated interval, and its only "
            "error estimate is the validation MAE (optimistic: the learning rate and the stopping epoch were "
            "chosen on it)")}  # fmt: skip
    from crystalsearch.predict.calibration import write_calibration
    from crystalsearch.predict.conformal import Calibration

    point = preds.mean(axis=0)
    cal = Calibration.fit(prop=prop, log=log_target, score="absolute", point=point, members=preds, y=y[calib],
                          split={"labels": len(y), "n_calib": len(calib)})  # fmt: skip
    write_calibration(out, cal)  # no composition stack here; the manifest is what predict checks
    mae = float(np.mean(np.abs(point - y[calib])))
    q = cal.quantile(0.9)
    return {"calibrated": True, "calibration_mae": mae, "calibration_note": (
        f"calibrated on {len(calib)} held-out materials (ensemble MAE there {mae:.4g}); 90% intervals "
        f"{'unbounded: too few calibration materials for 90%' if math.isinf(q) else 'from the calibration residuals'}"
        f"; `crystalsearch predict --heads {out}` gives them")}  # fmt: skip
