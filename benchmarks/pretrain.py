"""Contrastive pretraining speed: the real trainer step against a naive per-sample pipeline, in one run.

Usage::

    python benchmarks/pretrain.py                   # batch 512: 5 real steps (+1 warm-up), 2 naive, 1 CGCNN recipe
    python benchmarks/pretrain.py --steps 20 --naive-steps 3 --compile --json
    python benchmarks/pretrain.py --compile --bf16     # the trainer as it runs on CPUs with native bf16

Both pipelines train the same CGCNN encoder + projection head (default size: 64 atom features, 3
convolutions, 128-d h and z) with the same loss (NT-Xent + composition similarity, t = 0.1) and the same
Adam step (lr 1e-4) on batches of ``--batch-size`` crystals drawn from all 36,738 shipped ``mp_structures``
records. One *pair* is one crystal seen in both its augmented views.

* **real**: the trainer's own code path (``crystalsearch.train.pretrain``): ``make_views`` (gather the
  candidate graphs from the cached ``GraphStore``, batched perturb + strain + column replace for both
  views, re-pick the 12 nearest), ``concat_batches``, forward, loss, backward, Adam. Timed twice: with
  the views made synchronously before each step (the full cost of augmentation is visible), and as the
  trainer runs it, the next batch's views prepared in one background thread while the model steps.
* **naive**: per crystal, pymatgen transforms (``crystalclr_recipe``: Perturb, Strain, ColumnReplace, each
  p = 0.5) on ``Structure`` objects for each view, a full ``build_graph`` of both views, then
  ``GraphBatch.from_graphs`` and the same step. The pymatgen structures are built before timing (not
  counted), and ``build_graph`` is already the fast exact builder: the original CGCNN recipe
  (``get_all_neighbors``) makes the naive pipeline slower still: ``--cgcnn-steps`` (default 1) also times
  the naive pipeline with that recipe (``cgcnn_recipe_graph``, as in ``cgcnn/data.py``).

The *augmentation share* is the time from the batch indices to a ready ``GraphBatch`` (``make_views`` +
``concat_batches`` + the element matrix) divided by the whole step; with prefetching it is the time spent
waiting for the background thread, as the trainer's ``augment_fraction`` metric counts it.
``torch.set_flush_denormal(True)`` is on for both pipelines (the trainer turns it on for CPU); the real step
is also timed without it (fp32), since some Gaussian edge features are subnormal floats. ``--compile`` adds
the trainer's step (prefetching) under ``torch.compile`` (the trainer's default; compilation, 10 s to a
minute on 2 cores, is excluded from the timing).

A breakdown of ``make_views`` (``GraphStore.gather``, the two ``augment`` calls, ``concat_batches``) is timed
separately over the same number of batches.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

GOAL_RATIO = 15.0
GOAL_PAIRS_PER_S = 400.0
GOAL_AUG_SHARE = 0.05

REAL = "real: fast augmentation, eager fp32"
NO_FLUSH = "real, without flush-denormal"
PREFETCH = "real as the trainer runs it: prefetch thread"
COMPILED = "real, prefetch thread + torch.compile"
BF16 = "real, prefetch + torch.compile + bf16 autocast"
NAIVE = "naive: pymatgen transforms + build_graph"
NAIVE_CGCNN = "naive, original CGCNN graph recipe"


def _setup(batch_size: int, seed: int) -> dict[str, Any]:
    from crystalsearch.data import datasets
    from crystalsearch.structure.graph.dataset import store_for_records
    from crystalsearch.train.config import PretrainConfig

    t0 = time.perf_counter()
    records = datasets.load("mp_structures").records
    store = store_for_records(records, show_progress=sys.stderr.isatty())
    t_store = time.perf_counter() - t0
    elements = np.zeros((len(store), 101), dtype=bool)
    elements[np.repeat(np.arange(len(store)), store.num_atoms()), store.atomic_numbers] = True
    config = PretrainConfig(batch_size=batch_size, seed=seed)
    return {
        "records": records,
        "store": store,
        "elements": elements,
        "config": config,
        "aug": config.augment,
        "load_s": t_store,
    }


def _model(config: Any, seed: int) -> tuple[Any, Any]:
    import torch

    from crystalsearch.model.cgcnn import ContrastiveModel

    torch.manual_seed(seed)
    model = ContrastiveModel(config.encoder)
    model.train()
    return model, torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def _batches(n_total: int, batch_size: int, count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.sort(rng.choice(n_total, size=batch_size, replace=False)) for _ in range(count)]


def _timed_steps(
    prepare: Callable[[np.ndarray], tuple[Any, Any]],
    batches: list[np.ndarray],
    *,
    forward: Callable[[Any], Any],
    optimizer: Any,
    config: Any,
    warmup: int,
) -> dict[str, Any]:
    """Run ``prepare`` (indices -> GraphBatch, element matrix) + forward + loss + backward + Adam per batch."""
    from crystalsearch.train.pretrain import contrastive_loss

    aug_s, step_s, cpu_s, aug_cpu_s, losses = [], [], [], [], []
    for i, idx in enumerate(batches):
        t0, c0 = time.perf_counter(), time.process_time()
        batch, el = prepare(idx)
        t1, c1 = time.perf_counter(), time.process_time()
        z = forward(batch)
        loss, _ = contrastive_loss(z, el, config=config)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        value = float(loss.detach())
        t2, c2 = time.perf_counter(), time.process_time()
        if i >= warmup:
            aug_s.append(t1 - t0)
            step_s.append(t2 - t0)
            aug_cpu_s.append(c1 - c0)
            cpu_s.append(c2 - c0)
            losses.append(value)
    n = len(step_s)
    pairs = n * len(batches[0])
    total = sum(step_s)
    return {
        "steps": n,
        "pairs_per_s": pairs / total,
        "step_ms": 1e3 * total / n,
        "augment_ms": 1e3 * sum(aug_s) / n,
        "augment_share": sum(aug_s) / total,
        "step_ms_min": 1e3 * min(step_s),
        # process CPU time (all threads): robust to other jobs on a shared machine
        "pairs_per_cpu_s": pairs / sum(cpu_s),
        "cpu_ms": 1e3 * sum(cpu_s) / n,
        "augment_cpu_share": sum(aug_cpu_s) / sum(cpu_s),
        "loss": statistics.fmean(losses),
        "step_ms_each": [round(1e3 * s, 1) for s in step_s],
    }


class _Prefetch:
    """``prepare`` for the trainer's loop: the next batch is prepared in one background thread."""

    def __init__(self, prepare: Callable[[np.ndarray], Any], batches: list[np.ndarray]) -> None:
        self.prepare, self.batches, self.pos = prepare, batches, 0
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.pending = self.pool.submit(prepare, batches[0])

    def __call__(self, idx: np.ndarray) -> Any:
        assert idx is self.batches[self.pos]
        out = self.pending.result()
        self.pos += 1
        if self.pos < len(self.batches):
            self.pending = self.pool.submit(self.prepare, self.batches[self.pos])
        return out

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def bench_real(
    ctx: dict[str, Any],
    *,
    steps: int,
    warmup: int,
    seed: int,
    flush: bool,
    compile: bool,
    prefetch: bool,
    bf16: bool = False,
) -> dict:
    import torch

    from crystalsearch.structure.graph.batch import concat_batches
    from crystalsearch.train.pretrain import make_views

    torch.set_flush_denormal(flush)
    store, elements, config, aug = ctx["store"], ctx["elements"], ctx["config"], ctx["aug"]
    model, optimizer = _model(config, seed)
    rng = np.random.default_rng(seed)
    forward = model
    t_compile = 0.0
    if compile:
        forward = torch.compile(model, dynamic=True)
    if bf16:
        inner = forward

        def forward(batch: Any) -> Any:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return inner(batch)

    batches = _batches(len(store), config.batch_size, warmup + steps, seed)

    def prepare(idx: np.ndarray) -> tuple[Any, Any]:
        v1, v2 = make_views(store, idx, aug=aug, rng=rng)
        return concat_batches([v1, v2]), torch.from_numpy(elements[idx])

    if compile:  # compile outside the timing: one step on a separate batch
        t0 = time.perf_counter()
        extra = _batches(len(store), config.batch_size, 1, seed + 3)
        _timed_steps(prepare, extra, forward=forward, optimizer=optimizer, config=config, warmup=0)
        t_compile = time.perf_counter() - t0
    feed = _Prefetch(prepare, batches) if prefetch else prepare
    try:
        out = _timed_steps(feed, batches, forward=forward, optimizer=optimizer, config=config, warmup=warmup)
    finally:
        if isinstance(feed, _Prefetch):
            feed.close()
    out["compile_s"] = t_compile
    return out


