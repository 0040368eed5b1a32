"""The settings and methods of the learning curves (:mod:`crystalsearch.evaluate.curves`), one function each.

Each method takes the property's data, the training set (local row indices) and the seed, and returns the test
predictions (units) with what it chose (learning rate, epochs, penalty, weight).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

K_NEIGHBOURS = 5
LRS = (1e-3, 3e-4)
VAL_FRACTION = 0.2
PROPERTIES = ("bulk_modulus", "shear_modulus", "melting_temperature", "thermal_conductivity", "band_gap")
SIZES = (25, 50, 100, 200, 500, 1000, 0)  # 0 = the whole protocol train part ("all")
FINETUNE = ("finetune_pretrained", "finetune_random")
METHODS = (*FINETUNE, "ridge_frozen", "rf_frozen", "knn_frozen", "rf_magpie", "blend")


class PropertyData(Protocol):
    """What the methods read of a property (:class:`crystalsearch.evaluate.curves.PropertyData`)."""

    prop: str
    log: bool
    y: np.ndarray
    h: np.ndarray
    test: np.ndarray
    store: Any

    def magpie(self) -> np.ndarray: ...

    def groups_of(self, idx: np.ndarray) -> list[str] | None: ...


@dataclass(frozen=True)
class CurvesConfig:
    """Settings of ``crystalsearch evaluate curves`` (the fine-tuning budget is part of each cell's key)."""

    properties: tuple[str, ...] = PROPERTIES
    sizes: tuple[int, ...] = SIZES
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    methods: tuple[str, ...] = METHODS
    encoder: str = "crystalclr_cs"
    lrs: tuple[float, ...] = LRS
    passes: int = 4000  # crystals seen per learning rate (epochs = passes / fitting-set size, clipped)
    min_epochs: int = 20
    max_epochs: int = 120
    patience: int = 15
    device: str = "cpu"  # where the fine-tuning cells train ("cuda", "auto"); not part of a cell's key


def budget(n_fit: int, config: CurvesConfig) -> tuple[int, int]:
    """(most epochs, batch size) for a fitting set of ``n_fit`` crystals."""
    epochs = int(np.clip(np.ceil(config.passes / max(n_fit, 1)), config.min_epochs, config.max_epochs))
    batch = 16 if n_fit <= 200 else 32 if n_fit <= 1000 else 128
    return epochs, batch


def fit_val(chosen: np.ndarray, *, seed: int, groups: Sequence[str] | None) -> tuple[np.ndarray, np.ndarray]:
    """The fitting and validation parts of a training set (validation: :data:`VAL_FRACTION`, seeded)."""
    from crystalsearch.data.records import make_split

    s = make_split(len(chosen), seed=seed * 100_003 + len(chosen), fractions=(1 - VAL_FRACTION, VAL_FRACTION, 0.0),
                   groups=groups)  # fmt: skip
    return chosen[np.sort(s.train)], chosen[np.sort(np.concatenate([s.val, s.test]))]


def to_t(y: np.ndarray, log: bool) -> np.ndarray:
    return np.log(y) if log else np.asarray(y, dtype=np.float64)


def from_t(t: np.ndarray, log: bool) -> np.ndarray:
    return np.exp(t) if log else t


HEARTBEAT_S = 60.0  # a long cell says where it is at most this often (short cells stay silent)


def _heartbeat(log: Callable[[str], None] | None, what: str, epochs: int) -> Callable[[int, float, float], None]:
    """An ``on_epoch`` that logs a progress line when :data:`HEARTBEAT_S` have passed since the last one."""
    last = [time.perf_counter()]

    def on_epoch(epoch: int, val_mae: float, best: float) -> None:
        if log is not None and time.perf_counter() - last[0] >= HEARTBEAT_S:
            last[0] = time.perf_counter()
            log(f"{what}: epoch {epoch}/{epochs}, validation MAE {val_mae:.4g} (best {best:.4g})")

    return on_epoch


def finetune_cell(data: PropertyData, chosen: np.ndarray, *, seed: int, pretrained: bool, encoder: Any,
                  config: CurvesConfig, partial: Path | None = None, log: Callable[[str], None] | None = None,
                  ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:  # fmt: skip
    """Fine-tune from the encoder (``pretrained``) or from random weights of its architecture; every learning
    rate of the grid runs with early stopping on the validation part, the best on validation is kept.
    Returns predictions on ``val`` and ``test`` (units) and the run's details.

    With ``partial`` (a folder) each learning rate's loop state is saved there after every epoch and a cell
    finding it continues where it stopped, with the same result; ``details["earlier_wall_s"]`` and
    ``["earlier_cpu_s"]`` are the seconds earlier processes spent on it."""
    import torch

    from crystalsearch.model.cgcnn import PropertyModel
    from crystalsearch.train.config import FinetuneConfig
    from crystalsearch.train.finetune import TargetTransform, _train_one, predict_store
    from crystalsearch.train.loop_state import spent

    fit, val = fit_val(chosen, seed=seed, groups=data.groups_of(chosen))
    epochs, batch = budget(len(fit), config)
    ft = FinetuneConfig(property=data.prop, lrs=config.lrs, epochs=epochs, patience=config.patience,
                        batch_size=min(batch, max(2, len(fit))), compile=False)  # fmt: skip
    transform = TargetTransform.fit(data.y[fit], log=data.log)
    from crystalsearch.model.embed import select_device

    device = select_device(config.device)
    runs: dict[float, tuple[Any, float, int]] = {}
    earlier = {"earlier_wall_s": 0.0, "earlier_cpu_s": 0.0}
    for lr in config.lrs:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = PropertyModel(encoder.model.config)
        if pretrained:
            model.encoder.load_state_dict(encoder.model.state_dict())
        loop = None if partial is None else partial / f"lr{lr:g}.pt"
        if loop is not None:
            wall, cpu = spent(loop)
            earlier["earlier_wall_s"] += wall
            earlier["earlier_cpu_s"] += cpu
        runs[lr] = _train_one(model, data.store, data.y, fit, val, transform=transform, config=ft, lr=lr, device=device,
                              rng=np.random.default_rng([seed, 7]), checkpoint=loop,
                              on_epoch=_heartbeat(log, f"lr {lr:g}", epochs))  # fmt: skip
    best = min(runs, key=lambda lr: runs[lr][1])
    model, val_mae, epochs_run = runs[best]
    preds = {part: transform.inverse(predict_store(model, data.store, idx, device=device))
             for part, idx in (("val", val), ("test", data.test))}  # fmt: skip
    details = {"lr": best, "lr_grid": {f"{lr:g}": r[1] for lr, r in runs.items()}, "epochs_run": epochs_run,
               "epochs_max": epochs, "batch_size": ft.batch_size, "patience": config.patience, "n_fit": len(fit),
               "n_val": len(val), "val_mae": val_mae, "device": str(device)}  # fmt: skip
    if earlier["earlier_wall_s"]:
        details.update({k: round(v, 2) for k, v in earlier.items()})
    return preds, details


def blend_cell(data: PropertyData, chosen: np.ndarray, *, seed: int,
               head: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, Any]]:  # fmt: skip
    """``w * head + (1 - w) * composition model`` as the shipped heads blend (gradient boosting on Magpie in
    target space, trained on the fitting part; ``w`` on the validation part). ``head``: the fine-tuned
    (pretrained start) predictions on ``val`` and ``test``."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    from crystalsearch.predict.calibration import fit_weight

    fit, val = fit_val(chosen, seed=seed, groups=data.groups_of(chosen))
    x = data.magpie()
    gb = HistGradientBoostingRegressor(random_state=0).fit(x[fit], to_t(data.y[fit], data.log))
    comp = {p: from_t(gb.predict(x[idx]), data.log) for p, idx in (("val", val), ("test", data.test))}
    w = fit_weight(head["val"], comp["val"], data.y[val])
    return w * head["test"] + (1 - w) * comp["test"], {"weight": w, "n_fit": len(fit), "n_val": len(val)}


def sklearn_cell(data: PropertyData, chosen: np.ndarray, *, seed: int,
                 method: str) -> tuple[np.ndarray, dict[str, Any]]:  # fmt: skip
    """Ridge, random forest or kNN on the frozen h (or a random forest on Magpie), fitted on all ``chosen``."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import RidgeCV
    from sklearn.neighbors import KNeighborsRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = data.magpie() if method == "rf_magpie" else data.h
    t = to_t(data.y[chosen], data.log)
    details: dict[str, Any] = {"n_fit": len(chosen)}
    if method == "ridge_frozen":
        ridge = RidgeCV(alphas=np.logspace(-3, 4, 15))
        model = make_pipeline(StandardScaler(), ridge).fit(x[chosen], t)
        details["alpha"] = float(ridge.alpha_)
    elif method == "knn_frozen":
        k = min(K_NEIGHBOURS, len(chosen))
        model = KNeighborsRegressor(n_neighbors=k, metric="cosine").fit(x[chosen], t)
        details["k"] = k
    elif method in ("rf_frozen", "rf_magpie"):
        model = RandomForestRegressor(random_state=seed, n_jobs=1).fit(x[chosen], t)
    else:
        raise ValueError(f"unknown method {method!r}")
    return from_t(model.predict(x[data.test]), data.log), details
