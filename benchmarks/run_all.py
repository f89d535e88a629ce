"""SwingDesk against the original performance guide, and every benchmark's targets, in one run.

Run: ``python benchmarks/run_all.py`` (full: the guide's operations, then every
``benchmarks/bench_*.py`` in a subprocess), or ``--quick`` (the guide's operations with fewer
repeats and a short instrumentation-overhead run: what the Performance page's "run
self-benchmark" button runs, under a minute). Prints one JSON document on stdout and the
side-by-side table on stderr (``--format table`` prints only the table, on stdout).

The original SwingAgent v1.6.1 performance guide lists "expected performance improvements with
optimization" (before -> after): signal generation 5.2 s -> 1.8 s, vector search over 1,000
vectors 2.1 s -> 0.3 s, database batch insert 8.5 s -> 1.2 s, multi-symbol analysis 45 s -> 12 s,
memory for 100 signals 350 MB -> 120 MB. It states no workload sizes; what SwingDesk measures
for each row is in ``swing_core.perf.selfbench.GUIDE_ROWS`` (and in the JSON, ``workload``).
All of it runs on this machine without the network: Yahoo is replaced at its boundary by deterministic
demo bars (``bench_memory.use_demo_yahoo``), so bars take the real path through a temporary
SQLite bar cache.
Target per row: SwingDesk at or under the guide's "after" figure.

``--record-perf`` also records the measured operations' timings into the app's database (the
one ``SWING_DATABASE_URL`` / ``SWING_DATA_DIR`` names) under the process role ``selfbench``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from _util import machine, target  # noqa: E402
from bench_memory import use_demo_yahoo  # noqa: E402

from swing_core import perf  # noqa: E402
from swing_core.perf.selfbench import GUIDE_ROWS, guide_frame  # noqa: E402

#: Benchmarks run by --quick (file, arguments); the full run adds every other bench_*.py.
QUICK_BENCHES: list[tuple[str, list[str]]] = [
    ("bench_engine.py", []),  # about 8 s: frame, analyze on a warm cache, naive loop sample
    ("bench_perf_overhead.py", ["--rounds", "200"]),  # fewer: medians too noisy for 2 %
]
#: Extra argument sets for some benchmarks in the full run (each set is one more run).
FULL_VARIANTS: dict[str, list[list[str]]] = {
    "bench_perf_overhead.py": [[], ["--workload", "analyze"]],
}
#: Already measured by the guide's memory row: not run again as a separate benchmark.
SKIP_IN_FULL = {"bench_memory.py"}
MULTI_SYMBOLS = 10


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def timed_median(fn: Callable[[], Any], *, repeats: int, operation: str | None,
                 warmup: int = 1) -> dict[str, float]:
    """Median / min / max seconds of ``repeats`` calls after ``warmup`` calls, each call inside
    ``perf.timed(operation)`` (recorded when --record-perf is on; None: the code measured times
    itself)."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        if operation is None:
            fn()
        else:
            with perf.timed(operation):
                fn()
        samples.append(time.perf_counter() - start)
    return {"median_s": statistics.median(samples), "min_s": min(samples), "max_s": max(samples),
            "repeats": repeats}


# --------------------------------------------------------------------------- the guide's rows


def measure_signal_generation(engine: Any, *, repeats: int) -> dict[str, Any]:
    from swing_core.agent import analyze

    cold = []
    for symbol in ("GEN000", "GEN001", "GEN002"):  # never seen: bars downloaded and stored
        start = time.perf_counter()
        analyze(symbol, "30m", engine=engine)  # the engine times itself ("analyze")
        cold.append(time.perf_counter() - start)
    warm = timed_median(lambda: analyze("GEN000", "30m", engine=engine), repeats=repeats,
                        operation=None)
    return {"value_s": warm["median_s"], "warm": warm, "cold_median_s": statistics.median(cold),
            "cold_s": cold}


