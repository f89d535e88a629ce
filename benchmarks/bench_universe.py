"""Parent memory and final-stage time of chunked universe backtests (run_universe) at 100 and
500 symbols x 2,000 daily demo bars (``--full``: also 2,000 symbols), against the naive
baseline measured in the same run (run_backtest with every symbol's bars loaded at once, 100
symbols), each run in a fresh subprocess, the sizes interleaved over ``--repeats`` rounds.

Per run: the parent's peak RSS (psutil, sampled every 10 ms in a thread; and getrusage's
exact ``ru_maxrss``), the stage-1 workers' peak (each worker reports its own), wall time, and
the final stage (priors, portfolio, statistics, saving the trades: from the "priors,
portfolio and statistics" progress message to the end), with its priors and saving parts.
Reported: medians, the slope in MB per symbol between the smallest and largest size, and the
targets of issue 17: parent flat (2,000 symbols <= 400 MB; without ``--full`` the 2,000-symbol
figure is extrapolated from the slope and says so), final stage <= 5 s at 500 symbols.

"Before": the pre-change code cannot be run from this tree (its spill layout and final stage
were replaced), so its figures are quoted from issue 17 and labelled as such.

Run: ``python benchmarks/bench_universe.py [--sizes 100,500] [--full] [--repeats 2]``
(about 3-4 minutes on 2 idle cores; ``--full`` adds about 4 minutes per round).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

_END = "2025-06-30"
#: Issue 17's measurement of the code before this change (not measured here).
ISSUE_BEFORE = {"parent_rss_mb": "250 + 0.26 per symbol (377 at 500, 511 at 1,000)",
                "slope_mb_per_symbol": 0.26, "parent_peak_rss_mb_500": 377,
                "final_stage_s_500": {"priors": 7.5, "saving_219k_trades": 7.1}}
_FINAL_MESSAGE = "priors, portfolio and statistics"


class _PeakSampler:
    """The process's peak RSS, sampled in a thread (MiB)."""

    def __init__(self, interval_s: float = 0.01) -> None:
        import psutil

        self._proc = psutil.Process()
        self._interval = interval_s
        self._stop = threading.Event()
        self.peak = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(self._interval)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak / 2**20


def _timed(module: object, name: str, into: dict[str, float]) -> None:
    """Accumulate the wall time of ``module.name`` calls in ``into[name]`` (measurement only)."""
    original = getattr(module, name)

    def wrapper(*args: object, **kwargs: object) -> object:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            into[name] = into.get(name, 0.0) + time.perf_counter() - start

    setattr(module, name, wrapper)


def _child(mode: str, n: int, n_bars: int, chunk: int, workers: int) -> dict:
    """One measurement in this (fresh) process."""
    from swing_core import db
    from swing_core.backtest import BacktestConfig
    from swing_core.market.demo import demo_bars

    symbols = [f"U{i:04d}" for i in range(n)]
    config = BacktestConfig(interval="1d")
    tmp = tempfile.mkdtemp(prefix="bench_universe_")
    engine = db.get_engine(f"sqlite:///{tmp}/bench.sqlite")
    db.init_db(engine)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sampler = _PeakSampler()
    start = time.perf_counter()
    out: dict = {}
    if mode == "naive":
        from swing_core.backtest import run_backtest

        bars = {s: demo_bars(s, "1d", n_bars, end=_END) for s in symbols}
        result = run_backtest(symbols, config=config, bars=bars, engine=engine,
                              max_workers=workers)
        out = {"trades": int(result.stats["# Trades"]),
               "signals": int(result.stats["# Signals"])}
    else:
        import swing_core.backtest.final_stage as final_stage
        from swing_core.backtest import run_universe

        parts: dict[str, float] = {}
        _timed(final_stage, "price_taken", parts)
        _timed(final_stage, "save_run", parts)
        marks: dict[str, float] = {}

        def progress(done: int, total: int, message: str) -> None:
            if message == _FINAL_MESSAGE:
                marks["final_start"] = time.perf_counter()

        loader = partial(demo_bars, interval="1d", n_bars=n_bars, end=_END)
        res = run_universe(symbols, config=config, engine=engine, chunk_size=chunk,
                           max_workers=workers, bars_loader=loader, progress=progress,
                           spill_dir=Path(tmp) / "spill")
        assert res.status == "done", res.status
        final_s = time.perf_counter() - marks["final_start"]
        out = {"trades": res.summary.n_trades, "signals": int(res.summary.stats["# Signals"]),
               "stored_trade_rows": int(db.list_backtest_runs(engine)["n_trade_rows"].iloc[0]),
               "worker_peak_rss_mb": round(res.worker_peak_rss_mb, 1),
               "chunks": res.chunks_total, "final_stage_s": round(final_s, 2),
               "final_priors_s": round(parts.get("price_taken", 0.0), 2),
               "final_saving_s": round(parts.get("save_run", 0.0), 2)}
    wall = time.perf_counter() - start
    sampled = sampler.stop()
    return {"mode": mode, "symbols": n, "bars_per_symbol": n_bars, "wall_s": round(wall, 2),
            "import_baseline_rss_mb": round(baseline, 1),
            "parent_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                        / 1024, 1),
            "parent_peak_rss_sampled_mb": round(sampled, 1), **out}


