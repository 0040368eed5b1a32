"""Fast read-only lookups in ``metadata.sqlite`` for the search path (stdlib ``sqlite3``).

The schema is owned by the SQLAlchemy ORM in :mod:`crystalsearch.catalog.db`. The lookups a search
needs on every query (rows by id, ids by material id, structures) are fixed, parameterised SQL run
with ``sqlite3`` directly, so that ``crystalsearch similar`` does not pay SQLAlchemy's import (about
0.4 s of a cold start). Filtered id queries are SQLAlchemy expressions built by
:mod:`crystalsearch.catalog.filters`; they go through SQLAlchemy, imported only then.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crystalsearch.catalog.sqlite import connect
from crystalsearch.data.entries import PROPERTIES
from crystalsearch.errors import IndexFileError

if TYPE_CHECKING:
    from sqlalchemy.sql.elements import ColumnElement

    from crystalsearch.catalog.db import MetadataDB

__all__ = ["MATERIAL_COLUMNS", "MaterialRow", "MetadataReader", "connect"]


@dataclass(frozen=True, slots=True)
class MaterialRow:
    """One row of ``materials`` (columns as in :class:`crystalsearch.catalog.db.Material`)."""

    id: int
    material_id: str
    formula: str
    reduced_formula: str
    chemsys: str
    nelements: int
    nsites: int
    spacegroup_number: int
    spacegroup_symbol: str
    crystal_system: str
    density: float
    volume_per_atom: float
    formation_energy_per_atom: float | None
    band_gap: float | None
    efermi: float | None
    bulk_modulus_vrh: float | None
    shear_modulus_vrh: float | None
    thermal_conductivity: float | None
    melting_temperature: float | None
    source: str
    prototype: str | None = None  # crystalsearch.structure.prototype label (None in indexes built before it)
    label_sources: str | None = None  # JSON {property: provenance key} (crystalsearch.data.datasets.PROVENANCE)

    def properties(self) -> dict[str, float]:
        """Known (non-NULL) properties."""
        return {p: v for p in PROPERTIES if (v := getattr(self, p)) is not None}

    def provenance(self) -> dict[str, str]:
        """Where each known label came from (empty for indexes built before this column existed)."""
        import json

        return dict(json.loads(self.label_sources)) if self.label_sources else {}


MATERIAL_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(MaterialRow))
BATCH = 500


def _marks(n: int) -> str:
    return "(" + ",".join("?" * n) + ")"


class MetadataReader:
    """Read-only access to an index's metadata (one sqlite3 connection per thread)."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise IndexFileError(f"{path}: missing metadata database")
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._orm: MetadataDB | None = None

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path, readonly=True)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()
        if self._orm is not None:
            self._orm.close()
            self._orm = None

    def _batched(self, sql: str, keys: Sequence[Any]) -> list[tuple[Any, ...]]:
        out: list[tuple[Any, ...]] = []
        conn = self._conn()
        try:
            for start in range(0, len(keys), BATCH):
                part = list(keys[start : start + BATCH])
                out += conn.execute(sql + _marks(len(part)), part).fetchall()
        except sqlite3.DatabaseError as exc:
            raise self.damaged(exc) from None
        return out

    def damaged(self, exc: sqlite3.DatabaseError) -> IndexFileError:
        """The one-line error for a database SQLite cannot read (truncated, overwritten, not SQLite)."""
        return IndexFileError(f"{self.path}: unreadable metadata database ({exc}); rebuild the index with "
                              "`crystalsearch index build`")  # fmt: skip

    def ids_like(self, material_ids: Iterable[str]) -> list[str]:
        """The material ids in the database equal to one of ``material_ids`` when case is ignored."""
        wanted = list(dict.fromkeys(m.casefold() for m in material_ids))
        conn = self._conn()
        conn.create_function("casefold", 1, lambda s: s.casefold() if isinstance(s, str) else s, deterministic=True)
        sql = "SELECT material_id FROM materials WHERE casefold(material_id) IN "
        return [m for (m,) in self._batched(sql, wanted)]

    def count(self) -> int:
        return int(self._conn().execute("SELECT count(*) FROM materials").fetchone()[0])

    def max_id(self) -> int:
        value = self._conn().execute("SELECT max(id) FROM materials").fetchone()[0]
        return -1 if value is None else int(value)

    def row_ids(self, material_ids: Iterable[str]) -> dict[str, int]:
        """Row id of each of ``material_ids`` that is in the database."""
        ids = list(dict.fromkeys(material_ids))
        rows = self._batched("SELECT material_id, id FROM materials WHERE material_id IN ", ids)
        return {m: int(i) for m, i in rows}

    def _select_rows(self) -> str:
        """SELECT of all ``MATERIAL_COLUMNS``, with NULL for columns an index built by an older version lacks."""
        sql: str | None = getattr(self, "_select_sql", None)
        if sql is None:
            have = self._columns()
            cols = [c if c in have else f"NULL AS {c}" for c in MATERIAL_COLUMNS]
            sql = self._select_sql = f"SELECT {', '.join(cols)} FROM materials WHERE id IN "  # noqa: S608 - column names from MATERIAL_COLUMNS, values bound
        return sql

    def materials(self, row_ids: Sequence[int]) -> dict[int, MaterialRow]:
        """``materials`` rows by id."""
        rows = self._batched(self._select_rows(), [int(i) for i in row_ids])
        return {int(r[0]): MaterialRow(*r) for r in rows}

    def structures(self, row_ids: Sequence[int]) -> dict[int, str]:
        """Structure JSON by row id."""
        rows = self._batched("SELECT material, structure FROM structures WHERE material IN ", [int(i) for i in row_ids])
        return {int(i): text for i, text in rows}

    def ids_with_formula(self, reduced_formula: str) -> np.ndarray:
        cur = self._conn().execute("SELECT id FROM materials WHERE reduced_formula = ? ORDER BY id", (reduced_formula,))
        return np.fromiter((r[0] for r in cur), dtype=np.int64)

    def ids_with_prototype(self, prototype: str) -> np.ndarray:
        """Rows carrying prototype label ``prototype`` (sorted)."""
        if "prototype" not in self._columns():
            return np.zeros(0, dtype=np.int64)
        cur = self._conn().execute("SELECT id FROM materials WHERE prototype = ? ORDER BY id", (prototype,))
        return np.fromiter((r[0] for r in cur), dtype=np.int64)

    def _columns(self) -> set[str]:
        cols: set[str] | None = getattr(self, "_column_set", None)
        if cols is None:
            cols = self._column_set = {r[1] for r in self._conn().execute("PRAGMA table_info(materials)")}
        return cols

    def orm(self) -> MetadataDB:
        """The SQLAlchemy side (imported on first use), for filters and summaries."""
        if self._orm is None:
            from crystalsearch.catalog.db import MetadataDB

            self._orm = MetadataDB(self.path)
        return self._orm

    def ids_where(self, condition: ColumnElement[bool] | None, *, below: int | None = None) -> np.ndarray:
        """Sorted row ids passing a SQLAlchemy ``condition`` (see :mod:`crystalsearch.catalog.filters`).

        The statement is built and compiled by SQLAlchemy (values stay bound parameters) and run on this
        reader's sqlite3 connection, which fetches the ids as plain integers.
        """
        from sqlalchemy import select
        from sqlalchemy.dialects import sqlite

        from crystalsearch.catalog.db import Material

        stmt = select(Material.id)
        if condition is not None:
            stmt = stmt.where(condition)
        if below is not None:
            stmt = stmt.where(Material.id < below)
        compiled = stmt.order_by(Material.id).compile(
            dialect=sqlite.dialect(), compile_kwargs={"render_postcompile": True}
        )
        params = [compiled.params[name] for name in compiled.positiontup or ()]
        cur = self._conn().execute(str(compiled), params)
        return np.fromiter((r[0] for r in cur), dtype=np.int64)

    def summary(self) -> dict[str, Any]:
        return self.orm().summary()
