"""CrystalCLR / CrystalCLR+CS contrastive pretraining (single process, or DDP under ``torchrun``).

Run folder: ``config.json``, ``metrics.jsonl`` (one line per epoch, appended before the checkpoint; a
resumed run first trims it to the checkpoint's epochs), ``checkpoint.pt`` (model, optimiser state, epoch, RNG,
wall time and the history of started/resumed segments; written atomically each epoch) and ``encoder/``
(an encoder checkpoint folder whose metadata and card describe the epochs that ran, refreshed each
epoch). Only rank 0 writes.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from crystalsearch import distributed as D
from crystalsearch.atomic import append_jsonl, atomic_write, atomic_write_json, read_jsonl, write_jsonl
from crystalsearch.errors import CheckpointError
from crystalsearch.model.cgcnn import ContrastiveModel
from crystalsearch.model.checkpoint import load_tensors
from crystalsearch.model.compile import MaybeCompiled
from crystalsearch.model.embed import flush_denormal, select_device, use_bf16
from crystalsearch.paths import command_line
from crystalsearch.structure.augment.config import AugmentConfig
from crystalsearch.structure.augment.fast import augment
from crystalsearch.structure.graph.batch import concat_batches
from crystalsearch.structure.graph.store import GraphStore
from crystalsearch.train.card import add_segment, hardware_of, pretrain_card, pretrain_metadata, segment
from crystalsearch.train.config import PretrainConfig, config_dict
from crystalsearch.train.losses import alignment_uniformity, composition_similarity_loss, nt_xent

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"


@dataclass(frozen=True)
class PretrainResult:
    run_dir: Path
    encoder_dir: Path
    epochs_done: int
    wall_time_s: float
    final_metrics: dict[str, Any]


def make_views(store: GraphStore, idx: np.ndarray, *, aug: AugmentConfig, rng: np.random.Generator) -> tuple[Any, Any]:
    """Two augmented views of the crystals ``idx`` (the first view is exact when one-sided)."""
    g = store.gather(idx, candidates=True)
    kw = {"config": aug, "rng": rng, "radius": store.radius, "max_neighbors": store.max_neighbors}
    first = store.batch(idx) if aug.one_sided else augment(g, **kw).batch  # type: ignore[arg-type]
    second = augment(g, **kw).batch  # type: ignore[arg-type]
    return first, second


def _views_batch(store: GraphStore, idx: np.ndarray, aug: AugmentConfig, rng: np.random.Generator) -> Any:
    v1, v2 = make_views(store, idx, aug=aug, rng=rng)
    return concat_batches([v1, v2])


def contrastive_loss(
    z: torch.Tensor, elements: torch.Tensor, *, config: PretrainConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss of the 2N projections ``z`` (first N: view 1, last N: view 2)."""
    z1, z2 = z.float().chunk(2)
    clr = nt_xent(z1, z2, temperature=config.temperature)
    parts = {"loss_clr": float(clr.detach())}
    loss = clr
    if config.loss == "nt_xent+cs":
        cs = composition_similarity_loss(z1, z2, elements, temperature=config.temperature)
        parts["loss_cs"] = float(cs.detach())
        loss = clr + cs
    return loss, parts


def pretrain(
    config: PretrainConfig,
    *,
    out: Path,
    resume: bool = False,
    show_progress: bool = True,
    command: str | None = None,
) -> PretrainResult:
    """Pretrain an encoder; with ``resume`` continue the run in ``out`` from its last checkpoint.

    ``config.num_threads`` and flushing subnormal floats on CPU hold for the run only: both are restored
    when it returns.
    """
    device = select_device(None if config.device == "auto" else config.device)
    threads = torch.get_num_threads()
    try:
        if config.num_threads:
            torch.set_num_threads(config.num_threads)
        command = command or command_line()
        with flush_denormal(device):
            return _pretrain(config, device=device, out=Path(out), resume=resume, show_progress=show_progress,
                             command=command)  # fmt: skip
    finally:
        torch.set_num_threads(threads)


