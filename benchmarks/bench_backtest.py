"""Backtest benchmark: walk-forward speed against the naive per-bar re-analysis.

Run: ``python benchmarks/bench_backtest.py [--quick]``. Prints ONE JSON document:

* ``single_symbol``: one symbol, 5,000 bars (30m demo bars), the whole run: signal frame, exit
  simulation, point-in-time pattern priors, portfolio, statistics AND saving the run to a
  fresh SQLite database (``reuse=False``: never served from storage); median of several runs.
* ``multi_symbol``: 20 symbols × 2,000 bars on 2 worker processes (process pool start-up
  included), saved too; median of a few runs.
* ``pool_vs_inline``: the 20-symbol run (not saved) inline, on a fresh shared process pool and
  on the warm pool (the pool persists across runs); target: warm pool faster than inline.
* ``single_symbol_with_library`` (for the record, no target): the single-symbol run with
  ``use_library=True`` over a stored library of ~40,000 evaluated setups (8 other symbols'
  walk-forwards, and the same rows filed under the run's symbol), not saved: loading the
  library into a ``PatternIndex`` and searching it with the run's own outcomes.
* ``naive_baseline``: what the original does, measured in the same process: for bar i,
  re-analyse ``bars[:i+1]`` (the signal frame's last row), and when it has a plan, fit a cosine
  ``NearestNeighbors`` over the outcomes known at that time and simulate the exit with a Python
  loop. Measured on a few hundred bars sampled evenly over the 5,000 (the per-bar cost grows
  with i) and extrapolated: total = mean sampled cost × 5,000.
* ``targets``: ≤ 2 s for 5,000 bars, ≤ 15 s for 20 × 2,000 on 2 cores, ≥ 500× the naive
  baseline at 5,000 bars; each with pass/fail.
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

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sklearn.neighbors import NearestNeighbors  # noqa: E402

from swing_core import db  # noqa: E402
from swing_core.backtest import BacktestConfig, run_backtest  # noqa: E402
from swing_core.config import BARS_PER_DAY, INTERVAL_DELTA, StrategyParams  # noqa: E402
from swing_core.frame import VECTOR_COLUMNS, build_signal_frame  # noqa: E402
from swing_core.market import demo_bars  # noqa: E402

INTERVAL = "30m"
END = "2025-06-30"


def _engine(directory: str, name: str):
    engine = db.get_engine(f"sqlite:///{directory}/{name}.sqlite")
    db.init_db(engine)
    return engine


def _stored_library(engine, config: BacktestConfig) -> int:
    """Fill ``engine``'s vector library with the exited plans of 8 demo symbols (5,000 bars
    each), filed once under their own names and once under AAPL's."""
    from swing_core.backtest import prepare_symbol, trim_bars

    frames = []
    for i in range(8):
        symbol = f"LIB{i}"
        bars = demo_bars(symbol, INTERVAL, 5000, end=END)
        signals = prepare_symbol(trim_bars(bars, symbol=symbol, config=config), symbol=symbol,
                                 config=config).signals
        frames.append(signals[signals["exit_pos"] >= 0])
    rows = pd.concat(frames, ignore_index=True).assign(interval=INTERVAL, version="v1")
    rows["ts"] = rows["signal_ts"]
    columns = ["symbol", "interval", "version", "ts", "setup", "side", "trend", "vol_regime",
               "realized_r", "exit_reason", "exit_ts", "hold_bars", *VECTOR_COLUMNS]
    rows = pd.concat([rows[columns], rows[columns].assign(symbol="AAPL")], ignore_index=True)
    return db.upsert_vectors(engine, rows)


def _naive_exit(bars, i: int, side: int, entry: float, stop: float, target: float,
                hold: int) -> float:
    """The original's exit loop: bar by bar after the signal, exact-price fills."""
    high, low, close = (bars[c].to_numpy() for c in ("high", "low", "close"))
    last = min(i + hold, len(bars) - 1)
    for j in range(i + 1, last + 1):
        if (side == 1 and low[j] <= stop) or (side == -1 and high[j] >= stop):
            return (stop - entry) * side / abs(entry - stop)
        if (side == 1 and high[j] >= target) or (side == -1 and low[j] <= target):
            return (target - entry) * side / abs(entry - stop)
    return (close[last] - entry) * side / abs(entry - stop)


