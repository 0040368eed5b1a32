"""`crystalsearch evaluate`: the paper's evaluation (Table 1, Figure 2) and retrieval checks.

Results go to ``--out`` (default ``crystalsearch-results`` in the working directory, never the
shipped ``training/results``): ``table1.json``, ``evaluations.json``, ``report.md`` and the figures;
rerun with the same ``--out`` to resume. Heavy libraries are imported inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from crystalsearch.cli.common import add_command, console, examples, one_line_errors, print_json, sub_app

evaluate_app = sub_app(
    "Reproduce the paper's evaluation: random forest on embeddings and fine-tuning (Table 1), the augmentation "
    "study (Figure 2), retrieval of transformed copies; results and report in --out (default "
    "./crystalsearch-results).",
    no_args_is_help=True,
)
DEFAULT_OUT = Path("crystalsearch-results")

ENCODERS_HELP = "Encoders as NAME=PATH pairs (run folders' encoder/ or checkpoints), merged over the defaults "
ENCODERS_HELP += "crystalclr=crystalclr,crystalclr_cs=crystalclr_cs (the shipped encoders); random[:SEED] = untrained."
OUT_HELP = "Results folder (table1.json, evaluations.json, report.md, figures); reuse it to resume."
PROPERTIES_HELP = "Properties to evaluate (comma-separated)."
DEVICE_HELP = "cpu, cuda, cuda:N or auto."


def register(app: typer.Typer) -> None:
    """Attach the `evaluate` command group (with `evaluate retrieval`)."""
    from crystalsearch.cli.evaluate_calibration import register as register_calibration
    from crystalsearch.cli.evaluate_curves import register as register_curves
    from crystalsearch.cli.evaluate_retrieval import register as register_retrieval

    if "retrieval" not in {c.name for c in evaluate_app.registered_commands}:
        register_retrieval(evaluate_app)
    if "calibration" not in {c.name for c in evaluate_app.registered_commands}:
        register_calibration(evaluate_app)
    if "curves" not in {c.name for c in evaluate_app.registered_commands}:
        register_curves(evaluate_app)
    app.add_typer(evaluate_app, name="evaluate")


def _table(title: str, cells: dict[str, dict[str, dict[str, Any]]], *, finetune: bool = False) -> None:
    from rich.table import Table

    from crystalsearch.evaluate.features import label

    table = Table(title=title, title_justify="left")
    for col in ("property", "method", "test MAE (mean ± std)", "seeds", "wall time"):
        table.add_column(col, justify="left" if col in ("property", "method") else "right")
    for prop, methods in cells.items():
        for method, c in methods.items():
            wall = c["wall_time_s"] if isinstance(c["wall_time_s"], float) else sum(c["wall_time_s"])
            mae = f"{c['mae_mean']:.4g} ± {c['mae_std']:.2g} {c['unit']}"
            table.add_row(prop, label(method, finetune=finetune), mae, str(len(c["seeds"])), f"{wall / 60:.1f} min")
    console.print(table)


def _compact(cells: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    keep = ("mae_mean", "mae_std", "maes", "seeds", "unit", "n_train", "n_val", "n_test", "lr", "wall_time_s")
    return {p: {m: {k: c[k] for k in keep if k in c} for m, c in ms.items()} for p, ms in cells.items()}


@one_line_errors
def embeddings_cmd(
    properties: str = typer.Option(
        "bulk_modulus,thermal_conductivity,melting_temperature", "--properties", help=PROPERTIES_HELP
    ),  # fmt: skip
    methods: str = typer.Option(
        "crystalclr,crystalclr_cs,sitestats,sine_coulomb,magpie,mean",
        "--methods",
        help="Encoder names (see --encoders), sitestats, sine_coulomb, magpie, mean (predict the training mean).",
    ),  # fmt: skip
    encoders: str | None = typer.Option(None, "--encoders", help=ENCODERS_HELP),
    seeds: str = typer.Option("0,1,2,3,4", "--seeds", help="Split seeds: 0,1,2 or 0-4."),
    max_structures: int = typer.Option(0, "--max-structures", min=0, help="Only the first N records (0 = all)."),
    jobs: int = typer.Option(1, "--jobs", min=-1, help="Random-forest n_jobs (-1 = all cores)."),
    device: str = typer.Option("cpu", "--device", help="Device for the encoders' forward passes."),
    out: Path = typer.Option(DEFAULT_OUT, "--out", help=OUT_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Table 1, top: default random forest on frozen embeddings vs matminer fingerprints, 5 seeds."""
    from crystalsearch.evaluate.embeddings import METHODS, PROPERTIES, EmbeddingsConfig, evaluate_embeddings
    from crystalsearch.evaluate.features import parse_encoders, parse_list, parse_seeds
    from crystalsearch.progress import Progress

    enc = parse_encoders(encoders)
    config = EmbeddingsConfig(
        properties=parse_list(properties, option="--properties", valid=PROPERTIES),
        methods=parse_list(methods, option="--methods", valid=[*METHODS, *enc, "random"]),
        encoders=enc, seeds=parse_seeds(seeds), max_structures=max_structures, jobs=jobs, device=device,
    )  # fmt: skip
    with Progress(not json_out) as progress:
        cells = evaluate_embeddings(config, out=out, progress=progress)
    if json_out:
        print_json({"random_forest": _compact(cells), "out": str(out)}, command="evaluate embeddings")
        return
    _table("Random forest on frozen representations (test MAE)", cells)
    console.print(f"table1.json and report.md updated in {out}")


