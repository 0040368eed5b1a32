"""`crystalsearch similar`: the indexed materials most like given crystals."""

from __future__ import annotations

import csv
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from crystalsearch.cli.common import add_command, console, examples, one_line_errors, print_error, print_json

if TYPE_CHECKING:
    from rich.console import Console

    from crystalsearch.catalog.catalog import QueryResult

CSV_FIELDS = ("query", "rank", "material_id", "formula", "similarity", "structure_similarity",
              "chemistry_similarity", "prototype", "spacegroup", "spacegroup_number", "crystal_system", "nsites",
              "density", "volume_per_atom")  # fmt: skip
EXAMPLES = examples(
    "crystalsearch similar examples/NaCl.cif                 # structure type first, chemistry second",
    "crystalsearch similar examples/GaAs.cif --by structure  # isostructural analogues, any chemistry",
    "crystalsearch similar mp-2534 --same-prototype --elements As",
    "crystalsearch similar mp-149 -k 5 --by chemistry --json",
    "crystalsearch similar candidates/*.cif --known",
    "crystalsearch similar x.cif --where \"band_gap > 1 AND crystal_system = 'cubic'\" --csv hits.csv",
    "crystalsearch similar examples/*.cif | sort -t$'\\t' -k6 -gr   # piped: tab-separated full rows",
)


def _properties(results: Sequence[QueryResult]) -> list[tuple[str, str, int | None]]:
    """(column, label, digits) of the registry properties that any hit has, in registry order."""
    from crystalsearch.data.properties import REGISTRY

    have = {k for r in results for h in r.hits for k in h.properties}
    return [(p.column, p.label, p.digits) for p in REGISTRY if p.column in have]


def render_table(result: QueryResult, *, units: dict[str, str], filters: str = "", out: Console | None = None) -> None:
    """One table per query; whole property columns are dropped (and named) when the terminal is too narrow."""
    from rich.markup import escape

    from crystalsearch.cli.render import Column, number_text, print_table, similarity_text

    out = out or console
    hits = result.hits
    columns = [
        Column("#", [str(h.rank) for h in hits], "right"),
        Column("material id", [h.material_id for h in hits]),
        Column("formula", [h.formula for h in hits], optional=True, drop_order=1),
        Column("space group", [h.spacegroup for h in hits], optional=True, drop_order=2),
        Column("similarity", [similarity_text(h.similarity) for h in hits], "right"),
    ]
    if any(h.structure_similarity is not None for h in hits):
        columns += [
            Column("structure", [_part(h.structure_similarity) for h in hits], "right", optional=True),
            Column("chemistry", [_part(h.chemistry_similarity) for h in hits], "right", optional=True),
            Column("prototype", [h.prototype or "" for h in hits], optional=True, drop_order=9),
        ]
    if result.verdict is not None:  # the verdict in its own column; rows stay in similarity order
        rms = {m.material_id: m.rms_angstrom for m in result.known.matches} if result.known else {}
        cells = [f"same material (RMS {rms[h.material_id]:.3f} Å)" if h.material_id in rms else "" for h in hits]
        columns.append(Column("known", cells))
    for order, (col, label, digits) in enumerate(_properties([result])):
        cells = [number_text(h.properties.get(col), digits) for h in hits]
        columns.append(Column(label, cells, "right", optional=True, drop_order=10 + order, unit=units.get(col, "")))
    notes = [f"filters: {escape(filters)}"] if filters else []
    title = f"[bold]{escape(result.query)}[/]" + (f" ({result.formula})" if result.formula else "")
    print_table(out, columns, title=title, notes=notes)
    if not hits:
        out.print("  no materials pass the filters")
    if result.verdict is not None:
        style = "green" if result.known_as else "yellow"
        out.print(f"  verdict: [bold {style}]{result.verdict}[/]", highlight=False)


