"""Loading a model never runs code: booby-trapped files in a heads folder, a model folder and a run folder are
refused with one line naming the file (exit code 2), and the payload they carry never runs (no marker file)."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from crystalsearch.cli.app import app
from crystalsearch.model.checkpoint import shipped_models_dir

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PROP = "melting_temperature"  # the smallest shipped heads (a blend with a composition model)


class Payload:
    """Unpickling this creates ``marker`` — through a shell (``os.system``) or through ``open``."""

    def __init__(self, marker: Path, how: str) -> None:
        self.marker, self.how = marker, how

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str, ...]]:
        if self.how == "system":
            return os.system, (f"touch {self.marker}",)
        return open, (str(self.marker), "w")


@pytest.fixture(params=["system", "open"])
def trap(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Payload, Path]:
    marker = tmp_path / f"payload-ran-{request.param}"
    payload = Payload(marker, request.param)
    probe = tmp_path / "probe.pkl"  # the payload is real: unpickling it the unsafe way creates the marker
    probe.write_bytes(pickle.dumps(payload))
    pickle.loads(probe.read_bytes())  # noqa: S301 - proves the trap works, on a file this test just wrote
    assert marker.exists()
    marker.unlink()
    return payload, marker


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def heads_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "heads"
    shutil.copytree(shipped_models_dir() / "heads" / PROP, folder)
    return folder


def rewrite_manifest(folder: Path, name: str) -> None:
    """What an attacker who can write the folder would also do: record the planted file's checksum."""
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["sha256"][name] = sha256(folder / name)
    path.write_text(json.dumps(manifest))


def refused(args: list[str], named: Path, marker: Path, *, why: str) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and str(named) in lines[0] and why in lines[0], result.stderr
    assert "Traceback" not in result.output
    assert not marker.exists(), "the payload ran"


def predict(folder: Path) -> list[str]:
    return ["predict", "-p", PROP, "--heads", str(folder), str(EXAMPLES / "NaCl.cif"), "--no-evidence", "--json"]


def test_shipped_heads_load_from_arrays_with_checked_checksums() -> None:
    from crystalsearch.predict.boosting import TreeEnsemble
    from crystalsearch.predict.predictor import Predictor, available_properties

    assert len(available_properties()) == 6
    for prop in available_properties():
        folder = shipped_models_dir() / "heads" / prop
        assert not list(folder.glob("*.pkl"))
        recorded = json.loads((folder / "manifest.json").read_text())["sha256"]
        assert recorded == {name: sha256(folder / name) for name in ("calibration.json", "composition.npz")}
        pred = Predictor.load(prop, folder=folder)
        assert pred.calibration is not None and pred.calibration.stacked()
        model = pred.composition if isinstance(pred.composition, TreeEnsemble) else pred.composition.model
        assert isinstance(model, TreeEnsemble)


@pytest.mark.parametrize("tamper_manifest", [False, True])
def test_pickle_disguised_as_the_composition_model_is_refused(
    trap: tuple[Payload, Path], tmp_path: Path, tamper_manifest: bool
) -> None:
    payload, marker = trap
    folder = heads_copy(tmp_path)
    target = folder / "composition.npz"
    target.write_bytes(pickle.dumps(payload))
    if tamper_manifest:
        rewrite_manifest(folder, target.name)
    why = "not an .npz archive" if tamper_manifest else "checksum does not match manifest.json"
    refused(predict(folder), target, marker, why=why)


