"""The priors step of a walk-forward backtest at 5,000-40,000 bars: how it grows, and what the
exact-k-NN kernel's old full-row partition cost, measured in the same run.

Run: ``python benchmarks/bench_priors.py [--quick]``. Prints one JSON document.

Workload: deterministic demo bars of one symbol (1h), 5k / 10k / 20k / 40k bars, prepared once
per size (``prepare_symbol``, not timed). The priors step is
``swing_core.backtest.priors.attach_priors`` on the run's signals: ``PatternIndex.query_many`` of
the taken signals with the run's own outcomes as in-memory rows, point in time (query i sees
only the outcomes known by its as-of time, a growing prefix of the rows sorted by exit time),
then the confidence blend and the point-in-time calibration.

Variants, taking turns run by run at every size:

- ``current``: the priors step as shipped;
- ``previous``: the same step with the kernel the step had before (blocks of 64 queries sorted
  by prefix, all scores of each against its whole prefix, the k-th best by ``np.partition`` of
  every row): :func:`previous_exact_topk` below, swapped in for ``store.exact_topk``. Same
  neighbours (checked), so the ratio is the kernel's share only.

Also at 40k: the naive walk-forward search, one query at a time over its prefix (float64
``prefix @ q`` + ``argpartition`` + sort: what a per-signal loop does), on 200 evenly spaced
queries, extrapolated to all of them.

The growth exponent is the least-squares slope of log(median time) against log(bars).
Targets: the priors step's exponent <= 1.1 over 5k-40k bars; 40k bars <= 100 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _util import emit, target  # noqa: E402

from swing_core.backtest import BacktestConfig, prepare_symbol, trim_bars  # noqa: E402
from swing_core.backtest.priors import attach_priors, outcome_rows  # noqa: E402
from swing_core.market.demo import demo_bars  # noqa: E402
from swing_core.patterns import PatternIndex  # noqa: E402
from swing_core.patterns.kernel import (  # noqa: E402
    _EPS,
    _finish,
    _lists,
    exact_topk,
    one_blas_thread,
)

SIZES = (5_000, 10_000, 20_000, 40_000)
SYMBOL = "AAPL"


def previous_exact_topk(queries: np.ndarray, matrix: np.ndarray, k: int, *,
                        limits: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The walk-forward kernel before issue 17 (narrow prefixes): blocks of 64 queries in
    prefix order, every score of a block against its whole prefix, the k-th best of each row
    by a full ``np.partition``, candidates within _EPS of it re-scored by the same float64
    :func:`~swing_core.patterns.kernel._finish`."""
    q = np.ascontiguousarray(queries, dtype=np.float64).reshape(-1, matrix.shape[1])
    m, n = q.shape[0], matrix.shape[0]
    lim = np.full(m, n, np.int64) if limits is None else np.clip(np.asarray(limits), 0, n)
    out_s, out_i = np.full((m, k), -np.inf), np.full((m, k), -1, np.int64)
    order = np.argsort(lim, kind="stable")
    with one_blas_thread():
        for b0 in range(0, m, 64):
            rows = order[b0:b0 + 64]
            width = int(lim[rows].max())
            if width == 0:
                continue
            scores = q[rows].astype(np.float32) @ matrix[:width].T
            scores[np.arange(width)[None, :] >= lim[rows][:, None]] = -np.inf
            if width > k:
                kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1]
                floor = np.where(np.isfinite(kth), kth - _EPS, np.inf).astype(np.float32)
                scores[(scores < floor[:, None]) & np.isfinite(kth)[:, None]] = -np.inf
            r, c = np.nonzero(scores > -np.inf)
            out_s[rows], out_i[rows] = _finish(q[rows], matrix, _lists(r, c, rows.size), k)
    return out_s, out_i


def naive_seconds_per_query(queries: np.ndarray, matrix: np.ndarray, limits: np.ndarray,
                            k: int, sample: int = 200) -> float:
    """A per-signal loop: float64 cosine over the query's prefix, top k by argpartition."""
    rows = np.linspace(0, len(queries) - 1, min(sample, len(queries))).astype(int)
    full = matrix.astype(np.float64)
    start = time.perf_counter()
    for i in rows:
        sims = full[:limits[i]] @ queries[i]
        top = np.argpartition(-sims, k - 1)[:k] if sims.size > k else np.arange(sims.size)
        top[np.argsort(-sims[top], kind="stable")]
    return (time.perf_counter() - start) / len(rows)


