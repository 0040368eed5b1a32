"""Search at catalog scale: 5 million crystal vectors, FAISS IVF-Flat / IVF-SQ8 / IVF-PQ / HNSW against exact
search, all in one run.

Usage::

    nice -n 5 python benchmarks/scale.py                        # 5,000,000 vectors (~24 min on 2 shared cores)
    python benchmarks/scale.py --n 500000 --hnsw-n 100000       # a quick run (~2 min)
    python benchmarks/scale.py --noise 3 --hnsw-n 0 --variants flat,pq --nprobe 4,8,16,32,64
    python benchmarks/scale.py --nlist 4096 --nprobe 16,32 --json > scale.json
    python benchmarks/scale.py --show scale.json                # the table of a saved run

Peak memory at 5M: ~7 GB of the process's own plus the 3.9 GB of memory-mapped vectors (page cache).
Measured figures and what they mean for ``index build``: ``benchmarks/README.md``, "scale.py".

* **Vectors.** The real ``[h | s]`` index vectors (encoder embedding + structure fingerprint, 208-d) of the
  default index when it has been built (``default_index(build=False)``), else of ``--base`` catalog structures
  embedded here with the default encoder (cached under ``<cache>/benchmarks``). Perturbed copies fill the
  index up to ``--n``: each part of a real vector moved by Gaussian noise of norm ``--noise`` x the median
  distance of a real vector to its nearest real neighbour (that part alone), then re-normalised, so the
  copies are as close to their original as real neighbours are to each other.
* **Queries.** ``--queries`` real vectors perturbed the same way (new crystals, not indexed rows), weighted as
  ``similar --by both`` weights them (:class:`crystalsearch.catalog.scoring.Ranking`); k = 10, inner product.
* **Exact.** The ground truth: inner products with every vector, by blocks
  (:func:`crystalsearch.catalog.faiss_index.exact_top_k`); the exact latency: ``faiss.knn`` of one query. The
  vectors are memory-mapped from a temporary file (``--tmp``), so the page cache holds them, not the process's
  own (anonymous) memory, which is printed next to the RSS.
* **Variants.** One coarse quantizer (``nlist`` spherical k-means centroids, default the size rule of
  ``index build``, :func:`crystalsearch.catalog.build.auto_factory`) trained once and the 5M assignments computed
  once, shared by IVF-Flat, IVF-SQ8 and IVF-PQ (``--pq-m`` bytes a vector; also with the exact re-ranking of its
  256 best candidates that ``Catalog`` does); each swept over ``--nprobe``. HNSW32 (efConstruction 40) on the
  first ``--hnsw-n`` vectors, timed per 100k added, with its own exact ground truth; swept over ``--ef``.
* **Measured.** recall@10 against exact, median ms of one query at a time with 2 threads and with 1 thread
  (``faiss.omp_set_num_threads``), ms a query when all queries go in one call, build time (the shared coarse
  step counted in each IVF variant), index size (serialised bytes) and the process's resident memory (RSS,
  including the vectors themselves) after each build, and the peak RSS of the run.
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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

K = 10
RERANK = 256  # candidates Catalog re-scores exactly (crystalsearch.catalog.scoring.CANDIDATES)
GOAL_RECALL, GOAL_MS = 0.95, 5.0


def rss_gb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def log(msg: str) -> None:
    rss = f"RSS {rss_gb():.1f} GB, anonymous {rss_gb('RssAnon'):.1f} GB"
    print(f"[{time.strftime('%H:%M:%S')}] {msg} ({rss})", file=sys.stderr, flush=True)


def base_vectors(n_base: int, seed: int) -> tuple[np.ndarray, int, str]:
    """Real index vectors: the default index's if it exists, else ``n_base`` catalog structures embedded here."""
    from crystalsearch.catalog.defaults import default_encoder, default_index
    from crystalsearch.catalog.faiss_index import VectorIndex
    from crystalsearch.catalog.manifest import INDEX_FILE
    from crystalsearch.errors import IndexFileError

    enc = default_encoder()
    try:
        folder, _ = default_index(encoder=enc, build=False)
        vi = VectorIndex.read(folder / INDEX_FILE)
        return np.array(vi.vectors(), dtype=np.float32), enc.dim, f"default index {folder} ({vi.ntotal:,} vectors)"
    except IndexFileError:
        pass
    from crystalsearch.atomic import atomic_write
    from crystalsearch.catalog.embedding import auto_workers, run_chunks
    from crystalsearch.data.entries import entries_from_datasets
    from crystalsearch.paths import cache_dir

    cache = cache_dir() / "benchmarks" / f"scale_base_{enc.hash}_{n_base}_{seed}.npy"
    what = f"{n_base:,} catalog structures embedded with {enc.name} ({enc.hash}; no default index built yet)"
    if cache.is_file():
        return np.load(cache), enc.dim, what + f", cached in {cache}"
    entries = entries_from_datasets("all")
    rows = np.sort(np.random.default_rng(seed).choice(len(entries), size=min(n_base, len(entries)), replace=False))
    chosen = [entries[i] for i in rows]
    jobs = [(i, chosen[s : s + 1024]) for i, s in enumerate(range(0, len(chosen), 1024))]
    parts: dict[int, np.ndarray] = {}
    log(f"embedding {len(chosen):,} structures (no default index to read)")
    run_chunks(jobs, enc, workers=auto_workers(len(chosen), enc), advance=lambda n: None,
               on_done=lambda i, c: parts.__setitem__(i, np.hstack([c["embeddings"], c["structure"]])))  # fmt: skip
    vectors = np.ascontiguousarray(np.vstack([parts[i] for i in range(len(jobs))]), dtype=np.float32)
    cache.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(cache, lambda fh: np.save(fh, vectors))
    return vectors, enc.dim, what


