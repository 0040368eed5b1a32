"""What goes into an index: one :class:`Entry` per material, from shipped datasets, files or the MP API.

Materials Project entries that appear in several shipped datasets become ONE entry carrying the
properties of all of them (``source`` lists the datasets). Property values are in the units of the
property registry (:mod:`crystalsearch.data.properties`).

The default catalog (dataset name ``"all"``) is :data:`CATALOG_DATASETS`: every material of the
Materials Project release 2025.02.12 (``mp2025``, with all shipped labels joined) plus the
``mp_elasticity`` materials that are not in that release.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from crystalsearch.data.properties import PROPERTY_COLUMNS
from crystalsearch.errors import InputError

if TYPE_CHECKING:
    from pymatgen.core import Structure

    from crystalsearch.data.datasets import Record

__all__ = ["CATALOG_DATASETS", "PROPERTIES", "Entry", "as_entries", "entries_from_datasets"]
__all__ += ["entries_from_structures"]

PROPERTIES: tuple[str, ...] = PROPERTY_COLUMNS
CATALOG_DATASETS: tuple[str, ...] = ("mp2025", "mp_elasticity")


@dataclass(frozen=True, eq=False)
class Entry:
    """One material to index: identity, structure arrays and known properties (NaN-free)."""

    material_id: str
    formula: str
    reduced_formula: str
    lattice: np.ndarray
    species: tuple[str, ...]
    frac_coords: np.ndarray
    numbers: np.ndarray
    properties: Mapping[str, float] = field(default_factory=dict)
    source: str = "user"
    provenance: Mapping[str, str] = field(default_factory=dict)

    @property
    def num_sites(self) -> int:
        return len(self.species)

    @property
    def elements(self) -> list[str]:
        return sorted(set(self.species))

    def cell(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.lattice, self.frac_coords, self.numbers

    def structure_json(self) -> str:
        """Compact JSON of lattice (rows, Å), species and fractional coordinates."""
        return structure_to_json(self.lattice, self.species, self.frac_coords)


def structure_to_json(lattice: np.ndarray, species: Sequence[str], frac_coords: np.ndarray) -> str:
    obj = {
        "lattice": np.asarray(lattice).tolist(),
        "species": list(species),
        "frac_coords": np.asarray(frac_coords).tolist(),
    }
    return json.dumps(obj, separators=(",", ":"))


def structure_from_json(text: str) -> Structure:
    """The pymatgen ``Structure`` of :func:`structure_to_json` output."""
    from pymatgen.core import Lattice, Structure

    obj = json.loads(text)
    return Structure(Lattice(obj["lattice"]), obj["species"], obj["frac_coords"])


def _clean(props: Mapping[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in props.items() if k in PROPERTIES and v is not None and np.isfinite(v)}


def entry_from_record(record: Record, *, source: str) -> Entry:
    return Entry(
        material_id=record.material_id,
        formula=record.formula,
        reduced_formula=record.reduced_formula,
        lattice=record.lattice,
        species=tuple(record.species),
        frac_coords=record.frac_coords,
        numbers=record.atomic_numbers,
        properties=_clean(record.properties),
        source=source,
        provenance=dict(record.provenance),
    )


def merge_records(groups: Iterable[tuple[str, Iterable[Record]]]) -> list[Entry]:
    """One entry per material id, in first-seen order; later datasets add properties and sources."""
    merged: dict[str, Entry] = {}
    for source, records in groups:
        for record in records:
            cur = merged.get(record.material_id)
            if cur is None:
                merged[record.material_id] = entry_from_record(record, source=source)
                continue
            props, provenance = dict(cur.properties), dict(cur.provenance)
            for k, v in _clean(record.properties).items():
                if k not in props:
                    props[k] = v
                    provenance[k] = record.provenance.get(k, source)
            sources = cur.source if source in cur.source.split(",") else f"{cur.source},{source}"
            merged[record.material_id] = Entry(
                cur.material_id, cur.formula, cur.reduced_formula, cur.lattice, cur.species,
                cur.frac_coords, cur.numbers, props, sources, provenance,
            )  # fmt: skip
    return list(merged.values())


def entries_from_datasets(names: str | Sequence[str] = "all") -> list[Entry]:
    """Entries of shipped datasets merged by material id (``"all"``: the default catalog,
    :data:`CATALOG_DATASETS`)."""
    from crystalsearch.data import datasets

    chosen = CATALOG_DATASETS if names == "all" else ((names,) if isinstance(names, str) else tuple(names))
    if "all" in chosen:
        chosen = CATALOG_DATASETS
    for name in chosen:
        if name not in datasets.DATASETS:
            valid = ", ".join(("all", *datasets.DATASETS))
            raise InputError(f"--dataset {name}", f"unknown dataset (valid: {valid})")
    return merge_records((name, datasets.load(name).records) for name in chosen)


def entries_from_structures(items: Iterable[tuple[str, Structure]], *, source: str = "user") -> list[Entry]:
    """Entries of ``(id, Structure)`` pairs (e.g. from :func:`crystalsearch.io.read_structures`)."""
    out = []
    for material_id, structure in items:
        species = tuple(site.specie.symbol for site in structure)
        numbers = np.fromiter((site.specie.Z for site in structure), dtype=np.int64, count=len(structure))
        formula = str(structure.composition.reduced_formula)
        out.append(
            Entry(
                material_id=material_id,
                formula=formula,
                reduced_formula=formula,
                lattice=np.array(structure.lattice.matrix, dtype=np.float64),
                species=species,
                frac_coords=np.array(structure.frac_coords, dtype=np.float64),
                numbers=numbers,
                properties={},
                source=source,
            )
        )
    return out


def as_entries(source: Any) -> list[Entry]:
    """Entries from a dataset name (or ``"all"``), a :class:`~crystalsearch.data.datasets.Dataset`, records,
    entries or ``(id, Structure)`` pairs. Duplicate material ids keep the first (properties merged)."""
    from crystalsearch.data.datasets import Dataset, Record

    if isinstance(source, str):
        return entries_from_datasets(source)
    if isinstance(source, Dataset):
        return merge_records([(source.name, source.records)])
    items = list(source)
    if items and all(isinstance(x, str) for x in items):
        return entries_from_datasets(items)
    if all(isinstance(x, Record) for x in items):
        return merge_records([("records", items)])
    if all(isinstance(x, Entry) for x in items):
        seen: set[str] = set()
        unique = []
        for e in items:
            if e.material_id not in seen:
                seen.add(e.material_id)
                unique.append(e)
        return unique
    if all(isinstance(x, tuple) and len(x) == 2 for x in items):
        return as_entries(entries_from_structures(items))
    raise TypeError("expected a dataset name, a Dataset, Records, Entries or (id, Structure) pairs")


def fingerprint(entries: Sequence[Entry]) -> str:
    """SHA-256 of the entries' ids, structures and properties (what a resumed build must agree on)."""
    h = hashlib.sha256()
    for e in entries:
        h.update(e.material_id.encode())
        h.update(b"\0" + e.source.encode() + b"\0")
        h.update(np.ascontiguousarray(e.lattice, dtype=np.float64).tobytes())
        h.update(np.ascontiguousarray(e.frac_coords, dtype=np.float64).tobytes())
        h.update(np.ascontiguousarray(e.numbers, dtype=np.int64).tobytes())
        h.update(json.dumps(sorted(e.properties.items())).encode())
    return h.hexdigest()
