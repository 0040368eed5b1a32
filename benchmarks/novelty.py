"""Novelty checks against brute force: agreement of every verdict and time, in the same run.

Usage::

    nice -n 5 python benchmarks/novelty.py                      # 1,200 candidates vs a 25k test index
    nice -n 5 python benchmarks/novelty.py --large 10000         # + 10,000 candidates vs the default index
    python benchmarks/novelty.py --candidates 300 --json         # smaller

* **Test index**: whole formula groups of the MP 2025 release (seeded shuffle of the reduced formulas,
  groups of at most 150 materials) until 27,022 materials; 2,000 of them (from formulas with at least two
  materials, so their polymorphs stay indexed) are held out, the other 25,022 indexed with the default
  encoder (built once into ``<cache>/bench``).
* **Candidates**, written as CIF files into a folder, as a user would have them: (1) indexed materials
  disguised: rotated, re-celled (conventional cell, a supercell, or another setting of the same lattice),
  origin shifted, every site moved by 0.01-0.03 Å in a random direction, a third also isotropically
  strained by up to 1% (a copy relaxed with other settings); 5% of them disguised twice (duplicates among
  the candidates); (2) held-out materials disguised the same way; (3) indexed materials with one element
  replaced by another of its periodic-table group everywhere (KCl from NaCl: known or novel).
* **Fast**: :func:`crystalsearch.identity.novelty.check_novelty` on the folder (reading included), one
  process and ``--workers`` processes. **Exhaustive baseline**: the same CIFs read, then for each candidate
  pymatgen's StructureMatcher itself (the same criterion's settings, each structure reduced once) against
  *every* catalog material with its reduced formula, the verdict kept only where the space group (spglib,
  same symprec) agrees too; the best match is the smallest RMS. **Agreement**: same status (known/novel)
  and the same best material id.
* ``--large N``: N candidates (the same recipe, from the whole release) against the full default index when
  it is built (``default_index(build=False)``), else against the test index (said in the output).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

GROUP_MAX = 150
N_INDEX = 25_000
N_HELD = 2_000
GROUPS = {  # periodic-table columns for element replacement
    g: els.split()
    for g, els in {
        "1": "Li Na K Rb Cs", "2": "Be Mg Ca Sr Ba", "13": "B Al Ga In Tl", "14": "C Si Ge Sn Pb",
        "15": "N P As Sb Bi", "16": "O S Se Te", "17": "F Cl Br I", "3": "Sc Y La", "4": "Ti Zr Hf",
        "5": "V Nb Ta", "6": "Cr Mo W", "10": "Ni Pd Pt", "11": "Cu Ag Au", "12": "Zn Cd Hg",
    }.items()
}  # fmt: skip


def split(seed: int = 0) -> tuple[list[Any], list[Any], list[Any]]:
    """(indexed records, held-out records, all records) of the test catalog."""
    from crystalsearch.data import datasets

    records = datasets.load("mp2025").records
    groups: dict[str, list[Any]] = defaultdict(list)
    for r in records:
        groups[r.reduced_formula].append(r)
    formulas = sorted(groups)
    rng = random.Random(seed)
    rng.shuffle(formulas)
    chosen: list[str] = []
    total = 0
    for f in formulas:
        if len(groups[f]) <= GROUP_MAX:
            chosen.append(f)
            total += len(groups[f])
            if len(chosen) % 500 == 0 and total >= N_INDEX + N_HELD:
                break
    members = [r for f in chosen for r in groups[f]]
    multi = [r for r in members if len(groups[r.reduced_formula]) >= 2]
    held = {id(r) for r in rng.sample(multi, N_HELD)}
    return [r for r in members if id(r) not in held], [r for r in members if id(r) in held], list(records)


def test_index(indexed: list[Any]) -> Path:
    from crystalsearch.catalog.build import build_index
    from crystalsearch.model.embed import Encoder
    from crystalsearch.paths import cache_dir

    enc = Encoder.load("default")
    out = cache_dir() / "bench" / f"novelty-{enc.hash}-{len(indexed)}"
    if not (out / "manifest.json").is_file():
        print(f"building the test index ({len(indexed)} materials) into {out} ...", file=sys.stderr)
        build_index(indexed, encoder=enc, out=out, progress=True)
    return out


def disguise(structure: Any, rng: np.random.Generator, *, max_sites: int = 120) -> Any:
    """Rotated, re-celled, origin-shifted copy with every site moved by 0.01-0.03 Å (a third also strained)."""
    from pymatgen.core import Lattice, Structure
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer
    from scipy.spatial.transform import Rotation

    s = structure.copy()
    kind = rng.integers(4)
    if kind == 0:
        try:
            conv = SpacegroupAnalyzer(s, symprec=0.1).get_conventional_standard_structure()
            s = conv if len(conv) <= max_sites else s
        except Exception:  # noqa: BLE001, S110 - keep the cell when spglib cannot standardise it
            pass
    elif kind == 1 and 2 * len(s) <= max_sites:
        axis = int(rng.integers(3))
        s.make_supercell([2 if i == axis else 1 for i in range(3)])
    elif kind == 2:
        m = np.eye(3, dtype=int)
        i, j = rng.choice(3, 2, replace=False)
        m[i, j] = rng.choice([-1, 1])  # another setting of the same lattice (unimodular)
        s = s.copy()
        s.make_supercell(m)
    if rng.random() < 1 / 3:
        s.apply_strain(float(rng.uniform(-0.01, 0.01)))
    shift = rng.random(3)
    frac = (s.frac_coords + shift) % 1.0
    rot = Rotation.random(random_state=int(rng.integers(2**31))).as_matrix()
    lattice = Lattice(s.lattice.matrix @ rot.T)
    out = Structure(lattice, [site.specie for site in s], frac)
    moves = rng.normal(size=(len(out), 3))
    moves *= (rng.uniform(0.01, 0.03, size=len(out)) / np.linalg.norm(moves, axis=1))[:, None]
    return Structure(lattice, [site.specie for site in out], out.cart_coords + moves, coords_are_cartesian=True)


def substitute(structure: Any, rng: np.random.Generator) -> Any | None:
    elements = sorted({site.specie.symbol for site in structure})
    options = [(el, other) for el in elements for g in GROUPS.values() if el in g for other in g
               if other != el and other not in elements]  # fmt: skip
    if not options:
        return None
    el, other = options[int(rng.integers(len(options)))]
    s = structure.copy()
    s.replace_species({el: other})
    return s


def off_stoichiometric(structure: Any, rng: np.random.Generator) -> Any | None:
    """One site of an element with at least two sites (in the primitive cell) replaced by another element of its
    periodic-table group that is not in the structure: another, off-stoichiometric formula."""
    s = structure.get_primitive_structure()
    counts: dict[str, list[int]] = defaultdict(list)
    for i, site in enumerate(s):
        counts[site.specie.symbol].append(i)
    present = set(counts)
    options = [(i, other) for el, sites in counts.items() if len(sites) >= 2 for g in GROUPS.values() if el in g
               for other in g if other not in present for i in sites[:1]]  # fmt: skip
    if not options:
        return None
    i, other = options[int(rng.integers(len(options)))]
    s.replace(i, other)
    return s


def polymorph_pairs(indexed: list[Any], n: int, pick: random.Random) -> list[tuple[Any, Any]]:
    """``n`` pairs of indexed materials of one reduced formula in different space groups (spglib, 0.1 Å)."""
    from crystalsearch.identity.known import query_key

    groups: dict[str, list[Any]] = defaultdict(list)
    for r in indexed:
        groups[r.reduced_formula].append(r)
    pairs = []
    for formula in pick.sample(
        sorted(f for f, g in groups.items() if len(g) >= 2), sum(len(g) >= 2 for g in groups.values())
    ):
        by_sg: dict[int, Any] = {}
        for r in groups[formula][:8]:
            by_sg.setdefault(query_key(r.structure).spacegroup, r)
        if len(by_sg) >= 2:
            a, b = pick.sample(sorted(by_sg), 2)
            pairs.append((by_sg[a], by_sg[b]))
        if len(pairs) >= n:
            break
    return pairs


def polymorph_files(kinds: dict[str, str]) -> list[tuple[str, str]]:
    """The (a, b) candidate file names of each polymorph pair."""
    names = {name.split("_")[1]: name for name, kind in kinds.items() if kind == "polymorph"}
    return [(name, names[key[:-1] + "b"]) for key, name in names.items() if key.endswith("a")]


def make_candidates(indexed: list[Any], held: list[Any], n: int, folder: Path, seed: int) -> dict[str, str]:
    """Write ``n`` candidate CIFs into ``folder`` (the mix of the module docstring); returns file name -> kind."""
    from pymatgen.io.cif import CifWriter

    rng = np.random.default_rng(seed)
    pick = random.Random(seed)
    small_idx = [r for r in indexed if r.num_sites <= 60]
    small_held = [r for r in held if r.num_sites <= 60]
    n_held = n // 5 if held else 0
    n_sub = n_off = (3 * n) // 20
    n_poly = n // 20  # pairs
    n_dis = n - n_held - n_sub - n_off - 2 * n_poly
    kinds: dict[str, str] = {}
    folder.mkdir(parents=True, exist_ok=True)

    def write(name: str, s: Any, kind: str) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            CifWriter(s).write_file(folder / f"{name}.cif")
        kinds[f"{name}.cif"] = kind

    n_twice = n_dis // 20
    for i, r in enumerate(pick.sample(small_idx, n_dis - n_twice)):
        write(f"disguised_{i:05d}_{r.material_id}", disguise(r.structure, rng), "disguised")
        if i < n_twice:
            write(f"disguised_{i:05d}_{r.material_id}_again", disguise(r.structure, rng), "disguised")
    for i, r in enumerate(pick.sample(small_held, min(n_held, len(small_held)))):
        write(f"heldout_{i:05d}_{r.material_id}", disguise(r.structure, rng), "held-out")
    for kind, change, quota in (("substituted", substitute, n_sub), ("off-stoichiometric", off_stoichiometric, n_off)):
        i = 0
        for r in pick.sample(small_idx, len(small_idx)):
            if i >= quota:
                break
            s = change(r.structure, rng)
            if s is not None:
                write(f"{kind}_{i:05d}_{r.material_id}", disguise(s, rng), kind)
                i += 1
    for i, (a, b) in enumerate(polymorph_pairs(small_idx, n_poly, pick)):
        write(f"polymorph_{i:05d}a_{a.material_id}", disguise(a.structure, rng), "polymorph")
        write(f"polymorph_{i:05d}b_{b.material_id}", disguise(b.structure, rng), "polymorph")
    return kinds


def exhaustive(
    folder: Path, index: Path, *, limit: int | None = None, naive: bool = False
) -> tuple[dict[str, tuple[str, str | None]], float, int]:
    """Brute force: StructureMatcher against *every* catalog material with the candidate's reduced formula,
    then the same space-group rule as the fast path (space group at symprec 0.1, else at the looser
    ``noise_tolerances``, in order).
    Returns verdicts by file name (status, best id), CPU seconds (one process), pairs compared. ``naive``:
    pymatgen's ``fit`` and ``get_rms_dist`` per pair as users call them (each reduces both structures through
    pymatgen's cache) instead of each structure reduced once."""
    from crystalsearch.catalog.reader import MetadataReader
    from crystalsearch.data.entries import structure_from_json
    from crystalsearch.identity.known import MatchCriterion, query_key, reduce_structure
    from crystalsearch.io import read_structures
    from crystalsearch.structure.matching import pymatgen_fit_rms

    criterion = MatchCriterion()
    matcher = criterion.matcher()

    def pair(query: Any, text: str) -> float | None:
        if naive:  # pymatgen as users call it: fit, then get_rms_dist of a match
            entry = structure_from_json(text)
            return matcher.get_rms_dist(s, entry)[0] if matcher.fit(s, entry) else None
        return pymatgen_fit_rms(query, reduce_structure(structure_from_json(text)), criterion)

    db = MetadataReader(index / "metadata.sqlite")
    out: dict[str, tuple[str, str | None]] = {}
    pairs = 0
    t0 = time.process_time()  # CPU seconds: comparable across phases on a shared machine
    for label, s in read_structures(str(folder)):
        if limit is not None and len(out) >= limit:
            break
        key = query_key(s, symprec=criterion.symprec)
        rows = db.ids_with_formula(key.formula).tolist()
        found = db.materials(rows)
        texts = db.structures(rows)
        query = reduce_structure(s, symprec=criterion.symprec)  # once per candidate (as the fast path)
        fits = {}
        for r in rows:
            pairs += 1
            fits[r] = pair(query, texts[r])
        matched = [(rms, found[r].material_id) for r, rms in fits.items()
                   if rms is not None and found[r].spacegroup_number == key.spacegroup]  # fmt: skip
        for tol in criterion.noise_tolerances() if any(rms is not None for rms in fits.values()) else ():
            if matched:
                break
            loose = query_key(s, symprec=tol).spacegroup
            matched = [(rms, found[r].material_id) for r, rms in fits.items()
                       if rms is not None and found[r].spacegroup_number == loose]  # fmt: skip
        out[Path(label).name] = ("known", min(matched)[1]) if matched else ("novel", None)
    db.close()
    return out, time.process_time() - t0, pairs


