"""matminer fingerprint baselines of Table 1, cached on disk (featurisation is slow).

The featurizers are matminer's own, not rewritten:

* ``sitestats``: ``SiteStatsFingerprint.from_preset("CrystalNNFingerprint_ops")`` (CrystalNN site
  fingerprints, mean/std over sites), the slowest (~0.3 s per structure on one core);
* ``sine_coulomb``: ``SineCoulombMatrix(flatten=True)`` fitted on the dataset (eigenvalues, zero padded);
* ``magpie``: ``ElementProperty.from_preset("magpie")`` on the composition.

Features are computed in chunks saved as they finish, so an interrupted run resumes where it stopped.
Structures a featurizer fails on get NaN rows (replaced by column means before the random forest).
"""

from __future__ import annotations

import contextlib
import hashlib
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crystalsearch.atomic import atomic_write
from crystalsearch.paths import cache_dir
from crystalsearch.structure.graph.store import atomic_write_npz

if TYPE_CHECKING:
    from crystalsearch.data.datasets import Record

FINGERPRINTS = ("sitestats", "sine_coulomb", "magpie")
CHUNK = 100


def _featurizer(name: str, structures: Sequence[Any]) -> Callable[[Any], list[float]]:
    from matminer.featurizers.composition import ElementProperty
    from matminer.featurizers.structure import SineCoulombMatrix, SiteStatsFingerprint

    if name == "sitestats":
        ssf = SiteStatsFingerprint.from_preset("CrystalNNFingerprint_ops")
        return lambda s: ssf.featurize(s)
    if name == "sine_coulomb":
        scm = SineCoulombMatrix(flatten=True)
        scm.fit(structures)
        return lambda s: scm.featurize(s)
    if name == "magpie":
        ep = ElementProperty.from_preset("magpie")
        return lambda s: ep.featurize(s.composition)
    raise ValueError(f"unknown fingerprint {name!r}; choose from {', '.join(FINGERPRINTS)}")


def _key(records: Sequence[Record], name: str) -> str:
    h = hashlib.sha256(name.encode())
    for r in records:
        h.update(r.material_id.encode())
        h.update(np.ascontiguousarray(r.lattice).tobytes())
        h.update(np.ascontiguousarray(r.frac_coords).tobytes())
        h.update("|".join(r.species).encode())
    return h.hexdigest()[:20]


def cached_fingerprints(records: Sequence[Record], name: str, *, directory: Path | None = None) -> np.ndarray | None:
    """The finished cached matrix of ``records`` under ``name``, or ``None`` (nothing is computed)."""
    if name not in FINGERPRINTS:
        raise ValueError(f"unknown fingerprint {name!r}; choose from {', '.join(FINGERPRINTS)}")
    final = (directory or cache_dir()) / "fingerprints" / f"{name}-{_key(records, name)}.npz"
    if not final.exists():
        return None
    with np.load(final, allow_pickle=False) as data:
        return np.asarray(data["x"])


def fingerprints(
    records: Sequence[Record],
    name: str,
    *,
    directory: Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Feature matrix [n, d] of ``records`` under fingerprint ``name`` (cached, resumable)."""
    if name not in FINGERPRINTS:
        raise ValueError(f"unknown fingerprint {name!r}; choose from {', '.join(FINGERPRINTS)}")
    folder = (directory or cache_dir()) / "fingerprints"
    final = folder / f"{name}-{_key(records, name)}.npz"
    if final.exists():
        with np.load(final, allow_pickle=False) as data:
            return np.asarray(data["x"])
    work = final.with_suffix(".chunks")
    work.mkdir(parents=True, exist_ok=True)
    structures = None
    featurize = None
    chunks = []
    for start in range(0, len(records), CHUNK):
        path = work / f"{start:07d}.npy"
        if final.exists():  # another process (a background featurisation) finished meanwhile
            with np.load(final, allow_pickle=False) as data:
                x = np.asarray(data["x"])
            if progress is not None:
                progress(len(records) - start)
            return x
        if path.exists():
            chunks.append(np.load(path))
        else:
            if featurize is None:
                structures = [r.structure for r in records]
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    featurize = _featurizer(name, structures)
            assert structures is not None  # noqa: S101 - an invariant that narrows the type, not an input check
            rows = [_safe(featurize, s) for s in structures[start : start + CHUNK]]
            if failed := sum(r is None for r in rows):
                warnings.warn(f"{name}: {failed} of {len(rows)} structures could not be featurised (NaN rows)",
                              stacklevel=2)  # fmt: skip
            width = max((len(r) for r in rows if r is not None), default=0)
            arr = np.full((len(rows), width), np.nan)
            for i, r in enumerate(rows):
                if r is not None:
                    arr[i, : len(r)] = r
            atomic_write(path, lambda fh: np.save(fh, arr))  # noqa: B023 - called before the loop moves on
            chunks.append(arr)
        if progress is not None:
            progress(min(CHUNK, len(records) - start))
    width = max(c.shape[1] for c in chunks) if chunks else 0
    x = np.full((len(records), width), np.nan)
    row = 0
    for c in chunks:
        x[row : row + c.shape[0], : c.shape[1]] = c
        row += c.shape[0]
    atomic_write_npz(final, x=x)
    with contextlib.suppress(OSError):  # another process may be cleaning up the same chunks
        for p in work.glob("*.npy"):
            p.unlink(missing_ok=True)
        work.rmdir()
    return x


def _safe(featurize: Callable[[Any], list[float]], structure: Any) -> list[float] | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return list(featurize(structure))
        except (MemoryError, RecursionError):
            raise  # the machine's trouble, not the structure's
        except Exception:  # noqa: BLE001 - matminer raises many kinds for odd structures: a NaN row, counted
            return None
