"""Fine-tuning: CGCNN encoder + regression head on one property, as in CGCNN and the CrystalCLR paper.

The learning rate is chosen from a small grid on the validation split; each run stops early on the
validation MAE (in the property's own units); targets are standardised, and log-transformed for
moduli and thermal conductivity (``log_target="auto"``). The test MAE of the best-validation model
goes into the checkpoint's model card.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from crystalsearch.data.properties import PROPERTIES, PropertySpec
from crystalsearch.errors import CheckpointError
from crystalsearch.model.cgcnn import EncoderConfig, PropertyModel
from crystalsearch.model.embed import flush_denormal, select_device
from crystalsearch.paths import command_line
from crystalsearch.structure.graph.settings import GraphSettings
from crystalsearch.structure.graph.store import GraphStore
from crystalsearch.train import loop_state
from crystalsearch.train.card import hardware_of
from crystalsearch.train.config import FinetuneConfig, config_dict


def property_spec(name: str) -> PropertySpec:
    from crystalsearch.errors import InputError

    if name not in PROPERTIES:
        raise InputError("--property", f"unknown property {name!r}; choose from {', '.join(PROPERTIES)}")
    return PROPERTIES[name]


CLIP_MARGIN = 2.0  # standard deviations beyond the training targets


@dataclass(frozen=True)
class TargetTransform:
    """y -> (f(y) - mean) / std with f = log or identity; inverse maps predictions back to units."""

    log: bool
    mean: float
    std: float
    lo: float = -np.inf  # standardised predictions are clipped to the training range +- CLIP_MARGIN
    hi: float = np.inf

    @classmethod
    def fit(cls, y: np.ndarray, *, log: bool) -> TargetTransform:
        t = np.log(y) if log else y
        mean, std = float(t.mean()), float(t.std() + 1e-12)
        z = (t - mean) / std
        return cls(log=log, mean=mean, std=std, lo=float(z.min()) - CLIP_MARGIN, hi=float(z.max()) + CLIP_MARGIN)

    def to_dict(self) -> dict[str, Any]:
        """As stored under ``"transform"`` in a fine-tuned checkpoint's metadata."""
        return {"log": self.log, "mean": self.mean, "std": self.std, "lo": self.lo, "hi": self.hi}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TargetTransform:
        """Inverse of :meth:`to_dict`; checkpoints written before clipping have no ``lo``/``hi``."""
        return cls(log=bool(d["log"]), mean=float(d["mean"]), std=float(d["std"]),
                   lo=float(d.get("lo", -np.inf)), hi=float(d.get("hi", np.inf)))  # fmt: skip

    def forward(self, y: np.ndarray) -> np.ndarray:
        return ((np.log(y) if self.log else y) - self.mean) / self.std

    def inverse(self, t: np.ndarray) -> np.ndarray:
        """Back to the property's units; clipping keeps a wild prediction for an unusual crystal from
        overflowing ``exp`` (seen once on the shear-modulus validation split)."""
        v = np.clip(t, self.lo, self.hi) * self.std + self.mean
        return np.exp(v) if self.log else v


@dataclass(frozen=True)
class FinetuneResult:
    property: str
    init: str
    lr: float
    epochs_run: int
    val_mae: float
    test_mae: float
    unit: str
    n_train: int
    n_val: int
    n_test: int
    wall_time_s: float
    lr_grid: dict[float, float]
    model: PropertyModel
    transform: TargetTransform
    test_predictions: np.ndarray
    test_indices: np.ndarray
    graph: GraphSettings = GraphSettings()  # how the model's graphs were built (from the --from encoder)
    hardware: str = ""


def init_graph(init: str) -> GraphSettings:
    """How graphs are built for a model initialised from ``init``: the checkpoint's settings (default
    recipe for ``random``)."""
    if init == "random":
        return GraphSettings()
    from crystalsearch.model.checkpoint import graph_settings

    return graph_settings(init)


def init_model(init: str, *, seed: int) -> PropertyModel:
    """A PropertyModel with a random encoder (``random``) or one loaded from a checkpoint; the random
    weights come from ``seed`` (the global torch RNG is left as it was)."""
    from crystalsearch.model.embed import Encoder

    enc = None if init == "random" else Encoder.load(init, device="cpu")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = PropertyModel(EncoderConfig() if enc is None else enc.model.config)
    if enc is not None:
        model.encoder.load_state_dict(enc.model.state_dict())
    return model


