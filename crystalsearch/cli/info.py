"""`crystalsearch info` command."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach the `info` command to the application."""

    @app.command("info")
    def _cmd() -> None:
        """(not yet implemented)"""
        raise typer.Exit(1)
