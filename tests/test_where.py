"""The ``--where`` language: SQL-style conditions, bound parameters, errors that point at the token."""

from __future__ import annotations

import pytest

from crystalsearch.catalog.filters import Filters, parse_where
from crystalsearch.errors import InputError


def _sql(text: str) -> str:
    return str(parse_where(text)).replace("\n", " ")


def test_sql_style_condition_from_the_readme_is_accepted() -> None:
    # SQL's `=` is equality here (Python-style `==` is accepted too).
    sql = _sql("band_gap > 1 AND crystal_system = 'cubic'")
    assert sql == "materials.band_gap > :param_1 AND materials.crystal_system = :param_2"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("spacegroup_number IN (225, 227)", "IN (__[POSTCOMPILE"),
        ("crystal_system not in ('cubic')", "NOT IN"),
        ("band_gap BETWEEN 1 AND 3", "BETWEEN :param_1 AND :param_2"),
        ("formula LIKE 'Li%'", "LIKE :formula_1"),
        ("formula NOT LIKE 'Li%'", "NOT LIKE"),
        ("NOT (band_gap > 1 OR nsites != 2)", "NOT"),
        ("melting_temperature IS NOT NULL", "IS NOT NULL"),
        ("band_gap <> 0", "!="),
        ("Tm is None", "melting_temperature IS NULL"),
    ],
)
def test_sql_operators(text: str, fragment: str) -> None:
    assert fragment in _sql(text)


def test_values_are_parameters_never_text() -> None:
    evil = "formula = 'x'' OR 1=1; DROP TABLE materials; --'"
    sql = _sql(evil)
    assert "DROP" not in sql and "OR 1" not in sql
    params = parse_where(evil).compile().params
    assert list(params.values()) == ["x' OR 1=1; DROP TABLE materials; --"]


@pytest.mark.parametrize(
    ("text", "token", "position"),
    [
        ("band_gap > 1 AND colour = 'red'", "colour", 18),
        ("band_gap > 1; DROP TABLE materials", ";", 13),
        ("formula > 'A'", ">", 9),
        ("band_gap > '1'", "'1'", 12),
        ("nsites IN (1, 'a')", "'a'", 15),
        ("band_gap LIKE 'x%'", "band_gap", 1),
        ("(band_gap > 1 AND colour = 'x')", "colour", 19),
        ("band_gap = NULL", "NULL", 12),
        ("crystal_system BETWEEN 1 AND 2", "crystal_system", 1),
        ("abs(band_gap) > 1", "abs", 1),
    ],
)
def test_errors_point_at_the_offending_token(text: str, token: str, position: int) -> None:
    with pytest.raises(InputError) as info:
        parse_where(text)
    message = str(info.value)
    assert message.startswith("--where: ") and "\n" not in message
    assert f"at character {position}: " in message and f">>{token}<<" in message


def test_incomplete_expressions_say_where() -> None:
    for text in ("band_gap BETWEEN 1", "(band_gap > 1", "band_gap >", "band_gap"):
        with pytest.raises(InputError, match="at the end of"):
            Filters.make(where=text)
