"""Download structures and properties from the Materials Project API (``crystalsearch index build --from-mp``).

Needs the optional extra ``mp`` (``pip install 'crystalsearch[mp]'``, which installs ``mp-api``) and an
API key in ``MP_API_KEY`` (https://next-gen.materialsproject.org/api). Uses
``MPRester.materials.summary.search`` and keeps, per material: the structure, ``formula_pretty``,
formation energy, band gap, Fermi level and the VRH bulk and shear moduli where MP has them (eV/atom,
eV, eV, GPa, GPa, as in the shipped data). Disordered structures are skipped and counted.

Example (all materials containing Li and O, at most 5000)::

    MP_API_KEY=... crystalsearch index build --from-mp --mp-elements Li,O --mp-limit 5000 --out li_o_index
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from crystalsearch.data.entries import Entry, entries_from_structures
from crystalsearch.errors import CrystalSearchError

__all__ = ["MP_FIELDS", "MPQuery", "fetch_mp_entries"]

MP_FIELDS = [
    "material_id", "formula_pretty", "structure", "formation_energy_per_atom", "band_gap", "efermi",
    "bulk_modulus", "shear_modulus",
]  # fmt: skip
SOURCE = "materials_project"
CHUNK = 1000


@dataclass(frozen=True)
class MPQuery:
    """Which materials to download (all of MP when nothing is set)."""

    elements: tuple[str, ...] = ()
    chemsys: str | None = None
    limit: int | None = None


@dataclass(frozen=True)
class MPDownload:
    entries: list[Entry]
    skipped_disordered: int


def _mp_rester() -> Callable[..., Any]:
    try:
        from mp_api.client import MPRester
    except ImportError:
        raise CrystalSearchError(
            "--from-mp needs the optional dependency mp-api: pip install 'crystalsearch[mp]'"
        ) from None
    return MPRester  # type: ignore[no-any-return]


def _get(doc: Any, name: str) -> Any:
    return doc.get(name) if isinstance(doc, dict) else getattr(doc, name, None)


def _vrh(value: Any) -> float | None:
    """VRH average from MP's modulus field (a dict with ``vrh``, an object, or a number)."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    v = _get(value, "vrh")
    return None if v is None else float(v)


def _properties(doc: Any) -> dict[str, float]:
    props: dict[str, float] = {}
    for name in ("formation_energy_per_atom", "band_gap", "efermi"):
        v = _get(doc, name)
        if v is not None and math.isfinite(float(v)):
            props[name] = float(v)
    for name, field in (("bulk_modulus_vrh", "bulk_modulus"), ("shear_modulus_vrh", "shear_modulus")):
        v = _vrh(_get(doc, field))
        if v is not None and math.isfinite(v):
            props[name] = v
    return props


def fetch_mp_entries(
    query: MPQuery = MPQuery(), *, api_key: str | None = None, rester: Callable[..., Any] | None = None
) -> MPDownload:
    """Entries downloaded from the Materials Project (``rester``: an MPRester class, for tests)."""
    key = api_key or os.environ.get("MP_API_KEY", "").strip()
    if not key:
        raise CrystalSearchError(
            "--from-mp needs a Materials Project API key: set MP_API_KEY (get one at "
            "https://next-gen.materialsproject.org/api)"
        )
    cls = rester or _mp_rester()
    kwargs: dict[str, Any] = {"fields": MP_FIELDS}
    if query.elements:
        kwargs["elements"] = list(query.elements)
    if query.chemsys:
        kwargs["chemsys"] = query.chemsys
    if query.limit is not None:
        kwargs["chunk_size"] = min(CHUNK, query.limit)
        kwargs["num_chunks"] = max(1, math.ceil(query.limit / CHUNK))
    try:
        with cls(key) as mpr:
            docs = list(mpr.materials.summary.search(**kwargs))
    except CrystalSearchError:
        raise
    except Exception as exc:  # noqa: BLE001 - mp-api/requests raise many types; all mean "no data"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise CrystalSearchError(
            f"Materials Project API request failed ({type(exc).__name__}: {first[:200]}); "
            "check the network connection and MP_API_KEY"
        ) from None
    if query.limit is not None:
        docs = docs[: query.limit]
    return _to_entries(docs)


def _to_entries(docs: Sequence[Any]) -> MPDownload:
    items, props, skipped = [], {}, 0
    for doc in docs:
        structure = _get(doc, "structure")
        material_id = str(_get(doc, "material_id"))
        if structure is None or not structure.is_ordered:
            skipped += 1
            continue
        items.append((material_id, structure))
        props[material_id] = _properties(doc)
    entries = entries_from_structures(items, source=SOURCE)
    out = [
        Entry(
            e.material_id,
            e.formula,
            e.reduced_formula,
            e.lattice,
            e.species,
            e.frac_coords,
            e.numbers,
            props[e.material_id],
            e.source,
        )  # fmt: skip
        for e in entries
    ]
    return MPDownload(out, skipped)
