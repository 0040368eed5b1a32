"""Common structure types built from scratch (not taken from any catalog): queries for the structure evaluation."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pymatgen.core import Structure

__all__ = ["textbook_structures"]


def textbook_structures() -> dict[str, Structure]:
    """Common structure types built from scratch with pymatgen (not taken from any catalog)."""
    from pymatgen.core import Lattice, Structure

    def sg(symbol: str, lattice: Lattice, species: list[str], coords: list[list[float]]) -> Structure:
        return Structure.from_spacegroup(symbol, lattice, species, coords)

    h = Lattice.hexagonal
    return {
        "rocksalt NaCl": sg("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
        "CsCl": sg("Pm-3m", Lattice.cubic(4.12), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
        "zincblende GaAs": sg("F-43m", Lattice.cubic(5.65), ["Ga", "As"], [[0, 0, 0], [0.25, 0.25, 0.25]]),
        "wurtzite ZnO": sg("P6_3mc", h(3.25, 5.21), ["Zn", "O"], [[1 / 3, 2 / 3, 0], [1 / 3, 2 / 3, 0.382]]),
        "diamond C": sg("Fd-3m", Lattice.cubic(3.567), ["C"], [[0, 0, 0]]),  # pymatgen: origin choice 1
        "fluorite CaF2": sg("Fm-3m", Lattice.cubic(5.46), ["Ca", "F"], [[0, 0, 0], [0.25, 0.25, 0.25]]),
        "rutile TiO2": sg("P4_2/mnm", Lattice.tetragonal(4.59, 2.96), ["Ti", "O"], [[0, 0, 0], [0.305, 0.305, 0]]),
        "perovskite SrTiO3": sg(
            "Pm-3m", Lattice.cubic(3.905), ["Sr", "Ti", "O"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0]]
        ),  # fmt: skip
        "fcc Cu": sg("Fm-3m", Lattice.cubic(3.61), ["Cu"], [[0, 0, 0]]),
        "bcc Fe": sg("Im-3m", Lattice.cubic(2.87), ["Fe"], [[0, 0, 0]]),
        "hcp Mg": sg("P6_3/mmc", h(3.21, 5.21), ["Mg"], [[1 / 3, 2 / 3, 0.25]]),
        "NiAs": sg("P6_3/mmc", h(3.62, 5.03), ["Ni", "As"], [[0, 0, 0], [1 / 3, 2 / 3, 0.25]]),
        "spinel MgAl2O4": sg(
            "Fd-3m",
            Lattice.cubic(8.08),
            ["Mg", "Al", "O"],
            [[0, 0, 0], [0.625, 0.625, 0.625], [0.3874, 0.3874, 0.3874]],
        ),  # fmt: skip
        "CdI2": sg("P-3m1", h(4.24, 6.84), ["Cd", "I"], [[0, 0, 0], [1 / 3, 2 / 3, 0.25]]),
    }
