"""Search results: :class:`Hit` (one similar material) and :class:`QueryResult` (the hits of one query), in
the JSON shape of the CLI's ``--json`` and the app (envelope and units: :mod:`crystalsearch.cli.schema`);
numbers are rounded to their meaningful digits (:func:`crystalsearch.data.properties.round_value`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from crystalsearch.data.properties import property_columns, round_value

if TYPE_CHECKING:
    from pymatgen.core import Structure

    from crystalsearch.catalog.reader import MaterialRow
    from crystalsearch.structure.matching import Verdict

__all__ = ["Hit", "Hits", "QueryResult"]


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
        cls,
        rank: int,
        row: MaterialRow,
        similarity: float,
        *,
        same: bool | None = None,
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

    def _repr_html_(self) -> str:
        from crystalsearch.html import hits_table, notebook

        return notebook(hits_table(self.to_dict()), views=False)


class Hits(list):  # type: ignore[type-arg]
    """The hits of :meth:`Catalog.similar <crystalsearch.catalog.catalog.Catalog.similar>`: a list of
    :class:`Hit` that shows itself in notebooks as a table with 3D views of the query and the best hits.

    ``views``: called when the notebook draws the list; structure views (:func:`crystalsearch.html.structure_view`)
    of the query (key ``query``) and of some hits (their ids).
    """

    def __init__(
        self,
        hits: Iterable[Hit],
        *,
        query: str = "",
        formula: str | None = None,
        views: Callable[[], Mapping[str, dict[str, Any]]] | None = None,
    ) -> None:
        super().__init__(hits)
        self.query, self.formula, self._views = query, formula, views

    def _repr_html_(self) -> str:
        from crystalsearch.html import hits_table, notebook, view_html

        table = hits_table(QueryResult(self.query, tuple(self), self.formula).to_dict())
        try:
            views = dict(self._views()) if self._views is not None else {}
        except Exception as exc:  # noqa: BLE001 - a notebook display never raises: a closed catalog shows the table alone
            views, table = {}, table + f'<p class="cs-note">no 3D views ({type(exc).__name__}: {exc})</p>'
        titles = {h.material_id: f"#{h.rank} {h.material_id} {h.formula}" for h in self}
        figures = "".join(
            view_html(v, width=260, height=220, title=f"query {self.query}" if key == "query" else titles.get(key, key))
            for key, v in views.items()
        )
        return notebook(table + f"<div>{figures}</div>", views=bool(views))


class StructureSource(Protocol):
    """What :func:`structure_views` needs of a catalog: its structures by material id."""

    def row_of(self, material_id: str) -> int | None: ...

    def structure(self, material_id: str) -> Structure: ...


def structure_views(catalog: StructureSource, query: Structure | str, hits: Sequence[Hit]) -> dict[str, dict[str, Any]]:
    """Structure views (:func:`crystalsearch.html.structure_view`) of a query (a structure, an indexed id or a
    structure file) and of ``hits`` of ``catalog``: what a notebook's :class:`Hits` display draws."""
    from crystalsearch.html import structure_view
    from crystalsearch.io import read_structure

    if not isinstance(query, str):
        own = query
    else:
        text = query.strip()
        own = catalog.structure(text) if catalog.row_of(text) is not None else read_structure(query)
    return {"query": structure_view(own), **{h.material_id: structure_view(catalog.structure(h.material_id))
                                             for h in hits}}  # fmt: skip