def wl_baseline(folder: Path, index: Path, *, limit: int) -> tuple[dict[str, tuple[str, str | None]], float]:
    """Known by an equal bonding-graph WL hash + formula + space group (BAWL-style, ``novelty_noise.wl_key``)
    with any catalog material of the candidate's reduced formula, on about ``limit`` candidates spread over
    the folder; verdicts by file name, CPU seconds."""
    import novelty_noise as module  # benchmarks/novelty_noise.py, beside this script

    from crystalsearch.catalog.reader import MetadataReader
    from crystalsearch.data.entries import structure_from_json
    from crystalsearch.identity.known import query_key
    from crystalsearch.io import read_structures

    db = MetadataReader(index / "metadata.sqlite")
    keys: dict[int, str] = {}
    out: dict[str, tuple[str, str | None]] = {}
    t0 = time.process_time()
    stride = max(1, -(-len(list(folder.glob("*.cif"))) // limit))  # every stride-th file: all kinds sampled
    for n, (label, s) in enumerate(read_structures(str(folder))):
        if n % stride:
            continue
        mine = module.wl_key(s)
        rows = db.ids_with_formula(query_key(s).formula).tolist()
        missing = [r for r in rows if r not in keys]
        for r, text in db.structures(missing).items():
            keys[r] = module.wl_key(structure_from_json(text))
        found = db.materials([r for r in rows if keys[r] == mine])
        ids = sorted(m.material_id for m in found.values())
        out[Path(label).name] = ("known", ids[0]) if ids else ("novel", None)
    db.close()
    return out, time.process_time() - t0


def run_fast(folder: Path, index: Path, workers: int) -> tuple[Any, float, float]:
    from crystalsearch.identity.novelty import check_novelty

    def cpu() -> float:  # this process and its finished worker processes, user + system
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    cpu0 = cpu()
    t0 = time.perf_counter()
    report = check_novelty([str(folder)], index=str(index), workers=workers, progress=sys.stderr.isatty())
    return report, time.perf_counter() - t0, cpu() - cpu0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--candidates", type=int, default=1200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--large", type=int, default=0, help="also N candidates against the full default index")
    ap.add_argument("--wl", type=int, default=1000, help="candidates checked by the WL-hash baseline")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=Path, default=None, help="write the candidates here (kept)")
    ap.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the figures as JSON")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    indexed, held, records = split(args.seed)
    index = test_index(indexed)
    tmp = Path(tempfile.mkdtemp(prefix="novelty-bench-"))
    rows: dict[str, Any] = {"index": str(index), "indexed": len(indexed), "held_out": len(held)}
    try:
        folder = args.keep or tmp / "candidates"
        kinds = make_candidates(indexed, held, args.candidates, folder, args.seed)
        base, t_base, pairs = exhaustive(folder, index)
        n_naive = min(300, len(base))
        naive, t_naive, _ = exhaustive(folder, index, limit=n_naive, naive=True)
        naive_agree = sum(1 for k, v in naive.items() if base[k] == v)
        wl, t_wl = wl_baseline(folder, index, limit=min(args.wl, len(base)))
        rows["wl_hash"] = {"n": len(wl), "cpu_s": t_wl,
                           "status_agree": sum(1 for k, v in wl.items() if v[0] == base[k][0]),
                           "false_known": sum(1 for k, v in wl.items() if v[0] == "known" and base[k][0] == "novel"),
                           "false_novel": sum(1 for k, v in wl.items() if v[0] == "novel" and base[k][0] == "known"),
                           "exhaustive_novel": sum(1 for k in wl if base[k][0] == "novel")}  # fmt: skip
        fast1, t_fast1, cpu_fast1 = run_fast(folder, index, 1)
        fastn, t_fastn, cpu_fastn = run_fast(folder, index, args.workers)
        by_label = {Path(c.label).name: c for c in fast1.candidates}
        agree = sum(1 for name, (status, mid) in base.items()
                    if (by_label[name].status, by_label[name].material_id) == (status, mid))  # fmt: skip
        own = [name for name, kind in kinds.items() if kind in ("disguised", "polymorph")]
        own_ok = sum(1 for name in own if by_label[name].material_id == name.split("_")[2].removesuffix(".cif"))
        grouped = {Path(c.label).name: c for c in fastn.candidates}
        poly = polymorph_files(kinds)
        merged = sum(1 for a, b in poly if (grouped[b].duplicate_of or "").endswith(a)
                     or (grouped[a].duplicate_of or "").endswith(b))  # fmt: skip
        twice = [name for name in kinds if name.endswith("_again.cif")]
        found_twice = sum(1 for name in twice if grouped[name].duplicate_of is not None)
        rows.update(polymorph_pairs=len(poly), polymorph_pairs_merged=merged,
                    twice_disguised=len(twice), twice_found_duplicate=found_twice)  # fmt: skip
        fast_pairs = sum(c.pairs for c in fast1.candidates)
        false_known = sum(1 for n, (status, _) in base.items() if status == "novel" and by_label[n].status == "known")
        false_novel = sum(1 for n, (status, _) in base.items() if status == "known" and by_label[n].status == "novel")
        rows.update(false_known=false_known, false_novel=false_novel,
                    n_exhaustive_novel=sum(1 for s, _ in base.values() if s == "novel"),
                    n_exhaustive_known=sum(1 for s, _ in base.values() if s == "known"))  # fmt: skip
        per_kind = {k: {"n": sum(1 for v in kinds.values() if v == k),
                        "known": sum(1 for n, v in kinds.items() if v == k and by_label[n].status == "known")}
                    for k in ("disguised", "held-out", "substituted", "off-stoichiometric", "polymorph")}  # fmt: skip
        rows.update(candidates=len(base), agreement=agree / len(base), disagreements=len(base) - agree,
                    disguised_known_as_own=f"{own_ok}/{len(own)}", kinds=per_kind, summary=fast1.summary(),
                    exhaustive_s=t_base, exhaustive_pairs=pairs, fast_1proc_s=t_fast1, fast_pairs=fast_pairs,
                    fast_workers=args.workers, fast_workers_s=t_fastn, speedup_1proc=t_base / cpu_fast1,
                    speedup_workers=t_base / cpu_fastn, fast_1proc_cpu_s=cpu_fast1, fast_workers_cpu_s=cpu_fastn,
                    naive_n=n_naive, naive_s=t_naive,
                    naive_estimate_s=t_naive / n_naive * len(base), naive_agree=naive_agree,
                    naive_differ=[(k, v, base[k]) for k, v in naive.items() if base[k] != v],
                    mismatches=[(n, base[n], (by_label[n].status, by_label[n].material_id)) for n in base
                                if (by_label[n].status, by_label[n].material_id) != base[n]][:20])  # fmt: skip
        if args.large:
            rows["large"] = large(args.large, records, index, args.workers, tmp, args.seed)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=str) + "\n")
    print(f"test index: {rows['indexed']} materials ({index}); held out {rows['held_out']}; load average at the "
          f"end {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")  # fmt: skip
    print(f"candidates: {rows['candidates']}  {rows['kinds']}")
    print(f"fast: {rows['summary']}")
    print("| measure | fast (novelty) | exhaustive StructureMatcher | ratio |\n|---|---|---|---|")
    print(f"| agreement of every verdict (status + best id) | {100 * rows['agreement']:.2f}% "
          f"({rows['disagreements']} differ) | reference | |")  # fmt: skip
    print(f"| disguised copies known as exactly their own entry (polymorph pairs included) | "
          f"{rows['disguised_known_as_own']} | | |")  # fmt: skip
    print(f"| second disguised copies found as duplicates of the first | {rows['twice_found_duplicate']}/"
          f"{rows['twice_disguised']} | | |")  # fmt: skip
    print(f"| polymorph pairs merged (both disguised in one batch) | {rows['polymorph_pairs_merged']}/"
          f"{rows['polymorph_pairs']} | | |")  # fmt: skip
    print(f"| false known (exhaustive: novel) | {rows['false_known']}/{rows['n_exhaustive_novel']} | reference | |")
    print(f"| false novel (exhaustive: known) | {rows['false_novel']}/{rows['n_exhaustive_known']} | reference | |")
    w = rows["wl_hash"]
    print(f"| bonding-graph WL hash + formula + space group (BAWL-style), {w['n']} candidates spread over all: status "
          f"agrees "
          f"| | {w['status_agree']}/{w['n']}; false known {w['false_known']}/{w['exhaustive_novel']}, false novel "
          f"{w['false_novel']}/{w['n'] - w['exhaustive_novel']}; {w['cpu_s']:.1f} CPU-s | |")  # fmt: skip
    print(f"| StructureMatcher pairs | {rows['fast_pairs']} | {rows['exhaustive_pairs']} | "
          f"{rows['exhaustive_pairs'] / max(rows['fast_pairs'], 1):.0f}x fewer |")  # fmt: skip
    print(f"| CPU time, 1 process (reading the CIFs included) | {cpu_fast1:.1f} s (wall {t_fast1:.1f} s) | "
          f"{t_base:.1f} s | {rows['speedup_1proc']:.1f}x |")  # fmt: skip
    print(f"| {args.workers} processes | wall {t_fastn:.1f} s, CPU {cpu_fastn:.1f} s | {t_base:.1f} s (1 process) | "
          f"{rows['speedup_workers']:.1f}x (CPU) |")  # fmt: skip
    est = rows["naive_estimate_s"]
    print(f"| CPU time vs the naive exhaustive baseline (pymatgen fit + get_rms_dist per pair as users call them; "
          f"{rows['naive_n']} candidates timed: {rows['naive_s']:.1f} s, verdicts agree on {rows['naive_agree']}) | "
          f"{cpu_fast1:.1f} s | ~{est:.0f} s | {est / cpu_fast1:.1f}x |")  # fmt: skip
    if "large" in rows:
        lg = rows["large"]
        print(
            f"| {lg['candidates']} candidates vs {lg['index_materials']} materials ({lg['which']}), "
            f"{args.workers} processes | wall {lg['seconds']:.0f} s, CPU {lg['cpu_s']:.0f} s | "
            f"~{lg['exhaustive_estimate_s']:.0f} s CPU (from 200 candidates: {lg['exhaustive_200_s']:.0f} s, "
            f"{lg['exhaustive_200_pairs']} pairs) | {lg['exhaustive_estimate_s'] / lg['cpu_s']:.1f}x (CPU) |"
        )  # fmt: skip
        print(f"  {lg['summary']}")
    for m in rows["mismatches"]:
        print("  differs:", m)
    for m in rows["naive_differ"]:
        print("  naive (pymatgen's own reduction) differs:", m)


