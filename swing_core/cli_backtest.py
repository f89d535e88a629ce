"""Backtest commands of ``python -m swing_core`` (wired in by :func:`add_backtest_commands`).

``backtest AAPL MSFT --interval 1d --start 2024-01-01 --end 2025-01-01`` runs a walk-forward
portfolio backtest, prints its statistics and saves the run (an identical run is served from
storage); ``backtest-runs`` lists saved runs, ``backtest-show`` prints one, ``backtest-compare``
puts several side by side, ``backtest-search`` runs a grid or Optuna parameter search scored on a
held-out later period.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import pandas as pd

from swing_core.cli import whole_number
from swing_core.config import INTERVALS
from swing_core.errors import BacktestError
from swing_core.exits import FILL_CONVENTIONS
from swing_core.market import symbol_label

__all__ = ["add_backtest_commands"]


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _params(pairs: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise BacktestError(f"--param {pair!r}: write it as name=value, e.g. max_hold_days=3.")
        name, value = pair.split("=", 1)
        out[name.strip()] = _parse_value(value.strip())
    return out


def _config(args: argparse.Namespace) -> Any:
    from swing_core.backtest import BacktestConfig, params_from_dict

    return BacktestConfig(
        interval=args.interval, start=args.start, end=args.end,
        params=params_from_dict(_params(args.param)), initial_equity=args.equity,
        max_positions=args.max_positions, one_position_per_symbol=not args.all_signals,
        priors=not args.no_priors, use_library=args.library, fill=args.fill,
    )


def _engine(args: argparse.Namespace) -> Any:
    """The run database, or None (with a note on stderr) when it is unusable or not wanted."""
    if getattr(args, "no_save", False) and getattr(args, "no_cache", False):
        return None
    from swing_core.services import open_runtime

    runtime = open_runtime(priors=False)
    if runtime.engine is None:
        print(f"note: runs are not saved ({runtime.database_error})", file=sys.stderr)
    return runtime.engine


def _print_stats(stats: pd.Series) -> None:
    width = max(len(str(k)) for k in stats.index) + 2
    for key, value in stats.items():
        if isinstance(value, float):
            text = f"{value:,.4f}" if abs(value) < 1e6 else f"{value:,.2f}"
        else:
            text = str(value)
        print(f"{key:<{width}}{text}")


def _progress(done: int, total: int, label: str) -> None:
    print(f"  [{done}/{total}] {label}", file=sys.stderr)


def cmd_backtest(args: argparse.Namespace) -> int:
    from swing_core.backtest import run_backtest

    config = _config(args)
    engine = _engine(args)
    result = run_backtest(
        args.symbols, config=config, engine=engine, save=not args.no_save,
        reuse=not args.no_cache, max_workers=args.workers,
        executor="inline" if args.workers == 1 else None, progress=_progress,
        lookahead=args.lookahead, name=args.name, offline=args.offline or None,
        source=args.source,
    )
    if args.json:
        from swing_core.backtest.store import json_value

        print(json.dumps({"run_hash": result.run_hash, "run_id": result.run_id,
                          "from_storage": result.from_storage, "errors": result.errors,
                          "stats": {k: json_value(v) for k, v in result.stats.items()}},
                         indent=2))
        return 0
    for symbol, message in result.errors.items():
        print(f"skipped {symbol_label(symbol)}: {message}", file=sys.stderr)
    for symbol, notes in result.notes.items():
        for note in notes:
            print(f"note {symbol}: {note}", file=sys.stderr)
    origin = "served from storage" if result.from_storage else "computed"
    print(f"run {result.run_hash} ({origin}; symbols: {', '.join(result.symbols)})")
    _print_stats(result.stats)
    if result.lookahead is not None and not result.lookahead.ok:
        print("LOOK-AHEAD CHECK FAILED:", *result.lookahead.mismatches[:5], sep="\n  ")
    if result.run_id is not None:
        print(f"saved as run id {result.run_id}")
    return 0


def _need_engine() -> Any:
    """The run database, brought up to date (raises DatabaseError when unusable)."""
    from swing_core.services import open_runtime

    return open_runtime(priors=False).require_engine()


def _find_hash(engine: Any, prefix: str) -> str:
    from swing_core.backtest import list_runs

    runs = list_runs(engine, limit=None)
    hits = runs[runs["run_hash"].astype(str).str.startswith(prefix)
                | (runs["id"].astype(str) == prefix)]
    if len(hits) != 1:
        raise BacktestError(f"{len(hits)} saved runs match {prefix!r}: give a longer hash or "
                            "the run id (see `python -m swing_core backtest-runs`).")
    return str(hits["run_hash"].iloc[0])


def cmd_runs(args: argparse.Namespace) -> int:
    from swing_core.backtest import list_runs

    runs = list_runs(_need_engine(), limit=args.limit)
    if runs.empty:
        print("no saved backtest runs")
        return 0
    runs = runs.assign(run_hash=runs["run_hash"].str[:12])
    with pd.option_context("display.width", 200, "display.max_columns", None,
                           "display.float_format", "{:.3f}".format):
        # n_trades is the "# Trades" statistic: shown once, under the statistic's name
        print(runs.drop(columns=["engine_version", "n_trades"], errors="ignore")
              .to_string(index=False))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from swing_core.backtest import load_run

    engine = _need_engine()
    result = load_run(engine, _find_hash(engine, args.run))
    print(f"run {result.run_hash} ({', '.join(result.symbols)}, {result.config.interval})")
    _print_stats(result.stats)
    if args.trades:
        with pd.option_context("display.width", 200, "display.max_columns", None):
            print(result.trades.to_string(index=False))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from swing_core.backtest import compare_runs

    engine = _need_engine()
    table = compare_runs(engine, [_find_hash(engine, r) for r in args.runs])
    with pd.option_context("display.width", 200, "display.max_columns", None):
        print(table.to_string())
    return 0


def _space(pairs: list[str]) -> dict[str, Any]:
    """name=v1,v2,… (choices) or name=low:high (a range) → search space."""
    out: dict[str, Any] = {}
    for name, value in _params_raw(pairs).items():
        if ":" in value:
            low, high = (_parse_value(v) for v in value.split(":", 1))
            out[name] = (low, high)
        else:
            out[name] = [_parse_value(v) for v in value.split(",")]
    return out


def _params_raw(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise BacktestError(f"{pair!r}: write it as name=v1,v2 or name=low:high.")
        name, value = pair.split("=", 1)
        out[name.strip()] = value.strip()
    return out


def cmd_search(args: argparse.Namespace) -> int:
    from swing_core.backtest import gather_bars, gather_context, grid_search, optuna_search

    config = _config(args)
    if not args.space:
        raise BacktestError("Give at least one --space name=v1,v2 (or name=low:high).")
    engine = _engine(args)
    names = [s.strip().upper() for s in args.symbols]
    bars, errors = gather_bars(names, config, engine=engine, offline=args.offline or None,
                               source=args.source)
    for symbol, message in errors.items():
        print(f"skipped {symbol_label(symbol)}: {message}", file=sys.stderr)
    if not bars:
        raise BacktestError("No symbol could run: " + " | ".join(errors.values()))
    context = gather_context(bars, config, engine=engine, offline=args.offline or None)
    for symbol, notes in context.notes.items():
        for note in notes:
            print(f"note {symbol}: {note}", file=sys.stderr)
    space = _space(args.space)
    split = float(args.split) if args.split.replace(".", "", 1).isdigit() else args.split
    if args.optuna:
        result = optuna_search(bars, space, config=config, n_trials=args.optuna, split=split,
                               metric=args.metric, progress=_progress,
                               context=context.frames)
    else:
        grid = {k: (list(range(v[0], v[1] + 1)) if isinstance(v, tuple) else v)
                for k, v in space.items()}
        result = grid_search(bars, grid, config=config, split=split, metric=args.metric,
                             max_workers=args.workers, progress=_progress,
                             executor="inline" if args.workers == 1 else None,
                             context=context.frames)
    print(f"split at {result.split}; metric {result.metric}; selected on train:")
    print(f"  {result.best_params}  train {result.best_train_score:.4f}  "
          f"test {result.best_test_score:.4f}")
    with pd.option_context("display.width", 200, "display.max_columns", None):
        print(result.table.to_string(index=False))
    return 0


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("symbols", nargs="+", help="symbols, e.g. AAPL MSFT")
    parser.add_argument("--interval", default="1d", choices=INTERVALS)
    parser.add_argument("--start", default=None, help="first signal date (YYYY-MM-DD, UTC)")
    parser.add_argument("--end", default=None, help="last bar date (YYYY-MM-DD, UTC)")
    parser.add_argument("--param", action="append", metavar="NAME=VALUE",
                        help="override a StrategyParams field (repeatable)")
    parser.add_argument("--equity", type=float, default=100_000.0, help="initial equity")
    parser.add_argument("--max-positions", type=whole_number(1), default=10)
    parser.add_argument("--all-signals", action="store_true",
                        help="trade every signal, even while the symbol has a position open")
    parser.add_argument("--no-priors", action="store_true", help="skip pattern priors")
    parser.add_argument("--library", action="store_true",
                        help="priors also from the stored vector library (point in time)")
    parser.add_argument("--fill", default="close", choices=FILL_CONVENTIONS,
                        help="where market entries fill: the signal bar's close (default) or "
                             "the next bar's open")
    parser.add_argument("--workers", type=whole_number(1), default=None,
                        help="worker processes (1: run in this process)")
    from swing_core.cli import add_source_option

    add_source_option(parser)


def add_backtest_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``backtest``, ``backtest-runs``, ``backtest-show``, ``backtest-compare`` and
    ``backtest-search`` on the main CLI's subparsers (each sets ``func``)."""
    run = subparsers.add_parser("backtest", help="walk-forward portfolio backtest")
    _add_run_options(run)
    run.add_argument("--lookahead", action="store_true",
                     help="also run the look-ahead check (recompute on cut data)")
    run.add_argument("--no-save", action="store_true", help="do not save the run")
    run.add_argument("--no-cache", action="store_true",
                     help="recompute even when an identical run is saved")
    run.add_argument("--name", default=None, help="a label for the saved run")
    run.add_argument("--json", action="store_true", help="print the statistics as JSON")
    run.set_defaults(func=cmd_backtest)

    runs = subparsers.add_parser("backtest-runs", help="list saved backtest runs")
    runs.add_argument("--limit", type=whole_number(1), default=50)
    runs.set_defaults(func=cmd_runs)

    show = subparsers.add_parser("backtest-show", help="print a saved run")
    show.add_argument("run", help="run hash (or its first characters) or run id")
    show.add_argument("--trades", action="store_true", help="also print the trades")
    show.set_defaults(func=cmd_show)

    compare = subparsers.add_parser("backtest-compare", help="saved runs side by side")
    compare.add_argument("runs", nargs="+", help="run hashes or ids")
    compare.set_defaults(func=cmd_compare)

    search = subparsers.add_parser("backtest-search",
                                   help="parameter search scored on a held-out later period")
    _add_run_options(search)
    search.add_argument("--space", action="append", metavar="NAME=V1,V2|LOW:HIGH",
                        help="a searched parameter (repeatable)")
    search.add_argument("--optuna", type=whole_number(0), default=0, metavar="TRIALS",
                        help="Optuna trials instead of the full grid")
    search.add_argument("--split", default="0.7",
                        help="train/test split: a fraction of the range or a date")
    search.add_argument("--metric", default="SQN", help="statistic to maximize")
    search.set_defaults(func=cmd_search, no_save=True, no_cache=True)