def perturb(x: np.ndarray, sigmas: list[float], dims: list[int], rng: np.random.Generator) -> np.ndarray:
    """Each part moved by Gaussian noise of expected norm ``sigma`` and re-normalised (zero parts stay zero)."""
    out = np.empty_like(x)
    lo = 0
    for d, s in zip(dims, sigmas):
        part = x[:, lo : lo + d] + rng.standard_normal((len(x), d), dtype=np.float32) * np.float32(s / np.sqrt(d))
        part *= np.linalg.norm(x[:, lo : lo + d], axis=1, keepdims=True) > 0
        norms = np.linalg.norm(part, axis=1, keepdims=True)
        out[:, lo : lo + d] = part / np.where(norms > 0, norms, 1.0)
        lo += d
    return out


def nn_distance(part: np.ndarray, rng: np.random.Generator, n: int = 2000) -> float:
    """Median Euclidean distance of a real (unit) vector part to its nearest other real one."""
    import faiss

    q = part[rng.choice(len(part), size=min(n, len(part)), replace=False)]
    sims, _ = faiss.knn(q, part, 2, metric=faiss.METRIC_INNER_PRODUCT)
    return float(np.median(np.sqrt(np.clip(2 - 2 * sims[:, 1], 0, None))))


def fill(data: np.ndarray, base: np.ndarray, sigmas: list[float], dims: list[int], rng: np.random.Generator) -> None:
    """``data`` (a memory map): the real vectors first, then perturbed copies of them, in turn."""
    n, nb = len(data), min(len(base), len(data))
    data[:nb] = base[:nb]
    for start in range(nb, n, 250_000):
        end = min(n, start + 250_000)
        data[start:end] = perturb(base[(np.arange(start, end) - nb) % nb], sigmas, dims, rng)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a[a >= 0]) & set(b)) / K for a, b in zip(found, truth)]))


def timed(search: Callable[[np.ndarray], np.ndarray], xq: np.ndarray, threads: int) -> tuple[float, np.ndarray]:
    """Median ms of one query at a time with ``threads`` threads, and the rows found."""
    import faiss

    faiss.omp_set_num_threads(threads)
    found, times = [], []
    for q in xq:
        t = time.perf_counter()
        found.append(search(q[None])[0])
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times), np.array(found)