def _measure(mode: str, n: int, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--n", str(n), "--bars", str(args.bars),
           "--chunk", str(args.chunk), "--workers", str(args.workers)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                          env={**os.environ, "SWING_PERF": os.environ.get("SWING_PERF", "0")})
    if proc.returncode != 0:
        return {"mode": mode, "symbols": n, "error": proc.stderr[-2000:]}
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    row["load_avg_1m"] = round(os.getloadavg()[0], 2)
    return row


def _median(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return round(statistics.median(values), 2) if values else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--sizes", default="100,500")
    parser.add_argument("--full", action="store_true", help="also 2,000 symbols")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--bars", type=int, default=2000)
    parser.add_argument("--chunk", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--naive", type=int, default=100)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.n, args.bars, args.chunk, args.workers)))
        return
    from _util import emit, target

    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()}
                   | ({2000} if args.full else set()))
    load_start = os.getloadavg()
    runs: dict[str, list[dict]] = {f"universe_{n}": [] for n in sizes}
    runs["naive"] = []
    for _ in range(args.repeats):  # interleaved: naive, then each size, round after round
        runs["naive"].append(_measure("naive", args.naive, args))
        for n in sizes:
            runs[f"universe_{n}"].append(_measure("universe", n, args))
    keys = ("parent_peak_rss_mb", "parent_peak_rss_sampled_mb", "wall_s", "final_stage_s",
            "final_priors_s", "final_saving_s", "worker_peak_rss_mb")
    medians = {name: {k: _median(rows, k) for k in keys} for name, rows in runs.items()}
    small, large = sizes[0], sizes[-1]
    peak = {n: medians[f"universe_{n}"]["parent_peak_rss_mb"] for n in sizes}
    slope = ((peak[large] - peak[small]) / (large - small)
             if len(sizes) > 1 and None not in (peak[small], peak[large]) else None)
    targets = {}
    if 2000 in peak and peak[2000] is not None:
        targets["parent peak RSS MB, 2,000 symbols x 2,000 bars"] = target(peak[2000], 400)
    elif slope is not None:
        extrapolated = round(peak[large] + slope * (2000 - large), 1)
        targets["parent peak RSS MB, 2,000 symbols (EXTRAPOLATED from the slope; --full "
                "measures it)"] = target(extrapolated, 400)
    if slope is not None:
        # flat: 2,000 symbols <= 400 MB from the ~250 MB of a small run -> <= 0.075 MB/symbol
        targets["slope MB per symbol (flat)"] = target(round(slope, 4), 0.075)
    if 500 in sizes and medians["universe_500"]["final_stage_s"] is not None:
        targets["final stage s, 500 symbols"] = target(medians["universe_500"]["final_stage_s"],
                                                       5.0)
    naive_peak = medians["naive"]["parent_peak_rss_mb"]
    same = peak.get(args.naive)
    emit({"benchmark": "universe", "command": " ".join(["python", *sys.argv]),
          "load_avg_start": [round(x, 2) for x in load_start],
          "load_avg_end": [round(x, 2) for x in os.getloadavg()],
          "medians": medians, "runs": runs,
          "slope_mb_per_symbol": round(slope, 4) if slope is not None else None,
          "ratios": {"chunked_over_naive_peak_rss_same_size":
                     round(same / naive_peak, 3) if same and naive_peak else None,
                     "slope_over_issue_before": round(slope / ISSUE_BEFORE[
                         "slope_mb_per_symbol"], 3) if slope is not None else None},
          "before_from_issue_17_not_measured_here": ISSUE_BEFORE,
          "targets": targets})


if __name__ == "__main__":
    main()
