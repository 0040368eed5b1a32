"""CGCNN encoder and checkpoints on real structures: invariance of h to supercells, rotations and
translations; the embedding API; checkpoint round trips and every way a checkpoint is refused."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("pymatgen.core")

from pymatgen.core import Lattice, Structure  # noqa: E402

from crystalsearch.errors import CheckpointError  # noqa: E402
from crystalsearch.evaluate.retrieval import random_rotation  # noqa: E402
from crystalsearch.model.cgcnn import CGCNNEncoder, ContrastiveModel, EncoderConfig, PropertyModel  # noqa: E402
from crystalsearch.model.checkpoint import (  # noqa: E402
    MODEL_JSON,
    WEIGHTS,
    file_sha256,
    load_state_dict,
    read_info,
    save_checkpoint,
)
from crystalsearch.model.embed import ENCODER_CLASS, Encoder  # noqa: E402
from crystalsearch.structure.graph.batch import GraphBatch, concat_batches  # noqa: E402
from crystalsearch.structure.graph.build import build_graph  # noqa: E402
from crystalsearch.structure.graph.settings import GraphSettings

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Shipped structures whose neighbour shells are not cut inside a degenerate mixed-element shell.
INVARIANT_IDS = ("mp-1000", "mp-1008688", "mp-10442", "mp-14206", "mp-1571")
# Sr3AsN (antiperovskite): Sr has 8 Sr + 4 As at exactly 3.6216 Å and keeps 10 of them; which 10 depends
# on floating-point noise, so h changes slightly (cos ~ 0.9998) under a translation.
TIED_SHELL_ID = "mp-1013555"


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def variants(s: Structure, rng: np.random.Generator) -> list[Structure]:
    """2x2x2 supercell, a randomly rotated copy and a randomly translated copy of ``s``."""
    rot = random_rotation(rng)
    assert np.allclose(rot @ rot.T, np.eye(3)) and np.linalg.det(rot) == pytest.approx(1.0)
    rotated = Structure(Lattice(s.lattice.matrix @ rot.T), s.species, s.frac_coords)
    translated = Structure(s.lattice, s.species, s.frac_coords + rng.random(3))
    return [s.make_supercell([2, 2, 2], in_place=False), rotated, translated]


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return Encoder.random(seed=0)


@pytest.fixture(scope="module")
def by_id(mp_records: Sequence) -> dict[str, Structure]:
    wanted = {*INVARIANT_IDS, TIED_SHELL_ID}
    return {r.material_id: r.structure for r in mp_records if r.material_id in wanted}


@pytest.fixture()
def checkpoint(tmp_path: Path, encoder: Encoder) -> Path:
    return save_checkpoint(
        tmp_path / "enc",
        state_dict=encoder.model.state_dict(),
        model_class=ENCODER_CLASS,
        config=encoder.model.config.to_dict(),
        graph=GraphSettings(8.0, 12),
        metadata={"note": "test"},
        card="# test encoder\n",
    )


def rewrite_model_json(folder: Path, **changes: object) -> None:
    path = folder / MODEL_JSON
    raw = json.loads(path.read_text())
    raw.update(changes)
    path.write_text(json.dumps(raw))


# -- invariance ----------------------------------------------------------------------------------------


def test_invariance_nacl_si(encoder: Encoder, nacl: Structure, si: Structure) -> None:
    rng = np.random.default_rng(0)
    for s in (nacl, si):
        h = encoder.embed([s, *variants(s, rng)])
        cos = cosine(np.repeat(h[:1], 3, axis=0), h[1:])
        assert np.all(cos > 0.9999), (s.composition.reduced_formula, cos)


def test_invariance_shipped(encoder: Encoder, by_id: dict[str, Structure]) -> None:
    rng = np.random.default_rng(1)
    for mid in INVARIANT_IDS:
        s = by_id[mid]
        h = encoder.embed([s, *variants(s, rng)])
        cos = cosine(np.repeat(h[:1], 3, axis=0), h[1:])
        assert np.all(cos > 0.9999), (mid, s.composition.reduced_formula, cos)


def test_supercell_graph_is_an_exact_repeat(encoder: Encoder, nacl: Structure) -> None:
    """NaCl's 12-neighbour shell is cut inside the 12 Na at a/sqrt(2): same element, so h is exact."""
    h = encoder.embed([nacl, nacl.make_supercell([3, 3, 3], in_place=False)])
    np.testing.assert_allclose(h[0], h[1], rtol=1e-5, atol=1e-4)


def test_invariance_degenerate_mixed_shell(encoder: Encoder, by_id: dict[str, Structure]) -> None:
    s = by_id[TIED_SHELL_ID]
    h = encoder.embed([s, *variants(s, np.random.default_rng(0))])
    assert np.all(cosine(np.repeat(h[:1], 3, axis=0), h[1:]) > 0.9999)


