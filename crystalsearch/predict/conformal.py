"""Calibrated prediction intervals and the out-of-distribution flag of a head ensemble (split conformal).

A head folder (``crystalsearch/models/heads/<property>/``) may hold ``calibration.json``, written by
``crystalsearch evaluate calibration --fit`` from the protocol's calibration split
(:mod:`crystalsearch.train.protocol`), which no ensemble member trained or stopped on:

- the point prediction is ``w * (ensemble mean) + (1 - w) * (composition model)``, ``w`` fitted on the
  validation split (``w = 1`` and no composition model: the ensemble mean alone), or, with
  ``stack = "residual"``, the ensemble mean corrected by a residual model (:mod:`crystalsearch.predict.stacking`);
- nonconformity score ``|t(y) - t(ŷ)| / (σ + β)`` in the head's target space ``t`` (log for moduli and
  thermal conductivity, identity otherwise), ``σ`` the members' standard deviation in that space and ``β``
  the median ``σ`` on the calibration split (``score = "absolute"``: ``|t(y) - t(ŷ)|``);
- the interval for coverage ``c`` is ``t⁻¹(t(ŷ) ± q (σ + β))`` with ``q`` the ``⌈(n + 1) c⌉``-th smallest
  calibration score (split-conformal: marginal coverage at least ``c`` for exchangeable data);
- the OOD flag fires when the members' standard deviation **in units** (``ood = "spread_units"``; the same as
  ``σ`` for properties not learnt in log space) exceeds its ``ood_quantile`` quantile on the calibration
  split. Calibrations written before it (``ood = "spread"``) keep their flag on ``σ``: in log space a wide
  relative spread marks the small values, whose errors in units are small (new shear-modulus heads: flagged
  materials' test MAE 0.65x the others' on ``σ``, 2.1x on the spread in units).

Importing this module is cheap (numpy only).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FILE = "calibration.json"
COMPOSITION_MODEL = "composition.npz"  # arrays only: crystalsearch.predict.stacking.load_composition
SCORES = ("normalised", "absolute")
OOD_STATISTICS = ("spread_units", "spread")  # members' std in units | in target space (calibrations before it)


@dataclass(frozen=True)
class Calibration:
    """What ``calibration.json`` holds (see the module docstring)."""

    property: str
    log: bool
    score: str
    beta: float
    scores: tuple[float, ...]  # sorted calibration nonconformity scores
    weight: float = 1.0  # of the ensemble mean in the point prediction
    stack: str = "blend"  # "blend" (weight) | "residual" (composition.npz holds a stacking.ResidualStack)
    ood: str = "spread"  # what the flag thresholds (OOD_STATISTICS); fit writes "spread_units"
    ood_quantile: float = 0.9
    ood_threshold: float = math.inf
    split: dict[str, Any] = field(default_factory=dict)
    floor: float | None = None  # lower bound of every interval (0 when no calibration label is negative)
    measured: dict[str, Any] = field(default_factory=dict)  # test-split numbers at fit time (model card)

    def __post_init__(self) -> None:
        if self.score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, got {self.score!r}")
        if self.stack not in ("blend", "residual"):
            raise ValueError(f"stack must be 'blend' or 'residual', got {self.stack!r}")
        if self.ood not in OOD_STATISTICS:
            raise ValueError(f"ood must be one of {OOD_STATISTICS}, got {self.ood!r}")

    def t(self, y: np.ndarray) -> np.ndarray:
        """Into the target space the scores live in."""
        return to_target(y, log=self.log)

    def t_inv(self, t: np.ndarray) -> np.ndarray:
        return from_target(t, log=self.log)

    def spread(self, members: np.ndarray) -> np.ndarray:
        """σ: members' standard deviation in target space (``members`` [m, n], in units)."""
        return member_spread(members, log=self.log)

    def scale(self, members: np.ndarray) -> np.ndarray:
        return self.spread(members) + self.beta if self.score == "normalised" else np.ones(members.shape[1])

    def bounded(self, point: np.ndarray) -> np.ndarray:
        """Point predictions raised to ``floor`` (0 for band gaps), as when the calibration was fitted."""
        return bounded(point, self.floor)

    def quantile(self, coverage: float) -> float:
        """The conformal score quantile for ``coverage`` (``inf`` when the calibration set is too small)."""
        if not 0 < coverage < 1:
            raise ValueError(f"coverage must be between 0 and 1, got {coverage}")
        n = len(self.scores)
        k = math.ceil((n + 1) * coverage)
        return math.inf if k > n else float(self.scores[k - 1])

    def interval(self, point: np.ndarray, members: np.ndarray, coverage: float) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds (units) for point predictions ``point`` [n] with members [m, n]."""
        half = self.quantile(coverage) * self.scale(members)
        centre = self.t(point)
        return bounded(self.t_inv(centre - half), self.floor), self.t_inv(centre + half)

    def disagreement(self, members: np.ndarray) -> np.ndarray:
        """What the OOD flag thresholds [n]: the members' standard deviation in units, or ``σ`` (``ood``)."""
        return member_spread(members, log=False) if self.ood == "spread_units" else self.spread(members)

    def stacked(self) -> bool:
        """Whether the point prediction needs the composition model (``composition.npz``)."""
        return self.stack == "residual" or self.weight < 1

    def covered(self, point: np.ndarray, members: np.ndarray, y: np.ndarray,
                coverage: float) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """Whether each label ``y`` [n] lies in its interval, and the interval widths [n] (units)."""
        lo, hi = self.interval(point, members, coverage)
        return (y >= lo) & (y <= hi), hi - lo

    def out_of_distribution(self, members: np.ndarray) -> np.ndarray:
        """Boolean [n]: the members disagree more than on ``1 - ood_quantile`` of calibration materials."""
        return self.disagreement(members) > self.ood_threshold

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["scores"] = [round(float(s), 6) for s in self.scores]
        return d

    @classmethod
    def from_dict(cls, d: Any) -> Calibration:
        """A calibration from its JSON form; ValueError naming the first field that is missing or out of range."""
        problem = calibration_problem(d)
        if problem is not None:
            raise ValueError(problem)
        return cls(**{**d, "scores": tuple(float(s) for s in d["scores"])})

    @classmethod
    def fit(cls, *, prop: str, log: bool, score: str, point: np.ndarray, members: np.ndarray, y: np.ndarray,
            weight: float = 1.0, stack: str = "blend", ood_quantile: float = 0.9,
            split: dict[str, Any] | None = None) -> Calibration:  # fmt: skip
        """Calibrate on the calibration split: ``point`` [n], ``members`` [m, n], labels ``y`` [n]."""
        probe = cls(prop, log, score, 0.0, ())
        sigma = probe.spread(members)
        beta = float(np.median(sigma)) + 1e-9
        probe = cls(prop, log, score, beta, (), ood="spread_units")
        scores = np.abs(probe.t(y) - probe.t(point)) / probe.scale(members)
        threshold = float(np.quantile(probe.disagreement(members), ood_quantile))
        floor = label_floor(y, log=log)  # e.g. band gaps: never below 0
        return cls(prop, log, score, beta, tuple(float(s) for s in np.sort(scores)), weight=weight, stack=stack,
                   ood=probe.ood, ood_quantile=ood_quantile, ood_threshold=threshold,
                   split=dict(split or {}), floor=floor)  # fmt: skip


