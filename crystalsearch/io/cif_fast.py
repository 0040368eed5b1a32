"""A fast path for the plainest CIFs: P1, fully ordered, one element per site (what generative models and
pymatgen's ``CifWriter`` write).

For such a block the structure is built straight from the parsed block, skipping the second parse and the
general symmetry expansion of pymatgen's ``CifParser``, with the same result as ``CifParser`` (checked site
by site on the test and shipped CIFs): the cell from its parameters (``Lattice.from_parameters``),
fractional coordinates with uncertainties stripped, those within 1e-4 of 1/3 or 2/3 set to them and wrapped
into [0, 1), sites sorted by electronegativity, then symbol, keeping file order otherwise. Anything else
(symmetry operations besides the identity, space-group names without operations, partial occupancies,
oxidation states, implicit hydrogens, labels that are not element symbols, sites within 1e-3 of each other,
elements without an electronegativity, thin cells) returns None and goes through ``CifParser``.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from pymatgen.core import Structure

__all__ = ["fast_structure"]

_OPS = ("_symmetry_equiv_pos_as_xyz", "_symmetry_equiv_pos_as_xyz_", "_space_group_symop_operation_xyz",
        "_space_group_symop_operation_xyz_")  # fmt: skip
_SPACE_GROUP_KEYS = ("_symmetry_space_group_name_h-m", "_space_group_name_h-m_alt", "_symmetry_int_tables_number",
                     "_space_group_it_number", "_symmetry_space_group_name_hall", "_space_group_name_hall")  # fmt: skip
_BLOCKERS = ("_atom_type_oxidation_number", "_atom_site_attached_hydrogens", "_atom_site_moment_label",
             "_atom_site_moment.label", "_atom_site_cartn_x", "_space_group_magn.name_bns")  # fmt: skip
_ELEMENT = re.compile(r"^[A-Z][a-z]?$")
_UNCERTAINTY = re.compile(r"\(.+\)*")
_IDENTITY = "x,y,z"
_SAME_SITE = 1e-3  # fractional: closer sites are merged by CifParser, left to it
_FRAC_TOLERANCE = 1e-4  # CifParser's default rounding of 1/3 and 2/3


def _number(text: Any) -> float:
    if isinstance(text, list):
        text = text[0] if len(text) == 1 else text
    value = float(_UNCERTAINTY.sub("", str(text)))
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _is_p1(data: dict[str, Any]) -> bool:
    for key in _OPS:
        ops = data.get(key)
        if ops:
            ops = [ops] if isinstance(ops, str) else ops
            return len(ops) == 1 and re.sub(r"[\s']", "", str(ops[0])).lower() == _IDENTITY
    lowered = {k.lower(): v for k, v in data.items()}
    return all(not lowered.get(k) for k in _SPACE_GROUP_KEYS)  # no operations, no group: CifParser takes P1


def _fraction(value: float) -> float:
    for ideal in (1 / 3, 2 / 3):
        if math.isclose(value / ideal, 1, abs_tol=_FRAC_TOLERANCE, rel_tol=0):
            return ideal
    return value


def fast_structure(block: Any) -> Structure | None:
    """The structure of a parsed CIF block (pymatgen ``CifBlock``) where it is plain P1, else None (also where
    anything is odd: ``CifParser`` then reads it and words its errors)."""
    try:
        return _fast_structure(block)
    except (ValueError, ArithmeticError, TypeError, KeyError, IndexError):
        return None


def _fast_structure(block: Any) -> Structure | None:
    data: dict[str, Any] = block.data
    if any(key in data for key in _BLOCKERS) or not _is_p1(data):
        return None
    try:
        symbols = data["_atom_site_type_symbol"]
        columns = [data[f"_atom_site_fract_{x}"] for x in "xyz"]
        cell = [_number(data[f"_cell_length_{x}"]) for x in "abc"]
        angles = [_number(data[f"_cell_angle_{x}"]) for x in ("alpha", "beta", "gamma")]
        if isinstance(symbols, str) or not all(isinstance(c, list) and len(c) == len(symbols) for c in columns):
            return None
        occupancy = data.get("_atom_site_occupancy")
        if occupancy is not None and (isinstance(occupancy, str) or any(_number(o) != 1.0 for o in occupancy)):
            return None
        frac = np.array([[_fraction(_number(v)) for v in row] for row in zip(*columns)], dtype=np.float64)
    except (KeyError, ValueError, TypeError):
        return None
    if not symbols or not all(isinstance(s, str) and _ELEMENT.match(s) for s in symbols):
        return None
    labels = data.get("_atom_site_label")
    labels = list(labels) if isinstance(labels, list) and len(labels) == len(symbols) else None
    return _build(cell, angles, list(symbols), frac, labels)


def _build(
    cell: list[float], angles: list[float], symbols: list[str], frac: np.ndarray, labels: list[str] | None
) -> Structure | None:
    from pymatgen.core import Element, Lattice, Structure

    try:
        elements = [Element(s) for s in symbols]
    except ValueError:
        return None
    if any(not math.isfinite(el.X) for el in elements):
        return None
    frac = frac - np.floor(frac)
    diff = frac[:, None, :] - frac[None, :, :]
    diff -= np.round(diff)
    close = np.all(np.abs(diff) < _SAME_SITE, axis=2)
    np.fill_diagonal(close, False)
    if close.any():
        return None
    lattice = Lattice.from_parameters(*cell, *angles)
    if min(lattice.d_hkl((1, 0, 0)), lattice.d_hkl((0, 1, 0)), lattice.d_hkl((0, 0, 1))) < 0.01:
        return None
    order = sorted(range(len(elements)), key=lambda i: (elements[i].X, symbols[i]))
    return Structure(lattice, [elements[i] for i in order], frac[order],
                     labels=None if labels is None else [labels[i] for i in order])  # fmt: skip
