from __future__ import annotations

from crystalsearch.cli import app

app()
