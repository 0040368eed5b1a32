"""The fine-tuning loop: per-epoch checkpoints resume to the uninterrupted result; the cosine schedule anneals."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch

from crystalsearch.model.cgcnn import PropertyModel
from crystalsearch.model.config import EncoderConfig
from crystalsearch.structure.graph.settings import GraphSettings
from crystalsearch.train.config import FinetuneConfig
from crystalsearch.train.finetune import TargetTransform, _schedule, _train_one

if TYPE_CHECKING:
    from crystalsearch.data.datasets import Record
    from crystalsearch.structure.graph.store import GraphStore

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CFG = FinetuneConfig(epochs=4, patience=10, batch_size=16, compile=False, schedule="cosine")


@pytest.fixture(scope="module")
def store(mp_small: Sequence[Record], mp_sample: Sequence[Record], tmp_path_factory: pytest.TempPathFactory,
          one_torch_thread: None) -> GraphStore:  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CRYSTALSEARCH_CACHE", str(tmp_path_factory.mktemp("graphs")))
        return GraphSettings().store_for_records([*mp_small, *mp_sample[:40]])


def labels(records: Sequence[Record]) -> np.ndarray:
    """Formation energies of the records behind ``store`` (a real label on real structures)."""
    return np.array([r.properties["formation_energy_per_atom"] for r in records], dtype=np.float64)


class Crash(RuntimeError):
    pass


def run(store: GraphStore, y: np.ndarray, config: FinetuneConfig, *, checkpoint: Path | None = None,
        crash_after: int = 0) -> tuple[PropertyModel, float, int]:  # fmt: skip
    torch.manual_seed(3)
    model = PropertyModel(EncoderConfig(atom_fea_len=16))
    idx = np.arange(len(y))
    train, val = idx[:48], idx[48:]

    def on_epoch(epoch: int, val_mae: float, best: float) -> None:
        if crash_after and epoch == crash_after:
            raise Crash(epoch)

    return _train_one(model, store, y, train, val, transform=TargetTransform.fit(y[train], log=False), config=config,
                      lr=1e-3, device=torch.device("cpu"), rng=np.random.default_rng([0, 7]), checkpoint=checkpoint,
                      on_epoch=on_epoch)  # fmt: skip


def test_resumed_member_equals_uninterrupted(store: GraphStore, mp_small: Sequence[Record],
                                             mp_sample: Sequence[Record], tmp_path: Path) -> None:  # fmt: skip
    y = labels([*mp_small, *mp_sample[:40]])
    ref, ref_best, ref_epochs = run(store, y, CFG)
    ckpt = tmp_path / "seed0.lr0.001.partial.pt"
    with pytest.raises(Crash):
        run(store, y, CFG, checkpoint=ckpt, crash_after=2)  # killed after epoch 2's checkpoint
    saved = torch.load(ckpt, weights_only=True)  # tensors and plain values only: nothing to unpickle
    assert saved["epoch"] == 2 and json.loads(saved["rng"])["bit_generator"] == "PCG64"
    resumed, best, epochs = run(store, y, CFG, checkpoint=ckpt)
    assert epochs == ref_epochs == 4
    assert best == pytest.approx(ref_best, rel=1e-9)
    for key, value in ref.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_finished_checkpoint_trains_no_further(store: GraphStore, mp_small: Sequence[Record],
                                               mp_sample: Sequence[Record], tmp_path: Path) -> None:  # fmt: skip
    y = labels([*mp_small, *mp_sample[:40]])
    ckpt = tmp_path / "done.pt"
    first = run(store, y, replace(CFG, epochs=2), checkpoint=ckpt)
    again = run(store, y, replace(CFG, epochs=2), checkpoint=ckpt, crash_after=1)  # no epoch runs: no crash
    assert again[2] == first[2] == 2 and again[1] == first[1]


def test_cosine_schedule_anneals_to_a_hundredth() -> None:
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    sched = _schedule(opt, replace(CFG, epochs=10))
    assert sched is not None
    rates = []
    for _ in range(10):
        opt.step()
        sched.step()
        rates.append(opt.param_groups[0]["lr"])
    assert all(a > b for a, b in zip(rates, rates[1:], strict=False))
    assert rates[-1] == pytest.approx(1e-5)
    assert _schedule(opt, replace(CFG, schedule="constant")) is None
    with pytest.raises(ValueError, match="schedule"):
        _schedule(opt, replace(CFG, schedule="step"))


def test_losses_match_a_manual_reference() -> None:
    from crystalsearch.train.finetune import _loss

    pred, target = torch.tensor([0.0, 1.0, -2.0, 0.5]), torch.tensor([1.0, 1.0, 1.0, -0.5])
    # |d| = 1, 0, 3, 1 -> mean 1.25; d^2 = 1, 0, 9, 1 -> mean 2.75
    assert float(_loss(replace(CFG, loss="l1"))(pred, target)) == pytest.approx(1.25)
    assert float(_loss(CFG)(pred, target)) == pytest.approx(2.75)
    with pytest.raises(ValueError, match="loss"):
        _loss(replace(CFG, loss="hinge"))


def test_l1_loss_trains_a_different_model(store: GraphStore, mp_small: Sequence[Record],
                                          mp_sample: Sequence[Record]) -> None:  # fmt: skip
    y = labels([*mp_small, *mp_sample[:40]])
    mse, _, _ = run(store, y, replace(CFG, epochs=2))
    l1, best, _ = run(store, y, replace(CFG, epochs=2, loss="l1"))
    assert np.isfinite(best)
    assert any(not torch.equal(v, l1.state_dict()[k]) for k, v in mse.state_dict().items())


def test_resuming_with_more_epochs_anneals_to_the_new_end(
    store: GraphStore, mp_small: Sequence[Record], mp_sample: Sequence[Record], tmp_path: Path
) -> None:
    y = labels([*mp_small, *mp_sample[:40]])
    ckpt = tmp_path / "seed0.partial.pt"
    run(store, y, replace(CFG, epochs=2), checkpoint=ckpt)
    mid = torch.load(ckpt, weights_only=True)
    assert mid["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-5)  # annealed at the first end
    _, _, epochs = run(store, y, replace(CFG, epochs=4), checkpoint=ckpt)
    state = torch.load(ckpt, weights_only=True)
    assert epochs == 4 and state["schedule"]["T_max"] == 4
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-5)


def test_loop_state_adds_up_training_time_over_resumes(
    store: GraphStore, mp_small: Sequence[Record], mp_sample: Sequence[Record], tmp_path: Path
) -> None:
    y = labels([*mp_small, *mp_sample[:40]])
    ckpt = tmp_path / "seed0.partial.pt"
    with pytest.raises(Crash):
        run(store, y, CFG, checkpoint=ckpt, crash_after=2)
    from crystalsearch.train.loop_state import spent

    assert spent(tmp_path / "none.pt") == (0.0, 0.0)
    first, first_cpu = spent(ckpt)
    assert first == torch.load(ckpt, weights_only=True)["elapsed_s"] and first_cpu > 0
    run(store, y, CFG, checkpoint=ckpt)
    wall, cpu = spent(ckpt)
    assert 0 < first < wall and first_cpu < cpu


def test_single_runs_refuse_a_warm_start() -> None:
    from crystalsearch.errors import InputError
    from crystalsearch.train.finetune import finetune

    with pytest.raises(InputError, match="train heads"):
        finetune(replace(CFG, property="melting_temperature", warm_start="heads/melting_temperature"))
