"""Command-line interface (``crystalsearch``). Commands parse, call the library and render with rich."""

from __future__ import annotations

from crystalsearch.cli.app import app

__all__ = ["app"]
