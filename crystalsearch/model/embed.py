"""The public ``Encoder``: load a pretrained CGCNN encoder and embed structures into representations h."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from crystalsearch.errors import CheckpointError

if TYPE_CHECKING:
    import torch
    from pymatgen.core import Structure

    from crystalsearch.model.cgcnn import CGCNNEncoder
    from crystalsearch.structure.graph.build import CrystalGraph
    from crystalsearch.structure.graph.settings import GraphSettings
    from crystalsearch.structure.graph.store import GraphStore

ENCODER_CLASS = "crystalsearch.model.cgcnn.CGCNNEncoder"


def select_device(device: str | None = None) -> torch.device:
    """``device`` if given, else CUDA when available, else CPU. Changes no process-wide setting."""
    import torch

    if device in (None, "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CheckpointError("--device cuda requested but no CUDA device is available")
    return dev


@contextlib.contextmanager
def flush_denormal(device: torch.device) -> Iterator[None]:
    """Flush subnormal floats to zero on CPU for the duration of a block, then restore the setting.

    Some Gaussian edge features are subnormal; flushing them makes CPU inference and training ~3x
    faster. torch has no getter for the flag, so the previous state is read through ``set_flush_denormal``
    on a subnormal probe.
    """
    import torch

    if device.type != "cpu":
        yield
        return
    tiny = torch.tensor([1e-310], dtype=torch.float64)
    before = bool((tiny * 1.0).item() == 0.0)
    if not torch.set_flush_denormal(True):
        yield
        return
    try:
        yield
    finally:
        torch.set_flush_denormal(before)


def cpu_has_bf16() -> bool:
    """Whether this CPU does bf16 arithmetic natively (AVX512-BF16 or AMX), so bf16 autocast pays off."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def use_bf16(device: torch.device, *, amp: bool, amp_cpu: bool) -> bool:
    """bf16 autocast: on CUDA when ``amp``; on CPU only when ``amp_cpu`` and :func:`cpu_has_bf16`."""
    if not amp:
        return False
    return device.type == "cuda" or (device.type == "cpu" and amp_cpu and cpu_has_bf16())


class Encoder:
    """A frozen CGCNN encoder f mapping crystals to 128-d representations h.

    >>> enc = Encoder.load("default")
    >>> h = enc.embed([structure])   # float32 [1, 128]
    """

    def __init__(
        self,
        model: CGCNNEncoder,
        *,
        graph: GraphSettings | None = None,
        name: str = "untrained",
        digest: str = "",
        device: str | None = None,
    ) -> None:
        from crystalsearch.structure.graph.settings import GraphSettings

        self.device = select_device(device)
        self.model = model.to(self.device).eval()
        self.graph = graph or GraphSettings()
        self.name = name
        self.digest = digest or self._weights_digest()

    # -- construction --------------------------------------------------------------------------------
    @classmethod
    def load(cls, name_or_path: str | os.PathLike[str] = "default", *, device: str | None = None) -> Encoder:
        """Load a shipped encoder (``default``, ``crystalclr``, ``crystalclr_cs``) or a checkpoint folder.

        A fine-tuned property checkpoint also works: its encoder part is used.
        """
        from crystalsearch.model.cgcnn import CGCNNEncoder, EncoderConfig
        from crystalsearch.model.checkpoint import load_state_dict, read_info

        info = read_info(name_or_path)
        state = load_state_dict(info)
        if info.model_class != ENCODER_CLASS:
            prefix = "encoder."
            state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            if not state:
                raise CheckpointError(f"{info.path}: {info.model_class} holds no CGCNN encoder weights")
        try:
            config = EncoderConfig(**info.config)
        except TypeError as exc:
            raise CheckpointError(f"{info.path}: unknown encoder arguments ({exc})") from None
        model = CGCNNEncoder(config)
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise CheckpointError(f"{info.path}: weights do not fit the encoder ({first})") from None
        return cls(
            model,
            graph=info.graph,
            name=str(name_or_path),
            digest=info.weights_sha256[:16],
            device=device,
        )

    @classmethod
    def random(cls, *, seed: int = 0, device: str | None = None) -> Encoder:
        """An untrained encoder with seeded weights (for tests and baselines); the global torch RNG is
        left as it was."""
        import torch

        from crystalsearch.model.cgcnn import CGCNNEncoder

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = CGCNNEncoder()
        return cls(model, name=f"random(seed={seed})", device=device)

    # -- properties -----------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return int(self.model.config.h_dim)

    @property
    def radius(self) -> float:
        return self.graph.radius

    @property
    def max_neighbors(self) -> int:
        return self.graph.max_neighbors

    @property
    def hash(self) -> str:
        """Identifier of the weights (first 16 hex digits of their SHA-256)."""
        return self.digest

    def _weights_digest(self) -> str:
        import hashlib

        h = hashlib.sha256()
        for key, value in sorted(self.model.state_dict().items()):
            h.update(key.encode())
            h.update(value.detach().cpu().numpy().tobytes())
        return h.hexdigest()[:16]

    def __repr__(self) -> str:
        return f"Encoder(name={self.name!r}, hash={self.hash}, dim={self.dim}, device={self.device})"

    # -- embedding ------------------------------------------------------------------------------------
    def graphs(self, structures: Iterable[Structure]) -> list[CrystalGraph]:
        """The graphs of ``structures`` as this encoder's checkpoint says to build them."""
        return self.graph.graphs(structures)

    def embed(self, structures: Iterable[Structure], *, batch_size: int = 256) -> np.ndarray:
        """Representations h of ``structures`` as float32 [n, dim]."""
        return self.embed_graphs(self.graphs(structures), batch_size=batch_size)

    def embed_graphs(self, graphs: Sequence[CrystalGraph], *, batch_size: int = 256) -> np.ndarray:
        """Representations h of prebuilt graphs as float32 [n, dim]."""
        from crystalsearch.structure.graph.batch import GraphBatch

        chunks = [
            self._forward(GraphBatch.from_graphs(graphs[i : i + batch_size])) for i in range(0, len(graphs), batch_size)
        ]
        return np.concatenate(chunks) if chunks else np.zeros((0, self.dim), dtype=np.float32)

    def embed_store(
        self,
        store: GraphStore,
        indices: Sequence[int] | np.ndarray | None = None,
        *,
        batch_size: int = 512,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Representations h of crystals in a graph store (all of them by default); the store must have
        been built with this encoder's graph settings."""
        if not self.graph.matches(store):
            raise ValueError(
                f"graph store built with radius {store.radius}, {store.max_neighbors} neighbours; encoder "
                f"{self.name} needs radius {self.graph.radius}, {self.graph.max_neighbors} neighbours"
            )
        idx = np.arange(len(store)) if indices is None else np.asarray(indices)
        out = np.zeros((idx.shape[0], self.dim), dtype=np.float32)
        for start in range(0, idx.shape[0], batch_size):
            sel = idx[start : start + batch_size]
            out[start : start + sel.shape[0]] = self._forward(store.batch(sel))
            if progress is not None:
                progress(int(sel.shape[0]))
        return out

    def _forward(self, batch: object) -> np.ndarray:
        import torch

        from crystalsearch.structure.graph.batch import GraphBatch

        assert isinstance(batch, GraphBatch)  # noqa: S101 - an invariant that narrows the type, not an input check
        with torch.inference_mode(), flush_denormal(self.device):
            h = self.model(batch.to(self.device))
        return h.float().cpu().numpy()
