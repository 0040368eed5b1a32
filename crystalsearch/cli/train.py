"""`crystalsearch train`: pretrain, fine-tune, or rebuild everything (``train all``, the default)."""

from __future__ import annotations

from pathlib import Path

import typer

from crystalsearch.cli.common import console, one_line_errors, print_json

train_app = typer.Typer(
    help="Pretrain encoders, fine-tune property heads, rebuild the default index. "
    "With no sub-command: `train all --config training/configs/default.toml`.",
    invoke_without_command=True,
    no_args_is_help=False,
)


@train_app.command("pretrain")
@one_line_errors
def pretrain_cmd(
    config: Path = typer.Option(Path("training/configs/crystalclr_cs.toml"), "--config", help="TOML config."),
    epochs: int | None = typer.Option(None, "--epochs", help="Override the number of epochs."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, cuda:N or auto."),
    resume: Path | None = typer.Option(None, "--resume", help="Continue the run in this folder."),
    out: Path | None = typer.Option(None, "--out", help="Run folder (default runs/<name>)."),
    batch_size: int | None = typer.Option(None, "--batch-size"),
    lr: float | None = typer.Option(None, "--lr"),
    temperature: float | None = typer.Option(None, "--temperature"),
    max_structures: int | None = typer.Option(None, "--max-structures", help="Use only the first N structures."),
    sets: list[str] = typer.Option([], "--set", help="Override any setting: --set key=value (repeatable)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """CrystalCLR(+CS) contrastive pretraining; checkpoints every epoch, `--resume` continues exactly."""
    import json

    from crystalsearch.train.config import PretrainConfig, load_config
    from crystalsearch.train.pretrain import pretrain

    overrides = {
        "epochs": epochs, "device": device, "batch_size": batch_size, "lr": lr,
        "temperature": temperature, "max_structures": max_structures,
    }  # fmt: skip
    if resume is not None:
        saved = json.loads((resume / "config.json").read_text()) if (resume / "config.json").is_file() else {}
        base = load_config(PretrainConfig, None, overrides=saved) if saved else load_config(PretrainConfig, config)
        cfg = load_config(PretrainConfig, None, overrides={**base.__dict__, **overrides}, sets=sets)
        run_dir = resume
    else:
        cfg = load_config(PretrainConfig, config, overrides=overrides, sets=sets)
        run_dir = out or Path("runs") / cfg.name
    import os

    result = pretrain(cfg, out=run_dir, resume=resume is not None, show_progress=not json_out)
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun only rank 0 reports
    summary = {
        "run_dir": str(result.run_dir),
        "encoder": str(result.encoder_dir),
        "epochs": result.epochs_done,
        "wall_time_s": round(result.wall_time_s, 1),
        "metrics": result.final_metrics,
    }
    if json_out:
        print_json(summary)
    else:
        console.print(f"[bold green]done[/] {result.epochs_done} epochs in {result.wall_time_s / 60:.1f} min")
        for key, value in result.final_metrics.items():
            console.print(f"  {key}: {value:.4g}" if isinstance(value, float) else f"  {key}: {value}")
        console.print(f"encoder checkpoint: {result.encoder_dir}")


def register(app: typer.Typer) -> None:
    """Attach the `train` command group."""
    app.add_typer(train_app, name="train")


@train_app.command("finetune")
@one_line_errors
def finetune_cmd(
    prop: str = typer.Option(..., "--property", help="bulk_modulus, shear_modulus, thermal_conductivity, "
                             "melting_temperature, formation_energy or band_gap."),  # fmt: skip
    init: str = typer.Option("default", "--from", help="default | random | crystalclr | crystalclr_cs | PATH."),
    config: Path | None = typer.Option(None, "--config", help="TOML config ([finetune] section)."),
    epochs: int | None = typer.Option(None, "--epochs"),
    seeds: int = typer.Option(1, "--seeds", help="Train an ensemble of this many seeds (uncertainty)."),
    device: str | None = typer.Option(None, "--device"),
    max_structures: int | None = typer.Option(None, "--max-structures"),
    out: Path | None = typer.Option(None, "--out", help="Folder for the checkpoints (default runs/finetune/P)."),
    sets: list[str] = typer.Option([], "--set", help="Override any setting: --set key=value."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Fine-tune the encoder plus a regression head on one property (lr chosen on validation)."""
    from crystalsearch.train.config import FinetuneConfig, load_config
    from crystalsearch.train.finetune import describe, finetune, property_spec, save_finetuned, with_seed

    property_spec(prop)
    overrides = {"property": prop, "init": init, "epochs": epochs, "device": device, "max_structures": max_structures}
    cfg = load_config(FinetuneConfig, config, overrides=overrides, sets=sets)
    folder = out or Path("runs") / "finetune" / prop
    rows = []
    for seed in range(cfg.seed, cfg.seed + seeds):
        result = finetune(with_seed(cfg, seed), show_progress=not json_out)
        path = save_finetuned(result, folder / f"seed{seed}", with_seed(cfg, seed))
        rows.append({**describe(result), "seed": seed, "checkpoint": str(path)})
        if not json_out:
            console.print(
                f"seed {seed}: lr {result.lr:g}, {result.epochs_run} epochs, val MAE {result.val_mae:.4g}, "
                f"[bold]test MAE {result.test_mae:.4g} {result.unit}[/] -> {path}"
            )
    if json_out:
        print_json(rows)


def _run_all(config: Path, out: Path | None, epochs: int | None, device: str | None, json_out: bool) -> None:
    from crystalsearch.train.pipeline import train_all

    summary = train_all(
        config, out=out, epochs=epochs, device=device, show_progress=not json_out,
        log=(lambda _m: None) if json_out else (lambda m: console.print(m, highlight=False)),
    )  # fmt: skip
    if json_out:
        print_json(summary)
        return
    from rich.table import Table

    table = Table(title=f"crystalsearch train: everything in {summary['out']}")
    for col in ("step", "time", "result", "output"):
        table.add_column(col)
    for step, info in summary["steps"].items():
        result = info.get("metrics") or info.get("test_mae") or {"count": info.get("count")}
        text = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items() if k != "epoch"
        )
        table.add_row(step, f"{info.get('time_s', 0) / 60:.1f} min", text[:80], str(info.get("output", "")))
    console.print(table)


@train_app.command("all")
@one_line_errors
def all_cmd(
    config: Path = typer.Option(Path("training/configs/default.toml"), "--config"),
    out: Path | None = typer.Option(None, "--out", help="Where models and the index go (default: data home)."),
    epochs: int | None = typer.Option(None, "--epochs"),
    device: str | None = typer.Option(None, "--device"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Pretrain, fine-tune the property heads and rebuild the default index (resumable, step by step)."""
    _run_all(config, out, epochs, device, json_out)


@train_app.callback()
def train_default(
    ctx: typer.Context,
    config: Path = typer.Option(Path("training/configs/default.toml"), "--config"),
    out: Path | None = typer.Option(None, "--out"),
    epochs: int | None = typer.Option(None, "--epochs"),
    device: str | None = typer.Option(None, "--device"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """With no sub-command, run `train all`."""
    if ctx.invoked_subcommand is None:
        one_line_errors(_run_all)(config, out, epochs, device, json_out)
