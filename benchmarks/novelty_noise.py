"""Identity under noise: do rotated, re-celled, strained and jiggled copies keep their verdicts?

Usage::

    nice -n 10 python benchmarks/novelty_noise.py --materials 1000            # in-batch pairs only
    nice -n 10 python benchmarks/novelty_noise.py --materials 1000 --catalog  # + the default index

A seeded sample of MP 2025 materials (at most 40 sites, ``--seed``), each disguised twice independently
with :func:`novelty.disguise` (rotated; conventional cell, a supercell or another setting of the lattice;
origin shifted; every site moved by 0.01-0.03 Å; a third strained by up to 1%). Measured:

* **in-batch duplicates found**: both copies in one batch, the second marked a duplicate of the first
  (:func:`crystalsearch.identity.novelty.group_duplicates`, candidates built as ``check_novelty`` builds
  them but without a catalog, so only the grouping decides); with and without the noise tolerances;
* **polymorphs kept apart**: the same batch also holds one disguised copy of every other material of the
  sample's formulas (different MP materials: a merge across two ids is a false merge), and BaTiO3's
  polymorphs (mp-2998 and the others of the release);
* ``--catalog`` (needs the default index built): each first copy checked against the index (known as
  exactly its own entry) and searched with ``similar`` (its own entry ranked first, ``--by both``; the
  hits stay in similarity order, the verdict does not reorder them).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np


def _disguise() -> Any:
    import novelty  # benchmarks/novelty.py: this script's folder is on the path when run as a script

    return novelty.disguise


def sample(n: int, seed: int) -> tuple[list[Any], list[Any]]:
    """(``n`` sampled records, other records sharing their formulas: at most 2 per formula, and BaTiO3's)."""
    from crystalsearch.data import datasets

    records = [r for r in datasets.load("mp2025").records if r.num_sites <= 40]
    rng = random.Random(seed)
    chosen = rng.sample(records, n)
    by_formula: dict[str, list[Any]] = defaultdict(list)
    for r in records:
        by_formula[r.reduced_formula].append(r)
    ids = {r.material_id for r in chosen}
    others: list[Any] = []
    for f in sorted({r.reduced_formula for r in chosen} | {"BaTiO3"}):
        rest = [r for r in by_formula[f] if r.material_id not in ids]
        others += rest if f == "BaTiO3" else rest[:2]
    return chosen, others


def candidate(label: str, structure: Any, criterion: Any) -> Any:
    from crystalsearch.data.entries import structure_to_json
    from crystalsearch.identity.known import query_key
    from crystalsearch.identity.novelty import Candidate

    key = query_key(structure, symprec=criterion.symprec)
    text = structure_to_json(structure.lattice.matrix, [s.specie.symbol for s in structure], structure.frac_coords)
    return Candidate(label, "novel", key.formula, key.spacegroup, structure=text)


def in_batch(chosen: list[Any], others: list[Any], seed: int, *, baseline: bool = True) -> dict[str, Any]:
    from crystalsearch.identity.known import MatchCriterion
    from crystalsearch.identity.novelty import group_duplicates

    disguise = _disguise()
    rng = np.random.default_rng(seed)
    copies = [(r.material_id, disguise(r.structure, rng), disguise(r.structure, rng)) for r in chosen]
    extra = [(r.material_id, disguise(r.structure, rng)) for r in others]
    out: dict[str, Any] = {"pairs": len(copies), "others": len(extra), "wl_hash": wl_baseline(copies, extra)}
    variants = [("noise tolerances", MatchCriterion()), ("symprec only", MatchCriterion(noise_symprec=None))]
    for name, criterion in variants if baseline else variants[:1]:
        t0 = time.perf_counter()
        batch = [candidate(f"{mid}#a", a, criterion) for mid, a, _ in copies]
        batch += [candidate(f"{mid}#x", s, criterion) for mid, s in extra]
        batch += [candidate(f"{mid}#b", b, criterion) for mid, _, b in copies]
        grouped = group_duplicates(batch, criterion)
        found = sum(1 for c in grouped if c.label.endswith("#b") and c.duplicate_of == c.label[:-1] + "a")
        false = [(c.label, c.duplicate_of) for c in grouped
                 if c.duplicate_of is not None and c.duplicate_of.split("#")[0] != c.label.split("#")[0]]  # fmt: skip
        batio3 = {c.label: c.duplicate_of for c in grouped if c.formula == "BaTiO3"}
        out[name] = {"found": found, "rate": found / len(copies), "false_merges": false,
                     "batio3_merged": sorted(k for k, v in batio3.items() if v and v.split("#")[0] != k.split("#")[0]),
                     "seconds": time.perf_counter() - t0}  # fmt: skip
    return out


def wl_key(structure: Any, *, symprec: float = 0.1, iterations: int = 3) -> str:
    """A bonding-graph hash in the manner of LeMaterial's BAWL fingerprint (written here from its description):
    the primitive cell's sites as nodes labelled by element, an edge between two sites closer than 1.2x the
    sum of their atomic radii (any periodic image), networkx's Weisfeiler-Lehman graph hash, joined with the
    reduced formula and the space group at ``symprec``."""
    import networkx as nx

    from crystalsearch.identity.known import query_key, reduce_structure

    s = reduce_structure(structure, symprec=symprec)
    radii = np.array([float(site.specie.atomic_radius or 1.5) for site in s])
    graph = nx.Graph()
    graph.add_nodes_from((i, {"el": site.specie.symbol}) for i, site in enumerate(s))
    centres, points, _, dists = s.get_neighbor_list(r=2.0 * 1.2 * float(radii.max()))
    for i, j, d in zip(centres, points, dists):
        if i < j and d <= 1.2 * (radii[i] + radii[j]):
            graph.add_edge(int(i), int(j))
    key = query_key(structure, symprec=symprec)
    digest = nx.weisfeiler_lehman_graph_hash(graph, node_attr="el", iterations=iterations)
    return f"{key.formula}:{key.spacegroup}:{digest}"


def wl_baseline(copies: list[tuple[str, Any, Any]], extra: list[tuple[str, Any]]) -> dict[str, Any]:
    """Duplicates by equal hash (:func:`wl_key`): pairs found, distinct materials sharing a key, time."""
    t0 = time.perf_counter()
    first = {mid: wl_key(a) for mid, a, _ in copies}
    second = {mid: wl_key(b) for mid, _, b in copies}
    others = [(mid, wl_key(s)) for mid, s in extra]
    seconds = time.perf_counter() - t0
    owners: dict[str, set[str]] = defaultdict(set)
    for mid, key in [*first.items(), *others]:
        owners[key].add(mid)
    found = sum(1 for mid in first if second[mid] == first[mid])
    false = sum(1 for mid, key in others if owners[key] - {mid})
    n = len(copies)
    return {"found": found, "rate": found / n, "false_merges": false, "seconds": seconds,
            "per_structure_ms": 1000 * seconds / (2 * n + len(extra))}  # fmt: skip


def against_catalog(chosen: list[Any], seed: int) -> dict[str, Any]:
    from crystalsearch.catalog.defaults import default_index
    from crystalsearch.identity.catalog import Catalog

    disguise = _disguise()
    rng = np.random.default_rng(seed)
    index, _ = default_index(build=False, progress=False)
    copies = [(r.material_id, disguise(r.structure, rng)) for r in chosen]
    known_own = first_own = known_first = 0
    misses: list[tuple[str, str | None, str | None]] = []
    t0 = time.perf_counter()
    with Catalog.open(index, progress=False) as catalog:
        for start in range(0, len(copies), 64):
            chunk = copies[start : start + 64]
            results = catalog.search([s for _, s in chunk], k=3, known=True)
            for (mid, _), res in zip(chunk, results):
                top = res.hits[0].material_id if res.hits else None
                own = mid in res.known_as
                known_own += own
                first_own += top == mid
                known_first += bool(res.known_as) and top == res.known_as[0]
                if top != mid or not own:
                    misses.append((mid, top, res.known_as[0] if res.known_as else None))
    n = len(copies)
    return {"index": str(index), "copies": n, "known_as_own": known_own, "known_rate": known_own / n,
            "similar_first_own": first_own, "similar_rate": first_own / n, "misses": misses[:30],
            "seconds": time.perf_counter() - t0}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--materials", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--catalog", action="store_true", help="also against the default index (must be built)")
    ap.add_argument("--json", type=Path, default=None, metavar="FILE")
    ap.add_argument("--no-baseline", action="store_true", help="skip the in-batch run without noise tolerances")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    chosen, others = sample(args.materials, args.seed)
    rows: dict[str, Any] = {
        "materials": len(chosen),
        "seed": args.seed,
        "in_batch": in_batch(chosen, others, args.seed, baseline=not args.no_baseline),
    }
    for name in ("noise tolerances", "symprec only")[: 1 if args.no_baseline else 2]:
        r = rows["in_batch"][name]
        pairs = rows["in_batch"]["pairs"]
        print(f"in-batch duplicates found ({name}): {r['found']}/{pairs} = {100 * r['rate']:.2f}%; "
              f"false merges across materials {len(r['false_merges'])} (of {rows['in_batch']['others']} other "
              f"materials of the same formulas), BaTiO3 merged: {r['batio3_merged']}; "
              f"{r['seconds']:.0f} s")  # fmt: skip
    w = rows["in_batch"]["wl_hash"]
    print(f"bonding-graph WL hash + formula + space group (BAWL-style): {w['found']}/{rows['in_batch']['pairs']} = "
          f"{100 * w['rate']:.2f}% found; {w['false_merges']} other materials share a key; "
          f"{w['per_structure_ms']:.1f} ms per structure")  # fmt: skip
    if args.catalog:
        c = rows["catalog"] = against_catalog(chosen, args.seed + 1)
        print(
            f"catalog copies known as their own entry: {c['known_as_own']}/{c['copies']} = {100 * c['known_rate']:.2f}%"
        )
        print(f"similar ranks the own entry first: {c['similar_first_own']}/{c['copies']} = "
              f"{100 * c['similar_rate']:.2f}%  ({c['seconds']:.0f} s, {c['index']})")  # fmt: skip
        for m in c["misses"]:
            print("  miss (material, first hit, known as):", m)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=str) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
