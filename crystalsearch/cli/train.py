"""`crystalsearch train` command."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach the `train` command to the application."""

    @app.command("train")
    def _cmd() -> None:
        """(not yet implemented)"""
        raise typer.Exit(1)
