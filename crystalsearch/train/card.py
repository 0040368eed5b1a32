"""Model cards and checkpoint metadata, built from what a run actually was.

Every number on a card comes from the checkpoint: the architecture from ``model.json["config"]``, the
graph settings from ``model.json["graph"]``, and the run from its metadata (epochs actually run and
planned, structures, wall time, hardware of each resumed segment, commands). A card can therefore be
rebuilt from ``model.json`` alone (:func:`pretrain_card_for`), which is how shipped cards are refreshed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from crystalsearch.model.config import EncoderConfig
from crystalsearch.train.config import PretrainConfig, config_dict, pretrain_config_from_dict

if TYPE_CHECKING:
    from crystalsearch.data.properties import PropertySpec
    from crystalsearch.structure.graph.settings import GraphSettings
    from crystalsearch.train.config import FinetuneConfig

PAPER_EPOCHS = 5000


def segment(*, first: int, last: int, hardware: str, wall_time_s: float, command: str) -> dict[str, Any]:
    """One stretch of a run between a start or resume and the last epoch saved (``wall_time_s``: of the
    whole run when the segment ended)."""
    return {"epochs": [first, last], "hardware": hardware, "wall_time_s": round(wall_time_s, 1), "command": command}


def add_segment(history: Sequence[Mapping[str, Any]], new: dict[str, Any]) -> list[dict[str, Any]]:
    """``history`` with its last segment extended by ``new`` if ``new`` continues it, else appended."""
    out = [dict(h) for h in history]
    if out and out[-1]["epochs"][0] == new["epochs"][0]:
        out[-1] = new
    else:
        out.append(new)
    return out


def pretrain_metadata(
    config: PretrainConfig,
    *,
    metrics: Mapping[str, Any],
    epochs: int,
    structures: int,
    wall_time_s: float,
    history: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """``model.json["metadata"]`` of a pretrained encoder: ``pretrain`` is the config of the epochs that ran
    (``epochs_planned``: what the run was started for)."""
    last = history[-1] if history else {}
    return {
        "pretrain": config_dict(replace(config, epochs=epochs)),
        "epochs": epochs,
        "epochs_planned": config.epochs,
        "metrics": dict(metrics),
        "wall_time_s": wall_time_s,
        "hardware": last.get("hardware", ""),
        "command": last.get("command", ""),
        "structures": structures,
        "history": [dict(h) for h in history],
    }


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def _start(config: PretrainConfig) -> str:
    """Where the encoder's weights started: random, or the checkpoint it was warm-started from."""
    return f"warm start from the `{config.init}` encoder (projection head random)" if config.init else "random"


def _augmentations(config: PretrainConfig) -> str:
    a = config.augment
    parts = [f"perturb p={a.perturb_p:g}", f"strain p={a.strain_p:g}", f"column replace p={a.column_replace_p:g}"]
    if a.supercell_p:
        parts.append(f"3x3x3 supercell p={a.supercell_p:g}")
    return ", ".join(parts) + (", one-sided" if a.one_sided else "")


