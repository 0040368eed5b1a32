"""CrystalCLR pretraining end to end on shipped structures (tiny models and batches): run folder contents,
exact resume, the loss going down, a 2-process gloo DDP run, and CLI input errors."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import torch

pytest.importorskip("pymatgen.core")

from crystalsearch.errors import CheckpointError  # noqa: E402
from crystalsearch.model.config import EncoderConfig  # noqa: E402
from crystalsearch.model.embed import Encoder  # noqa: E402
from crystalsearch.train.config import PretrainConfig  # noqa: E402
from crystalsearch.train.pretrain import CHECKPOINT, PretrainResult, pretrain  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "training" / "configs" / "crystalclr_cs.toml"
# Eager mode (torch.compile takes about a minute on this CPU) and one thread (on a shared 2-core machine
# two threads spin against each other, ~10x slower): tests assert behaviour, not speed.
TINY = PretrainConfig(
    max_structures=128,
    batch_size=32,
    epochs=2,
    probe_max_structures=200,
    encoder=EncoderConfig(atom_fea_len=16),
    compile=False,
    num_threads=1,
)


@pytest.fixture(scope="module", autouse=True)
def graph_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private graph cache for this module (and its subprocesses), not the user's ~/.cache; restores
    torch's thread count, which ``pretrain(num_threads=1)`` sets process-wide."""
    path = tmp_path_factory.mktemp("graph-cache")
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CRYSTALSEARCH_CACHE", str(path))
        yield path
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def run_a(tmp_path_factory: pytest.TempPathFactory) -> PretrainResult:
    """Two epochs straight through."""
    return pretrain(TINY, out=tmp_path_factory.mktemp("run") / "A", show_progress=False)


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def encoder_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "encoder" / "weights.pt", weights_only=True)


def test_run_folder(run_a: PretrainResult, nacl, si) -> None:
    out = run_a.run_dir
    metrics = read_metrics(out)
    assert [m["epoch"] for m in metrics] == [1, 2]
    for m in metrics:
        for key in ("loss", "loss_clr", "loss_cs", "val_alignment", "val_uniformity", "probe_bulk_mae_gpa"):
            assert math.isfinite(m[key]), key
        assert m["pairs_per_s"] > 0 and 0 <= m["augment_fraction"] < 1
        assert m["loss"] == pytest.approx(m["loss_clr"] + m["loss_cs"], rel=1e-6)
    assert (out / CHECKPOINT).is_file() and (out / "config.json").is_file()
    assert json.loads((out / "config.json").read_text())["encoder"]["atom_fea_len"] == 16
    state = torch.load(out / CHECKPOINT, weights_only=True)
    assert state["epoch"] == 2 and set(state) >= {"model", "optimizer", "torch_rng"}
    assert run_a.epochs_done == 2 and run_a.final_metrics["epoch"] == 2
    # the exported encoder loads and embeds
    enc = Encoder.load(out / "encoder")
    assert enc.model.config.atom_fea_len == 16
    h = enc.embed([nacl, si])
    assert h.shape == (2, 128) and h.dtype.name == "float32"
    card = (out / "encoder" / "README.md").read_text()
    assert "| epochs | 2 |" in card and "128 structures (`mp_structures`)" in card
    assert "probe_bulk_mae_gpa" in card and "## Reproduce" in card
    assert not list(out.glob("*.partial")) and not list(out.parent.glob(".*partial"))


def test_resume_reproduces_uninterrupted_run(run_a: PretrainResult, tmp_path: Path) -> None:
    b = tmp_path / "B"
    pretrain(replace(TINY, epochs=1), out=b, show_progress=False)
    assert len(read_metrics(b)) == 1
    pretrain(replace(TINY, epochs=2), out=b, resume=True, show_progress=False)
    wa, wb = encoder_weights(run_a.run_dir), encoder_weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key
    sa = torch.load(run_a.run_dir / CHECKPOINT, weights_only=True)
    sb = torch.load(b / CHECKPOINT, weights_only=True)
    for key in sa["model"]:
        assert torch.equal(sa["model"][key], sb["model"][key]), key  # head and BN statistics too
    ma, mb = read_metrics(run_a.run_dir), read_metrics(b)
    assert [m["epoch"] for m in mb] == [1, 2]
    assert ma[1]["loss"] == mb[1]["loss"] and ma[1]["val_nt_xent"] == mb[1]["val_nt_xent"]


