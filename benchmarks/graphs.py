"""Crystal-graph speed: ``build_graph`` against the original CGCNN recipe, and featurising the whole MP set.

Usage::

    python benchmarks/graphs.py            # 2,041 structures (every 18th shipped MP record) + the full store
    python benchmarks/graphs.py --n 500 --skip-store --json

Part 1 takes a deterministic sample spread over all 36,738 shipped ``mp_structures`` records (every
``len // n``-th record, starting at the first; ``--n 2000`` gives every 18th, 2,041 structures), builds their
pymatgen ``Structure`` objects first (not timed), then times in the same run

* the original CGCNN recipe, ``reference_neighbor_distances`` (``Structure.get_all_neighbors(8 Å)``, sorted,
  first 12), one structure at a time, and
* ``crystalsearch.structure.graph.build_graph`` (same settings), median of ``--repeats`` passes,

and checks that every atom's neighbour distances agree (same count, equal to 1e-8 Å). The number of
mismatching atoms is printed and must be 0 (exit status 1 otherwise).

Part 2 times featurising all shipped structures into a ``GraphStore`` (32 candidate neighbours per atom)
straight from arrays (``build_store`` over ``record_arrays``, no cache), then the cached reload
(``cached_store``: content hash + ``.npz`` load) from a temporary cache folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def _sample(records: Any, n: int) -> tuple[list[Any], int]:
    step = max(1, len(records) // max(1, n))
    return list(records[::step]), step


def bench_recipe(n: int, repeats: int) -> dict[str, Any]:
    from crystalsearch.data import datasets
    from crystalsearch.structure.graph.build import build_graph, reference_neighbor_distances

    records = datasets.load("mp_structures").records
    sample, step = _sample(records, n)
    t0 = time.perf_counter()
    structures = [r.structure for r in sample]
    t_structures = time.perf_counter() - t0
    n_atoms = sum(len(s) for s in structures)

    for s in structures[:5]:  # warm up both code paths (imports, caches)
        reference_neighbor_distances(s)
        build_graph(s)

    t0 = time.perf_counter()
    reference = [reference_neighbor_distances(s) for s in structures]
    t_ref = time.perf_counter() - t0

    times, graphs = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        graphs = [build_graph(s) for s in structures]
        times.append(time.perf_counter() - t0)
    t_build = statistics.median(times)

    mismatched_atoms = mismatched_structures = n_edges = 0
    for g, ref in zip(graphs, reference):
        bad = 0
        for mine, theirs in zip(g.neighbor_distances(), ref):
            if mine.shape != theirs.shape or (mine.size and np.abs(mine - theirs).max() > 1e-8):
                bad += 1
        bad += abs(g.num_atoms - len(ref))
        mismatched_atoms += bad
        mismatched_structures += bad > 0
        n_edges += g.num_edges
    return {
        "sample": f"every {step}th mp_structures record from index 0",
        "step": step,
        "structures": len(structures),
        "atoms": n_atoms,
        "edges": n_edges,
        "structure_build_s": t_structures,
        "recipe_s": t_ref,
        "recipe_structures_per_s": len(structures) / t_ref,
        "build_graph_s": t_build,
        "build_graph_s_all_repeats": times,
        "build_graph_structures_per_s": len(structures) / t_build,
        "speedup": t_ref / t_build,
        "mismatched_atoms": mismatched_atoms,
        "mismatched_structures": mismatched_structures,
    }


def bench_store() -> dict[str, Any]:
    from crystalsearch.data import datasets
    from crystalsearch.structure.graph import store as store_module
    from crystalsearch.structure.graph.dataset import record_arrays
    from crystalsearch.structure.graph.store import build_store, cached_store, content_key

    records = datasets.load("mp_structures").records  # loaded (and timed) in main()
    t0 = time.perf_counter()
    crystals = record_arrays(records)
    t_arrays = time.perf_counter() - t0

    t0 = time.perf_counter()
    store = build_store(crystals)
    t_build = time.perf_counter() - t0

    with tempfile.TemporaryDirectory(prefix="crystalsearch-bench-") as tmp:
        directory = Path(tmp)
        key = content_key(
            crystals, radius=store.radius, max_neighbors=store.max_neighbors, num_candidates=store.num_candidates
        )
        path = directory / "graphs" / f"{key}.npz"
        t0 = time.perf_counter()
        store.save(path)
        t_save = time.perf_counter() - t0
        size = path.stat().st_size

        def _no_build(*args: object, **kwargs: object) -> None:
            raise RuntimeError("cache miss: build_store was called")

        real_build = store_module.build_store
        store_module.build_store = _no_build  # type: ignore[assignment]
        try:
            t0 = time.perf_counter()
            reloaded = cached_store(crystals, directory=directory)
            t_reload = time.perf_counter() - t0
        finally:
            store_module.build_store = real_build
    same = all(np.array_equal(getattr(store, k), getattr(reloaded, k)) for k in store_module._ARRAYS)
    return {
        "structures": len(store),
        "atoms": int(store.atom_ptr[-1]),
        "candidate_edges": int(store.edge_ptr[-1]),
        "record_arrays_s": t_arrays,
        "build_store_s": t_build,
        "build_store_structures_per_s": len(store) / t_build,
        "save_s": t_save,
        "cache_file_mb": size / 1e6,
        "cached_reload_s": t_reload,
        "reload_identical": same,
    }


def _render(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    env = result["environment"]
    console.print(f"[bold]crystal graphs[/] · {env['cpus']} CPUs · python {env['python']} · pymatgen {env['pymatgen']}")
    r = result.get("recipe")
    if r:
        table = Table(title=f"CGCNN graphs of {r['structures']:,} MP structures ({r['atoms']:,} atoms; {r['sample']})")
        for col in ("method", "seconds", "structures/s", "speed-up"):
            table.add_column(col, justify="left" if col == "method" else "right")
        table.add_row(
            "original recipe (get_all_neighbors, sort, first 12)",
            f"{r['recipe_s']:.2f}",
            f"{r['recipe_structures_per_s']:,.0f}",
            "1.0x",
        )
        table.add_row(
            "build_graph",
            f"{r['build_graph_s']:.3f}",
            f"{r['build_graph_structures_per_s']:,.0f}",
            f"[bold]{r['speedup']:.0f}x[/]",
        )
        console.print(table)
        colour = "green" if r["mismatched_atoms"] == 0 else "red"
        console.print(
            f"[{colour}]atoms whose neighbour distances differ from the recipe: {r['mismatched_atoms']}[/] "
            f"(of {r['atoms']:,}; {r['edges']:,} edges) · building the Structures, not timed: "
            f"{r['structure_build_s']:.2f} s"
        )
    s = result.get("store")
    if s:
        table = Table(title=f"GraphStore of all {s['structures']:,} shipped MP structures (32 candidates per atom)")
        table.add_column("step")
        table.add_column("seconds", justify="right")
        table.add_column("structures/s", justify="right")
        table.add_row("load dataset (36,738 records, once per process)", f"{result['dataset_load_s']:.2f}", "")
        table.add_row("record_arrays", f"{s['record_arrays_s']:.2f}", "")
        table.add_row(
            "build_store (no cache)", f"{s['build_store_s']:.2f}", f"{s['build_store_structures_per_s']:,.0f}"
        )
        table.add_row(f"save cache ({s['cache_file_mb']:.0f} MB .npz)", f"{s['save_s']:.2f}", "")
        table.add_row("cached reload (hash + load)", f"{s['cached_reload_s']:.2f}", "")
        console.print(table)
        console.print(
            f"{s['atoms']:,} atoms, {s['candidate_edges']:,} candidate edges; "
            f"reload identical: {'yes' if s['reload_identical'] else '[red]NO[/]'}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="about this many structures (every len//n-th record)")
    parser.add_argument("--repeats", type=int, default=3, help="build_graph passes (median is reported)")
    parser.add_argument("--skip-store", action="store_true", help="skip featurising the whole dataset")
    parser.add_argument("--skip-recipe", action="store_true", help="skip the comparison with the recipe")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON instead of tables")
    args = parser.parse_args(argv)

    import pymatgen.core

    result: dict[str, Any] = {
        "environment": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "pymatgen": getattr(pymatgen.core, "__version__", "?"),
            "numpy": np.__version__,
        }
    }
    from crystalsearch.data import datasets

    t0 = time.perf_counter()
    datasets.load("mp_structures")
    result["dataset_load_s"] = time.perf_counter() - t0
    if not args.skip_recipe:
        result["recipe"] = bench_recipe(args.n, args.repeats)
    if not args.skip_store:
        result["store"] = bench_store()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _render(result)
    ok = result.get("recipe", {}).get("mismatched_atoms", 0) == 0 and result.get("store", {}).get(
        "reload_identical", True
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
