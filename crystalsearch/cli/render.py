"""Table rendering shared by the commands: numbers never cut, whole columns dropped (and named) to fit,
tab-separated full rows when stdout is not a terminal."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table


@dataclass(frozen=True)
class Column:
    """One table column: header, cells, alignment, and whether it may be dropped to fit the width."""

    header: str
    cells: list[str]
    justify: str = "left"
    optional: bool = False
    drop_order: int = 0  # among optional columns, higher numbers are dropped first
    unit: str = ""  # listed under the table as "units: header unit, ..."

    @property
    def width(self) -> int:
        return max([len(self.header), *(len(c) for c in self.cells)]) + 2


def _table(columns: Sequence[Column], *, title: str | None, caption: str | None) -> Table:
    from rich import box
    from rich.table import Table

    table = Table(title=title, caption=caption, title_justify="left", caption_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False)  # fmt: skip
    for col in columns:
        table.add_column(col.header, justify=col.justify, no_wrap=True, min_width=col.width - 2)  # type: ignore[arg-type]
    for i in range(len(columns[0].cells) if columns else 0):
        table.add_row(*(c.cells[i] for c in columns))
    return table


def _needed(console: Console, columns: Sequence[Column]) -> int:
    from rich.measure import Measurement

    wide = console.options.update(max_width=10_000)
    return Measurement.get(console, wide, _table(columns, title=None, caption=None)).maximum


def fit(console: Console, columns: Sequence[Column]) -> tuple[list[Column], list[Column]]:
    """(shown, dropped): optional columns are dropped whole, highest ``drop_order`` first, until the rest fit."""
    shown = list(columns)
    dropped: list[Column] = []
    for col in sorted((c for c in columns if c.optional), key=lambda c: -c.drop_order):
        if _needed(console, shown) <= console.width:
            break
        shown.remove(col)
        dropped.append(col)
    return shown, dropped


def print_table(
    console: Console, columns: Sequence[Column], *, title: str | None = None, notes: Sequence[str] = ()
) -> None:
    """A rich table whose columns fit ``console.width``; dropped columns are named under it. Cells are
    never truncated: a table whose required columns alone are too wide is printed wider than the console."""
    shown, dropped = fit(console, columns)
    caption = list(notes)
    units = [f"{c.header} {c.unit}" for c in shown if c.unit]
    if units:
        caption.append("units: " + ", ".join(units))
    if dropped:
        names = ", ".join(c.header for c in sorted(dropped, key=lambda c: c.drop_order))
        caption.append(f"not shown (terminal {console.width} columns wide): {names}; widen the terminal, "
                       "pipe the output (full rows) or use --json / --csv")  # fmt: skip
    table = _table(shown, title=title, caption="\n".join(caption) or None)
    width = max(console.width, _needed(console, shown))
    console.print(table, width=width, crop=False, highlight=False)


def write_tsv(header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Full rows as tab-separated values on stdout (for pipes: nothing dropped, nothing cut)."""
    out = sys.stdout
    out.write("\t".join(header) + "\n")
    for row in rows:
        out.write("\t".join("" if v is None else str(v).replace("\t", " ") for v in row) + "\n")
    out.flush()


def similarity_text(value: float) -> str:
    """4 decimals, more when needed to tell a value just below 1 from 1 (0.99997 is not 1.0000)."""
    digits = 4
    while digits < 6 and f"{value:.{digits}f}" == "1." + "0" * digits and abs(1.0 - value) >= 5e-7:
        digits += 1
    return f"{value:.{digits}f}"


def number_text(value: float | None, digits: int | None) -> str:
    """A property value with its meaningful decimals ('' when unknown)."""
    if value is None:
        return ""
    if digits is None:
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    return f"{value:.{digits}f}"
