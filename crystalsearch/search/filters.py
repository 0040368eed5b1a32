"""Search filters, evaluated in SQL: elements, excluded elements, space group, size and ``--where``.

``--where`` takes a Python-like boolean expression over whitelisted columns, e.g.
``band_gap > 1 and bulk_modulus_vrh < 100``, ``1 < band_gap < 3``, ``not (crystal_system == "cubic")``,
``bulk_modulus_vrh / shear_modulus_vrh > 1.75``, ``melting_temperature is not None``. It is parsed
with :mod:`ast` and turned into a SQLAlchemy expression node by node: only column names from
:data:`WHERE_COLUMNS` (and a few aliases), numbers, quoted strings (compared with ``==``/``!=`` to
text columns), ``None`` (with ``is``/``is not``), comparisons, ``+ - * /``, ``and``/``or``/``not`` and
parentheses are accepted. Values are bound parameters; nothing is ever pasted into SQL. A comparison
with an unknown (NULL) property is false, so ``band_gap > 1`` skips materials without a band gap.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crystalsearch.errors import InputError

if TYPE_CHECKING:
    from sqlalchemy.sql.elements import ColumnElement

__all__ = ["NUMERIC_COLUMNS", "TEXT_COLUMNS", "WHERE_COLUMNS", "Filters", "parse_elements", "parse_where"]

NUMERIC_COLUMNS: tuple[str, ...] = (
    "nsites", "nelements", "spacegroup_number", "density", "volume_per_atom",
    "formation_energy_per_atom", "band_gap", "efermi", "bulk_modulus_vrh", "shear_modulus_vrh",
    "thermal_conductivity", "melting_temperature",
)  # fmt: skip
TEXT_COLUMNS: tuple[str, ...] = (
    "material_id", "formula", "reduced_formula", "chemsys", "spacegroup_symbol", "crystal_system", "source",
)  # fmt: skip
WHERE_COLUMNS = NUMERIC_COLUMNS + TEXT_COLUMNS
ALIASES = {
    "k_vrh": "bulk_modulus_vrh", "bulk_modulus": "bulk_modulus_vrh", "g_vrh": "shear_modulus_vrh",
    "shear_modulus": "shear_modulus_vrh", "e_form": "formation_energy_per_atom",
    "formation_energy": "formation_energy_per_atom", "gap": "band_gap", "num_sites": "nsites",
    "spacegroup": "spacegroup_number", "sg": "spacegroup_number", "kappa": "thermal_conductivity",
    "tm": "melting_temperature", "melting_point": "melting_temperature",
}  # fmt: skip
MAX_WHERE_LENGTH = 1000
MAX_WHERE_NODES = 200


def _where_error(reason: str) -> InputError:
    return InputError("--where", reason)


class _Compiler:
    def __init__(self, text: str) -> None:
        from crystalsearch.search.db import Material

        self.text = text
        self.table = Material

    def column(self, name: str) -> tuple[Any, bool]:
        key = ALIASES.get(name.lower(), name.lower())
        if key not in WHERE_COLUMNS:
            raise _where_error(f"unknown column {name!r}; use one of: {', '.join(WHERE_COLUMNS)}")
        return getattr(self.table, key), key in NUMERIC_COLUMNS

    def value(self, node: ast.expr) -> tuple[Any, str]:
        """An operand as (SQL expression or Python value, kind) with kind in number/text/none/column."""
        import sqlalchemy as sa

        if isinstance(node, ast.Name):
            col, numeric = self.column(node.id)
            return col, "number" if numeric else "text"
        if isinstance(node, ast.Constant):
            v = node.value
            if v is None:
                return None, "none"
            if isinstance(v, bool) or not isinstance(v, (int, float, str)):
                raise _where_error(f"unsupported value {v!r} (numbers and quoted strings only)")
            return (sa.literal(v), "text") if isinstance(v, str) else (sa.literal(float(v)), "number")
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            inner, kind = self.value(node.operand)
            if kind != "number":
                raise _where_error("unary minus needs a number")
            return (-inner if isinstance(node.op, ast.USub) else inner), "number"
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
            left, lk = self.value(node.left)
            right, rk = self.value(node.right)
            if lk != "number" or rk != "number":
                raise _where_error("arithmetic (+ - * /) needs numeric columns or numbers")
            ops = {ast.Add: left + right, ast.Sub: left - right, ast.Mult: left * right}
            return ops.get(type(node.op), left / right), "number"
        raise _where_error(f"unsupported expression {ast.unparse(node)!r}")

    def condition(self, node: ast.expr) -> ColumnElement[bool]:
        import sqlalchemy as sa

        if isinstance(node, ast.BoolOp):
            parts = [self.condition(v) for v in node.values]
            return sa.and_(*parts) if isinstance(node.op, ast.And) else sa.or_(*parts)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return sa.not_(self.condition(node.operand))
        if isinstance(node, ast.Compare):
            parts = []
            left = node.left
            for op, right in zip(node.ops, node.comparators):
                parts.append(self.compare(left, op, right))
                left = right
            return sa.and_(*parts) if len(parts) > 1 else parts[0]
        raise _where_error(f"expected a comparison, got {ast.unparse(node)!r} (e.g. band_gap > 1)")

    def compare(self, left_node: ast.expr, op: ast.cmpop, right_node: ast.expr) -> ColumnElement[bool]:
        left, lk = self.value(left_node)
        right, rk = self.value(right_node)
        if isinstance(op, (ast.Is, ast.IsNot)):
            if rk != "none" or lk == "none":
                raise _where_error("'is' / 'is not' only compare a column with None")
            return left.is_(None) if isinstance(op, ast.Is) else left.is_not(None)
        if "none" in (lk, rk):
            raise _where_error("compare with None using 'is None' / 'is not None'")
        if not any(isinstance(n, ast.Name) for side in (left_node, right_node) for n in ast.walk(side)):
            raise _where_error(f"{ast.unparse(left_node)} ... {ast.unparse(right_node)}: a comparison needs a column")
        if lk != rk:
            raise _where_error(
                f"cannot compare text with a number in {ast.unparse(left_node)} ... {ast.unparse(right_node)}"
            )
        ordering = {ast.Lt: "__lt__", ast.LtE: "__le__", ast.Gt: "__gt__", ast.GtE: "__ge__"}
        if isinstance(op, ast.Eq):
            return left == right  # type: ignore[no-any-return]
        if isinstance(op, ast.NotEq):
            return left != right  # type: ignore[no-any-return]
        if type(op) in ordering:
            if lk == "text":
                raise _where_error("text columns support only == and !=")
            return getattr(left, ordering[type(op)])(right)  # type: ignore[no-any-return]
        raise _where_error(f"unsupported operator {type(op).__name__} (use <, <=, >, >=, ==, !=)")


def parse_where(text: str) -> ColumnElement[bool]:
    """SQLAlchemy condition for a ``--where`` expression; raises InputError("--where", ...) if invalid."""
    if not text or not text.strip():
        raise _where_error("empty expression")
    if len(text) > MAX_WHERE_LENGTH:
        raise _where_error(f"expression longer than {MAX_WHERE_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        if re.search(r"(?<![<>=!])=(?!=)", text):
            raise _where_error(f'{text!r}: use == for equality (e.g. crystal_system == "cubic")') from None
        raise _where_error(f"{text!r}: invalid syntax ({exc.msg})") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_WHERE_NODES:
        raise _where_error(f"expression has more than {MAX_WHERE_NODES} parts")
    return _Compiler(text).condition(tree.body)


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

    @classmethod
    def make(
        cls,
        *,
        elements: str | Sequence[str] | None = None,
        exclude_elements: str | Sequence[str] | None = None,
        spacegroup: str | int | None = None,
        max_sites: int | None = None,
        where: str | None = None,
    ) -> Filters:
        """Validated filters from user values (element lists as ``"Li,O"``, space group number or symbol)."""
        number = None
        if spacegroup is not None and str(spacegroup).strip():
            from crystalsearch.search.symmetry import resolve_spacegroup

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
        )
        filters.condition()  # validate --where now
        return filters

    @property
    def active(self) -> bool:
        return bool(self.elements or self.exclude_elements or self.spacegroup or self.max_sites or self.where)

    def condition(self) -> ColumnElement[bool] | None:
        if not self.active:
            return None
        import sqlalchemy as sa

        from crystalsearch.search.db import Material, MaterialElement

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
        if self.where:
            bits.append(f"where {self.where}")
        return "; ".join(bits)