def _resume_state(out: Path) -> dict[str, Any]:
    """The run's per-epoch state (tensors and plain values, ``weights_only=True``); one line when unusable."""
    ckpt = out / CHECKPOINT
    if not ckpt.is_file():
        raise CheckpointError(f"{out}: nothing to resume (no {CHECKPOINT})")
    state = load_tensors(ckpt, what="training state")
    if missing := [k for k in ("model", "optimizer", "epoch", "torch_rng", "wall_time_s") if k not in state]:
        raise CheckpointError(f"{ckpt}: cannot resume from it (missing {', '.join(missing)})")
    return state


def _pretrain(config: PretrainConfig, *, device: torch.device, out: Path, resume: bool, show_progress: bool,
              command: str) -> PretrainResult:  # fmt: skip
    from crystalsearch.data import datasets

    dist = D.init_distributed(device)
    device = dist.device
    state = _resume_state(out) if resume else None
    start_epoch = int(state["epoch"]) if state else 0
    if dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "config.json", config_dict(config))
        _restore_metrics(out / METRICS, start_epoch)

    records = datasets.load(config.dataset).records
    if config.max_structures:
        records = records[: config.max_structures]
    graph = config.graph
    if dist.is_main:
        store = graph.store_for_records(records, num_candidates=config.num_candidates, show_progress=show_progress)
    D.barrier(dist)
    if not dist.is_main:
        store = graph.store_for_records(records, num_candidates=config.num_candidates)
    elements = np.zeros((len(store), 101), dtype=bool)
    elements[np.repeat(np.arange(len(store)), store.num_atoms()), store.atomic_numbers] = True
    probe = None
    if config.probe and dist.is_main:
        from crystalsearch.train.probe import load_probe

        probe = load_probe(max_structures=config.probe_max_structures, graph=graph)

    torch.manual_seed(config.seed)
    model = ContrastiveModel(config.encoder).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if state is None and config.init:
        _warm_start(model, config)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
    wrapped: torch.nn.Module = model
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel

        wrapped = DistributedDataParallel(model, device_ids=[dist.local_rank] if device.type == "cuda" else None)
    forward = MaybeCompiled(wrapped, enabled=config.compile)
    per_rank = max(2, config.batch_size // dist.world_size)
    steps = len(store) // (per_rank * dist.world_size)
    if steps == 0:
        raise ValueError(f"{len(store)} structures are fewer than one batch of {config.batch_size}")
    use_amp = use_bf16(device, amp=config.amp, amp_cpu=config.amp_cpu)
    hardware = hardware_of(device, dist.world_size, precision="bf16 autocast" if use_amp else "fp32")
    t_run = time.perf_counter() - float(state["wall_time_s"]) if state else time.perf_counter()
    metrics: dict[str, Any] = dict(state["last_metrics"]) if state else {}
    history = list(state.get("history", [])) if state else []
    if state and not history:  # a checkpoint written before runs kept their history
        history = [segment(first=1, last=start_epoch, hardware="not recorded", wall_time_s=float(state["wall_time_s"]),
                           command="not recorded")]  # fmt: skip
    run = _Run(config=config, model=model, store=store, elements=elements, forward=forward, optimizer=optimizer,
               dist=dist, device=device, use_amp=use_amp, steps=steps, per_rank=per_rank,
               show_progress=show_progress)  # fmt: skip

    for epoch in range(start_epoch, config.epochs):
        metrics = run.epoch(epoch)
        if dist.is_main:
            metrics.update(_validate(model, store, aug=config.augment, device=device, probe=probe, seed=config.seed,
                                     temperature=config.temperature))  # fmt: skip
            wall = time.perf_counter() - t_run
            history = add_segment(history, segment(first=start_epoch + 1, last=epoch + 1, hardware=hardware,
                                                   wall_time_s=wall, command=command))  # fmt: skip
            _save_epoch(out, model, optimizer, config, metrics, epoch + 1, wall, history)
            meta = pretrain_metadata(config, metrics=metrics, epochs=epoch + 1, structures=len(store), wall_time_s=wall,
                                     history=history)  # fmt: skip
            _export_encoder(out, model, config, meta)
        D.barrier(dist)
    wall = time.perf_counter() - t_run
    D.shutdown(dist)
    return PretrainResult(out, out / "encoder", config.epochs, wall, metrics)


@dataclass
class _Run:
    """What one training epoch needs (the loop body of :func:`pretrain`)."""

    config: PretrainConfig
    model: ContrastiveModel
    store: GraphStore
    elements: np.ndarray
    forward: MaybeCompiled
    optimizer: torch.optim.Optimizer
    dist: D.DistInfo
    device: torch.device
    use_amp: bool
    steps: int
    per_rank: int
    show_progress: bool

    def epoch(self, epoch: int) -> dict[str, Any]:
        config, dist, steps, per_rank, store = self.config, self.dist, self.steps, self.per_rank, self.store
        self.model.train()
        order = np.random.default_rng([config.seed, epoch]).permutation(len(store))
        rng = np.random.default_rng([config.seed, epoch, dist.rank, 1])
        t0, t_aug, sums, n_pairs = time.perf_counter(), 0.0, {"loss": 0.0, "loss_clr": 0.0, "loss_cs": 0.0}, 0
        batches = [np.sort(order[(s * dist.world_size + dist.rank) * per_rank :][:per_rank]) for s in range(steps)]
        # Views of the next batch are prepared in a background thread while the model runs (numpy
        # releases the GIL); one worker keeps the RNG draws in order, so runs stay reproducible.
        with _progress(self.show_progress and dist.is_main, f"epoch {epoch + 1}/{config.epochs}", steps) as bar, \
                ThreadPoolExecutor(max_workers=1) as pool:  # fmt: skip
            pending = pool.submit(_views_batch, store, batches[0], config.augment, rng)
            for step in range(steps):
                idx = batches[step]
                ta = time.perf_counter()
                batch = pending.result()
                if step + 1 < steps:
                    pending = pool.submit(_views_batch, store, batches[step + 1], config.augment, rng)
                batch = batch.to(self.device, non_blocking=True)
                el = torch.from_numpy(self.elements[idx]).to(self.device)
                t_aug += time.perf_counter() - ta
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_amp):
                    z = self.forward(batch)
                if dist.enabled:  # negatives from every rank: [view 1 of all ranks, view 2 of all ranks]
                    z1, z2 = z.float().chunk(2)
                    z = torch.cat([D.gather_with_grad(z1, dist), D.gather_with_grad(z2, dist)])
                    el = D.gather_no_grad(el, dist)
                loss, parts = contrastive_loss(z, el, config=config)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                sums["loss"] += float(loss.detach())
                for k, v in parts.items():
                    sums[k] += v
                n_pairs += len(idx) * dist.world_size
                bar.update(loss=sums["loss"] / (step + 1), rate=n_pairs / (time.perf_counter() - t0))
        wall_epoch = time.perf_counter() - t0
        metrics = {
            "epoch": epoch + 1,
            "loss": D.all_reduce_mean(sums["loss"] / steps, dist),
            "loss_clr": D.all_reduce_mean(sums["loss_clr"] / steps, dist),
            "pairs_per_s": n_pairs / wall_epoch,
            "augment_fraction": t_aug / wall_epoch,  # time the step waited for its views
            "epoch_time_s": wall_epoch,
        }
        if config.loss == "nt_xent+cs":
            metrics["loss_cs"] = D.all_reduce_mean(sums["loss_cs"] / steps, dist)
        return metrics