def _history_rows(history: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for h in history:
        first, last = h["epochs"]
        wall = _minutes(float(h["wall_time_s"])) if h.get("wall_time_s") is not None else "—"
        rows.append(f"| {first}–{last} | {h.get('hardware', '—')} | {wall} | `{h.get('command', '')}` |")
    return "\n".join(rows)


def pretrain_card(*, encoder: EncoderConfig, graph: GraphSettings, metadata: Mapping[str, Any]) -> str:
    """The README.md of a pretrained encoder checkpoint."""
    config = pretrain_config_from_dict(metadata["pretrain"])
    epochs = int(metadata["epochs"])
    planned = int(metadata.get("epochs_planned", epochs))
    history = list(metadata.get("history") or [])
    metrics = dict(metadata.get("metrics") or {})
    wall = float(metadata.get("wall_time_s", 0.0))
    kind = "CrystalCLR+CS (NT-Xent + composition-similarity loss)" if config.loss == "nt_xent+cs" else "CrystalCLR"
    stopped = f" (stopped early: planned {planned})" if planned != epochs else ""
    hardware = history[-1]["hardware"] if len(history) == 1 else metadata.get("hardware", "")
    if len(history) > 1:
        hardware = f"{len(history)} segments, see History (last: {hardware})"
    rows = "\n".join(f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in metrics.items())
    probe = (
        "\n`probe_bulk_mae_gpa` is the validation MAE (GPa) of a ridge regression of log K_VRH on the frozen\n"
        "embeddings of the shipped `mp_elasticity` set (seed-0 80/10/10 split; fit on train, scored on val).\n"
        if "probe_bulk_mae_gpa" in metrics
        else ""
    )
    commands = [h["command"] for h in history if h.get("command")] or [str(metadata.get("command", ""))]
    history_md = (
        f"\n## History\n| epochs | hardware | wall time of the run at the end | command |\n|---|---|---|---|\n"
        f"{_history_rows(history)}\n"
        if history
        else ""
    )
    notes = f"\n{metadata['notes'].rstrip()}\n" if metadata.get("notes") else ""
    reproduce = "\n".join(commands)
    return f"""# {config.name}: {kind} CGCNN encoder

Self-supervised CGCNN encoder ({encoder.n_conv} gated convolutions, {encoder.atom_fea_len} atom features, mean
pooling, {encoder.h_dim}-d output h; pretrained through a {encoder.proj_dim}-d projection head, not shipped in this
checkpoint) trained with the CrystalCLR recipe on crystal structures only (no labels).

| | this checkpoint | CrystalCLR paper |
|---|---|---|
| data | {int(metadata.get("structures", 0)):,} structures (`{config.dataset}`) | 90k MP structures |
| epochs | {epochs}{stopped} | {PAPER_EPOCHS} |
| start | {_start(config)} | random |
| batch size | {config.batch_size} | 512 |
| optimiser | Adam, lr {config.lr:g} | Adam, lr 1e-4 |
| temperature | {config.temperature:g} | not stated |
| augmentations | {_augmentations(config)} | perturb, strain, column replace |
| hardware | {hardware} | GPU |
| wall time | {_minutes(wall)} | — |

Graph settings (every structure meets this encoder through them): radius {graph.radius:g} Å,
{graph.max_neighbors} neighbours, Gaussian edge expansion {list(graph.gaussian)} (dmin, dmax, step, width);
{config.num_candidates} candidate neighbours for the batched augmentation. Pretraining uses every structure
(no labels are seen).

{epochs} epochs are {epochs / PAPER_EPOCHS:.2%} of the paper's {PAPER_EPOCHS}: compare numbers with that in mind.

## Final metrics (epoch {metrics.get("epoch", epochs)})
| metric | value |
|---|---|
{rows}
{probe}{history_md}{notes}
## Reproduce
```
{reproduce}
```
"""


def pretrain_card_for(folder: str | os.PathLike[str]) -> str:
    """The card of an encoder checkpoint, rebuilt from its ``model.json``."""
    from crystalsearch.model.checkpoint import read_info

    info = read_info(folder)
    return pretrain_card(encoder=EncoderConfig(**info.config), graph=info.graph, metadata=info.metadata)


def hardware_of(device: Any, world: int = 1, *, precision: str = "") -> str:
    """What a run ran on, in words: the GPU's name, or the CPU with its thread count; plus precision."""
    import platform

    import torch

    if device.type == "cuda":
        where = f"{world} x {torch.cuda.get_device_name(device)}"
    else:
        cpu = platform.processor() or platform.machine()
        threads = torch.get_num_threads()
        where = f"CPU ({cpu}, {threads} thread{'s' if threads != 1 else ''})"
        where += f" x {world} process{'es' if world != 1 else ''}"
    return f"{where}, {precision}" if precision else where


def finetune_card(result: Any, config: FinetuneConfig, *, command: str, extra: str = "",
                  spec: PropertySpec | None = None) -> str:  # fmt: skip
    """The README.md of a fine-tuned property checkpoint (``result``: a
    :class:`~crystalsearch.train.finetune.FinetuneResult`, not imported here: it imports this module)."""
    from crystalsearch.data.properties import PROPERTIES

    spec = spec or PROPERTIES[result.property]
    data = f"shipped `{spec.dataset}`" if spec.shipped else "the user's own labels (below)"
    enc, graph = result.model.encoder.config, result.graph
    sizes = f"{result.n_train} train / {result.n_val} val / {result.n_test} test, seed {config.seed}"
    sizes += ", grouped by formula" if config.group_by_formula else ""
    grid = "\n".join(f"| {lr:g} | {mae:.4g} |" for lr, mae in result.lr_grid.items())
    start = f"initialised from `{result.init}`"
    if config.warm_start:
        start = f"continued from `{config.warm_start}/seed{config.seed}` (encoder and head; see its card)"
    return f"""# {result.property} head (CGCNN encoder + regression head, fine-tuned)

Predicts {spec.column or spec.name} ({result.unit or "no unit"}) from a crystal structure. Encoder
({enc.n_conv} gated convolutions, {enc.atom_fea_len} atom features, {enc.h_dim}-d h) {start} and fine-tuned
end to end with a CGCNN regression head.

| | |
|---|---|
| data | {data} ({sizes}) |
| graphs | radius {graph.radius:g} Å, {graph.max_neighbors} neighbours (the encoder's settings) |
| target transform | {"log, then " if result.transform.log else ""}standardised |
| learning rate | {result.lr:g} (best validation MAE of the grid below), {config.schedule} schedule |
| loss | {config.loss} on the standardised target |
| epochs | {result.epochs_run} (early stopping, patience {config.patience}, at most {config.epochs}) |
| validation MAE | {result.val_mae:.4g} {result.unit} |
| **test MAE** | **{result.test_mae:.4g} {result.unit}** |
| wall time | {_minutes(result.wall_time_s)} on {result.hardware or "an unrecorded device"} |

| lr | val MAE ({result.unit}) |
|---|---|
{grid}
{extra}
## Reproduce
```
{command}
```
"""


def start_note(choice: Mapping[str, Any]) -> str:
    """Model-card paragraph on where fine-tuning started (``choice``: a
    :class:`~crystalsearch.train.start.StartChoice` as a dict): the start used and what the learning curves
    recommend for this many labels."""
    used = choice.get("chosen") or choice["start"]
    return (
        f"\nStart: `{used}`. For {choice['n_labels']:,} labels the learning curves (docs/learning-curves.md) "
        f"recommend the {choice['start']} start: {choice['basis']}.\n"
    )
