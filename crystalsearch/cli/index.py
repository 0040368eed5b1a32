"""`crystalsearch index` command."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach the `index` command to the application."""

    @app.command("index")
    def _cmd() -> None:
        """(not yet implemented)"""
        raise typer.Exit(1)