def serialized_gb(index: Any) -> float:
    import faiss

    size = [0]
    writer = faiss.PyCallbackIOWriter(  # type: ignore[attr-defined]
        lambda b: size.__setitem__(0, size[0] + len(b)) or len(b)
    )
    faiss.write_index(index, writer)
    del writer
    return size[0] / 2**30


Setting = tuple[str, Callable[[], None], Callable[[np.ndarray], np.ndarray]]


def sweep(name: str, index: Any, params: Sequence[Setting], xq: np.ndarray, truth: np.ndarray, build_s: float,
          extra: dict[str, Any]) -> list[dict[str, Any]]:  # fmt: skip
    """One row per setting: recall@10, ms a query (2 threads, 1 thread, batched), size, RSS."""
    import faiss

    size, rss, rows = serialized_gb(index), rss_gb(), []
    for label, apply, search in params:
        apply()
        ms2, found = timed(search, xq, 2)
        ms1, _ = timed(search, xq[: max(50, len(xq) // 3)], 1)
        faiss.omp_set_num_threads(2)
        t = time.perf_counter()
        search(xq)
        batch = 1000 * (time.perf_counter() - t) / len(xq)
        row = {"index": name, "setting": label, "recall_at_10": round(recall(found, truth), 4),
               "ms_2_threads": ms2, "ms_1_thread": ms1, "ms_batched": batch, "build_s": build_s,
               "index_gb": size, "rss_gb": rss, "anon_gb": rss_gb("RssAnon"), **extra}  # fmt: skip
        log(f"{name} {label}: recall@10 {row['recall_at_10']:.3f}, {ms2:.2f} ms (2 thr), {ms1:.2f} ms (1 thr)")
        rows.append(row)
    return rows


def ivf_variants(data: np.ndarray, xq: np.ndarray, truth: np.ndarray, args: argparse.Namespace) -> list[dict[str, Any]]:
    import faiss

    from crystalsearch.catalog.build import auto_factory

    n, d = data.shape
    nlist = args.nlist or int(auto_factory(max(n, 50_001)).split(",")[0].removeprefix("IVF"))
    rng = np.random.default_rng(args.seed + 1)
    sample = np.asarray(data[np.sort(rng.choice(n, size=min(n, args.train_per_list * nlist), replace=False))])
    t0 = time.perf_counter()
    km = faiss.Kmeans(d, nlist, niter=args.niter, spherical=True, seed=1234, max_points_per_centroid=10**9)
    if args.quantizer == "hnsw":  # k-means' assignment step through HNSW over the centroids (rebuilt each time)
        km.index = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
        km.index.hnsw.efSearch = 64
    km.train(sample)
    assert km.centroids is not None
    if args.quantizer == "hnsw":
        quantizer: Any = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
        quantizer.hnsw.efSearch = 64  # for the assignments; raised for the searches below
    else:
        quantizer = faiss.IndexFlatIP(d)
    quantizer.add(km.centroids)
    t_train = time.perf_counter() - t0
    log(f"k-means {nlist} lists on {len(sample):,} vectors ({args.quantizer} assignment): {t_train:.0f} s")
    assign = np.empty(n, dtype=np.int64)
    for s in range(0, n, 250_000):
        assign[s : s + 250_000] = quantizer.search(np.ascontiguousarray(data[s : s + 250_000]), 1)[1][:, 0]
    coarse = time.perf_counter() - t0
    log(f"assigned {n:,} vectors: coarse step {coarse:.0f} s")
    if args.quantizer == "hnsw":
        quantizer.hnsw.efSearch = 2 * max(int(p) for p in args.nprobe.split(","))
    nprobes = [int(p) for p in args.nprobe.split(",")]
    rows: list[dict[str, Any]] = []
    makers: list[tuple[str, Callable[[], Any]]] = [
        (f"IVF{nlist},Flat", lambda: faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)),
        (f"IVF{nlist},SQ8", lambda: faiss.IndexIVFScalarQuantizer(
            quantizer, d, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)),
        (f"IVF{nlist},PQ{args.pq_m}", lambda: faiss.IndexIVFPQ(quantizer, d, nlist, args.pq_m, 8,
                                                               faiss.METRIC_INNER_PRODUCT)),
    ]  # fmt: skip
    wanted = set(args.variants.split(","))
    if not wanted & {"flat", "sq8", "pq"}:
        return []
    for name, make in [m for m, key in zip(makers, ("flat", "sq8", "pq")) if key in wanted]:
        t = time.perf_counter()
        index = make()
        index.train(sample[: min(len(sample), 65_536)])  # quantizer trained: only the codec (SQ ranges, PQ books)
        for s in range(0, n, 250_000):
            x = np.ascontiguousarray(data[s : s + 250_000])
            a = np.ascontiguousarray(assign[s : s + 250_000])
            index.add_core(len(x), faiss.swig_ptr(x), None, faiss.swig_ptr(a))
        build = coarse + time.perf_counter() - t
        log(f"{name}: built in {build:.0f} s")

        def setter(p: int, ix: Any = index) -> Callable[[], None]:
            return lambda: setattr(ix, "nprobe", p)

        def plain(q: np.ndarray, ix: Any = index) -> np.ndarray:
            return ix.search(q, K)[1]

        params = [(f"nprobe {p}", setter(p), plain) for p in nprobes]
        rows += sweep(name, index, params, xq, truth, build, {"nlist": nlist, "train_vectors": len(sample)})
        if not name.endswith("Flat"):  # lossy codes: also with the exact re-ranking Catalog does

            def reranked(q: np.ndarray, ix: Any = index) -> np.ndarray:
                cand = ix.search(q, RERANK)[1]
                out = np.empty((len(q), K), dtype=np.int64)
                for i, (qi, ci) in enumerate(zip(q, cand)):
                    ci = ci[ci >= 0]
                    out[i] = ci[np.argsort(-(data[ci] @ qi), kind="stable")[:K]]
                return out

            params = [(f"nprobe {p}, exact re-rank of {RERANK}", setter(p), reranked) for p in nprobes]
            rows += sweep(name + " + re-rank", index, params, xq, truth, build, {"nlist": nlist})
        del index
    return rows


def hnsw_variant(data: np.ndarray, xq: np.ndarray, args: argparse.Namespace) -> list[dict[str, Any]]:
    import faiss

    n = min(args.hnsw_n, len(data))
    faiss.omp_set_num_threads(2)
    from crystalsearch.catalog.faiss_index import exact_top_k

    truth = exact_top_k(xq, data[:n], K)
    index = faiss.IndexHNSWFlat(data.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    t0, per_100k = time.perf_counter(), []
    for s in range(0, n, 100_000):
        t = time.perf_counter()
        index.add(np.ascontiguousarray(data[s : min(n, s + 100_000)]))
        per_100k.append(time.perf_counter() - t)
    build = time.perf_counter() - t0
    log(f"HNSW32 on {n:,}: {build:.0f} s (last 100k: {per_100k[-1]:.0f} s)")

    def setter(ef: int) -> Callable[[], None]:
        return lambda: setattr(index.hnsw, "efSearch", ef)

    def search(q: np.ndarray) -> np.ndarray:
        return index.search(q, K)[1]

    params = [(f"efSearch {ef}", setter(int(ef)), search) for ef in args.ef.split(",")]
    estimate = build * (len(data) / n) * np.log(len(data)) / np.log(n) if n < len(data) else build
    return sweep(f"HNSW32 ({n:,} vectors)", index, params, xq, truth, build,
                 {"vectors": n, "build_s_per_100k_last": per_100k[-1], "estimated_build_s_all": estimate})  # fmt: skip


def product_build(data: np.ndarray, xq: np.ndarray, args: argparse.Namespace) -> list[dict[str, Any]]:
    """What ``index build`` itself does with ``--build-n`` vectors: ``make_index`` with the ``auto`` factory
    (faiss's own k-means and exact assignment), its build-time recall check, then queries at ``IVF_NPROBE``."""
    from crystalsearch.catalog.build import auto_factory
    from crystalsearch.catalog.faiss_index import IVF_NPROBE, exact_top_k, make_index, recall_at_k

    n = min(args.build_n, len(data))
    x = np.ascontiguousarray(data[:n])
    factory = auto_factory(n)
    t = time.perf_counter()
    index = make_index(x, dim=x.shape[1], factory=factory)
    build = time.perf_counter() - t
    t = time.perf_counter()
    check = recall_at_k(index, x)
    log(f"index build's {factory} on {n:,}: make_index {build:.0f} s, recall check {check:.3f} "
        f"({time.perf_counter() - t:.0f} s)")  # fmt: skip

    def search(q: np.ndarray) -> np.ndarray:
        return index.search(q, K)[1]

    params = [(f"nprobe {IVF_NPROBE} (IVF_NPROBE)", lambda: None, search)]
    return sweep(f"index build: {factory} ({n:,})", index, params, xq, exact_top_k(xq, x, K), build,
                 {"vectors": n, "build_recall_check": check})  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5_000_000, help="vectors in the index (default 5,000,000)")
    ap.add_argument("--base", type=int, default=30_000, help="structures to embed when no default index exists")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--noise", type=float, default=1.0, help="copy noise in units of the median real 1-NN distance")
    ap.add_argument("--nlist", type=int, default=0, help="IVF lists (default: index build's rule for --n)")
    ap.add_argument("--nprobe", default="8,16,32,64,128")
    ap.add_argument("--niter", type=int, default=10, help="k-means iterations of the coarse quantizer")
    ap.add_argument(
        "--quantizer",
        choices=("hnsw", "flat"),
        default="hnsw",
        help="coarse quantizer: HNSW32 over the centroids (IVF{nlist}_HNSW32) or exact (IVF{nlist})",
    )
    ap.add_argument("--train-per-list", type=int, default=40, help="k-means training vectors per list")
    ap.add_argument("--variants", default="flat,sq8,pq", help="inverted-file variants to build: flat,sq8,pq")
    ap.add_argument("--pq-m", type=int, default=52, help="IVF-PQ bytes a vector (208 / m dims a sub-quantizer)")
    ap.add_argument("--hnsw-n", type=int, default=1_000_000, help="vectors in the HNSW index (0: skip HNSW)")
    ap.add_argument("--ef", default="32,64,128,256")
    ap.add_argument("--build-n", type=int, default=0, help="also time index build's own make_index on this many")
    ap.add_argument("--tmp", default=None, help="folder for the memory-mapped vectors (default: the system's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--show", metavar="FILE", help="only print the table of a saved --json result")
    args = ap.parse_args()
    if args.show:
        render(json.loads(Path(args.show).read_text()))
        return
    import faiss

    from crystalsearch.catalog.faiss_index import exact_top_k
    from crystalsearch.catalog.scoring import BOTH_WEIGHT, Ranking

    t_run = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    base, chem_dim, source = base_vectors(args.base, args.seed)
    dims = [chem_dim, base.shape[1] - chem_dim]
    faiss.omp_set_num_threads(2)
    sigmas = [args.noise * nn_distance(np.ascontiguousarray(base[:, :chem_dim]), rng),
              args.noise * nn_distance(np.ascontiguousarray(base[:, chem_dim:]), rng)]  # fmt: skip
    log(f"{len(base):,} real vectors from {source}; copy noise {sigmas[0]:.3f} (h), {sigmas[1]:.3f} (s)")
    t = time.perf_counter()
    tmp = tempfile.TemporaryDirectory(prefix="crystalsearch-scale-", dir=args.tmp)
    shape = (args.n, base.shape[1])
    data = np.lib.format.open_memmap(Path(tmp.name) / "vectors.npy", mode="w+", dtype=np.float32, shape=shape)
    fill(data, base, sigmas, dims, rng)
    data.flush()
    log(f"{len(data):,} vectors ({data.nbytes / 2**30:.1f} GB, memory-mapped) in {time.perf_counter() - t:.0f} s")
    raw = perturb(base[rng.choice(len(base), size=args.queries, replace=False)], sigmas, dims, rng)
    ranking = Ranking(weight=BOTH_WEIGHT, chem_dim=dims[0], struct_dim=dims[1])
    xq = np.ascontiguousarray(np.stack([ranking.query(r[: dims[0]], r[dims[0] :]) for r in raw]), dtype=np.float32)
    t = time.perf_counter()
    truth = exact_top_k(xq, data, K)
    exact_batch = 1000 * (time.perf_counter() - t) / len(xq)

    def exact(q: np.ndarray) -> np.ndarray:
        return faiss.knn(q, data, K, metric=faiss.METRIC_INNER_PRODUCT)[1]

    ms2, _ = timed(exact, xq[:5], 2)
    ms1, _ = timed(exact, xq[:3], 1)
    rows = [{"index": "exact (faiss.knn)", "setting": "", "recall_at_10": 1.0, "ms_2_threads": ms2,
             "ms_1_thread": ms1, "ms_batched": exact_batch, "build_s": 0.0, "index_gb": data.nbytes / 2**30,
             "rss_gb": rss_gb(), "anon_gb": rss_gb("RssAnon")}]  # fmt: skip
    log(f"exact: {ms2:.0f} ms (2 thr), {ms1:.0f} ms (1 thr), batched {exact_batch:.1f} ms/query")
    rows += ivf_variants(data, xq, truth, args)
    if args.hnsw_n:
        rows += hnsw_variant(data, xq, args)
    if args.build_n:
        rows += product_build(data, xq, args)
    tmp.cleanup()  # the map stays valid until exit
    result = {"n": len(data), "dim": data.shape[1], "base": source, "base_vectors": len(base), "queries": len(xq),
              "noise_sigma": sigmas, "rows": rows, "peak_rss_gb": rss_gb("VmHWM"),
              "wall_s": time.perf_counter() - t_run, "cpus": os.cpu_count(), "load_avg": os.getloadavg(),
              "machine": platform.processor() or platform.machine(), "faiss": faiss.__version__}  # fmt: skip
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        render(result)


def render(r: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{r['n']:,} x {r['dim']} vectors ({r['base_vectors']:,} real), {r['queries']} queries, k = {K}, "
              f"{r['cpus']} CPUs, load {r['load_avg'][0]:.1f}", title_justify="left")  # fmt: skip
    columns = ["index", "setting", "recall@10", "ms 2 thr", "ms 1 thr", "ms batched", "build s", "index GB",
               "RSS GB (anon)"]  # fmt: skip
    for col in columns:
        t.add_column(col, justify="left" if col in ("index", "setting") else "right")
    for row in r["rows"]:
        ok = row["recall_at_10"] >= GOAL_RECALL and row["ms_2_threads"] <= GOAL_MS
        t.add_row(row["index"], row["setting"] + (" *" if ok else ""), f"{row['recall_at_10']:.3f}",
                  f"{row['ms_2_threads']:.2f}", f"{row['ms_1_thread']:.2f}", f"{row['ms_batched']:.2f}",
                  f"{row['build_s']:.0f}", f"{row['index_gb']:.2f}",
                  f"{row['rss_gb']:.1f} ({row.get('anon_gb', float('nan')):.1f})")  # fmt: skip
    console = Console(width=max(140, Console().width))
    console.print(t)
    console.print(f"* meets the goal (recall@10 >= {GOAL_RECALL}, <= {GOAL_MS} ms a query on 2 threads). "
                  f"Peak RSS {r['peak_rss_gb']:.1f} GB, wall {r['wall_s'] / 60:.1f} min. "
                  f"Base: {r['base']}.")  # fmt: skip
    for row in r["rows"]:
        if "estimated_build_s_all" in row:
            minutes = row["estimated_build_s_all"] / 60
            console.print(f"HNSW32 build over all {r['n']:,} vectors estimated at {minutes:.0f} min "
                          f"(n log n from {row['vectors']:,}).")  # fmt: skip
            break


if __name__ == "__main__":
    main()
