"""CrystalCLR / CrystalCLR+CS contrastive pretraining (single process, or DDP under ``torchrun``).

Run folder: ``config.json``, ``metrics.jsonl`` (one line per epoch), ``checkpoint.pt`` (model,
optimizer, epoch, RNG; written atomically each epoch) and ``encoder/`` (an encoder checkpoint folder
with its model card, refreshed each epoch). Only rank 0 writes.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from crystalsearch.augment.fast import AugmentConfig, augment
from crystalsearch.embed import select_device, use_bf16
from crystalsearch.errors import CheckpointError
from crystalsearch.graph.batch import concat_batches
from crystalsearch.graph.store import GraphStore
from crystalsearch.losses import alignment_uniformity, composition_similarity_loss, nt_xent
from crystalsearch.model.cgcnn import ContrastiveModel, EncoderConfig
from crystalsearch.model.compile import MaybeCompiled
from crystalsearch.train import distributed as D
from crystalsearch.train.config import PretrainConfig, config_dict

CHECKPOINT = "checkpoint.pt"


@dataclass(frozen=True)
class PretrainResult:
    run_dir: Path
    encoder_dir: Path
    epochs_done: int
    wall_time_s: float
    final_metrics: dict[str, Any]


def augment_config(config: PretrainConfig) -> AugmentConfig:
    return AugmentConfig(
        perturb_p=config.perturb_p,
        strain_p=config.strain_p,
        column_replace_p=config.column_replace_p,
        supercell_p=config.supercell_p,
        one_sided=config.one_sided,
    )


def make_views(
    store: GraphStore, idx: np.ndarray, *, aug: AugmentConfig, rng: np.random.Generator
) -> tuple[Any, Any]:
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


def _save_training_state(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_suffix(".pt.partial")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _model_card(config: PretrainConfig, metrics: dict[str, Any], *, n_structures: int, wall: float, epochs: int,
                hardware: str, command: str) -> str:  # fmt: skip
    kind = "CrystalCLR+CS (NT-Xent + composition-similarity loss)" if config.loss == "nt_xent+cs" else "CrystalCLR"
    augs = (f"perturb p={config.perturb_p}, strain p={config.strain_p}, column replace p={config.column_replace_p}"
            + (", one-sided" if config.one_sided else ""))
    rows = "\n".join(f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in metrics.items())
    return f"""# {config.name}: {kind} CGCNN encoder

Self-supervised CGCNN encoder (3 gated convolutions, 64 atom features, mean pooling, 128-d output h)
pretrained with the CrystalCLR recipe on crystal structures only (no labels).

| | this checkpoint | CrystalCLR paper |
|---|---|---|
| data | {n_structures:,} Materials Project structures (`{config.dataset}`, shipped, CC BY 4.0) | 90k MP structures |
| epochs | {epochs} | 5000 |
| batch size | {config.batch_size} | 512 |
| optimizer | Adam, lr {config.lr:g} | Adam, lr 1e-4 |
| temperature | {config.temperature:g} | not stated |
| augmentations | {augs} | same recipe |
| hardware | {hardware} | GPU |
| wall time | {wall / 60:.1f} min | — |

Graph settings: radius {config.radius} Å, {config.max_neighbors} neighbours, {config.num_candidates} candidates
for the batched augmentation. Splits: pretraining uses every structure (no labels are seen).

## Final metrics (last epoch)
| metric | value |
|---|---|
{rows}

`probe_bulk_mae_gpa` is the validation MAE (GPa) of a ridge regression of log K_VRH on the frozen
embeddings of the shipped `mp_elasticity` set (seed-0 80/10/10 split; fit on train, scored on val).

This is a short CPU run, far from the paper's 5000 GPU epochs: treat the numbers as such.

