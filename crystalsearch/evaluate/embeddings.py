"""Table 1, top: a default scikit-learn random forest on frozen representations.

For each property (``bulk_modulus``, ``thermal_conductivity``, ``melting_temperature``; datasets and
units from :data:`crystalsearch.train.finetune.PROPERTIES`) and each method (frozen CrystalCLR /
CrystalCLR+CS embeddings, matminer SiteStats / SineCoulomb / Magpie fingerprints, and the mean
predictor), the forest is fitted on the training part of ``dataset.split(seed=s)`` (80/10/10 by
material, the same splits as fine-tuning, records without a finite label left out; the validation part
is unused: a default forest has nothing to tune) and scored on the test part, for every seed. Targets
are raw (no log transform); missing fingerprint values (matminer failures) are replaced by the training
columns' means.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crystalsearch.evaluate.features import (
    DEFAULT_ENCODERS,
    MEAN,
    embeddings,
    encoder_source,
    fingerprint_matrix,
    is_fingerprint,
    label,
    load_encoder,
    validate_methods,
)
from crystalsearch.evaluate.record import update
from crystalsearch.evaluate.results import command_line, mean_std, now
from crystalsearch.progress import Progress

PROPERTIES = ("bulk_modulus", "thermal_conductivity", "melting_temperature")
METHODS = ("crystalclr", "crystalclr_cs", "sitestats", "sine_coulomb", "magpie", MEAN)
FINGERPRINT_SOURCES = {
    "sitestats": 'matminer SiteStatsFingerprint.from_preset("CrystalNNFingerprint_ops")',
    "sine_coulomb": "matminer SineCoulombMatrix(flatten=True), fitted on the dataset",
    "magpie": 'matminer ElementProperty.from_preset("magpie")',
}


@dataclass(frozen=True)
class EmbeddingsConfig:
    """Settings of ``crystalsearch evaluate embeddings``."""

    properties: tuple[str, ...] = PROPERTIES
    methods: tuple[str, ...] = METHODS
    encoders: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_ENCODERS))
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    max_structures: int = 0  # 0 = the whole dataset, else its first N records
    jobs: int = 1  # RandomForestRegressor(n_jobs=...)
    device: str = "cpu"  # for the encoders' forward passes


def impute(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Replace non-finite entries by the training column means (0 for columns with no finite value)."""

    def clean(x: np.ndarray) -> np.ndarray:
        x = np.array(x, dtype=np.float64)
        x[~np.isfinite(x)] = np.nan
        return x

    tr = clean(train)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        mu = np.nanmean(tr, axis=0) if tr.shape[0] else np.zeros(tr.shape[1])
    mu = np.where(np.isfinite(mu), mu, 0.0)
    out = []
    for x in (tr, *(clean(o) for o in others)):
        bad = np.isnan(x)
        x[bad] = np.take(mu, np.nonzero(bad)[1])
        out.append(x)
    return out


def fit_predict_rf(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, *, seed: int,
                   jobs: int = 1) -> np.ndarray:  # fmt: skip
    """Default ``RandomForestRegressor`` (random_state=seed) fitted on train, predictions on test."""
    from sklearn.ensemble import RandomForestRegressor

    x_train, x_test = impute(x_train, x_test)
    model = RandomForestRegressor(random_state=seed, n_jobs=jobs)
    model.fit(x_train, y_train)
    return np.asarray(model.predict(x_test))


def property_data(prop: str, *, max_structures: int, seeds: Sequence[int]) -> dict[str, Any]:
    """Records, targets and the per-seed splits (restricted to the first ``max_structures`` records)."""
    from crystalsearch.data import datasets
    from crystalsearch.train.finetune import property_spec

    spec = property_spec(prop)
    ds = datasets.load(spec.dataset)
    n = min(len(ds), max_structures) if max_structures else len(ds)
    y = ds.targets(spec.column)[:n]
    splits = {}
    for seed in seeds:  # missing or implausible labels are left out, as in fine-tuning
        split = ds.split(seed=seed).labelled(y)
        splits[seed] = (split.train, split.val, split.test)
    return {"spec": spec, "dataset": ds, "records": ds.records[:n], "y": y, "splits": splits, "n": n}


def evaluate_embeddings(
    config: EmbeddingsConfig,
    *,
    out: Path | None,
    progress: Progress | None = None,
    cache: Path | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Run the random-forest evaluation; each finished (property, method) cell is merged into
    ``out/table1.json`` (``random_forest`` half) and the report right away. Returns the cells."""
    progress = progress or Progress(False)
    specs = validate_methods(config.methods, config.encoders)
    encoders = {m: load_encoder(spec, device=config.device) for m, spec in specs.items()}  # fail early
    sources = {m: asdict(encoder_source(m, specs[m], enc)) for m, enc in encoders.items()}
    command = command_line()
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for prop in config.properties:
        data = property_data(prop, max_structures=config.max_structures, seeds=config.seeds)
        records, y, splits = data["records"], data["y"], data["splits"]
        for method in config.methods:
            t0, c0 = time.perf_counter(), time.process_time()
            bar = progress.task(f"{prop}: {label(method)} features", len(records))
            if method == MEAN:
                x = None
            elif is_fingerprint(method):
                x = fingerprint_matrix(records, method, full=data["dataset"].records, directory=cache, progress=bar)
            else:
                x = embeddings(encoders[method], records, progress=bar)
            bar.complete()
            t_features = time.perf_counter() - t0
            maes, fit_times = [], []
            fits = progress.task(f"{prop}: {label(method)} fits", len(config.seeds))
            for seed in config.seeds:
                train, _val, test = splits[seed]
                t1 = time.perf_counter()
                if x is None:
                    pred = np.full(len(test), y[train].mean())
                else:
                    pred = fit_predict_rf(x[train], y[train], x[test], seed=seed, jobs=config.jobs)
                fit_times.append(time.perf_counter() - t1)
                maes.append(float(np.mean(np.abs(pred - y[test]))))
                fits(1)
            mean, std = mean_std(maes)
            train0, val0, test0 = splits[config.seeds[0]]
            cell = {
                "label": label(method), "maes": maes, "seeds": list(config.seeds), "unit": data["spec"].unit,
                "dataset": data["spec"].dataset, "column": data["spec"].column, "n_records": data["n"],
                "n_dataset": len(data["dataset"]), "n_train": len(train0), "n_val": len(val0), "n_test": len(test0),
                "n_features": 0 if x is None else int(x.shape[1]),
                "nan_fraction": 0.0 if x is None else float(np.mean(~np.isfinite(x))),
                "features": "training mean" if x is None else FINGERPRINT_SOURCES.get(method, "frozen encoder h"),
                "encoder": sources.get(method), "model": "mean of training targets" if x is None else
                f"RandomForestRegressor() sklearn defaults, random_state=seed, n_jobs={config.jobs}",
                "feature_time_s": round(t_features, 2), "fit_time_s": [round(t, 2) for t in fit_times],
                "wall_time_s": round(time.perf_counter() - t0, 2),
                "cpu_time_s": round(time.process_time() - c0, 2), "max_structures": config.max_structures,
                "date": now(), "command": command, "mae_mean": mean, "mae_std": std,
            }  # fmt: skip
            results.setdefault(prop, {})[method] = cell
            progress.log(f"{prop:22s} {label(method):26s} MAE {mean:.4g} ± {std:.2g} {data['spec'].unit}")
            if out is not None:
                update(out, half="random_forest", cells={prop: {method: cell}})
    return results
