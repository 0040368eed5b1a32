"""Residual stacking: a gradient-boosted correction of a head ensemble's mean, fitted where no member trained.

The heads learn from structure; a composition model (gradient boosting on Magpie features, trained on the
protocol's train part) knows chemistry. The linear blend ``w * heads + (1 - w) * composition`` of
:mod:`crystalsearch.predict.conformal` mixes the two with one number. The residual stack learns *where* the heads
err instead: ``t(ŷ) = t(heads) + r(x)`` with ``r`` a gradient-boosted model (absolute-error loss, so it
targets the median error that MAE measures) on ``x = [Magpie features, t(heads), members' spread, t(composition
model)]``, ``t`` the head's target space (log for moduli and conductivity). ``r`` is fitted on the
validation split: the members stopped on it but never trained on it, so its residuals are honest ones (the
train part's are not: the members fit it). Out-of-fold predictions on validation measure the stack there,
and ``evaluate calibration`` keeps it only when it beats the blend on validation; the calibration and test
splits stay untouched, so the conformal intervals remain valid.

The composition model of a heads folder (``composition.npz``, ``conformal.COMPOSITION_MODEL``) holds the fitted
trees as plain arrays (:mod:`crystalsearch.predict.boosting`): the Magpie model of a blend, or a residual stack's
two models; :func:`save_composition` writes it and :func:`load_composition` reads it without running code.

Importing this module is cheap (numpy only; scikit-learn is imported when fitting).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from crystalsearch.errors import CheckpointError
from crystalsearch.predict.boosting import TreeEnsemble
from crystalsearch.predict.conformal import from_target, member_spread, to_target

MIN_FIT = 1000  # validation materials needed to fit the stack (smaller splits keep the blend)
FOLDS = 5
FILE_FORMAT = 1


class Regressor(Protocol):
    """What the stack needs of a model: predictions [n] from features [n, d] (sklearn's or a TreeEnsemble)."""

    def predict(self, x: np.ndarray) -> np.ndarray: ...


def _regressor(seed: int = 0, max_iter: int = 300) -> Any:
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(loss="absolute_error", learning_rate=0.05, max_iter=max_iter,
                                         l2_regularization=1.0, early_stopping=True, validation_fraction=0.15,
                                         random_state=seed)  # fmt: skip


@dataclass
class ResidualStack:
    """``t⁻¹(t(heads) + r(x))`` (see the module docstring); ``composition`` predicts in target space."""

    log: bool
    model: Regressor
    composition: Regressor

    def __repr__(self) -> str:
        model, comp = type(self.model).__name__, type(self.composition).__name__
        return f"ResidualStack(log={self.log}, model={model}, composition={comp})"

    def point(self, heads: np.ndarray, members: np.ndarray, magpie: np.ndarray) -> np.ndarray:
        """Stacked point predictions [n] (units) from the ensemble mean ``heads`` [n] and ``members`` [m, n]."""
        if len(heads) == 0:
            return np.asarray(heads, dtype=np.float64)
        x = features(heads, members, magpie, composition=self.composition, log=self.log)
        return from_target(to_target(heads, log=self.log) + self.model.predict(x), log=self.log)


def features(heads: np.ndarray, members: np.ndarray, magpie: np.ndarray, *, composition: Regressor,
             log: bool) -> np.ndarray:  # fmt: skip
    """[n, d + 3]: Magpie (``magpie`` [n, d]), t(heads) [n], spread of t(members) [m, n], t(composition)."""
    spread = member_spread(members, log=log)
    return np.column_stack([magpie, to_target(heads, log=log), spread, composition.predict(magpie)])


def fit_residual(*, heads: np.ndarray, members: np.ndarray, magpie: np.ndarray, y: np.ndarray, log: bool,
                 composition: Regressor, folds: int = FOLDS, seed: int = 0,
                 max_iter: int = 300) -> tuple[ResidualStack, np.ndarray]:  # fmt: skip
    """Fit the stack on one split (validation) and return it with out-of-fold point predictions [n] there
    (each material predicted by a stack fitted on the other folds: an honest validation MAE)."""
    from sklearn.model_selection import KFold

    x = features(heads, members, magpie, composition=composition, log=log)
    target = to_target(y, log=log) - to_target(heads, log=log)
    oof = np.zeros(len(y))
    for fit, held in KFold(n_splits=folds, shuffle=True, random_state=seed).split(x):
        oof[held] = _regressor(seed, max_iter).fit(x[fit], target[fit]).predict(x[held])
    stack = ResidualStack(log=log, model=_regressor(seed, max_iter).fit(x, target), composition=composition)
    return stack, from_target(to_target(heads, log=log) + oof, log=log)


def save_composition(path: Path, model: Any) -> None:
    """Write a composition model file (atomically): ``model`` a fitted HistGradientBoostingRegressor (the
    Magpie model of a blend), a :class:`TreeEnsemble`, or a :class:`ResidualStack` of either."""
    from crystalsearch.atomic import atomic_write

    def trees(m: Any) -> TreeEnsemble:
        return m if isinstance(m, TreeEnsemble) else TreeEnsemble.from_sklearn(m)

    arrays: dict[str, Any] = {"format_version": np.array(FILE_FORMAT, dtype=np.int64)}
    if isinstance(model, ResidualStack):
        arrays.update(trees(model.composition).arrays("composition"))
        arrays.update(trees(model.model).arrays("residual"))
        arrays["residual.log"] = np.array(model.log)
    else:
        arrays.update(trees(model).arrays("composition"))
    atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays))


def load_composition(path: Path, *, stack: str) -> TreeEnsemble | ResidualStack:
    """Read a composition model file: the Magpie model (``stack="blend"``) or the residual stack
    (``"residual"``), arrays only (``allow_pickle=False``); :class:`CheckpointError` naming the file otherwise."""
    try:
        with path.open("rb") as fh:
            if fh.read(4) != b"PK\x03\x04":
                raise ValueError("not an .npz archive")
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        version = arrays.get("format_version")
        if version is None or version.shape != () or int(version) != FILE_FORMAT:
            raise ValueError(f"expected format_version {FILE_FORMAT}")
        composition = TreeEnsemble.from_arrays(arrays, "composition")
        if stack != "residual":
            return composition
        log = arrays.get("residual.log")
        if log is None or log.shape != () or log.dtype != bool:
            raise ValueError("missing the residual stack's target space (residual.log)")
        return ResidualStack(log=bool(log), model=TreeEnsemble.from_arrays(arrays, "residual"), composition=composition)
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"{path}: unreadable composition model ({exc})") from None
