"""Representations compared in Table 1: frozen encoder embeddings and matminer fingerprints.

Encoders are given as ``name=SPEC`` pairs, ``SPEC`` being a shipped name (``crystalclr``,
``crystalclr_cs``), a checkpoint folder (a pretraining run's ``encoder/`` folder, or any fine-tuned
property checkpoint), or ``random`` / ``random:SEED`` for an untrained encoder (a baseline and for tests).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crystalsearch.structure.descriptors import FINGERPRINTS

if TYPE_CHECKING:
    from crystalsearch.data.datasets import Record
    from crystalsearch.model.embed import Encoder

DEFAULT_ENCODERS: dict[str, str] = {"crystalclr": "crystalclr", "crystalclr_cs": "crystalclr_cs"}
MEAN = "mean"
LABELS: dict[str, str] = {
    "crystalclr": "CrystalCLR",
    "crystalclr_cs": "CrystalCLR+CS",
    "sitestats": "SiteStats (CrystalNN)",
    "sine_coulomb": "SineCoulomb",
    "magpie": "ElementProperty (Magpie)",
    MEAN: "mean predictor",
    "random": "untrained encoder",
}


def label(method: str, *, finetune: bool = False) -> str:
    """Display name of a Table 1 row (``random`` is "random init" among the fine-tuned rows)."""
    if finetune and (method == "random" or method.startswith("random:")):
        return "random init"
    return LABELS.get(method, method)


def parse_list(text: str, *, option: str, valid: Sequence[str] | None = None) -> tuple[str, ...]:
    """Comma-separated names; ``InputError`` naming ``option`` for unknown ones or an empty list."""
    from crystalsearch.errors import InputError

    items = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    if not items:
        raise InputError(option, "empty list")
    if valid is not None:
        bad = [t for t in items if t not in valid]
        if bad:
            raise InputError(option, f"unknown {', '.join(map(repr, bad))}; choose from {', '.join(valid)}")
    return items


def parse_seeds(text: str, *, option: str = "--seeds") -> tuple[int, ...]:
    """``0,1,2`` or ``0-4`` (inclusive) or a mix; a single number is that one seed."""
    from crystalsearch.errors import InputError

    seeds: list[int] = []
    try:
        for part in parse_list(text, option=option):
            lo, sep, hi = part.partition("-")
            seeds.extend(range(int(lo), int(hi) + 1) if sep and lo else [int(part)])
    except ValueError:
        raise InputError(option, f"expected seeds like 0,1,2 or 0-4, got {text!r}") from None
    if not seeds or min(seeds) < 0:
        raise InputError(option, f"expected non-negative seeds, got {text!r}")
    return tuple(dict.fromkeys(seeds))


def parse_encoders(text: str | None, *, option: str = "--encoders") -> dict[str, str]:
    """``name=SPEC,...`` merged over :data:`DEFAULT_ENCODERS`."""
    from crystalsearch.errors import InputError

    out = dict(DEFAULT_ENCODERS)
    for part in (text or "").split(","):
        if not part.strip():
            continue
        name, sep, spec = part.partition("=")
        if not sep or not name.strip() or not spec.strip():
            raise InputError(option, f"expected NAME=PATH pairs separated by commas, got {part!r}")
        out[name.strip()] = spec.strip()
    return out


@dataclass(frozen=True)
class EncoderSource:
    """Where an encoder came from (for the report)."""

    name: str
    spec: str
    path: str
    digest: str
    pretraining: dict[str, Any]


def load_encoder(spec: str, *, device: str | None = None) -> Encoder:
    from crystalsearch.model.embed import Encoder

    if spec == "random" or spec.startswith("random:"):
        seed = int(spec.partition(":")[2] or 0)
        return Encoder.random(seed=seed, device=device)
    return Encoder.load(spec, device=device)


def encoder_source(name: str, spec: str, encoder: Encoder) -> EncoderSource:
    """Provenance of an encoder: its folder, weights digest and what its pretraining run recorded."""
    path, pre = spec, dict[str, Any]()
    if not spec.startswith("random"):
        from crystalsearch.model.checkpoint import read_info
        from crystalsearch.paths import display_path

        info = read_info(spec)
        path = display_path(info.path)
        meta = info.metadata
        pre = {str(k): meta[k] for k in ("epochs", "structures", "wall_time_s", "hardware") if k in meta}
        cfg = meta.get("pretrain") or {}
        pre.update({k: cfg[k] for k in ("loss", "batch_size", "temperature", "lr", "dataset") if k in cfg})
    return EncoderSource(name=name, spec=spec, path=path, digest=encoder.hash, pretraining=pre)


def embeddings(
    encoder: Encoder, records: Sequence[Record], *, progress: Callable[[int], None] | None = None
) -> np.ndarray:
    """Frozen representations h [n, dim] of ``records`` (graphs from the on-disk cache)."""
    return encoder.embed_store(encoder.graph.store_for_records(records), progress=progress)


def fingerprint_matrix(
    records: Sequence[Record],
    name: str,
    *,
    full: Sequence[Record] | None = None,
    directory: Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Fingerprints of ``records`` (the first ``len(records)`` of ``full``).

    When the whole dataset ``full`` is already featurised in the cache, its rows are reused (a subset
    then sees exactly the features of the full run; SineCoulomb's padding width is the dataset's).
    """
    from crystalsearch.structure.descriptors import cached_fingerprints, fingerprints

    if full is not None and len(full) > len(records):
        whole = cached_fingerprints(full, name, directory=directory)
        if whole is not None:
            if progress is not None:
                progress(len(records))
            return whole[: len(records)]
    return fingerprints(records, name, directory=directory, progress=progress)


def is_fingerprint(method: str) -> bool:
    return method in FINGERPRINTS


def validate_methods(methods: Sequence[str], encoders: Mapping[str, str]) -> dict[str, str]:
    """Encoder specs of the encoder methods in ``methods`` (``random`` needs no entry)."""
    from crystalsearch.errors import InputError

    specs: dict[str, str] = {}
    for m in methods:
        if m == MEAN or is_fingerprint(m):
            continue
        if m in encoders:
            specs[m] = encoders[m]
        elif m == "random" or m.startswith("random:"):
            specs[m] = m
        else:
            valid = [*encoders, *FINGERPRINTS, MEAN, "random"]
            raise InputError("--methods", f"unknown method {m!r}; choose from {', '.join(valid)}")
    return specs
