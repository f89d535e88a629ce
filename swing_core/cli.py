"""Headless commands: ``python -m swing_core analyze AAPL --interval 30m`` and friends.

``data import PATH…`` / ``data list`` / ``data delete SYMBOL`` / ``data export SYMBOL``: the local
bar library (:mod:`swing_core.market.library`).

Every command prints a clean one-line message and exits with status 2 on bad input (unknown
symbol, too few bars, unreachable database, invalid settings or parameters: any
:class:`~swing_core.errors.SwingError`), no traceback for errors a user can act on. Anything else
is a bug: logged with its traceback, reported as one line asking for a report, exit status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from swing_core.config import INTERVALS
from swing_core.errors import SwingError
from swing_core.timefmt import bar_time_text, bar_time_texts

EXIT_USER_ERROR = 2
EXIT_BUG = 1


def whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: a whole number from ``low`` (to ``high``). Anything else, 0 below
    ``low`` included, is refused (exit status 2) with the allowed range: an option's default is
    its ``default=``, never a silent stand-in for 0."""
    allowed = (f"from {low:,} to {high:,}" if high is not None else f"of at least {low:,}")

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            from swing_core.market import echo_text

            raise argparse.ArgumentTypeError(f"must be a whole number {allowed} (got "
                                             f"{echo_text(text)})")
        return value

    parse.__name__ = "whole number"  # argparse names the type in its fallback message
    return parse


def _lookback_days(text: str) -> int:
    """``--lookback-days``: the engine's own rule (:func:`swing_core.market.check_lookback_days`)."""
    from swing_core.market import check_lookback_days

    try:
        return check_lookback_days(text)
    except SwingError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_analysis_options(parser: argparse.ArgumentParser) -> None:
    """``--interval``, ``--lookback-days``, ``--source``/``--offline`` and ``--no-priors``: the
    options of every command that analyzes a symbol now (analyze, scan, journal add)."""
    from swing_core.market import MAX_LOOKBACK_DAYS

    parser.add_argument("--interval", default="30m", choices=INTERVALS, help="bar interval")
    parser.add_argument("--lookback-days", type=_lookback_days, default=None,
                        help=f"calendar days of history, 1 to {MAX_LOOKBACK_DAYS:,} (default: "
                             "the interval's)")
    add_source_option(parser)
    parser.add_argument("--no-priors", action="store_true", help="skip pattern priors")


def add_source_option(parser: argparse.ArgumentParser) -> None:
    """``--source`` (where bars come from) and ``--offline`` (never ask Yahoo), for every command
    that loads bars."""
    from swing_core.market import SOURCES

    parser.add_argument("--source", default="auto", choices=SOURCES,
                        help="where bars come from: auto (Yahoo, else your local bars, else "
                             "demo), yahoo, local (imported files and earlier fetches) or demo")
    parser.add_argument("--offline", action="store_true",
                        help="never ask Yahoo (also SWING_OFFLINE=1): local bars, else demo")


def analysis_runtime(args: argparse.Namespace) -> Any:
    """The command's runtime: the database (required: a DatabaseError otherwise), and the
    prior provider of ``--interval`` unless ``--no-priors`` (or a note saying why not)."""
    from swing_core.services import open_runtime

    runtime = open_runtime(priors=not args.no_priors, interval=args.interval, monitor="cli")
    runtime.require_engine()
    return runtime


def cmd_analyze(args: argparse.Namespace) -> int:
    from swing_core.agent import analyze

    runtime = analysis_runtime(args)
    provider = None
    if args.file:
        from swing_core.market import FileProvider

        provider = FileProvider(args.file)
    signal = analyze(args.symbol, args.interval, lookback_days=args.lookback_days,
                     engine=runtime.engine, offline=args.offline or None,
                     prior_provider=runtime.prior_provider, provider=provider,
                     source=args.source)
    if args.format == "swingagent":
        from swing_core.swingagent import to_swingagent

        payload = to_swingagent(signal)  # the original library's field names
    else:
        payload = signal.model_dump(mode="json", exclude={"vector"})
    if signal.is_demo and not any("DEMO" in note for note in payload["notes"]):
        payload["notes"].insert(0, "DEMO DATA: synthetic bars, not the market.")
    print(json.dumps(payload, indent=2))
    # the verdict (also in the JSON) as one line a person reads; stdout stays pure JSON
    print(f"verdict: {signal.verdict} ({signal.verdict_reason})", file=sys.stderr)
    return 0


