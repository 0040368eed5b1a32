"""Interchangeable elements: MatterGen's disordered matching as fixed element classes.

Two elements are **interchangeable** when their atomic radii differ by at most :data:`RADIUS_TOLERANCE`
relative to the larger one, ``|r_a - r_b| / max(r_a, r_b) <= 0.3``, and their Pauling electronegativities
by at most :data:`ELECTRONEGATIVITY_TOLERANCE`, ``|chi_a - chi_b| <= 1.0``. The radius is pymatgen's
``Element.atomic_radius`` (empirical, Slater 1964), or ``Element.atomic_radius_calculated`` (Clementi
1967) where the empirical one is missing; the electronegativity is ``Element.X``. Elements missing either
value (He, Ne, Ar, At, Fr and Cm onwards) are interchangeable with nothing.

The relation is not transitive, so the classes are built greedily, which is deterministic: elements in
order of atomic number (H to Og), each joining the first class (in order of creation) all of whose members
it is interchangeable with, else starting a new one. Every two elements of one class are interchangeable;
two interchangeable elements may still fall in different classes (the earlier one's class holds a member
the later one is not interchangeable with). A class is represented by its member of lowest atomic number.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pymatgen.core import Structure

__all__ = ["ELECTRONEGATIVITY_TOLERANCE", "RADIUS_TOLERANCE", "class_formula", "class_members",
           "element_classes", "formulas_of", "interchangeable", "representative", "to_classes"]  # fmt: skip

RADIUS_TOLERANCE = 0.3  # relative to the larger radius
ELECTRONEGATIVITY_TOLERANCE = 1.0  # Pauling units
LAST_Z = 118


@functools.lru_cache(maxsize=1)
def _properties() -> dict[str, tuple[float, float] | None]:
    """(radius in Å, Pauling electronegativity) of every element, or None where either is missing."""
    from pymatgen.core import Element

    out: dict[str, tuple[float, float] | None] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen warns about missing electronegativities
        for z in range(1, LAST_Z + 1):
            e = Element.from_Z(z)
            radius = e.atomic_radius if e.atomic_radius is not None else e.atomic_radius_calculated
            chi = float(e.X)
            ok = radius is not None and not math.isnan(chi) and float(radius) > 0
            out[e.symbol] = (float(radius), chi) if ok and radius is not None else None
    return out


def interchangeable(a: str, b: str) -> bool:
    """The rule on two element symbols (an element is interchangeable with itself)."""
    if a == b:
        return True
    props = _properties()
    pa, pb = props.get(a), props.get(b)
    if pa is None or pb is None:
        return False
    return abs(pa[0] - pb[0]) / max(pa[0], pb[0]) <= RADIUS_TOLERANCE and abs(pa[1] - pb[1]) <= (
        ELECTRONEGATIVITY_TOLERANCE
    )


@functools.lru_cache(maxsize=1)
def element_classes() -> tuple[tuple[str, ...], ...]:
    """The classes, greedily in order of atomic number (module docstring); members in order of atomic number."""
    classes: list[list[str]] = []
    for symbol, props in _properties().items():
        home = None if props is None else next((c for c in classes if all(interchangeable(symbol, m) for m in c)), None)
        if home is None:
            classes.append([symbol])
        else:
            home.append(symbol)
    return tuple(tuple(c) for c in classes)


@functools.lru_cache(maxsize=1)
def _representatives() -> dict[str, str]:
    return {m: c[0] for c in element_classes() for m in c}


def representative(symbol: str) -> str:
    """The class representative of an element (itself for symbols outside the table)."""
    return _representatives().get(symbol, symbol)


def representative_numbers(numbers: np.ndarray) -> np.ndarray:
    """Atomic numbers with every element replaced by its class representative's."""
    from pymatgen.core import Element

    table = {int(z): Element(representative(Element.from_Z(int(z)).symbol)).Z for z in np.unique(numbers)}
    return np.array([table[int(z)] for z in numbers], dtype=np.int64)


def class_members(symbol: str) -> tuple[str, ...]:
    """Every element of the class of ``symbol``, representative first."""
    rep = representative(symbol)
    return next((c for c in element_classes() if c[0] == rep), (symbol,))


def to_classes(structure: Structure) -> Structure:
    """The structure with every element replaced by its class representative (the same object when none changes)."""
    mapping = {el.symbol: representative(el.symbol) for el in structure.composition.elements}
    changed = {a: b for a, b in mapping.items() if a != b}
    if not changed:
        return structure
    out = structure.copy()
    out.replace_species(changed)  # type: ignore[arg-type]
    return out


def class_formula(formula: str) -> str:
    """The reduced formula with every element replaced by its class representative."""
    from pymatgen.core import Composition

    comp = Composition(formula)
    mapped: dict[str, float] = {}
    for el, amount in comp.items():
        rep = representative(el.symbol)
        mapped[rep] = mapped.get(rep, 0.0) + float(amount)
    return str(Composition(mapped).reduced_formula)


MAX_FORMULAS = 4096  # formulas one class formula stands for, at most (members in order of atomic number)


def formulas_of(formula: str, *, limit: int = MAX_FORMULAS) -> list[str]:
    """The reduced formulas that ``formula`` (a class formula) stands for: each representative replaced by one
    member of its class, in order of atomic number, at most ``limit`` of them (BaTiO3's class formula stands
    for 35 x 20 x 2 = 1,400). Formulas in which one class is shared by several elements (ZrHfO4 for ZrO2) are
    not among them."""
    import itertools

    from pymatgen.core import Composition

    comp = Composition(formula)
    reps = [el.symbol for el in comp.elements]
    amounts = [float(comp[el]) for el in comp.elements]
    out = []
    for members in itertools.islice(itertools.product(*(class_members(r) for r in reps)), limit):
        out.append(str(Composition(dict(zip(members, amounts, strict=True))).reduced_formula))
    return out
