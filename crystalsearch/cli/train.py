"""`crystalsearch train`: pretrain, fine-tune, or rebuild everything (``train all``, the default).

Configs are shipped in the package and chosen by name (``--config crystalclr_cs``) or path. ``train``
/ ``train all`` print their plan and start only with ``--yes``; the trained encoder is installed as a
named model (``--encoder NAME`` selects it) unless ``--replace-default`` is given.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from crystalsearch.cli.common import add_command, console, examples, one_line_errors, print_json, sub_app
from crystalsearch.cli.train_heads import register as _register_heads

train_app = sub_app(
    "Pretrain encoders, fine-tune property heads, or do everything (train all: pretrain -> heads -> index). "
    "With no sub-command: train all, which shows its plan and starts only with --yes.",
    invoke_without_command=True, no_args_is_help=False,
    epilog=examples("crystalsearch train", "crystalsearch train --yes --name my_encoder",
                    "crystalsearch train pretrain --config crystalclr --epochs 10"),
)  # fmt: skip

CONFIG_HELP = "Shipped config name ({names}) or path of a TOML file."
SET_HELP = "Override any config setting: --set key=value (repeatable)."


@one_line_errors
def pretrain(
    config: str = typer.Option("crystalclr_cs", "--config", help=CONFIG_HELP.format(names="crystalclr_cs, crystalclr")),
    epochs: int | None = typer.Option(None, "--epochs", help="Number of epochs (overrides the config)."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, cuda:N or auto."),
    resume: Path | None = typer.Option(None, "--resume", help="Continue the run in this folder."),
    out: Path | None = typer.Option(None, "--out", help="Run folder (default runs/<name> in the working directory)."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Crystals per batch (overrides the config)."),
    lr: float | None = typer.Option(None, "--lr", help="Adam learning rate (overrides the config)."),
    temperature: float | None = typer.Option(None, "--temperature", help="NT-Xent temperature (overrides the config)."),
    max_structures: int | None = typer.Option(None, "--max-structures", help="Use only the first N structures."),
    sets: list[str] = typer.Option([], "--set", help=SET_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """CrystalCLR(+CS) contrastive pretraining; checkpoints every epoch, --resume continues exactly."""
    import json

    from crystalsearch.cli.train_plan import resolve_config
    from crystalsearch.train.config import PretrainConfig, load_config
    from crystalsearch.train.pretrain import pretrain as run_pretrain

    overrides = {
        "epochs": epochs, "device": device, "batch_size": batch_size, "lr": lr,
        "temperature": temperature, "max_structures": max_structures,
    }  # fmt: skip
    if resume is not None:
        saved = json.loads((resume / "config.json").read_text()) if (resume / "config.json").is_file() else {}
        path = None if saved else resolve_config(config)
        base = load_config(PretrainConfig, None, overrides=saved) if saved else load_config(PretrainConfig, path)
        cfg = load_config(PretrainConfig, None, overrides={**base.__dict__, **overrides}, sets=sets)
        run_dir = resume
    else:
        cfg = load_config(PretrainConfig, resolve_config(config), overrides=overrides, sets=sets)
        run_dir = out or Path("runs") / cfg.name
    result = run_pretrain(cfg, out=run_dir, resume=resume is not None, show_progress=not json_out)
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun only rank 0 reports
    summary = {"run_dir": str(result.run_dir), "encoder": str(result.encoder_dir), "epochs": result.epochs_done,
               "wall_time_s": round(result.wall_time_s, 1), "metrics": result.final_metrics}  # fmt: skip
    if json_out:
        print_json(summary, command="train pretrain")
        return
    console.print(f"[bold green]done[/] {result.epochs_done} epochs in {result.wall_time_s / 60:.1f} min")
    for key, value in result.final_metrics.items():
        console.print(f"  {key}: {value:.4g}" if isinstance(value, float) else f"  {key}: {value}", markup=False)
    console.print(f"encoder checkpoint: {result.encoder_dir}", markup=False, highlight=False)


@one_line_errors
def finetune(
    prop: str = typer.Option(
        ...,
        "--property",
        "-p",
        help="bulk_modulus, shear_modulus, thermal_conductivity, melting_temperature, formation_energy or band_gap; "
        "with --labels also a name of your own (e.g. vickers_hardness, with --unit).",
    ),  # fmt: skip
    unit: str | None = typer.Option(
        None, "--unit", help="With --labels and a property of your own: the unit of its values (e.g. GPa)."
    ),  # fmt: skip
    init: str = typer.Option(
        "auto",
        "--from",
        help="auto (what the learning curves recommend for this many labels) "
        "| default | random | crystalclr | crystalclr_cs | PATH.",
    ),  # fmt: skip
    labels: Path | None = typer.Option(
        None,
        "--labels",
        help="CSV of structure (file path or MP id) and value: train "
        "on your own labels (calibrated intervals when the set is large enough).",
    ),
    config: str | None = typer.Option(
        None, "--config", help="Shipped config name or TOML path (its [finetune] section is used)."
    ),  # fmt: skip
    epochs: int | None = typer.Option(None, "--epochs", help="Most epochs per seed (overrides the config)."),
    seeds: int = typer.Option(1, "--seeds", help="Train an ensemble of this many seeds (its spread is the ±)."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, cuda:N or auto."),
    max_structures: int | None = typer.Option(None, "--max-structures", help="Use only the first N labelled crystals."),
    out: Path | None = typer.Option(None, "--out", help="Folder for the checkpoints (default runs/finetune/PROPERTY)."),
    sets: list[str] = typer.Option([], "--set", help=SET_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Fine-tune the encoder plus a regression head on one property (lr chosen on validation); the start
    (pretrained or random) is the learning curves' recommendation for the number of labels unless --from is given."""
    from crystalsearch.cli.train_labels import choose_start, labels_command, labels_property
    from crystalsearch.cli.train_plan import resolve_config
    from crystalsearch.errors import InputError
    from crystalsearch.train.card import start_note
    from crystalsearch.train.config import FinetuneConfig, load_config
    from crystalsearch.train.finetune import describe, property_spec, save_finetuned, with_seed
    from crystalsearch.train.finetune import finetune as run_finetune

    if labels is None:
        property_spec(prop)
        if unit is not None:
            raise InputError("--unit", "only with --labels (a shipped property has its unit)")
    overrides = {"property": prop, "epochs": epochs, "device": device, "max_structures": max_structures}
    path = resolve_config(config) if config else None
    cfg = load_config(FinetuneConfig, path, overrides=overrides, sets=sets)
    folder = out or Path("runs") / "finetune" / prop
    if labels is not None:
        spec = labels_property(cfg, unit=unit)
        labels_command(cfg, spec=spec, labels=labels, init=init, sets=sets, seeds=seeds, out=folder,
                       json_out=json_out)  # fmt: skip
        return
    cfg, choice = choose_start(cfg, init=init, sets=sets, quiet=json_out)
    rows = []
    for seed in range(cfg.seed, cfg.seed + seeds):
        result = run_finetune(with_seed(cfg, seed), show_progress=not json_out)
        saved = save_finetuned(result, folder / f"seed{seed}", with_seed(cfg, seed), extra_card=start_note(choice),
                               metadata={"start": choice})  # fmt: skip
        rows.append({**describe(result), "seed": seed, "checkpoint": str(saved)})
        if not json_out:
            head = f"seed {seed}: lr {result.lr:g}, {result.epochs_run} epochs, val MAE {result.val_mae:.4g}, "
            console.print(f"{head}[bold]test MAE {result.test_mae:.4g} {result.unit}[/] -> {saved}", highlight=False)
    if json_out:
        print_json(rows)


