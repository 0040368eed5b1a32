"""HTML rendering of search hits, predictions and novelty reports: the one renderer of the browser app
(:mod:`crystalsearch.app`) and of notebook outputs (``_repr_html_`` of the result objects).

Pure functions over the JSON shapes of :mod:`crystalsearch.cli.schema` (``to_dict`` of the results) and over
*views* of structures (:func:`structure_view`: CIF text, element list, Cartesian sites), so that every layer
may use them. Interactive 3D views are drawn by 3Dmol.js (shipped in ``static/``, BSD-3-Clause, see
``static/NOTICE``); the small thumbnails are static SVG projections drawn here. Nothing is fetched from
outside the machine: notebook outputs embed the viewer's code, the app serves it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from html import escape
from importlib import resources
from typing import Any

from crystalsearch.html.tables import hits_table, novelty_table, predictions_table

__all__ = ["asset", "element_colours", "hits_table", "legend_html", "notebook", "novelty_table",
           "predictions_table", "structure_view", "thumbnail_svg", "view_html"]  # fmt: skip

_FALLBACK = "#ff1493"  # elements without a Jmol colour


def asset(name: str) -> str:
    """The text of a shipped static file (``3Dmol-min.js``, ``view.js``, ``notebook.css``)."""
    return resources.files("crystalsearch.html").joinpath("static", name).read_text(encoding="utf-8")


@functools.cache
def _jmol() -> dict[str, str]:
    """Jmol's element colours, as pymatgen ships them (``pymatgen/vis/ElementColorSchemes.yaml``)."""
    text = resources.files("pymatgen.vis").joinpath("ElementColorSchemes.yaml").read_text(encoding="utf-8")
    colours: dict[str, str] = {}
    section = None
    for line in text.splitlines():
        if line and not line[0].isspace():
            section = line.rstrip(":").strip()
            continue
        if section != "Jmol" or ":" not in line:
            continue
        name, _, value = line.strip().partition(":")
        rgb = [int(v) for v in value.strip(" []").split(",")]
        colours[name.strip()] = "#{:02x}{:02x}{:02x}".format(*rgb)
    return colours


def element_colours(elements: Sequence[str] | None = None) -> dict[str, str]:
    """Jmol colour (``#rrggbb``) of each element symbol (of every element with ``None``)."""
    table = _jmol()
    return {e: table.get(e, _FALLBACK) for e in (table if elements is None else elements)}


def structure_view(structure: Any, *, cif: bool = True) -> dict[str, Any]:
    """A pymatgen ``Structure`` as the renderer sees it: CIF text (unless ``cif=False``: thumbnails need
    none), elements, lattice and Cartesian sites."""
    import warnings

    elements = sorted({site.specie.symbol for site in structure})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen's note on repeated site labels
        text = structure.to(fmt="cif") if cif else ""
    return {
        "cif": text,
        "formula": structure.composition.reduced_formula,
        "elements": elements,
        "lattice": structure.lattice.matrix.round(4).tolist(),
        "sites": [[s.specie.symbol, *(round(float(x), 4) for x in s.coords)] for s in structure],
    }


def legend_html(elements: Sequence[str]) -> str:
    """A row of element swatches in the view's colours."""
    items = "".join(
        f'<span class="cs-el"><i style="background:{c}"></i>{escape(e)}</span>'
        for e, c in element_colours(elements).items()
    )
    return f'<div class="cs-legend">{items}</div>'


def view_html(
    view: Mapping[str, Any] | None = None,
    *,
    src: str | None = None,
    elements: Sequence[str] = (),
    width: int = 320,
    height: int = 260,
    title: str = "",
) -> str:
    """An interactive 3D view: CIF inline (``view``) or fetched from ``src``; title and legend under it."""
    elements = list(view["elements"]) if view is not None else list(elements)
    colours = escape(json.dumps(element_colours(elements)))
    inline = f' data-cif="{escape(view["cif"])}"' if view else ""
    source = f' data-src="{escape(src)}"' if src else ""
    box = (f'<div class="cs-view" style="width:{width}px;height:{height}px;position:relative"'
           f' data-colours="{colours}"{source}{inline}></div>')  # fmt: skip
    caption = f'<div class="cs-caption">{escape(title)}</div>' if title else ""
    return f'<figure class="cs-figure">{box}{caption}{legend_html(elements)}</figure>'


_EDGES = [(0, 1), (0, 2), (0, 4), (1, 3), (1, 5), (2, 3), (2, 6), (3, 7), (4, 5), (4, 6), (5, 7), (6, 7)]


def thumbnail_svg(view: Mapping[str, Any], *, size: int = 56) -> str:
    """A small static picture of a structure: its sites and unit cell projected along an oblique direction."""
    import numpy as np

    a, b = np.radians(25.0), np.radians(20.0)
    ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    rot = rx @ ry
    lattice = np.asarray(view["lattice"], dtype=float)
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=float) @ lattice @ rot.T
    sites = view["sites"][:400]
    xyz = np.array([s[1:] for s in sites], dtype=float).reshape(-1, 3) @ rot.T
    pts = np.vstack([corners, xyz])
    lo, hi = pts[:, :2].min(axis=0), pts[:, :2].max(axis=0)
    pad = 5.0
    scale = (size - 2 * pad) / max(float((hi - lo).max()), 1e-6)

    def xy(p: np.ndarray) -> tuple[float, float]:
        return pad + (p[0] - lo[0]) * scale, size - pad - (p[1] - lo[1]) * scale

    lines = "".join(
        '<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}"/>'.format(*xy(corners[i]), *xy(corners[j]))
        for i, j in _EDGES
    )
    colours = element_colours([s[0] for s in sites])
    radius = max(1.5, min(5.0, 1.1 * scale))
    dots = "".join(_circle(xy(xyz[i]), radius, colours[str(sites[i][0])]) for i in np.argsort(xyz[:, 2]))
    return (f'<svg class="cs-thumb" xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" '
            f'viewBox="0 0 {size} {size}"><g stroke="#888" stroke-width="0.7">{lines}</g>'
            f'<g stroke="#333" stroke-width="0.4">{dots}</g></svg>')  # fmt: skip


def _circle(centre: tuple[float, float], radius: float, colour: str) -> str:
    return f'<circle cx="{centre[0]:.1f}" cy="{centre[1]:.1f}" r="{radius:.1f}" fill="{colour}"/>'


def notebook(body: str, *, views: bool = True) -> str:
    """A self-contained notebook output: style, ``body`` and (with ``views``) the viewer's code inline."""
    import uuid

    key = f"cs-{uuid.uuid4().hex[:12]}"
    style = f"<style>{asset('notebook.css')}</style>"
    if not views:
        return f'<div class="cs-out" id="{key}">{style}{body}</div>'
    code = [asset(name).replace("</script", "<\\/script") for name in ("3Dmol-min.js", "view.js")]
    scripts = (f"<script>{code[0]}</script><script>{code[1]}</script>"
               f'<script>window.csViews(document.getElementById("{key}"));</script>')  # fmt: skip
    return f'<div class="cs-out" id="{key}">{style}{body}</div>{scripts}'
