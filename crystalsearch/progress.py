"""A rich progress display for the evaluations (or a silent stand-in under ``--json``)."""

from __future__ import annotations

from typing import Any


class Progress:
    """``with Progress(enabled) as p: advance = p.task("...", total); advance(1); p.log("...")``."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.bar: Any = None

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self.bar = RichProgress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TimeRemainingColumn(), console=Console(stderr=True), transient=False,
            )  # fmt: skip
            self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None

    def task(self, description: str, total: int) -> Task:
        """A new bar; call the result to advance it, ``.complete()`` to fill it (e.g. after a cache hit)."""
        return Task(self.bar, description, total)

    def log(self, message: str) -> None:
        if self.bar is not None:
            self.bar.console.print(message, highlight=False)


class Task:
    """One bar of a :class:`Progress` (inert when the display is off)."""

    def __init__(self, bar: Any, description: str, total: int) -> None:
        self.bar, self.total = bar, max(total, 1)
        self.id = bar.add_task(description, total=self.total) if bar is not None else None

    def __call__(self, n: int) -> None:
        if self.bar is not None:
            self.bar.advance(self.id, n)

    def complete(self) -> None:
        if self.bar is not None:
            self.bar.update(self.id, completed=self.total)
