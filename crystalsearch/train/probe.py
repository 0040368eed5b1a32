"""Validation signals for pretraining: a linear probe of bulk modulus on frozen embeddings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from crystalsearch.structure.graph.settings import GraphSettings


@dataclass(frozen=True)
class ProbeData:
    """Graphs and log-targets of the probe set with a fixed train/validation split."""

    store: object  # GraphStore
    log_target: np.ndarray
    train: np.ndarray
    val: np.ndarray


def load_probe(*, max_structures: int = 0, graph: GraphSettings) -> ProbeData:
    """The shipped ``mp_elasticity`` set (bulk modulus, GPa), split 80/10/10 with seed 0, as graphs built
    with the encoder's settings ``graph``."""
    from crystalsearch.data import datasets

    ds = datasets.load("mp_elasticity")
    records = ds.records[:max_structures] if max_structures else ds.records
    split = ds.split(seed=0)
    n = len(records)
    train = split.train[split.train < n]
    val = split.val[split.val < n]
    store = graph.store_for_records(records)
    target = ds.targets("bulk_modulus_vrh")[:n]
    return ProbeData(store=store, log_target=np.log(target), train=train, val=val)


def ridge_probe_mae(h: np.ndarray, data: ProbeData, *, alpha: float = 1e-2) -> float:
    """Fit ridge regression of log K on standardised h (train split); MAE in GPa on the val split."""
    x_train, x_val = h[data.train].astype(np.float64), h[data.val].astype(np.float64)
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-8
    x_train, x_val = (x_train - mu) / sd, (x_val - mu) / sd
    y = data.log_target[data.train]
    y_mean = y.mean()
    a = x_train.T @ x_train + alpha * len(y) * np.eye(x_train.shape[1])
    w = np.linalg.solve(a, x_train.T @ (y - y_mean))
    pred = np.exp(x_val @ w + y_mean)
    return float(np.mean(np.abs(pred - np.exp(data.log_target[data.val]))))
