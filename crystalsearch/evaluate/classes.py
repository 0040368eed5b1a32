"""Compound classes of Figure 3, from the anions present.

A crystal is put in the class of the first anion family of :data:`PRECEDENCE` that it contains, as long
as it also contains some other element (the cation); otherwise it is an ``element`` (one element) or
``intermetallic`` (no anion element at all, including silicides and germanides). The order puts the most
electronegative anions first, so mixed-anion compounds go to their most ionic anion: oxyhalides,
oxynitrides, carbonates, borates, phosphates and hydroxides are oxides; an oxygen-free halide with
sulfur is a halide; nitrides beat carbides (carbonitrides) and hydrides (amides); pnictides beat
carbides, hydrides and borides.
"""

from __future__ import annotations

from collections.abc import Iterable

PRECEDENCE: tuple[tuple[str, frozenset[str]], ...] = (
    ("oxide", frozenset({"O"})),
    ("halide", frozenset({"F", "Cl", "Br", "I"})),
    ("sulfide", frozenset({"S"})),
    ("selenide/telluride", frozenset({"Se", "Te"})),
    ("nitride", frozenset({"N"})),
    ("pnictide (P, As, Sb)", frozenset({"P", "As", "Sb"})),
    ("carbide", frozenset({"C"})),
    ("hydride", frozenset({"H"})),
    ("boride", frozenset({"B"})),
)
CLASSES: tuple[str, ...] = (*(name for name, _ in PRECEDENCE), "intermetallic", "element")


def compound_class(elements: Iterable[str]) -> str:
    """The class of a crystal with these element symbols (see the module docstring)."""
    present = set(elements)
    if len(present) <= 1:
        return "element"
    for name, anions in PRECEDENCE:
        if present & anions and present - anions:
            return name
    return "intermetallic"


def definition_markdown() -> str:
    """The class definition as a markdown list (for the report)."""
    lines = [f"{i}. **{name}**: contains {', '.join(sorted(an))}" for i, (name, an) in enumerate(PRECEDENCE, 1)]
    lines.append(f"{len(PRECEDENCE) + 1}. **intermetallic**: two or more elements, none of the anions above")
    lines.append(f"{len(PRECEDENCE) + 2}. **element**: a single element")
    return "\n".join(lines)
