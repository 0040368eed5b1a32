"""The ``--where`` language: SQL-style conditions, bound parameters, errors that point at the token."""

from __future__ import annotations

import pytest

from crystalsearch.catalog.filters import Filters, parse_where
from crystalsearch.catalog.where import MAX_WHERE_DEPTH, MAX_WHERE_LENGTH, MAX_WHERE_TOKENS
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


def _run_in_sqlite(text: str) -> list[object]:
    """Execute the condition on an empty ``materials`` table in SQLite, the engine an index uses."""
    import sqlalchemy as sa

    from crystalsearch.catalog.db import Material

    engine = sa.create_engine("sqlite://")
    Material.metadata.create_all(engine)
    with engine.connect() as conn:
        return list(conn.execute(sa.select(Material.id).where(parse_where(text))))


def _nested_arithmetic(depth: int) -> str:
    expr = "band_gap"
    for i in range(depth):
        expr = f"({expr} {'+ 1' if i % 2 else '* 2'})"
    return expr + " > 1"


def _nested_conditions(depth: int) -> str:
    expr = "band_gap > 1"
    for i in range(depth):
        expr = f"nsites > 1 {'AND' if i % 2 else 'OR'} ({expr})"
    return expr


@pytest.mark.parametrize(
    "text",
    [
        "band_gap > " + "-" * 50 + "1",  # a run of signs is one sign for SQLite (it overflowed its parser stack)
        "-" * 60 + "band_gap < 1",
        "band_gap > " + " - ".join(["-" * 20 + "(1)"] * 5),
        _nested_arithmetic(MAX_WHERE_DEPTH),
        _nested_conditions(MAX_WHERE_DEPTH),
        "(" * MAX_WHERE_DEPTH + "band_gap" + ")" * MAX_WHERE_DEPTH + " > 1",
        "NOT " * MAX_WHERE_DEPTH + "band_gap > 1",
    ],
)
def test_expressions_within_the_limits_run_in_sqlite(text: str) -> None:
    assert _run_in_sqlite(text) == []


@pytest.mark.parametrize(
    "text",
    [
        "(" * 190 + "band_gap > 1" + ")" * 190,
        "(" * (MAX_WHERE_DEPTH + 1) + "band_gap" + ")" * (MAX_WHERE_DEPTH + 1) + " > 1",
        _nested_arithmetic(MAX_WHERE_DEPTH + 1),
        _nested_conditions(MAX_WHERE_DEPTH + 1),
        "NOT " * (MAX_WHERE_DEPTH + 1) + "band_gap > 1",
    ],
)
def test_deeper_nesting_is_refused_in_one_line(text: str) -> None:
    with pytest.raises(InputError, match=f"nested more than {MAX_WHERE_DEPTH} levels deep") as err:
        parse_where(text)
    assert "\n" not in str(err.value)


def test_long_and_many_token_expressions_are_refused_in_one_line() -> None:
    with pytest.raises(InputError, match=f"longer than {MAX_WHERE_LENGTH} characters"):
        parse_where("band_gap > 1 AND " * 80 + "nsites > 1")
    with pytest.raises(InputError, match=f"more than {MAX_WHERE_TOKENS} tokens"):
        parse_where("1+" * 250 + "1 < band_gap")


def test_parentheses_around_a_value_do_not_backtrack_exponentially() -> None:
    import time

    t0 = time.perf_counter()
    parse_where("(" * MAX_WHERE_DEPTH + "band_gap" + ")" * MAX_WHERE_DEPTH + " > 1")
    assert time.perf_counter() - t0 < 5.0  # 2**32 attempts without memoised backtracking
