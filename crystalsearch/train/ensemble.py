"""Seed ensembles of property heads under the fixed protocol split (:mod:`crystalsearch.train.protocol`).

Every member trains on the same ``train`` part and stops on the same ``val`` part; members differ only by
the seed of their initialisation and batch order. Members are written as ``OUT/seed<k>/`` checkpoints as
they finish, so rerunning the same command resumes at the first unfinished seed, and within it at the next
epoch (``OUT/seed<k>.lr<lr>.partial.pt``, written after every epoch, removed when the member is saved).
Settings come from ``crystalsearch/configs/heads.toml`` (``[heads]`` for all properties,
``[heads.<property>]`` per property), then ``--set`` overrides.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crystalsearch.train.config import FinetuneConfig

if TYPE_CHECKING:
    import torch

    from crystalsearch.data.properties import PropertySpec
    from crystalsearch.structure.graph.settings import GraphSettings
    from crystalsearch.structure.graph.store import GraphStore
    from crystalsearch.train.finetune import TargetTransform
    from crystalsearch.train.protocol import ProtocolSplit

CONFIG = "heads"  # crystalsearch/configs/heads.toml


@dataclasses.dataclass(frozen=True)
class EnsembleConfig:
    """One property's ensemble: its members' fine-tuning settings, how many seeds, the training cap."""

    property: str
    seeds: int = 3
    max_train: int = 0  # 0 = the whole protocol train part; else a seeded subset (val/calib/test unchanged)
    finetune: FinetuneConfig = FinetuneConfig()


def load_ensemble_config(prop: str, path: str | Path | None = None, *, sets: Iterable[str] = ()) -> EnsembleConfig:
    """``[heads]`` then ``[heads.<prop>]`` of the TOML at ``path`` (default: the shipped heads config), then
    ``sets`` (``key=value``; ``seeds`` and ``max_train`` or any :class:`FinetuneConfig` field)."""
    from importlib import resources

    import tomllib

    from crystalsearch.errors import InputError
    from crystalsearch.train.config import load_config

    shipped = resources.files("crystalsearch.configs").joinpath(f"{CONFIG}.toml")
    text = Path(path).read_text() if path else shipped.read_text()
    where = str(path or f"{CONFIG}.toml")
    table = tomllib.loads(text).get("heads", {})
    values = {k: v for k, v in table.items() if not isinstance(v, dict)}
    values.update(table.get(prop, {}))
    for item in sets:
        key, eq, value = item.partition("=")
        if not eq:
            raise InputError("--set", f"expected KEY=VALUE, got {item!r}")
        values[key.strip()] = value.strip()
    seeds = int(values.pop("seeds", 3))
    max_train = int(values.pop("max_train", 0))
    overrides = {"property": prop, **{k: (",".join(map(str, v)) if isinstance(v, list) else v)
                                      for k, v in values.items()}}  # fmt: skip
    try:
        ft = load_config(FinetuneConfig, None, overrides=overrides)
    except InputError as exc:
        raise InputError(where, str(exc)) from None
    return EnsembleConfig(property=prop, seeds=seeds, max_train=max_train, finetune=ft)


@dataclasses.dataclass(frozen=True)
class _Prepared:
    """What every member of an ensemble shares: the protocol split (``used``: its records, in order;
    ``train``/``val``/``test`` index into them), labels ``y`` of ``used``, their graphs and the target scaling."""

    spec: PropertySpec
    split: ProtocolSplit
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    y: np.ndarray
    graph: GraphSettings
    store: GraphStore
    transform: TargetTransform


def train_ensemble(
    config: EnsembleConfig,
    out: Path,
    *,
    command: str = "",
    log: Callable[[str], None] = print,
    start_choice: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train (or resume) the members of ``config`` into ``out/seed<k>``; returns a summary per member.
    ``start_choice``: the start recommendation (:class:`crystalsearch.train.start.StartChoice` as a dict) recorded on
    every member's card and metadata."""
    import torch

    from crystalsearch.model.embed import select_device

    ft = config.finetune
    data = _prepare(config, log)
    device = select_device(None if ft.device == "auto" else ft.device)
    threads = torch.get_num_threads()
    members = []
    try:
        if ft.num_threads:
            torch.set_num_threads(ft.num_threads)
        for seed in range(ft.seed, ft.seed + config.seeds):
            folder = out / f"seed{seed}"
            if (folder / "model.json").is_file():
                log(f"{config.property} seed {seed}: done before ({folder}), kept")
                members.append({"seed": seed, "checkpoint": str(folder), "resumed": True})
                continue
            members.append(
                _train_member(
                    config, data, seed=seed, out=out, device=device, command=command, log=log, start_choice=start_choice
                )
            )
    finally:
        torch.set_num_threads(threads)
    return {"property": config.property, "split": data.split.to_dict(), "members": members,
            "config": dataclasses.asdict(config)}  # fmt: skip


