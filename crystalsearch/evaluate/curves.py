"""Learning curves: when does pretraining pay? Test MAE against the number of labels, per method.

For each property the fixed protocol split (:mod:`crystalsearch.train.protocol`) gives the pool (its ``train``
part) and the test set (its ``test`` part, never used for any choice). For each seed the pool is shuffled once
(:func:`draw`); the training set of size N is the first N of that order, so every smaller set lies inside the
larger ones. On each set the methods of :data:`METHODS` are fitted and scored on the same test split:

- ``finetune_pretrained`` / ``finetune_random``: the CGCNN encoder + regression head fine-tuned from the shipped
  CrystalCLR+CS encoder, or from random weights of the same architecture (seeded), with the same budget: a
  validation part (:data:`VAL_FRACTION` of the N labels, by formula for compositional properties) picks the
  learning rate from :data:`LRS` and stops training early; epochs scale with the set (:func:`budget`);
- ``ridge_frozen``, ``rf_frozen``, ``knn_frozen`` (k = 5, cosine): on the frozen CrystalCLR+CS representation h;
  ``rf_magpie``: a random forest on Magpie features. These use all N labels (nothing of theirs is tuned on a
  validation part; ridge picks its penalty by leave-one-out on the N);
- ``blend``: what the shipped heads do, ``w * fine-tuned + (1 - w) * composition model`` (gradient boosting on
  Magpie trained on the fitting part, ``w`` fitted on the validation part); the residual stack needs
  :data:`crystalsearch.predict.stacking.MIN_FIT` validation materials, which no measured size reaches.

Every model learns in the property's target space (log for moduli and conductivity, as the heads do).
Each finished (property, size, seed, method) cell is one line appended to ``cells.jsonl`` (fsynced, via
:mod:`crystalsearch.atomic`); a rerun skips the cells whose key is there. An unfinished fine-tuning cell keeps
each learning rate's loop state in ``partial/<key>/`` after every epoch and a rerun continues it. A cell is
claimed with a lock on that folder, so several processes on one ``out`` share the cells. Fine-tuned predictions
are kept as ``predictions/*.npz`` (the blend reuses them). Reports: :mod:`crystalsearch.evaluate.curves_report`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crystalsearch.atomic import append_jsonl, read_jsonl
from crystalsearch.evaluate.curve_methods import (  # noqa: F401 - re-exported
    FINETUNE,
    LRS,
    METHODS,
    PROPERTIES,
    SIZES,
    VAL_FRACTION,
    CurvesConfig,
    budget,
    fit_val,
)  # fmt: skip

if TYPE_CHECKING:
    from crystalsearch.structure.graph.store import GraphStore

CELLS = "cells.jsonl"
PARTIAL = "partial"  # per-epoch loop states of unfinished fine-tuning cells (resumed by a rerun)
LABELS = {
    "finetune_pretrained": "fine-tuned, CrystalCLR+CS start", "finetune_random": "fine-tuned, random start",
    "ridge_frozen": "ridge on frozen h", "rf_frozen": "RF on frozen h", "knn_frozen": "kNN (k=5) on frozen h",
    "rf_magpie": "RF on Magpie", "blend": "blend (shipped heads' stack)",
}  # fmt: skip
DRAW_SEED = 23  # the draws' own stream (the protocol split's seed is never touched)
POOL_LIMIT = 10_000  # larger pools (band gap) are featurised only where drawn


def size_label(size: int) -> str:
    return "all" if size == 0 else str(size)


def draw(pool: np.ndarray, seed: int) -> np.ndarray:
    """The pool in the seed's order: the first N are the training set of size N (nested by construction)."""
    return np.random.default_rng([DRAW_SEED, seed]).permutation(np.asarray(pool))


def cell_key(prop: str, size: int, seed: int, method: str, config: CurvesConfig, digest: str) -> str:
    """What a cell's number depends on; a rerun under other settings measures it again."""
    settings: dict[str, Any] = {"property": prop, "size": size, "seed": seed, "method": method, "draw": DRAW_SEED,
                                "encoder": digest, "val_fraction": VAL_FRACTION}  # fmt: skip
    if method in (*FINETUNE, "blend"):
        settings.update(lrs=list(config.lrs), passes=config.passes, min_epochs=config.min_epochs,
                        max_epochs=config.max_epochs, patience=config.patience)  # fmt: skip
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class PropertyData:
    """One property's labels, split, shuffles and features (indices are local: rows of ``y``/``h``)."""

    prop: str
    unit: str
    log: bool
    y: np.ndarray
    pool: np.ndarray
    test: np.ndarray
    orders: dict[int, np.ndarray]
    groups: list[str] | None
    store: GraphStore
    h: np.ndarray
    records: list[Any]
    feature_time_s: float
    _magpie: np.ndarray | None = None

    def magpie(self) -> np.ndarray:
        """Magpie features of the rows (cached on disk by :mod:`crystalsearch.structure.descriptors`)."""
        if self._magpie is None:
            from crystalsearch.evaluate.embeddings import impute
            from crystalsearch.structure.descriptors import fingerprints

            self._magpie = impute(fingerprints(self.records, "magpie"))[0]
        return self._magpie

    def chosen(self, size: int, seed: int) -> np.ndarray:
        order = self.orders[seed]
        return order if size == 0 else order[:size]

    def groups_of(self, idx: np.ndarray) -> list[str] | None:
        return None if self.groups is None else [self.groups[int(i)] for i in idx]


