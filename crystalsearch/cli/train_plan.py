"""What ``crystalsearch train`` (train all) will do: shipped configs by name, the plan shown before
anything starts, and where the results are installed.

Configs ship in the package (``crystalsearch/configs/*.toml``) and are chosen by name
(``--config crystalclr_cs``) or by path. ``train all`` prints its plan (steps, a rough time estimate,
where results go) and starts only with ``--yes``. What it trains is installed as a named model
(``<data home>/models/<name>``, selected with ``--encoder NAME``); only ``--replace-default``
installs it as the default encoder and heads.
"""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path
from typing import Any

from crystalsearch.data.properties import PROPERTIES
from crystalsearch.errors import InputError

# Approximate sizes of the shipped datasets, for the time estimate only.
SIZES = {"mp_structures": 36_738, "mp_elasticity": 6_111, "thermal_conductivity": 3_676, "melting_temperature": 435,
         "mp2025": 170_451}  # fmt: skip
HEAD_DATASETS = {name: spec.dataset for name, spec in PROPERTIES.items()}  # from the property registry
# Rough throughputs on the 2-core development CPU (docs/performance.md)
PRETRAIN_PAIRS_PER_S = 500.0
FINETUNE_STRUCTURES_PER_S = 400.0
INDEX_STRUCTURES_PER_S = 1_000.0


def configs_dir() -> Path:
    """The training configs shipped inside the package."""
    return Path(str(resources.files("crystalsearch") / "configs"))


def shipped_configs() -> list[str]:
    return sorted(p.stem for p in configs_dir().glob("*.toml"))


def resolve_config(value: str | Path) -> Path:
    """A config by path (if that file exists) or by shipped name (``crystalclr_cs`` or ``crystalclr_cs.toml``)."""
    path = Path(value).expanduser()
    if path.is_file():
        return path
    name = path.name.removesuffix(".toml")
    shipped = configs_dir() / f"{name}.toml"
    by_name = str(value) == path.name or str(value).startswith("training/configs/")
    if by_name and shipped.is_file():
        return shipped
    raise InputError(str(value), f"config file not found (shipped configs: {', '.join(shipped_configs())}; "
                     "or give the path of a TOML file)")  # fmt: skip


def default_name(config_name: str) -> str:
    """A fresh model name: the config's run name and the date, e.g. ``crystalclr_cs-20261202-0730``."""
    return f"{config_name}-{time.strftime('%Y%m%d-%H%M')}"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def plan(config: Path, *, epochs: int | None, name: str | None, replace_default: bool, out: Path | None,
         device: str | None) -> dict[str, Any]:  # fmt: skip
    """The steps of ``train all`` with this config, a rough time estimate and where the results go."""
    import tomllib

    from crystalsearch.paths import data_home, user_models_dir
    from crystalsearch.train.config import PretrainConfig, load_config

    pre = load_config(PretrainConfig, config, overrides={"epochs": epochs, "device": device})
    raw = tomllib.loads(config.read_text())
    heads = raw.get("heads", {})
    props = list(heads.get("properties", ["bulk_modulus", "shear_modulus", "formation_energy", "band_gap"]))
    seeds = int(heads.get("seeds", 3))
    cap = int(heads.get("max_structures", 0))
    ft = raw.get("finetune", {})
    ft_epochs = int(epochs or ft.get("epochs", 60))
    n_pre = SIZES.get(pre.dataset, 0)
    n_pre = min(n_pre, pre.max_structures) if pre.max_structures else n_pre
    index_dataset = raw.get("index", {}).get("dataset", "all")
    from crystalsearch.data.entries import CATALOG_DATASETS

    chosen = CATALOG_DATASETS if index_dataset == "all" else (index_dataset,)
    n_index = max((SIZES.get(d, 0) for d in chosen), default=0)  # merged by material id: about the largest
    t_pre = pre.epochs * n_pre / PRETRAIN_PAIRS_PER_S
    n_heads = [min(SIZES.get(HEAD_DATASETS.get(p, ""), 0), cap) if cap else SIZES.get(HEAD_DATASETS.get(p, ""), 0)
               for p in props]  # fmt: skip
    t_heads = sum(0.8 * n * ft_epochs * seeds / FINETUNE_STRUCTURES_PER_S for n in n_heads)
    t_index = n_index / INDEX_STRUCTURES_PER_S
    model_name = "default (replacing the shipped default encoder and heads)" if replace_default else name
    work = out or (data_home() if replace_default else data_home() / "runs" / f"train-{name}")
    steps = [
        {"step": "pretrain", "what": f"{pre.name} ({pre.loss}) on {pre.dataset} ({n_pre:,} structures), "
         f"{pre.epochs} epochs, batch {pre.batch_size}", "estimate_s": round(t_pre)},
        {"step": "heads", "what": f"fine-tune {len(props)} property head(s) x {seeds} seeds ({', '.join(props)}), "
         f"up to {ft_epochs} epochs each", "estimate_s": round(t_heads)},
        {"step": "index", "what": f"search index of '{index_dataset}' (~{n_index:,} structures) with the new encoder",
         "estimate_s": round(t_index)},
    ]  # fmt: skip
    return {
        "config": str(config), "steps": steps, "estimate_s": round(t_pre + t_heads + t_index),
        "estimate_note": "rough, for a 2-core CPU (docs/performance.md); a GPU is many times faster",
        "work_folder": str(work), "model": model_name,
        "installed_as": str(user_models_dir() / name) if name and not replace_default else str(work / "models"),
        "select_with": f"--encoder {name}" if name and not replace_default else "the default",
        "replace_default": replace_default,
    }  # fmt: skip


def render(info: dict[str, Any], *, started: bool) -> list[str]:
    lines = [f"crystalsearch train: {'running' if started else 'the plan (nothing started; add --yes to run it)'}",
             f"  config: {info['config']}"]  # fmt: skip
    for i, step in enumerate(info["steps"], 1):
        lines.append(f"  {i}. {step['what']}  (~{_minutes(step['estimate_s'])})")
    lines.append(f"  estimated total: ~{_minutes(info['estimate_s'])} ({info['estimate_note']})")
    lines.append(f"  work folder: {info['work_folder']} (resumable: rerun the same command to continue)")
    if info["replace_default"]:
        lines.append("  results replace the default encoder and property heads in the data home")
    else:
        lines.append(
            f"  results: model '{info['model']}' in {info['installed_as']}, selected with "
            f"{info['select_with']}; the default encoder stays as it is (--replace-default replaces it)"
        )
    return lines


def install(work: Path, name: str) -> Path:
    """Copy the trained encoder (and its heads) of a finished run to ``<data home>/models/<name>``."""
    import shutil

    from crystalsearch.atomic import staged_dir
    from crystalsearch.paths import user_models_dir

    dest = user_models_dir() / name
    with staged_dir(dest) as tmp:
        shutil.copytree(work / "models" / "crystalclr_cs", tmp, dirs_exist_ok=True)
        if (work / "models" / "heads").is_dir():
            shutil.copytree(work / "models" / "heads", tmp / "heads", dirs_exist_ok=True)
    return dest
