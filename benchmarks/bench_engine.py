"""Engine benchmark (issue: engine): the signal frame and analyze() against the naive per-bar loop.

Run: ``python benchmarks/bench_engine.py``. Prints one JSON document.

- frame_5000: building the whole signal frame for 5,000 bars (target <= 6 ms median, issue 17).
- analyze_cached: ``analyze(symbol)`` on cached bars, SQLite bar cache warm, demo data
  (target <= 30 ms median).
- demo_bars: the offline demo generator, 5,000 30m bars and 100,000 15m bars (it runs on every
  offline page view, so it must stay well under the frame's own time; moved here from a timed
  unit test).
- naive baseline: the original's walk-forward approach, re-running the analysis on
  ``bars[:i+1]`` for every bar i. Measured on a sample of prefix lengths and extrapolated to
  2,000 bars (sum over i of the time at prefix length i); the frame must be >= 200x faster.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import emit, median_seconds, target  # noqa: E402

from swing_core.frame import build_signal_frame  # noqa: E402
from swing_core.market import demo_bars  # noqa: E402


def naive_walk_forward_seconds(bars, n_bars: int, samples: int) -> dict[str, float]:
    """Extrapolated time of re-analysing bars[:i+1] for i in 0..n_bars-1 (the O(N^2) loop)."""
    lengths = np.unique(np.linspace(60, n_bars, samples).astype(int))
    per_prefix = []
    for length in lengths:
        start = time.perf_counter()
        build_signal_frame(bars.iloc[:length], interval="30m").iloc[-1]
        per_prefix.append(time.perf_counter() - start)
    # the cost at prefix length i is ~linear in i; mean over evenly spaced lengths x n_bars
    return {"estimated_total_s": float(np.mean(per_prefix)) * n_bars,
            "sampled_prefixes": int(len(lengths)),
            "median_prefix_ms": statistics.median(per_prefix) * 1000}


def main() -> None:
    bars_5000 = demo_bars("BENCH", "30m", 5000)
    bars_2000 = bars_5000.iloc[-2000:]
    frame_5000 = median_seconds(lambda: build_signal_frame(bars_5000, interval="30m"), repeats=9)
    frame_2000 = median_seconds(lambda: build_signal_frame(bars_2000, interval="30m"), repeats=9)
    naive = naive_walk_forward_seconds(bars_2000, 2000, samples=200)
    from swing_core.market import demo as demo_module

    def fresh_demo(*args, **kwargs):  # generation, not the cache of recent frames
        demo_module._cached_demo_frame.cache_clear()
        return demo_bars(*args, **kwargs)

    demo_5000 = median_seconds(lambda: fresh_demo("DEMO", "30m", 5000, end="2026-06-30"),
                               repeats=9)
    demo_100k = median_seconds(lambda: fresh_demo("DEMO", "15m", 100_000, end="2026-06-30"),
                               repeats=3)
    ratio = naive["estimated_total_s"] / frame_2000["median_s"]

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SWING_DATA_DIR"] = tmp
        os.environ.pop("SWING_OFFLINE", None)
        os.environ.pop("SWING_DATABASE_URL", None)
        from swing_core import db
        from swing_core.agent import analyze
        from swing_core.market import yahoo
        from tests.test_market import yf_shaped

        downloads = []

        def recorded_download(**kwargs):
            """Yahoo's answer replaced at the boundary: demo bars in yfinance's exact shape."""
            symbol, interval = kwargs["tickers"], kwargs["interval"]
            downloads.append((symbol, interval))
            bars = demo_bars(symbol, interval, 3000)
            bars = bars[bars.index >= pd.Timestamp(kwargs["start"])]
            return yf_shaped(bars, symbol, interval)

        yahoo._yf_download = recorded_download
        engine = db.get_engine()
        db.init_db(engine)
        analyze("AAPL", "30m", engine=engine)  # fills the bar cache (symbol, XLK, SPY, 15m, 1h)
        cold_downloads = len(downloads)
        analyze_cached = median_seconds(lambda: analyze("AAPL", "30m", engine=engine),
                                        repeats=21, warmup=2)
        signal = analyze("AAPL", "30m", engine=engine)
        warm_downloads = len(downloads) - cold_downloads
        engine.dispose()

    emit({
        "benchmark": "engine",
        "frame_5000_bars_ms": frame_5000["median_s"] * 1000,
        "frame_2000_bars_ms": frame_2000["median_s"] * 1000,
        "demo_bars_5000_ms": demo_5000["median_s"] * 1000,
        "demo_bars_100k_ms": demo_100k["median_s"] * 1000,
        "analyze_cached_ms": analyze_cached["median_s"] * 1000,
        "analyze_bars": "30m, default lookback (59 days) + XLK, SPY, 15m, 1h context from the cache",
        "analyze_source": signal.data_source,
        "analyze_downloads_cold": cold_downloads,
        "analyze_downloads_while_timed": warm_downloads,
        "naive_per_bar_loop_2000_bars_s": naive["estimated_total_s"],
        "naive_median_prefix_ms": naive["median_prefix_ms"],
        "naive_sampled_prefixes": naive["sampled_prefixes"],
        "frame_vs_naive_ratio_2000_bars": ratio,
        "targets": {
            "frame_5000_bars_ms": target(frame_5000["median_s"] * 1000, 6),  # issue 17
            "analyze_cached_ms": target(analyze_cached["median_s"] * 1000, 30),
            "frame_vs_naive_ratio": target(ratio, 200, at_least=True),
            "demo_bars_5000_ms": target(demo_5000["median_s"] * 1000, 50),
            "demo_bars_100k_ms": target(demo_100k["median_s"] * 1000, 1500),
        },
    })


if __name__ == "__main__":
    main()