def property_data(prop: str, config: CurvesConfig, encoder: Any, *, log: Callable[[str], None]) -> PropertyData:
    """Load, split, draw and featurise one property (graphs and h for the test split and the drawn pool)."""
    from crystalsearch.data import datasets
    from crystalsearch.train.finetune import property_spec
    from crystalsearch.train.protocol import protocol_split

    t0 = time.perf_counter()
    spec = property_spec(prop)
    ds = datasets.load(spec.dataset)
    split = protocol_split(prop, dataset=ds)
    orders = {s: draw(split.train, s) for s in config.seeds}
    largest = 0 if 0 in config.sizes else max(config.sizes)
    if len(split.train) <= POOL_LIMIT or largest == 0:
        drawn = split.train
    else:
        drawn = np.unique(np.concatenate([o[:largest] for o in orders.values()]))
    rows = np.union1d(drawn, split.test)
    local = {int(g): i for i, g in enumerate(rows)}
    records = [ds.records[int(i)] for i in rows]
    store = encoder.graph.store_for_records(records)
    h = encoder.embed_store(store)
    y = ds.targets(spec.column)[rows]
    to_local = np.vectorize(lambda g: local[int(g)], otypes=[np.int64])
    pool = to_local(split.train[np.isin(split.train, rows)])
    orders = {s: to_local(o[np.isin(o, rows)]) for s, o in orders.items()}
    groups = [r.reduced_formula for r in records] if spec.compositional else None
    data = PropertyData(prop, spec.unit, spec.log, y, pool, to_local(split.test), orders, groups, store, h, records,
                        time.perf_counter() - t0)  # fmt: skip
    log(f"{prop}: {len(rows):,} crystals featurised ({len(split.train):,} in the pool, {len(split.test):,} test) "
        f"in {data.feature_time_s:.0f} s")  # fmt: skip
    return data


def _predictions_path(out: Path, prop: str, size: int, seed: int, method: str, key: str) -> Path:
    return out / "predictions" / f"{prop}-{size_label(size)}-seed{seed}-{method}-{key}.npz"


def _head_predictions(out: Path, data: PropertyData, size: int, seed: int, key: str) -> dict[str, np.ndarray] | None:
    path = _predictions_path(out, data.prop, size, seed, "finetune_pretrained", key)
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        return {"val": np.asarray(z["val"]), "test": np.asarray(z["test"])}