def _prepare(config: EnsembleConfig, log: Callable[[str], None]) -> _Prepared:
    """The protocol split (capped at ``max_train``), its labels and graphs, and the target scaling."""
    from crystalsearch.data import datasets
    from crystalsearch.train.finetune import TargetTransform, init_graph, property_spec
    from crystalsearch.train.protocol import protocol_split

    spec = property_spec(config.property)
    ds = datasets.load(spec.dataset)
    split = protocol_split(config.property, dataset=ds).capped(config.max_train)
    used = split.used
    local = {int(g): i for i, g in enumerate(used)}
    train, val, test = (
        np.array([local[int(g)] for g in split.part(p)], dtype=np.int64) for p in ("train", "val", "test")
    )
    y = ds.targets(spec.column)[used]
    graph = init_graph(config.finetune.init)
    t0 = time.perf_counter()
    store = graph.store_for_records([ds.records[int(i)] for i in used])
    log(f"{config.property}: {len(used):,} graphs ready in {time.perf_counter() - t0:.0f} s "
        f"({len(train):,} train, {len(val):,} val, {len(split.calib):,} calib, {len(test):,} test)")  # fmt: skip
    return _Prepared(spec=spec, split=split, train=train, val=val, test=test, y=y, graph=graph, store=store,
                     transform=TargetTransform.fit(y[train], log=spec.log))  # fmt: skip


