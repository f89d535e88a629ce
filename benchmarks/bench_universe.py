"""Peak memory of chunked universe backtests (run_universe) at 100 and 500 symbols x 2,000
daily demo bars, against the naive baseline (run_backtest with every symbol's bars loaded at
once, 100 symbols), each in a fresh subprocess (peak RSS from getrusage: exact).

Reports the parent's peak RSS and the stage-1 workers' peak (each worker process reports its
own ``ru_maxrss``; the forkserver pool's memory is separate from the parent's), wall time, and
the targets: parent peak <= 400 MB at both sizes, roughly flat from 100 to 500 symbols.

Run: ``python benchmarks/bench_universe.py [--sizes 100,500] [--bars 2000] [--chunk 50]``
(about 2-4 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

_END = "2025-06-30"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(mode: str, n: int, n_bars: int, chunk: int, workers: int) -> dict:
    """One measurement in this (fresh) process."""
    import pandas as pd

    from swing_core import db
    from swing_core.backtest import BacktestConfig
    from swing_core.market.demo import demo_bars

    symbols = [f"U{i:03d}" for i in range(n)]
    config = BacktestConfig(interval="1d")
    tmp = tempfile.mkdtemp(prefix="bench_universe_")
    engine = db.get_engine(f"sqlite:///{tmp}/bench.sqlite")
    db.init_db(engine)
    baseline = _rss_mb()
    start = time.perf_counter()
    if mode == "naive":
        from swing_core.backtest import run_backtest

        bars = {s: demo_bars(s, "1d", n_bars, end=_END) for s in symbols}
        result = run_backtest(symbols, config=config, bars=bars, engine=engine,
                              max_workers=workers)
        out = {"trades": int(result.stats["# Trades"]), "signals": int(result.stats["# Signals"]),
               "worker_peak_rss_mb": None}
    else:
        from swing_core.backtest import run_universe

        loader = partial(demo_bars, interval="1d", n_bars=n_bars, end=_END)
        res = run_universe(symbols, config=config, engine=engine, chunk_size=chunk,
                           max_workers=workers, bars_loader=loader,
                           spill_dir=Path(tmp) / "spill")
        assert res.status == "done", res.status
        out = {"trades": res.summary.n_trades, "signals": int(res.summary.stats["# Signals"]),
               "worker_peak_rss_mb": round(res.worker_peak_rss_mb, 1),
               "chunks": res.chunks_total}
    wall = time.perf_counter() - start
    del pd
    return {"mode": mode, "symbols": n, "bars_per_symbol": n_bars, "wall_s": round(wall, 2),
            "import_baseline_rss_mb": round(baseline, 1),
            "parent_peak_rss_mb": round(_rss_mb(), 1), **out}


def _measure(mode: str, n: int, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--n", str(n), "--bars", str(args.bars),
           "--chunk", str(args.chunk), "--workers", str(args.workers)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                          env={**os.environ, "SWING_PERF": os.environ.get("SWING_PERF", "0")})
    if proc.returncode != 0:
        return {"mode": mode, "symbols": n, "error": proc.stderr[-2000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--sizes", default="100,500")
    parser.add_argument("--bars", type=int, default=2000)
    parser.add_argument("--chunk", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--naive", type=int, default=100)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.n, args.bars, args.chunk, args.workers)))
        return
    from _util import emit, target

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    chunked = {n: _measure("universe", n, args) for n in sizes}
    naive = _measure("naive", args.naive, args)
    targets = {}
    for n, row in chunked.items():
        if "parent_peak_rss_mb" in row:
            targets[f"parent peak RSS MB, {n} symbols"] = target(row["parent_peak_rss_mb"], 400)
    small, large = min(sizes), max(sizes)
    ratio = None
    if len(sizes) > 1 and all("parent_peak_rss_mb" in chunked[n] for n in (small, large)):
        ratio = chunked[large]["parent_peak_rss_mb"] / chunked[small]["parent_peak_rss_mb"]
        targets[f"peak RSS {large}/{small} symbols (roughly flat)"] = target(round(ratio, 2),
                                                                           1.5)
    if "parent_peak_rss_mb" in naive and "parent_peak_rss_mb" in chunked.get(args.naive, {}):
        naive_ratio = (chunked[args.naive]["parent_peak_rss_mb"]
                       / naive["parent_peak_rss_mb"])
    else:
        naive_ratio = None
    emit({"benchmark": "universe", "command": " ".join(["python", *sys.argv]),
          "chunked": [chunked[n] for n in sizes], "naive_baseline": naive,
          "ratios": {"chunked_over_naive_peak_rss_same_size": naive_ratio,
                     "peak_rss_large_over_small": ratio},
          "targets": targets})


if __name__ == "__main__":
    main()
