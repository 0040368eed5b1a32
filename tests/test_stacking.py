"""Residual stacking (crystalsearch/predict/stacking.py) on real Materials Project formation energies and Magpie
features."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from crystalsearch.predict.conformal import Calibration, magpie_of_structures
from crystalsearch.predict.stacking import MIN_FIT, ResidualStack, fit_residual

if TYPE_CHECKING:
    from crystalsearch.data.datasets import Record

N_FIT, N_VAL, N_TEST = 600, 1000, 400


@pytest.fixture(scope="module")
def data(mp_records: Sequence[Record]) -> dict[str, Any]:
    """2,000 real records (every 13th), their Magpie features, formation energies and oxygen fractions."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    recs = list(mp_records[::13][: N_FIT + N_VAL + N_TEST])
    x = magpie_of_structures([r.structure for r in recs])
    y = np.array([r.properties["formation_energy_per_atom"] for r in recs])
    oxygen = np.array([r.structure.composition.get_atomic_fraction("O") for r in recs])
    parts = {"fit": slice(0, N_FIT), "val": slice(N_FIT, N_FIT + N_VAL), "test": slice(N_FIT + N_VAL, None)}
    composition = HistGradientBoostingRegressor(random_state=0).fit(x[parts["fit"]], y[parts["fit"]])
    return {"x": x, "y": y, "oxygen": oxygen, "parts": parts, "composition": composition}


def members_with_bias(data: dict[str, Any], bias: float, part: str) -> np.ndarray:
    """Three 'heads' [3, n]: the label plus a chemistry-dependent error (bias x oxygen fraction) and noise."""
    sl = data["parts"][part]
    rng = np.random.default_rng(0)
    y, ox = data["y"][sl], data["oxygen"][sl]
    return np.stack([y + bias * ox + rng.normal(0, 0.02, len(y)) for _ in range(3)])


def fit(data: dict[str, Any], members: np.ndarray, y: np.ndarray, *, log: bool = False,
        composition: Any = None) -> tuple[ResidualStack, np.ndarray]:  # fmt: skip
    """The stack on the validation part, CI-sized (3 folds, 100 boosting rounds)."""
    return fit_residual(heads=members.mean(0), members=members, magpie=data["x"][data["parts"]["val"]], y=y, log=log,
                        composition=composition or data["composition"], folds=3, max_iter=100)  # fmt: skip


@pytest.fixture(scope="module")
def biased(data: dict[str, Any]) -> tuple[ResidualStack, np.ndarray]:
    return fit(data, members_with_bias(data, 0.4, "val"), data["y"][data["parts"]["val"]])


def test_stack_learns_a_chemistry_dependent_error_and_measures_itself_out_of_fold(
    data: dict[str, Any], biased: tuple[ResidualStack, np.ndarray]
) -> None:
    val, test = members_with_bias(data, 0.4, "val"), members_with_bias(data, 0.4, "test")
    sv, st = data["parts"]["val"], data["parts"]["test"]
    stack, oof = biased
    heads_mae = np.mean(np.abs(test.mean(0) - data["y"][st]))
    stacked_mae = np.mean(np.abs(stack.point(test.mean(0), test, data["x"][st]) - data["y"][st]))
    assert heads_mae > 0.05  # the oxygen-dependent error is real in this sample
    assert stacked_mae < 0.6 * heads_mae
    oof_mae = np.mean(np.abs(oof - data["y"][sv]))
    assert oof_mae < 0.7 * np.mean(np.abs(val.mean(0) - data["y"][sv]))
    assert "ResidualStack(log=False" in repr(stack) and len(stack.point(np.zeros(0), test[:, :0], data["x"][:0])) == 0


def test_stack_leaves_unbiased_heads_about_as_they_are(data: dict[str, Any]) -> None:
    val, test = members_with_bias(data, 0.0, "val"), members_with_bias(data, 0.0, "test")
    sv, st = data["parts"]["val"], data["parts"]["test"]
    stack, _ = fit(data, val, data["y"][sv])
    heads_mae = np.mean(np.abs(test.mean(0) - data["y"][st]))
    assert np.mean(np.abs(stack.point(test.mean(0), test, data["x"][st]) - data["y"][st])) < 1.15 * heads_mae


def test_log_space_stack_stays_positive(data: dict[str, Any]) -> None:
    """Moduli-like positive targets: the correction is made in log space, so predictions stay positive."""
    sv = data["parts"]["val"]
    y = np.exp(data["y"][sv])  # positive, spread like a modulus on a log scale
    members = np.stack([y * (1 + 0.5 * data["oxygen"][sv]) * s for s in (0.95, 1.0, 1.05)])
    log_comp = _LogComposition(data["composition"])
    stack, oof = fit(data, members, y, log=True, composition=log_comp)
    assert np.all(oof > 0) and np.all(stack.point(members.mean(0), members, data["x"][sv]) > 0)
    assert np.mean(np.abs(oof - y)) < np.mean(np.abs(members.mean(0) - y))


@dataclasses.dataclass
class _LogComposition:
    model: Any

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict(x))  # already a log-scale quantity for the exp(y) target


def test_predict_uses_the_residual_stack_when_calibration_says_so(
    biased: tuple[ResidualStack, np.ndarray], nacl: Any, si: Any
) -> None:
    from crystalsearch.predict.predictor import Predictor

    pred = Predictor.load("formation_energy")
    assert pred.calibration is not None
    structures = [nacl, si]
    values = pred.predict_values(structures)
    stack, _ = biased
    blend_point, *_ = pred.point_and_interval(structures, values, coverage=0.9)
    pred.calibration = dataclasses.replace(pred.calibration, stack="residual")
    pred.composition = stack
    point, lo, hi, _ = pred.point_and_interval(structures, values, coverage=0.9)
    expected = stack.point(values.mean(0), values, magpie_of_structures(structures))
    np.testing.assert_allclose(point, expected)
    assert lo is not None and hi is not None and np.all(lo <= point) and np.all(point <= hi)
    assert not np.allclose(point, blend_point)
    with pytest.raises(ValueError, match="stack"):
        dataclasses.replace(pred.calibration, stack="average")
    assert MIN_FIT >= 1000 and isinstance(stack, ResidualStack) and isinstance(pred.calibration, Calibration)