def to_target(values: np.ndarray, *, log: bool) -> np.ndarray:
    """Into a head's target space: log for moduli and conductivity, identity otherwise."""
    v = np.asarray(values, dtype=np.float64)
    return np.log(np.maximum(v, 1e-12)) if log else v


def from_target(t: np.ndarray, *, log: bool) -> np.ndarray:
    return np.exp(t) if log else np.asarray(t, dtype=np.float64)


def member_spread(members: np.ndarray, *, log: bool) -> np.ndarray:
    """Members' standard deviation [n] in target space (``members`` [m, n], in units; 0 for one member)."""
    tm = to_target(members, log=log)
    return tm.std(axis=0, ddof=1) if tm.shape[0] > 1 else np.zeros(tm.shape[1])


def label_floor(y: np.ndarray, *, log: bool) -> float | None:
    """The labels' lower bound that predictions and intervals keep to: 0 for a non-log property none of
    whose labels is negative (band gaps, melting temperatures), else none."""
    return 0.0 if not log and bool(np.all(np.asarray(y) >= 0)) else None


def bounded(values: np.ndarray, floor: float | None) -> np.ndarray:
    """``values`` raised to ``floor`` (a band gap is never negative); unchanged without one."""
    return values if floor is None else np.maximum(values, floor)


