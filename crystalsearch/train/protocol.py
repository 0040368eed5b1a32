"""The evaluation protocol of shipped property heads: one fixed split per property, shared by every member.

For each head property of the registry (:data:`crystalsearch.data.properties.PROPERTIES`) the labelled records of
its dataset are split once, with :data:`SPLIT_SEED`, into

- ``train`` (70%): what every ensemble member learns from (optionally capped with a seeded subset,
  :meth:`ProtocolSplit.capped`, for CPU-sized runs — the other three parts never change with the cap);
- ``val`` (10%): early stopping and the learning rate, and the weight of a stacked composition model;
- ``calib`` (10%): split-conformal calibration of the prediction interval and the threshold of the
  out-of-distribution flag — no member ever trains or stops on it;
- ``test`` (10%): the one number each model card reports (ensemble test MAE, RF on Magpie on the same split).

The split is by material; for ``compositional`` properties (thermal conductivity, melting temperature:
labels that belong to a formula) all polymorphs of a reduced formula land in the same part. Ensemble
members differ only by the seed of their initialisation and batch order, never by split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from crystalsearch.data.records import Dataset

__all__ = ["FRACTIONS", "PARTS", "SPLIT_SEED", "ProtocolSplit", "protocol_split"]

SPLIT_SEED = 14  # fixed for every shipped head; never change it (test sets would move)
FRACTIONS = (0.7, 0.1, 0.1, 0.1)  # train, val, calib, test
PARTS = ("train", "val", "calib", "test")


@dataclass(frozen=True, eq=False)
class ProtocolSplit:
    """Sorted record indices (into ``dataset``) of the four parts; all labelled, pairwise disjoint."""

    head: str  # the property's head name (registry)
    dataset: str
    column: str
    by_formula: bool
    train: np.ndarray
    val: np.ndarray
    calib: np.ndarray
    test: np.ndarray
    n_train_full: int = 0  # size of the uncapped training part (0: not capped)

    def part(self, name: str) -> np.ndarray:
        if name not in PARTS:
            raise ValueError(f"unknown part {name!r}; choose from {', '.join(PARTS)}")
        return np.asarray(getattr(self, name))

    def capped(self, max_train: int) -> ProtocolSplit:
        """The same split with ``train`` reduced to a seeded random subset of ``max_train`` (0 = all)."""
        if not max_train or max_train >= len(self.train):
            return self
        rng = np.random.default_rng([SPLIT_SEED, 1])
        keep = np.sort(rng.choice(self.train, size=max_train, replace=False))
        return ProtocolSplit(self.head, self.dataset, self.column, self.by_formula, keep, self.val,
                             self.calib, self.test, n_train_full=len(self.train))  # fmt: skip

    @property
    def used(self) -> np.ndarray:
        """Every record index in one of the parts, sorted."""
        return np.sort(np.concatenate([self.train, self.val, self.calib, self.test]))

    def to_dict(self) -> dict[str, Any]:
        """What model cards and results record about the split."""
        return {
            "seed": SPLIT_SEED, "fractions": list(FRACTIONS), "dataset": self.dataset, "column": self.column,
            "by_formula": self.by_formula, **{f"n_{p}": len(self.part(p)) for p in PARTS},
            "n_train_full": self.n_train_full or len(self.train),
        }  # fmt: skip


def protocol_split(prop: str, *, dataset: Dataset | None = None) -> ProtocolSplit:
    """The fixed split of head property ``prop`` (its dataset from the registry unless given)."""
    from crystalsearch.data import datasets
    from crystalsearch.data.records import make_split
    from crystalsearch.train.finetune import property_spec

    spec = property_spec(prop)
    ds = dataset if dataset is not None else datasets.load(spec.dataset)
    y = ds.targets(spec.column)
    labelled = np.flatnonzero(np.isfinite(y))
    groups = [ds.records[int(i)].reduced_formula for i in labelled] if spec.compositional else None
    tr, va, ca, te = FRACTIONS
    outer = make_split(len(labelled), seed=SPLIT_SEED, fractions=(tr + va, ca, te), groups=groups)
    inner_groups = None if groups is None else [groups[int(i)] for i in outer.train]
    inner = make_split(len(outer.train), seed=SPLIT_SEED + 1, fractions=(tr / (tr + va), va / (tr + va), 0.0),
                       groups=inner_groups)  # fmt: skip
    fit = outer.train
    parts = [fit[inner.train], fit[inner.val], outer.val, outer.test]
    train, val, calib, test = (np.sort(labelled[p]).astype(np.int64) for p in parts)
    return ProtocolSplit(spec.name, ds.name, spec.column, spec.compositional, train, val, calib, test)