def test_resume_without_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="nothing to resume"):
        pretrain(TINY, out=tmp_path / "empty", resume=True, show_progress=False)


def test_loss_goes_down(tmp_path: Path) -> None:
    cfg = replace(TINY, epochs=4, lr=1e-3, probe=False)
    metrics = read_metrics(pretrain(cfg, out=tmp_path / "C", show_progress=False).run_dir)
    loss = [m["loss"] for m in metrics]
    val = [m["val_nt_xent"] for m in metrics]
    print(f"\ntraining loss {[round(x, 3) for x in loss]}, validation NT-Xent {[round(x, 3) for x in val]}")
    assert loss[-1] < 0.85 * loss[0]
    assert val[-1] < val[0]
    assert "probe_bulk_mae_gpa" not in metrics[-1]


def test_ddp_two_processes_gloo(tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
        "-m", "crystalsearch", "train", "pretrain", "--config", str(CONFIG), "--max-structures", "128",
        "--batch-size", "32", "--epochs", "1", "--out", str(out), "--set", "probe=false",
        "--set", "atom_fea_len=16", "--set", "compile=false", "--json",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = read_metrics(out)
    assert len(metrics) == 1, "only rank 0 writes metrics"
    m = metrics[0]
    assert m["epoch"] == 1 and math.isfinite(m["loss"]) and m["pairs_per_s"] > 0
    assert math.isfinite(m["val_nt_xent"]), "rank 0 validates"
    assert "x 2 processes" in (out / "encoder" / "README.md").read_text()
    assert Encoder.load(out / "encoder").model.config.atom_fea_len == 16
    assert not list(out.glob("*.partial"))
    summary, _ = json.JSONDecoder().raw_decode(proc.stdout.lstrip())
    assert summary["epochs"] == 1 and Path(summary["run_dir"]) == out


# -- CLI input errors ----------------------------------------------------------------------------------


def cli(*args: str):
    from typer.testing import CliRunner

    from crystalsearch.cli import app

    return CliRunner().invoke(app, ["train", "pretrain", *args])


def error_lines(result) -> list[str]:
    text = result.stderr if result.stderr else result.output
    return [line for line in text.splitlines() if line.strip()]


def test_cli_missing_config(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    result = cli("--config", str(missing), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    lines = error_lines(result)
    assert len(lines) == 1 and "missing.toml" in lines[0] and "not found" in lines[0]
    assert "Traceback" not in result.output


def test_cli_unknown_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[pretrain]\nname = "x"\nbatch_sise = 64\n')
    result = cli("--config", str(bad), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    lines = error_lines(result)
    assert len(lines) == 1 and "bad.toml" in lines[0] and "'batch_sise'" in lines[0]
    assert not (tmp_path / "out").exists()


def test_cli_bad_set_value(tmp_path: Path) -> None:
    result = cli("--config", str(CONFIG), "--set", "batch_size=abc", "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    lines = error_lines(result)
    assert len(lines) == 1 and "batch_size" in lines[0] and "'abc'" in lines[0]
    result = cli("--config", str(CONFIG), "--set", "no_such_key=1", "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and "no_such_key" in result.output
    assert not (tmp_path / "out").exists()


# -- the run folder stays consistent; validation uses the training temperature --------------------------


def test_resume_after_crash_between_metrics_and_checkpoint(run_a: PretrainResult, tmp_path: Path) -> None:
    """A run killed after logging epoch 2 but before its checkpoint (plus a torn line) resumes to one line
    per epoch, the same as an uninterrupted run."""
    b = tmp_path / "crashed"
    pretrain(replace(TINY, epochs=1), out=b, show_progress=False)
    with open(b / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps({"epoch": 2, "loss": -1.0}) + "\n" + '{"epoch": 3, "lo')
    pretrain(replace(TINY, epochs=2), out=b, resume=True, show_progress=False)
    mb, ma = read_metrics(b), read_metrics(run_a.run_dir)
    assert [m["epoch"] for m in mb] == [1, 2]
    assert mb[1]["loss"] == ma[1]["loss"]
    history = json.loads((b / "encoder" / "model.json").read_text())["metadata"]["history"]
    assert [h["epochs"] for h in history] == [[1, 1], [2, 2]]  # two segments: started, then resumed
    assert "| 1–1 |" in (b / "encoder" / "README.md").read_text()


def test_validation_uses_the_training_temperature(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from crystalsearch.train import pretrain as module

    seen: list[float] = []
    real = module.nt_xent

    def spy(z1: torch.Tensor, z2: torch.Tensor, *, temperature: float) -> torch.Tensor:
        seen.append(temperature)
        return real(z1, z2, temperature=temperature)

    monkeypatch.setattr(module, "nt_xent", spy)
    pretrain(replace(TINY, epochs=1, temperature=0.3, loss="nt_xent", probe=False), out=tmp_path / "t",
             show_progress=False)  # fmt: skip
    assert seen and set(seen) == {0.3}


def test_old_flat_configs_and_checkpoints_still_load(tmp_path: Path) -> None:
    from crystalsearch.structure.augment.config import AugmentConfig
    from crystalsearch.train.config import config_dict, load_config, pretrain_config_from_dict

    flat = load_config(PretrainConfig, CONFIG, sets=["atom_fea_len=16", "strain_p=0.1"])  # the shipped TOML is flat
    nested = tmp_path / "nested.toml"
    nested.write_text(CONFIG.read_text().replace("perturb_p = 0.5\nstrain_p = 0.5\ncolumn_replace_p = 0.5\n", "")
                      + "\n[pretrain.encoder]\natom_fea_len = 16\n\n[pretrain.augment]\nstrain_p = 0.1\n")  # fmt: skip
    assert load_config(PretrainConfig, nested) == flat
    assert flat.encoder == EncoderConfig(atom_fea_len=16) and flat.augment == AugmentConfig(strain_p=0.1)
    assert load_config(PretrainConfig, CONFIG, sets=["encoder.atom_fea_len=16", "augment.strain_p=0.1"]) == flat
    old = {k: v for k, v in config_dict(flat).items() if k not in ("encoder", "augment")}
    old.update(config_dict(flat)["encoder"], **config_dict(flat)["augment"])  # as config.json was written before
    assert pretrain_config_from_dict(old) == pretrain_config_from_dict(config_dict(flat)) == flat


def test_resume_from_a_checkpoint_without_history(tmp_path: Path) -> None:
    out = tmp_path / "old"
    pretrain(replace(TINY, epochs=1, probe=False), out=out, show_progress=False)
    state = torch.load(out / CHECKPOINT, weights_only=True)
    del state["history"]  # as written before runs kept their history
    torch.save(state, out / CHECKPOINT)
    pretrain(replace(TINY, epochs=2, probe=False), out=out, resume=True, show_progress=False)
    history = json.loads((out / "encoder" / "model.json").read_text())["metadata"]["history"]
    assert [(h["epochs"], h["hardware"]) for h in history][0] == ([1, 1], "not recorded")
    assert history[1]["epochs"] == [2, 2] and history[1]["hardware"].startswith("CPU (")


def test_warm_start_begins_from_the_given_encoder(run_a: PretrainResult, tmp_path: Path) -> None:
    """``init`` loads the encoder weights (lr 0: they stay exactly the source's); a mismatched one is refused."""
    cfg = replace(TINY, epochs=1, lr=0.0, probe=False, init=str(run_a.run_dir / "encoder"))
    warm = pretrain(cfg, out=tmp_path / "warm", show_progress=False)
    src, got = encoder_weights(run_a.run_dir), encoder_weights(warm.run_dir)
    params = [k for k in src if "running_" not in k and "num_batches" not in k]
    assert params and all(torch.equal(src[k], got[k]) for k in params)
    cold = encoder_weights(pretrain(replace(cfg, init=""), out=tmp_path / "cold", show_progress=False).run_dir)
    assert not torch.equal(cold["embedding.weight"], src["embedding.weight"])
    with pytest.raises(CheckpointError, match="differs"):
        pretrain(replace(cfg, init="crystalclr_cs"), out=tmp_path / "bad", show_progress=False)
