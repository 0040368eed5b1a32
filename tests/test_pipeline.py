"""`crystalsearch train` (train all): pretrain -> heads -> index, resumable step by step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crystalsearch.cli import app

TINY = """
[pretrain]
name = "tiny"
max_structures = 64
epochs = 1
batch_size = 32
atom_fea_len = 16
compile = false
probe = false
num_threads = 1

[finetune]
lrs = [1e-3]
epochs = 1
patience = 1
batch_size = 32
compile = false

[heads]
properties = ["melting_temperature"]
seeds = 1
max_structures = 80

[index]
dataset = "melting_temperature"
"""


def test_train_all_runs_every_step_then_skips_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRYSTALSEARCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CRYSTALSEARCH_HOME", str(tmp_path / "home"))
    config = tmp_path / "tiny.toml"
    config.write_text(TINY)
    out = tmp_path / "out"
    args = ["train", "--config", str(config), "--out", str(out), "--name", "tiny_model", "--yes", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    # installed as a named model, selectable with --encoder; the default encoder is untouched
    installed = tmp_path / "home" / "models" / "tiny_model"
    assert summary["model"]["path"] == str(installed) and (installed / "model.json").is_file()
    assert not (tmp_path / "home" / "models" / "crystalclr_cs").exists()
    from crystalsearch.cli.encoders import load

    assert load("tiny_model").hash == load(str(out / "models" / "crystalclr_cs")).hash
    assert set(summary["steps"]) == {"pretrain", "heads", "index"}
    assert (out / "models" / "crystalclr_cs" / "model.json").is_file()
    head = out / "models" / "heads" / "melting_temperature" / "seed0"
    meta = json.loads((head / "model.json").read_text())["metadata"]
    assert meta["init"] == str(out / "models" / "crystalclr_cs") and meta["test_mae"] > 0
    index = Path(summary["steps"]["index"]["output"])
    manifest = json.loads((index / "manifest.json").read_text())
    assert summary["steps"]["index"]["count"] == 435
    assert str(manifest["count"]) == "435"
    state = json.loads((out / "state.json").read_text())
    assert all(state[s]["done"] for s in ("pretrain", "heads", "index"))

    # A second run redoes nothing: every step is reported as done before, outputs untouched.
    weights = (out / "models" / "crystalclr_cs" / "weights.pt").stat().st_mtime_ns
    again = CliRunner().invoke(app, ["train", "all", "--config", str(config), "--out", str(out), "--name", "tiny_model",
                                     "--yes"])  # fmt: skip
    assert again.exit_code == 0, again.output
    assert again.output.count("done before") == 3
    assert (out / "models" / "crystalclr_cs" / "weights.pt").stat().st_mtime_ns == weights


def test_train_all_missing_config_is_one_line(tmp_path: Path) -> None:
    args = ["train", "--config", str(tmp_path / "nope.toml"), "--out", str(tmp_path), "--yes"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "config file not found" in result.output
