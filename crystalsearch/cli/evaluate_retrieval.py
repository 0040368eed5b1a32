"""`crystalsearch evaluate retrieval`: recall of indexed crystals from rotated, translated, supercell,
perturbed and strained copies. ``register(evaluate_app)`` attaches :func:`retrieval` to the ``evaluate``
sub-application."""

from __future__ import annotations

from pathlib import Path

import typer

from crystalsearch.cli.common import add_command, console, examples, one_line_errors, print_json


@one_line_errors
def retrieval(
    index: str = typer.Option("default", "--index", help="Index folder (default: the default index)."),
    task: str = typer.Option(
        "invariance",
        "--task",
        help="invariance: recall of transformed copies; structure: does each --by mode find the query's "
        "structure type (StructureMatcher truth), against the MP fingerprint and Magpie.",
    ),
    queries: int = typer.Option(300, "--queries", min=1, help="Query materials for --task structure."),
    subset: int = typer.Option(
        1500, "--subset", min=10, max=5000, help="Subset size where every ranking is compared (of a fixed 5,000)."
    ),
    out: Path = typer.Option(
        Path("crystalsearch-results") / "structure_retrieval",
        "--out",
        help="Folder for --task structure results (results.json, report.md).",
    ),
    n: int = typer.Option(200, "-n", "--n", min=1, help="Indexed materials to make queries from."),
    seed: int = typer.Option(0, "--seed", help="Random seed for the sample and the transformations."),
    kinds: str = typer.Option(
        "rotation,translation,supercell,perturb,strain", "--kinds", help="Comma-separated query kinds."
    ),
    perturb: float = typer.Option(0.05, "--perturb", min=0.0, help="Largest site displacement (Å)."),
    strain: float = typer.Option(0.02, "--strain", min=0.0, help="Largest strain per lattice vector."),
    max_sites: int = typer.Option(24, "--max-sites", min=1, help="Only sample materials up to this size."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Recall@1 and @10 of indexed crystals queried by transformed copies of themselves (--task invariance),
    or structure-type precision of every similarity mode (--task structure)."""
    from crystalsearch.errors import InputError

    if task == "structure":
        _structure_task(index, queries=queries, subset=subset, seed=seed, out=out, json_out=json_out)
        return
    if task != "invariance":
        raise InputError("--task", f"must be invariance or structure, got {task!r}")
    from crystalsearch.evaluate.retrieval import KINDS, RetrievalConfig, evaluate_retrieval
    from crystalsearch.identity.catalog import Catalog

    chosen = tuple(k.strip() for k in kinds.split(",") if k.strip())
    bad = [k for k in chosen if k not in KINDS]
    if bad or not chosen:
        raise InputError("--kinds", f"unknown kind(s) {', '.join(bad) or '(none)'}; valid: {', '.join(KINDS)}")
    config = RetrievalConfig(n=n, seed=seed, kinds=chosen, perturb=perturb, strain=strain, max_sites=max_sites)
    with Catalog.open(index) as catalog:
        report = evaluate_retrieval(catalog, config=config)
    if json_out:
        print_json(report.to_dict())
        return
    from rich.table import Table

    table = Table(title=f"retrieval on {report.index_size:,} indexed materials, encoder {report.encoder}",
                  title_justify="left")  # fmt: skip
    for col in ("kind", "queries", "recall@1", "recall@10", "mean rank", "worst rank"):
        table.add_column(col, justify="left" if col == "kind" else "right")
    for r in report.results:
        table.add_row(r.kind, str(r.queries), f"{r.recall_at_1:.3f}", f"{r.recall_at_10:.3f}",
                      f"{r.mean_rank:.2f}", str(r.worst_rank))  # fmt: skip
    console.print(table)
    ok = report.invariants_at_rank_1
    console.print(f"rotation/translation/supercell copies at rank 1: {'[green]yes[/]' if ok else '[red]no[/]'}")


def _structure_task(index: str, *, queries: int, subset: int, seed: int, out: Path, json_out: bool) -> None:
    import sys

    from crystalsearch.evaluate.structure_report import write_report
    from crystalsearch.evaluate.structure_retrieval import (
        StructureEvalConfig,
        VerdictCache,
        evaluate_structure_retrieval,
    )
    from crystalsearch.identity.catalog import Catalog
    from crystalsearch.paths import cache_dir

    config = StructureEvalConfig(n_queries=queries, seed=seed, subset=subset)
    verdicts = VerdictCache(cache_dir() / "matcher" / "framework.jsonl")
    say = (lambda m: None) if json_out else (lambda m: console.print(f"[dim]{m}[/]", highlight=False))
    with Catalog.open(index) as catalog:
        report = evaluate_structure_retrieval(catalog, config=config, verdicts=verdicts, progress=say)
    command = "crystalsearch " + " ".join(sys.argv[1:])
    text = write_report(report, out=out, command=command)
    if json_out:
        print_json(report.to_dict())
        return
    console.print(text, markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    """Attach the `retrieval` command to a typer (sub-)application, e.g. the `evaluate` group."""
    add_command(app, retrieval, "retrieval", epilog=examples(
        "crystalsearch evaluate retrieval",
        "crystalsearch evaluate retrieval --index my_index -n 50 --kinds perturb,strain --perturb 0.1 --json",
        "crystalsearch evaluate retrieval --task structure --queries 300 --out results/structure",
    ))  # fmt: skip