@one_line_errors
def finetune_cmd(
    properties: str = typer.Option(
        "bulk_modulus,thermal_conductivity,melting_temperature", "--properties", help=PROPERTIES_HELP
    ),  # fmt: skip
    inits: str = typer.Option("random,crystalclr,crystalclr_cs", "--inits", help="random and encoder names."),
    encoders: str | None = typer.Option(None, "--encoders", help=ENCODERS_HELP),
    seeds: str = typer.Option("0,1,2,3,4", "--seeds", help="Split seeds; the lr is chosen on the first."),
    epochs: int = typer.Option(60, "--epochs", min=1, help="Most epochs per run."),
    patience: int = typer.Option(10, "--patience", min=1, help="Early-stopping patience (epochs)."),
    lrs: str = typer.Option("1e-3,3e-4,1e-4", "--lrs", help="Learning-rate grid (tried on the first seed)."),
    batch_size: int = typer.Option(128, "--batch-size", min=2, help="Crystals per batch."),
    max_structures: int = typer.Option(0, "--max-structures", min=0, help="Only the first N records (0 = all)."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    threads: int = typer.Option(0, "--threads", min=0, help="torch CPU threads (0 = torch default)."),
    compile_model: bool = typer.Option(True, "--compile/--no-compile", help="torch.compile the training pass."),
    out: Path = typer.Option(DEFAULT_OUT, "--out", help=OUT_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Table 1, bottom: fine-tune from random init vs CrystalCLR vs CrystalCLR+CS, 5 seeds (resumable)."""
    from crystalsearch.errors import InputError
    from crystalsearch.evaluate.embeddings import PROPERTIES
    from crystalsearch.evaluate.features import parse_encoders, parse_list, parse_seeds
    from crystalsearch.evaluate.finetuning import FinetuneEvalConfig, evaluate_finetune
    from crystalsearch.progress import Progress

    try:
        grid = tuple(float(v) for v in parse_list(lrs, option="--lrs"))
    except ValueError:
        raise InputError("--lrs", f"expected numbers like 1e-3,3e-4, got {lrs!r}") from None
    enc = parse_encoders(encoders)
    config = FinetuneEvalConfig(
        properties=parse_list(properties, option="--properties", valid=PROPERTIES),
        inits=parse_list(inits, option="--inits", valid=["random", *enc]), encoders=enc, seeds=parse_seeds(seeds),
        lrs=grid, epochs=epochs, patience=patience, batch_size=batch_size, max_structures=max_structures,
        device=device, threads=threads, compile=compile_model,
    )  # fmt: skip
    with Progress(not json_out) as progress:
        cells = evaluate_finetune(config, out=out, progress=progress)
    if json_out:
        print_json({"finetune": _compact(cells), "out": str(out)}, command="evaluate finetune")
        return
    _table("Fine-tuned CGCNN (test MAE)", cells, finetune=True)
    console.print(f"table1.json, report.md and finetune_runs.jsonl updated in {out}")


@one_line_errors
def augmentations_cmd(
    augmentations: str = typer.Option(
        "perturb,strain,column_replace,supercell", "--augmentations", help="Augmentations to study, alone and in pairs."
    ),  # fmt: skip
    structures: int = typer.Option(1024, "--structures", min=2, help="Pretrain on the first N mp_structures."),
    epochs: int = typer.Option(10, "--epochs", min=1, help="Epochs of each short pretraining run."),
    batch_size: int = typer.Option(256, "--batch-size", min=2, help="Crystals per batch."),
    lr: float = typer.Option(1e-3, "--lr", help="Adam learning rate of the short runs."),
    seeds: str = typer.Option("0,1,2,3,4", "--seeds", help="Split seeds of the linear evaluation."),
    eval_max_structures: int = typer.Option(
        0, "--eval-max-structures", min=0, help="Evaluate on the first N records of each set (0 = all)."
    ),  # fmt: skip
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    threads: int = typer.Option(0, "--threads", min=0, help="torch CPU threads (0 = torch default)."),
    compile_model: bool = typer.Option(False, "--compile/--no-compile", help="torch.compile each run."),
    runs_dir: Path = typer.Option(Path("runs/augmentations"), "--runs-dir", help="Pretraining run folders."),
    out: Path = typer.Option(DEFAULT_OUT, "--out", help=OUT_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Figure 2: one-sided pretraining under every augmentation and pair, linear-regression MAE heatmaps."""
    from crystalsearch.errors import InputError
    from crystalsearch.evaluate.augmentations import AUGMENTATIONS, AugmentationStudyConfig, evaluate_augmentations
    from crystalsearch.evaluate.features import parse_list, parse_seeds

    if structures < batch_size:
        raise InputError("--structures", f"{structures} structures are fewer than one batch of {batch_size}")
    config = AugmentationStudyConfig(
        augmentations=parse_list(augmentations, option="--augmentations", valid=AUGMENTATIONS),
        structures=structures, epochs=epochs, batch_size=batch_size, lr=lr, eval_seeds=parse_seeds(seeds),
        eval_max_structures=eval_max_structures, device=device, threads=threads, compile=compile_model,
    )  # fmt: skip
    log = (lambda _m: None) if json_out else (lambda m: console.print(m, highlight=False))
    summary = evaluate_augmentations(config, out=out, runs_dir=runs_dir, show_progress=not json_out, log=log)
    if json_out:
        print_json(summary, command="evaluate augmentations")
        return
    console.print(f"[bold green]done[/] in {summary['wall_time_s'] / 60:.1f} min; heatmaps: {summary['path']}")
    console.print(f"random-encoder reference: {summary['baseline_random_encoder']}")


add_command(evaluate_app, embeddings_cmd, "embeddings", epilog=examples(
    "crystalsearch evaluate embeddings --seeds 0-4 --out my_results",
    "crystalsearch evaluate embeddings --properties bulk_modulus --methods crystalclr_cs,magpie --seeds 0",
))  # fmt: skip
add_command(evaluate_app, finetune_cmd, "finetune", epilog=examples(
    "crystalsearch evaluate finetune --properties bulk_modulus --seeds 0-4 --device cuda",
    "crystalsearch evaluate finetune --inits random,crystalclr_cs --max-structures 500 --epochs 5 --no-compile",
))  # fmt: skip
add_command(evaluate_app, augmentations_cmd, "augmentations", epilog=examples(
    "crystalsearch evaluate augmentations --structures 1024 --epochs 10",
    "crystalsearch evaluate augmentations --augmentations perturb,strain --structures 256 --epochs 2 --seeds 0",
))  # fmt: skip