def naive_baseline(bars, signals, *, n_samples: int) -> dict:
    """Per-bar re-analysis cost at ``n_samples`` bars spread over the series, extrapolated."""
    params = StrategyParams()
    hold = BARS_PER_DAY[INTERVAL] * params.max_hold_days
    known = signals[signals["exit_pos"] >= 0]
    known_at = known["exit_ts"].dt.tz_localize(None).to_numpy("datetime64[ns]")
    vectors = known[list(VECTOR_COLUMNS)].to_numpy(np.float32)
    outcomes = known["realized_r"].to_numpy(float)
    n = len(bars)
    positions = np.unique(np.linspace(0, n - 1, n_samples).astype(int))
    costs = []
    for i in positions:
        t0 = time.perf_counter()
        row = build_signal_frame(bars.iloc[: i + 1], params=params, interval=INTERVAL).iloc[-1]
        if row["setup"] != "none" and np.isfinite(row["stop"]):
            asof = (bars.index[i] + INTERVAL_DELTA[INTERVAL]).tz_localize(None).to_datetime64()
            visible = known_at <= asof
            if visible.sum() >= 1:
                k = int(min(params.knn_k, visible.sum()))
                nn = NearestNeighbors(n_neighbors=k, metric="cosine").fit(vectors[visible])
                _, idx = nn.kneighbors(row[list(VECTOR_COLUMNS)].to_numpy(np.float32)[None, :])
                float(np.mean(outcomes[visible][idx[0]] > 0))
            side = 1 if row["side"] == "long" else -1
            _naive_exit(bars, i, side, row["entry"], row["stop"], row["target"], hold)
        costs.append(time.perf_counter() - t0)
    costs_arr = np.array(costs)
    return {
        "method": "per-bar build_signal_frame(bars[:i+1]) + per-signal NearestNeighbors fit "
                  "over known outcomes + Python exit loop",
        "sampled_bars": int(positions.size),
        "mean_per_bar_s": float(costs_arr.mean()),
        "first_sample_s": float(costs_arr[0]),
        "last_sample_s": float(costs_arr[-1]),
        "extrapolated_total_s": float(costs_arr.mean() * n),
    }


def _timed(fn, repeats: int) -> tuple[list[float], object]:
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return times, result


