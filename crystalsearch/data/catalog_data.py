"""The ``mp2025`` dataset: every Materials Project material of release 2025.02.12, labels joined by id.

Structures come from ``crystalsearch/data/mp2025_structures.npz`` (exact, see
:mod:`crystalsearch.data.structpack`). Labels are joined by ``material_id`` in this order of preference,
and each record's ``provenance`` says which source each of its labels came from:

- formation energy and band gap: ``mp2018_megnet_labels.csv.gz`` (MP release 2018.6.1, the MEGNet set),
  else ``mp_structures`` (about 2018); Fermi level: ``mp_structures``. All are **2018 calculations**
  attached to 2025 structures; a material's cell may have changed between releases. The release comes
  first because its formation energies share one correction scheme: on the 36,477 materials both sources
  hold, 7% of ``mp_structures`` energies differ from the release's by more than 0.05 eV/atom, 16% of the
  transition-metal oxides and fluorides (Co, Cr, Fe, Mn, Mo, Ni, V, W with O or F: MP's +U set) by more
  than 0.2, and the structure-only heads fit the release's values better (``training/results/calibration``).
- bulk and shear moduli: ``mp_elasticity``.
- thermal conductivity and melting temperature: the materials those datasets' own joins chose (by id,
  else by formula to the lowest-energy 2018 polymorph; ``provenance`` keeps ``"formula"`` for those).

Use :func:`crystalsearch.data.datasets.load` (``load("mp2025")``), which caches the result.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from collections.abc import Mapping
from importlib import resources
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np

from crystalsearch.data.properties import PROPERTY_COLUMNS
from crystalsearch.data.records import Dataset, JoinReport, Record
from crystalsearch.data.structpack import StructureTable, unpack

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["CATALOG_COUNTS", "MEGNET_FILE", "RELEASE", "STRUCTURES_FILE", "catalog_name", "load_mp2025"]
__all__ += ["structure_table"]

RELEASE = "Materials Project database release 2025.02.12"
# The default catalog (mp2025 + the mp_elasticity materials not in it): materials, and how many carry each
# property (checked against the data by tests/test_catalog_data.py), so that `info` needs no loading.
CATALOG_COUNTS: dict[str, int] = {
    "materials": 170_466, "formation_energy_per_atom": 51_406, "band_gap": 51_406, "efermi": 36_278,
    "bulk_modulus_vrh": 6_111, "shear_modulus_vrh": 6_110, "thermal_conductivity": 3_657, "melting_temperature": 434,
}  # fmt: skip


def catalog_name(sources: dict[str, int]) -> str:
    """What an index holds, from its manifest's dataset counts (``sources``)."""
    if "mp2025" in sources:
        return f"{RELEASE} (+ mp_elasticity materials not in it)" if "mp_elasticity" in sources else RELEASE
    if "mp_structures" in sources:
        return "Materials Project, about 2018 (mp_structures)"
    return "user structures" if sources else "empty"


STRUCTURES_FILE = "mp2025_structures.npz"
MEGNET_FILE = "mp2018_megnet_labels.csv.gz"


def structure_table() -> StructureTable:
    """The shipped structures of the release, decoded (about 2 s)."""
    with resources.as_file(resources.files("crystalsearch").joinpath("data", STRUCTURES_FILE)) as path:
        return unpack(path)


def _megnet_rows() -> list[dict[str, str]]:
    raw = resources.files("crystalsearch").joinpath("data", MEGNET_FILE).read_bytes()
    return list(csv.DictReader(io.StringIO(gzip.decompress(raw).decode("utf-8"))))


class _Labels:
    """material_id -> {column: value} and {column: provenance key}; the first source to give a label wins."""

    def __init__(self) -> None:
        self.values: dict[str, dict[str, float]] = {}
        self.sources: dict[str, dict[str, str]] = {}

    def put(self, material_id: str, column: str, value: float, source: str) -> None:
        if not math.isfinite(value):
            return
        values = self.values.setdefault(material_id, {})
        if column not in values:
            values[column] = value
            self.sources.setdefault(material_id, {})[column] = source

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for sources in self.sources.values():
            for column, source in sources.items():
                out.setdefault(column, {}).setdefault(source, 0)
                out[column][source] += 1
        return out


def _gather_labels(ids: set[str], load: Callable[[str], Dataset]) -> _Labels:
    labels = _Labels()
    for row in _megnet_rows():  # one release first: its energies share one correction scheme
        if row["material_id"] in ids:
            for column in ("formation_energy_per_atom", "band_gap"):
                labels.put(row["material_id"], column, float(row[column]), "megnet_2018")
    for rec in load("mp_structures").records:
        if rec.material_id in ids:
            for column in ("formation_energy_per_atom", "band_gap", "efermi"):
                labels.put(rec.material_id, column, rec.properties[column], "mp_structures")
    for rec in load("mp_elasticity").records:
        if rec.material_id in ids:
            for column in ("bulk_modulus_vrh", "shear_modulus_vrh"):
                labels.put(rec.material_id, column, rec.properties[column], "mp_elasticity")
    for name in ("thermal_conductivity", "melting_temperature"):
        for rec in load(name).records:
            if rec.material_id in ids:
                labels.put(rec.material_id, name, rec.properties[name], rec.join)
    return labels


def load_mp2025(*, load: Callable[[str], Dataset]) -> Dataset:
    """Build the ``mp2025`` :class:`~crystalsearch.data.records.Dataset` (uncached: use ``datasets.load``);
    ``load`` gives the datasets whose labels are joined (``datasets.load``)."""
    from pymatgen.core import Element

    table = structure_table()
    ids = set(table.material_id)
    labels = _gather_labels(ids, load)
    symbols = np.array([""] + [Element.from_Z(z).symbol for z in range(1, 119)], dtype=object)
    nan_props: Mapping[str, float] = MappingProxyType({c: float("nan") for c in PROPERTY_COLUMNS})
    columns = PROPERTY_COLUMNS
    no_sources: Mapping[str, str] = MappingProxyType({})
    records = []
    for i, material_id in enumerate(table.material_id):
        sl = table.sites(i)
        values = labels.values.get(material_id)
        props = nan_props if values is None else MappingProxyType({c: values.get(c, math.nan) for c in columns})
        sources = labels.sources.get(material_id)
        records.append(
            Record(
                material_id=material_id,
                formula=table.formula[i],
                lattice=table.lattice[i],
                species=tuple(symbols[table.numbers[sl]]),
                frac_coords=table.frac_coords[sl],
                properties=props,
                provenance=MappingProxyType(sources) if sources else no_sources,
            )
        )
    counts = labels.counts()
    summary = "; ".join(
        f"{column}: " + ", ".join(f"{n:,} from {src}" for src, n in sorted(counts[column].items()))
        for column in PROPERTY_COLUMNS
        if column in counts
    )
    description = (
        f"{RELEASE}: {len(records):,} structures, cells as the Materials Project gives them; labels joined by "
        f"material_id (formation energy, band gap, Fermi level are 2018 calculations): {summary}"
    )
    n = len(records)
    report = JoinReport(n, 0, 0, 0, True, description, n_own_structures=n)
    return Dataset(name="mp2025", records=tuple(records), properties=PROPERTY_COLUMNS, join_report=report)
