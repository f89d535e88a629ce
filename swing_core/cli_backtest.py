"""Backtest commands for ``python -m swing_core`` (placeholder until the engine lands)."""

from __future__ import annotations

import argparse


def add_backtest_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``backtest`` commands on the main CLI's subparsers."""
    parser = subparsers.add_parser("backtest", help="walk-forward backtest (in progress)")
    parser.add_argument("symbols", nargs="+")
    parser.set_defaults(func=lambda args: print("backtest: not available yet") or 2)
