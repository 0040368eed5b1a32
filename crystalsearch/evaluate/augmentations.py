"""Figure 2: which augmentations make useful representations? Short one-sided pretraining runs under
every single augmentation and every ordered pair, scored by linear regression on frozen embeddings.

Runs are one-sided as in the paper: the first view is the exact crystal, the second view gets the
augmentation(s) with p = 1 (:meth:`AugmentConfig.only`). An ordered pair (a, b) means "a, then b" on the
second view. **Order cannot matter in our implementation**: the batched augmentation path
(:mod:`crystalsearch.structure.augment.fast`) always applies perturb -> strain -> column replace -> supercell,
whatever order is asked for (perturb and strain commute up to a <= 5 % rescaling of the displacement,
column replace changes only atom types, and the supercell is exact and last). So each unordered pair is
trained once and fills both (a, b) and (b, a); the diagonal holds the single augmentations.

Note on supercell: with exact graphs and mean pooling, a 3x3x3 supercell has the same atom
environments repeated 27 times, so an encoder in eval mode maps it to exactly the same h; during
training only batch-norm statistics see a difference. It also makes the second view 27x larger
(about 20x slower steps on CPU), which is why the study is kept small.

Scoring: the encoder's frozen embeddings of the shipped ``melting_temperature`` and ``mp_elasticity``
(bulk modulus) sets are standardised (on train) and fed to ``RidgeCV`` (alphas 1e-3..1e3), fitted on the
80 % training part of ``dataset.split(seed=s)`` and scored on the test part, mean MAE over the seeds.
Bulk modulus is fitted in log space (as for fine-tuning); MAE is always in the property's units. An
untrained (random) encoder is scored the same way as the reference.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from crystalsearch.evaluate.record import update
from crystalsearch.evaluate.results import command_line, now, read_json, write_json
from crystalsearch.progress import Progress
from crystalsearch.train.config import PretrainConfig

AUGMENTATIONS = ("perturb", "strain", "column_replace", "supercell")
PROPERTIES = ("melting_temperature", "bulk_modulus")
FIGURE = "figure2_augmentations.png"
SHORT = {"perturb": "perturb", "strain": "strain", "column_replace": "column repl.", "supercell": "supercell"}


@dataclass(frozen=True)
class AugmentationStudyConfig:
    """Settings of ``crystalsearch evaluate augmentations``."""

    augmentations: tuple[str, ...] = AUGMENTATIONS
    structures: int = 1024  # first N shipped mp_structures records
    epochs: int = 10
    batch_size: int = 256
    lr: float = 1e-3  # 10x the paper's rate: the runs are only tens of steps long
    loss: str = "nt_xent"  # plain CrystalCLR
    temperature: float = PretrainConfig.temperature  # the recipe's (chosen by the temperature study)
    seed: int = 0
    eval_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    eval_max_structures: int = 0  # 0 = whole evaluation sets
    properties: tuple[str, ...] = PROPERTIES
    device: str = "auto"
    threads: int = 0
    compile: bool = False  # torch.compile costs about a minute per run: not worth it for short runs


def runs_of(augmentations: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Singles, then unordered pairs (order does not matter here, see the module docstring)."""
    return [(a,) for a in augmentations] + list(itertools.combinations(augmentations, 2))


def run_name(names: tuple[str, ...]) -> str:
    return "+".join(names)


def _pretrain_settings(config: AugmentationStudyConfig) -> dict[str, Any]:
    keys = ("structures", "epochs", "batch_size", "lr", "loss", "temperature", "seed")
    return {k: getattr(config, k) for k in keys}


def _study_dir(config: AugmentationStudyConfig, runs_dir: Path) -> Path:
    digest = hashlib.sha256(json.dumps(_pretrain_settings(config), sort_keys=True).encode()).hexdigest()[:10]
    return runs_dir / f"study-{digest}"