def run_all(*, config: str, out: Path | None, epochs: int | None, device: str | None, name: str | None,
            replace_default: bool, yes: bool, json_out: bool) -> None:  # fmt: skip
    """Show the plan of ``train all``; with ``yes``, run it and install the result."""
    from crystalsearch.catalog.pipeline import train_all
    from crystalsearch.cli import encoders
    from crystalsearch.cli.train_plan import default_name, install, plan, render, resolve_config
    from crystalsearch.errors import InputError
    from crystalsearch.paths import data_home

    path = resolve_config(config)
    if name and replace_default:
        raise InputError("--name", "give either --name NAME or --replace-default, not both")
    if name and (name in encoders.SHIPPED_NAMES or "/" in name or name.startswith(".")):
        raise InputError("--name", f"{name!r} is reserved or not a plain name; to replace the default encoder use "
                         "--replace-default")  # fmt: skip
    if not replace_default and not name:
        import tomllib

        name = default_name(str(tomllib.loads(path.read_text()).get("pretrain", {}).get("name", "model")))
    info = plan(path, epochs=epochs, name=name, replace_default=replace_default, out=out, device=device)
    if not yes:
        if json_out:
            print_json({**info, "started": False}, command="train all")
        else:
            console.print("\n".join(render(info, started=False)), markup=False, highlight=False)
        return
    work = Path(info["work_folder"]) if not replace_default else (out or data_home())
    if not json_out:
        console.print("\n".join(render(info, started=True)), markup=False, highlight=False)
    log = (lambda _m: None) if json_out else (lambda m: console.print(m, highlight=False, markup=False))
    summary = train_all(path, out=work, epochs=epochs, device=device, show_progress=not json_out, log=log)
    if not replace_default and name:
        summary["model"] = {"name": name, "path": str(install(work, name)), "select_with": f"--encoder {name}"}
    if json_out:
        print_json(summary, command="train all")
        return
    _summary_table(summary)


