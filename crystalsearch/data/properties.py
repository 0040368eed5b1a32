"""The one registry of material properties: column, unit, display, aliases, and how heads learn them.

Every other module reads this table (dataset loaders, index columns, filters, tables, JSON, heads):
adding a property is one row of :data:`REGISTRY`. Importing this module is free (no numpy, no torch).

- ``column``: the name in datasets, in the index's SQLite ``materials`` table and in ``--where``
- ``unit``, ``label`` (short table header), ``digits`` (decimals kept in tables and JSON)
- ``aliases``: further names ``--where`` accepts
- ``head``: the name ``predict --property`` / ``train finetune --property`` use, when a head exists;
  ``dataset`` is the shipped dataset whose labels train it and ``log`` whether it learns ``log(y)``
- ``compositional``: the label belongs to a composition rather than a structure (joined by formula, or
  an experimental value of a compound): the evaluation protocol (:mod:`crystalsearch.train.protocol`)
  keeps all polymorphs of one reduced formula in the same split
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["ALIASES", "PROPERTIES", "PROPERTY_COLUMNS", "REGISTRY", "UNITS", "Property", "PropertySpec", "by_column"]
__all__ += ["by_head", "own_property", "spec_of_heads"]


@dataclass(frozen=True)
class Property:
    """One material property (see the module docstring for the fields)."""

    column: str
    unit: str
    label: str
    digits: int
    description: str
    aliases: tuple[str, ...] = ()
    head: str | None = None
    dataset: str | None = None
    log: bool = False
    compositional: bool = False

    @property
    def title(self) -> str:
        """Plain name for headings, e.g. ``melting temperature`` (the head name in words, else the column)."""
        return (self.head or self.column).replace("_", " ")

    @property
    def heading(self) -> str:
        """``Melting temperature (K)``."""
        return f"{self.title[:1].upper()}{self.title[1:]} ({self.unit})"


REGISTRY: tuple[Property, ...] = (
    Property("formation_energy_per_atom", "eV/atom", "E_form", 3, "formation energy per atom (DFT, MP 2018)",
             ("e_form", "formation_energy"), "formation_energy", "mp2025"),
    Property("band_gap", "eV", "gap", 3, "band gap (DFT PBE, MP 2018)", ("gap",), "band_gap", "mp2025"),
    Property("efermi", "eV", "E_F", 3, "Fermi level (DFT, MP 2018)", ("fermi_level",)),
    Property("bulk_modulus_vrh", "GPa", "K_VRH", 1, "bulk modulus, Voigt-Reuss-Hill (DFT)",
             ("k_vrh", "bulk_modulus"), "bulk_modulus", "mp_elasticity", True),
    Property("shear_modulus_vrh", "GPa", "G_VRH", 1, "shear modulus, Voigt-Reuss-Hill (DFT)",
             ("g_vrh", "shear_modulus"), "shear_modulus", "mp_elasticity", True),
    Property("thermal_conductivity", "W/m/K", "kappa", 2, "lattice thermal conductivity at 300 K (AFLOW AGL)",
             ("kappa",), "thermal_conductivity", "thermal_conductivity", True, True),
    Property("melting_temperature", "K", "T_melt", 0, "experimental melting temperature",
             ("tm", "melting_point"), "melting_temperature", "melting_temperature", compositional=True),
)  # fmt: skip

PROPERTY_COLUMNS: tuple[str, ...] = tuple(p.column for p in REGISTRY)
UNITS: dict[str, str] = {p.column: p.unit for p in REGISTRY}
_BY_COLUMN: dict[str, Property] = {p.column: p for p in REGISTRY}


def by_column(column: str) -> Property:
    """The registry row of a column name (``KeyError`` if unknown)."""
    return _BY_COLUMN[column]


def by_head(name: str) -> Property:
    """The registry row of a head name such as ``bulk_modulus`` (``KeyError`` if unknown)."""
    for p in REGISTRY:
        if p.head == name:
            return p
    raise KeyError(name)


# Every name a property is known by (column, head name, aliases) -> its column.
ALIASES: dict[str, str] = {
    name: p.column for p in REGISTRY for name in (p.column, *((p.head,) if p.head else ()), *p.aliases)
}


@dataclass(frozen=True)
class PropertySpec:
    """A property a head predicts: its head name, training dataset and column, unit, log transform, and
    whether its evaluation split keeps polymorphs of one formula together (``compositional``)."""

    name: str
    dataset: str
    column: str
    unit: str
    log: bool
    compositional: bool = False

    @property
    def shipped(self) -> bool:
        """Whether the package ships its labels and a catalog column (False: a user's own property)."""
        return bool(self.dataset)


# Head name -> spec, in registry order (the view fine-tuning and prediction use).
PROPERTIES: dict[str, PropertySpec] = {
    p.head: PropertySpec(p.head, p.dataset, p.column, p.unit, p.log, p.compositional)
    for p in REGISTRY
    if p.head is not None and p.dataset is not None
}
_NAME = "abcdefghijklmnopqrstuvwxyz0123456789_"


def own_property(name: str, *, unit: str, log: bool = False, compositional: bool = False) -> PropertySpec:
    """A property known only from a user's labels (``train finetune --labels``): no shipped dataset, no catalog
    column. ``name`` is lower-case letters, digits and ``_`` and may not shadow a column of the registry."""
    if not name or name[0].isdigit() or any(c not in _NAME for c in name) or len(name) > 64:
        raise ValueError(f"property name {name!r}: use lower-case letters, digits and _ (e.g. vickers_hardness)")
    if name in PROPERTIES or name in ALIASES:
        raise ValueError(f"property name {name!r} is the registry's; its unit and transform are fixed")
    return PropertySpec(name, "", "", unit.strip(), log, compositional)


def spec_of_heads(metadata: dict[str, object]) -> PropertySpec:
    """The spec a head's ``model.json`` metadata records: the registry's for a shipped property, else the user's
    own (unit, log transform and grouping as trained)."""
    name = str(metadata.get("property", ""))
    if name in PROPERTIES:
        return PROPERTIES[name]
    transform = metadata.get("transform")
    log = bool(transform.get("log", False)) if isinstance(transform, dict) else False
    return own_property(name, unit=str(metadata.get("unit", "")), log=log,
                        compositional=bool(metadata.get("compositional", False)))  # fmt: skip


# -- reporting: the meaningful digits of every reported number ----------------------------------------
SIMILARITY_DIGITS = 6
_DIGITS = {"similarity": SIMILARITY_DIGITS, "structure_similarity": SIMILARITY_DIGITS,
           "chemistry_similarity": SIMILARITY_DIGITS, "density": 4, "volume_per_atom": 4}  # fmt: skip


def _registry_digits(column: str) -> int | None:
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
    return list(dict.fromkeys([*PROPERTY_COLUMNS, *extra]))
