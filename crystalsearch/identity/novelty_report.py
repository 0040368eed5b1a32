"""The figures a generative-model paper reports from a novelty run: counts and rates of valid, unique, novel
and unique-and-novel candidates, broken down by space group and by element, with the criterion used.

Definitions (every rate is over all candidates, ``n``; ``*_of_valid`` over the valid ones):

- **valid**: read and checked (not an error row);
- **unique**: valid and not a duplicate of an earlier candidate (the first of each material counts);
- **novel**: valid and not a known material of the reference index(es);
- **unique and novel**: both (the S.U.N.-style count without the stability part, which needs energies).

>>> from crystalsearch.identity.novelty_report import summarise, write_chart
>>> figures = summarise(report)          # JSON-ready dict
>>> write_chart(figures, Path("novelty.png"))
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crystalsearch.identity.novelty import Candidate, NoveltyReport

__all__ = ["REPORT_FORMAT", "summarise", "write_chart"]

REPORT_FORMAT = "crystalsearch-novelty-report/1"
KINDS = ("valid", "unique", "novel", "unique_and_novel")
_ELEMENT = re.compile(r"[A-Z][a-z]?")


def _flags(c: Candidate) -> dict[str, bool]:
    valid = c.status != "error"
    unique = valid and c.duplicate_of is None
    novel = valid and c.status == "novel"
    return {"valid": valid, "unique": unique, "novel": novel, "unique_and_novel": unique and novel}


def _counts(candidates: Iterable[Candidate]) -> dict[str, Any]:
    rows = [_flags(c) for c in candidates]
    n = len(rows)
    out: dict[str, Any] = {"candidates": n}
    for kind in KINDS:
        k = sum(1 for r in rows if r[kind])
        out[kind] = k
        out[f"{kind}_rate"] = round(k / n, 6) if n else None
    valid = out["valid"]
    for kind in KINDS[1:]:
        out[f"{kind}_of_valid"] = round(out[kind] / valid, 6) if valid else None
    return out


def summarise(report: NoveltyReport) -> dict[str, Any]:
    """Counts and rates overall, per space group (at the criterion's ``symprec``) and per element."""
    candidates = list(report.candidates)
    by_group: dict[int, list[Candidate]] = {}
    by_element: dict[str, list[Candidate]] = {}
    for c in candidates:
        if c.spacegroup is not None:
            by_group.setdefault(int(c.spacegroup), []).append(c)
        for el in sorted(set(_ELEMENT.findall(c.formula or ""))):
            by_element.setdefault(el, []).append(c)
    return {
        "format": REPORT_FORMAT,
        "index": report.index,
        "criterion": report.criterion.describe(),
        "definitions": {
            "valid": "read and checked (not an error row)",
            "unique": "valid and not a duplicate of an earlier candidate",
            "novel": "valid and not a known material of the reference index",
            "unique_and_novel": "unique and novel",
            "rates": "over all candidates; *_of_valid over the valid ones",
        },
        "overall": _counts(candidates),
        "by_spacegroup": {str(k): _counts(v) for k, v in sorted(by_group.items())},
        "by_element": {k: _counts(v) for k, v in sorted(by_element.items())},
    }


def write_chart(figures: dict[str, Any], path: Path) -> None:
    """A PNG bar chart of the overall counts (valid, unique, novel, unique and novel) with their rates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from crystalsearch.atomic import atomic_write

    overall = figures["overall"]
    labels = ["valid", "unique", "novel", "unique and novel"]
    values = [overall[k] for k in KINDS]
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    bars = ax.bar(labels, values, color=["#4c72b0", "#55a868", "#c44e52", "#8172b2"])
    for bar, kind in zip(bars, KINDS):
        rate = overall[f"{kind}_rate"]
        text = f"{bar.get_height():,}" + ("" if rate is None else f"\n{100 * rate:.1f}%")
        ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("candidates")
    ax.set_ylim(0, max(values + [1]) * 1.25)
    ax.set_title(f"{overall['candidates']:,} candidates", fontsize=10)
    fig.tight_layout()
    try:
        atomic_write(path, lambda fh: fig.savefig(fh, format="png"))
    finally:
        plt.close(fig)
