"""Tokens of the ``--where`` language (:mod:`crystalsearch.catalog.where`) and its one-line errors that point at
the offending token: ``--where: unknown column 'colour' at character 18: band_gap > 1 AND >>colour<< = 'red'``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from crystalsearch.errors import InputError

__all__ = ["KEYWORDS", "Token", "tokenize", "where_error"]

KEYWORDS = frozenset({"and", "or", "not", "in", "between", "like", "is", "null", "none"})

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![A-Za-z_.]))
      | (?P<string>'(?:[^']|'')*'|"(?:[^"]|"")*")
      | (?P<name>[A-Za-z_][A-Za-z_0-9]*)
      | (?P<op><=|>=|==|!=|<>|[<>=+\-*/(),])
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str  # number, string, name, keyword, op, end
    text: str
    pos: int  # 0-based character offset in the expression


def where_error(text: str, reason: str, tok: Token, *, hint: str = "") -> InputError:
    """``--where: <reason> at character N: <text with >>token<< marked>`` (its ``pos``: the token's offset)."""
    if tok.kind == "end":
        err = InputError("--where", f"{reason} at the end of: {text}{hint}")
    else:
        marked = f"{text[: tok.pos]}>>{tok.text}<<{text[tok.pos + len(tok.text) :]}"
        err = InputError("--where", f"{reason} at character {tok.pos + 1}: {marked}{hint}")
    err.pos = tok.pos  # type: ignore[attr-defined]
    return err


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text`` and a final ``end`` token; an unexpected character is an InputError."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        if not text[pos:].strip():
            break
        match = _TOKEN.match(text, pos)
        start = len(text[pos:]) - len(text[pos:].lstrip()) + pos
        if match is None or match.end() == pos:
            char = text[start]
            raise where_error(text, f"unexpected character {char!r}", Token("op", char, start))
        kind = match.lastgroup or "op"
        value, at = match.group(kind), match.start(kind)
        if kind == "name" and value.lower() in KEYWORDS:
            kind = "keyword"
        tokens.append(Token(kind, value, at))
        pos = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens
