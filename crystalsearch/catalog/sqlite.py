"""Opening ``metadata.sqlite``: one connection recipe for the ORM (:mod:`crystalsearch.catalog.db`) and the
fast read-only lookups (:mod:`crystalsearch.catalog.reader`), which import it without importing each other."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from urllib.parse import quote

__all__ = ["connect"]


def connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    """A sqlite3 connection: read-only (``immutable`` if the folder is not writable) or WAL read-write."""
    if readonly:
        immutable = "" if os.access(path.parent, os.W_OK) else "&immutable=1"
        uri = f"file:{quote(str(path.resolve()))}?mode=ro{immutable}"
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
    else:
        conn = sqlite3.connect(str(path), check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 30000")
    if not readonly:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
    return conn
