"""The SQLite metadata database of an index (SQLAlchemy 2.0 ORM, WAL mode).

``materials`` has one row per material; its integer primary key ``id`` is the row of the material's
vector in the FAISS index. ``material_elements`` makes elements queryable; ``properties`` lists the
property columns with their units. Readers open the file read-only (``immutable`` when the folder
is not writable, e.g. an index shipped inside an installed package). The per-query lookups of the
search path are in :mod:`crystalsearch.catalog.reader` (stdlib sqlite3, no SQLAlchemy import).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, create_engine, func, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from crystalsearch.catalog.sqlite import connect
from crystalsearch.data.entries import PROPERTIES, Entry
from crystalsearch.data.properties import UNITS as PROPERTY_UNITS
from crystalsearch.structure.symmetry import Symmetry, density_and_volume

__all__ = ["Base", "Material", "MaterialElement", "MetadataDB", "PropertyUnit", "StructureRow", "entry_rows"]


class Base(DeclarativeBase):
    pass


class Material(Base):
    """One material. ``id`` = FAISS row. Properties are NULL where unknown (units: ``properties`` table)."""

    __tablename__ = "materials"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    material_id: Mapped[str] = mapped_column(String, unique=True)
    formula: Mapped[str] = mapped_column(String)
    reduced_formula: Mapped[str] = mapped_column(String, index=True)
    chemsys: Mapped[str] = mapped_column(String, index=True)
    nelements: Mapped[int] = mapped_column(Integer)
    nsites: Mapped[int] = mapped_column(Integer)
    spacegroup_number: Mapped[int] = mapped_column(Integer, index=True)
    spacegroup_symbol: Mapped[str] = mapped_column(String)
    crystal_system: Mapped[str] = mapped_column(String)
    density: Mapped[float] = mapped_column(Float)
    volume_per_atom: Mapped[float] = mapped_column(Float)
    formation_energy_per_atom: Mapped[float | None] = mapped_column(Float)
    band_gap: Mapped[float | None] = mapped_column(Float)
    efermi: Mapped[float | None] = mapped_column(Float)
    bulk_modulus_vrh: Mapped[float | None] = mapped_column(Float)
    shear_modulus_vrh: Mapped[float | None] = mapped_column(Float)
    thermal_conductivity: Mapped[float | None] = mapped_column(Float)
    melting_temperature: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String)
    prototype: Mapped[str | None] = mapped_column(String, index=True)  # search.prototype label
    label_sources: Mapped[str | None] = mapped_column(String)  # JSON {property: provenance} where known


class StructureRow(Base):
    """The structure of a material as compact JSON (kept apart so that scans of ``materials`` stay small)."""

    __tablename__ = "structures"

    material: Mapped[int] = mapped_column(ForeignKey("materials.id"), primary_key=True)
    structure: Mapped[str] = mapped_column(Text)


class MaterialElement(Base):
    __tablename__ = "material_elements"

    material: Mapped[int] = mapped_column(ForeignKey("materials.id"), primary_key=True)
    element: Mapped[str] = mapped_column(String(3), primary_key=True)
    __table_args__ = (Index("ix_element_material", "element", "material"),)


class PropertyUnit(Base):
    __tablename__ = "properties"

    name: Mapped[str] = mapped_column(String, primary_key=True)
    unit: Mapped[str] = mapped_column(String)


def entry_rows(
    entries: Sequence[Entry], symmetries: Sequence[Symmetry], *, start: int, prototypes: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """``materials`` rows (dicts) for entries, ids from ``start``; ``prototypes``: their prototype labels."""
    rows = []
    labels = prototypes if prototypes is not None else [None] * len(entries)
    for i, (e, sym, label) in enumerate(zip(entries, symmetries, labels, strict=True)):
        density, vpa = density_and_volume(e.lattice, e.numbers)
        elements = e.elements
        row: dict[str, Any] = {
            "id": start + i,
            "material_id": e.material_id,
            "formula": e.formula,
            "reduced_formula": e.reduced_formula,
            "chemsys": "-".join(elements),
            "nelements": len(elements),
            "nsites": e.num_sites,
            "spacegroup_number": sym.number,
            "spacegroup_symbol": sym.symbol,
            "crystal_system": sym.crystal_system,
            "density": density,
            "volume_per_atom": vpa,
            "source": e.source,
            "prototype": label or None,
            "label_sources": json.dumps(dict(e.provenance), separators=(",", ":")) if e.provenance else None,
            "structure": e.structure_json(),
        }
        for p in PROPERTIES:
            row[p] = e.properties.get(p)
        rows.append(row)
    return rows


class MetadataDB:
    """Access to ``metadata.sqlite`` (create with ``readonly=False``)."""

    def __init__(self, path: Path, *, readonly: bool = True) -> None:
        if readonly and not path.is_file():
            from crystalsearch.errors import IndexFileError

            raise IndexFileError(f"{path}: missing metadata database")
        self.path = path
        self.readonly = readonly
        self.engine: Engine = create_engine("sqlite://", creator=lambda: connect(path, readonly=readonly))
        if not readonly:
            Base.metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # -- writing ---------------------------------------------------------------------------------------
    def insert(self, rows: Sequence[dict[str, Any]], *, session: Session | None = None) -> None:
        """Insert ``materials`` rows (and their elements); one transaction unless a SQLAlchemy session is given."""
        own = session is None
        s = session or self.session()
        try:
            for start in range(0, len(rows), 5000):
                chunk = rows[start : start + 5000]
                s.execute(insert(Material), [{k: v for k, v in r.items() if k != "structure"} for r in chunk])
                s.execute(insert(StructureRow), [{"material": r["id"], "structure": r["structure"]} for r in chunk])
                elements = [{"material": r["id"], "element": el} for r in chunk for el in r["chemsys"].split("-") if el]
                s.execute(insert(MaterialElement), elements)
            if own:
                existing = set(s.scalars(select(PropertyUnit.name)))
                units = [{"name": p, "unit": PROPERTY_UNITS[p]} for p in PROPERTIES if p not in existing]
                if units:
                    s.execute(insert(PropertyUnit), units)
                s.commit()
        finally:
            if own:
                s.close()

    def delete_from(self, first_id: int) -> int:
        """Delete rows with ``id >= first_id`` (rolling back an interrupted ``index add``)."""
        from sqlalchemy import delete

        with self.session() as s:
            s.execute(delete(MaterialElement).where(MaterialElement.material >= first_id))
            s.execute(delete(StructureRow).where(StructureRow.material >= first_id))
            n = getattr(s.execute(delete(Material).where(Material.id >= first_id)), "rowcount", 0)
            s.commit()
        return int(n or 0)

    def checkpoint(self) -> None:
        """Move the WAL into the main file (so its checksum describes the whole database)."""
        with self.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    # -- reading ---------------------------------------------------------------------------------------
    def count(self) -> int:
        with self.session() as s:
            return int(s.scalar(select(func.count(Material.id))) or 0)

    def max_id(self) -> int:
        with self.session() as s:
            value = s.scalar(select(func.max(Material.id)))
        return -1 if value is None else int(value)

    def ids_where(self, condition: ColumnElement[bool] | None, *, below: int | None = None) -> np.ndarray:
        """Sorted row ids passing ``condition`` (all rows if None), optionally only ids < ``below``."""
        stmt = select(Material.id)
        if condition is not None:
            stmt = stmt.where(condition)
        if below is not None:
            stmt = stmt.where(Material.id < below)
        with self.engine.connect() as conn:
            ids = np.fromiter((r[0] for r in conn.execute(stmt.order_by(Material.id))), dtype=np.int64)
        return ids

    def summary(self) -> dict[str, Any]:
        """Counts by source, property coverage, sizes and crystal systems (for ``index info``)."""
        with self.session() as s:
            total = int(s.scalar(select(func.count(Material.id))) or 0)
            coverage = {p: int(s.scalar(select(func.count(getattr(Material, p)))) or 0) for p in PROPERTIES}
            systems = {
                a: b
                for a, b in s.execute(select(Material.crystal_system, func.count()).group_by(Material.crystal_system))
            }
            sources = {a: b for a, b in s.execute(select(Material.source, func.count()).group_by(Material.source))}
            max_sites = s.scalar(select(func.max(Material.nsites)))
            units = {a: b for a, b in s.execute(select(PropertyUnit.name, PropertyUnit.unit))}
        return {
            "materials": total,
            "property_coverage": coverage,
            "units": units,
            "crystal_systems": {str(k): int(v) for k, v in systems.items()},
            "sources": {str(k): int(v) for k, v in sources.items()},
            "max_sites": int(max_sites or 0),
        }


class RowWriter:
    """Inserts the rows of finished build chunks from a background thread (overlaps with embedding).

    ``put(start, entries, spacegroup_numbers, prototypes)`` queues one chunk; ``finish()`` waits,
    checkpoints and closes the database, re-raising any error of the thread.
    """

    def __init__(self, path: Path) -> None:
        import queue
        import threading

        self.db = MetadataDB(path, readonly=False)
        self._queue: queue.Queue[tuple[int, Sequence[Entry], np.ndarray, np.ndarray] | None] = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="crystalsearch-rows", daemon=True)
        self._thread.start()

    def put(self, start: int, entries: Sequence[Entry], numbers: np.ndarray, prototypes: np.ndarray) -> None:
        self._queue.put((start, entries, numbers, prototypes))

    def _run(self) -> None:
        from crystalsearch.structure.prototype import SymmetryLabel

        while (item := self._queue.get()) is not None:
            if self._error is not None:
                continue
            start, entries, numbers, prototypes = item
            try:
                syms = [SymmetryLabel(int(n), "").symmetry() for n in numbers]
                self.db.insert(entry_rows(entries, syms, start=start, prototypes=[str(p) for p in prototypes]))
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread by finish()
                self._error = exc

    def finish(self, *, abort: bool = False) -> None:
        self._queue.put(None)
        self._thread.join()
        try:
            if self._error is not None and not abort:
                raise self._error
            if not abort:
                self.db.checkpoint()
        finally:
            self.db.close()
