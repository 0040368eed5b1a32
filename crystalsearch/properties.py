"""The properties crystalsearch fine-tunes and predicts: dataset, column, unit, log transform."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PropertySpec:
    name: str
    dataset: str
    column: str
    unit: str
    log: bool


PROPERTIES: dict[str, PropertySpec] = {
    "bulk_modulus": PropertySpec("bulk_modulus", "mp_elasticity", "bulk_modulus_vrh", "GPa", True),
    "shear_modulus": PropertySpec("shear_modulus", "mp_elasticity", "shear_modulus_vrh", "GPa", True),
    "thermal_conductivity": PropertySpec(
        "thermal_conductivity", "thermal_conductivity", "thermal_conductivity", "W/m/K", True
    ),
    "melting_temperature": PropertySpec(
        "melting_temperature", "melting_temperature", "melting_temperature", "K", False
    ),
    "formation_energy": PropertySpec(
        "formation_energy", "mp_structures", "formation_energy_per_atom", "eV/atom", False
    ),
    "band_gap": PropertySpec("band_gap", "mp_structures", "band_gap", "eV", False),
}
