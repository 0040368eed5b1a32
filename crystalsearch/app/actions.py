"""What the app's pages ask for, as calls into the one library: search (``crystalsearch.Catalog.search``
with known verdicts), structures as CIF, a material's page, predictions
(:class:`~crystalsearch.predict.predictor.Predictor`).
Results are the JSON shapes of :mod:`crystalsearch.cli.schema` plus HTML from :mod:`crystalsearch.html`."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crystalsearch.errors import InputError

if TYPE_CHECKING:
    from pymatgen.core import Structure

    from crystalsearch.app.state import AppState

__all__ = ["material_page", "predict", "search", "structure_cif"]

LINK = "#material/{id}"
MAX_K = 100
MAX_VIEW_SITES = 4000


def _units(state: AppState) -> dict[str, str]:
    from crystalsearch.cli.schema import FIELD_UNITS
    from crystalsearch.data.properties import UNITS

    return {**FIELD_UNITS, **UNITS, **state.catalog.manifest.units}


def options(*, k: str, by: str, weight: str, where: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Validated search options and the errors of each field (shown next to it)."""
    from crystalsearch.catalog.filters import Filters
    from crystalsearch.catalog.scoring import MODES

    errors: dict[str, str] = {}
    out: dict[str, Any] = {"by": by or "both", "weight": None, "k": 10, "filters": None}
    try:
        out["k"] = int(k or 10)
        if not 1 <= out["k"] <= MAX_K:
            errors["k"] = f"k must be between 1 and {MAX_K}"
    except ValueError:
        errors["k"] = f"k must be a whole number, got {k!r}"
    if out["by"] not in MODES:
        errors["by"] = f"must be one of {', '.join(MODES)}"
    if weight.strip():
        try:
            out["weight"] = float(weight)
            if not 0.0 <= out["weight"] <= 1.0:
                errors["weight"] = "the structure share must be between 0 and 1"
        except ValueError:
            errors["weight"] = f"not a number: {weight!r}"
    try:
        out["filters"] = Filters.make(where=where.strip() or None)
    except InputError as exc:
        errors["where"] = str(exc)
    return out, errors


def _text_query(state: AppState, text: str) -> tuple[str, str | InputError]:
    """A typed material id (searched as itself) or formula (its first polymorph in the index)."""
    catalog = state.catalog
    if catalog.row_of(text) is not None:
        return text, text
    try:
        from pymatgen.core import Composition

        formula = Composition(text).reduced_formula
    except Exception:  # noqa: BLE001 - pymatgen raises many kinds on text that is no formula
        return text, InputError(text, f"neither a material id of the index nor a chemical formula ({catalog.path})")
    rows = catalog.db.ids_with_formula(formula)
    rows = rows[rows < len(catalog)]
    if not len(rows):
        return text, InputError(text, f"no material with formula {formula} in the index")
    first = catalog.db.materials([int(rows[0])])[int(rows[0])].material_id
    return f"{formula} ({first}, 1 of {len(rows)} polymorphs)", first


def search(
    state: AppState, paths: Sequence[Path], text: str, *, opts: dict[str, Any], display: Callable[[str], str]
) -> dict[str, Any]:
    """Hits (with known verdicts) for uploaded files and a typed id or formula, in input order."""
    from crystalsearch.html import hits_table
    from crystalsearch.io import read_items

    t0 = time.perf_counter()
    labelled: list[tuple[str, Structure | str | InputError]] = []
    for path in paths:
        labelled += [(display(label), _relabel(item, display)) for label, item in read_items(str(path))]
    with state.lock:
        if text.strip():
            labelled.append(_text_query(state, text.strip()))
        catalog = state.catalog
        good = [(label, item) for label, item in labelled if not isinstance(item, InputError)]
        found = catalog.search([item for _, item in good], k=opts["k"], filters=opts["filters"], known=True,
                               by=opts["by"], weight=opts["weight"])  # fmt: skip
        units = _units(state)
        answers = iter(found)  # one per good query, in order
        results: list[dict[str, Any]] = []
        for label, item in labelled:
            if isinstance(item, InputError):
                results.append({"query": label, "error": str(item)})
                continue
            result = next(answers)
            structure = item if not isinstance(item, str) else catalog.structure(item)
            kept = state.keep(label, structure, result.known_as)
            data = {**result.to_dict(), "query": label}
            thumbs = _thumbnails(state, [h.material_id for h in result.hits])
            html = hits_table(data, units=units, link=LINK, thumbnails=thumbs)
            results.append({**data, "key": kept.key, "html": html, "nsites": len(structure)})
    return {"results": results, "seconds": round(time.perf_counter() - t0, 4)}


def _relabel(item: Structure | InputError, display: Callable[[str], str]) -> Structure | InputError:
    if isinstance(item, InputError):
        return InputError(display(item.source), item.reason)
    return item


def _thumbnails(state: AppState, ids: Sequence[str]) -> dict[str, str]:
    from crystalsearch.data.entries import structure_from_json
    from crystalsearch.html import structure_view, thumbnail_svg

    catalog = state.catalog
    rows = catalog.db.row_ids(ids)
    texts = catalog.db.structures(list(rows.values()))
    return {mid: thumbnail_svg(structure_view(structure_from_json(texts[row]), cif=False)) for mid, row in rows.items()}


def _structure(state: AppState, *, key: str | None, material_id: str | None) -> tuple[str, Structure]:
    if key:
        q = state.query(key)
        return q.label, q.structure
    if not material_id:
        raise InputError("structure", "give a query key or a material id")
    with state.lock:
        return material_id, state.catalog.structure(material_id)


def structure_cif(
    state: AppState, *, key: str | None = None, material_id: str | None = None, cell: str = "given", supercell: int = 1
) -> tuple[str, str]:
    """(file name, CIF text) of a query or catalog material as given, conventional or primitive, 1x or 2x2x2."""
    label, structure = _structure(state, key=key, material_id=material_id)
    if cell in ("conventional", "primitive"):
        from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

        sga = SpacegroupAnalyzer(structure, symprec=0.1)
        if cell == "conventional":
            structure = sga.get_conventional_standard_structure()
        else:
            structure = sga.get_primitive_standard_structure()
    elif cell != "given":
        raise InputError("cell", f"must be given, conventional or primitive, got {cell!r}")
    if supercell not in (1, 2):
        raise InputError("supercell", "must be 1 or 2")
    if supercell == 2:
        if len(structure) * 8 > MAX_VIEW_SITES:
            raise InputError(
                label, f"a 2x2x2 supercell would have {len(structure) * 8} sites (at most {MAX_VIEW_SITES})"
            )
        structure = structure * (2, 2, 2)
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(label).stem) or "structure"
    return f"{stem}-{cell}{'-2x2x2' if supercell == 2 else ''}.cif", structure.to(fmt="cif")


def material_page(state: AppState, material_id: str) -> dict[str, Any]:
    """A catalog material: properties with provenance, prototype, 10 nearest neighbours, polymorphs."""
    from crystalsearch.app.pages import material_html

    with state.lock:
        catalog = state.catalog
        row = catalog.row_of(material_id)
        if row is None:
            raise InputError(material_id, f"not a material id of the index {catalog.path}")
        material = catalog.db.materials([row])[row]
        (nearest,) = catalog.search([material_id], k=10)
        rows = catalog.db.ids_with_formula(material.reduced_formula)
        found = catalog.db.materials([int(r) for r in rows if r < len(catalog)])
        polymorphs = sorted(found.values(), key=lambda m: (m.formation_energy_per_atom is None,
                                                             m.formation_energy_per_atom or 0.0))  # fmt: skip
        html = material_html(material, nearest.to_dict(), polymorphs, units=_units(state), link=LINK)
    return {"material_id": material_id, "formula": material.reduced_formula, "html": html}


def predict(state: AppState, key: str) -> dict[str, Any]:
    """Every shipped property (and those of the heads the app was given) for a kept query: value, interval,
    catalog value when known, evidence."""
    from crystalsearch.data.properties import PROPERTIES, by_head
    from crystalsearch.html import predictions_table
    from crystalsearch.predict.predictor import available_properties

    t0 = time.perf_counter()
    query = state.query(key)
    rows = []
    catalog_values: dict[str, float | None] = {}
    with state.lock:
        catalog = state.catalog
        known = None
        if query.known_as:
            row = catalog.row_of(query.known_as[0])
            known = None if row is None else catalog.db.materials([row])[row].properties()
        for prop in dict.fromkeys([*available_properties(), *state.own_properties]):
            (prediction,) = state.predictor(prop).predict([(query.label, query.structure)], catalog=catalog)
            rows.append(prediction.to_dict())
            if known is not None and prop in PROPERTIES:
                catalog_values[prop] = known.get(by_head(prop).column)
    html = predictions_table(rows, catalog_values=catalog_values, link=LINK)
    note = f"catalog values of {query.known_as[0]} (the same material)" if query.known_as else ""
    return {"query": query.label, "predictions": rows, "catalog_values": catalog_values, "note": note,
            "html": html, "seconds": round(time.perf_counter() - t0, 3)}  # fmt: skip
