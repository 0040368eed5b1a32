"""Training configurations: frozen dataclasses read from TOML, every field overridable."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import tomllib

from crystalsearch.errors import InputError

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    """CrystalCLR pretraining settings (defaults: the paper's, bar the epochs)."""

    name: str = "crystalclr_cs"
    dataset: str = "mp_structures"
    max_structures: int = 0  # 0 = all
    loss: str = "nt_xent+cs"  # "nt_xent" (CrystalCLR) or "nt_xent+cs" (CrystalCLR+CS)
    temperature: float = 0.05
    epochs: int = 20
    batch_size: int = 512
    lr: float = 1e-4
    weight_decay: float = 0.0
    seed: int = 0
    # augmentations (probabilities; one_sided augments only the second view)
    perturb_p: float = 0.5
    strain_p: float = 0.5
    column_replace_p: float = 0.5
    supercell_p: float = 0.0
    one_sided: bool = False
    # graphs
    radius: float = 8.0
    max_neighbors: int = 12
    num_candidates: int = 32
    # model
    atom_fea_len: int = 64
    n_conv: int = 3
    h_dim: int = 128
    proj_dim: int = 128
    # hardware
    device: str = "auto"
    amp: bool = True  # bf16 autocast on CUDA
    amp_cpu: bool = True  # bf16 autocast on CPU too, where the CPU has native bf16 (AVX512-BF16 / AMX):
    # 1.47x faster steps here, loss within 1e-4 of fp32 over 4 epochs (training/results/bf16_check.md)
    compile: bool = True  # torch.compile the model (~2.7x faster steps on CPU; ~1 min to compile)
    num_threads: int = 0  # 0 = torch default
    # validation signal each epoch
    probe: bool = True
    probe_max_structures: int = 0  # 0 = the whole mp_elasticity set

    def __post_init__(self) -> None:
        if self.loss not in ("nt_xent", "nt_xent+cs"):
            raise ValueError(f"loss must be 'nt_xent' or 'nt_xent+cs', got {self.loss!r}")
        if self.batch_size < 2:
            raise ValueError("batch_size must be at least 2")
        if self.temperature <= 0:
            raise ValueError("temperature must be positive")


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tuning settings for one property (CGCNN encoder + regression head)."""

    property: str = "bulk_modulus"
    init: str = "default"  # "default" | "random" | "crystalclr" | "crystalclr_cs" | checkpoint path
    lrs: tuple[float, ...] = (1e-3, 3e-4, 1e-4)
    epochs: int = 60
    patience: int = 10
    batch_size: int = 128
    weight_decay: float = 0.0
    log_target: str = "auto"  # "auto" | "yes" | "no"
    seed: int = 0
    group_by_formula: bool = False
    max_structures: int = 0
    device: str = "auto"
    num_threads: int = 0
    compile: bool = True  # torch.compile the training forward pass (eager evaluation)


def _coerce(field: dataclasses.Field[Any], value: Any, where: str) -> Any:
    kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
    try:
        if kind == "bool":
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind.startswith("tuple"):
            items = value.split(",") if isinstance(value, str) else value
            return tuple(float(v) for v in items)
        return str(value)
    except (TypeError, ValueError):
        raise InputError(where, f"setting {field.name}={value!r} is not a valid {kind}") from None


def load_config(
    cls: type[T],
    path: str | Path | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    sets: Iterable[str] = (),
) -> T:
    """Build ``cls`` from a TOML file (flat keys, or under ``[pretrain]``/``[finetune]``), then apply
    ``overrides`` (a mapping, ``None`` values ignored) and ``sets`` (``"key=value"`` strings)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    where = str(path) if path else "config"
    if path is not None:
        p = Path(path)
        try:
            raw = tomllib.loads(p.read_text())
        except FileNotFoundError:
            raise InputError(where, "config file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise InputError(where, f"invalid TOML ({exc})") from None
        section = "pretrain" if cls is PretrainConfig else "finetune"
        raw = raw.get(section, raw) if isinstance(raw.get(section), dict) else raw
        for key, value in raw.items():
            if isinstance(value, dict):
                continue  # other sections
            if key not in fields:
                raise InputError(where, f"unknown setting {key!r}; known: {', '.join(sorted(fields))}")
            values[key] = _coerce(fields[key], value, where)
    for key, value in (overrides or {}).items():
        if key not in fields:
            raise InputError(where, f"unknown setting {key!r}; known: {', '.join(sorted(fields))}")
        if value is not None:
            values[key] = _coerce(fields[key], value, "command line")
    for item in sets:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in fields:
            raise InputError("--set", f"expected KEY=VALUE with KEY one of {', '.join(sorted(fields))}; got {item!r}")
        values[key] = _coerce(fields[key], value.strip(), "--set")
    try:
        return cls(**values)
    except ValueError as exc:
        raise InputError(where, str(exc)) from None


def config_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)
