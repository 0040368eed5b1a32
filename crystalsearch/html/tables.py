"""HTML tables of hits, predictions and novelty candidates (the JSON shapes of :mod:`crystalsearch.cli.schema`).

Every table is ``<table class="cs-table">`` with one ``<th data-type="num|text">`` per column (the app sorts
by clicking a header) and ``<tr data-id=...>`` rows; material ids are links when ``link`` is given
(a format string with ``{id}``, e.g. ``"#material/{id}"``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from crystalsearch.data.properties import REGISTRY

__all__ = ["hits_table", "novelty_table", "predictions_table"]


def _id(material_id: str | None, link: str | None) -> str:
    if not material_id:
        return ""
    text = escape(material_id)
    if link is None:
        return text
    return f'<a class="cs-id" href="{escape(link.format(id=material_id))}" data-id="{text}">{text}</a>'


def _num(value: float | None, digits: int | None = None) -> str:
    if value is None:
        return ""
    if digits is None:
        return f"{value:.4g}"
    return f"{value:.{digits}f}"


def _table(header: Sequence[tuple[str, str, str]], rows: Sequence[tuple[str, Sequence[str]]], cls: str) -> str:
    """``header``: (label, type, title); ``rows``: (data-id, cells)."""
    head = "".join(f'<th data-type="{t}" title="{escape(tip)}">{label}</th>' for label, t, tip in header)
    body = "".join(
        f'<tr data-id="{escape(key)}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>" for key, cells in rows
    )
    return f'<table class="cs-table {cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def hits_table(
    result: Mapping[str, Any],
    *,
    units: Mapping[str, str] | None = None,
    link: str | None = None,
    thumbnails: Mapping[str, str] | None = None,
) -> str:
    """The hits of one query (``QueryResult.to_dict()``): rank, thumbnail, id, formula, prototype, space
    group, similarity and its structure/chemistry parts, known verdict (``known`` searches), properties."""
    if result.get("error"):
        return f'<p class="cs-error">{escape(result["error"])}</p>'
    units = units or {}
    hits = result.get("hits", [])
    have = {k for h in hits for k, v in h["properties"].items() if v is not None}
    props = [p for p in REGISTRY if p.column in have]
    known = result.get("verdict") is not None
    header = [("#", "num", "rank"), *([("", "text", "")] if thumbnails is not None else []),
              ("material id", "text", ""), ("formula", "text", ""), ("prototype", "text", "prototype label"),
              ("space group", "text", ""), ("similarity", "num", units.get("similarity", "")),
              ("structure", "num", units.get("structure_similarity", "")),
              ("chemistry", "num", units.get("chemistry_similarity", ""))]  # fmt: skip
    header += [("known", "text", "same material as the query (StructureMatcher)")] if known else []
    header += [(f"{escape(p.label)} ({escape(units.get(p.column, p.unit))})", "num", p.description) for p in props]
    rows = []
    for h in hits:
        cells = [str(h["rank"])]
        if thumbnails is not None:
            cells.append(thumbnails.get(h["material_id"], ""))
        cells += [_id(h["material_id"], link), escape(h["formula"]), escape(h.get("prototype") or ""),
                  f'{escape(h["spacegroup"])} ({h["spacegroup_number"]})', _num(h["similarity"], 4),
                  _num(h.get("structure_similarity"), 4), _num(h.get("chemistry_similarity"), 4)]  # fmt: skip
        if known:
            cells.append("same material" if h.get("same_structure") else "")
        cells += [_num(h["properties"].get(p.column), p.digits) for p in props]
        rows.append((h["material_id"], cells))
    title = escape(str(result.get("query", ""))) + (f" ({escape(result['formula'])})" if result.get("formula") else "")
    verdict = f'<p class="cs-verdict">verdict: <b>{escape(result["verdict"])}</b></p>' if known else ""
    empty = "" if hits else '<p class="cs-note">no materials pass the filters</p>'
    return f'<div class="cs-hits"><h4>{title}</h4>{_table(header, rows, "cs-hits-table")}{empty}{verdict}</div>'


def predictions_table(
    predictions: Sequence[Mapping[str, Any]],
    *,
    catalog_values: Mapping[str, float | None] | None = None,
    link: str | None = None,
) -> str:
    """One row per property (``Prediction.to_dict()``): value, interval, catalog value (when the query is a
    known material with a value), the out-of-distribution warning and the evidence neighbours."""
    catalog_values = catalog_values or {}
    digits = {p.head: p.digits for p in REGISTRY if p.head}
    header = [("property", "text", ""), ("value", "num", "calibrated point prediction"),
              ("interval", "text", "split-conformal prediction interval"), ("unit", "text", ""),
              ("catalog value", "num", "the value of the known material the query matches"),
              ("warning", "text", ""),
              ("evidence", "text", "nearest indexed materials with a known value")]  # fmt: skip
    rows = []
    for p in predictions:
        d = digits.get(p["property"], 3)
        lo_hi = p.get("interval")
        cov = p.get("coverage")
        interval = "" if lo_hi is None else f"{_num(lo_hi[0], d)} – {_num(lo_hi[1], d)} ({cov:.0%})"
        evidence = ", ".join(
            f"{_id(n['material_id'], link)} {escape(n['formula'])} = {_num(n['value'], d)}" for n in p["neighbors"]
        )
        warning = f'<span class="cs-warn">{escape(p["warning"])}</span>' if p.get("warning") else "in distribution"
        cells = [escape(p["property"].replace("_", " ")), _num(p["value"], d), interval, escape(p["unit"]),
                 _num(catalog_values.get(p["property"]), d), warning, evidence]  # fmt: skip
        rows.append((p["property"], cells))
    query = escape(str(predictions[0]["query"])) if predictions else ""
    return f'<div class="cs-predict"><h4>{query}</h4>{_table(header, rows, "cs-predict-table")}</div>'


def novelty_table(
    report: Mapping[str, Any], candidates: Sequence[Mapping[str, Any]], *, link: str | None = None
) -> str:
    """The summary line and one row per candidate (``NoveltyReport.to_dict()``, ``Candidate.to_dict()``)."""
    header = [("candidate", "text", ""), ("status", "text", "known, novel or error"), ("formula", "text", ""),
              ("space group", "num", ""), ("matching id", "text", "the catalog material it is"),
              ("RMS (Å)", "num", "StructureMatcher RMS displacement"),
              ("duplicate of", "text", "an earlier candidate that is the same material"),
              ("reason", "text", "why known, or what is wrong with the file")]  # fmt: skip
    rows = []
    for c in candidates:
        status = escape(c["status"]) + (" (duplicate)" if c.get("duplicate_of") else "")
        cells = [escape(c["label"]), f'<span class="cs-{escape(c["status"])}">{status}</span>',
                 escape(c.get("formula") or ""), "" if c.get("spacegroup") is None else str(c["spacegroup"]),
                 _id(c.get("material_id"), link), _num(c.get("rms_angstrom"), 3), escape(c.get("duplicate_of") or ""),
                 escape(c.get("reason") or "")]  # fmt: skip
        rows.append((str(c["label"]), cells))
    summary = f'<p class="cs-summary">{escape(report["summary"])}</p>'
    return f'<div class="cs-novelty">{summary}{_table(header, rows, "cs-novelty-table")}</div>'
