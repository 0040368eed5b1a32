"""Optional ``torch.compile`` that falls back to eager mode only when compiling itself fails."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch


def compile_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "this model could not be compiled" (no C++ compiler, a backend or Dynamo bug),
    as opposed to errors of the model itself (shape bugs, out of memory), which must surface."""
    import torch._dynamo.exc as dynamo

    kinds: list[type[BaseException]] = [
        dynamo.BackendCompilerFailed, dynamo.InternalTorchDynamoError, dynamo.RecompileError,
    ]  # fmt: skip
    try:
        import torch._inductor.exc as inductor

        kinds += [getattr(inductor, n) for n in ("InductorError", "CppCompileError") if hasattr(inductor, n)]
    except ImportError:  # pragma: no cover - torch builds without inductor
        pass
    return tuple(kinds)


class MaybeCompiled:
    """``torch.compile`` with dynamic shapes (batches differ in atoms and edges).

    If compiling fails (at construction, or on a call, where ``torch.compile`` really compiles), the
    model runs eagerly from then on, with one warning. Any other error of a call — a shape bug, an
    out-of-memory error — is raised as it is, and the call is not repeated (batch-norm statistics would
    otherwise update twice).
    """

    def __init__(
        self, model: torch.nn.Module, *, enabled: bool, backend: str | Callable[..., Any] = "inductor"
    ) -> None:
        self.eager = model
        self.fn: Any = model
        self.fallback_reason: str | None = None
        if enabled:
            try:
                self.fn = torch.compile(model, dynamic=True, backend=backend)
            except RuntimeError as exc:  # e.g. unsupported Python or platform (compile errors are RuntimeErrors)
                self._fall_back(exc)

    def _fall_back(self, exc: BaseException) -> None:
        cause = getattr(exc, "inner_exception", None) or exc.__cause__ or exc  # what the backend raised
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
        self.fallback_reason = f"{type(exc).__name__}: {type(cause).__name__}: {first}"
        warnings.warn(f"torch.compile failed ({self.fallback_reason}); continuing in eager mode", stacklevel=3)
        self.fn = self.eager

    def __call__(self, batch: Any) -> torch.Tensor:
        if self.fn is self.eager:
            return self.eager(batch)
        try:
            return self.fn(batch)
        except compile_errors() as exc:
            self._fall_back(exc)
            return self.eager(batch)
