"""The journal of a novelty batch (JSON lines): a header that pins the index and the criterion, then one line per
finished file (its name, the SHA-256 of its content and its candidates), so that a re-run skips those files.

A torn or garbled last line (an interrupted write: not UTF-8, not JSON, or not a journal entry) is dropped with a
warning and its file is checked again; a damaged line before it is refused in one line naming the journal.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crystalsearch.errors import InputError

if TYPE_CHECKING:
    from crystalsearch.identity.catalog import Catalog
    from crystalsearch.identity.known import MatchCriterion

__all__ = ["JOURNAL_FORMAT", "Journal", "journal_header", "read_journal", "warn"]

JOURNAL_FORMAT = "crystalsearch-novelty/1"


def warn(message: str) -> None:
    """Print a warning line on standard error."""
    import sys

    print(message, file=sys.stderr)


def journal_header(catalog: Catalog, criterion: MatchCriterion) -> dict[str, Any]:
    """What pins a journal: the index (count, encoder, file checksums) and the match criterion."""
    m = catalog.manifest
    files = {k: v.sha256 for k, v in sorted(m.files.items())}
    ident = hashlib.sha256(json.dumps([m.count, m.encoder.hash, files], sort_keys=True).encode()).hexdigest()[:16]
    return {"journal": JOURNAL_FORMAT, "index": ident, "criterion": criterion.describe()}


def read_journal(
    path: Path, header: dict[str, Any], *, notify: Callable[[str], None], load: Callable[[dict[str, Any]], Any]
) -> list[dict[str, Any]]:
    """Lines of finished files of an earlier run (none if the journal is absent or for another index/criterion).

    A torn or garbled last line (an interrupted write) is dropped with a warning, and its file is checked again;
    a damaged line before it is refused as :class:`InputError` naming the journal and the line. ``load`` raises
    TypeError or ValueError for a candidate that does not load.
    """
    from crystalsearch.atomic import read_jsonl_numbered

    def torn(n: int) -> None:
        notify(f"warning: {path}: line {n} is torn or garbled (an interrupted write); dropped, its file is "
               "checked again")  # fmt: skip

    lines = read_jsonl_numbered(path, on_torn=torn)
    if not lines or lines[0][1] != header:
        return []
    kept = []
    for k, (n, line) in enumerate(lines[1:], 2):
        problem = _line_problem(line, load)
        if problem is None:
            kept.append(line)
        elif k == len(lines):
            torn(n)
        else:
            raise InputError(str(path), f"line {n} is not a novelty journal entry ({problem}); delete the journal "
                             "to check every file again")  # fmt: skip
    return kept


def _line_problem(line: Any, load: Callable[[dict[str, Any]], Any]) -> str | None:
    """Why ``line`` is not a journal entry (None when it is one: every candidate loads)."""
    if not isinstance(line, dict) or not {"source", "sha256", "candidates"} <= set(line):
        return "expected an object with source, sha256 and candidates"
    if not isinstance(line["source"], str) or not isinstance(line["sha256"], str):
        return "source and sha256 must be strings"
    if not isinstance(line["candidates"], list) or not all(isinstance(c, dict) for c in line["candidates"]):
        return "candidates must be a list of objects"
    for c in line["candidates"]:
        try:
            load(c)
        except (TypeError, ValueError) as exc:
            return f"a candidate does not load: {exc}"
    return None


class Journal:
    """Header and the kept lines rewritten atomically (a torn last line dropped), then one line per file."""

    def __init__(self, path: Path | None, header: dict[str, Any], kept: list[dict[str, Any]]) -> None:
        from crystalsearch.atomic import write_jsonl

        self.fh = None
        if path is not None:
            write_jsonl(path, [header, *kept])
            self.fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()

    def write(self, obj: dict[str, Any]) -> None:
        if self.fh is not None:
            self.fh.write(json.dumps(obj, separators=(",", ":")) + "\n")
            self.fh.flush()

    def close(self) -> None:
        if self.fh is not None:
            os.fsync(self.fh.fileno())
            self.fh.close()
