"""The material page: a catalog material's structure, properties with their provenance, prototype, its
nearest neighbours (the hits table of :mod:`crystalsearch.html`) and its polymorphs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from crystalsearch.data.properties import REGISTRY
from crystalsearch.html import hits_table, view_html

if TYPE_CHECKING:
    from crystalsearch.catalog.reader import MaterialRow

__all__ = ["material_html"]


def _link(material_id: str, link: str) -> str:
    mid = escape(material_id)
    return f'<a class="cs-id" href="{escape(link.format(id=material_id))}" data-id="{mid}">{mid}</a>'


def _value(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def material_html(
    m: MaterialRow,
    nearest: Mapping[str, Any],
    polymorphs: Sequence[MaterialRow],
    *,
    units: Mapping[str, str],
    link: str,
) -> str:
    """The page of one material (``nearest``: ``QueryResult.to_dict()`` of its 10 nearest neighbours)."""
    elements = sorted(set(m.chemsys.split("-")))
    src = f"api/structure?id={quote(m.material_id)}"
    view = view_html(src=src, elements=elements, width=380, height=320, title=f"{m.material_id} {m.reduced_formula}")
    facts = [("formula", f"{m.reduced_formula} ({m.formula})"),
             ("space group", f"{m.spacegroup_symbol} ({m.spacegroup_number})"),
             ("crystal system", m.crystal_system), ("prototype", m.prototype or "unknown"), ("sites", str(m.nsites)),
             ("density", f"{m.density:.4g} {units.get('density', '')}"),
             ("volume per atom", f"{m.volume_per_atom:.4g} {units.get('volume_per_atom', '')}"),
             ("record source", m.source)]  # fmt: skip
    fact_rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in facts)
    provenance = m.provenance()
    props = m.properties()
    prop_rows = (
        "".join(
            f"<tr><th>{escape(p.description)}</th><td>{props[p.column]:.{p.digits}f} "
            f"{escape(units.get(p.column, p.unit))}</td><td>{escape(provenance.get(p.column, m.source))}</td></tr>"
            for p in REGISTRY
            if p.column in props
        )
        or '<tr><td colspan="3">no property values in the index</td></tr>'
    )
    again = f'<a class="cs-button" href="#" data-search-id="{escape(m.material_id)}">search with it</a>'
    download = f'<a class="cs-button" href="{escape(src)}&amp;download=1" download>download CIF</a> {again}'
    poly_rows = "".join(
        f"<tr><td>{_link(p.material_id, link)}</td><td>{escape(p.spacegroup_symbol)} ({p.spacegroup_number})</td>"
        f"<td>{p.nsites}</td><td>{_value(p.formation_energy_per_atom)}</td><td>{_value(p.band_gap)}</td></tr>"
        for p in polymorphs
    )
    poly = ('<table class="cs-table"><thead><tr><th>material id</th><th>space group</th><th>sites</th>'
            f"<th>E_form (eV/atom)</th><th>gap (eV)</th></tr></thead><tbody>{poly_rows}</tbody></table>")  # fmt: skip
    return (
        f"<h2>{escape(m.material_id)} <small>{escape(m.reduced_formula)}</small></h2>"
        f'<div class="row"><div>{view}<div>{download}</div></div>'
        f'<div><table class="cs-facts">{fact_rows}</table>'
        f'<h3>Properties</h3><table class="cs-facts"><tr><th>property</th><th>value</th><th>provenance</th></tr>'
        f"{prop_rows}</table></div></div>"
        f"<h3>10 nearest neighbours</h3>{hits_table(nearest, units=units, link=link)}"
        f"<h3>Polymorphs of {escape(m.reduced_formula)} ({len(polymorphs)})</h3>{poly}"
    )