def _train_member(config: EnsembleConfig, data: _Prepared, *, seed: int, out: Path, device: torch.device,
                  command: str, log: Callable[[str], None],
                  start_choice: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """Train member ``seed`` at each learning rate of the grid (each resuming from its per-epoch loop state),
    keep the one with the lowest val MAE as ``out/seed<seed>`` and remove the loop states."""
    from crystalsearch.model.embed import flush_denormal
    from crystalsearch.train import loop_state
    from crystalsearch.train.card import hardware_of, start_note
    from crystalsearch.train.finetune import (
        FinetuneResult,
        _train_one,
        init_model,
        predict_store,
        save_finetuned,
        warm_model,
        with_seed,
    )

    ft, spec, split, y = config.finetune, data.spec, data.split, data.y
    folder = out / f"seed{seed}"
    cfg = with_seed(ft, seed)
    start = time.perf_counter()
    results = {}
    partials = {lr: out / f"seed{seed}.lr{lr:g}.partial.pt" for lr in ft.lrs}
    for lr in ft.lrs:
        model = (warm_model(ft.warm_start, seed=seed, transform=data.transform, graph=data.graph,
                            split=split.to_dict()) if ft.warm_start
                 else init_model(ft.init, seed=seed))  # fmt: skip
        rng = np.random.default_rng([seed, 7])
        if partials[lr].is_file():
            log(f"{config.property} seed {seed}: resuming from {partials[lr]}")
        with flush_denormal(device):
            results[lr] = _train_one(model, data.store, y, data.train, data.val, transform=data.transform,
                                     config=cfg, lr=lr, device=device, rng=rng, checkpoint=partials[lr],
                                     on_epoch=_epoch_logger(log, config.property, seed, spec.unit,
                                                            cfg.epochs))  # fmt: skip
    best_lr = min(results, key=lambda lr: results[lr][1])
    model, val_mae, epochs = results[best_lr]
    pred = data.transform.inverse(predict_store(model, data.store, data.test, device=device))
    spent = sum(loop_state.spent(path)[0] for path in partials.values()) or time.perf_counter() - start
    result = FinetuneResult(
        property=spec.name, init=ft.init, lr=best_lr, epochs_run=epochs, val_mae=val_mae,
        test_mae=float(np.mean(np.abs(pred - y[data.test]))), unit=spec.unit, n_train=len(data.train),
        n_val=len(data.val), n_test=len(data.test), wall_time_s=spent,
        lr_grid={lr: r[1] for lr, r in results.items()}, model=model.cpu(), transform=data.transform,
        test_predictions=pred, test_indices=split.test, graph=data.graph, hardware=hardware_of(device),
    )  # fmt: skip
    history = warm_history(ft.warm_start, seed) if ft.warm_start else []
    extra = protocol_note(split.to_dict()) + history_note(history, transform=data.transform.to_dict())
    extra += start_note(start_choice) if start_choice else ""
    save_finetuned(result, folder, cfg, command=command or None, extra_card=extra,
                   metadata={"protocol": split.to_dict(), "history": history,
                             **({"start": start_choice} if start_choice else {})})  # fmt: skip
    for partial in partials.values():
        partial.unlink(missing_ok=True)
    log(f"{config.property} seed {seed}: {epochs} epochs, val MAE {val_mae:.4g}, member test MAE "
        f"{result.test_mae:.4g} {spec.unit}, {result.wall_time_s / 60:.1f} min -> {folder}")  # fmt: skip
    return {"seed": seed, "checkpoint": str(folder), "epochs_run": epochs, "lr": best_lr, "val_mae": val_mae,
            "test_mae": result.test_mae, "wall_time_s": round(result.wall_time_s, 1)}  # fmt: skip


def _epoch_logger(log: Callable[[str], None], prop: str, seed: int, unit: str,
                  epochs: int) -> Callable[[int, float, float], None]:  # fmt: skip
    """One progress line per epoch of a member (long runs are watched through their log)."""
    t0 = time.perf_counter()

    def on_epoch(epoch: int, val_mae: float, best: float) -> None:
        log(f"{prop} seed {seed}: epoch {epoch}/{epochs}, val MAE {val_mae:.4g} {unit} (best {best:.4g}), "
            f"{(time.perf_counter() - t0) / 60:.1f} min")  # fmt: skip

    return on_epoch


def warm_history(source: str, seed: int) -> list[dict[str, Any]]:
    """The earlier stages of a warm-started member: its source's own history, then the source itself."""
    from crystalsearch.model.checkpoint import read_info, resolve

    meta = read_info(resolve(source) / f"seed{seed}").metadata
    ft = meta.get("finetune", {})
    stage = {"checkpoint": f"{source}/seed{seed}", "init": meta.get("init"), "epochs_run": meta.get("epochs_run"),
             "lr": meta.get("lr"), "schedule": ft.get("schedule", "constant"), "loss": ft.get("loss", "mse"),
             "val_mae": meta.get("val_mae"), "test_mae": meta.get("test_mae"), "wall_time_s": meta.get("wall_time_s"),
             "command": meta.get("command"), "transform": meta.get("transform")}  # fmt: skip
    return [*meta.get("history", []), stage]


def history_note(history: list[dict[str, Any]], *, transform: dict[str, Any] | None = None) -> str:
    """Model-card table of the stages before this one (empty when the member started fresh); with this
    stage's target ``transform``, a line saying where the labels changed between stages."""
    if not history:
        return ""
    scales = [*(h.get("transform") for h in history), transform]  # each stage's, then this one's
    changed = [i for i, (a, b) in enumerate(zip(scales, scales[1:]), 1) if a and b and not _same_scale(a, b)]
    relabel = "" if not changed else (
        f"\nThe labels changed after stage {', '.join(map(str, changed))} (another target standardisation): the "
        "head's output layer was rescaled to predict the same values under the new one, and each stage's MAEs "
        "are on the labels it was trained with.\n"
    )  # fmt: skip
    rows = "\n".join(
        f"| {i + 1} | `{h['init']}` | {h['epochs_run']} | {h['lr']:g}, {h['schedule']} | {h['loss']} | "
        f"{h['val_mae']:.4g} | {h['test_mae']:.4g} | {(h['wall_time_s'] or 0) / 60:.1f} min |"
        for i, h in enumerate(history)
    )
    return ("\nEarlier stages (this member continued from the last one, encoder and head):\n\n"
            "| stage | init | epochs | lr, schedule | loss | val MAE | test MAE | wall time |\n"
            f"|---|---|---|---|---|---|---|---|\n{rows}\n{relabel}")  # fmt: skip


def _same_scale(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return bool(np.allclose([a["mean"], a["std"]], [b["mean"], b["std"]]))


def protocol_note(split: dict[str, Any]) -> str:
    """Model-card paragraph on the protocol split a member was trained under."""
    cap = ""
    if split["n_train"] < split["n_train_full"]:
        cap = f" (a seeded subset of the {split['n_train_full']:,}-record train part: CPU-sized run)"
    grouped = ", polymorphs of one formula kept together" if split["by_formula"] else ""
    return (
        f"\nProtocol split (seed {split['seed']}{grouped}): {split['n_train']:,} train{cap} / {split['n_val']:,} "
        f"val / {split['n_calib']:,} calibration / {split['n_test']:,} test; the test MAE above is this member's "
        "on the shared test split; the ensemble's is in the ensemble folder's README.md.\n"
    )
