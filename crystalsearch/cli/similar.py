"""`crystalsearch similar`: the indexed materials most like given crystals."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from crystalsearch.cli.common import console, err_console, one_line_errors, print_json

if TYPE_CHECKING:
    from crystalsearch.search.catalog import QueryResult

# (property, column title, unit) shown in the table when any hit has the property
TABLE_PROPERTIES = (
    ("formation_energy_per_atom", "E_form", "eV/atom"),
    ("band_gap", "gap", "eV"),
    ("bulk_modulus_vrh", "K_VRH", "GPa"),
    ("shear_modulus_vrh", "G_VRH", "GPa"),
    ("thermal_conductivity", "κ", "W/m/K"),
    ("melting_temperature", "T_melt", "K"),
)
CSV_FIELDS = ("query", "rank", "material_id", "formula", "similarity", "spacegroup", "spacegroup_number",
              "crystal_system", "nsites", "density", "volume_per_atom")  # fmt: skip


def _width(header: str, cells: list[str]) -> int:
    return max([len(header), *(len(c) for c in cells)]) + 2


def render_table(result: QueryResult, *, filters: str = "") -> None:
    """One rich table per query; property columns are added while they fit the console width."""
    from rich import box
    from rich.table import Table

    known = result.verdict is not None
    columns: list[tuple[str, str, list[str]]] = [
        ("#", "right", [str(h.rank) for h in result.hits]),
        ("material id", "left", [h.material_id for h in result.hits]),
        ("formula", "left", [h.formula for h in result.hits]),
        ("space group", "left", [h.spacegroup for h in result.hits]),
        ("cosine", "right", [f"{h.similarity:.4f}" for h in result.hits]),
    ]
    if known:
        columns.append(("same", "center", ["[green]yes[/]" if h.same_structure else "" for h in result.hits]))
    used = sum(_width(t, c) for t, _, c in columns)
    units = []
    for prop, label, unit in TABLE_PROPERTIES:
        cells = [_fmt(h.properties.get(prop)) for h in result.hits]
        if any(cells) and used + _width(label, cells) <= console.width:
            columns.append((label, "right", cells))
            used += _width(label, cells)
            units.append(f"{label} {unit}")
    notes = [f"filters: {filters}"] if filters else []
    if units:
        notes.append("units: " + ", ".join(units))
    title = f"[bold]{result.query}[/]" + (f" ({result.formula})" if result.formula else "")
    table = Table(title=title, caption="\n".join(notes) or None, title_justify="left", caption_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False)  # fmt: skip
    for header, justify, _ in columns:
        table.add_column(header, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for i in range(len(result.hits)):
        table.add_row(*(cells[i] for _, _, cells in columns))
    console.print(table)
    if not result.hits:
        console.print("  no materials pass the filters")
    if known:
        style = "green" if result.known_as else "yellow"
        console.print(f"  verdict: [bold {style}]{result.verdict}[/]", highlight=False)


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def write_csv(results: list[QueryResult], path: str) -> None:
    from crystalsearch.search.entries import PROPERTIES

    known = any(r.verdict is not None for r in results)
    fields = [*CSV_FIELDS, *PROPERTIES, "source"] + (["same_structure", "verdict"] if known else [])
    fh: Any = sys.stdout if path == "-" else open(Path(path), "w", newline="")  # noqa: SIM115
    try:
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for r in results:
            for h in r.hits:
                row = {**h.to_dict(), **h.properties, "query": r.query, "verdict": r.verdict}
                writer.writerow(row)
    finally:
        if fh is not sys.stdout:
            fh.close()


def register(app: typer.Typer) -> None:
    """Attach the `similar` command to the application."""

    @app.command("similar")
    @one_line_errors
    def similar(
        queries: list[str] = typer.Argument(
            ...,
            metavar="QUERY...",
            help="Structure files (CIF, POSCAR, JSON), folders, globs, or material ids "
            "in the index (an indexed id is left out of its own hits).",
        ),
        k: int = typer.Option(10, "-k", "--k", min=1, help="Number of hits per query."),
        index: str = typer.Option("default", "--index", help="Index folder (default: the shipped/cached index)."),
        elements: str | None = typer.Option(
            None, "--elements", help="Only materials containing all of these, e.g. Li,O."
        ),
        exclude_elements: str | None = typer.Option(
            None, "--exclude-elements", help="Only materials with none of these."
        ),
        spacegroup: str | None = typer.Option(
            None, "--spacegroup", help="Space group symbol or number, e.g. Fm-3m or 225."
        ),
        max_sites: int | None = typer.Option(None, "--max-sites", help="Only materials with at most this many sites."),
        where: str | None = typer.Option(
            None, "--where", help='Condition on properties, e.g. "band_gap > 1 and bulk_modulus_vrh < 100".'
        ),
        known: bool = typer.Option(
            False, "--known", help="Check with StructureMatcher whether each query is a known material."
        ),
        json_out: bool = typer.Option(False, "--json", help="Print a JSON list, one object per query."),
        csv_path: str | None = typer.Option(
            None, "--csv", metavar="FILE", help="Also write the hits as CSV ('-' for stdout)."
        ),
    ) -> None:
        """Find the known materials most similar to each QUERY (cosine similarity of CrystalCLR embeddings).

        Filters are exact: they are evaluated in SQL and the search runs over the materials that pass.
        """
        from crystalsearch.io import ReadReport
        from crystalsearch.search.catalog import Catalog
        from crystalsearch.search.filters import Filters

        filters = Filters.make(elements=elements, exclude_elements=exclude_elements, spacegroup=spacegroup,
                               max_sites=max_sites, where=where)  # fmt: skip
        report = ReadReport()
        with Catalog.open(index) as catalog:
            results = catalog.search(queries, k=k, filters=filters, known=known, report=report)
        if csv_path:
            write_csv(results, csv_path)
        if json_out:
            print_json([r.to_dict() for r in results])
        elif csv_path != "-":
            for r in results:
                if r.error is None:
                    render_table(r, filters=filters.describe())
        errors = [r.error for r in results if r.error]
        for message in errors:
            err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
        raise typer.Exit(2 if errors or report.failed else 0)