def pretrain_run(names: tuple[str, ...], config: AugmentationStudyConfig, folder: Path, *,
                 show_progress: bool) -> tuple[Path, float, bool]:  # fmt: skip
    """Pretrain (or resume, or reuse) one run; returns its encoder folder, wall time and whether it ran."""
    from crystalsearch.model.checkpoint import read_info
    from crystalsearch.structure.augment.config import AugmentConfig
    from crystalsearch.train.config import PretrainConfig
    from crystalsearch.train.pretrain import CHECKPOINT, pretrain

    encoder = folder / "encoder"
    if (encoder / "model.json").is_file() and read_info(encoder).metadata.get("epochs") == config.epochs:
        return encoder, float(read_info(encoder).metadata.get("wall_time_s", 0.0)), False
    aug = AugmentConfig.only(*names, one_sided=True)
    pc = PretrainConfig(
        name=f"augment_{run_name(names)}", dataset="mp_structures", max_structures=config.structures,
        loss=config.loss, temperature=config.temperature, epochs=config.epochs, batch_size=config.batch_size,
        lr=config.lr, seed=config.seed, augment=aug, device=config.device,
        compile=config.compile, num_threads=config.threads, probe=False,
    )  # fmt: skip
    result = pretrain(pc, out=folder, resume=(folder / CHECKPOINT).is_file(), show_progress=show_progress)
    return result.encoder_dir, result.wall_time_s, True


def linear_scores(h_by_prop: dict[str, np.ndarray], data: dict[str, dict[str, Any]],
                  seeds: tuple[int, ...]) -> dict[str, float]:  # fmt: skip
    """Mean test MAE (units) of ridge regression on standardised embeddings, per property."""
    from sklearn.linear_model import RidgeCV

    out = {}
    for prop, h in h_by_prop.items():
        d = data[prop]
        y, log = d["y"], d["spec"].log
        maes = []
        for seed in seeds:
            train, _val, test = d["splits"][seed]
            mu, sd = h[train].mean(0), h[train].std(0) + 1e-8
            xt, xs = (h[train] - mu) / sd, (h[test] - mu) / sd
            target = np.log(y[train]) if log else y[train]
            model = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(xt, target)
            pred = model.predict(xs)
            pred = np.exp(pred) if log else pred
            maes.append(float(np.mean(np.abs(pred - y[test]))))
        out[prop] = float(np.mean(maes))
    return out


def evaluate_augmentations(
    config: AugmentationStudyConfig, *, out: Path, runs_dir: Path, show_progress: bool = True,
    log: Any = None,
) -> dict[str, Any]:  # fmt: skip
    """Run (or resume) the study, draw ``out/figure2_augmentations.png``; returns the summary."""
    from crystalsearch.errors import InputError
    from crystalsearch.evaluate.embeddings import property_data
    from crystalsearch.evaluate.features import embeddings, load_encoder

    bad = [a for a in config.augmentations if a not in AUGMENTATIONS]
    if bad or not config.augmentations:
        raise InputError("--augmentations", f"unknown {bad or '(none)'}; choose from {', '.join(AUGMENTATIONS)}")
    log = log or (lambda _m: None)
    t_start = time.perf_counter()
    study = _study_dir(config, Path(runs_dir))
    data = {p: property_data(p, max_structures=config.eval_max_structures, seeds=config.eval_seeds)
            for p in config.properties}  # fmt: skip
    eval_key = {"seeds": list(config.eval_seeds), "max_structures": config.eval_max_structures,
                "properties": list(config.properties), "model": "RidgeCV(alphas=logspace(-3,3,13))"}  # fmt: skip

    def score(encoder_spec: str, cache: Path | None) -> dict[str, float]:
        if cache is not None and read_json(cache, {}).get("key") == eval_key:
            return dict(read_json(cache, {})["mae"])
        enc = load_encoder(encoder_spec, device="cpu")
        with Progress(show_progress) as progress:
            h = {}
            for p in config.properties:
                bar = progress.task(f"embedding {p}", len(data[p]["records"]))
                h[p] = embeddings(enc, data[p]["records"], progress=bar)
        mae = linear_scores(h, data, config.eval_seeds)
        if cache is not None:
            write_json(cache, {"key": eval_key, "mae": mae})
        return mae

    runs: dict[str, dict[str, Any]] = {}
    todo = runs_of(config.augmentations)
    for i, names in enumerate(todo, 1):
        name = run_name(names)
        log(f"[{i}/{len(todo)}] pretraining with {' + '.join(names)} (one-sided)")
        encoder_dir, wall, ran = pretrain_run(names, config, study / name, show_progress=show_progress)
        t0 = time.perf_counter()
        mae = score(str(encoder_dir), study / name / "eval.json")
        runs[name] = {"augmentations": list(names), "mae": mae, "pretrain_wall_time_s": round(wall, 1),
                      "eval_wall_time_s": round(time.perf_counter() - t0, 1), "reused": not ran,
                      "encoder": str(encoder_dir)}  # fmt: skip
        log("    " + ", ".join(f"{p} MAE {v:.4g}" for p, v in mae.items()))
    baseline = score("random:0", study / "random_eval.json")
    matrix = {p: _matrix(runs, config.augmentations, p) for p in config.properties}
    units = {p: data[p]["spec"].unit for p in config.properties}
    figure = Path(out) / FIGURE
    draw(matrix, config.augmentations, units, baseline, figure, config=config)
    summary = {
        "figure": FIGURE, "augmentations": list(config.augmentations), "pretrain": _pretrain_settings(config),
        "one_sided": True, "order": "fixed perturb -> strain -> column_replace -> supercell; (a,b) = (b,a)",
        "evaluation": {**eval_key, "n": {p: d["n"] for p, d in data.items()}, "units": units},
        "device": config.device, "runs_dir": str(study), "runs": runs, "baseline_random_encoder": baseline,
        "matrix": matrix, "wall_time_s": round(time.perf_counter() - t_start, 1), "date": now(),
        "command": command_line(), "config": asdict(config),
    }  # fmt: skip
    update(Path(out), half="", cells={}, extra=lambda ev: ev.__setitem__("augmentations", summary))
    return {**summary, "path": str(figure)}