def kernel_inputs(signals: Any, config: BacktestConfig) -> tuple[np.ndarray, ...]:
    """The priors step's search: taken signals' vectors, the run's outcomes in exit order (as
    the pattern index stores them) and each query's visible prefix."""
    index = PatternIndex.from_frame(outcome_rows(signals, interval=config.interval),
                                    backend="numpy", interval=config.interval)
    taken = signals[signals["taken"].to_numpy(bool)]
    queries = taken[[f"vec_{i:02d}" for i in range(16)]].to_numpy(np.float64)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    exits = index._store.table.cols["exit"]
    asof = pd.DatetimeIndex(taken["asof"]).tz_convert("UTC").as_unit("ns").asi8
    limits = np.searchsorted(exits, asof, "right")
    return queries, np.asarray(index._store.backend.matrix), limits


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    repeats = 3 if args.quick else 9
    config = BacktestConfig(interval="1h")
    runs = {}
    for bars in SIZES:
        frame = demo_bars(SYMBOL, "1h", bars, end="2025-06-30")
        symbol_pass = prepare_symbol(trim_bars(frame, symbol=SYMBOL, config=config),
                                     symbol=SYMBOL, config=config)
        runs[bars] = symbol_pass.signals
    times: dict[str, dict[int, list[float]]] = {v: {b: [] for b in SIZES}
                                                 for v in ("current", "previous")}
    same = True
    for bars, signals in runs.items():
        want = attach_priors(signals, params=config.params)  # warm-up, and the answer
        with mock.patch("swing_core.patterns.store.exact_topk", previous_exact_topk):
            got = attach_priors(signals, params=config.params)
        same &= bool(want.equals(got))
        for _ in range(repeats):  # variants take turns
            for variant in ("current", "previous"):
                patch = (mock.patch("swing_core.patterns.store.exact_topk", previous_exact_topk)
                         if variant == "previous" else contextlib.nullcontext())
                with patch:
                    start = time.perf_counter()
                    attach_priors(signals, params=config.params)
                    times[variant][bars].append(time.perf_counter() - start)
    medians = {v: {b: statistics.median(t) for b, t in per.items()} for v, per in times.items()}
    logs = np.log(np.array(SIZES, float))
    exponent = {v: float(np.polyfit(logs, np.log([medians[v][b] for b in SIZES]), 1)[0])
                for v in medians}
    queries, matrix, limits = kernel_inputs(runs[SIZES[-1]], config)
    k = config.params.knn_k
    kernel = {"current_s": [], "previous_s": []}
    for _ in range(repeats):
        for name, fn in (("current_s", exact_topk), ("previous_s", previous_exact_topk)):
            start = time.perf_counter()
            fn(queries, matrix, k, limits=limits)
            kernel[name].append(time.perf_counter() - start)
    naive = naive_seconds_per_query(queries, matrix, limits, k) * len(queries)
    last = medians["current"][SIZES[-1]]
    emit({
        "benchmark": "priors",
        "load_average": os.getloadavg(),
        "workload": {"symbol": SYMBOL, "interval": "1h", "bars": list(SIZES), "k": k,
                     "queries_at_40k": int(len(queries)), "outcome_rows_at_40k": int(len(matrix)),
                     "repeats": repeats},
        "priors_step_median_s": {str(b): medians["current"][b] for b in SIZES},
        "previous_kernel_priors_step_median_s": {str(b): medians["previous"][b] for b in SIZES},
        "exponent": exponent["current"],
        "previous_kernel_exponent": exponent["previous"],
        "same_priors_as_previous_kernel": same,
        "kernel_at_40k_median_s": {n: statistics.median(t) for n, t in kernel.items()},
        "naive_per_query_search_at_40k_s_extrapolated": naive,
        "ratio_previous_over_current_at_40k": medians["previous"][SIZES[-1]] / last,
        "ratio_naive_search_over_current_step_at_40k": naive / last,
        "targets": {"exponent": target(exponent["current"], 1.1),
                    "priors_step_40k_s": target(last, 0.100),
                    "same_priors": {"value": same, "pass": same}},
    })


if __name__ == "__main__":
    main()
