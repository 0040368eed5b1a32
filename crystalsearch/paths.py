"""Where crystalsearch keeps things: the data home (rebuilt models and indexes) and the cache home
(graph stores, built default indexes, checksum stamps, calibrations). The one place for both."""

from __future__ import annotations

import os
from pathlib import Path


def data_home() -> Path:
    """``$CRYSTALSEARCH_HOME``, else ``$XDG_DATA_HOME/crystalsearch`` (default ``~/.local/share/crystalsearch``).

    ``crystalsearch train`` installs rebuilt models here (``models/``); they take precedence over the
    checkpoints shipped in the package.
    """
    env = os.environ.get("CRYSTALSEARCH_HOME")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "crystalsearch"


def user_models_dir() -> Path:
    return data_home() / "models"


def cache_dir() -> Path:
    """``$CRYSTALSEARCH_CACHE`` or ``$XDG_CACHE_HOME/crystalsearch`` (default ``~/.cache/crystalsearch``)."""
    env = os.environ.get("CRYSTALSEARCH_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "crystalsearch"
