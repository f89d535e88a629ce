"""CLI commands for the journal and the database, wired into ``python -m swing_core``:

- ``journal add SYMBOL [--interval I] [--source S] [--offline]``: analyze now and save the signal
  (once per symbol, interval and bar; a signal without a trade plan is refused);
- ``journal evaluate [--symbol S] [--cache-only] [--offline]``: evaluate pending live signals;
- ``journal list [--symbol S] [--pending|--evaluated] [--limit N] [--run-id ID]``;
- ``journal export [--out FILE]``: CSV to a file (or stdout);
- ``db upgrade``: bring the schema to the latest revision; ``db status``: where and which revision.

Each prints a clean message; a :class:`~swing_core.errors.SwingError` becomes ``error: …`` on
stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from typing import Any

import pandas as pd

from swing_core.cli import add_analysis_options, analysis_runtime, whole_number
from swing_core.errors import SwingError
from swing_core.timefmt import bar_time_text, bar_time_texts

EXIT_USER_ERROR = 2

_LIST_COLUMNS = ["id", "asof", "symbol", "interval", "setup", "side", "entry", "stop", "target",
                 "confidence", "expected_winrate", "evaluated", "exit_reason", "realized_r"]


def _clean_errors(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    @functools.wraps(func)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except SwingError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USER_ERROR

    return wrapper


def _engine() -> Any:
    """The settings' database, brought up to date (raises DatabaseError when unusable)."""
    from swing_core.services import open_runtime

    return open_runtime(priors=False).require_engine()


def _fetching_loader(engine: Any, *, offline: bool | None) -> Callable[[str, str], pd.DataFrame]:
    """Bars through the market module (tops the cache up from Yahoo, or demo data offline)."""
    from swing_core.market import fetch_bars

    def load(symbol: str, interval: str) -> pd.DataFrame:
        return fetch_bars(symbol, interval, engine=engine, offline=offline)

    return load


@_clean_errors
def cmd_journal_evaluate(args: argparse.Namespace) -> int:
    from swing_core.journal import evaluate_pending

    engine = _engine()
    loader = None if args.cache_only else _fetching_loader(engine, offline=args.offline or None)
    summary = evaluate_pending(engine, load_bars=loader, symbol=args.symbol)
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(summary.by_reason.items())) or "none"
    print(f"Checked {summary.checked} pending signal(s): evaluated {summary.evaluated} "
          f"({reasons}), still pending {summary.still_pending}, skipped {summary.skipped}.")
    for key, message in summary.errors.items():
        print(f"  {key}: {message}", file=sys.stderr)
    return EXIT_USER_ERROR if summary.errors and summary.evaluated == 0 else 0


@_clean_errors
def cmd_journal_add(args: argparse.Namespace) -> int:
    """Analyze a symbol now and save its signal: once per bar, and only with a trade plan."""
    from swing_core.agent import analyze
    from swing_core.journal import record_signal

    runtime = analysis_runtime(args)
    signal = analyze(args.symbol, args.interval, lookback_days=args.lookback_days,
                     engine=runtime.engine, offline=args.offline or None,
                     prior_provider=runtime.prior_provider, source=args.source)
    saved = record_signal(runtime.engine, signal)
    where = f"{signal.symbol} {signal.interval} bar {bar_time_text(signal.asof, signal.interval)}"
    demo = " (DEMO data: synthetic prices)" if signal.is_demo else ""
    if saved.no_plan:
        print(f"error: {where}{demo}: {saved.message}", file=sys.stderr)
        return EXIT_USER_ERROR
    print(f"{where}{demo}: {saved.message}")
    return 0


@_clean_errors
def cmd_journal_list(args: argparse.Namespace) -> int:
    from swing_core import db

    evaluated = True if args.evaluated else (False if args.pending else None)
    frame = db.list_signals(_engine(), symbol=args.symbol, evaluated=evaluated,
                            run_id=args.run_id, limit=args.limit)
    if len(frame) == 0:
        print("No signals in the journal match.")
        return 0
    shown = frame[_LIST_COLUMNS].copy()
    shown["asof"] = bar_time_texts(shown["asof"], shown["interval"])
    with pd.option_context("display.max_columns", None, "display.width", 200,
                           "display.float_format", "{:.3f}".format):
        print(shown.to_string(index=False))
    return 0


@_clean_errors
def cmd_journal_export(args: argparse.Namespace) -> int:
    from swing_core.journal import export_csv

    engine = _engine()
    if args.out in (None, "-"):
        sys.stdout.write(str(export_csv(engine, None, run_id=args.run_id)))
        return 0
    path = export_csv(engine, args.out, run_id=args.run_id)
    print(f"Journal exported to {path}.")
    return 0


@_clean_errors
def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from swing_core import db

    engine = db.get_engine()
    revision = db.init_db(engine, upgrade=True)  # whatever SWING_DB_AUTO_MIGRATE says
    print(f"{db.describe_database(engine)}: schema at revision {revision}.")
    return 0


@_clean_errors
def cmd_db_status(args: argparse.Namespace) -> int:
    from swing_core import db

    status = db.database_status(db.get_engine())
    state = ("up to date" if status.up_to_date
             else "needs `db upgrade` (run `python -m swing_core db upgrade` as the owner)")
    print(f"{status.description} ({status.dialect}): revision {status.current_revision or 'none'}"
          f", code head {status.head_revision}: {state}.")
    return 0


def add_journal_commands(subparsers: Any) -> None:
    """Add ``journal …`` and ``db …`` to an argparse subparsers object."""
    journal = subparsers.add_parser("journal", help="the signal journal")
    jsub = journal.add_subparsers(dest="journal_command", required=True)

    evaluate = jsub.add_parser("evaluate", help="evaluate pending live signals")
    evaluate.add_argument("--symbol", default=None, help="only this symbol")
    evaluate.add_argument("--cache-only", action="store_true",
                          help="use cached bars only (no download)")
    evaluate.add_argument("--offline", action="store_true",
                          help="demo data instead of Yahoo (also SWING_OFFLINE=1)")
    evaluate.set_defaults(func=cmd_journal_evaluate)

    add = jsub.add_parser("add", help="analyze a symbol now and save its signal (once per bar)")
    add.add_argument("symbol")
    add_analysis_options(add)
    add.set_defaults(func=cmd_journal_add)

    listing = jsub.add_parser("list", help="list journal signals, newest first")
    listing.add_argument("--symbol", default=None)
    state = listing.add_mutually_exclusive_group()
    state.add_argument("--pending", action="store_true", help="only signals not evaluated yet")
    state.add_argument("--evaluated", action="store_true", help="only evaluated signals")
    listing.add_argument("--limit", type=whole_number(1), default=50,
                         help="at most this many signals (default 50)")
    listing.add_argument("--run-id", default="live", help='"live" (default) or a backtest run id')
    listing.set_defaults(func=cmd_journal_list)

    export = jsub.add_parser("export", help="export the journal as CSV")
    export.add_argument("--out", default=None, help="file to write (default: stdout)")
    export.add_argument("--run-id", default="live")
    export.set_defaults(func=cmd_journal_export)

    database = subparsers.add_parser("db", help="database schema")
    dsub = database.add_subparsers(dest="db_command", required=True)
    dsub.add_parser("upgrade", help="bring the schema up to date").set_defaults(
        func=cmd_db_upgrade)
    dsub.add_parser("status", help="show the database and its schema revision").set_defaults(
        func=cmd_db_status)