def magpie_of_structures(structures: list[Any]) -> np.ndarray:
    """Magpie features of structures (NaN where matminer fails; the composition model accepts NaN)."""
    import warnings

    from matminer.featurizers.composition import ElementProperty

    ep = ElementProperty.from_preset("magpie")
    rows: list[np.ndarray | None] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for s in structures:
            try:
                rows.append(np.asarray(ep.featurize(s.composition), dtype=np.float64))
            except (ValueError, KeyError, TypeError, AttributeError):
                rows.append(None)
    width = max((len(r) for r in rows if r is not None), default=0)
    return np.stack([r if r is not None else np.full(width, np.nan) for r in rows])


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_FIELDS = frozenset(Calibration.__dataclass_fields__)
_REQUIRED = ("property", "log", "score", "beta", "scores")


def calibration_problem(d: Any) -> str | None:  # noqa: C901 - one check per field, in the file's order
    """Why ``d`` is not a valid ``calibration.json`` (None when it is): types and ranges of every field."""
    if not isinstance(d, dict):
        return "not a JSON object"
    missing = [k for k in _REQUIRED if k not in d]
    if missing:
        return f"missing {', '.join(missing)}"
    unknown = sorted(set(d) - _FIELDS)
    if unknown:
        return f"unknown field(s) {', '.join(unknown)}"
    if not isinstance(d["property"], str) or not isinstance(d["log"], bool):
        return "property must be text and log true or false"
    if d["score"] not in SCORES:
        return f"score must be one of {', '.join(SCORES)}, not {d['score']!r}"
    beta = d["beta"]
    if not _number(beta) or not math.isfinite(beta) or beta < 0 or (beta == 0 and d["score"] == "normalised"):
        return f"beta must be a finite number above 0, not {beta!r} (a negative one turns intervals inside out)"
    scores = d["scores"]
    if not isinstance(scores, list) or not all(_number(x) and math.isfinite(x) and x >= 0 for x in scores):
        return "scores must be a list of finite numbers >= 0"
    if any(a > b for a, b in zip(scores, scores[1:], strict=False)):
        return "scores must be sorted in ascending order"
    weight = d.get("weight", 1.0)
    if not _number(weight) or not 0 <= weight <= 1:
        return f"weight must be a number from 0 to 1, not {weight!r}"
    if d.get("stack", "blend") not in ("blend", "residual"):
        return f"stack must be 'blend' or 'residual', not {d.get('stack')!r}"
    if d.get("ood", "spread") not in OOD_STATISTICS:
        return f"ood must be one of {', '.join(OOD_STATISTICS)}, not {d.get('ood')!r}"
    quantile, threshold = d.get("ood_quantile", 0.9), d.get("ood_threshold", math.inf)
    if not _number(quantile) or not 0 < quantile < 1 or not _number(threshold) or threshold < 0:
        return "ood_quantile must lie between 0 and 1 and ood_threshold be a number >= 0"
    floor = d.get("floor")
    if floor is not None and (not _number(floor) or not math.isfinite(floor)):
        return f"floor must be a finite number or null, not {floor!r}"
    if not isinstance(d.get("split", {}), dict) or not isinstance(d.get("measured", {}), dict):
        return "split and measured must be JSON objects"
    return None


def heads_property(folder: Path) -> str | None:
    """The property the heads of ``folder`` predict (their ``model.json`` metadata), None when not recorded."""
    for info in [*sorted(folder.glob("seed*/model.json")), folder / "model.json"]:
        try:
            prop = json.loads(info.read_text())["metadata"]["property"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if isinstance(prop, str):
            return prop
    return None


def load_calibration(folder: str | Path, *, prop: str | None = None) -> Calibration | None:
    """The calibration of a head folder, or ``None`` (heads trained before calibration existed).

    Every field is checked (:func:`calibration_problem`), and its property must be the heads' (``prop``, by
    default the one their ``model.json`` records): :class:`~crystalsearch.errors.InputError` naming the file
    otherwise.
    """
    from crystalsearch.errors import InputError

    path = Path(folder) / FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise InputError(str(path), f"unreadable calibration ({exc})") from None
    problem = calibration_problem(data)
    if problem is not None:
        raise InputError(str(path), f"invalid calibration: {problem}")
    expected = prop or heads_property(Path(folder))
    if expected is not None and data["property"] != expected:
        raise InputError(str(path), f"calibration of {data['property']!r}, but these heads predict {expected!r}")
    return Calibration.from_dict(data)


def save_calibration(folder: str | Path, calibration: Calibration) -> Path:
    from crystalsearch.atomic import atomic_write_json

    path = Path(folder) / FILE
    atomic_write_json(path, calibration.to_dict())
    return path