## Reproduce
```
{command}
```
"""


def pretrain(
    config: PretrainConfig,
    *,
    out: Path,
    resume: bool = False,
    show_progress: bool = True,
    command: str | None = None,
) -> PretrainResult:
    """Pretrain an encoder; with ``resume`` continue the run in ``out`` from its last checkpoint."""
    from crystalsearch import datasets
    from crystalsearch.graph.dataset import store_for_records
    from crystalsearch.model.checkpoint import save_checkpoint

    device = select_device(None if config.device == "auto" else config.device)
    dist = D.init_distributed(device)
    device = dist.device
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    command = command or " ".join(shlex.quote(a) for a in ["crystalsearch", *sys.argv[1:]])
    out = Path(out)
    start_epoch = 0
    state: dict[str, Any] | None = None
    if resume:
        ckpt = out / CHECKPOINT
        if not ckpt.is_file():
            raise CheckpointError(f"{out}: nothing to resume (no {CHECKPOINT})")
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        start_epoch = int(state["epoch"])
    if dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(config_dict(config), indent=2) + "\n")

    records = datasets.load(config.dataset).records
    if config.max_structures:
        records = records[: config.max_structures]
    graph_kw = {"radius": config.radius, "max_neighbors": config.max_neighbors, "num_candidates": config.num_candidates}
    if dist.is_main:
        store = store_for_records(records, show_progress=show_progress, **graph_kw)  # type: ignore[arg-type]
    D.barrier(dist)
    if not dist.is_main:
        store = store_for_records(records, show_progress=False, **graph_kw)  # type: ignore[arg-type]
    elements = np.zeros((len(store), 101), dtype=bool)
    elements[np.repeat(np.arange(len(store)), store.num_atoms()), store.atomic_numbers] = True
    probe = None
    if config.probe and dist.is_main:
        from crystalsearch.train.probe import load_probe

        probe = load_probe(
            max_structures=config.probe_max_structures, radius=config.radius, max_neighbors=config.max_neighbors
        )

    torch.manual_seed(config.seed)
    enc_config = EncoderConfig(config.atom_fea_len, config.n_conv, config.h_dim, config.proj_dim)
    model = ContrastiveModel(enc_config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
    wrapped: torch.nn.Module = model
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel

        wrapped = DistributedDataParallel(model, device_ids=[dist.local_rank] if device.type == "cuda" else None)
    forward = MaybeCompiled(wrapped, enabled=config.compile)
    aug = augment_config(config)
    per_rank = max(2, config.batch_size // dist.world_size)
    steps = len(store) // (per_rank * dist.world_size)
    if steps == 0:
        raise ValueError(f"{len(store)} structures are fewer than one batch of {config.batch_size}")
    use_amp = use_bf16(device, amp=config.amp, amp_cpu=config.amp_cpu)
    hardware = _hardware(device, dist.world_size) + (", bf16 autocast" if use_amp else ", fp32")
    t_run = time.perf_counter() - float(state["wall_time_s"]) if state else time.perf_counter()
    metrics: dict[str, Any] = dict(state["last_metrics"]) if state else {}

    for epoch in range(start_epoch, config.epochs):
        model.train()
        order = np.random.default_rng([config.seed, epoch]).permutation(len(store))
        rng = np.random.default_rng([config.seed, epoch, dist.rank, 1])
        t0, t_aug, sums, n_pairs = time.perf_counter(), 0.0, {"loss": 0.0, "loss_clr": 0.0, "loss_cs": 0.0}, 0
        batches = [np.sort(order[(s * dist.world_size + dist.rank) * per_rank :][:per_rank]) for s in range(steps)]
        # Views of the next batch are prepared in a background thread while the model runs (numpy
        # releases the GIL); one worker keeps the RNG draws in order, so runs stay reproducible.
        with _progress(show_progress and dist.is_main, f"epoch {epoch + 1}/{config.epochs}", steps) as bar, \
                ThreadPoolExecutor(max_workers=1) as pool:  # fmt: skip
            pending = pool.submit(_views_batch, store, batches[0], aug, rng)
            for step in range(steps):
                idx = batches[step]
                ta = time.perf_counter()
                batch = pending.result()
                if step + 1 < steps:
                    pending = pool.submit(_views_batch, store, batches[step + 1], aug, rng)
                batch = batch.to(device, non_blocking=True)
                el = torch.from_numpy(elements[idx]).to(device)
                t_aug += time.perf_counter() - ta
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                    z = forward(batch)
                if dist.enabled:  # negatives from every rank: [view 1 of all ranks, view 2 of all ranks]
                    z1, z2 = z.float().chunk(2)
                    z = torch.cat([D.gather_with_grad(z1, dist), D.gather_with_grad(z2, dist)])
                    el = D.gather_no_grad(el, dist)
                loss, parts = contrastive_loss(z, el, config=config)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                sums["loss"] += float(loss.detach())
                for k, v in parts.items():
                    sums[k] += v
                n_pairs += len(idx) * dist.world_size
                rate = n_pairs / (time.perf_counter() - t0)
                bar.update(loss=sums["loss"] / (step + 1), rate=rate)
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
        if dist.is_main:
            metrics.update(_validate(model, store, aug=aug, device=device, probe=probe, seed=config.seed))
            _save_epoch(out, model, optimizer, config, metrics, epoch + 1, time.perf_counter() - t_run)
            _export_encoder(
                out, model, config, metrics, save_checkpoint, n_structures=len(store), wall=time.perf_counter() - t_run,
                epochs=epoch + 1, hardware=hardware, command=command,
            )  # fmt: skip
        D.barrier(dist)
    wall = time.perf_counter() - t_run
    D.shutdown(dist)
    return PretrainResult(out, out / "encoder", config.epochs, wall, metrics)


def _hardware(device: torch.device, world: int) -> str:
    if device.type == "cuda":
        return f"{world} x {torch.cuda.get_device_name(device)}"
    cpu = platform.processor() or platform.machine()
    return f"CPU ({cpu}, {torch.get_num_threads()} threads) x {world} process(es)"


def _save_epoch(out: Path, model: ContrastiveModel, optimizer: torch.optim.Optimizer, config: PretrainConfig,
                metrics: dict[str, Any], epoch: int, wall: float) -> None:  # fmt: skip
    with open(out / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps(metrics) + "\n")
    _save_training_state(
        out / CHECKPOINT,
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "epoch": epoch,
            "torch_rng": torch.get_rng_state(),
            "config": config_dict(config),
            "last_metrics": metrics,
            "wall_time_s": wall,
        },
    )


def _export_encoder(out: Path, model: ContrastiveModel, config: PretrainConfig, metrics: dict[str, Any], save: Any,
                    **card_kw: Any) -> None:  # fmt: skip
    save(
        out / "encoder",
        state_dict=model.encoder.state_dict(),
        model_class="crystalsearch.model.cgcnn.CGCNNEncoder",
        config={k: v for k, v in model.encoder.config.to_dict().items()},
        radius=config.radius,
        max_neighbors=config.max_neighbors,
        metadata={"pretrain": config_dict(config), "metrics": metrics, "epochs": card_kw["epochs"],
                  "wall_time_s": card_kw["wall"], "hardware": card_kw["hardware"], "command": card_kw["command"],
                  "structures": card_kw["n_structures"]},  # fmt: skip
        card=_model_card(config, metrics, **card_kw),
    )


@torch.no_grad()
def _validate(model: ContrastiveModel, store: GraphStore, *, aug: AugmentConfig, device: torch.device,
              probe: Any, seed: int) -> dict[str, float]:  # fmt: skip
    """Alignment/uniformity of a fixed 1024-crystal sample and the bulk-modulus linear probe."""
    model.eval()
    idx = np.sort(np.random.default_rng(seed + 12345).choice(len(store), size=min(1024, len(store)), replace=False))
    v1, v2 = make_views(store, idx, aug=aug, rng=np.random.default_rng(seed + 1))
    z1, z2 = model(v1.to(device)), model(v2.to(device))
    align, uniform = alignment_uniformity(z1, z2)
    out = {"val_alignment": align, "val_uniformity": uniform, "val_nt_xent": float(nt_xent(z1, z2, temperature=0.1))}
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
