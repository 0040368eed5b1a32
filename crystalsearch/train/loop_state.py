"""A fine-tuning member's resume state: written after every epoch, read by a run that continues it.

It holds tensors and plain values only (weights, optimiser, schedule, best weights, patience count, epoch, the
batch-order RNG state as JSON text, the wall and CPU seconds spent so far) and is read with
``weights_only=True``, so loading it runs no code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from crystalsearch.errors import CheckpointError

if TYPE_CHECKING:
    from crystalsearch.model.cgcnn import PropertyModel

__all__ = ["LOOP_KEYS", "read_loop", "save_loop", "spent"]


def save_loop(path: Path, *, model: PropertyModel, opt: torch.optim.Optimizer,
              sched: torch.optim.lr_scheduler.LRScheduler | None, best: float, best_state: dict[str, Any],
              since: int, epoch: int, rng: np.random.Generator, elapsed_s: float = 0.0,
              cpu_s: float = 0.0) -> None:  # fmt: skip
    """Write the state of a member after ``epoch`` to ``path`` (atomically: an interruption leaves the previous
    epoch's state)."""
    from crystalsearch.atomic import atomic_write

    state = {"model": model.state_dict(), "optimizer": opt.state_dict(),
             "schedule": None if sched is None else sched.state_dict(), "best": best, "best_state": best_state,
             "since": since, "epoch": epoch, "rng": json.dumps(rng.bit_generator.state),
             "elapsed_s": elapsed_s, "cpu_s": cpu_s}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda fh: torch.save(state, fh))


LOOP_KEYS = ("model", "optimizer", "schedule", "best", "best_state", "since", "epoch", "rng")


def read_loop(path: Path) -> dict[str, Any]:
    """A member's resume state as :func:`save_loop` wrote it: tensors and plain values only, read with
    ``weights_only=True`` (the batch-order RNG state is a JSON string); :class:`CheckpointError` naming the
    file when it is anything else."""
    from crystalsearch.model.checkpoint import load_tensors

    state = load_tensors(path, what="resume state")
    missing = [k for k in LOOP_KEYS if k not in state]
    try:
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        rng = json.loads(state["rng"]) if isinstance(state["rng"], str) else state["rng"]
        if not isinstance(rng, dict):
            raise ValueError("malformed rng state")
        return {
            **state,
            "rng": rng,
            "elapsed_s": float(state.get("elapsed_s", 0.0)),
            "cpu_s": float(state.get("cpu_s", 0.0)),
        }
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: cannot resume from it ({exc})") from None


def spent(path: Path) -> tuple[float, float]:
    """Wall and CPU seconds a member's resume state at ``path`` records over every process that ran it
    (``(0.0, 0.0)`` when there is none)."""
    if not path.is_file():
        return 0.0, 0.0
    state = read_loop(path)
    return state["elapsed_s"], state["cpu_s"]
