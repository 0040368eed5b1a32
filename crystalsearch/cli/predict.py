"""`crystalsearch predict`: property values with uncertainty and evidence from the nearest known materials."""

from __future__ import annotations

import csv
from pathlib import Path

import typer

from crystalsearch.cli.common import console, err_console, one_line_errors, print_json


def register(app: typer.Typer) -> None:
    """Attach the `predict` command."""

    @app.command("predict")
    @one_line_errors
    def predict_cmd(
        queries: list[str] = typer.Argument(..., help="Structure files, folders, globs or material ids."),
        prop: str = typer.Option(..., "--property", "-p", help="bulk_modulus, shear_modulus, formation_energy, "
                                 "band_gap (shipped); others after `train finetune`."),  # fmt: skip
        index: str = typer.Option("default", "--index", help="Index for the evidence neighbours."),
        heads: Path | None = typer.Option(None, "--heads", help="Folder of fine-tuned heads (seed*/)."),
        no_evidence: bool = typer.Option(False, "--no-evidence", help="Skip the nearest-neighbour evidence."),
        json_out: bool = typer.Option(False, "--json", help="Print JSON: one object per query."),
        csv_out: Path | None = typer.Option(None, "--csv", help="Also write a CSV file."),
    ) -> None:
        """Predict a property for each structure, with an ensemble uncertainty and the 3 nearest known materials."""
        from crystalsearch.io import ReadReport, read_structures
        from crystalsearch.predict import Predictor
        from crystalsearch.train.finetune import property_spec

        property_spec(prop)
        report = ReadReport()
        items = list(read_structures(queries, report=report))
        for err in report.failed:
            err_console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
        predictor = Predictor.load(prop, folder=heads)
        catalog = None
        if not no_evidence and items:
            from crystalsearch.search.catalog import Catalog

            catalog = Catalog.open(index, progress=not json_out,
                                   notify=lambda m: err_console.print(m, highlight=False))  # fmt: skip
        results = predictor.predict(items, catalog=catalog)
        if json_out:
            print_json([r.to_dict() for r in results])
        else:
            _render(results)
        if csv_out is not None:
            _write_csv(csv_out, results)
        if report.exit_code:
            raise typer.Exit(report.exit_code)


def _render(results: list) -> None:  # type: ignore[type-arg]
    from rich.table import Table

    for r in results:
        title = f"{r.query}: {r.property} = [bold]{r.value:.4g} ± {r.uncertainty:.2g} {r.unit}[/]"
        console.print(title, highlight=False)
        if r.warning:
            console.print(f"  [yellow]warning:[/] {r.warning}", highlight=False)
        if r.neighbors:
            table = Table(title="evidence: nearest materials with a known value", title_justify="left")
            for col in ("material id", "formula", f"{r.property} ({r.unit})", "similarity"):
                table.add_column(col)
            for n in r.neighbors:
                table.add_row(n.material_id, n.formula, f"{n.value:.4g}", f"{n.similarity:.4f}")
            console.print(table)


def _write_csv(path: Path, results: list) -> None:  # type: ignore[type-arg]
    import io

    from crystalsearch.search.manifest import atomic_write_bytes

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["query", "property", "value", "unit", "uncertainty", "nearest_similarity", "warning",
                "neighbor_1", "neighbor_1_value", "neighbor_2", "neighbor_2_value", "neighbor_3", "neighbor_3_value"])
    for r in results:
        row = [r.query, r.property, r.value, r.unit, r.uncertainty, r.nearest_similarity, r.warning or ""]
        for n in r.neighbors:
            row += [n.material_id, n.value]
        w.writerow(row)
    atomic_write_bytes(path, buf.getvalue().encode())