def measure_pool_vs_inline(config: BacktestConfig, symbols: list[str], many: dict,
                           repeats: int) -> dict:
    """The same 20-symbol run (not saved) inline, on a new shared process pool (its start-up:
    fork server, engine imports) and on the warm pool of the earlier runs, in this process."""
    from swing_core.backtest.executor import shutdown_shared_pools

    def run(executor: str) -> None:
        run_backtest(symbols, config=config, bars=many, save=False, reuse=False,
                     executor=executor, max_workers=2)

    inline_times, _ = _timed(lambda: run("inline"), repeats)
    shutdown_shared_pools()
    cold_times, _ = _timed(lambda: run("process"), 1)
    warm_times, _ = _timed(lambda: run("process"), repeats)
    inline, warm = statistics.median(inline_times), statistics.median(warm_times)
    return {"symbols": len(symbols), "bars_each": 2000, "workers": 2,
            "inline_median_s": inline, "inline_runs_s": inline_times,
            "cold_pool_s": cold_times[0], "warm_pool_median_s": warm, "warm_pool_runs_s": warm_times,
            "warm_pool_over_inline": warm / inline}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and samples")
    args = parser.parse_args()
    repeats_single, repeats_multi = (3, 1) if args.quick else (5, 3)
    n_samples = 100 if args.quick else 300
    workdir = tempfile.mkdtemp(prefix="bench_backtest_")
    config = BacktestConfig(interval=INTERVAL)

    bars = demo_bars("AAPL", INTERVAL, 5000, end=END)
    engine = _engine(workdir, "single")
    run_backtest(["AAPL"], config=config, bars={"AAPL": bars}, save=False,
                 executor="inline")  # warm-up (imports, caches)
    single_times, single = _timed(lambda: run_backtest(
        ["AAPL"], config=config, bars={"AAPL": bars}, engine=engine, reuse=False,
        executor="inline"), repeats_single)

    symbols = [f"SYM{i:02d}" for i in range(20)]
    many = {s: demo_bars(s, INTERVAL, 2000, end=END) for s in symbols}
    engine_multi = _engine(workdir, "multi")
    multi_times, multi = _timed(lambda: run_backtest(
        symbols, config=config, bars=many, engine=engine_multi, reuse=False, max_workers=2),
        repeats_multi)

    pool_vs_inline = measure_pool_vs_inline(config, symbols, many, repeats_multi)

    engine_library = _engine(workdir, "library")
    library_rows = _stored_library(engine_library, config)
    with_library = BacktestConfig(interval=INTERVAL, use_library=True)
    run_backtest(["AAPL"], config=with_library, bars={"AAPL": bars}, engine=engine_library,
                 save=False, reuse=False, executor="inline")  # warm-up
    library_times, _ = _timed(lambda: run_backtest(
        ["AAPL"], config=with_library, bars={"AAPL": bars}, engine=engine_library, save=False,
        reuse=False, executor="inline"), repeats_single)

    from swing_core.backtest import prepare_symbol, trim_bars

    signals = prepare_symbol(trim_bars(bars, symbol="AAPL", config=config), symbol="AAPL",
                             config=config).signals
    naive = naive_baseline(bars, signals, n_samples=n_samples)

    single_median = statistics.median(single_times)
    multi_median = statistics.median(multi_times)
    speedup = naive["extrapolated_total_s"] / single_median
    targets = [
        {"name": "single symbol, 5,000 bars, priors + save", "target": "<= 2 s",
         "value_s": single_median, "pass": single_median <= 2.0},
        {"name": "20 symbols x 2,000 bars on 2 cores", "target": "<= 15 s",
         "value_s": multi_median, "pass": multi_median <= 15.0},
        {"name": "speed-up vs naive per-bar re-analysis at 5,000 bars", "target": ">= 500x",
         "value": speedup, "pass": speedup >= 500},
        {"name": "20 x 2,000 bars: warm process pool / inline", "target": "< 1",
         "value": pool_vs_inline["warm_pool_over_inline"],
         "pass": pool_vs_inline["warm_pool_over_inline"] < 1.0},
    ]
    print(json.dumps({
        "benchmark": "backtest",
        "command": "python benchmarks/bench_backtest.py" + (" --quick" if args.quick else ""),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "single_symbol": {
            "bars": len(bars), "interval": INTERVAL, "median_s": single_median,
            "runs_s": single_times, "signals": int(single.stats["# Signals"]),
            "trades": int(single.stats["# Trades"]),
            "includes": ["signal frame", "exits", "point-in-time priors", "portfolio",
                         "statistics", "save to SQLite"],
        },
        "multi_symbol": {
            "symbols": len(symbols), "bars_each": 2000, "workers": 2, "median_s": multi_median,
            "runs_s": multi_times, "trades": int(multi.stats["# Trades"]),
            "includes": ["process pool start-up", "priors across symbols", "save to SQLite"],
        },
        "pool_vs_inline": pool_vs_inline,
        "single_symbol_with_library": {
            "bars": len(bars), "library_rows": library_rows,
            "median_s": statistics.median(library_times), "runs_s": library_times,
            "includes": ["library loaded into a PatternIndex", "point-in-time priors from the "
                         "library and the run's outcomes", "portfolio", "statistics"],
        },
        "naive_baseline": naive,
        "ratios": {"speedup_vs_naive_5000_bars": speedup},
        "targets": targets,
        "all_pass": all(t["pass"] for t in targets),
    }, indent=2))


if __name__ == "__main__":
    main()