# -- the composition model file: trees as arrays, predicting exactly as scikit-learn ----------------------------
def test_exported_trees_predict_exactly_as_sklearn_including_missing_values(data: dict[str, Any]) -> None:
    """Real Magpie features; a regressor trained with NaN holes (so splits learn where missing values go) and
    one without (NaN at prediction follows the larger child), both losses the composition models use."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    from crystalsearch.predict.boosting import TreeEnsemble

    x, y = data["x"].copy(), data["y"]
    rng = np.random.default_rng(3)
    holes = x.copy()
    holes[rng.random(x.shape) < 0.05] = np.nan  # 5% missing, as matminer leaves for odd compositions
    fit = data["parts"]["fit"]
    with_nan = HistGradientBoostingRegressor(loss="absolute_error", max_iter=60, random_state=0).fit(holes[fit], y[fit])
    for model in (data["composition"], with_nan):
        trees = TreeEnsemble.from_sklearn(model)
        assert trees.n_trees == len(model._predictors) and bool(trees.missing_left.any())
        for features in (x, holes):
            ours, theirs = trees.predict(features), model.predict(features)
            np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
            assert np.array_equal(ours, theirs)  # same summation order: identical to the bit
    with pytest.raises(ValueError, match="features of shape"):
        TreeEnsemble.from_sklearn(with_nan).predict(x[:, :-1])


def test_composition_file_round_trips_and_refuses_what_it_cannot_export(
    data: dict[str, Any], biased: tuple[ResidualStack, np.ndarray], tmp_path: Path
) -> None:
    from sklearn.ensemble import HistGradientBoostingRegressor

    from crystalsearch.predict.boosting import TreeEnsemble
    from crystalsearch.predict.stacking import load_composition, save_composition

    stack, _ = biased
    test = members_with_bias(data, 0.4, "test")
    xt = data["x"][data["parts"]["test"]]
    save_composition(tmp_path / "stack.npz", stack)
    loaded = load_composition(tmp_path / "stack.npz", stack="residual")
    assert isinstance(loaded, ResidualStack) and isinstance(loaded.model, TreeEnsemble) and loaded.log is False
    assert np.array_equal(loaded.point(test.mean(0), test, xt), stack.point(test.mean(0), test, xt))
    save_composition(tmp_path / "blend.npz", data["composition"])
    blend = load_composition(tmp_path / "blend.npz", stack="blend")
    assert np.array_equal(blend.predict(xt), data["composition"].predict(xt))
    fit = data["parts"]["fit"]
    poisson = HistGradientBoostingRegressor(loss="poisson", max_iter=5).fit(data["x"][fit], np.abs(data["y"][fit]))
    with pytest.raises(ValueError, match="loss"):
        TreeEnsemble.from_sklearn(poisson)  # log link: its raw sums are not its predictions
    cats = np.column_stack([data["x"][fit, :3], np.arange(len(data["y"][fit])) % 4])
    categorical = HistGradientBoostingRegressor(categorical_features=[3], max_iter=5).fit(cats, data["y"][fit])
    with pytest.raises(ValueError, match="categorical"):
        TreeEnsemble.from_sklearn(categorical)


def test_calibration_fit_writes_arrays_and_a_manifest_that_loading_checks(
    data: dict[str, Any], tmp_path: Path, nacl: Any, si: Any
) -> None:
    """What `evaluate calibration --fit` installs for a blend (the melting-temperature heads' measured result):
    composition.npz predicting as the fitted regressor, a manifest of both files, no pickle left behind."""
    import json
    import shutil

    from crystalsearch.model.checkpoint import shipped_models_dir
    from crystalsearch.predict.boosting import TreeEnsemble
    from crystalsearch.predict.calibration import _install
    from crystalsearch.predict.conformal import load_calibration
    from crystalsearch.predict.predictor import Predictor

    folder = tmp_path / "melting_temperature"
    shutil.copytree(shipped_models_dir() / "heads" / "melting_temperature", folder)
    (folder / "composition.pkl").write_bytes(b"left by an earlier version")
    (folder / "composition.npz").unlink()
    runs = json.loads((Path(__file__).parents[1] / "training/results/calibration/calibration.json").read_text())
    (result,) = [r for r in runs["results"] if r["property"] == "melting_temperature"]
    calibration = load_calibration(folder)
    assert calibration is not None and calibration.stack == "blend" and calibration.weight < 1
    _install(folder, calibration, data["composition"], result)
    assert not (folder / "composition.pkl").exists()
    recorded = json.loads((folder / "manifest.json").read_text())["sha256"]
    assert sorted(recorded) == ["calibration.json", "composition.npz"]
    pred = Predictor.load("melting_temperature", folder=folder)
    assert isinstance(pred.composition, TreeEnsemble)
    magpie = magpie_of_structures([nacl, si])
    assert np.array_equal(pred.composition.predict(magpie), data["composition"].predict(magpie))
    _install(folder, calibration, None, result)  # heads alone: the composition model and its record go
    assert not (folder / "composition.npz").exists()
    assert sorted(json.loads((folder / "manifest.json").read_text())["sha256"]) == ["calibration.json"]
