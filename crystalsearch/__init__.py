"""crystalsearch: self-supervised crystal representations, similarity search and property prediction.

Heavy modules (torch, faiss, pymatgen) are imported lazily so that ``import crystalsearch`` and
``crystalsearch --help`` stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crystalsearch._version import __version__

if TYPE_CHECKING:
    from crystalsearch.identity.catalog import Catalog
    from crystalsearch.model.embed import Encoder

__all__ = ["Catalog", "Encoder", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Encoder":
        from crystalsearch.model.embed import Encoder

        return Encoder
    if name == "Catalog":
        from crystalsearch.identity.catalog import Catalog

        return Catalog
    raise AttributeError(f"module 'crystalsearch' has no attribute {name!r}")
