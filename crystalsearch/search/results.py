"""Search results and the one JSON schema of the CLI (``--json`` of ``similar``, ``predict``, ``embed``).

Every ``--json`` response is one object (documented in ``docs/cli.md``)::

    {"schema_version": 1, "command": "similar", "units": {...}, ..., "results": [...]}

* ``units`` is given once per response: the unit of every numeric field and property below it;
* every query has one entry in ``results``, in input order, with ``error`` (``null`` when it worked);
* every property key is present in every hit, ``null`` when the material has no value;
* numbers are rounded to their meaningful digits (:func:`round_value`): similarities to 6 decimals,
  properties to the decimals of :data:`crystalsearch.properties.REGISTRY`, others to 6 significant digits.

:class:`Hit` (one similar material) and :class:`QueryResult` (the hits of one query) build the
``similar`` entries.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crystalsearch.search.known import Verdict
    from crystalsearch.search.reader import MaterialRow

__all__ = [
    "FIELD_UNITS",
    "SCHEMA_VERSION",
    "SIMILARITY_DIGITS",
    "Hit",
    "QueryResult",
    "response",
    "round_value",
]

SCHEMA_VERSION = 1
SIMILARITY_DIGITS = 6
FIELD_UNITS: dict[str, str] = {
    "similarity": "score = w * structure_similarity + (1 - w) * chemistry_similarity (w: --by/--weight)",
    "structure_similarity": "(cosine of structure fingerprints + [same prototype label]) / 2; 1 = same type",
    "chemistry_similarity": "cosine similarity of L2-normalised CrystalCLR+CS representations",
    "density": "g/cm^3",
    "volume_per_atom": "Å^3/atom",
}
_DIGITS = {"similarity": SIMILARITY_DIGITS, "structure_similarity": SIMILARITY_DIGITS,
           "chemistry_similarity": SIMILARITY_DIGITS, "density": 4, "volume_per_atom": 4}  # fmt: skip


def _registry_digits(column: str) -> int | None:
    from crystalsearch.properties import REGISTRY

    for prop in REGISTRY:
        if prop.column == column:
            return prop.digits
    return None


def round_value(column: str, value: float | None) -> float | None:
    """``value`` rounded to the meaningful digits of ``column``; None for missing or non-finite values."""
    if value is None:
        return None
    value = float(value)
    if not math.isfinite(value):
        return None
    digits = _DIGITS.get(column)
    if digits is None:
        digits = _registry_digits(column)
    if digits is None:
        return float(f"{value:.6g}")
    return round(value, digits) + 0.0  # + 0.0 turns -0.0 into 0.0


def property_columns(extra: Iterable[str] = ()) -> list[str]:
    """The property columns every hit lists: the registry's, then any others an index carries."""
    from crystalsearch.properties import PROPERTY_COLUMNS

    return list(dict.fromkeys([*PROPERTY_COLUMNS, *extra]))


def response(command: str, results: list[dict[str, Any]], *, units: Mapping[str, str], **meta: Any) -> dict[str, Any]:
    """The envelope of every ``--json`` output."""
    return {"schema_version": SCHEMA_VERSION, "command": command, "units": dict(units), **meta, "results": results}


@dataclass(frozen=True)
class Hit:
    """One search result. ``same_structure`` is set only by ``known=True`` searches."""

    rank: int
    material_id: str
    formula: str
    similarity: float
    spacegroup: str
    spacegroup_number: int
    crystal_system: str
    nsites: int
    density: float
    volume_per_atom: float
    properties: dict[str, float]
    source: str
    same_structure: bool | None = None
    structure_similarity: float | None = None  # the two parts of ``similarity`` (search.scoring)
    chemistry_similarity: float | None = None
    prototype: str | None = None  # search.prototype label

    @classmethod
    def of(
        cls, rank: int, row: MaterialRow, similarity: float, *, same: bool | None = None,
        parts: tuple[float | None, float] | None = None,
    ) -> Hit:
        """The hit for an index row; ``parts``: the (structure, chemistry) parts of ``similarity``."""
        struct, chem = parts if parts is not None else (None, None)
        return cls(rank, row.material_id, row.formula, float(similarity), row.spacegroup_symbol, row.spacegroup_number,
                   row.crystal_system, row.nsites, row.density, row.volume_per_atom, row.properties(), row.source,
                   same, struct, chem, row.prototype)  # fmt: skip

    def to_dict(self, columns: Iterable[str] | None = None) -> dict[str, Any]:
        """The JSON shape of a hit; ``properties`` has every key of ``columns`` (null when unknown)."""
        keys = property_columns(self.properties) if columns is None else [*dict.fromkeys([*columns, *self.properties])]
        return {
            "rank": self.rank, "material_id": self.material_id, "formula": self.formula,
            "similarity": round_value("similarity", self.similarity), "spacegroup": self.spacegroup,
            "spacegroup_number": self.spacegroup_number, "crystal_system": self.crystal_system,
            "nsites": self.nsites, "density": round_value("density", self.density),
            "volume_per_atom": round_value("volume_per_atom", self.volume_per_atom),
            "properties": {k: round_value(k, self.properties.get(k)) for k in keys}, "source": self.source,
            "same_structure": self.same_structure,
            "structure_similarity": round_value("structure_similarity", self.structure_similarity),
            "chemistry_similarity": round_value("chemistry_similarity", self.chemistry_similarity),
            "prototype": self.prototype,
        }  # fmt: skip


@dataclass(frozen=True)
class QueryResult:
    """Hits for one query; ``error`` if the query could not be read; ``verdict`` with ``known=True``."""

    query: str
    hits: tuple[Hit, ...] = ()
    formula: str | None = None
    error: str | None = None
    verdict: str | None = None
    known_as: tuple[str, ...] = ()
    known: Verdict | None = None  # the full "is it known?" verdict (search.known) with ``known=True``

    def to_dict(self, columns: Iterable[str] | None = None) -> dict[str, Any]:
        """The JSON shape of one query: ``error``, ``verdict``, ``known_as`` and ``known`` always present."""
        cols = None if columns is None else list(columns)
        return {
            "query": self.query, "formula": self.formula, "error": self.error, "verdict": self.verdict,
            "known_as": list(self.known_as) if self.verdict is not None else None,
            "known": self.known.to_dict() if self.known is not None else None,
            "hits": [h.to_dict(cols) for h in self.hits],
        }  # fmt: skip
