"""``python -m swing_core profile analyze AAPL`` (wired in by :func:`add_profile_commands`).

Runs one analyze, backtest or scan in this process under cProfile and prints where its time
went: the top functions by cumulative time (``--top``), or the whole profile as one line of JSON
(``--json``, what the Performance page's "Profile" action reads from its subprocess, see
:func:`swing_core.perf.profiling.profile_operation`). ``--save`` stores it in the database so the
Performance page lists it. Bad input (unknown operation, malformed symbol, analyze with several
symbols, no data) exits with status 2 and one line, like every command.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pandas as pd

from swing_core.cli import add_analysis_options, whole_number
from swing_core.errors import SwingError
from swing_core.perf import profiling

__all__ = ["add_profile_commands"]

#: The top-functions table's columns as printed (column -> header).
_HEADERS = {"function": "function", "location": "file:line", "calls": "calls",
            "own_s": "own s", "cumulative_s": "cumulative s", "cumulative_share": "cum %",
            "per_call_ms": "ms/call"}


def _operation(args: argparse.Namespace, symbols: list[str], runtime: Any
               ) -> Callable[[], Any]:
    """The run to profile, as a function of no arguments (its code is the profile's root)."""
    engine = runtime.engine
    offline = args.offline or None
    if args.kind == "backtest":
        from swing_core.backtest import BacktestConfig, run_backtest

        config = BacktestConfig(interval=args.interval, priors=not args.no_priors)

        def backtest() -> Any:  # inline: the work stays in the profiled process
            return run_backtest(symbols, config=config, engine=engine, save=False, reuse=False,
                                executor="inline", max_workers=1, offline=offline,
                                source=args.source)
        return backtest
    prior_provider = runtime.prior_provider
    if args.kind == "scan":
        from swing_core.agent import scan

        def scan_symbols() -> Any:
            return scan(symbols, args.interval, lookback_days=args.lookback_days, engine=engine,
                        offline=offline, prior_provider=prior_provider, source=args.source)
        return scan_symbols
    from swing_core.agent import analyze

    def analyze_symbol() -> Any:
        return analyze(symbols[0], args.interval, lookback_days=args.lookback_days,
                       engine=engine, offline=offline, prior_provider=prior_provider,
                       source=args.source)
    return analyze_symbol


def _notes(kind: str, value: Any) -> list[str]:
    """What the reader of the profile should know about the run itself (demo bars, failures);
    raises when a scan could run no symbol (nothing to profile)."""
    if kind == "analyze":
        return ["DEMO DATA: synthetic bars, not the market."] if value.is_demo else []
    if kind == "backtest":
        return [f"{symbol} skipped: {message}" for symbol, message in value.errors.items()]
    failed = [r for r in value if not r.ok]
    if failed and len(failed) == len(value):
        raise SwingError(f"No symbol could be scanned: {failed[0].symbol}: {failed[0].error}")
    notes = [f"{r.symbol} failed: {r.error}" for r in failed]
    if any(r.signal is not None and r.signal.is_demo for r in value):
        notes.insert(0, "DEMO DATA for some symbols: synthetic bars, not the market.")
    return notes


def cmd_profile(args: argparse.Namespace) -> int:
    from swing_core.services import open_runtime

    if args.interval is None:  # each operation's usual default, as its own command has it
        args.interval = "1d" if args.kind == "backtest" else "30m"
    if args.kind == "backtest" and args.lookback_days is not None:
        raise profiling.ProfileError("--lookback-days applies to analyze and scan; a backtest "
                                     "runs over all the bars it has.")
    symbols = profiling.check_request(args.kind, args.symbols, args.interval)
    runtime = open_runtime(priors=not args.no_priors and args.kind != "backtest",
                           interval=args.interval)
    if runtime.engine is None:
        print(f"note: no database ({runtime.database_error}); profiling without it",
              file=sys.stderr)
    operation = _operation(args, symbols, runtime)
    if args.warm:
        operation()  # imports done and caches filled: the profile shows steady-state work
    arguments = {"symbols": symbols, "interval": args.interval, "source": args.source,
                 "offline": bool(args.offline), "priors": not args.no_priors,
                 "warm": bool(args.warm), "lookback_days": args.lookback_days}
    value, result = profiling.profile_call(operation, kind=args.kind, arguments=arguments)
    result = replace(result, notes=(*runtime.notes, *_notes(args.kind, value)))
    if args.save:
        from swing_core.perf.profile_store import save_profile

        result = replace(result, profile_id=save_profile(runtime.require_engine(), result))
    if args.json:
        print(json.dumps(result.to_payload(), separators=(",", ":")))
        return 0
    _print(result, args.top)
    return 0


def _print(result: profiling.ProfileResult, top: int) -> None:
    print(f"profile of {result.title}: {result.total_s:,.3f} s under cProfile; top {top} "
          "functions by cumulative time")
    table = result.top(top)
    shown = pd.DataFrame({
        _HEADERS["function"]: _left(table["function"].str.slice(0, 48)),
        _HEADERS["location"]: _left(table["location"].str.slice(-48)),
        _HEADERS["calls"]: table["calls"].map("{:,}".format),
        _HEADERS["own_s"]: table["own_s"].map("{:.4f}".format),
        _HEADERS["cumulative_s"]: table["cumulative_s"].map("{:.4f}".format),
        _HEADERS["cumulative_share"]: (table["cumulative_share"] * 100).map("{:.1f}".format),
        _HEADERS["per_call_ms"]: table["per_call_ms"].map("{:.3f}".format)})
    print(shown.to_string(index=False))
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    if result.profile_id is not None:
        print(f"saved as profile {result.profile_id} (the Performance page lists it)")


def _left(texts: pd.Series) -> pd.Series:
    """Texts padded to one width, so the printed column reads left-aligned."""
    return texts.str.ljust(int(texts.str.len().max() or 0)) if len(texts) else texts


def add_profile_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``profile`` on the main CLI's subparsers (sets ``func``)."""
    parser = subparsers.add_parser(
        "profile", help="run one analyze, backtest or scan under cProfile and print where its "
                        "time goes")
    parser.add_argument("kind", choices=profiling.KINDS, help="the operation to profile")
    parser.add_argument("symbols", nargs="+", help="one symbol for analyze; one or more for "
                                                   "backtest and scan")
    add_analysis_options(parser)
    parser.set_defaults(interval=None)  # analyze / scan: 30m; backtest: 1d
    parser.add_argument("--top", type=whole_number(1, 500), default=profiling.DEFAULT_TOP,
                        help="functions to print (by cumulative time)")
    parser.add_argument("--warm", action="store_true",
                        help="run once unprofiled first, then profile a second run (imports "
                             "and caches warm, as in a running app)")
    parser.add_argument("--save", action="store_true",
                        help="save the profile in the database (the Performance page lists it)")
    parser.add_argument("--json", action="store_true",
                        help="print the whole profile as one line of JSON")
    parser.set_defaults(func=cmd_profile)