def test_random_encoder_differs_by_seed_and_is_not_constant(encoder: Encoder, nacl: Structure, si: Structure) -> None:
    h0 = encoder.embed([nacl, si])
    h1 = Encoder.random(seed=1).embed([nacl, si])
    assert not np.allclose(h0, h1)
    assert cosine(h0[:1], h0[1:])[0] < 0.999, "different crystals get different representations"
    np.testing.assert_array_equal(h0, Encoder.random(seed=0).embed([nacl, si]))


# -- neighbour layout: reshape-sum (k neighbours per atom) vs scatter ------------------------------------


def _permuted(batch: GraphBatch, seed: int) -> GraphBatch:
    perm = torch.randperm(batch.edge_index.shape[1], generator=torch.Generator().manual_seed(seed))
    return GraphBatch(batch.atomic_numbers, batch.edge_index[:, perm], batch.distances[perm], batch.graph_index,
                      batch.num_atoms)  # fmt: skip


def test_neighbors_per_atom_detects_the_regular_layout(nacl: Structure, si: Structure) -> None:
    batch = GraphBatch.from_graphs([build_graph(nacl), build_graph(si)])
    assert batch.neighbors_per_atom == 12
    assert batch.to("cpu").neighbors_per_atom == 12
    assert concat_batches([batch, batch]).neighbors_per_atom == 12
    # Si within 2.5 Å: its 4 tetrahedral neighbours, still one block per atom
    assert GraphBatch.from_graphs([build_graph(si, radius=2.5)]).neighbors_per_atom == 4
    one_less = GraphBatch(batch.atomic_numbers, batch.edge_index[:, 1:], batch.distances[1:], batch.graph_index,
                          batch.num_atoms)  # fmt: skip
    assert one_less.neighbors_per_atom == 0
    assert _permuted(batch, 0).neighbors_per_atom == 0  # 12 per atom, but not listed centre by centre
    # mixed degrees (Si 4 within 2.5 Å, NaCl 6 within 3 Å) cannot use the reshape
    assert GraphBatch.from_graphs([build_graph(si, radius=2.5), build_graph(nacl, radius=3.0)]).neighbors_per_atom == 0