def cgcnn_recipe_graph(structure: Any, *, radius: float, max_neighbors: int) -> Any:
    """The original CGCNN graph (``cgcnn/data.py``): ``get_all_neighbors(radius)``, each atom's neighbours
    sorted by distance, the first ``max_neighbors`` kept."""
    from crystalsearch.structure.graph.build import CrystalGraph

    src, dst, dist, img = [], [], [], []
    for i, nbrs in enumerate(structure.get_all_neighbors(radius)):
        for nbr in sorted(nbrs, key=lambda x: x.nn_distance)[:max_neighbors]:
            src.append(i)
            dst.append(nbr.index)
            dist.append(nbr.nn_distance)
            img.append(nbr.image)
    return CrystalGraph(
        atomic_numbers=np.array([site.specie.Z for site in structure], dtype=np.int64),
        edge_index=np.array([src, dst], dtype=np.int64).reshape(2, -1),
        distances=np.array(dist, dtype=np.float64),
        image_offsets=np.array(img, dtype=np.int64).reshape(-1, 3),
        lattice=structure.lattice.matrix,
        frac_coords=structure.frac_coords,
        radius=radius,
        max_neighbors=max_neighbors,
    )


def bench_naive(ctx: dict[str, Any], *, steps: int, seed: int, cgcnn_recipe: bool = False) -> dict:
    import torch

    from crystalsearch.structure.augment.transforms import crystalclr_recipe
    from crystalsearch.structure.graph.batch import GraphBatch
    from crystalsearch.structure.graph.build import build_graph

    graph_fn = cgcnn_recipe_graph if cgcnn_recipe else build_graph

    torch.set_flush_denormal(True)
    records, elements, config = ctx["records"], ctx["elements"], ctx["config"]
    model, optimizer = _model(config, seed)
    recipe = crystalclr_recipe(p=0.5, seed=seed)
    batches = _batches(len(records), config.batch_size, steps, seed + 1)
    t0 = time.perf_counter()
    structures = {int(i): records[int(i)].structure for idx in batches for i in idx}  # not timed
    t_structures = time.perf_counter() - t0
    radius, k = config.radius, config.max_neighbors

    def prepare(idx: np.ndarray) -> tuple[Any, Any]:
        views = [[recipe(structures[int(i)]) for i in idx] for _ in range(2)]
        graphs = [graph_fn(s, radius=radius, max_neighbors=k) for view in views for s in view]
        return GraphBatch.from_graphs(graphs), torch.from_numpy(elements[idx])

    warm = [records[int(i)].structure for i in range(16)]  # first calls into pymatgen: not timed
    [graph_fn(recipe(s), radius=radius, max_neighbors=k) for s in warm]
    out = _timed_steps(prepare, batches, forward=model, optimizer=optimizer, config=config, warmup=0)
    out["structures_s"] = t_structures
    return out


