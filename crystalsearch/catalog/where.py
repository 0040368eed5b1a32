"""The ``--where`` language: SQL-style conditions on index columns, compiled to parameterised SQL.

Grammar (keywords are case-insensitive; docs/cli.md has examples)::

    condition  := disjunct (OR disjunct)*
    disjunct   := negation (AND negation)*
    negation   := NOT negation | '(' condition ')' | predicate
    predicate  := value cmp value (cmp value)*              -- 1 < band_gap <= 3 chains with AND
                | value [NOT] IN '(' literal (',' literal)* ')'
                | value [NOT] BETWEEN value AND value
                | text_column [NOT] LIKE 'pattern'          -- % any run, _ one character
                | value IS [NOT] NULL                       -- also: is None / is not None
    cmp        := '=' | '==' | '!=' | '<>' | '<' | '<=' | '>' | '>='
    value      := term (('+' | '-') term)*
    term       := factor (('*' | '/') factor)*
    factor     := ('-' | '+') factor | NUMBER | 'string' | "string" | column | '(' value ')'

Columns are whitelisted (:func:`columns`; aliases such as ``K_VRH``, ``gap``, ``e_form``), strings and
numbers become bound parameters, and nothing the user typed is ever pasted into SQL. Text columns
take ``=``, ``!=``, ``IN`` and ``LIKE``; numeric columns everything but ``LIKE``. A comparison with an
unknown (NULL) property is false. Every error is one line that names the offending token and its
position: ``--where: unknown column 'colour' at character 18: band_gap > 1 AND >>colour<< = 'red'``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from crystalsearch.catalog.where_tokens import Token, tokenize, where_error
from crystalsearch.data.properties import ALIASES as PROPERTY_ALIASES
from crystalsearch.errors import InputError

if TYPE_CHECKING:
    from sqlalchemy.sql.elements import ColumnElement

__all__ = ["ALIASES", "MAX_WHERE_DEPTH", "MAX_WHERE_LENGTH", "MAX_WHERE_TOKENS", "columns", "parse_where"]

# property names and aliases from the registry, plus those of the structural columns
ALIASES = {**{k: v for k, v in PROPERTY_ALIASES.items() if k != v},
           "num_sites": "nsites", "spacegroup": "spacegroup_number", "sg": "spacegroup_number"}  # fmt: skip
# Limits on one expression: characters, tokens (every column, number, operator and parenthesis is one; they bound
# the number of nodes of the condition) and nesting (parentheses and NOT inside each other). SQLite's parser gives
# up ("parser stack overflow") on conditions nested about 100 deep; 32 leaves ample room for readable filters.
MAX_WHERE_LENGTH = 1000
MAX_WHERE_TOKENS = 400
MAX_WHERE_DEPTH = 32
_CMP = ("=", "==", "!=", "<>", "<", "<=", ">", ">=")
_POSTFIX = ("in", "between", "like")  # NOT IN, NOT BETWEEN, NOT LIKE
_HIDDEN = frozenset({"id", "label_sources"})  # row number and provenance JSON: not filterable


@cache
def columns() -> dict[str, bool]:
    """Column name -> is numeric, for every column of the index's ``materials`` table (but ``id``)."""
    from sqlalchemy import Float, Integer

    from crystalsearch.catalog.db import Material

    out = {}
    for col in Material.__table__.columns:
        if col.name not in _HIDDEN:
            out[col.name] = isinstance(col.type, (Float, Integer))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0
        self.tried: dict[int, InputError | None] = {}

    @contextmanager
    def nested(self, tok: Token) -> Iterator[None]:
        """One more level of parentheses or NOT: refused beyond :data:`MAX_WHERE_DEPTH`."""
        if self.depth >= MAX_WHERE_DEPTH:
            raise self.error(f"nested more than {MAX_WHERE_DEPTH} levels deep", tok)
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1

    # -- errors and tokens -----------------------------------------------------------------------
    def error(self, reason: str, token: Token | None = None, *, hint: str = "") -> InputError:
        return where_error(self.text, reason, token or self.peek(), hint=hint)

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def next(self) -> Token:
        tok = self.peek()
        self.i += 1
        return tok

    def at_keyword(self, *words: str) -> bool:
        tok = self.peek()
        return tok.kind == "keyword" and tok.text.lower() in words

    def at_op(self, *ops: str) -> bool:
        tok = self.peek()
        return tok.kind == "op" and tok.text in ops

    def expect_op(self, op: str, what: str) -> None:
        if not self.at_op(op):
            raise self.error(f"expected {what}")
        self.next()

    # -- conditions ------------------------------------------------------------------------------
    def parse(self) -> ColumnElement[bool]:
        if self.peek().kind == "end":
            raise InputError("--where", "empty expression")
        cond = self.condition()
        if self.peek().kind != "end":
            raise self.error(f"unexpected {self.peek().text!r} (missing AND/OR?)")
        return cond

    def condition(self) -> ColumnElement[bool]:
        import sqlalchemy as sa

        return self._joined("or", self.disjunct, sa.or_)

    def disjunct(self) -> ColumnElement[bool]:
        import sqlalchemy as sa

        return self._joined("and", self.negation, sa.and_)

    def _joined(self, word: str, part: Any, combine: Any) -> ColumnElement[bool]:
        parts = [part()]
        while self.at_keyword(word):
            self.next()
            parts.append(part())
        return parts[0] if len(parts) == 1 else combine(*parts)  # type: ignore[no-any-return]

    def negation(self) -> ColumnElement[bool]:
        import sqlalchemy as sa

        if self.at_keyword("not"):
            with self.nested(self.next()):
                return sa.not_(self.negation())
        if self.at_op("("):  # a parenthesised condition, or a parenthesised value such as (a + b) > 3
            start = self.i
            if start not in self.tried:  # each '(' is tried as a condition once only: no exponential backtracking
                self.tried[start] = None
                try:
                    with self.nested(self.next()):
                        cond = self.condition()
                        self.expect_op(")", "')'")
                    if not self._at_comparison():
                        return cond
                except InputError as exc:
                    self.tried[start] = exc
            first_error = self.tried[start]
            self.i = start
            try:
                return self.predicate()
            except InputError as exc:
                if first_error is not None and getattr(first_error, "pos", 0) > getattr(exc, "pos", 0):
                    raise first_error from None
                raise
        return self.predicate()

    def _at_comparison(self) -> bool:
        return self.at_op(*_CMP, "+", "-", "*", "/") or self.at_keyword("in", "between", "like", "is", "not")

    def predicate(self) -> ColumnElement[bool]:
        import sqlalchemy as sa

        first = self.peek()
        left = self.value()
        tok = self.peek()
        if self.at_keyword("is"):
            self.next()
            negate = self.at_keyword("not")
            if negate:
                self.next()
            if not self.at_keyword("null", "none"):
                raise self.error("expected NULL after IS")
            self.next()
            self.need_column(left, first, "IS NULL")
            return left.expr.is_not(None) if negate else left.expr.is_(None)  # type: ignore[no-any-return]
        negate = False
        if self.at_keyword("not") and self.peek(1).kind == "keyword" and self.peek(1).text.lower() in _POSTFIX:
            self.next()
            negate = True
            tok = self.peek()
        if self.at_keyword("in"):
            cond = self.in_list(left, first)
        elif self.at_keyword("between"):
            cond = self.between(left, first)
        elif self.at_keyword("like"):
            cond = self.like(left, first)
        elif self.at_op(*_CMP):
            cond = self.comparisons(left, first)
        else:
            raise self.error("expected a comparison such as band_gap > 1", tok)
        return sa.not_(cond) if negate else cond

    def comparisons(self, left: _Value, first: Token) -> ColumnElement[bool]:
        import sqlalchemy as sa

        parts = []
        while self.at_op(*_CMP):
            op = self.next()
            right_tok = self.peek()
            right = self.value()
            if not (left.column or right.column):
                raise self.error("a comparison needs a column", first)
            if left.kind != right.kind:
                raise self.error(f"cannot compare {left.kind} with {right.kind}", right_tok)
            if left.kind == "text" and op.text not in ("=", "==", "!=", "<>"):
                raise self.error("text columns support =, !=, IN and LIKE, not ordering", op)
            parts.append(_compare(left.expr, op.text, right.expr))
            left, first = right, right_tok
        return parts[0] if len(parts) == 1 else sa.and_(*parts)

    def in_list(self, left: _Value, first: Token) -> ColumnElement[bool]:
        self.need_column(left, first, "IN")
        self.next()
        self.expect_op("(", "'(' after IN")
        values = [self.literal(left.kind)]
        while self.at_op(","):
            self.next()
            values.append(self.literal(left.kind))
        self.expect_op(")", "')' or ',' in the IN list")
        return left.expr.in_(values)  # type: ignore[no-any-return]

    def between(self, left: _Value, first: Token) -> ColumnElement[bool]:
        self.need_column(left, first, "BETWEEN")
        if left.kind != "number":
            raise self.error("BETWEEN needs a numeric column", first)
        self.next()
        low_tok = self.peek()
        low = self.value()
        if not self.at_keyword("and"):
            raise self.error("expected AND in BETWEEN ... AND ...")
        self.next()
        high_tok = self.peek()
        high = self.value()
        for bound, tok in ((low, low_tok), (high, high_tok)):
            if bound.kind != "number":
                raise self.error("BETWEEN bounds must be numbers", tok)
        return left.expr.between(low.expr, high.expr)  # type: ignore[no-any-return]

    def like(self, left: _Value, first: Token) -> ColumnElement[bool]:
        if not left.column or left.kind != "text":
            raise self.error("LIKE works on text columns only (formula, crystal_system, ...)", first)
        self.next()
        tok = self.peek()
        if tok.kind != "string":
            raise self.error("LIKE needs a quoted pattern such as 'Li%'")
        self.next()
        return left.expr.like(_unquote(tok.text))  # type: ignore[no-any-return]

    def need_column(self, value: _Value, tok: Token, what: str) -> None:
        if not value.column:
            raise self.error(f"{what} needs a column on its left", tok)

    # -- values ------------------------------------------------------------------------------------
    def literal(self, kind: str) -> Any:
        tok = self.peek()
        sign = 1.0
        if self.at_op("-", "+") and self.peek(1).kind == "number":
            sign = -1.0 if self.next().text == "-" else 1.0
            tok = self.peek()
        if tok.kind == "number" and kind == "number":
            self.next()
            return sign * float(tok.text)
        if tok.kind == "string" and kind == "text":
            self.next()
            return _unquote(tok.text)
        want = "a number" if kind == "number" else "a quoted string"
        raise self.error(f"expected {want} in the IN list")

    def value(self) -> _Value:
        left = self.term()
        while self.at_op("+", "-"):
            op = self.next()
            right = self.term()
            left = _arith(self, left, op, right)
        return left

    def term(self) -> _Value:
        left = self.factor()
        while self.at_op("*", "/"):
            op = self.next()
            right = self.factor()
            left = _arith(self, left, op, right)
        return left

    def factor(self) -> _Value:
        import sqlalchemy as sa

        tok = self.peek()
        if self.at_op("-", "+"):  # a run of signs is folded into one (SQLite nests each one it is given)
            negative = False
            while self.at_op("-", "+"):
                negative ^= self.next().text == "-"
            inner = self.factor()
            if inner.kind != "number":
                raise self.error("a sign needs a number", tok)
            return _Value(-inner.expr if negative else inner.expr, "number", inner.column)
        if tok.kind == "number":
            self.next()
            return _Value(sa.literal(float(tok.text)), "number", False)
        if tok.kind == "string":
            self.next()
            return _Value(sa.literal(_unquote(tok.text)), "text", False)
        if tok.kind == "name":
            self.next()
            if self.at_op("("):
                raise self.error(f"function calls are not supported ({tok.text}(...))", tok)
            return self.column(tok)
        if self.at_op("("):
            with self.nested(self.next()):
                inner = self.value()
                self.expect_op(")", "')'")
            return inner
        if tok.kind == "end":
            raise self.error("expected a column, number or string")
        if tok.kind == "keyword" and tok.text.lower() in ("null", "none"):
            raise self.error("compare with NULL using IS NULL / IS NOT NULL", tok)
        raise self.error(f"unexpected {tok.text!r}", tok)

    def column(self, tok: Token) -> _Value:
        from crystalsearch.catalog.db import Material
        from crystalsearch.data.properties import REGISTRY

        known = columns()
        name = tok.text.lower()
        registry = {alias: p.column for p in REGISTRY for alias in (*p.aliases, p.label.lower())}
        key = ALIASES.get(name) or registry.get(name, name)
        if key not in known:
            raise self.error(f"unknown column {tok.text!r}", tok, hint=f" (columns: {', '.join(known)})")
        return _Value(getattr(Material, key), "number" if known[key] else "text", True)


