"""Figure 3: 2-D UMAP of CrystalCLR+CS embeddings next to Magpie ElementProperty features, coloured by
compound class (:mod:`crystalsearch.evaluate.classes`).

Both representations are standardised (column means imputed for missing Magpie values) before UMAP.
Besides the picture, the class purity of each point's 10 nearest neighbours is measured in each
representation (and in its 2-D map), against the purity expected by chance (sum of squared class
fractions), so the report can state in numbers how well each representation groups compound classes.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from crystalsearch.evaluate.classes import CLASSES, compound_class
from crystalsearch.evaluate.features import embeddings, encoder_source, label, load_encoder
from crystalsearch.evaluate.record import update
from crystalsearch.evaluate.results import command_line, now
from crystalsearch.progress import Progress

FIGURE = "figure3_umap.png"
NEIGHBOURS = 10
COLOURS = {
    "oxide": "#d62728", "halide": "#2ca02c", "sulfide": "#ff7f0e", "selenide/telluride": "#8c564b",
    "nitride": "#1f77b4", "pnictide (P, As, Sb)": "#9467bd", "carbide": "#17becf", "hydride": "#e377c2",
    "boride": "#bcbd22", "intermetallic": "#9a9a9a", "element": "#000000",
}  # fmt: skip


@dataclass(frozen=True)
class UmapConfig:
    """Settings of ``crystalsearch plot umap``."""

    encoder: str = "crystalclr_cs"
    encoder_name: str = "crystalclr_cs"
    dataset: str = "mp_elasticity"
    max_structures: int = 0  # 0 = all, else a random subsample of this size (seeded)
    seed: int = 0
    n_neighbors: int = 15
    min_dist: float = 0.1
    device: str = "cpu"


def standardise(x: np.ndarray) -> np.ndarray:
    from crystalsearch.evaluate.embeddings import impute

    (x,) = impute(x)
    return (x - x.mean(0)) / (x.std(0) + 1e-12)


def neighbour_purity(x: np.ndarray, classes: np.ndarray, *, k: int = NEIGHBOURS) -> float:
    """Mean fraction of each point's ``k`` nearest neighbours (Euclidean) that share its class."""
    from sklearn.neighbors import NearestNeighbors

    k = min(k, len(x) - 1)
    if k < 1:
        return float("nan")
    _, idx = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
    return float(np.mean(classes[idx[:, 1:]] == classes[:, None]))