def breakdown(ctx: dict[str, Any], *, steps: int, seed: int) -> dict[str, float]:
    """Mean milliseconds per batch of the parts of ``make_views`` + ``concat_batches``."""
    from crystalsearch.structure.augment.fast import augment
    from crystalsearch.structure.graph.batch import concat_batches

    store, aug, config = ctx["store"], ctx["aug"], ctx["config"]
    rng = np.random.default_rng(seed)
    times: dict[str, list[float]] = {"gather": [], "augment_view1": [], "augment_view2": [], "concat": []}
    atoms = edges = 0
    kw = {"config": aug, "rng": rng, "radius": store.radius, "max_neighbors": store.max_neighbors}
    for idx in _batches(len(store), config.batch_size, steps, seed + 2):
        t0 = time.perf_counter()
        g = store.gather(idx, candidates=True)
        t1 = time.perf_counter()
        v1 = augment(g, **kw).batch
        t2 = time.perf_counter()
        v2 = augment(g, **kw).batch
        t3 = time.perf_counter()
        both = concat_batches([v1, v2])
        t4 = time.perf_counter()
        for key, dt in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            times[key].append(dt)
        atoms += int(both.atomic_numbers.shape[0])
        edges += int(both.edge_index.shape[1])
    out = {f"{k}_ms": 1e3 * statistics.fmean(v) for k, v in times.items()}
    out["atoms_per_batch"] = atoms / steps
    out["edges_per_batch"] = edges / steps
    out["candidate_edges_per_crystal"] = float(len(store.edge_src) / len(store))
    return out


def _machine() -> dict[str, Any]:
    import torch

    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "cpu_count": os.cpu_count(),
        "load_average_1m": round(load[0], 2),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
    }


