"""``crystalsearch app``: a local, offline browser app over the library: search with known verdicts and 3D
views, material pages, property predictions with intervals, novelty of many files, a map of the catalog.

Built on Starlette + uvicorn with 3Dmol.js shipped in the package (:mod:`crystalsearch.html`); binds
127.0.0.1 and asks for the token it prints (see :mod:`crystalsearch.app.server`). ``docs/app.md`` has the
choices and their measurements.
"""

from __future__ import annotations

__all__ = ["serve"]


def __getattr__(name: str) -> object:
    if name == "serve":
        from crystalsearch.app.run import serve

        return serve
    raise AttributeError(name)
