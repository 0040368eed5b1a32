"""Opening an index folder: its manifest, verified files and FAISS vectors, consistent with each other."""

from __future__ import annotations

import time
from pathlib import Path

from crystalsearch.catalog.faiss_index import VectorIndex
from crystalsearch.catalog.manifest import INDEX_FILE, Manifest, Verify, locked, read_manifest, verify_files
from crystalsearch.errors import IndexFileError
from crystalsearch.structure.fingerprint import DIM as FP_DIM

__all__ = ["load_consistent"]


def load_consistent(folder: Path, verify: Verify, *, mmap: bool = False) -> tuple[Manifest, VectorIndex]:
    """Manifest, verified files and FAISS index that agree (rows ``[h]`` or ``[h | s]``: the encoder's
    representation, then the structure fingerprint); waits out a concurrent writer."""
    last: IndexFileError | None = None
    for attempt in range(3):
        try:
            manifest = read_manifest(folder)
            verify_files(folder, manifest, verify=verify)
            vectors = VectorIndex.read(folder / INDEX_FILE, mmap=mmap)
            dims = (manifest.encoder.dim, manifest.encoder.dim + FP_DIM)
            if vectors.ntotal != manifest.count or vectors.dim not in dims:
                raise IndexFileError(f"{folder / INDEX_FILE}: {vectors.ntotal} vectors of dim {vectors.dim}, "
                                     f"manifest says {manifest.count} of dim {manifest.encoder.dim}")  # fmt: skip
            return manifest, vectors
        except IndexFileError as exc:
            last = exc
            if attempt == 2:
                break
            if (folder / ".lock").exists():
                with locked(folder, exclusive=False):  # a writer holds it exclusively until it is done
                    pass
            old = folder.with_name(f".{folder.name}.old")
            if not old.exists() and not (folder / ".lock").exists():
                break
            time.sleep(0.1)
    assert last is not None  # noqa: S101 - an invariant that narrows the type, not an input check
    raise last