def _summary_table(summary: dict[str, object]) -> None:
    from rich.table import Table

    table = Table(title=f"crystalsearch train: everything in {summary['out']}")
    for col in ("step", "time", "result", "output"):
        table.add_column(col)
    steps: dict[str, dict[str, object]] = summary["steps"]  # type: ignore[assignment]
    for step, info in steps.items():
        result = info.get("metrics") or info.get("test_mae") or {"count": info.get("count")}
        text = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in result.items() if k != "epoch")  # type: ignore[attr-defined]  # fmt: skip
        minutes = float(info.get("time_s", 0) or 0) / 60  # type: ignore[arg-type]
        table.add_row(step, f"{minutes:.1f} min", text, str(info.get("output", "")))
    console.print(table)
    model = summary.get("model")
    if isinstance(model, dict):
        console.print(f"installed as model '{model['name']}' ({model['path']}); select it with {model['select_with']}",
                      markup=False, highlight=False)  # fmt: skip


CONFIG_OPTION = typer.Option("default", "--config", help=CONFIG_HELP.format(names="default"))
OUT_OPTION = typer.Option(None, "--out", help="Work folder (default: <data home>/runs/train-NAME; with "
                          "--replace-default the data home itself).")  # fmt: skip
EPOCHS_OPTION = typer.Option(None, "--epochs", help="Epochs of every step (overrides the config).")
DEVICE_OPTION = typer.Option(None, "--device", help="cpu, cuda, cuda:N or auto.")
NAME_OPTION = typer.Option(None, "--name", help="Install the trained encoder as this model (default: the "
                           "config's name and the date); select it with --encoder NAME.")  # fmt: skip
REPLACE_OPTION = typer.Option(False, "--replace-default", help="Install the result as the default encoder and "
                              "property heads instead of a named model.")  # fmt: skip
YES_OPTION = typer.Option(False, "--yes", "-y", help="Start (without it the plan is shown and nothing runs).")
JSON_OPTION = typer.Option(False, "--json", help="Print the plan or the result as JSON.")


@one_line_errors
def train_all_cmd(
    config: str = CONFIG_OPTION, out: Path | None = OUT_OPTION, epochs: int | None = EPOCHS_OPTION,
    device: str | None = DEVICE_OPTION, name: str | None = NAME_OPTION, replace_default: bool = REPLACE_OPTION,
    yes: bool = YES_OPTION, json_out: bool = JSON_OPTION,
) -> None:  # fmt: skip
    """Pretrain, fine-tune the property heads and build the index (resumable, step by step). Shows the plan
    (steps, estimated time, where results go) and starts only with --yes."""
    run_all(config=config, out=out, epochs=epochs, device=device, name=name, replace_default=replace_default,
            yes=yes, json_out=json_out)  # fmt: skip


@one_line_errors
def train_default(
    ctx: typer.Context, config: str = CONFIG_OPTION, out: Path | None = OUT_OPTION,
    epochs: int | None = EPOCHS_OPTION, device: str | None = DEVICE_OPTION, name: str | None = NAME_OPTION,
    replace_default: bool = REPLACE_OPTION, yes: bool = YES_OPTION, json_out: bool = JSON_OPTION,
) -> None:  # fmt: skip
    """With no sub-command: train all (its plan; --yes starts it)."""
    if ctx.invoked_subcommand is None:
        run_all(config=config, out=out, epochs=epochs, device=device, name=name, replace_default=replace_default,
                yes=yes, json_out=json_out)  # fmt: skip


add_command(train_app, pretrain, "pretrain", epilog=examples(
    "crystalsearch train pretrain --config crystalclr_cs --epochs 10",
    "crystalsearch train pretrain --config my.toml --device cuda --out runs/mine",
    "crystalsearch train pretrain --resume runs/crystalclr_cs --epochs 20",
))  # fmt: skip
add_command(train_app, finetune, "finetune", epilog=examples(
    "crystalsearch train finetune --property shear_modulus --from default --seeds 3",
    "crystalsearch train finetune --property band_gap --from runs/crystalclr_cs/encoder --max-structures 3000",
))  # fmt: skip
add_command(train_app, train_all_cmd, "all", epilog=examples(
    "crystalsearch train all                     # the plan only",
    "crystalsearch train all --yes --name my_encoder",
    "crystalsearch train all --yes --replace-default --device cuda",
))  # fmt: skip
train_app.callback()(train_default)
_register_heads(train_app)


def register(app: typer.Typer) -> None:
    """Attach the `train` command group."""
    app.add_typer(train_app, name="train")