def _restore_metrics(path: Path, epoch: int) -> None:
    """Make ``metrics.jsonl`` hold exactly one line per epoch up to the checkpoint's ``epoch``.

    The line of an epoch is appended before its checkpoint is replaced: a run killed in between leaves a
    line (or a torn part of one) for an epoch the checkpoint does not have, which the resumed run trains
    and logs again. Such lines are dropped here, before training resumes.
    """
    rows = read_jsonl(path)
    kept = {int(r["epoch"]): r for r in rows if int(r.get("epoch", 0)) <= epoch}
    if len(kept) != len(rows) or (path.is_file() and not path.read_text().endswith("\n")):
        write_jsonl(path, [kept[e] for e in sorted(kept)])


def _save_epoch(out: Path, model: ContrastiveModel, optimizer: torch.optim.Optimizer, config: PretrainConfig,
                metrics: dict[str, Any], epoch: int, wall: float, history: list[dict[str, Any]]) -> None:  # fmt: skip
    append_jsonl(out / METRICS, metrics)
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": epoch,
        "torch_rng": torch.get_rng_state(),
        "config": config_dict(config),
        "last_metrics": metrics,
        "wall_time_s": wall,
        "history": history,
    }
    atomic_write(out / CHECKPOINT, lambda fh: torch.save(state, fh))