def umap_2d(x: np.ndarray, *, config: UmapConfig) -> np.ndarray:
    import warnings

    import umap

    n_neighbors = max(2, min(config.n_neighbors, len(x) - 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # umap/numba chatter (n_jobs with random_state, etc.)
        reducer = umap.UMAP(n_neighbors=n_neighbors, min_dist=config.min_dist, random_state=config.seed)
        return np.asarray(reducer.fit_transform(x))


def _magpie(records: list[Any], full: tuple[Any, ...], idx: np.ndarray, bar: Any) -> np.ndarray:
    from crystalsearch.structure.descriptors import cached_fingerprints, fingerprints

    whole = cached_fingerprints(full, "magpie")
    if whole is not None:
        return whole[idx]
    return fingerprints(records, "magpie", progress=bar)


def plot_umap(config: UmapConfig, *, out: Path, progress: Progress | None = None) -> dict[str, Any]:
    """Compute both maps, write ``out/figure3_umap.png`` and record the run; returns the summary."""
    from crystalsearch.data import datasets

    progress = progress or Progress(False)
    t0 = time.perf_counter()
    encoder = load_encoder(config.encoder, device=config.device)
    source = asdict(encoder_source(config.encoder_name, config.encoder, encoder))
    ds = datasets.load(config.dataset)
    idx = np.arange(len(ds))
    if config.max_structures and config.max_structures < len(ds):
        rng = np.random.default_rng(config.seed)
        idx = np.sort(rng.choice(len(ds), size=config.max_structures, replace=False))
    records = [ds.records[i] for i in idx]
    classes = np.array([compound_class(r.species) for r in records])
    bar = progress.task("embedding", len(records))
    h = embeddings(encoder, records, progress=bar)
    bar.complete()
    bar = progress.task("Magpie features", len(records))
    magpie = _magpie(records, ds.records, idx, bar)
    bar.complete()
    panels: dict[str, dict[str, Any]] = {}
    for key, title, x in (
        ("embedding", f"{label(config.encoder_name)} embeddings ({h.shape[1]}-d)", h),
        ("magpie", f"ElementProperty (Magpie, {magpie.shape[1]}-d)", magpie),
    ):
        bar = progress.task(f"UMAP of {key}", 1)
        xs = standardise(x)
        xy = umap_2d(xs, config=config)
        bar(1)
        panels[key] = {
            "title": title, "xy": xy, "purity": neighbour_purity(xs, classes),
            "purity_2d": neighbour_purity(xy, classes),
        }  # fmt: skip
    counts = Counter(classes.tolist())
    chance = float(sum((c / len(classes)) ** 2 for c in counts.values()))
    out = Path(out)
    figure = out / FIGURE
    draw(panels, classes, figure, n=len(records), dataset=config.dataset)
    summary = {
        "figure": FIGURE, "dataset": config.dataset, "n_structures": len(records), "n_dataset": len(ds),
        "subsample_seed": config.seed if len(records) < len(ds) else None, "encoder": source,
        "umap": {"n_neighbors": config.n_neighbors, "min_dist": config.min_dist, "random_state": config.seed,
                 "input": "standardised features"},
        "class_counts": {c: counts.get(c, 0) for c in CLASSES}, "neighbours": NEIGHBOURS, "purity_chance": chance,
        "purity": {k: p["purity"] for k, p in panels.items()},
        "purity_2d": {k: p["purity_2d"] for k, p in panels.items()},
        "wall_time_s": round(time.perf_counter() - t0, 1), "date": now(), "command": command_line(),
    }  # fmt: skip
    update(out, half="", cells={}, extra=lambda ev: ev.__setitem__("umap", summary))
    return {**summary, "path": str(figure)}


def draw(panels: dict[str, dict[str, Any]], classes: np.ndarray, path: Path, *, n: int, dataset: str) -> None:
    """Two scatter panels coloured by class with one shared legend, saved as PNG (Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    present = [c for c in CLASSES if np.any(classes == c)]
    size = float(np.clip(3e4 / max(n, 1), 3.0, 20.0))
    fig, axes = plt.subplots(1, 2, figsize=(13, 6.2))
    for ax, panel in zip(axes, panels.values()):
        xy = panel["xy"]
        handles = {}
        for c in sorted(present, key=lambda c: -int(np.sum(classes == c))):  # big classes first, underneath
            m = classes == c
            handles[c] = ax.scatter(xy[m, 0], xy[m, 1], s=size, alpha=0.45 if c == "intermetallic" else 0.8,
                                    color=COLOURS.get(c, "black"), label=f"{c} ({int(m.sum())})", rasterized=True,
                                    linewidths=0)  # fmt: skip
        ax.set_title(f"{panel['title']}\n{NEIGHBOURS}-NN class purity {panel['purity']:.2f}", fontsize=11)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("UMAP 1")
        ax.set_ylabel("UMAP 2")
    ordered = [handles[c] for c in present]
    labels = [h.get_label() for h in ordered]
    fig.legend(ordered, labels, loc="lower center", ncol=min(6, len(labels)), markerscale=3, frameon=False,
               fontsize=9)  # fmt: skip
    fig.suptitle(f"UMAP of {n:,} {dataset} crystals coloured by compound class (from the anions present)")
    fig.tight_layout(rect=(0, 0.1, 1, 0.95))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial.png")
    fig.savefig(tmp, dpi=150)
    plt.close(fig)
    tmp.replace(path)
