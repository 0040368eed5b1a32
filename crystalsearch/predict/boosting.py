"""Gradient-boosted regression trees as plain arrays: what a heads folder's composition model is on disk.

A fitted scikit-learn ``HistGradientBoostingRegressor`` is, for prediction, a baseline plus a sum of binary
trees. :class:`TreeEnsemble` holds exactly that — per node the split feature, the threshold, where missing
values go, the children and the leaf value — and predicts as scikit-learn does: a sample goes left when its
feature is at most the threshold, NaN follows the node's ``missing_go_to_left``, and the leaf values are added
to the baseline tree by tree in fitting order (so the sums, and so the predictions, are the same to the bit).
Regressors with a non-identity link (Poisson, gamma) or categorical splits are refused when exporting.

The arrays are saved with :func:`numpy.savez_compressed` and read with ``np.load(allow_pickle=False)``:
reading a model file never runs code. :func:`TreeEnsemble.from_arrays` validates what it reads (shapes,
dtypes, children after their parent, features in range), so a malformed file is refused with one line.

Importing this module is cheap (numpy only; scikit-learn is needed only to export a fitted regressor).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

IDENTITY_LOSSES = ("squared_error", "absolute_error", "quantile")  # losses whose link is the identity
NODE_FIELDS = ("feature", "threshold", "left", "right", "value", "is_leaf", "missing_left")
_KINDS = {"feature": "i", "threshold": "f", "left": "i", "right": "i", "value": "f", "is_leaf": "b",
          "missing_left": "b"}  # fmt: skip


@dataclass(frozen=True, eq=False)
class TreeEnsemble:
    """A baseline plus regression trees, nodes of all trees concatenated (tree ``t`` owns nodes
    ``offsets[t]:offsets[t + 1]``; ``left``/``right`` index within the tree, as scikit-learn's)."""

    baseline: float
    n_features: int
    offsets: np.ndarray  # [n_trees + 1] int64
    feature: np.ndarray  # [n_nodes] int64: split feature
    threshold: np.ndarray  # [n_nodes] float64: go left when x <= threshold
    left: np.ndarray  # [n_nodes] int64
    right: np.ndarray  # [n_nodes] int64
    value: np.ndarray  # [n_nodes] float64: leaf value
    is_leaf: np.ndarray  # [n_nodes] bool
    missing_left: np.ndarray  # [n_nodes] bool: where NaN goes

    @property
    def n_trees(self) -> int:
        return len(self.offsets) - 1

    def __repr__(self) -> str:
        return f"TreeEnsemble(n_trees={self.n_trees}, n_nodes={len(self.value)}, n_features={self.n_features})"

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predictions [n] for features ``x`` [n, n_features] (NaN allowed: it follows ``missing_left``)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected features of shape (n, {self.n_features}), got {x.shape}")
        out = np.zeros(len(x))
        out += self.baseline
        for t in range(self.n_trees):
            out += self.value[self._leaves(x, int(self.offsets[t]))]
        return out

    def _leaves(self, x: np.ndarray, root: int) -> np.ndarray:
        """The leaf (global node index) each row of ``x`` reaches in the tree rooted at ``root``."""
        node = np.full(len(x), root, dtype=np.int64)
        inner = np.nonzero(~self.is_leaf[node])[0]
        while len(inner):
            at = node[inner]
            v = x[inner, self.feature[at]]
            go_left = np.where(np.isnan(v), self.missing_left[at], v <= self.threshold[at])
            node[inner] = root + np.where(go_left, self.left[at], self.right[at])
            inner = inner[~self.is_leaf[node[inner]]]
        return node

    @classmethod
    def from_sklearn(cls, model: Any) -> TreeEnsemble:
        """Export a fitted ``HistGradientBoostingRegressor`` (numeric features, identity link)."""
        loss = getattr(model, "loss", None)
        if type(model).__name__ != "HistGradientBoostingRegressor" or loss not in IDENTITY_LOSSES:
            raise ValueError(f"only HistGradientBoostingRegressor with loss in {IDENTITY_LOSSES} can be exported, "
                             f"got {type(model).__name__} (loss={loss!r})")  # fmt: skip
        if getattr(model, "is_categorical_", None) is not None or getattr(model, "_preprocessor", None) is not None:
            raise ValueError("categorical features cannot be exported (the composition models use none)")
        if model.n_trees_per_iteration_ != 1:
            raise ValueError(f"expected one tree per iteration, got {model.n_trees_per_iteration_}")
        nodes = [predictor.nodes for (predictor,) in model._predictors]
        if any(bool(n["is_categorical"].any()) for n in nodes):
            raise ValueError("the regressor has categorical splits, which cannot be exported")
        if not nodes:
            raise ValueError("the regressor has no trees")
        cat = np.concatenate(nodes)
        sizes = [len(n) for n in nodes]

        def col(name: str, dtype: Any) -> np.ndarray:
            return np.asarray(cat[name], dtype=dtype)

        return cls.validated(
            baseline=float(np.asarray(model._baseline_prediction).ravel()[0]),
            n_features=int(model.n_features_in_),
            offsets=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
            feature=col("feature_idx", np.int64), threshold=col("num_threshold", np.float64),
            left=col("left", np.int64), right=col("right", np.int64), value=col("value", np.float64),
            is_leaf=col("is_leaf", bool), missing_left=col("missing_go_to_left", bool),
        )  # fmt: skip

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """The arrays to save, keyed ``<prefix>.<field>``."""
        out = {f"{prefix}.baseline": np.array(self.baseline, dtype=np.float64),
               f"{prefix}.n_features": np.array(self.n_features, dtype=np.int64),
               f"{prefix}.offsets": self.offsets}  # fmt: skip
        out.update({f"{prefix}.{name}": getattr(self, name) for name in NODE_FIELDS})
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], prefix: str) -> TreeEnsemble:
        """Read what :meth:`arrays` wrote; ``ValueError`` (naming the problem) when anything is off."""

        def get(name: str) -> np.ndarray:
            key = f"{prefix}.{name}"
            if key not in arrays:
                raise ValueError(f"missing array {key!r}")
            return np.asarray(arrays[key])

        scalars = {}
        for name, kind in (("baseline", "f"), ("n_features", "i")):
            a = get(name)
            if a.shape != () or a.dtype.kind != kind:
                raise ValueError(f"{prefix}.{name}: expected a scalar of kind {kind!r}, got {a.dtype} {a.shape}")
            scalars[name] = a.item()
        nodes = {name: get(name) for name in NODE_FIELDS}
        for name, a in nodes.items():
            if a.dtype.kind != _KINDS[name]:
                raise ValueError(f"{prefix}.{name}: expected dtype kind {_KINDS[name]!r}, got {a.dtype}")
        return cls.validated(baseline=float(scalars["baseline"]), n_features=int(scalars["n_features"]),
                             offsets=get("offsets"), **nodes)  # fmt: skip

    @classmethod
    def validated(cls, *, baseline: float, n_features: int, offsets: np.ndarray, **nodes: np.ndarray) -> TreeEnsemble:
        """An ensemble whose arrays are checked to describe finite trees (every child after its parent, inside
        its own tree), so prediction always ends at a leaf; ``ValueError`` otherwise."""
        arrays = {name: np.ascontiguousarray(nodes[name], dtype=_dtype(name)) for name in NODE_FIELDS}
        n = len(arrays["value"])
        offsets = np.asarray(offsets, dtype=np.int64)
        if any(a.ndim != 1 or len(a) != n for a in arrays.values()):
            raise ValueError("node arrays differ in length")
        if not np.isfinite(baseline) or n_features < 1:
            raise ValueError(f"bad baseline {baseline} or feature count {n_features}")
        if offsets.ndim != 1 or len(offsets) < 1 or offsets[0] != 0 or offsets[-1] != n or np.any(np.diff(offsets) < 1):
            raise ValueError("tree offsets do not partition the nodes")
        tree = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
        local = np.arange(n) - offsets[:-1][tree]
        size = np.diff(offsets)[tree]
        inner = ~arrays["is_leaf"]
        for side in ("left", "right"):
            child = arrays[side][inner]
            if np.any(child <= local[inner]) or np.any(child >= size[inner]):
                raise ValueError(f"a {side} child is not a later node of its tree")
        if np.any(arrays["feature"][inner] < 0) or np.any(arrays["feature"][inner] >= n_features):
            raise ValueError("a split feature is out of range")
        if not np.all(np.isfinite(arrays["value"][~inner])):
            raise ValueError("a leaf value is not finite")
        return cls(baseline=float(baseline), n_features=int(n_features), offsets=offsets, **arrays)


def _dtype(name: str) -> Any:
    return {"i": np.int64, "f": np.float64, "b": bool}[_KINDS[name]]