def _warm_start(model: ContrastiveModel, config: PretrainConfig) -> None:
    """Start the encoder from ``config.init``'s weights (same architecture and graph settings required)."""
    from crystalsearch.model.embed import Encoder

    enc = Encoder.load(config.init, device="cpu")
    if enc.model.config != model.encoder.config:
        raise CheckpointError(f"{config.init}: encoder {enc.model.config} differs from {model.encoder.config}")
    if enc.graph != config.graph:
        raise CheckpointError(f"{config.init}: graphs {enc.graph} differ from the run's {config.graph}")
    model.encoder.load_state_dict(enc.model.state_dict())


def _export_encoder(out: Path, model: ContrastiveModel, config: PretrainConfig, metadata: dict[str, Any]) -> None:
    from crystalsearch.model.checkpoint import save_checkpoint

    encoder = model.encoder.config
    save_checkpoint(
        out / "encoder",
        state_dict=model.encoder.state_dict(),
        model_class="crystalsearch.model.cgcnn.CGCNNEncoder",
        config=encoder.to_dict(),
        graph=config.graph,
        metadata=metadata,
        card=pretrain_card(encoder=encoder, graph=config.graph, metadata=metadata),
    )


@torch.no_grad()
def _validate(model: ContrastiveModel, store: GraphStore, *, aug: AugmentConfig, device: torch.device,
              probe: Any, seed: int, temperature: float) -> dict[str, float]:  # fmt: skip
    """Alignment/uniformity and NT-Xent (at the training ``temperature``) of a fixed 1024-crystal sample,
    and the bulk-modulus linear probe."""
    model.eval()
    idx = np.sort(np.random.default_rng(seed + 12345).choice(len(store), size=min(1024, len(store)), replace=False))
    v1, v2 = make_views(store, idx, aug=aug, rng=np.random.default_rng(seed + 1))
    z1, z2 = model(v1.to(device)), model(v2.to(device))
    align, uniform = alignment_uniformity(z1, z2)
    val_nt_xent = float(nt_xent(z1, z2, temperature=temperature))
    out = {"val_alignment": align, "val_uniformity": uniform, "val_nt_xent": val_nt_xent}
    if probe is not None:
        from crystalsearch.train.probe import ridge_probe_mae

        hs = []
        for start in range(0, len(probe.store), 512):
            sel = np.arange(start, min(start + 512, len(probe.store)))
            hs.append(model.encoder(probe.store.batch(sel).to(device)).float().cpu().numpy())
        out["probe_bulk_mae_gpa"] = ridge_probe_mae(np.concatenate(hs), probe)
    model.train()
    return out


class _progress:
    """A rich progress bar with loss and pairs/s, or a no-op."""

    def __init__(self, enabled: bool, description: str, total: int) -> None:
        self.enabled, self.description, self.total = enabled, description, total

    def __enter__(self) -> _progress:
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]:.4f}  {task.fields[rate]:.0f} pairs/s"), TimeRemainingColumn(),
            )  # fmt: skip
            self.bar.__enter__()
            self.task = self.bar.add_task(self.description, total=self.total, loss=float("nan"), rate=0.0)
        return self

    def update(self, *, loss: float, rate: float) -> None:
        if self.enabled:
            self.bar.update(self.task, advance=1, loss=loss, rate=rate)

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.bar.__exit__(None, None, None)
