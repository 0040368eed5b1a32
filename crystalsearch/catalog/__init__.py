"""Similarity search: FAISS index of CrystalCLR embeddings + SQLite metadata of known materials.

- :class:`~crystalsearch.catalog.catalog.Catalog` opens an index and searches it (``crystalsearch.Catalog``).
- :func:`~crystalsearch.catalog.build.build_index` / :func:`~crystalsearch.catalog.build.add_to_index`
  write indexes (resumable, atomic); :func:`~crystalsearch.catalog.defaults.default_index` finds or
  builds the default one.
- :class:`~crystalsearch.catalog.filters.Filters` are evaluated in SQL (``--where`` parsed with ``ast``).
- :func:`~crystalsearch.evaluate.retrieval.evaluate_retrieval` measures recall on transformed copies.

Submodules are imported lazily (this package is imported by the CLI).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crystalsearch.catalog.build import add_to_index, build_index
    from crystalsearch.catalog.catalog import Catalog, Hit, QueryResult
    from crystalsearch.catalog.filters import Filters

__all__ = ["Catalog", "Filters", "Hit", "QueryResult", "add_to_index", "build_index"]

_WHERE = {
    "Catalog": "catalog", "Hit": "catalog", "QueryResult": "catalog", "Filters": "filters",
    "add_to_index": "build", "build_index": "build",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"crystalsearch.catalog.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'crystalsearch.catalog' has no attribute {name!r}")
