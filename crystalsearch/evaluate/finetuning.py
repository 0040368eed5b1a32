"""Table 1, bottom: fine-tuning from random init vs the CrystalCLR and CrystalCLR+CS encoders.

Each (property, init, seed) is one :func:`crystalsearch.train.finetune.finetune` run (CGCNN encoder +
regression head, early stopping on validation MAE) on ``dataset.split(seed=s)``, the splits of the
random-forest half. To keep the CPU cost sane the learning rate is chosen **once per (property, init)**:
on the first seed (0) the whole ``lrs`` grid is trained and the best validation MAE picks the rate;
the other seeds (1-4) reuse it. The paper picks the best-validation rate per run.

Resumable: every finished run is appended to ``finetune_runs.jsonl`` in the output folder, keyed by
its settings (property, init, encoder weights, epochs, patience, grid, batch size, data size) and
seed; a rerun with the same settings skips it. After every run the ``finetune`` half of
``table1.json`` and the report are refreshed from all matching runs.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from crystalsearch.evaluate.embeddings import PROPERTIES
from crystalsearch.evaluate.features import DEFAULT_ENCODERS, encoder_source, label, load_encoder
from crystalsearch.evaluate.record import update
from crystalsearch.evaluate.results import append_jsonl, command_line, mean_std, now, read_jsonl
from crystalsearch.progress import Progress

RUNS = "finetune_runs.jsonl"
INITS = ("random", "crystalclr", "crystalclr_cs")


@dataclass(frozen=True)
class FinetuneEvalConfig:
    """Settings of ``crystalsearch evaluate finetune``."""

    properties: tuple[str, ...] = PROPERTIES
    inits: tuple[str, ...] = INITS
    encoders: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_ENCODERS))
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    lrs: tuple[float, ...] = (1e-3, 3e-4, 1e-4)
    epochs: int = 60
    patience: int = 10
    batch_size: int = 128
    max_structures: int = 0
    device: str = "auto"
    threads: int = 0
    compile: bool = True  # torch.compile the training forward pass (not part of a run's key: same numbers)


def settings_key(settings: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _init_specs(config: FinetuneEvalConfig) -> dict[str, tuple[str, dict[str, Any] | None]]:
    """init name -> (FinetuneConfig.init, encoder provenance); checkpoints are loaded (fail early)."""
    from crystalsearch.errors import InputError

    out: dict[str, tuple[str, dict[str, Any] | None]] = {}
    for init in config.inits:
        if init == "random":
            out[init] = ("random", None)
            continue
        if init not in config.encoders:
            raise InputError("--inits", f"no encoder for {init!r}; give one with --encoders {init}=PATH")
        spec = config.encoders[init]
        if spec.startswith("random"):
            raise InputError("--encoders", f"{init}={spec}: fine-tuning starts from a checkpoint folder or name")
        enc = load_encoder(spec, device="cpu")
        out[init] = (spec, asdict(encoder_source(init, spec, enc)))
    return out


def evaluate_finetune(
    config: FinetuneEvalConfig, *, out: Path, progress: Progress | None = None
) -> dict[str, dict[str, dict[str, Any]]]:
    """Run (or resume) the fine-tuning grid; returns ``{property: {init: cell provenance}}``."""
    from crystalsearch.evaluate.embeddings import property_data
    from crystalsearch.train.config import FinetuneConfig
    from crystalsearch.train.finetune import describe, finetune, init_graph

    progress = progress or Progress(False)
    out = Path(out)
    inits = _init_specs(config)
    lr_seed = config.seeds[0]
    command = command_line()
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for prop in config.properties:
        data = property_data(prop, max_structures=config.max_structures, seeds=config.seeds)
        stores: dict[Any, Any] = {}  # graph stores by graph settings (each init's checkpoint has its own)
        for init, (spec, source) in inits.items():
            settings = {
                "property": prop, "init": init, "weights": (source or {}).get("digest", "random"),
                "epochs": config.epochs, "patience": config.patience, "lrs": list(config.lrs),
                "batch_size": config.batch_size, "max_structures": config.max_structures, "lr_seed": lr_seed,
            }  # fmt: skip
            key = settings_key(settings)
            bar = progress.task(f"{prop}: fine-tune from {label(init, finetune=True)}", len(config.seeds))
            for seed in config.seeds:
                done = {r["seed"]: r for r in read_jsonl(out / RUNS) if r.get("key") == key}
                if seed in done:
                    bar(1)
                    continue
                lrs = config.lrs if seed == lr_seed else (float(done[lr_seed]["lr"]),)
                graph = init_graph(spec)
                if graph not in stores:
                    stores[graph] = graph.store_for_records(data["records"])
                ft = FinetuneConfig(
                    property=prop, init=spec, lrs=lrs, epochs=config.epochs, patience=config.patience,
                    batch_size=config.batch_size, seed=seed, max_structures=config.max_structures,
                    device=config.device, num_threads=config.threads, compile=config.compile,
                )  # fmt: skip
                c0 = time.process_time()
                result = finetune(ft, store=stores[graph], show_progress=False)
                row = {
                    **describe(result), "key": key, "seed": seed, "init": init, "init_spec": spec,
                    "lr_grid": {str(k): v for k, v in result.lr_grid.items()}, "lr_chosen_on_seed": lr_seed,
                    "settings": settings, "date": now(),
                    "cpu_time_s": round(time.process_time() - c0, 1),
                }  # fmt: skip
                append_jsonl(out / RUNS, row)
                name = label(init, finetune=True)
                progress.log(
                    f"{prop:22s} {name:16s} seed {seed}: lr {result.lr:g}, {result.epochs_run} epochs, "
                    f"test MAE {result.test_mae:.4g} {result.unit} ({result.wall_time_s / 60:.1f} min)"
                )
                bar(1)
            rows = [r for r in read_jsonl(out / RUNS) if r.get("key") == key and r["seed"] in config.seeds]
            rows.sort(key=lambda r: config.seeds.index(r["seed"]))
            cell = _cell(rows, init=init, settings=settings, source=source, config=config, data=data, command=command)
            results.setdefault(prop, {})[init] = cell
            update(out, half="finetune", cells={prop: {init: cell}})
    return results


def _cell(rows: list[dict[str, Any]], *, init: str, settings: dict[str, Any], source: dict[str, Any] | None,
          config: FinetuneEvalConfig, data: dict[str, Any], command: str) -> dict[str, Any]:  # fmt: skip
    maes = [float(r["test_mae"]) for r in rows]
    mean, std = mean_std(maes)
    first = rows[0] if rows else {}
    return {
        "label": label(init, finetune=True), "maes": maes, "seeds": [r["seed"] for r in rows],
        "seeds_requested": list(config.seeds),
        "complete": len(rows) == len(config.seeds), "unit": data["spec"].unit, "dataset": data["spec"].dataset,
        "column": data["spec"].column, "n_records": data["n"], "n_dataset": len(data["dataset"]),
        "n_train": first.get("n_train"), "n_val": first.get("n_val"), "n_test": first.get("n_test"),
        "lr": first.get("lr"), "lr_grid": first.get("lr_grid"), "lr_policy":
        f"lr chosen on the validation split of seed {config.seeds[0]} from {list(config.lrs)}, reused for the others",
        "epochs_run": [r["epochs_run"] for r in rows], "val_maes": [r["val_mae"] for r in rows],
        "wall_time_s": [r["wall_time_s"] for r in rows],
        "cpu_time_s": [r.get("cpu_time_s", 0.0) for r in rows], "settings": settings, "encoder": source,
        "device": config.device, "date": now(), "command": command, "mae_mean": mean, "mae_std": std,
    }  # fmt: skip
