"""Training configurations: frozen dataclasses read from TOML, every field overridable."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import tomllib

from crystalsearch.errors import InputError
from crystalsearch.model.config import EncoderConfig
from crystalsearch.structure.augment.config import AugmentConfig

if TYPE_CHECKING:
    from crystalsearch.structure.graph.settings import GraphSettings

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
    # warm start: "" = random encoder; else a shipped encoder name or checkpoint folder whose encoder weights
    # start the run (the projection head starts random); its graph settings must be this run's
    init: str = ""
    # augmentations (probabilities; one_sided augments only the second view): [pretrain.augment] in TOML,
    # or the old flat keys (perturb_p = 0.5)
    augment: AugmentConfig = AugmentConfig()
    # model: [pretrain.encoder] in TOML, or the old flat keys (atom_fea_len = 64)
    encoder: EncoderConfig = EncoderConfig()
    # graphs
    radius: float = 8.0
    max_neighbors: int = 12
    num_candidates: int = 32  # candidate neighbours per atom for the batched augmentations
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
        if self.num_candidates < self.max_neighbors:
            raise ValueError("num_candidates must be at least max_neighbors")

    @property
    def graph(self) -> GraphSettings:
        """How this run builds its graphs (recorded in the encoder checkpoint)."""
        from crystalsearch.structure.graph.settings import GraphSettings

        return GraphSettings(self.radius, self.max_neighbors)


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
    schedule: str = "constant"  # "constant" | "cosine" (lr annealed to lr/100 over `epochs`)
    loss: str = "mse"  # "mse" | "l1" (on standardised targets; l1 optimises the MAE that is reported)
    warm_start: str = ""  # ensembles: heads folder whose seed<k> (encoder + head) starts member k
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


def _sections(cls: type[Any]) -> dict[str, type[Any]]:
    """Fields of ``cls`` that are themselves config dataclasses (``encoder``, ``augment``)."""
    return {f.name: _NESTED[f.type] for f in dataclasses.fields(cls) if f.type in _NESTED}


_NESTED: dict[Any, type[Any]] = {"EncoderConfig": EncoderConfig, "AugmentConfig": AugmentConfig}


class _Settings:
    """Values for ``cls`` gathered from TOML, overrides and ``--set``: top-level keys, nested sections
    (``encoder.n_conv`` or ``[pretrain.encoder]``) and, for old configs, nested keys given flat."""

    def __init__(self, cls: type[Any]) -> None:
        self.cls = cls
        self.fields = {f.name: f for f in dataclasses.fields(cls)}
        self.sections = _sections(cls)
        self.nested = {s: {f.name: f for f in dataclasses.fields(c)} for s, c in self.sections.items()}
        self.flat = {name: s for s, fs in self.nested.items() for name in fs}  # old flat key -> section
        self.values: dict[str, Any] = {}
        self.inner: dict[str, dict[str, Any]] = {s: {} for s in self.sections}

    def known(self) -> str:
        names = [n for n in self.fields if n not in self.sections]
        names += [f"{s}.{n}" for s, fs in self.nested.items() for n in fs]
        return ", ".join(sorted(names))

    def put(self, key: str, value: Any, where: str) -> None:
        section, dot, name = key.partition(".")
        if dot and section in self.nested and name in self.nested[section]:
            self.inner[section][name] = _coerce(self.nested[section][name], value, where)
        elif key in self.sections and dataclasses.is_dataclass(value):
            self.inner[key].update(dataclasses.asdict(value))  # type: ignore[arg-type]
        elif key in self.sections and isinstance(value, Mapping):
            for name, v in value.items():
                self.put(f"{key}.{name}", v, where)
        elif key in self.fields and key not in self.sections:
            self.values[key] = _coerce(self.fields[key], value, where)
        elif key in self.flat:
            self.put(f"{self.flat[key]}.{key}", value, where)
        else:
            raise InputError(where, f"unknown setting {key!r}; known: {self.known()}")

    def build(self, where: str) -> Any:
        try:
            nested = {s: self.sections[s](**{**self._defaults(s), **v}) for s, v in self.inner.items()}
            return self.cls(**self.values, **nested)
        except (TypeError, ValueError) as exc:
            raise InputError(where, str(exc)) from None

    def _defaults(self, section: str) -> dict[str, Any]:
        default = self.fields[section].default
        return dataclasses.asdict(default) if dataclasses.is_dataclass(default) else {}  # type: ignore[arg-type]


def load_config(
    cls: type[T],
    path: str | Path | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    sets: Iterable[str] = (),
) -> T:
    """Build ``cls`` from a TOML file (flat keys, or under ``[pretrain]``/``[finetune]``, nested configs
    under ``[pretrain.encoder]``/``[pretrain.augment]`` or flat as in older files), then apply
    ``overrides`` (a mapping, ``None`` values ignored; nested configs as objects, dicts or dotted keys)
    and ``sets`` (``"key=value"`` strings, ``key`` possibly dotted: ``encoder.n_conv=4``)."""
    settings = _Settings(cls)
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
            if isinstance(value, dict) and key not in settings.sections:
                continue  # other sections
            settings.put(key, value, where)
    for key, value in (overrides or {}).items():
        if value is not None:
            settings.put(key, value, "command line")
    for item in sets:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep:
            raise InputError("--set", f"expected KEY=VALUE with KEY one of {settings.known()}; got {item!r}")
        settings.put(key, value.strip(), "--set")
    return settings.build(where)  # type: ignore[no-any-return]


def config_dict(config: Any) -> dict[str, Any]:
    """A config as JSON-ready nested dicts (what ``config.json`` and checkpoint metadata hold)."""
    return dataclasses.asdict(config)


def pretrain_config_from_dict(data: Mapping[str, Any]) -> PretrainConfig:
    """A :class:`PretrainConfig` from :func:`config_dict` output, nested or flat (runs and checkpoints
    written before the encoder and augmentation settings were nested)."""
    return load_config(PretrainConfig, None, overrides=data)
