"""Node and edge features of CGCNN crystal graphs.

* Node features: the 92-dimensional CGCNN atom table (Xie & Grossman 2018), as shipped by matminer
  (``matminer/utils/data_files/cgcnn_atom_feature.json``) and copied into ``crystalsearch/data``.
  Row ``Z`` of :func:`atom_feature_table` holds the features of atomic number ``Z`` (row 0 is zero).
* Edge features: Gaussian expansion of interatomic distances, centres 0 to 8 Å in steps of 0.2 Å and
  width 0.2 Å (41 features), exactly as CGCNN's ``GaussianDistance(dmin=0, dmax=8, step=0.2)``.
"""

from __future__ import annotations

import functools
import hashlib
import json
from importlib import resources

import numpy as np

ATOM_FEATURE_DIM = 92
MAX_Z = 100
GAUSSIAN_DMIN = 0.0
GAUSSIAN_DMAX = 8.0
GAUSSIAN_STEP = 0.2
GAUSSIAN_WIDTH = 0.2


def _table_bytes() -> bytes:
    return resources.files("crystalsearch.data").joinpath("cgcnn_atom_features.json").read_bytes()


@functools.lru_cache(maxsize=1)
def atom_feature_table() -> np.ndarray:
    """The CGCNN atom table as float32 array [101, 92]; row ``Z`` is element ``Z``, row 0 is zeros."""
    raw = json.loads(_table_bytes())
    table = np.zeros((MAX_Z + 1, ATOM_FEATURE_DIM), dtype=np.float32)
    for key, values in raw.items():
        table[int(key)] = np.asarray(values, dtype=np.float32)
    return table


@functools.lru_cache(maxsize=1)
def atom_feature_table_hash() -> str:
    """SHA-256 (first 16 hex digits) of the atom table file; recorded in checkpoints."""
    return hashlib.sha256(_table_bytes()).hexdigest()[:16]


def gaussian_centers() -> np.ndarray:
    """Gaussian centres [41] in Å: ``np.arange(0, 8 + 0.2, 0.2)`` as in CGCNN."""
    return np.arange(GAUSSIAN_DMIN, GAUSSIAN_DMAX + GAUSSIAN_STEP, GAUSSIAN_STEP)


def gaussian_expand(distances: np.ndarray) -> np.ndarray:
    """Gaussian edge features [E, 41] = ``exp(-(d - mu)^2 / width^2)`` for distances [E] in Å."""
    d = np.asarray(distances, dtype=np.float64)[:, None]
    return np.exp(-((d - gaussian_centers()[None, :]) ** 2) / GAUSSIAN_WIDTH**2).astype(np.float32)
