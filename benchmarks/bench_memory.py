"""Memory of a process that analyzes 100 signals (issue: performance monitoring).

Run: ``python benchmarks/bench_memory.py`` (``--symbols 20`` for a quicker run: the 100 analyze
calls then cycle over 20 demo symbols). Prints one JSON document.

The measurement runs in a fresh subprocess (``--child``), so nothing this script or a test
runner loaded counts:

1. import the engine and its stack (swing_core's analyze / market / db / frame / perf, pandas,
   numpy, scikit-learn, SQLAlchemy, Alembic), collect garbage, and record the RSS:
   ``baseline_rss_mb``, "the interpreter with its imports loaded";
2. without the network, through a fresh SQLite bar cache in a temp folder (Yahoo replaced at
   its boundary by deterministic demo bars, :func:`use_demo_yahoo`): migrate it, run
   ``analyze`` 100 times on demo symbols (a new symbol downloads its 30m, 15m and 1h bars into
   the cache, XLK and SPY once; a repeated one reads them back), keep the 100 signals, store
   them with ``record_signals``;
3. record the peak RSS of the whole process life (``getrusage`` ``ru_maxrss``, exact, not
   sampled) and the RSS at the end.

Target: ``peak_above_baseline_mb`` (peak - baseline) <= 120 MB. Both figures are reported, and
the original performance guide's "memory usage (100 signals): 350 MB -> 120 MB" next to them.
MB here are MiB (2**20 bytes), as psutil and the Performance page report them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TARGET_PEAK_ABOVE_BASELINE_MB = 120.0
GUIDE_BEFORE_MB, GUIDE_AFTER_MB = 350.0, 120.0
_MB = 1024.0 * 1024.0


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / _MB


def _peak_mb() -> float:
    import resource

    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / (_MB if sys.platform == "darwin" else 1024.0)  # macOS: bytes, Linux: KiB


def use_demo_yahoo() -> list[tuple[str, str]]:
    """Replace Yahoo at its boundary (``yahoo._yf_download``, the only call into yfinance) with
    deterministic demo bars in ``yf.download``'s shape, so ``analyze`` runs its real path through
    the SQLite bar cache without the network (offline mode would skip the cache). The signals
    then say "yahoo" / "cache" as their source; the prices are demo prices. Returns the list
    of (symbol, interval) downloads made, appended as they happen."""
    import pandas as pd

    from swing_core.config import EXCHANGE_TZ
    from swing_core.market import demo_bars, yahoo

    downloads: list[tuple[str, str]] = []

    def download(**kwargs: Any) -> pd.DataFrame:
        symbol, interval = kwargs["tickers"], kwargs["interval"]
        downloads.append((symbol, interval))
        bars = demo_bars(symbol, interval, 3000)
        bars = bars[bars.index >= pd.Timestamp(kwargs["start"])]
        index = bars.index.tz_convert(EXCHANGE_TZ)
        if interval == "1d":  # yfinance labels daily bars by the local date at midnight
            index = pd.DatetimeIndex(bars.index.tz_convert(None).normalize()).tz_localize(
                EXCHANGE_TZ)
        one = pd.DataFrame({c.title(): bars[c].to_numpy() for c in ("open", "high", "low",
                                                                    "close")},
                           index=pd.DatetimeIndex(index, name="Date" if interval == "1d"
                                                  else "Datetime"))
        one["Volume"] = bars["volume"].to_numpy().astype("int64")
        data = pd.concat([one], axis=1, keys=[symbol], names=["Ticker", "Price"])
        data.columns = data.columns.swaplevel(0, 1)
        return data.sort_index(level=0, axis=1)

    yahoo._yf_download = download
    os.environ.pop("SWING_OFFLINE", None)
    return downloads


def child(signals: int, symbols: int, data_dir: str) -> dict[str, Any]:
    """The measured process: imports, baseline, 100 analyses, peak. Returns the figures."""
    import gc

    started = time.perf_counter()
    import alembic  # noqa: F401  (init_db's migrations)
    import numpy  # noqa: F401
    import pandas  # noqa: F401
    import sklearn.neighbors  # noqa: F401
    import sqlalchemy  # noqa: F401

    import swing_core.perf.monitor  # noqa: F401  (perf is lazy: recorder, sampler, hooks)
    import swing_core.perf.query_plan  # noqa: F401
    from swing_core import db, journal
    from swing_core.agent import analyze

    gc.collect()
    baseline = _rss_mb()
    peak_after_imports = _peak_mb()
    import_s = time.perf_counter() - started

    os.environ["SWING_DATA_DIR"] = data_dir
    os.environ.pop("SWING_DATABASE_URL", None)
    downloads = use_demo_yahoo()
    engine = db.make_engine(f"sqlite:///{Path(data_dir) / 'bench_memory.sqlite'}")
    db.init_db(engine)
    names = [f"MEM{i:03d}" for i in range(symbols)]
    kept = []
    errors: list[str] = []
    started = time.perf_counter()
    for i in range(signals):
        try:
            kept.append(analyze(names[i % symbols], "30m", engine=engine, offline=False))
        except Exception as exc:  # report, never hide: a failed analysis is not a signal
            errors.append(f"{names[i % symbols]}: {type(exc).__name__}: {exc}")
    analyze_s = time.perf_counter() - started
    stored = journal.record_signals(engine, kept, run_id="bench_memory").added if kept else 0
    gc.collect()
    end_rss, peak = _rss_mb(), _peak_mb()
    engine.dispose()
    return {
        "baseline_rss_mb": baseline,
        "peak_rss_mb": peak,
        "peak_above_baseline_mb": peak - baseline,
        "end_rss_mb": end_rss,
        "end_above_baseline_mb": end_rss - baseline,
        "peak_during_imports_mb": peak_after_imports,
        "signals": len(kept),
        "signals_with_plan": sum(1 for s in kept if s.entry is not None),
        "signals_stored": stored,
        "symbols": symbols,
        "errors": errors[:5],
        "import_s": import_s,
        "analyze_s": analyze_s,
        "analyze_ms_per_signal": analyze_s / max(signals, 1) * 1000.0,
        "data_sources": sorted({s.data_source for s in kept}),
        "downloads": len(downloads),
    }


def run_child(signals: int, symbols: int, *, timeout_s: float = 600.0) -> dict[str, Any]:
    """Run :func:`child` in a fresh interpreter and return its figures (raises on failure)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="swing_bench_memory_") as tmp:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        command = [sys.executable, str(Path(__file__).resolve()), "--child",
                   "--signals", str(signals), "--symbols", str(symbols), "--data-dir", tmp]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s,
                              env=env, cwd=str(ROOT), check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the measuring subprocess failed ({done.returncode}): "
                           f"{done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=100, help="analyze calls (default 100)")
    parser.add_argument("--symbols", type=int, default=100,
                        help="distinct demo symbols the calls cycle over (default 100)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds for the child")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.signals, max(1, args.symbols), args.data_dir)))
        return

    sys.path.insert(0, str(HERE))
    from _util import emit, target

    figures = run_child(args.signals, max(1, args.symbols), timeout_s=args.timeout)
    above = figures["peak_above_baseline_mb"]
    emit({
        "benchmark": "memory",
        "workload": (f"{figures['signals']} analyze() calls over {figures['symbols']} symbols, "
                     "30m, demo bars through a fresh SQLite bar cache (no network); signals "
                     "kept and stored"),
        **figures,
        "guide_memory_100_signals_mb": {"before": GUIDE_BEFORE_MB, "after": GUIDE_AFTER_MB},
        "ratio_guide_after_to_peak_above_baseline": GUIDE_AFTER_MB / above if above > 0 else None,
        "note": ("baseline = RSS after importing the engine and its stack (pandas, numpy, "
                 "scikit-learn, SQLAlchemy, Alembic); peak = ru_maxrss over the whole process "
                 "life (includes the baseline). MiB."),
        "targets": {
            "peak_above_baseline_mb": target(above, TARGET_PEAK_ABOVE_BASELINE_MB),
            "signals_analyzed": target(figures["signals"], args.signals, at_least=True),
        },
    })


if __name__ == "__main__":
    main()
