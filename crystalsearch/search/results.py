"""Search results: :class:`Hit` (one similar material) and :class:`QueryResult` (the hits of one query).

``QueryResult.to_dict()`` is the public ``crystalsearch similar --json`` shape: ``{"query": ..., "hits":
[{"material_id", "formula", "similarity", ...}]}`` plus ``formula`` (the query's reduced formula),
``error`` for a query that could not be read, and ``verdict``/``known_as`` with ``--known``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Hit", "QueryResult"]


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

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rank": self.rank, "material_id": self.material_id, "formula": self.formula,
            "similarity": round(self.similarity, 6), "spacegroup": self.spacegroup,
            "spacegroup_number": self.spacegroup_number, "crystal_system": self.crystal_system,
            "nsites": self.nsites, "density": round(self.density, 4), "volume_per_atom": round(self.volume_per_atom, 4),
            "properties": self.properties, "source": self.source,
        }  # fmt: skip
        if self.same_structure is not None:
            out["same_structure"] = self.same_structure
        return out


@dataclass(frozen=True)
class QueryResult:
    """Hits for one query; ``error`` if the query could not be read; ``verdict`` with ``known=True``."""

    query: str
    hits: tuple[Hit, ...] = ()
    formula: str | None = None
    error: str | None = None
    verdict: str | None = None
    known_as: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"query": self.query, "formula": self.formula, "hits": [h.to_dict() for h in self.hits]}
        if self.error is not None:
            out["error"] = self.error
        if self.verdict is not None:
            out["verdict"] = self.verdict
            out["known_as"] = list(self.known_as)
        return out