def cmd_scan(args: argparse.Namespace) -> int:
    from swing_core.agent import scan, scan_table
    from swing_core.market import symbol_label

    runtime = analysis_runtime(args)
    results = scan(args.symbols, args.interval, lookback_days=args.lookback_days,
                   engine=runtime.engine, offline=args.offline or None,
                   prior_provider=runtime.prior_provider, source=args.source)
    table = scan_table(results)
    table["symbol"] = table["symbol"].map(symbol_label)  # an invalid one as typed, cut short
    # in the engine's ranking: "take" first, then expected R net of costs, then confidence
    columns = [c for c in ("symbol", "verdict", "data_source", "trend_label", "setup", "side",
                           "entry", "stop", "target", "r_multiple", "expected_r_net",
                           "confidence", "expected_r", "cost_r", "expected_winrate_raw",
                           "prior_n", "vol_regime", "error") if c in table]
    with pd.option_context("display.max_columns", None, "display.width", 200,
                           "display.float_format", "{:.3f}".format):
        print(table[columns].to_string(index=False))
    if any(r.signal is not None and r.signal.is_demo for r in results):
        print("\nDEMO DATA for some symbols: no Yahoo and no local bars for them; prices are "
              "synthetic.")
    failed = [r for r in results if not r.ok]
    return EXIT_USER_ERROR if failed and len(failed) == len(results) else 0


# --------------------------------------------------------------------------- data (bar library)


def _library_engine() -> Any:
    """The migrated database engine (no pattern priors: the library commands need none)."""
    from swing_core.services import open_runtime

    return open_runtime(priors=False, monitor="cli").require_engine()


def cmd_data_import(args: argparse.Namespace) -> int:
    from swing_core.market import ImportedItem, import_bars

    def show(item: Any) -> None:  # each stored series as it happens; failures at the end
        if isinstance(item, ImportedItem):
            print(f"  imported  {item.name}: {item.symbol} {item.interval}, {item.bars:,} bars, "
                  f"{bar_time_text(item.first_ts, item.interval)} to "
                  f"{bar_time_text(item.last_ts, item.interval)}")

    report = import_bars(args.paths, engine=_library_engine(), symbol=args.symbol,
                         interval=args.interval, progress=show)
    if not report.ok and len(report.failed) == 1:
        failure = report.failed[0]
        print(f"error: {failure.name}: {failure.error}", file=sys.stderr)
        return EXIT_USER_ERROR
    for failure in report.failed:
        which = f" [{failure.symbol}]" if failure.symbol else ""
        print(f"  failed    {failure.name}{which}: {failure.error}", file=sys.stderr)
    if not report.ok:
        skipped = f", {len(report.skipped)} skipped" if report.skipped else ""
        print(f"error: nothing imported ({len(report.failed)} failed{skipped}): see the "
              "messages above.", file=sys.stderr)
        return EXIT_USER_ERROR
    print(report.summary())
    return 0


def cmd_data_list(args: argparse.Namespace) -> int:
    from swing_core.market import list_library

    table = list_library(_library_engine())
    if table.empty:
        print("The local bar library is empty: import bars with "
              "`python -m swing_core data import PATH` (files, folders or .zip archives).")
        return 0
    shown = pd.DataFrame({
        "symbol": table["symbol"], "interval": table["interval"],
        "bars": table["bars"].map("{:,}".format),
        "first bar": bar_time_texts(table["first_ts"], table["interval"]),
        "last bar": bar_time_texts(table["last_ts"], table["interval"]),
        "source": table["source"],
        "stored": bar_time_texts(table["stored_at"], "1h"),
    })
    print(shown.to_string(index=False))
    print(f"\n{len(table):,} series, {int(table['bars'].sum()):,} bars. Intraday times are New "
          "York bar open times.")
    return 0


