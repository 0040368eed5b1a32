"""`crystalsearch evaluate curves`: test MAE against the number of labels, pretrained start vs random start vs
frozen-representation baselines (:mod:`crystalsearch.evaluate.curves`). ``register(evaluate_app)`` attaches it."""

from __future__ import annotations

from pathlib import Path

import typer

from crystalsearch.cli.common import add_command, console, examples, one_line_errors, print_json

DEFAULT_PROPERTIES = "bulk_modulus,shear_modulus,melting_temperature,thermal_conductivity,band_gap"
DEFAULT_METHODS = "finetune_pretrained,finetune_random,ridge_frozen,rf_frozen,knn_frozen,rf_magpie,blend"


def parse_sizes(text: str) -> tuple[int, ...]:
    """``25,50,all`` -> (25, 50, 0); ``all`` is the whole protocol train part."""
    from crystalsearch.errors import InputError

    sizes: list[int] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if part == "all":
            sizes.append(0)
            continue
        if not part.isdigit() or int(part) < 10:
            raise InputError("--sizes", f"expected label counts of at least 10 or 'all', got {part!r}")
        sizes.append(int(part))
    if not sizes:
        raise InputError("--sizes", "empty list")
    return tuple(sorted(dict.fromkeys(sizes), key=lambda s: s or 10**9))


@one_line_errors
def curves(
    properties: str = typer.Option(DEFAULT_PROPERTIES, "--properties", "-p", help="Head properties (comma-separated)."),
    sizes: str = typer.Option("25,50,100,200,500,1000,all", "--sizes", help="Training-set sizes; 'all' = train part."),
    seeds: int = typer.Option(5, "--seeds", min=1, help="Seeds 0..N-1 (draw, initialisation and batch order)."),
    methods: str = typer.Option(DEFAULT_METHODS, "--methods", help="Methods (comma-separated)."),
    passes: int = typer.Option(4000, "--passes", min=100, help="Fine-tuning budget: crystals seen per learning rate."),
    device: str = typer.Option("cpu", "--device", help="Where the fine-tuning cells train: cpu, cuda, cuda:N, auto."),
    out: Path = typer.Option(Path("crystalsearch-results") / "curves", "--out", help="Journal, JSON and figures."),
    report: Path | None = typer.Option(None, "--report", help="Markdown summary (default OUT/learning-curves.md)."),
    reference: Path | None = typer.Option(None, "--reference", help="Also write the compact recommendation JSON."),
    report_only: bool = typer.Option(False, "--report-only", help="Render from the finished cells; fit nothing."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Learning curves on the protocol test split: fine-tuned from the CrystalCLR+CS encoder and from random init,
    ridge / RF / kNN on the frozen representation, RF on Magpie and the heads' blend, for nested training sets
    of each size and several seeds. Resumable: each finished cell is journalled and an unfinished fine-tuning
    cell keeps its last epoch (OUT/partial); rerun the same command to continue. Each process uses one thread:
    start the same command N times to use N cores (each takes the cells no other process holds)."""
    from crystalsearch.evaluate.curves import METHODS, PROPERTIES, CurvesConfig, run_curves
    from crystalsearch.evaluate.curves_report import write_outputs
    from crystalsearch.evaluate.features import parse_list

    config = CurvesConfig(
        properties=parse_list(properties, option="--properties", valid=PROPERTIES), sizes=parse_sizes(sizes),
        seeds=tuple(range(seeds)), methods=parse_list(methods, option="--methods", valid=METHODS), passes=passes,
        device=device,
    )  # fmt: skip
    say = (lambda _m: None) if json_out else (lambda m: console.print(m, highlight=False, markup=False))
    if not report_only:
        run_curves(config, out=out, log=say)
    summary = write_outputs(out, config=config, report=report or out / "learning-curves.md", reference=reference)
    if json_out:
        print_json(summary, command="evaluate curves")
        return
    console.print(f"curves.json, figures and {report or out / 'learning-curves.md'} written", highlight=False)


def register(app: typer.Typer) -> None:
    """Attach the `curves` command to the `evaluate` group."""
    add_command(app, curves, "curves", epilog=examples(
        "crystalsearch evaluate curves --out docs/learning-curves --report docs/learning-curves.md",
        "crystalsearch evaluate curves -p melting_temperature --sizes 25,50,100 --seeds 3",
        "crystalsearch evaluate curves --report-only --out docs/learning-curves",
    ))  # fmt: skip