def large(n: int, records: list[Any], test_idx: Path, workers: int, tmp: Path, seed: int) -> dict[str, Any]:
    """``n`` candidates against the full default index if it is built, else against the test index; the
    exhaustive baseline on the first 200 of them (per-candidate time, extrapolated to all ``n``)."""
    from crystalsearch.catalog.defaults import default_index
    from crystalsearch.catalog.manifest import read_manifest
    from crystalsearch.errors import IndexFileError

    try:
        index, _ = default_index(build=False, progress=False)
        which = "the full default index (MP 2025 release)"
        pool_in, pool_out = list(records), list[Any]()  # nothing is held out: the novel ones are substituted
    except IndexFileError:
        index, which = test_idx, "the test index (the full default index is not built yet)"
        pool_in, pool_out, _ = split(seed)
    folder = tmp / "large"
    make_candidates(pool_in, pool_out, n, folder, seed + 1)
    report, seconds, cpu_s = run_fast(folder, index, workers)
    _, base_s, base_pairs = exhaustive(folder, index, limit=200)
    estimate = base_s / 200 * len(report.candidates)
    return {"candidates": len(report.candidates), "index_materials": read_manifest(index).count, "which": which,
            "seconds": seconds, "cpu_s": cpu_s, "summary": report.summary(), "exhaustive_200_s": base_s,
            "exhaustive_200_pairs": base_pairs, "exhaustive_estimate_s": estimate}  # fmt: skip


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