def test_npz_holding_a_pickled_object_array_is_refused(trap: tuple[Payload, Path], tmp_path: Path) -> None:
    payload, marker = trap
    folder = heads_copy(tmp_path)
    target = folder / "composition.npz"
    with np.load(target, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    arrays["composition.value"] = np.array([payload], dtype=object)  # np.savez pickles object arrays
    with target.open("wb") as fh:
        np.savez(fh, **arrays)
    rewrite_manifest(folder, target.name)
    refused(predict(folder), target, marker, why="allow_pickle=False")


def test_a_pickled_composition_model_is_never_loaded(trap: tuple[Payload, Path], tmp_path: Path) -> None:
    payload, marker = trap
    folder = heads_copy(tmp_path)
    legacy = folder / "composition.pkl"
    legacy.write_bytes(pickle.dumps(payload))
    refused(predict(folder), legacy, marker, why="never loads")


@pytest.mark.parametrize("tamper_manifest", [False, True])
def test_garbage_calibration_json_is_refused(tmp_path: Path, tamper_manifest: bool) -> None:
    folder = heads_copy(tmp_path)
    target = folder / "calibration.json"
    target.write_bytes(b"\x80\x04\x95 not json {")
    if tamper_manifest:
        rewrite_manifest(folder, target.name)
    why = "unreadable calibration" if tamper_manifest else "checksum does not match"
    refused(predict(folder), target, tmp_path / "no-marker", why=why)


def test_malformed_or_missing_manifest_is_refused(tmp_path: Path) -> None:
    folder = heads_copy(tmp_path)
    manifest = folder / "manifest.json"
    manifest.write_text(json.dumps({"format_version": 1, "sha256": {"../../etc/passwd": "0" * 64}}))
    refused(predict(folder), manifest, tmp_path / "no-marker", why="malformed manifest")
    manifest.unlink()
    refused(predict(folder), folder / "calibration.json", tmp_path / "no-marker", why="no manifest.json")


def _plant_weights(folder: Path, payload: Payload) -> Path:
    """A torch.save file whose dict holds the payload, with model.json's checksum updated to match it."""
    weights = folder / "weights.pt"
    torch.save({"w": torch.zeros(1), "x": payload}, weights)
    card = folder / "model.json"
    info = json.loads(card.read_text())
    card.write_text(json.dumps({**info, "weights_sha256": sha256(weights)}))
    return weights


def test_pickle_disguised_as_member_weights_is_refused(trap: tuple[Payload, Path], tmp_path: Path) -> None:
    payload, marker = trap
    folder = heads_copy(tmp_path)
    weights = _plant_weights(folder / "seed0", payload)
    refused(predict(folder), weights, marker, why="loading it could run code")


def test_pickle_disguised_as_encoder_weights_is_refused(trap: tuple[Payload, Path], tmp_path: Path) -> None:
    payload, marker = trap
    folder = tmp_path / "encoder"
    shutil.copytree(shipped_models_dir() / "crystalclr_cs", folder)
    weights = _plant_weights(folder, payload)
    args = ["embed", str(EXAMPLES / "NaCl.cif"), "--encoder", str(folder), "--out", str(tmp_path / "h.npy")]
    refused(args, weights, marker, why="loading it could run code")


def test_pickle_disguised_as_a_resume_file_is_refused(trap: tuple[Payload, Path], tmp_path: Path) -> None:
    """A fine-tuning run folder's per-epoch loop state (``seed<k>.lr<lr>.partial.pt``)."""
    payload, marker = trap
    run = tmp_path / "run"
    run.mkdir()
    partial = run / "seed0.lr0.001.partial.pt"
    torch.save({"epoch": 1, "rng": payload}, partial)
    args = ["train", "heads", "-p", PROP, "--out", str(run), "--set", "seeds=1", "--set", "max_train=60",
            "--set", "epochs=1", "--set", "lrs=0.001", "--set", "compile=false", "--set", "init=random"]  # fmt: skip
    refused(args, partial, marker, why="loading it could run code")


def test_pickle_disguised_as_a_pretraining_checkpoint_is_refused(trap: tuple[Payload, Path], tmp_path: Path) -> None:
    payload, marker = trap
    run = tmp_path / "run"
    run.mkdir()
    ckpt = run / "checkpoint.pt"
    ckpt.write_bytes(pickle.dumps({"epoch": payload}))
    args = ["train", "pretrain", "--resume", str(run), "--device", "cpu"]
    refused(args, ckpt, marker, why="loading it could run code")


def test_resume_state_with_missing_keys_is_refused_in_one_line(tmp_path: Path) -> None:
    from crystalsearch.errors import CheckpointError
    from crystalsearch.train.loop_state import read_loop

    partial = tmp_path / "seed0.partial.pt"
    torch.save({"epoch": 1, "rng": "{}"}, partial)
    with pytest.raises(CheckpointError, match=r"seed0\.partial\.pt: cannot resume from it \(missing model"):
        read_loop(partial)