def _matrix(runs: dict[str, dict[str, Any]], augs: tuple[str, ...], prop: str) -> list[list[float]]:
    """``m[i][j]``: MAE with augs[i] then augs[j] (diagonal: augs[i] alone)."""

    def get(a: str, b: str) -> float:
        names = (a,) if a == b else tuple(sorted((a, b), key=augs.index))
        return float(runs[run_name(names)]["mae"][prop])

    return [[get(a, b) for b in augs] for a in augs]


def draw(matrix: dict[str, list[list[float]]], augs: tuple[str, ...], units: dict[str, str],
         baseline: dict[str, float], path: Path, *, config: AugmentationStudyConfig) -> None:  # fmt: skip
    """One annotated heatmap per property (rows: first augmentation, columns: second), PNG via Agg."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from crystalsearch.data.properties import by_head

    fig, axes = plt.subplots(1, len(matrix), figsize=(5.6 * len(matrix), 5.0), squeeze=False)
    for ax, (prop, m) in zip(axes[0], matrix.items()):
        arr = np.array(m)
        im = ax.imshow(arr, cmap="viridis_r")
        labels = [SHORT.get(a, a) for a in augs]
        ax.set_xticks(range(len(augs)), labels, rotation=30, ha="right")
        ax.set_yticks(range(len(augs)), labels)
        ax.set_xlabel("second augmentation")
        ax.set_ylabel("first augmentation")
        lo, hi = np.nanmin(arr), np.nanmax(arr)
        for i, j in itertools.product(range(len(augs)), repeat=2):
            dark = (arr[i, j] - lo) / (hi - lo + 1e-12) > 0.5
            ax.text(j, i, f"{arr[i, j]:.3g}", ha="center", va="center", fontsize=9, color="white" if dark else "black")
        ax.set_title(f"{by_head(prop).title}: linear-regression MAE ({units[prop]})\n"
                     f"random encoder: {baseline[prop]:.3g} {units[prop]}", fontsize=10)  # fmt: skip
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=f"test MAE ({units[prop]})")
    epochs = f"{config.epochs} epoch{'s' if config.epochs != 1 else ''}"
    fig.suptitle(f"One-sided pretraining, {config.structures:,} structures, {epochs}, batch {config.batch_size} "
                 "(diagonal: single augmentation)", fontsize=11)  # fmt: skip
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial.png")
    fig.savefig(tmp, dpi=150)
    plt.close(fig)
    tmp.replace(path)
