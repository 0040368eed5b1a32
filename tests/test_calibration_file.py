"""``calibration.json`` is checked when a heads folder is loaded: ranges and types of every field, and the property
must be the heads' own. Each fault is one line naming the file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crystalsearch.errors import InputError
from crystalsearch.predict.conformal import FILE, load_calibration
from crystalsearch.predict.predictor import heads_dir

SHIPPED = heads_dir("bulk_modulus")


def _heads(tmp_path: Path, prop: str = "bulk_modulus") -> Path:
    """A copy of the shipped heads' calibration and first member's model.json (what the checks read)."""
    folder = tmp_path / prop
    (folder / "seed0").mkdir(parents=True)
    shutil.copy(heads_dir(prop) / FILE, folder / FILE)
    shutil.copy(heads_dir(prop) / "seed0" / "model.json", folder / "seed0" / "model.json")
    return folder


def _edit(folder: Path, **changes: Any) -> Path:
    path = folder / FILE
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, **changes}))
    return path


def test_the_shipped_calibrations_load() -> None:
    for prop in ("band_gap", "bulk_modulus", "formation_energy", "shear_modulus"):
        calibration = load_calibration(heads_dir(prop))
        assert calibration is not None and calibration.property == prop and calibration.beta > 0


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"beta": -0.05}, "beta must be a finite number above 0"),
        ({"beta": "0.1"}, "beta must be"),
        ({"weight": 1.5}, "weight must be a number from 0 to 1"),
        ({"weight": -0.2}, "weight must be"),
        ({"weight": "0.9"}, "weight must be"),
        ({"scores": [0.5, 0.1]}, "sorted"),
        ({"scores": [-1.0, 0.1]}, "scores must be"),
        ({"score": "relative"}, "score must be one of"),
        ({"ood_quantile": 2}, "ood_quantile"),
        ({"floor": "zero"}, "floor"),
        ({"log": "yes"}, "log true or false"),
        ({"extra": 1}, "unknown field"),
    ],
)
def test_out_of_range_values_are_refused_naming_the_file(tmp_path: Path, changes: dict[str, Any], reason: str) -> None:
    path = _edit(_heads(tmp_path), **changes)
    with pytest.raises(InputError, match=reason) as err:
        load_calibration(path.parent)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)


def test_negative_beta_would_turn_intervals_inside_out(tmp_path: Path) -> None:
    """Why ``beta`` is checked: with ``beta < -σ`` the bounds swap (lower above upper)."""
    calibration = load_calibration(_heads(tmp_path))
    assert calibration is not None
    members = np.array([[100.0], [104.0], [98.0]])
    lo, hi = calibration.interval(members.mean(axis=0), members, 0.9)
    assert lo[0] < hi[0]
    bad = type(calibration)(**{**calibration.__dict__, "beta": -1.0})
    lo, hi = bad.interval(members.mean(axis=0), members, 0.9)
    assert lo[0] > hi[0]


def test_another_propertys_calibration_is_refused(tmp_path: Path) -> None:
    folder = _heads(tmp_path)
    shutil.copy(heads_dir("shear_modulus") / FILE, folder / FILE)
    with pytest.raises(InputError, match="calibration of 'shear_modulus', but these heads predict 'bulk_modulus'"):
        load_calibration(folder)
    with pytest.raises(InputError, match="these heads predict 'band_gap'"):
        load_calibration(folder, prop="band_gap")


def test_unreadable_calibration_is_one_line(tmp_path: Path) -> None:
    folder = _heads(tmp_path)
    (folder / FILE).write_bytes(b"\xff{not json")
    with pytest.raises(InputError, match="unreadable calibration"):
        load_calibration(folder)