def predict_store(model: PropertyModel, store: GraphStore, idx: np.ndarray, *, device: torch.device,
                  batch_size: int = 512) -> np.ndarray:  # fmt: skip
    """Standardised predictions for crystals ``idx`` of ``store``."""
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(idx), batch_size):
            out.append(model(store.batch(idx[start : start + batch_size]).to(device)).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def _train_one(model: PropertyModel, store: GraphStore, y: np.ndarray, train: np.ndarray, val: np.ndarray, *,
               transform: TargetTransform, config: FinetuneConfig, lr: float, device: torch.device,
               rng: np.random.Generator, checkpoint: Path | None = None,
               on_epoch: Callable[[int, float, float], None] | None = None,
               ) -> tuple[PropertyModel, float, int]:  # fmt: skip
    """Train with early stopping on val MAE (units); returns the best model, its val MAE, epochs run.

    With ``checkpoint`` the loop state (weights, optimiser, schedule, best weights, patience count, batch-order
    RNG) is written there atomically after every epoch, and a run finding the file continues from it: an
    interrupted member resumes at its next epoch with the same result as an uninterrupted one.
    ``on_epoch(epoch, val_mae, best)`` is called after each epoch (progress lines).
    """
    from crystalsearch.model.compile import MaybeCompiled

    model = model.to(device)
    forward = MaybeCompiled(model, enabled=config.compile)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=config.weight_decay)
    sched = _schedule(opt, config)
    loss_fn = _loss(config)
    target = torch.from_numpy(transform.forward(y).astype(np.float32))
    best, best_state, since, epochs = float("inf"), copy.deepcopy(model.state_dict()), 0, 0
    t0, c0 = time.perf_counter(), time.process_time()
    before, before_cpu = 0.0, 0.0  # wall and CPU seconds spent by earlier processes on this member (resumed runs)
    if checkpoint is not None and checkpoint.is_file():
        state = loop_state.read_loop(checkpoint)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if sched is not None:
            sched.load_state_dict(state["schedule"])
            if isinstance(sched, torch.optim.lr_scheduler.CosineAnnealingLR):
                sched.T_max = max(1, config.epochs)  # resumed with another `epochs`: anneal to the new end
        best, best_state, since, epochs = state["best"], state["best_state"], state["since"], state["epoch"]
        rng.bit_generator.state = state["rng"]
        before, before_cpu = state["elapsed_s"], state["cpu_s"]
    while epochs < config.epochs and since < config.patience:
        epochs += 1
        model.train()
        order = rng.permutation(train)
        for start in range(0, len(order), config.batch_size):
            idx = np.sort(order[start : start + config.batch_size])
            if len(idx) < 2:
                continue  # batch norm needs two crystals
            pred = forward(store.batch(idx).to(device))
            loss = loss_fn(pred.float(), target[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if sched is not None:
            sched.step()
        val_mae = float(np.mean(np.abs(transform.inverse(predict_store(model, store, val, device=device)) - y[val])))
        if val_mae < best:
            best, best_state, since = val_mae, copy.deepcopy(model.state_dict()), 0
        else:
            since += 1
        if checkpoint is not None:
            loop_state.save_loop(checkpoint, model=model, opt=opt, sched=sched, best=best, best_state=best_state,
                                 since=since, epoch=epochs, rng=rng, elapsed_s=before + time.perf_counter() - t0,
                                 cpu_s=before_cpu + time.process_time() - c0)  # fmt: skip
        if on_epoch is not None:
            on_epoch(epochs, val_mae, best)
    model.load_state_dict(best_state)
    return model, best, epochs


def _schedule(opt: torch.optim.Optimizer, config: FinetuneConfig) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The learning-rate schedule of ``config.schedule`` (None for a constant rate)."""
    if config.schedule == "constant":
        return None
    if config.schedule == "cosine":
        base = opt.param_groups[0]["lr"]
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, config.epochs), eta_min=base / 100)
    raise ValueError(f"schedule must be 'constant' or 'cosine', got {config.schedule!r}")


def _loss(config: FinetuneConfig) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The training loss of ``config.loss`` on standardised targets."""
    losses = {"mse": torch.nn.functional.mse_loss, "l1": torch.nn.functional.l1_loss}
    if config.loss not in losses:
        raise ValueError(f"loss must be one of {', '.join(losses)}, got {config.loss!r}")
    return losses[config.loss]


def warm_model(folder: str | Path, *, seed: int, transform: TargetTransform, graph: GraphSettings,
               split: dict[str, Any] | None = None) -> PropertyModel:  # fmt: skip
    """Member ``seed`` of the ensemble in ``folder`` (``heads/<property>`` or a path), encoder and head, to
    continue training from. Its graph settings, target space (log or not) and protocol split (``split``, as
    :meth:`ProtocolSplit.to_dict`; the train cap may differ) must be those of the run it joins; where only the
    standardisation differs (revised labels, another train cap), the head's last layer is rescaled so that the
    model predicts the same values in units under the new ``transform``."""
    from crystalsearch.model.checkpoint import load_state_dict, read_info, resolve

    path = resolve(folder) / f"seed{seed}"
    info = read_info(path)
    if not info.model_class.endswith("PropertyModel"):
        raise CheckpointError(f"{path}: not a property head ({info.model_class})")
    theirs = TargetTransform.from_dict(info.metadata["transform"])
    if theirs.log != transform.log:
        raise CheckpointError(f"{path}: trained on other targets (transform {theirs.to_dict()}, "
                              f"this run {transform.to_dict()})")  # fmt: skip
    if info.graph != graph:
        raise CheckpointError(f"{path}: graphs built as {info.graph}, this run builds {graph}")
    if split is not None and _parts(info.metadata.get("protocol")) != _parts(split):
        raise CheckpointError(f"{path}: trained under another split ({info.metadata.get('protocol')}; this run "
                              f"{split}): it may have seen this run's validation or test materials")  # fmt: skip
    model = PropertyModel(EncoderConfig(**info.config))
    model.load_state_dict(load_state_dict(info))
    retarget(model, old=theirs, new=transform)
    return model


def _parts(split: dict[str, Any] | None) -> dict[str, Any] | None:
    """A protocol split's identity, without the train cap (``n_train``: a seeded subset of the same part)."""
    return None if split is None else {k: v for k, v in split.items() if k != "n_train"}


def retarget(model: PropertyModel, *, old: TargetTransform, new: TargetTransform) -> None:
    """Rescale the head's output layer in place: standardised under ``old`` -> standardised under ``new``
    (``z' = z * old.std / new.std + (old.mean - new.mean) / new.std``; same values in units, before clipping)."""
    scale, shift = old.std / new.std, (old.mean - new.mean) / new.std
    last = model.head.net[-1]
    assert isinstance(last, torch.nn.Linear)  # noqa: S101 - an invariant that narrows the type, not an input check
    with torch.no_grad():
        last.weight.mul_(scale)
        last.bias.mul_(scale).add_(shift)


def finetune(
    config: FinetuneConfig,
    *,
    store: GraphStore | None = None,
    show_progress: bool = True,
) -> FinetuneResult:
    """Fine-tune on ``config.property``; returns the best-validation model and its test MAE.

    Graphs are built with the settings of the ``config.init`` checkpoint; a given ``store`` must match them.
    """
    threads = torch.get_num_threads()
    try:
        if config.num_threads:
            torch.set_num_threads(config.num_threads)  # for this call only: restored below
        return _finetune(config, store=store, show_progress=show_progress)
    finally:
        torch.set_num_threads(threads)


def _finetune(config: FinetuneConfig, *, store: GraphStore | None, show_progress: bool) -> FinetuneResult:
    from crystalsearch.data import datasets

    spec = property_spec(config.property)
    if config.warm_start:
        from crystalsearch.errors import InputError

        raise InputError("--set warm_start", "continues a head ensemble: use `crystalsearch train heads`")
    device = select_device(None if config.device == "auto" else config.device)
    ds = datasets.load(spec.dataset)
    y = ds.targets(spec.column)
    n = min(len(ds), config.max_structures) if config.max_structures else len(ds)
    split = ds.split(seed=config.seed, group_by_formula=config.group_by_formula).labelled(y, n=n)
    train, val, test = split.train, split.val, split.test
    graph = init_graph(config.init)
    if store is None:
        store = graph.store_for_records(ds.records[:n], show_progress=show_progress)
    elif not graph.matches(store):
        raise ValueError(
            f"graph store built with radius {store.radius}, {store.max_neighbors} neighbours; "
            f"{config.init} needs radius {graph.radius}, {graph.max_neighbors} neighbours"
        )
    log = spec.log if config.log_target == "auto" else config.log_target == "yes"
    transform = TargetTransform.fit(y[train], log=log)
    t0 = time.perf_counter()
    results: dict[float, tuple[PropertyModel, float, int]] = {}
    for lr in config.lrs:
        model = init_model(config.init, seed=config.seed)
        rng = np.random.default_rng([config.seed, 7])
        with flush_denormal(device):
            results[lr] = _train_one(model, store, y, train, val, transform=transform, config=config, lr=lr,
                                     device=device, rng=rng)  # fmt: skip
    best_lr = min(results, key=lambda lr: results[lr][1])
    model, val_mae, epochs = results[best_lr]
    pred = transform.inverse(predict_store(model, store, test, device=device))
    return FinetuneResult(
        property=spec.name, init=config.init, lr=best_lr, epochs_run=epochs, val_mae=val_mae,
        test_mae=float(np.mean(np.abs(pred - y[test]))), unit=spec.unit, n_train=len(train), n_val=len(val),
        n_test=len(test), wall_time_s=time.perf_counter() - t0, lr_grid={lr: r[1] for lr, r in results.items()},
        model=model.cpu(), transform=transform, test_predictions=pred, test_indices=test, graph=graph,
        hardware=hardware_of(device),
    )  # fmt: skip


def save_finetuned(result: FinetuneResult, folder: Path, config: FinetuneConfig, *, command: str | None = None,
                   extra_card: str = "", metadata: dict[str, Any] | None = None,
                   spec: PropertySpec | None = None) -> Path:  # fmt: skip
    """Write a property checkpoint folder (encoder + head + target transform) with its model card
    (``metadata``: further keys for ``model.json``; ``spec``: a user's own property, default the registry's)."""
    from crystalsearch.model.checkpoint import save_checkpoint
    from crystalsearch.train.card import finetune_card

    spec = spec or PROPERTIES[result.property]
    command = command or command_line()
    meta = {
        "property": result.property, "column": spec.column, "dataset": spec.dataset, "unit": result.unit,
        "compositional": spec.compositional,
        "transform": result.transform.to_dict(),
        "init": result.init, "lr": result.lr, "lr_grid": {str(k): v for k, v in result.lr_grid.items()},
        "val_mae": result.val_mae, "test_mae": result.test_mae, "epochs_run": result.epochs_run,
        "n_train": result.n_train, "n_val": result.n_val, "n_test": result.n_test,
        "wall_time_s": result.wall_time_s, "hardware": result.hardware, "finetune": config_dict(config),
        "command": command, **(metadata or {}),
    }  # fmt: skip
    card = finetune_card(result, config, command=command, extra=extra_card, spec=spec)
    return save_checkpoint(
        folder, state_dict=result.model.state_dict(), model_class="crystalsearch.model.cgcnn.PropertyModel",
        config=result.model.encoder.config.to_dict(), graph=result.graph, metadata=meta, card=card,
    )  # fmt: skip


def with_seed(config: FinetuneConfig, seed: int) -> FinetuneConfig:
    return replace(config, seed=seed)


def describe(result: FinetuneResult) -> dict[str, Any]:
    return {
        "property": result.property, "init": result.init, "lr": result.lr, "epochs_run": result.epochs_run,
        "val_mae": result.val_mae, "test_mae": result.test_mae, "unit": result.unit, "n_train": result.n_train,
        "n_val": result.n_val, "n_test": result.n_test, "wall_time_s": round(result.wall_time_s, 1),
    }  # fmt: skip