def _part(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def write_tsv(results: Sequence[QueryResult], *, units: dict[str, str]) -> None:
    """Full rows, tab-separated, one header line (stdout is not a terminal)."""
    from crystalsearch.cli.render import write_tsv as tsv
    from crystalsearch.cli.schema import round_value

    props = _properties(results)
    known = any(r.verdict is not None for r in results)
    header = ["query", "rank", "material_id", "formula", "spacegroup", "similarity", "structure_similarity",
              "chemistry_similarity", "prototype"]  # fmt: skip
    header += ["same_structure", "verdict"] if known else []
    header += [f"{col} ({units.get(col, '')})" for col, _, _ in props]
    rows = []
    for r in results:
        for h in r.hits:
            row: list[Any] = [
                r.query,
                h.rank,
                h.material_id,
                h.formula,
                h.spacegroup,
                f"{h.similarity:.6f}",
                _part(h.structure_similarity),
                _part(h.chemistry_similarity),
                h.prototype or "",
            ]
            row += [h.same_structure, r.verdict] if known else []
            row += [round_value(col, h.properties.get(col)) for col, _, _ in props]
            rows.append(row)
    tsv(header, rows)


def write_csv(results: list[QueryResult], path: str) -> None:
    from crystalsearch.cli.schema import property_columns, round_value

    known = any(r.verdict is not None for r in results)
    props = property_columns(k for r in results for h in r.hits for k in h.properties)
    fields = [*CSV_FIELDS, *props, "source"] + (["same_structure", "verdict"] if known else [])
    fh: Any = sys.stdout if path == "-" else open(Path(path), "w", newline="")  # noqa: SIM115
    try:
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for r in results:
            for h in r.hits:
                values = {k: round_value(k, h.properties.get(k)) for k in props}
                writer.writerow({**h.to_dict(props), **values, "query": r.query, "verdict": r.verdict})
    finally:
        if fh is not sys.stdout:
            fh.close()


def units_of(manifest_units: dict[str, str]) -> dict[str, str]:
    """Units of every numeric field and property (the index manifest's, completed from the registry)."""
    from crystalsearch.cli.schema import FIELD_UNITS
    from crystalsearch.data.properties import UNITS

    return {**FIELD_UNITS, **UNITS, **manifest_units}


@one_line_errors
def similar(
    queries: list[str] = typer.Argument(
        ...,
        metavar="QUERY...",
        help="Structure files (CIF, POSCAR, JSON), folders, globs, or material ids in the index (an indexed id "
        "is left out of its own hits).",
    ),
    k: int = typer.Option(10, "-k", "--k", min=1, help="Number of hits per query."),
    index: str = typer.Option("default", "--index", help="Index folder (default: the shipped/cached index)."),
    elements: str | None = typer.Option(None, "--elements", help="Only materials containing all of these, e.g. Li,O."),
    exclude_elements: str | None = typer.Option(None, "--exclude-elements", help="Only materials with none of these."),
    spacegroup: str | None = typer.Option(None, "--spacegroup", help="Space group symbol or number: Fm-3m or 225."),
    max_sites: int | None = typer.Option(None, "--max-sites", help="Only materials with at most this many sites."),
    where: str | None = typer.Option(
        None,
        "--where",
        help="SQL-style condition on columns, e.g. \"band_gap > 1 AND crystal_system = 'cubic'\", "
        '"spacegroup_number IN (225, 227)", "formula LIKE \'Li%\'" (grammar: docs/cli.md).',
    ),
    known: bool = typer.Option(False, "--known", help="Check with StructureMatcher whether each query is known."),
    by: str = typer.Option(
        "both",
        "--by",
        metavar="MODE",
        help="What similar means: both (structure type first, chemistry second), structure (isostructural, any "
        "chemistry) or chemistry (the CrystalCLR+CS representation alone).",
    ),
    weight: float | None = typer.Option(
        None,
        "--weight",
        min=0.0,
        max=1.0,
        help="Structure share of the score, 0..1 (default: 0.5 for both, 1 for structure, 0 for chemistry).",
    ),
    prototype: str | None = typer.Option(
        None,
        "--prototype",
        metavar="LABEL",
        help="Only materials with this prototype label (e.g. AB_cF8_225_m-3m_m-3m).",
    ),
    same_prototype: bool = typer.Option(
        False, "--same-prototype", help="Only materials with the query's own prototype label (its structure type)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object (schema: docs/cli.md)."),
    csv_path: str | None = typer.Option(None, "--csv", metavar="FILE", help="Also write hits as CSV ('-': stdout)."),
) -> None:
    """Find the known materials most similar to each QUERY: structure type first, chemistry second.

    similarity = w * structure + (1 - w) * chemistry. structure is the species-agnostic structure
    fingerprint (cosine) averaged with whether the prototype label (space group, Wyckoff site symmetries,
    stoichiometry pattern) is the query's; chemistry is the cosine of CrystalCLR+CS representations.

    Filters are exact: they are evaluated in SQL and the search runs over the materials that pass. In a
    terminal each query gets a table (columns that do not fit are dropped whole and named); piped, the
    output is tab-separated full rows.
    """
    from crystalsearch.catalog.filters import Filters
    from crystalsearch.cli.schema import property_columns, response
    from crystalsearch.identity.catalog import Catalog
    from crystalsearch.io import ReadReport

    filters = Filters.make(elements=elements, exclude_elements=exclude_elements, spacegroup=spacegroup,
                           max_sites=max_sites, where=where, prototype=prototype)  # fmt: skip
    report = ReadReport()
    with Catalog.open(index, mmap=True) as catalog:  # one-shot process: map the vectors, do not read them all
        results = catalog.search(queries, k=k, filters=filters, known=known, report=report, by=by, weight=weight,
                                 same_prototype=same_prototype)  # fmt: skip
        units = units_of(dict(catalog.manifest.units))
        enc = catalog.manifest.encoder
        meta = {"index": str(catalog.path), "encoder": {"name": enc.name, "hash": enc.hash}}
    if csv_path:
        write_csv(results, csv_path)
    if json_out:
        cols = property_columns(catalog.manifest.units)
        print_json(response("similar", [r.to_dict(cols) for r in results], units=units, **meta, k=k,
                            filters=filters.describe() or None, by=by, weight=weight))  # fmt: skip
    elif csv_path != "-":
        ok = [r for r in results if r.error is None]
        if console.is_terminal:
            for r in ok:
                render_table(r, units=units, filters=filters.describe())
        elif ok:
            write_tsv(ok, units=units)
    errors = [r.error for r in results if r.error]
    for message in errors:
        print_error(message)
    raise typer.Exit(2 if errors or report.failed else 0)


def register(app: typer.Typer) -> None:
    """Attach the `similar` command to the application."""
    add_command(app, similar, "similar", epilog=EXAMPLES)
