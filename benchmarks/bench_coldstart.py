"""Cold start and repeated reads (issue 17): ``python -m swing_core analyze --file`` against
``python -c "import pandas"``, the heavy modules that command imports, a scan's context reads,
and a bars file read again.

Run: ``python benchmarks/bench_coldstart.py [--runs 5] [--symbols 20]`` (about 40 s). Prints one
JSON document.

- cli: ``--runs`` fresh processes of each, interleaved (pandas, CLI, pandas, CLI, ...): the
  baseline ``python -c "import pandas"`` and ``python -m swing_core analyze AAPL --interval 1d
  --file F.csv`` (F: 1,500 demo daily bars) with ``SWING_OFFLINE=1`` in a new
  ``SWING_DATA_DIR``. The first CLI run creates and migrates that database and writes the
  bytecode of both (in a temporary ``PYTHONPYCACHEPREFIX``, as an installed package has it; this
  checkout's environment may set ``PYTHONDONTWRITEBYTECODE``); it is reported apart
  (``first_run_s``) and not in the medians. Target: CLI median <= 1.5x the baseline's.
- heavy_modules: what one more CLI run imports (``-X importtime``), against the list that must
  stay out: openai, sklearn, faiss, optuna, dask, distributed, plotly, streamlit (and alembic,
  at the schema head). The largest imports by cumulative time are listed for the record.
- scan: ``--symbols`` symbols, 30m, bar cache warm (Yahoo replaced at its boundary by demo bars,
  ``bench_memory.use_demo_yahoo``): ``scan()`` (each context series read once per scan) against
  the per-symbol path it replaced (``analyze()`` of each symbol, every one reading SPY and XLK
  again), interleaved; the context reads of each, and whether the signals are identical.
- file: ``read_bars_file`` of the same CSV parsed (cache cleared) against read again (kept
  parse), interleaved.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import emit, target  # noqa: E402

HEAVY = ("openai", "sklearn", "faiss", "optuna", "dask", "distributed", "plotly", "streamlit")


def _run(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return elapsed


def _imports(cmd: list[str], env: dict[str, str]) -> tuple[set[str], dict[str, float]]:
    """Modules a run of ``cmd`` imports (``-X importtime``), and the import time (ms, own time
    of each module summed) of the 12 largest packages (swing_core by subpackage)."""
    done = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=True)
    names: set[str] = set()
    own: dict[str, float] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        self_us, _, raw = line.split("|")
        name = raw.strip()
        names.add(name)
        parts = name.split(".")
        package = ".".join(parts[:2]) if parts[0] == "swing_core" else parts[0]
        own[package] = own.get(package, 0.0) + int(self_us.split(":")[1]) / 1000
    largest = sorted(own.items(), key=lambda item: -item[1])[:12]
    return names, {name: round(ms, 1) for name, ms in largest}


def measure_cli(runs: int, tmp: Path) -> dict[str, Any]:
    from swing_core.market.demo import demo_bars

    csv = tmp / "F.csv"
    demo_bars("AAPL", "1d", 1500).to_csv(csv)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SWING_") and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(SWING_DATA_DIR=str(tmp / "data"), SWING_OFFLINE="1",
               PYTHONPYCACHEPREFIX=str(tmp / "pycache"), PYTHONPATH=str(ROOT))
    baseline = [sys.executable, "-c", "import pandas"]
    cli = [sys.executable, "-m", "swing_core", "analyze", "AAPL", "--interval", "1d",
           "--file", str(csv)]
    first = _run(cli, env)  # new database (migrated) and bytecode written
    _run(baseline, env)
    times: dict[str, list[float]] = {"baseline": [], "cli": []}
    for _ in range(runs):
        times["baseline"].append(_run(baseline, env))
        times["cli"].append(_run(cli, env))
    names, largest = _imports(cli, env)
    _, pandas_alone = _imports(baseline, env)
    tops = {name.split(".")[0] for name in names}
    base_median = statistics.median(times["baseline"])
    cli_median = statistics.median(times["cli"])
    return {
        "command": " ".join(["python", *cli[1:-1], "F.csv"]),
        "baseline_command": 'python -c "import pandas"',
        "runs": runs,
        "first_run_s": first,
        "baseline_median_s": base_median,
        "cli_median_s": cli_median,
        "baseline_s": times["baseline"],
        "cli_s": times["cli"],
        "ratio": cli_median / base_median,
        "heavy_imported": sorted(tops & set(HEAVY)),
        "alembic_imported": "alembic" in tops,
        "import_ms_by_package": largest,
        "baseline_import_ms_by_package": pandas_alone,
    }


def measure_scan(symbols: int, repeats: int, tmp: Path) -> dict[str, Any]:
    os.environ["SWING_DATA_DIR"] = str(tmp / "scan")
    os.environ.pop("SWING_OFFLINE", None)
    os.environ.pop("SWING_DATABASE_URL", None)
    from bench_memory import use_demo_yahoo

    from swing_core import db, market
    from swing_core.agent import analyze, scan

    use_demo_yahoo()
    engine = db.get_engine()
    db.init_db(engine)
    names = [f"SCAN{i:02d}" for i in range(symbols)]

    def per_symbol() -> list[Any]:
        return [analyze(name, "30m", engine=engine) for name in names]

    def scanned() -> list[Any]:
        return [r.signal for r in scan(names, "30m", engine=engine)]

    per_symbol()  # bar cache filled: every symbol, SPY, XLK, 15m, 1h
    reads: dict[str, int] = {}
    real = market.fetch_bars

    def counting(symbol: str, interval: str, **kwargs: Any) -> Any:
        reads[f"{symbol} {interval}"] = reads.get(f"{symbol} {interval}", 0) + 1
        return real(symbol, interval, **kwargs)

    market.fetch_bars = counting
    try:
        before = per_symbol()
        before_reads, reads = reads, {}
        after = scanned()
        after_reads = reads
    finally:
        market.fetch_bars = real
    identical = [a.model_dump_json() for a in after] == [b.model_dump_json() for b in before]
    times: dict[str, list[float]] = {"per_symbol": [], "scan": []}
    for _ in range(repeats):
        for label, fn in (("per_symbol", per_symbol), ("scan", scanned)):
            start = time.perf_counter()
            fn()
            times[label].append(time.perf_counter() - start)
    engine.dispose()
    per_median, scan_median = (statistics.median(times[k]) for k in ("per_symbol", "scan"))
    return {
        "symbols": symbols, "interval": "30m", "repeats": repeats,
        "per_symbol_median_s": per_median, "scan_median_s": scan_median,
        "per_symbol_s": times["per_symbol"], "scan_s": times["scan"],
        "speedup": per_median / scan_median,
        "context_reads_per_symbol_path": {k: before_reads.get(k, 0) for k in ("SPY 30m",
                                                                               "XLK 30m")},
        "context_reads_scan": {k: after_reads.get(k, 0) for k in ("SPY 30m", "XLK 30m")},
        "signals_identical": identical,
    }


def measure_file(repeats: int, tmp: Path) -> dict[str, Any]:
    from swing_core.market import files
    from swing_core.market.demo import demo_bars

    csv = tmp / "AAPL.csv"
    demo_bars("AAPL", "1d", 1500).to_csv(csv)

    def parsed() -> None:
        files.clear_parsed_cache()
        files.read_bars_file(csv, symbol="AAPL")

    def kept() -> None:
        files.read_bars_file(csv, symbol="AAPL")

    times: dict[str, list[float]] = {"parse": [], "kept": []}
    parsed()
    for _ in range(repeats):
        for label, fn in (("parse", parsed), ("kept", kept)):
            start = time.perf_counter()
            fn()
            times[label].append(time.perf_counter() - start)
    parse_ms, kept_ms = (statistics.median(times[k]) * 1000 for k in ("parse", "kept"))
    return {"bars": 1500, "bytes": csv.stat().st_size, "parse_median_ms": parse_ms,
            "kept_median_ms": kept_ms, "speedup": parse_ms / kept_ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh processes of each command")
    parser.add_argument("--symbols", type=int, default=20, help="symbols in the scan")
    parser.add_argument("--repeats", type=int, default=5, help="scans of each kind")
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-coldstart-") as name:
        tmp = Path(name)
        cli = measure_cli(args.runs, tmp)
        file = measure_file(21, tmp)
        scan = measure_scan(args.symbols, args.repeats, tmp)
    emit({
        "benchmark": "coldstart",
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "cli": cli,
        "file": file,
        "scan": scan,
        "targets": {
            "cli_vs_import_pandas": target(cli["ratio"], 1.5),
            "heavy_modules_imported": {"value": cli["heavy_imported"], "target": "none of "
                                       + ", ".join(HEAVY), "pass": not cli["heavy_imported"]},
            "alembic_at_schema_head": {"value": cli["alembic_imported"], "target": False,
                                       "pass": not cli["alembic_imported"]},
            "scan_spy_reads": target(scan["context_reads_scan"]["SPY 30m"], 1),
            "scan_xlk_reads": target(scan["context_reads_scan"]["XLK 30m"], 1),
            "scan_signals_identical": {"value": scan["signals_identical"], "target": True,
                                       "pass": scan["signals_identical"]},
            "file_kept_vs_parse": target(file["speedup"], 5, at_least=True),
        },
    })


if __name__ == "__main__":
    main()
