"""Optional ``torch.compile`` with a safe fallback to eager mode."""

from __future__ import annotations

from typing import Any

import torch


class MaybeCompiled:
    """``torch.compile`` with dynamic shapes (batches differ in atoms and edges); falls back to eager
    mode if compilation fails (e.g. no C++ compiler): eager is correct, only slower."""

    def __init__(self, model: torch.nn.Module, *, enabled: bool) -> None:
        self.eager = model
        self.fn: Any = model
        if enabled:
            try:
                self.fn = torch.compile(model, dynamic=True)
            except Exception:  # noqa: BLE001
                self.fn = model

    def __call__(self, batch: Any) -> torch.Tensor:
        if self.fn is self.eager:
            return self.eager(batch)
        try:
            return self.fn(batch)
        except Exception as exc:  # noqa: BLE001 - compilation errors surface at the first call
            import warnings

            warnings.warn(f"torch.compile failed ({type(exc).__name__}); continuing in eager mode", stacklevel=2)
            self.fn = self.eager
            return self.eager(batch)