def _vectors(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(16)
    matrix = rng.standard_normal((n, 16)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    ts = pd.date_range("2026-01-05 14:30", periods=n, freq="30min", tz="UTC")
    realized = rng.normal(0.2, 1.2, n)
    return pd.DataFrame({
        "symbol": [f"VEC{i % 25:02d}" for i in range(n)], "interval": "30m", "ts": ts,
        "version": "v1", "setup": rng.choice(["gp_pullback", "momentum", "mean_reversion"], n),
        "side": rng.choice(["long", "short"], n), "trend": "up",
        "vol_regime": rng.choice(["L", "M", "H"], n), "vector": list(matrix),
        "realized_r": realized, "exit_reason": np.where(realized > 0, "TARGET", "STOP"),
        "exit_ts": ts + pd.Timedelta(days=1), "hold_bars": rng.integers(1, 26, n),
    })


def measure_vector_search(engine: Any, *, n: int, repeats: int) -> dict[str, Any]:
    """Load the stored vectors with known outcomes into the project's point-in-time
    ``PatternIndex`` and ask it for one setup's neighbours (k=50): end to end, as the original
    did per query (it re-read every vector as JSON from the database), and the query alone."""
    from swing_core import db
    from swing_core.patterns import PatternIndex

    db.upsert_vectors(engine, _vectors(n))
    query = _vectors(1)["vector"].iloc[0]

    # A symbol with no stored vectors: the search falls back to all symbols (all 1,000 rows).
    def search() -> int:
        index = PatternIndex.from_db(engine, interval="30m")
        return len(index.neighbors(query, asof=None, symbol="NEWSYM", k=50))

    end_to_end = timed_median(search, repeats=repeats, operation=None)
    index = PatternIndex.from_db(engine, interval="30m")
    query_only = timed_median(lambda: index.neighbors(query, asof=None, symbol="NEWSYM", k=50),
                              repeats=repeats * 3, operation=None)
    return {"value_s": end_to_end["median_s"], "end_to_end": end_to_end,
            "query_only_ms": query_only["median_s"] * 1000, "vectors": len(index),
            "neighbours": search()}


def measure_batch_insert(engine: Any, *, n: int, repeats: int) -> dict[str, Any]:
    from swing_core import db
    from swing_core.agent import analyze

    base = analyze("GEN000", "30m", engine=engine).to_record()
    asof = pd.Timestamp(base["asof"])
    records = [{**base, "symbol": f"INS{i % 50:02d}", "asof": asof - pd.Timedelta(minutes=30 * i)}
               for i in range(n)]
    runs = iter(range(10_000))
    result = timed_median(lambda: db.record_signals(engine, records, run_id=f"bench{next(runs)}"),
                          repeats=repeats, operation="db_write")
    return {"value_s": result["median_s"], "rows": n, "timing": result,
            "rows_per_s": n / result["median_s"]}


def measure_multi_symbol(engine: Any, *, symbols: int) -> dict[str, Any]:
    from swing_core.agent import scan

    names = [f"SCAN{i:02d}" for i in range(symbols)]
    start = time.perf_counter()
    results = scan(names, "30m", engine=engine)  # the engine times itself ("scan")
    cold = time.perf_counter() - start
    warm = timed_median(lambda: scan(names, "30m", engine=engine), repeats=3, operation=None,
                        warmup=0)
    errors = [r.error for r in results if r.error]
    return {"value_s": cold, "symbols": symbols, "cold_s": cold, "warm_median_s":
            warm["median_s"], "errors": errors[:3]}


def measure_memory(*, quick: bool) -> dict[str, Any]:
    from bench_memory import run_child

    figures = run_child(100, 20 if quick else 100, timeout_s=300 if quick else 900)
    return {"value_mb": figures["peak_above_baseline_mb"], **figures}


def measure_guide(*, quick: bool, only: set[str] | None) -> dict[str, dict[str, Any]]:
    """Measure the guide's operations (those in ``only``, or all) in a temp SQLite database."""
    from swing_core import db

    repeats = 5 if quick else 15
    steps: list[tuple[str, Callable[[Any], dict[str, Any]]]] = [
        ("signal_generation", lambda e: measure_signal_generation(e, repeats=repeats)),
        ("vector_search_1000", lambda e: measure_vector_search(e, n=1000, repeats=repeats)),
        ("batch_insert", lambda e: measure_batch_insert(e, n=1000, repeats=repeats)),
        ("multi_symbol", lambda e: measure_multi_symbol(e, symbols=MULTI_SYMBOLS)),
        ("memory_100_signals", lambda e: measure_memory(quick=quick)),
    ]
    steps = [s for s in steps if only is None or s[0] in only]
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="swing_run_all_") as tmp:
        os.environ["SWING_DATA_DIR"] = tmp
        os.environ.pop("SWING_DATABASE_URL", None)
        downloads = use_demo_yahoo()  # real bar-cache path, demo prices, no network
        engine = db.make_engine(f"sqlite:///{Path(tmp) / 'run_all.sqlite'}")
        db.init_db(engine)
        for i, (key, step) in enumerate(steps, start=1):
            log(f"[guide {i}/{len(steps)}] {key}")
            try:
                results[key] = step(engine)
            except Exception as exc:  # one failing row must not hide the others
                results[key] = {"error": f"{type(exc).__name__}: {exc}"}
        engine.dispose()
    results["downloads"] = {"count": len(downloads)}
    return results


# --------------------------------------------------------------------------- the benchmarks


def _bench_runs(quick: bool) -> list[tuple[str, list[str]]]:
    if quick:
        return [(f, a) for f, a in QUICK_BENCHES if (HERE / f).is_file()]
    runs = []
    for path in sorted(HERE.glob("bench_*.py")):
        if path.name in SKIP_IN_FULL:
            continue
        for args in FULL_VARIANTS.get(path.name, [[]]):
            runs.append((path.name, args))
    return runs


def run_bench(file: str, args: list[str], *, timeout_s: float) -> dict[str, Any]:
    """Run one benchmark script in a fresh interpreter; its JSON document, or an error."""
    command = [sys.executable, str(HERE / file), *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("SWING_PERF_ROLE", None)
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s,
                              cwd=str(ROOT), env=env, check=False)
    except subprocess.TimeoutExpired:
        return {"command": " ".join(command[1:]), "seconds": timeout_s,
                "error": f"timed out after {timeout_s:.0f} s"}
    seconds = time.perf_counter() - start
    result: dict[str, Any] = {"command": "python " + " ".join(
        [str(Path(command[1]).relative_to(ROOT)), *args]), "seconds": seconds}
    if done.returncode != 0:
        result["error"] = (done.stderr.strip().splitlines() or ["no output"])[-1][:500]
        return result
    try:
        result["report"] = json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        result["error"] = f"output is not one JSON document ({exc})"
    return result


def normalize_targets(targets: Any) -> dict[str, dict[str, Any]]:
    """A benchmark's ``targets`` as {name: {value, target, pass}}: the documented shape is
    already that; some benchmarks print a list of {name or metric, [database], value or
    value_<unit>, target, pass} instead."""
    if isinstance(targets, dict):
        return {str(k): {"value": v.get("value"), "target": v.get("target"), "pass": v.get("pass")}
                for k, v in targets.items() if isinstance(v, dict)}
    out: dict[str, dict[str, Any]] = {}
    for i, item in enumerate(targets if isinstance(targets, list) else []):
        if not isinstance(item, dict):
            continue
        name = str(item.get("name") or item.get("metric") or f"target {i + 1}")
        if item.get("database"):
            name = f"{item['database']}: {name}"
        value = item.get("value")
        if value is None:
            value = next((v for k, v in item.items() if k.startswith("value")), None)
        out[name] = {"value": value, "target": item.get("target"), "pass": item.get("pass")}
    return out


# --------------------------------------------------------------------------- report


def guide_rows(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    measured = {}
    for row in GUIDE_ROWS:
        res = results.get(row.key, {})
        value = res.get("value_mb" if row.unit == "MB" else "value_s")
        if value is not None:
            measured[row.key] = float(value)
    frame = guide_frame(measured)
    rows = []
    for rec in frame.to_dict("records"):
        res = results.get(rec["key"], {})
        rec = {k: (None if isinstance(v, float) and v != v else v) for k, v in rec.items()}
        if "error" in res:
            rec["error"] = res["error"]
        rows.append(rec)
    return rows


def _fmt(value: Any, unit: str) -> str:
    if value is None:
        return "–"
    if unit == "MB":
        return f"{value:,.0f} MB"
    return f"{value * 1000:,.1f} ms" if value < 1 else f"{value:,.2f} s"


def _ratio(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f}x" if value >= 10 else f"{value:.1f}x"


def table_text(doc: dict[str, Any]) -> str:
    """The side-by-side table (Markdown) of the guide and SwingDesk, then every target."""
    lines = [f"SwingDesk vs the original performance guide ({doc['mode']} run, this machine: "
             f"{doc['machine']['cpus']} CPUs, Python {doc['machine']['python']})", "",
             "| Operation | Guide before | Guide after | SwingDesk | x vs after | x vs before "
             "| <= after |", "|---|---:|---:|---:|---:|---:|:-:|"]
    for row in doc["guide"]:
        unit = row["unit"]
        ratio_after = row.get("x_vs_guide_after")
        ratio_before = row.get("x_vs_guide_before")
        ok = {True: "yes", False: "NO", None: "–"}[row.get("passed")]
        lines.append(f"| {row['operation']} | {_fmt(row['guide_before'], unit)} | "
                     f"{_fmt(row['guide_after'], unit)} | {_fmt(row.get('swingdesk'), unit)} | "
                     f"{_ratio(ratio_after)} | {_ratio(ratio_before)} | {ok} |")
    lines += ["", "What SwingDesk measured per row:"]
    lines += [f"- {row['operation']}: {row['workload']}"
              + (f" (ERROR: {row['error']})" if row.get("error") else "") for row in doc["guide"]]
    details = doc["details"]
    if "memory_100_signals" in details and "baseline_rss_mb" in details["memory_100_signals"]:
        mem = details["memory_100_signals"]
        lines.append(f"- memory: interpreter + imports {mem['baseline_rss_mb']:.0f} MB, whole "
                     f"process peak {mem['peak_rss_mb']:.0f} MB, peak above imports "
                     f"{mem['peak_above_baseline_mb']:.1f} MB")
    if "signal_generation" in details and "cold_median_s" in details["signal_generation"]:
        lines.append(f"- signal generation, cold bar cache (demo bars downloaded + stored): "
                     f"{details['signal_generation']['cold_median_s'] * 1000:.0f} ms")
    if "multi_symbol" in details and "warm_median_s" in details["multi_symbol"]:
        lines.append(f"- multi-symbol analysis, warm bar cache: "
                     f"{details['multi_symbol']['warm_median_s'] * 1000:.0f} ms")
    lines += ["", "| Benchmark | Figure | Value | Target | Pass |", "|---|---|---:|---|:-:|"]
    for bench, targets in doc["targets"].items():
        for name, spec in targets.items():
            value = spec["value"]
            text = f"{value:,.4g}" if isinstance(value, (int, float)) else str(value)
            lines.append(f"| {bench} | {name} | {text} | {spec['target']} | "
                         f"{'yes' if spec['pass'] else 'NO'} |")
    for name, bench in doc["benches"].items():
        if bench.get("error"):
            lines.append(f"| {name} | (did not finish) | – | – | ERROR: {bench['error']} |")
    return "\n".join(lines)


def _record_perf() -> perf.PerfRecorder | None:
    """Record this run's timings into the app's database (before SWING_DATA_DIR is changed)."""
    from swing_core import db

    try:
        engine = db.get_engine()
        db.init_db(engine)
    except Exception as exc:
        log(f"[run_all] not recording timings: {exc}")
        return None
    status = perf.start_monitoring(engine, role="selfbench", keep_days=None, interval_s=5.0)
    return status.recorder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the short self-benchmark")
    parser.add_argument("--only", help="comma-separated guide rows to measure (default: all)")
    parser.add_argument("--no-benches", action="store_true", help="skip benchmarks/bench_*.py")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds per benchmark subprocess (default 120 quick, 1200 full)")
    parser.add_argument("--format", choices=["both", "json", "table"], default="both")
    parser.add_argument("--record-perf", action="store_true",
                        help="record timings into the app's database (role 'selfbench')")
    args = parser.parse_args()
    started = time.perf_counter()
    recorder = _record_perf() if args.record_perf else None
    only = set(args.only.split(",")) if args.only else None
    unknown = (only or set()) - {row.key for row in GUIDE_ROWS}
    if unknown:
        parser.error(f"unknown guide rows: {', '.join(sorted(unknown))}")

    details = measure_guide(quick=args.quick, only=only)
    benches: dict[str, dict[str, Any]] = {}
    runs = [] if args.no_benches else _bench_runs(args.quick)
    timeout = args.timeout or (120.0 if args.quick else 1200.0)
    for i, (file, bench_args) in enumerate(runs, start=1):
        name = " ".join([file.removesuffix(".py"), *bench_args])
        log(f"[bench {i}/{len(runs)}] {name}")
        benches[name] = run_bench(file, bench_args, timeout_s=timeout)

    guide = guide_rows(details)
    targets: dict[str, dict[str, Any]] = {"guide": {
        f"{row['key']}_{row['unit'].lower()}": target(row["swingdesk"], row["guide_after"])
        for row in guide if row.get("swingdesk") is not None}}
    if "memory_100_signals" in details and "peak_above_baseline_mb" in details[
            "memory_100_signals"]:
        targets["memory"] = {"peak_above_baseline_mb": target(
            details["memory_100_signals"]["peak_above_baseline_mb"], 120.0)}
    for name, bench in benches.items():
        if "report" in bench:
            targets[name] = normalize_targets(bench["report"].get("targets", {}))
    doc = {
        "benchmark": "run_all", "mode": "quick" if args.quick else "full",
        "guide": guide, "details": details,
        "benches": {k: {kk: vv for kk, vv in v.items() if kk != "report"} | (
            {"report": v["report"]} if "report" in v else {}) for k, v in benches.items()},
        "targets": targets,
        "errors": [f"{k}: {v['error']}" for k, v in details.items() if "error" in v],
        "seconds": time.perf_counter() - started, "machine": machine(),
    }
    if recorder is not None:
        recorder.stop()  # flushes this run's timings
    if args.format in ("both", "json"):
        print(json.dumps(doc, indent=2, default=float))
    if args.format in ("both", "table"):
        print(table_text(doc), file=sys.stdout if args.format == "table" else sys.stderr)


if __name__ == "__main__":
    main()