def run_cell(data: PropertyData, size: int, seed: int, method: str, *, config: CurvesConfig, encoder: Any,
             out: Path, keys: dict[str, str], log: Callable[[str], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """Fit and score one cell; returns its journal row (fine-tuned predictions are saved for the blend)."""
    from crystalsearch.evaluate.curve_methods import blend_cell, finetune_cell, sklearn_cell
    from crystalsearch.structure.graph.store import atomic_write_npz

    chosen = data.chosen(size, seed)
    if method in ("rf_magpie", "blend"):
        data.magpie()  # featurised once per property (cached on disk), not part of a cell's time
    t0, c0 = time.perf_counter(), time.process_time()
    if method in FINETUNE:
        partial = out / PARTIAL / keys[method]
        heartbeat = _prefixed(log, f"{data.prop} {size_label(size)} seed {seed} {method}, ")
        preds, details = finetune_cell(data, chosen, seed=seed, pretrained=method == "finetune_pretrained",
                                       encoder=encoder, config=config, partial=partial, log=heartbeat)  # fmt: skip
        path = _predictions_path(out, data.prop, size, seed, method, keys[method])
        atomic_write_npz(path, val=preds["val"], test=preds["test"])
        pred = preds["test"]
    elif method == "blend":
        head = _head_predictions(out, data, size, seed, keys["finetune_pretrained"])
        if head is None:
            raise RuntimeError("the blend needs the fine-tuned (pretrained start) cell first")
        pred, details = blend_cell(data, chosen, seed=seed, head=head)
    else:
        pred, details = sklearn_cell(data, chosen, seed=seed, method=method)
    wall = time.perf_counter() - t0 + details.get("earlier_wall_s", 0.0)  # a resumed cell counts its whole time
    cpu = time.process_time() - c0 + details.get("earlier_cpu_s", 0.0)
    return {
        "key": keys[method], "property": data.prop, "size": size_label(size), "n_labels": len(chosen),
        "seed": seed, "method": method, "mae": float(np.mean(np.abs(pred - data.y[data.test]))), "unit": data.unit,
        "n_test": len(data.test), "wall_time_s": round(wall, 2), "cpu_time_s": round(cpu, 2), "details": details,
        "date": _now(),
    }  # fmt: skip


def _prefixed(log: Callable[[str], None] | None, prefix: str) -> Callable[[str], None] | None:
    return None if log is None else lambda message: log(prefix + message)


def _now() -> str:
    from crystalsearch.evaluate.results import now

    return now()


def _ordered(methods: Sequence[str]) -> list[str]:
    """Cheap methods first; the blend right after the fine-tuning it reuses."""
    order = ["ridge_frozen", "knn_frozen", "rf_frozen", "rf_magpie", "finetune_pretrained", "blend", "finetune_random"]
    return [m for m in order if m in methods]


def run_curves(config: CurvesConfig, *, out: Path, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Run (or resume) every cell, size by size (small sets first), then property, seed and method; returns
    the journal's rows for this configuration."""
    import torch

    from crystalsearch.model.embed import Encoder, select_device

    out = Path(out)
    select_device(config.device)  # an unavailable --device is refused before any featurising
    torch.set_num_threads(1)
    encoder = Encoder.load(config.encoder, device="cpu")
    done = {r["key"] for r in read_jsonl(out / CELLS)}
    datas: dict[str, PropertyData] = {}
    methods = _ordered(config.methods)
    if "blend" in methods and "finetune_pretrained" not in methods:
        methods.insert(methods.index("blend"), "finetune_pretrained")
    for size in config.sizes:
        for prop in config.properties:
            for seed in config.seeds:
                keys = {m: cell_key(prop, size, seed, m, config, encoder.hash) for m in methods}
                if all(k in done for k in keys.values()):
                    continue
                if prop not in datas:
                    datas[prop] = property_data(prop, config, encoder, log=log)
                data = datas[prop]
                if size and size >= len(data.pool):
                    continue  # the whole pool is the "all" point
                for method in methods:
                    if keys[method] in done or (method == "blend" and keys["finetune_pretrained"] not in done):
                        continue  # the blend follows its fine-tuning, in the process that ran it
                    row = _claim(data, size, seed, method, config=config, encoder=encoder, out=out, keys=keys,
                                 done=done, log=log)  # fmt: skip
                    if row is None:
                        log(f"{prop} {size_label(size)} seed {seed} {method}: another process has it; skipped")
                        continue
                    log(f"{prop} n={row['n_labels']} seed {seed} {method}: MAE {row['mae']:.4g} {row['unit']} "
                        f"({row['wall_time_s']:.1f} s)")  # fmt: skip
    return journal(out, config)


def _claim(data: PropertyData, size: int, seed: int, method: str, *, config: CurvesConfig, encoder: Any, out: Path,
           keys: dict[str, str], done: set[str], log: Callable[[str], None]) -> dict[str, Any] | None:  # fmt: skip
    """Run and journal one cell unless another process holds it (then None): several processes on one ``out``
    share the cells, each taking those no other holds. ``done`` gains the cell, and any finished meanwhile."""
    from crystalsearch.atomic import LockTimeout, locked

    folder = out / PARTIAL / keys[method]
    folder.mkdir(parents=True, exist_ok=True)
    row = None
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(locked(folder, timeout=0))
        except LockTimeout:
            return None
        done.update(r["key"] for r in read_jsonl(out / CELLS))  # finished by another process meanwhile?
        if keys[method] not in done:
            row = run_cell(data, size, seed, method, config=config, encoder=encoder, out=out, keys=keys, log=log)
            row["settings"] = {k: v for k, v in asdict(config).items() if k not in ("properties", "seeds")}
            append_jsonl(out / CELLS, row)
            done.add(keys[method])
    shutil.rmtree(folder, ignore_errors=True)  # journalled: its loop states go
    return row


def journal(out: Path, config: CurvesConfig | None = None) -> list[dict[str, Any]]:
    """The finished cells in ``out`` (those of ``config``'s properties, seeds and methods when given)."""
    rows = read_jsonl(Path(out) / CELLS)
    if config is None:
        return rows
    return [r for r in rows if r["property"] in config.properties and r["seed"] in config.seeds
            and r["method"] in config.methods]  # fmt: skip
