"""One candidate's outcome in a novelty batch, and its journal form (validated when read back)."""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = ["Candidate", "load_candidate"]


@dataclass(frozen=True)
class Candidate:
    """The outcome for one candidate. ``status``: ``known``, ``novel`` or ``error`` (unreadable input).

    ``duplicate_of`` names the earlier candidate this one is the same material as (then ``status`` is that
    candidate's); ``material_id``/``rms_angstrom``: the best catalog match; ``matches``: every matching
    catalog id (more than one only where the catalog holds duplicates).
    """

    label: str
    status: str
    formula: str | None = None
    spacegroup: int | None = None
    material_id: str | None = None
    rms_angstrom: float | None = None
    matches: tuple[str, ...] = ()
    duplicate_of: str | None = None
    reason: str = ""
    pairs: int = 0  # StructureMatcher comparisons against the catalog
    vector: np.ndarray | None = field(default=None, repr=False, compare=False)
    structure: str | None = field(default=None, repr=False, compare=False)  # compact JSON, for the grouping
    loose: tuple[int, ...] | None = None  # space groups at the noise tolerances where computed (for the grouping)

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("vector", "structure", "loose")}
        out["matches"] = list(self.matches)
        out["unique"] = self.duplicate_of is None and self.status != "error"
        if self.rms_angstrom is not None:
            out["rms_angstrom"] = round(self.rms_angstrom, 5)
        return out

    def to_journal(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("vector", "duplicate_of")}
        out["matches"] = list(self.matches)
        out["loose"] = None if self.loose is None else list(self.loose)
        if self.vector is not None:
            out["vector"] = base64.b64encode(np.asarray(self.vector, dtype=np.float32).tobytes()).decode("ascii")
        return out

    @classmethod
    def from_journal(cls, data: dict[str, Any]) -> Candidate:
        """A candidate from its journal form; ValueError or TypeError when a field is missing or of another type."""
        vector = data.pop("vector", None)
        matches = data.get("matches", [])
        if not isinstance(matches, list) or not all(isinstance(m, str) for m in matches):
            raise TypeError("matches must be a list of strings")
        data["matches"] = tuple(data.get("matches", ()))
        for name, kinds in _JOURNAL_TYPES.items():
            if name in data and not isinstance(data[name], kinds):
                raise TypeError(f"{name} is {type(data[name]).__name__}")
        if data.get("status") not in ("known", "novel", "error"):
            raise ValueError(f"status {data.get('status')!r}")
        if vector is not None and not isinstance(vector, str):
            raise TypeError("vector must be base64 text")
        loose = data.get("loose")
        if loose is not None and not (isinstance(loose, (list, tuple)) and all(isinstance(n, int) for n in loose)):
            raise TypeError("loose must be a list of space-group numbers")
        data["loose"] = None if data.get("loose") is None else tuple(data["loose"])
        vec = None if vector is None else np.frombuffer(base64.b64decode(vector, validate=True), dtype=np.float32)
        return cls(**data, vector=vec)


_OPTIONAL_TEXT = (str, type(None))
_JOURNAL_TYPES: dict[str, tuple[type, ...]] = {
    "label": (str,), "status": (str,), "formula": _OPTIONAL_TEXT, "spacegroup": (int, type(None)),
    "material_id": _OPTIONAL_TEXT, "rms_angstrom": (int, float, type(None)), "reason": (str,), "pairs": (int,),
    "structure": _OPTIONAL_TEXT,
}  # fmt: skip


def load_candidate(data: dict[str, Any]) -> None:
    Candidate.from_journal(dict(data))
