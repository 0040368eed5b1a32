"""`crystalsearch evaluate` command."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach the `evaluate` command to the application."""

    @app.command("evaluate")
    def _cmd() -> None:
        """(not yet implemented)"""
        raise typer.Exit(1)