def test_reshape_and_scatter_paths_agree(by_id: dict[str, Structure], nacl: Structure) -> None:
    """Same z and the same gradients whether messages are summed by reshape or by index_add_ (train mode)."""
    structures = [nacl, *(by_id[m] for m in INVARIANT_IDS)]
    dense = GraphBatch.from_graphs([build_graph(s) for s in structures])
    scattered = _permuted(dense, 1)
    assert dense.neighbors_per_atom == 12 and scattered.neighbors_per_atom == 0
    torch.manual_seed(0)
    model = ContrastiveModel().train()
    out = []
    for batch in (dense, scattered):
        model.zero_grad()
        z = model(batch)
        (z**2).sum().backward()
        out.append((z.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    torch.testing.assert_close(out[0][0], out[1][0], rtol=1e-4, atol=1e-5)
    assert len(out[0][1]) == len(out[1][1]) > 10
    for g_dense, g_scatter in zip(out[0][1], out[1][1]):
        torch.testing.assert_close(g_dense, g_scatter, rtol=1e-3, atol=1e-4)


def test_bf16_autocast_choice() -> None:
    from crystalsearch.model.embed import cpu_has_bf16, use_bf16

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert use_bf16(cuda, amp=True, amp_cpu=False)
    assert not use_bf16(cuda, amp=False, amp_cpu=True)
    assert not use_bf16(cpu, amp=True, amp_cpu=False)
    assert use_bf16(cpu, amp=True, amp_cpu=True) == cpu_has_bf16()


@pytest.mark.skipif(not __import__("crystalsearch.model.embed", fromlist=["x"]).cpu_has_bf16(), reason="no native bf16")
def test_bf16_autocast_keeps_representations(by_id: dict[str, Structure]) -> None:
    batch = GraphBatch.from_graphs([build_graph(by_id[m]) for m in INVARIANT_IDS])
    torch.manual_seed(0)
    enc = CGCNNEncoder().eval()
    with torch.no_grad():
        h32 = enc(batch).numpy()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            h16 = enc(batch).float().numpy()
    assert np.all(cosine(h32, h16) > 0.999)


# -- embed API -----------------------------------------------------------------------------------------


def test_embed_shape_dtype(encoder: Encoder, nacl: Structure, si: Structure, by_id: dict[str, Structure]) -> None:
    structures = [nacl, si, *(by_id[m] for m in INVARIANT_IDS)]
    h = encoder.embed(structures, batch_size=3)
    assert h.dtype == np.float32 and h.shape == (len(structures), 128)
    assert np.all(np.isfinite(h))
    # batching does not change the result
    np.testing.assert_allclose(h, encoder.embed(structures, batch_size=256), rtol=1e-5, atol=1e-4)
    assert encoder.embed([]).shape == (0, 128)


def test_encoder_eval_mode_and_model_shapes(encoder: Encoder, nacl: Structure, si: Structure) -> None:
    assert not encoder.model.training
    batch = GraphBatch.from_graphs([build_graph(nacl), build_graph(si)])
    torch.manual_seed(0)
    cfg = EncoderConfig(atom_fea_len=16)
    assert ContrastiveModel(cfg)(batch).shape == (2, 128)
    assert PropertyModel(cfg)(batch).shape == (2,)
    assert CGCNNEncoder(cfg).atom_representations(batch).shape == (len(nacl) + len(si), 16)


# -- checkpoints ---------------------------------------------------------------------------------------


def test_checkpoint_round_trip(checkpoint: Path, encoder: Encoder, nacl: Structure, si: Structure) -> None:
    assert {p.name for p in checkpoint.iterdir()} == {MODEL_JSON, WEIGHTS, "README.md"}
    info = read_info(checkpoint)
    assert info.model_class == ENCODER_CLASS and info.graph == GraphSettings(8.0, 12)
    assert info.metadata == {"note": "test"} and info.weights_sha256 == file_sha256(checkpoint / WEIGHTS)
    loaded = Encoder.load(checkpoint)
    np.testing.assert_array_equal(loaded.embed([nacl, si]), encoder.embed([nacl, si]))
    assert loaded.hash == info.weights_sha256[:16]
    # no leftover temporary folders next to it; overwriting is atomic and leaves one folder
    save_checkpoint(
        checkpoint, state_dict=encoder.model.state_dict(), model_class=ENCODER_CLASS,
        config=encoder.model.config.to_dict(), graph=GraphSettings(8.0, 12),
    )  # fmt: skip
    assert [p.name for p in checkpoint.parent.iterdir()] == ["enc"]


def test_checkpoint_other_graph_settings(tmp_path: Path, encoder: Encoder, nacl: Structure) -> None:
    folder = save_checkpoint(
        tmp_path / "r6", state_dict=encoder.model.state_dict(), model_class=ENCODER_CLASS,
        config=encoder.model.config.to_dict(), graph=GraphSettings(6.0, 8),
    )  # fmt: skip
    info = read_info(folder)
    with pytest.raises(CheckpointError, match=r"radius=6\.0, requested 8\.0"):
        load_state_dict(info, radius=8.0)
    with pytest.raises(CheckpointError, match="max_neighbors=8, requested 12"):
        load_state_dict(info, max_neighbors=12)
    assert load_state_dict(info, radius=6.0, max_neighbors=8).keys() == encoder.model.state_dict().keys()
    # Encoder.load adopts the checkpoint's graph settings
    loaded = Encoder.load(folder)
    assert (loaded.radius, loaded.max_neighbors) == (6.0, 8)
    assert loaded.graphs([nacl])[0].max_neighbors == 8


def test_checkpoint_refuses_other_radius(checkpoint: Path) -> None:
    with pytest.raises(CheckpointError, match=r"enc: trained with graph radius=8\.0, requested 6\.0"):
        load_state_dict(read_info(checkpoint), radius=6.0)


def test_checkpoint_tampered_weights(checkpoint: Path) -> None:
    weights = checkpoint / WEIGHTS
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum does not match"):
        Encoder.load(checkpoint)


def test_checkpoint_missing_weights(checkpoint: Path) -> None:
    (checkpoint / WEIGHTS).unlink()
    with pytest.raises(CheckpointError, match="missing weights"):
        Encoder.load(checkpoint)


def test_checkpoint_other_atom_table(checkpoint: Path) -> None:
    rewrite_model_json(checkpoint, atom_feature_table_sha256="0123456789abcdef")
    with pytest.raises(CheckpointError, match="atom-feature table 0123456789abcdef"):
        Encoder.load(checkpoint)


def test_checkpoint_incompatible_version(checkpoint: Path) -> None:
    rewrite_model_json(checkpoint, crystalsearch_version="9.0.0")
    with pytest.raises(CheckpointError, match="written by crystalsearch 9.0.0, incompatible"):
        read_info(checkpoint)


def test_checkpoint_malformed_and_missing(tmp_path: Path, checkpoint: Path) -> None:
    (checkpoint / MODEL_JSON).write_text("{not json")
    with pytest.raises(CheckpointError, match="malformed model.json"):
        Encoder.load(checkpoint)
    with pytest.raises(CheckpointError, match="not a crystalsearch checkpoint"):
        Encoder.load(tmp_path / "nowhere")


def test_checkpoint_wrong_shapes(tmp_path: Path, encoder: Encoder) -> None:
    torch.manual_seed(0)
    small = CGCNNEncoder(EncoderConfig(atom_fea_len=16))
    folder = save_checkpoint(
        tmp_path / "bad", state_dict=small.state_dict(), model_class=ENCODER_CLASS,
        config=encoder.model.config.to_dict(), graph=GraphSettings(8.0, 12),
    )  # fmt: skip
    with pytest.raises(CheckpointError, match="weights do not fit the encoder"):
        Encoder.load(folder)


class _Payload:
    """Unpickling this creates ``path``: a stand-in for arbitrary code in a malicious weights file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return open, (str(self.path), "w")


def test_checkpoint_weights_only_blocks_pickle_payload(tmp_path: Path, checkpoint: Path) -> None:
    marker = tmp_path / "payload-ran"
    weights = checkpoint / WEIGHTS
    torch.save({"embedding.weight": torch.zeros(2), "evil": _Payload(marker)}, weights)
    rewrite_model_json(checkpoint, weights_sha256=file_sha256(weights))
    with pytest.raises(CheckpointError, match="cannot load weights"):
        Encoder.load(checkpoint)
    assert not marker.exists(), "the pickle payload must not run"
    # the payload is real: a plain (unsafe) torch.load would have run it
    torch.load(weights, weights_only=False)
    assert marker.exists()


# -- compilation falls back only when compiling fails; no process-wide side effects -----------------------


class _Counting(torch.nn.Module):
    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.calls, self.fail = 0, fail
        self.lin = torch.nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.fail:
            raise ValueError("shape bug")
        return self.lin(x)


def test_maybe_compiled_falls_back_once_when_compiling_fails() -> None:
    from crystalsearch.model.compile import MaybeCompiled

    def no_compiler(gm: object, inputs: object) -> object:
        raise RuntimeError("no C++ compiler")

    model = _Counting()
    forward = MaybeCompiled(model, enabled=True, backend=no_compiler)
    x = torch.randn(4, 3)
    with pytest.warns(UserWarning, match=r"torch.compile failed \(BackendCompilerFailed"):
        out = forward(x)
    torch.testing.assert_close(out, model.lin(x))
    assert forward.fn is model and "no C++ compiler" in (forward.fallback_reason or "")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once only
        forward(x)


def test_maybe_compiled_lets_model_errors_through() -> None:
    """A bug of the model (or an out-of-memory error) is raised as it is, and the model runs once."""
    from crystalsearch.model.compile import MaybeCompiled

    eager = _Counting(fail=True)
    with pytest.raises(ValueError, match="shape bug"):
        MaybeCompiled(eager, enabled=False)(torch.randn(4, 3))
    assert eager.calls == 1
    model = _Counting(fail=True)
    forward = MaybeCompiled(model, enabled=True, backend="eager")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "continuing in eager mode"
        with pytest.raises(ValueError, match="shape bug"):
            forward(torch.randn(4, 3))
    assert forward.fn is not model  # still compiled: nothing fell back
    assert model.calls <= 1  # not run again eagerly after the failure


def test_library_calls_leave_process_state_alone(nacl: Structure) -> None:
    from crystalsearch.model.embed import select_device

    tiny = torch.tensor([1e-310], dtype=torch.float64)
    assert (tiny * 1.0).item() != 0.0  # subnormals kept, as in a fresh process
    state = torch.get_rng_state()
    device = select_device("cpu")
    enc = Encoder.random(seed=3)
    enc.embed([nacl])
    assert (tiny * 1.0).item() != 0.0, "flush-denormal leaked out of a library call"
    assert torch.equal(torch.get_rng_state(), state), "Encoder.random reseeded the global RNG"
    assert device.type == "cpu"
    # still deterministic in the seed
    torch.testing.assert_close(Encoder.random(seed=3).model.to_h.weight, enc.model.to_h.weight.cpu())


def test_broad_excepts_let_the_machines_errors_through(checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad weights file is a CheckpointError; running out of memory while loading it is not."""
    from crystalsearch.structure.descriptors import _safe

    def oom(*args: object, **kwargs: object) -> object:
        raise MemoryError

    with monkeypatch.context() as m:
        m.setattr(torch, "load", oom)
        with pytest.raises(MemoryError):
            Encoder.load(checkpoint)
    with pytest.raises(MemoryError):
        _safe(oom, None)
    assert _safe(lambda s: [1.0, float(s)], "2") == [1.0, 2.0]
    assert _safe(lambda s: [float(s)], "not a number") is None  # a structure matminer cannot featurise: a NaN row
