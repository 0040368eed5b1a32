"""`crystalsearch train all`: pretrain -> fine-tune the property heads -> rebuild the default index.

Each step records its completion in ``<out>/state.json``; a finished step is not redone, an
interrupted one resumes (pretraining from its last epoch checkpoint, heads per finished seed, the
index build from its saved embedding chunks). Outputs are swapped in atomically when a step
succeeds: ``<out>/models/crystalclr_cs`` (the new default encoder), ``<out>/models/heads/<p>/seed<k>``
and the index. With the default ``out`` (the user data home) the new models become the defaults that
``similar`` and ``predict`` use.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path
from typing import Any

import tomllib

from crystalsearch.atomic import atomic_write_json, staged_dir
from crystalsearch.errors import InputError


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(str(path), "config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(str(path), f"invalid TOML ({exc})") from None


class _State:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}

    def done(self, step: str) -> bool:
        return bool(self.data.get(step, {}).get("done"))

    def finish(self, step: str, **info: Any) -> None:
        self.data[step] = {"done": True, **info}
        atomic_write_json(self.path, self.data)


def _install_folder(src: Path, dest: Path) -> None:
    """Copy ``src`` to ``dest`` atomically (copy into a temporary sibling, then swap)."""
    with staged_dir(dest) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)


def train_all(
    config_path: Path,
    *,
    out: Path | None = None,
    epochs: int | None = None,
    device: str | None = None,
    show_progress: bool = True,
    log: Any = print,
) -> dict[str, Any]:
    """Run the three steps; returns a summary (times, metrics, output paths)."""
    from crystalsearch.paths import data_home
    from crystalsearch.train.config import PretrainConfig, load_config

    raw = _load_toml(config_path)
    out = Path(out) if out else data_home()
    out.mkdir(parents=True, exist_ok=True)
    state = _State(out / "state.json")
    pre = load_config(PretrainConfig, config_path, overrides={"epochs": epochs, "device": device})
    encoder_dir = out / "models" / "crystalclr_cs"
    steps = _Steps(out=out, state=state, log=log, show_progress=show_progress)
    steps.pretrain(pre, encoder_dir)
    steps.heads(raw, encoder_dir, epochs=epochs, device=device)
    steps.index(raw, encoder_dir)
    summary: dict[str, Any] = {"out": str(out), "steps": {k: state.data[k] for k in ("pretrain", "heads", "index")}}
    summary["config"] = {"pretrain": dataclasses.asdict(pre)}
    return summary


@dataclasses.dataclass(frozen=True)
class _Steps:
    """The three steps of :func:`train_all`, each skipped when ``state`` records it done."""

    out: Path
    state: _State
    log: Any
    show_progress: bool

    def pretrain(self, pre: Any, encoder_dir: Path) -> None:
        """1. Pretraining (resumed from its last epoch checkpoint), the encoder installed at ``encoder_dir``."""
        if self.state.done("pretrain"):
            self.log(f"[1/3] pretraining: done before ({encoder_dir})")
            return
        from crystalsearch.train.pretrain import CHECKPOINT, pretrain

        run_dir = self.out / "runs" / "pretrain"
        resume = (run_dir / CHECKPOINT).is_file()
        self.log(f"[1/3] pretraining {pre.name} for {pre.epochs} epochs" + (" (resuming)" if resume else ""))
        t0 = time.perf_counter()
        result = pretrain(pre, out=run_dir, resume=resume, show_progress=self.show_progress)
        _install_folder(result.encoder_dir, encoder_dir)
        self.state.finish("pretrain", time_s=time.perf_counter() - t0, metrics=result.final_metrics,
                          output=str(encoder_dir))  # fmt: skip

    def heads(self, raw: dict[str, Any], encoder_dir: Path, *, epochs: int | None, device: str | None) -> None:
        """2. Property heads from the new encoder, one per (property, seed); finished ones are kept."""
        models = self.out / "models"
        if self.state.done("heads"):
            self.log(f"[2/3] property heads: done before ({models / 'heads'})")
            return
        from crystalsearch.train.config import FinetuneConfig, load_config
        from crystalsearch.train.finetune import finetune, save_finetuned

        heads = raw.get("heads", {})
        props = list(heads.get("properties", ["bulk_modulus", "shear_modulus", "formation_energy", "band_gap"]))
        seeds = int(heads.get("seeds", 3))
        cap = int(heads.get("max_structures", 0))
        ft_raw = {k: v for k, v in raw.get("finetune", {}).items() if k != "init"}
        ft_overrides = {"device": device, "epochs": epochs, "init": str(encoder_dir)}
        t0 = time.perf_counter()
        metrics: dict[str, list[float]] = {}
        for prop in props:
            for seed in range(seeds):
                folder = models / "heads" / prop / f"seed{seed}"
                cfg = load_config(FinetuneConfig, None, overrides={**ft_raw, **ft_overrides, "property": prop,
                                  "seed": seed, "max_structures": cap})  # fmt: skip
                if (folder / "model.json").is_file():
                    meta = json.loads((folder / "model.json").read_text())["metadata"]
                    metrics.setdefault(prop, []).append(float(meta["test_mae"]))
                    continue
                self.log(f"[2/3] fine-tuning {prop} head, seed {seed}")
                res = finetune(cfg, show_progress=self.show_progress)
                save_finetuned(res, folder, cfg)
                metrics.setdefault(prop, []).append(res.test_mae)
        self.state.finish("heads", time_s=time.perf_counter() - t0, test_mae=metrics, output=str(models / "heads"))

    def index(self, raw: dict[str, Any], encoder_dir: Path) -> None:
        """3. The search index of the configured dataset with the new encoder (resumed from its chunks)."""
        if self.state.done("index"):
            self.log(f"[3/3] index: done before ({self.state.data['index']['output']})")
            return
        from crystalsearch.catalog.build import build_index
        from crystalsearch.catalog.defaults import cache_index_dir
        from crystalsearch.model.embed import Encoder
        from crystalsearch.paths import data_home

        enc = Encoder.load(encoder_dir)
        target = cache_index_dir(enc.hash) if self.out == data_home() else self.out / "index"
        dataset = raw.get("index", {}).get("dataset", "all")
        self.log(f"[3/3] building the search index of '{dataset}' with encoder {enc.hash} -> {target}")
        t0 = time.perf_counter()
        manifest = build_index(dataset, encoder=enc, out=target, progress=self.show_progress, resume=True)
        self.state.finish("index", time_s=time.perf_counter() - t0, count=manifest.count, output=str(target))
