"""Where crystalsearch keeps things: the data home (rebuilt models and indexes) and the cache home
(graph stores, built default indexes, checksum stamps, calibrations). The one place for both."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence
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


def display_path(path: str | os.PathLike[str]) -> str:
    """``path`` as result files and reports record it: relative to the project (the package's parent folder)
    or the working directory when it lies under one, else its name alone — never an absolute path of the
    machine that wrote it."""
    p = Path(path)
    if not p.is_absolute():
        return str(path)
    project = Path(__file__).resolve().parent.parent
    for base in (project, Path.cwd().resolve()):
        try:
            return str(p.resolve().relative_to(base))
        except ValueError:
            continue
    return p.name


def command_line(argv: Sequence[str] | None = None) -> str:
    """The ``crystalsearch`` command being run, as result files record it: shell-quoted, with every absolute
    path argument (``/a/b``, ``--opt=/a/b`` or ``key=/a/b``) shown by :func:`display_path`."""
    args = sys.argv[1:] if argv is None else list(argv)
    shown = []
    for arg in args:
        key, eq, value = arg.partition("=") if "=" in arg else ("", "", arg)
        if value.startswith(os.sep):
            arg = f"{key}{eq}{display_path(value)}"
        shown.append(arg)
    return " ".join(shlex.quote(a) for a in ["crystalsearch", *shown])
