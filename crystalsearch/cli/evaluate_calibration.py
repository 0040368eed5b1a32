"""`crystalsearch evaluate calibration`: per property, on the protocol test split — test MAE of the head
ensemble, of RF on Magpie and of the stacked prediction; coverage and width of the conformal interval;
error ratio and firing rate of the out-of-distribution flags. ``register(evaluate_app)`` attaches it."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import typer

from crystalsearch.cli.common import add_command, console, examples, one_line_errors, print_json


@one_line_errors
def calibration(
    properties: str | None = typer.Option(
        None,
        "--properties",
        "--property",
        "-p",
        help="Comma-separated head properties (default: every one with heads).",
    ),
    heads_root: Path | None = typer.Option(
        None,
        "--heads",
        help="Folder of PROPERTY/seed*/ ensembles, or of one "
        "ensemble's seed*/ with one --property (default: the installed heads).",
    ),
    coverage: float = typer.Option(0.9, "--coverage", min=0.01, max=0.99, help="Nominal interval coverage."),
    fit: bool = typer.Option(
        False,
        "--fit",
        help="Write calibration.json (+ composition model, card) into the heads folders: what `predict` uses.",
    ),
    jobs: int = typer.Option(1, "--jobs", min=-1, help="Random-forest n_jobs (-1 = all cores)."),
    out: Path = typer.Option(
        Path("crystalsearch-results") / "calibration", "--out", help="Folder for calibration.json and report.md."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Test MAE (ensemble, RF on Magpie, stacked), 90% interval coverage and width, OOD flag error ratio."""
    from crystalsearch.atomic import atomic_write_json, atomic_write_text
    from crystalsearch.cli.schema import response
    from crystalsearch.errors import InputError
    from crystalsearch.predict.calibration import CalibrationConfig, evaluate_property
    from crystalsearch.predict.calibration_report import report
    from crystalsearch.predict.predictor import available_properties, heads_dir
    from crystalsearch.train.finetune import property_spec

    props = [p.strip() for p in properties.split(",") if p.strip()] if properties else available_properties()
    for p in props:
        property_spec(p)
    if heads_root is not None and len(props) == 1 and any(heads_root.glob("seed*/model.json")):
        folders = {props[0]: heads_root}
    else:
        folders = {p: heads_root / p if heads_root is not None else heads_dir(p) for p in props}
    missing = [str(f) for f in folders.values() if not any(f.glob("seed*/model.json"))]
    if missing:
        raise InputError("--heads", f"no seed*/model.json in {', '.join(missing)}")
    command = " ".join(shlex.quote(a) for a in ["crystalsearch", *sys.argv[1:]])
    config = CalibrationConfig(properties=tuple(props), coverage=coverage, fit=fit, jobs=jobs, command=command)
    say = (lambda m: None) if json_out else (lambda m: console.print(f"[dim]{m}[/]", highlight=False))
    results: list[dict[str, Any]] = [evaluate_property(p, folders[p], config, log=say) for p in props]
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "calibration.json", {"command": command, "results": results})
    text = report(results, command=command)
    atomic_write_text(out / "report.md", text)
    if json_out:
        units = {r["property"]: r["unit"] for r in results}
        print_json(response("evaluate calibration", results, units=units, coverage=coverage, out=str(out)))
        return
    sys.stdout.write(text)  # markdown rows unwrapped


def register(app: typer.Typer) -> None:
    """Attach the `calibration` command to the `evaluate` group."""
    add_command(app, calibration, "calibration", epilog=examples(
        "crystalsearch evaluate calibration",
        "crystalsearch evaluate calibration -p bulk_modulus --heads runs/heads/bulk_modulus --fit",
        "crystalsearch evaluate calibration --coverage 0.8 --json",
    ))  # fmt: skip
