"""Commands that work from any folder: shipped configs by name, a plan before `train`
starts, named models for --encoder, evaluate/plot results outside training/results."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crystalsearch.cli import app
from crystalsearch.cli.train_plan import configs_dir, resolve_config

REPO = Path(__file__).resolve().parents[1]


def run(*args: object) -> object:
    return CliRunner().invoke(app, [str(a) for a in args])


def test_configs_ship_in_the_package_and_resolve_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # outside the repository
    assert {"crystalclr", "crystalclr_cs", "default"} <= {p.stem for p in configs_dir().glob("*.toml")}
    assert resolve_config("crystalclr_cs") == configs_dir() / "crystalclr_cs.toml"
    assert resolve_config("default.toml") == configs_dir() / "default.toml"
    assert resolve_config("training/configs/crystalclr.toml") == configs_dir() / "crystalclr.toml"  # old spelling
    mine = tmp_path / "mine.toml"
    mine.write_text("[pretrain]\nepochs = 1\n")
    assert resolve_config(str(mine)) == mine
    from crystalsearch.errors import InputError

    with pytest.raises(InputError, match="config file not found .*shipped configs: crystalclr, crystalclr_cs"):
        resolve_config("nope")
    # the links kept in the repository still work
    assert (REPO / "training" / "configs" / "crystalclr_cs.toml").read_text() == (
        configs_dir() / "crystalclr_cs.toml"
    ).read_text()


def test_bare_train_prints_the_plan_and_starts_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CRYSTALSEARCH_HOME", str(tmp_path / "home"))
    result = run("train")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    text = " ".join(result.output.split())  # type: ignore[attr-defined]
    assert "nothing started; add --yes to run it" in text and "estimated total" in text
    assert "1. crystalclr_cs" in text and "2. fine-tune" in text and "3. search index" in text
    assert "--replace-default" in text and "--encoder crystalclr_cs-" in text
    assert not (tmp_path / "home").exists() and not (tmp_path / "runs").exists()
    plan = json.loads(run("train", "all", "--json", "--name", "mine").stdout)  # type: ignore[attr-defined]
    assert plan["started"] is False and plan["select_with"] == "--encoder mine" and plan["estimate_s"] > 0
    assert plan["installed_as"] == str(tmp_path / "home" / "models" / "mine")
    replace = json.loads(run("train", "--json", "--replace-default").stdout)  # type: ignore[attr-defined]
    assert replace["replace_default"] is True and replace["work_folder"] == str(tmp_path / "home")
    bad = run("train", "--name", "default", "--yes")
    assert bad.exit_code == 2 and "--replace-default" in bad.output  # type: ignore[attr-defined]


def test_named_model_is_selected_with_encoder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from crystalsearch.cli.encoders import load
    from crystalsearch.model.embed import Encoder

    monkeypatch.setenv("CRYSTALSEARCH_HOME", str(tmp_path / "home"))
    from crystalsearch.model.checkpoint import shipped_models_dir

    shutil.copytree(shipped_models_dir() / "crystalclr", tmp_path / "home" / "models" / "mine")
    assert load("mine").hash == Encoder.load("crystalclr").hash
    out = tmp_path / "h.npy"
    result = run("embed", REPO / "examples" / "Si.cif", "--out", out, "--encoder", "mine")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert json.loads((tmp_path / "h.npy.json").read_text())["encoder"]["hash"] == Encoder.load("crystalclr").hash


@pytest.mark.parametrize("command", [["evaluate", "embeddings"], ["evaluate", "finetune"],
                                     ["evaluate", "augmentations"], ["plot", "umap"]])  # fmt: skip
def test_evaluate_and_plot_default_out_is_a_new_folder_in_the_working_directory(command: list[str]) -> None:
    from typer.main import get_command

    group = get_command(app).commands[command[0]]  # type: ignore[attr-defined]
    out = next(p for p in group.commands[command[1]].params if p.name == "out")
    assert "training/results" not in str(out.default) and not Path(str(out.default)).is_absolute()
    assert str(out.default) == "crystalsearch-results"
