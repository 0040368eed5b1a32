"""`crystalsearch predict` command."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach the `predict` command to the application."""

    @app.command("predict")
    def _cmd() -> None:
        """(not yet implemented)"""
        raise typer.Exit(1)