def _render(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(160, Console().width))
    rows = result["pipelines"]
    table = Table(
        title=f"Contrastive pretraining step, batch {result['batch_size']} pairs (CPU)",
        caption="same model, loss and Adam step; flush-denormal on unless stated",
    )
    columns = ("pipeline", "steps", "pairs/s", "step ms", "best step ms", "augmentation ms", "augmentation share",
               "pairs/CPU-s", "augmentation CPU share")  # fmt: skip
    for col in columns:
        table.add_column(col, justify="left" if col == "pipeline" else "right", no_wrap=col == "pipeline")
    for name, r in rows.items():
        table.add_row(
            name, str(r["steps"]), f"{r['pairs_per_s']:,.1f}", f"{r['step_ms']:,.0f}", f"{r['step_ms_min']:,.0f}",
            f"{r['augment_ms']:,.1f}", f"{r['augment_share']:.1%}", f"{r['pairs_per_cpu_s']:,.1f}",
            f"{r['augment_cpu_share']:.1%}",
        )  # fmt: skip
    console.print(table)

    s = result["summary"]

    def ok(flag: bool) -> str:
        return "[green]yes[/]" if flag else "[red]no[/]"

    goals = Table(title=f"Goals (real = {s['trainer_pipeline']})")
    for col in ("measure", "value", "goal", "met"):
        goals.add_column(col, justify="left" if col == "measure" else "right")
    goals.add_row("real / naive, pairs/s", f"{s['speedup_vs_naive']:.1f}x", f">= {GOAL_RATIO:.0f}x",
                  ok(s["speedup_vs_naive"] >= GOAL_RATIO))  # fmt: skip
    goals.add_row("real / naive, pairs per CPU-second", f"{s['speedup_vs_naive_cpu']:.1f}x", f">= {GOAL_RATIO:.0f}x",
                  ok(s["speedup_vs_naive_cpu"] >= GOAL_RATIO))  # fmt: skip
    if "speedup_vs_naive_cgcnn" in s:
        value = f"{s['speedup_vs_naive_cgcnn']:.1f}x / {s['speedup_vs_naive_cgcnn_cpu']:.1f}x"
        goals.add_row("real / naive with the CGCNN recipe, pairs/s / per CPU-second", value, f">= {GOAL_RATIO:.0f}x",
                      ok(s["speedup_vs_naive_cgcnn"] >= GOAL_RATIO))  # fmt: skip
    goals.add_row("real pairs/s", f"{s['real_pairs_per_s']:,.0f}", f">= {GOAL_PAIRS_PER_S:.0f}",
                  ok(s["real_pairs_per_s"] >= GOAL_PAIRS_PER_S))  # fmt: skip
    goals.add_row("real augmentation share (waiting for the prefetch thread)", f"{s['real_augment_share']:.1%}",
                  f"< {GOAL_AUG_SHARE:.0%}", ok(s["real_augment_share"] < GOAL_AUG_SHARE))  # fmt: skip
    goals.add_row("augmentation share without prefetch (eager step)", f"{s['synchronous_augment_share']:.1%}",
                  f"< {GOAL_AUG_SHARE:.0%}", ok(s["synchronous_augment_share"] < GOAL_AUG_SHARE))  # fmt: skip
    goals.add_row("prefetch thread speed-up (eager step)", f"{s['prefetch_speedup']:.2f}x", "", "")
    flush = f"{s['flush_denormal_speedup']:.2f}x / {s['flush_denormal_speedup_best_step']:.2f}x"
    goals.add_row("flush-denormal speed-up (fp32 real step; mean / best step)", flush, "", "")
    if "compile_speedup" in s:
        goals.add_row(f"torch.compile speed-up (prefetching step; compiled in {s['compile_s']:.0f} s)",
                      f"{s['compile_speedup']:.2f}x", "", "")  # fmt: skip
    if "bf16_speedup" in s:
        goals.add_row("bf16 autocast speed-up (vs the fp32 step above; relative loss difference)",
                      f"{s['bf16_speedup']:.2f}x ({s['bf16_loss_rel_diff']:.1e})", "", "")  # fmt: skip
    console.print(goals)

    b = result["make_views_breakdown"]
    parts = Table(title="make_views + concat_batches, mean per batch")
    parts.add_column("part")
    parts.add_column("ms", justify="right")
    for key in ("gather", "augment_view1", "augment_view2", "concat"):
        parts.add_row(key, f"{b[key + '_ms']:.1f}")
    console.print(parts)
    console.print(
        f"{b['atoms_per_batch']:,.0f} atoms and {b['edges_per_batch']:,.0f} edges per two-view batch; "
        f"store loaded in {result['load_s']:.1f} s; machine: {result['machine']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps of the real pipeline (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed warm-up steps of the real pipeline")
    parser.add_argument("--naive-steps", type=int, default=2, help="timed steps of the naive pipeline (default 2)")
    parser.add_argument(
        "--cgcnn-steps", type=int, default=1,
        help="timed steps of the naive pipeline with the original CGCNN graph recipe (default 1; 0 skips it)",
    )  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("--compile", action="store_true", help="also time the real step under torch.compile")
    parser.add_argument(
        "--bf16", action="store_true",
        help="also time the compiled step under bf16 autocast (the trainer's default on CPUs with native bf16)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    ctx = _setup(args.batch_size, args.seed)
    pipelines: dict[str, dict[str, Any]] = {}
    kw = {"steps": args.steps, "warmup": args.warmup, "seed": args.seed}
    pipelines[REAL] = bench_real(ctx, **kw, flush=True, compile=False, prefetch=False)
    pipelines[NO_FLUSH] = bench_real(ctx, **kw, flush=False, compile=False, prefetch=False)
    pipelines[PREFETCH] = bench_real(ctx, **kw, flush=True, compile=False, prefetch=True)
    if args.compile:
        pipelines[COMPILED] = bench_real(ctx, **kw, flush=True, compile=True, prefetch=True)
    if args.bf16:
        from crystalsearch.model.embed import cpu_has_bf16

        if not cpu_has_bf16():
            parser.error("--bf16: this CPU has no native bf16 (AVX512-BF16 / AMX); the trainer stays in fp32 here")
        pipelines[BF16] = bench_real(ctx, **kw, flush=True, compile=args.compile, prefetch=True, bf16=True)
    pipelines[NAIVE] = bench_naive(ctx, steps=args.naive_steps, seed=args.seed)
    if args.cgcnn_steps:
        pipelines[NAIVE_CGCNN] = bench_naive(ctx, steps=args.cgcnn_steps, seed=args.seed, cgcnn_recipe=True)
    torch.set_flush_denormal(True)
    real, no_flush = pipelines[REAL], pipelines[NO_FLUSH]
    trainer_name = BF16 if args.bf16 else COMPILED if args.compile else PREFETCH
    trainer = pipelines[trainer_name]
    naive = pipelines[NAIVE]
    summary = {
        "trainer_pipeline": trainer_name,
        "real_pairs_per_s": trainer["pairs_per_s"],
        "naive_pairs_per_s": naive["pairs_per_s"],
        "speedup_vs_naive": trainer["pairs_per_s"] / naive["pairs_per_s"],
        "speedup_vs_naive_cpu": trainer["pairs_per_cpu_s"] / naive["pairs_per_cpu_s"],
        "real_augment_share": trainer["augment_share"],
        "synchronous_augment_share": real["augment_share"],
        "flush_denormal_speedup": real["pairs_per_s"] / no_flush["pairs_per_s"],
        "flush_denormal_speedup_best_step": no_flush["step_ms_min"] / real["step_ms_min"],
        "prefetch_speedup": pipelines[PREFETCH]["pairs_per_s"] / real["pairs_per_s"],
    }
    if args.cgcnn_steps:
        cg = pipelines[NAIVE_CGCNN]
        summary["speedup_vs_naive_cgcnn"] = trainer["pairs_per_s"] / cg["pairs_per_s"]
        summary["speedup_vs_naive_cgcnn_cpu"] = trainer["pairs_per_cpu_s"] / cg["pairs_per_cpu_s"]
    if args.compile:
        compiled = pipelines[COMPILED]
        summary["compile_speedup"] = compiled["pairs_per_s"] / pipelines[PREFETCH]["pairs_per_s"]
        summary["compile_s"] = compiled["compile_s"]
    if args.bf16:
        base = pipelines[COMPILED] if args.compile else pipelines[PREFETCH]
        summary["bf16_speedup"] = pipelines[BF16]["pairs_per_s"] / base["pairs_per_s"]
        summary["bf16_loss_rel_diff"] = abs(pipelines[BF16]["loss"] / base["loss"] - 1.0)
    result = {
        "batch_size": args.batch_size,
        "pipelines": pipelines,
        "summary": summary,
        "make_views_breakdown": breakdown(ctx, steps=max(args.steps, 3), seed=args.seed),
        "load_s": ctx["load_s"],
        "machine": _machine(),
    }
    if args.json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        _render(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