@dataclass(frozen=True)
class _Value:
    expr: Any  # a SQLAlchemy column or expression
    kind: str  # "number" or "text"
    column: bool  # whether a column takes part


def _arith(parser: _Parser, left: _Value, op: Token, right: _Value) -> _Value:
    if left.kind != "number" or right.kind != "number":
        raise parser.error("arithmetic (+ - * /) needs numbers", op)
    a, b = left.expr, right.expr
    expr = {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "/": lambda: a / b}[op.text]()
    return _Value(expr, "number", left.column or right.column)


def _compare(left: Any, op: str, right: Any) -> Any:
    if op in ("=", "=="):
        return left == right
    if op in ("!=", "<>"):
        return left != right
    return {"<": left.__lt__, "<=": left.__le__, ">": left.__gt__, ">=": left.__ge__}[op](right)


def _unquote(text: str) -> str:
    quote = text[0]
    return text[1:-1].replace(quote * 2, quote)


def parse_where(text: str) -> ColumnElement[bool]:
    """SQLAlchemy condition for a ``--where`` expression; raises InputError("--where", ...) if invalid."""
    if not text or not text.strip():
        raise InputError("--where", "empty expression")
    if len(text) > MAX_WHERE_LENGTH:
        raise InputError("--where", f"expression longer than {MAX_WHERE_LENGTH} characters")
    if "\n" in text or "\r" in text:
        text = " ".join(text.split())
    parser = _Parser(text)
    if len(parser.tokens) > MAX_WHERE_TOKENS:
        raise InputError("--where", f"expression has more than {MAX_WHERE_TOKENS} tokens")
    return parser.parse()
