"""`crystalsearch similar` command."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach the `similar` command to the application."""

    @app.command("similar")
    def _cmd() -> None:
        """(not yet implemented)"""
        raise typer.Exit(1)
