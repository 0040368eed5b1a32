"""Search filters, evaluated in SQL: elements, excluded elements, space group, size and ``--where``.

``--where`` takes SQL-style conditions over whitelisted columns, e.g. ``band_gap > 1 AND
crystal_system = 'cubic'``, ``spacegroup_number IN (225, 227)``, ``band_gap BETWEEN 1 AND 3``,
``formula LIKE 'Li%'``, ``NOT (K_VRH / G_VRH < 1.75)``, ``melting_temperature IS NOT NULL``; the grammar
is in :mod:`crystalsearch.catalog.where`. Values are bound parameters; nothing is ever pasted into SQL.
A comparison with an unknown (NULL) property is false, so ``band_gap > 1`` skips materials without a
band gap.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from crystalsearch.catalog.where import ALIASES, columns, parse_where
from crystalsearch.errors import InputError

if TYPE_CHECKING:
    from sqlalchemy.sql.elements import ColumnElement

__all__ = ["ALIASES", "Filters", "columns", "parse_elements", "parse_where"]


def parse_elements(value: str | Sequence[str] | None, *, option: str = "--elements") -> tuple[str, ...]:
    """Element symbols from ``"Li,O"``/``"Li O"``/a list; raises InputError for unknown symbols."""
    if value is None:
        return ()
    items = re.split(r"[,\s]+", value) if isinstance(value, str) else [str(v) for v in value]
    symbols = [s.strip() for s in items if s.strip()]
    from pymatgen.core.periodic_table import Element

    bad = [s for s in symbols if not Element.is_valid_symbol(s)]
    if bad:
        raise InputError(option, f"unknown element symbol(s): {', '.join(bad)}")
    return tuple(dict.fromkeys(symbols))


@dataclass(frozen=True)
class Filters:
    """Filters on the metadata; ``condition()`` is the SQL condition (None when nothing is filtered).

    ``elements``: materials containing all of them; ``exclude_elements``: containing none of them;
    ``spacegroup``: space group number; ``max_sites``: at most that many sites; ``where``: see module doc.
    """

    elements: tuple[str, ...] = ()
    exclude_elements: tuple[str, ...] = ()
    spacegroup: int | None = None
    max_sites: int | None = None
    where: str | None = None
    prototype: str | None = None  # prototype label (crystalsearch.structure.prototype), exact

    @classmethod
    def make(
        cls,
        *,
        elements: str | Sequence[str] | None = None,
        exclude_elements: str | Sequence[str] | None = None,
        spacegroup: str | int | None = None,
        max_sites: int | None = None,
        where: str | None = None,
        prototype: str | None = None,
    ) -> Filters:
        """Validated filters from user values (element lists as ``"Li,O"``, space group number or symbol)."""
        number = None
        if spacegroup is not None and str(spacegroup).strip():
            from crystalsearch.structure.symmetry import resolve_spacegroup

            try:
                number = resolve_spacegroup(str(spacegroup))
            except ValueError as exc:
                raise InputError("--spacegroup", str(exc)) from None
        if max_sites is not None and max_sites < 1:
            raise InputError("--max-sites", f"must be at least 1, got {max_sites}")
        filters = cls(
            elements=parse_elements(elements),
            exclude_elements=parse_elements(exclude_elements, option="--exclude-elements"),
            spacegroup=number,
            max_sites=max_sites,
            where=where.strip() if where and where.strip() else None,
            prototype=prototype.strip() if prototype and prototype.strip() else None,
        )
        filters.condition()  # validate --where now
        return filters

    @property
    def active(self) -> bool:
        return bool(
            self.elements or self.exclude_elements or self.spacegroup or self.max_sites or self.where or self.prototype
        )

    def condition(self) -> ColumnElement[bool] | None:
        if not self.active:
            return None
        import sqlalchemy as sa

        from crystalsearch.catalog.db import Material, MaterialElement

        parts: list[ColumnElement[bool]] = []
        for el in self.elements:
            parts.append(Material.id.in_(sa.select(MaterialElement.material).where(MaterialElement.element == el)))
        if self.exclude_elements:
            excluded = sa.select(MaterialElement.material).where(MaterialElement.element.in_(self.exclude_elements))
            parts.append(Material.id.not_in(excluded))
        if self.spacegroup is not None:
            parts.append(Material.spacegroup_number == self.spacegroup)
        if self.max_sites is not None:
            parts.append(Material.nsites <= self.max_sites)
        if self.prototype is not None:
            parts.append(Material.prototype == self.prototype)
        if self.where:
            parts.append(parse_where(self.where))
        return sa.and_(*parts)

    def describe(self) -> str:
        bits = []
        if self.elements:
            bits.append("elements " + ",".join(self.elements))
        if self.exclude_elements:
            bits.append("without " + ",".join(self.exclude_elements))
        if self.spacegroup is not None:
            bits.append(f"space group {self.spacegroup}")
        if self.max_sites is not None:
            bits.append(f"<= {self.max_sites} sites")
        if self.prototype is not None:
            bits.append(f"prototype {self.prototype}")
        if self.where:
            bits.append(f"where {self.where}")
        return "; ".join(bits)
