"""Headless commands: ``python -m swing_core analyze AAPL --interval 30m`` and friends.

Every command prints a clean one-line message and exits with status 2 on bad input (unknown
symbol, too few bars, unreachable database, …): no traceback for errors a user can act on.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

import pandas as pd

from swing_core.config import INTERVALS
from swing_core.errors import SwingError

EXIT_USER_ERROR = 2


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--interval", default="30m", choices=INTERVALS, help="bar interval")
    parser.add_argument("--lookback-days", type=int, default=None,
                        help="calendar days of history (default depends on the interval)")
    parser.add_argument("--offline", action="store_true",
                        help="use deterministic demo data (also SWING_OFFLINE=1)")
    parser.add_argument("--no-priors", action="store_true", help="skip pattern priors")


def _services(args: argparse.Namespace) -> dict[str, Any]:
    """The database engine and the prior provider, or a note saying why they are left out."""
    from swing_core.services import open_services

    return open_services(use_priors=not args.no_priors, interval=args.interval, monitor="cli")


def cmd_analyze(args: argparse.Namespace) -> int:
    from swing_core.agent import analyze

    services = _services(args)
    provider = None
    if args.file:
        from swing_core.market import FileProvider

        provider = FileProvider(args.file)
    signal = analyze(args.symbol, args.interval, lookback_days=args.lookback_days,
                     engine=services["engine"], offline=args.offline or None,
                     prior_provider=services["prior_provider"], provider=provider)
    payload = signal.model_dump(mode="json", exclude={"vector"})
    if signal.is_demo and not any("DEMO" in note for note in payload["notes"]):
        payload["notes"].insert(0, "DEMO DATA: synthetic bars, not the market.")
    print(json.dumps(payload, indent=2))
    return 0


def cmd_scan(args: argparse.Namespace) -> int:
    from swing_core.agent import scan, scan_table

    services = _services(args)
    results = scan(args.symbols, args.interval, lookback_days=args.lookback_days,
                   engine=services["engine"], offline=args.offline or None,
                   prior_provider=services["prior_provider"])
    table = scan_table(results)
    columns = [c for c in ("symbol", "data_source", "trend_label", "setup", "side", "entry",
                           "stop", "target", "r_multiple", "confidence", "expected_r",
                           "expected_winrate", "vol_regime", "error") if c in table]
    with pd.option_context("display.max_columns", None, "display.width", 200,
                           "display.float_format", "{:.3f}".format):
        print(table[columns].to_string(index=False))
    if any(r.signal is not None and r.signal.is_demo for r in results):
        print("\nDEMO DATA: Yahoo was not used (offline); prices are synthetic.")
    failed = [r for r in results if not r.ok]
    return EXIT_USER_ERROR if failed and len(failed) == len(results) else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m swing_core",
                                     description="SwingDesk engine commands")
    sub = parser.add_subparsers(dest="command", required=True)
    analyze_parser = sub.add_parser("analyze", help="analyze one symbol and print its signal")
    analyze_parser.add_argument("symbol")
    analyze_parser.add_argument("--file", default=None,
                                help="analyze your own CSV or Parquet bars instead of Yahoo's")
    _add_common(analyze_parser)
    analyze_parser.set_defaults(func=cmd_analyze)
    scan_parser = sub.add_parser("scan", help="scan symbols and print a ranked table")
    scan_parser.add_argument("symbols", nargs="+")
    _add_common(scan_parser)
    scan_parser.set_defaults(func=cmd_scan)
    for module_name, hook in (("swing_core.cli_journal", "add_journal_commands"),
                              ("swing_core.cli_backtest", "add_backtest_commands")):
        module = __import__(module_name, fromlist=[hook])
        getattr(module, hook)(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SwingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except ValueError as exc:  # invalid settings or parameters
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
