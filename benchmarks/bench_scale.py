"""Pattern-index backends at scale, side by side: 100,000 / 1,000,000 / 5,000,000 vectors.

Run: ``python benchmarks/bench_scale.py [--quick] [--sizes 100000,1000000] [--hnsw-max N]``.
Prints one JSON document (and the table on stderr).

For each library size (synthetic v1-shaped setup vectors, as ``bench_patterns.py``) and each
backend (``make_vector_index(name)``): build time (``build`` of the whole float32 matrix);
memory (``nbytes`` the backend reports, and the process RSS growth over the build, which also
sees FAISS' own allocations); single-query latency, k = 50, median and p95 over the same queries
for every backend (``search`` over everything; ``pit``: a point-in-time prefix of 3/4 of the
rows); recall@50 of the same queries against the exact float64-settled kernel
(:func:`exact_topk` over the original float32 matrix; tie-aware, as
:func:`~swing_core.patterns.backends.recall_at_k`, and by row ids). The baseline is the current
default, ``sklearn`` (which answers single queries with the exact kernel), measured in the same
run; ratios are its median over each backend's. FAISS runs single queries on one OpenMP thread;
the default (two threads here) is measured too for the FAISS backends (``omp_default``).

``faiss-hnsw`` is built only up to ``--hnsw-max`` rows (default 1,000,000): its build takes
about 100 s per million vectors on two cores.

Targets: at 1,000,000 vectors the fastest backend with recall@50 >= 0.95 answers in <= 10 ms
(median); int8 holds <= 20 MB per million vectors.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _util import emit, target  # noqa: E402
from bench_patterns import setup_vectors  # noqa: E402

from swing_core.patterns import (  # noqa: E402
    exact_topk,
    faiss_backend,  # noqa: E402
    make_vector_index,
)

K = 50
BACKENDS = ("sklearn", "faiss-flat", "faiss-ivf", "faiss-hnsw", "int8")
QUERIES = {100_000: 300, 1_000_000: 150, 5_000_000: 60}


def _rss() -> int:
    return psutil.Process().memory_info().rss


def _latencies(index: Any, queries: np.ndarray, limit: int | None) -> list[float]:
    lim = None if limit is None else np.array([limit])
    index.search(queries[:1], K, limits=lim)  # warm-up
    out = []
    for q in queries:
        t = time.perf_counter()
        index.search(q[None, :], K, limits=lim)
        out.append(time.perf_counter() - t)
    return out


def _summary(samples: list[float]) -> dict[str, float]:
    ms = np.asarray(samples) * 1e3
    return {"median_ms": float(statistics.median(ms)), "p95_ms": float(np.percentile(ms, 95))}


def _recall(index: Any, matrix: np.ndarray, queries: np.ndarray, want: tuple[np.ndarray, ...],
            limit: int | None) -> dict[str, float]:
    """Tie-aware and row-set recall@K against the exact result ``want``."""
    want_s, want_i = want
    lim = None if limit is None else np.full(len(queries), limit)
    _, got = index.search(queries, K, limits=lim)
    ties, ids = [], []
    for i, q in enumerate(queries):
        rows = got[i][got[i] >= 0]
        exact = matrix[rows].astype(np.float64) @ q / np.linalg.norm(
            matrix[rows].astype(np.float64), axis=1)
        ties.append(min(int((exact >= want_s[i, K - 1] - 1e-12).sum()), K) / K)
        ids.append(np.intersect1d(rows, want_i[i]).size / K)
    return {"recall": float(np.mean(ties)), "id_recall": float(np.mean(ids))}


def bench_size(n: int, names: list[str], hnsw_max: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    t = time.perf_counter()
    matrix = setup_vectors(n, rng)
    queries = setup_vectors(QUERIES.get(n, 100), rng).astype(np.float64)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)  # unit in float64
    made = time.perf_counter() - t
    pit = n * 3 // 4
    t = time.perf_counter()
    want = exact_topk(queries, matrix, K)
    want_pit = exact_topk(queries, matrix, K, limits=np.full(len(queries), pit))
    truth_s = time.perf_counter() - t
    out: dict[str, Any] = {"n": n, "queries": len(queries), "generate_s": made,
                           "ground_truth_s": truth_s, "backends": {},
                           "matvec": _matvec(matrix, queries)}
    for name in names:
        if name == "faiss-hnsw" and n > hnsw_max:
            out["backends"][name] = {"skipped": f"n > --hnsw-max {hnsw_max}"}
            continue
        gc.collect()
        rss0 = _rss()
        index = make_vector_index(name)
        t = time.perf_counter()
        index.build(matrix)
        build_s = time.perf_counter() - t
        row: dict[str, Any] = {"build_s": build_s, "nbytes_mb": index.nbytes / 1e6,
                               "mb_per_million": index.nbytes / 1e6 / (n / 1e6),
                               "rss_growth_mb": (_rss() - rss0) / 1e6}
        if hasattr(index, "redone"):
            index.redone = 0
        row.update(_summary(_latencies(index, queries, None)))
        if hasattr(index, "redone"):  # queries the exact backends answered twice (near-ties)
            row["redo_rate"] = index.redone / (len(queries) + 1)  # with the warm-up query
        pit_lat = _summary(_latencies(index, queries, pit))
        row.update({"pit_median_ms": pit_lat["median_ms"], "pit_p95_ms": pit_lat["p95_ms"]})
        row.update(_recall(index, matrix, queries, want, None))
        row["pit_recall"] = _recall(index, matrix, queries, want_pit, pit)["recall"]
        if name.startswith("faiss"):
            small, faiss_backend.SMALL_BATCH = faiss_backend.SMALL_BATCH, 0  # default threads
            try:
                row["omp_default_median_ms"] = _summary(
                    _latencies(index, queries[: len(queries) // 2], None))["median_ms"]
            finally:
                faiss_backend.SMALL_BATCH = small
        out["backends"][name] = row
        print(f"  n={n:>9,} {name:<10} build {build_s:7.2f} s  median {row['median_ms']:7.3f} ms"
              f"  p95 {row['p95_ms']:7.3f} ms  recall {row['recall']:.3f}  "
              f"{row['nbytes_mb']:8.1f} MB", file=sys.stderr, flush=True)
        del index
    base = out["backends"].get("sklearn", {}).get("median_ms")
    for row in out["backends"].values():
        if base and "median_ms" in row:
            row["speedup_vs_sklearn"] = base / row["median_ms"]
        if "median_ms" in row:
            row["ratio_to_matvec"] = row["median_ms"] / out["matvec"]["median_ms"]
    return out


def _matvec(matrix: np.ndarray, queries: np.ndarray) -> dict[str, float]:
    """The floor an exact query cannot beat: one float32 matrix-vector product over the same
    matrix (reading all of it once), on one BLAS thread as the single queries run."""
    from threadpoolctl import threadpool_limits

    q32 = queries.astype(np.float32)
    with threadpool_limits(1):
        matrix @ q32[0]
        samples = []
        for q in q32:
            t = time.perf_counter()
            matrix @ q
            samples.append(time.perf_counter() - t)
    return _summary(samples)


def table(sizes: list[dict[str, Any]]) -> str:
    lines = ["| Vectors | Backend | Build | Median | p95 | Point-in-time median | Recall@50 | "
             "Memory (reported) | RSS growth | × sklearn |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for size in sizes:
        for name, r in size["backends"].items():
            if "skipped" in r:
                lines.append(f"| {size['n']:,} | {name} | skipped ({r['skipped']}) "
                             "| | | | | | | |")
                continue
            lines.append(
                f"| {size['n']:,} | {name} | {r['build_s']:.2f} s | {r['median_ms']:.2f} ms | "
                f"{r['p95_ms']:.2f} ms | {r['pit_median_ms']:.2f} ms | {r['recall']:.3f} | "
                f"{r['nbytes_mb']:.0f} MB | {r['rss_growth_mb']:.0f} MB | "
                f"{r.get('speedup_vs_sklearn', float('nan')):.1f}× |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 vectors only")
    parser.add_argument("--sizes", default="100000,1000000,5000000")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--hnsw-max", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    sizes = [100_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    names = args.backends.split(",")
    start = time.perf_counter()
    results = [bench_size(n, names, args.hnsw_max, args.seed + i) for i, n in enumerate(sizes)]
    targets = {}
    for size in results:
        rows = {k: v for k, v in size["backends"].items() if "median_ms" in v}
        good = {k: v for k, v in rows.items() if v["recall"] >= 0.95}
        if size["n"] == 1_000_000 and good:
            best = min(good, key=lambda k: good[k]["median_ms"])
            targets[f"best_median_ms_1M ({best})"] = target(good[best]["median_ms"], 10.0)
            targets[f"best_recall_1M ({best})"] = target(good[best]["recall"], 0.95,
                                                         at_least=True)
        flat = rows.get("faiss-flat")
        if flat and size["n"] in (100_000, 1_000_000):
            limit = 2.0 if size["n"] == 1_000_000 else 2.5
            targets[f"faiss_flat_vs_matvec_{size['n']}"] = target(flat["ratio_to_matvec"], limit)
        if "int8" in rows:
            targets[f"int8_mb_per_million_{size['n']}"] = target(
                rows["int8"]["mb_per_million"], 20.0)
    print(table(results), file=sys.stderr)
    emit({"benchmark": "scale", "k": K, "sizes": results, "targets": targets,
          "total_s": time.perf_counter() - start})


if __name__ == "__main__":
    main()
