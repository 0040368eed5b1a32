"""`crystalsearch predict`: property values with uncertainty and evidence from the nearest known materials.

When a query is itself in the catalog with a stored value of the property (an indexed id, or a file
StructureMatcher finds to be an indexed material), the answer says so ("catalog value: ...") and that
material is not shown as its own evidence. "±" is the spread (sample standard deviation) of the
predictions of the seed ensemble; every output says so. Calibrated heads (``calibration.json``) also give a
prediction interval at ``--coverage`` (split conformal on the protocol's calibration split).
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import typer

from crystalsearch.cli.common import add_command, console, examples, one_line_errors, print_error, print_json


def _writer(data: bytes) -> Callable[[BinaryIO], object]:
    return lambda fh: fh.write(data)


if TYPE_CHECKING:
    from pymatgen.core import Structure

    from crystalsearch.identity.catalog import Catalog
    from crystalsearch.predict.predictor import Prediction, Predictor

EXAMPLES = examples(
    "crystalsearch predict --property bulk_modulus examples/*.cif",
    "crystalsearch predict -p band_gap mp-2534 --json",
    "crystalsearch predict -p formation_energy my_structures/ --no-evidence --csv predictions.csv",
)
SPREAD = "± is the spread (sample standard deviation) of the predictions of the {n} seed-ensemble members, not a "
SPREAD += "calibrated error bar"
INTERVAL = "[lo, hi] is the {c:.0%} prediction interval: split conformal, calibrated on held-out materials (coverage "
INTERVAL += "measured on the protocol test split: `crystalsearch evaluate calibration`)"
SINGLE = "one head, no ± (an ensemble spread needs several seeds: `train finetune --seeds 3`)"


def spread_note(n: int) -> str:
    """What the ± of an ensemble of ``n`` heads is (nothing to say of one head but that it has none)."""
    return SPREAD.format(n=n) if n > 1 else SINGLE


@dataclasses.dataclass(frozen=True)
class Answer:
    """One query's outcome: a prediction (with the catalog's own value when the query is indexed) or an error."""

    query: str
    prediction: Prediction | None = None
    catalog_value: dict[str, Any] | None = None
    error: str | None = None


def catalog_value(
    label: str, structure: Structure, prediction: Prediction, catalog: Catalog, column: str
) -> tuple[dict[str, Any] | None, Prediction]:
    """The stored value when the query is itself in the catalog, and the prediction with that material
    removed from its evidence (the next nearest material with a value takes its place)."""
    from crystalsearch.predict.predictor import EVIDENCE, Neighbor

    if catalog.row_of(label.strip()) is not None:
        same = [label.strip()]  # an indexed id
    else:  # a file: is it an indexed material? (the catalog's "is it known?" criterion, as similar --known)
        same = [m.material_id for m in catalog.is_known(structure).matches]
    material, value = None, None
    for mid in same:
        row = catalog.row_of(mid)
        if row is not None:
            material = catalog.db.materials([row])[row]
            value = material.properties().get(column)
            if value is not None:
                break
    if material is None or value is None:
        return None, prediction
    hits = catalog.similar(structure, k=EVIDENCE + len(same), where=f"{column} IS NOT NULL")
    neighbors = tuple(
        Neighbor(h.material_id, h.formula, float(h.properties[column]), h.similarity)
        for h in hits
        if h.material_id not in same
    )[:EVIDENCE]
    found = {"material_id": material.material_id, "value": float(value)}
    return found, dataclasses.replace(prediction, neighbors=neighbors)


def answer_all(
    queries: list[str], predictor: Predictor, catalog: Catalog | None, *, coverage: float = 0.9
) -> list[Answer]:
    """Predictions for every query in input order; unreadable ones become answers with ``error``."""
    from crystalsearch.errors import InputError
    from crystalsearch.io import read_items

    items = list(read_items(queries))
    good = [(label, s) for label, s in items if not isinstance(s, InputError)]
    predictions = iter(predictor.predict(good, catalog=catalog, coverage=coverage))
    out = []
    for label, item in items:
        if isinstance(item, InputError):
            out.append(Answer(label, error=str(item)))
            continue
        pred = next(predictions)
        found = None
        if catalog is not None and predictor.column:
            found, pred = catalog_value(label, item, pred, catalog, predictor.column)
        out.append(Answer(label, pred, found))
    return out


def to_dict(answer: Answer, predictor: Predictor) -> dict[str, Any]:
    """The JSON entry of one query (keys ``query``, ``property``, ``value``, ``unit``,
    ``uncertainty``, ``neighbors`` kept)."""
    from crystalsearch.cli.schema import round_value

    col = predictor.column
    base: dict[str, Any] = {"query": answer.query, "property": predictor.property, "value": None,
                            "unit": predictor.unit, "uncertainty": None, "neighbors": [], "catalog_value": None,
                            "nearest_similarity": None, "in_distribution": None, "warning": None, "ensemble": [],
                            "interval": None, "coverage": None, "error": answer.error}  # fmt: skip
    p = answer.prediction
    if p is None:
        return base
    cat = answer.catalog_value
    return {
        **base, **p.to_dict(),
        "value": round_value(col, p.value),
        "uncertainty": None if p.uncertainty is None else float(f"{p.uncertainty:.3g}"),
        "neighbors": [{**n.to_dict(), "value": round_value(col, n.value)} for n in p.neighbors],
        "catalog_value": None if cat is None else {**cat, "value": round_value(col, cat["value"])},
        "ensemble": [round_value(col, m) for m in p.members], "error": None,
        "interval": None if p.interval is None else [round_value(col, v) for v in p.interval],
    }  # fmt: skip


def render(answers: list[Answer], predictor: Predictor, *, coverage: float = 0.9) -> None:
    from rich.markup import escape

    from crystalsearch.cli.render import Column, print_table, similarity_text
    from crystalsearch.data.properties import by_column

    digits = by_column(predictor.column).digits if predictor.column in _columns() else 3
    unit = predictor.unit
    shown = 0
    for a in answers:
        r = a.prediction
        if r is None:
            continue
        shown += 1
        spread = "" if r.uncertainty is None else f" ± {r.uncertainty:.{digits}f}"
        value = f"{r.value:.{digits}f}{spread} {unit}"
        if r.interval is not None and r.coverage is not None:
            value += f"  ({r.coverage:.0%} interval {r.interval[0]:.{digits}f} to {r.interval[1]:.{digits}f} {unit})"
        if a.catalog_value is not None:  # the stored value first: the query is a known material
            stored = f"{a.catalog_value['value']:.{digits}f} {unit}"
            console.print(f"{escape(a.query)}: {r.property} catalog value: [bold]{stored}[/] "
                          f"({a.catalog_value['material_id']} is this structure; the prediction is for comparison)",
                          highlight=False)  # fmt: skip
            console.print(f"  predicted: {value}", highlight=False)
        else:
            console.print(f"{escape(a.query)}: {r.property} = [bold]{value}[/]", highlight=False)
        if r.warning:
            console.print(f"  [yellow]warning:[/] {escape(r.warning)}", highlight=False)
        if r.neighbors:
            ns = r.neighbors
            print_table(console, [
                Column("material id", [n.material_id for n in ns]),
                Column("formula", [n.formula for n in ns], optional=True, drop_order=1),
                Column(f"{r.property} ({unit})", [f"{n.value:.{digits}f}" for n in ns], "right"),
                Column("similarity", [similarity_text(n.similarity) for n in ns], "right"),
            ], title="evidence: nearest other materials with a known value")  # fmt: skip
    if shown:
        console.print(spread_note(len(predictor.members)), style="dim", highlight=False)
        if not predictor.column:
            console.print(f"no evidence: the catalog has no {predictor.property} values", style="dim",
                          highlight=False)  # fmt: skip
        if predictor.calibration is not None:
            console.print(INTERVAL.format(c=coverage).replace("[lo, hi] is", "the interval is"), style="dim",
                          highlight=False)  # fmt: skip


def _columns() -> set[str]:
    from crystalsearch.data.properties import PROPERTY_COLUMNS

    return set(PROPERTY_COLUMNS)


def table_rows(answers: list[Answer], predictor: Predictor) -> tuple[list[str], list[list[Any]]]:
    """Header and one full row per query (for --csv and for piped output)."""
    header = ["query", "property", "value", "unit", "uncertainty", "interval_lo", "interval_hi", "coverage",
              "catalog_value", "catalog_material_id", "nearest_similarity", "warning", "error", "neighbor_1",
              "neighbor_1_value", "neighbor_2", "neighbor_2_value", "neighbor_3", "neighbor_3_value"]  # fmt: skip
    rows = []
    for a in answers:
        d = to_dict(a, predictor)
        cat = d["catalog_value"] or {}
        lo, hi = d["interval"] or (None, None)
        row = [d["query"], d["property"], d["value"], d["unit"], d["uncertainty"], lo, hi, d["coverage"],
               cat.get("value"), cat.get("material_id"), d["nearest_similarity"], d["warning"] or "",
               d["error"] or ""]  # fmt: skip
        for n in d["neighbors"]:
            row += [n["material_id"], n["value"]]
        rows.append(row + [""] * (len(header) - len(row)))
    return header, rows


def write_csv(path: Path, answers: list[Answer], predictor: Predictor) -> None:
    import io

    from crystalsearch.atomic import atomic_write

    buf = io.StringIO()
    header, rows = table_rows(answers, predictor)
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    atomic_write(path, _writer(buf.getvalue().encode()))


@one_line_errors
def predict(
    queries: list[str] = typer.Argument(..., metavar="QUERY...", help="Structure files, folders, globs or ids."),
    prop: str | None = typer.Option(
        None,
        "--property",
        "-p",
        help="bulk_modulus, shear_modulus, formation_energy, band_gap, "
        "thermal_conductivity, melting_temperature (shipped heads); with --heads, read from the heads.",
    ),  # fmt: skip
    index: str = typer.Option("default", "--index", help="Index of the evidence materials and catalog values."),
    heads: Path | None = typer.Option(None, "--heads", help="Folder of fine-tuned heads (seed*/ sub-folders)."),
    no_evidence: bool = typer.Option(False, "--no-evidence", help="Skip the evidence and catalog values."),
    coverage: float = typer.Option(
        0.9,
        "--coverage",
        min=0.01,
        max=0.99,
        help="Coverage of the prediction interval (calibrated heads; split conformal).",
    ),  # fmt: skip
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object (schema: docs/cli.md)."),
    csv_out: Path | None = typer.Option(None, "--csv", metavar="FILE", help="Also write a CSV file."),
) -> None:
    """Predict a property for each structure: the seed-ensemble mean ± its spread, the 3 nearest known
    materials with a value as evidence, and the catalog's own value when the query is an indexed material."""
    from crystalsearch.cli.schema import FIELD_UNITS, response
    from crystalsearch.errors import InputError
    from crystalsearch.predict.predictor import Predictor

    if prop is None and heads is None:
        raise InputError("--property", "missing: name a property (-p bulk_modulus) or a heads folder (--heads DIR)")
    if prop is not None and heads is None:  # a heads folder may hold a property of one's own
        from crystalsearch.data.properties import PROPERTIES

        if prop not in PROPERTIES:
            raise InputError("--property", f"unknown property {prop!r} (shipped: {', '.join(PROPERTIES)}); for heads "
                             "of your own (train finetune --labels) give their folder: --heads DIR")  # fmt: skip
    predictor = Predictor.load(prop, folder=heads)
    catalog = None
    if not no_evidence:
        from crystalsearch.identity.catalog import Catalog

        catalog = Catalog.open(index, progress=not json_out)
    try:
        answers = answer_all(queries, predictor, catalog, coverage=coverage)
    finally:
        if catalog is not None:
            catalog.close()
    for a in answers:
        if a.error:
            print_error(a.error)
    if json_out:
        units = {"value": predictor.unit, "uncertainty": predictor.unit, "interval": predictor.unit,
                 "similarity": FIELD_UNITS["similarity"]}  # fmt: skip
        calibrated = predictor.calibration is not None
        meta = {"property": predictor.property, "column": predictor.column, "ensemble_size": len(predictor.members),
                "uncertainty": spread_note(len(predictor.members)).replace("± is", "uncertainty is")
                .replace("one head, no ±", "null: one head, no spread"),
                "interval": INTERVAL.format(c=coverage).replace("[lo, hi] is", "interval is") if calibrated else
                "null: these heads have no calibration (calibration.json)",
                "coverage": coverage if calibrated else None, "heads": str(predictor.folder)}  # fmt: skip
        print_json(response("predict", [to_dict(a, predictor) for a in answers], units=units, **meta))
    elif console.is_terminal:
        render(answers, predictor, coverage=coverage)
    else:
        from crystalsearch.cli.render import write_tsv

        write_tsv(*table_rows([a for a in answers if a.error is None], predictor))
    if csv_out is not None:
        write_csv(csv_out, answers, predictor)
    if any(a.error for a in answers):
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    """Attach the `predict` command."""
    add_command(app, predict, "predict", epilog=EXAMPLES)