def cmd_data_delete(args: argparse.Namespace) -> int:
    from swing_core.market import delete_from_library, normalize_symbol

    symbol = normalize_symbol(args.symbol)
    deleted = delete_from_library(_library_engine(), symbol, interval=args.interval)
    print(f"Deleted {deleted:,} bars of {symbol}{' ' + args.interval if args.interval else ''}.")
    return 0


def cmd_data_export(args: argparse.Namespace) -> int:
    from swing_core.market import export_bars, normalize_symbol

    symbol = normalize_symbol(args.symbol)
    out = args.out or f"{symbol}_{args.interval}.{args.format or 'csv'}"
    written = export_bars(_library_engine(), symbol, args.interval, out, fmt=args.format)
    print(f"Wrote {written:,} {symbol} {args.interval} bars to {out}.")
    return 0


def _add_data_commands(sub: Any) -> None:
    data = sub.add_parser("data", help="the local bar library: import, list, delete, export bars")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    imp = data_sub.add_parser(
        "import", help="store CSV/Parquet bars files, folders of them or .zip archives")
    imp.add_argument("paths", nargs="+", metavar="PATH")
    imp.add_argument("--symbol", default=None,
                     help="label single-symbol files with it, pick it from multi-symbol ones "
                          "(default: the Symbol column, else the file name)")
    imp.add_argument("--interval", default=None, choices=INTERVALS,
                     help="bar interval (default: inferred per file; finer bars are aggregated)")
    imp.set_defaults(func=cmd_data_import)
    listing = data_sub.add_parser("list", help="what the library holds per symbol and interval")
    listing.set_defaults(func=cmd_data_list)
    delete = data_sub.add_parser("delete", help="delete a symbol's stored bars")
    delete.add_argument("symbol")
    delete.add_argument("--interval", default=None, choices=INTERVALS,
                        help="only this interval (default: all)")
    delete.set_defaults(func=cmd_data_delete)
    export = data_sub.add_parser("export", help="write a symbol's stored bars to CSV or Parquet")
    export.add_argument("symbol")
    export.add_argument("--interval", required=True, choices=INTERVALS)
    export.add_argument("--out", default=None,
                        help="output file (default: SYMBOL_INTERVAL.csv in this folder)")
    export.add_argument("--format", default=None, choices=("csv", "parquet"),
                        help="default: from the --out suffix (.parquet/.pq), else csv")
    export.set_defaults(func=cmd_data_export)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m swing_core",
                                     description="SwingDesk engine commands")
    parser.add_argument("--traceback", action="store_true",
                        help="on an unexpected error (a bug), print its traceback")
    sub = parser.add_subparsers(dest="command", required=True)
    analyze_parser = sub.add_parser("analyze", help="analyze one symbol and print its signal")
    analyze_parser.add_argument("symbol")
    analyze_parser.add_argument("--format", default="swingdesk", choices=("swingdesk", "swingagent"),
                                help="JSON field names: SwingDesk's, or SwingAgent v1.6.1's")
    analyze_parser.add_argument("--file", default=None,
                                help="analyze your own CSV or Parquet bars instead of Yahoo's")
    add_analysis_options(analyze_parser)
    analyze_parser.set_defaults(func=cmd_analyze)
    scan_parser = sub.add_parser("scan", help="scan symbols and print a ranked table")
    scan_parser.add_argument("symbols", nargs="+")
    add_analysis_options(scan_parser)
    scan_parser.set_defaults(func=cmd_scan)
    _add_data_commands(sub)
    for module_name, hook in (("swing_core.cli_journal", "add_journal_commands"),
                              ("swing_core.cli_backtest", "add_backtest_commands"),
                              ("swing_core.cli_profile", "add_profile_commands")):
        module = __import__(module_name, fromlist=[hook])
        getattr(module, hook)(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SwingError as exc:  # bad input, settings, data or database: the user can act on it
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: one line on the terminal, the traceback on request
        if args.traceback:
            traceback.print_exc()
        print(f"unexpected error ({type(exc).__name__}) in `{args.command}`: {exc}. This is a "
              "bug: please report it (rerun with --traceback for the details).", file=sys.stderr)
        return EXIT_BUG
