"""Saving, reloading, listing and comparing backtest runs through ``swing_core.db``.

A run row holds the configuration (``params_json``, ``settings_json``), the statistics,
breakdowns, calibration bins and equity curve (``metrics_json``), the look-ahead report
(``lookahead_json``); its trades go to ``backtest_trades``. Statistics' timestamps are stored
as ISO text (UTC) and durations as pandas Timedelta text, both restored on load; the equity
curve as epoch milliseconds (UTC bar labels), equity values and 0/1 exposure.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from swing_core import db
from swing_core.backtest.config import BacktestConfig
from swing_core.backtest.lookahead import LookaheadReport
from swing_core.backtest.result import BacktestResult
from swing_core.config import ENGINE_VERSION

__all__ = [
    "HEADLINE",
    "compare_runs",
    "json_value",
    "list_runs",
    "load_run",
    "progress_marker",
    "progress_row",
    "save_run",
    "trades_for_storage",
]

_TIME_KEYS = ("Start", "End")
_DURATION_KEYS = ("Duration", "Max. Drawdown Duration", "Avg. Drawdown Duration",
                  "Max. Trade Duration", "Avg. Trade Duration")
HEADLINE = ("Return [%]", "Sharpe Ratio", "Max. Drawdown [%]", "# Trades", "Win Rate [%]",
            "Avg. R", "Profit Factor", "SQN", "Brier Score")
_MAX_EQUITY_POINTS = 10_000
_TRADE_MAP = {"fill_ts": "entry_ts", "fill_price": "entry_price",
              "prior_win_rate": "predicted_winrate", "prior_win_rate_raw": "predicted_winrate_raw"}


def json_value(value: Any) -> Any:
    """A JSON-ready scalar (NaN/NaT -> None, numpy -> Python, times -> text)."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, pd.Timedelta):
        return str(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _frame_json(frame: pd.DataFrame) -> dict[str, list[Any]]:
    flat = frame.reset_index()
    return {str(c): [json_value(v) for v in flat[c].tolist()] for c in flat.columns}


def _equity_json(equity: pd.DataFrame) -> dict[str, list[Any]]:
    if len(equity) > _MAX_EQUITY_POINTS:  # keep the shape for charts: every k-th and the last
        step = math.ceil(len(equity) / _MAX_EQUITY_POINTS)
        keep = np.unique(np.r_[np.arange(0, len(equity), step), len(equity) - 1])
        equity = equity.iloc[keep]
    values = equity["Equity"].to_numpy(float)
    return {"ts_ms": (equity.index.asi8 // 1_000_000).tolist(),
            "equity": np.where(np.isfinite(values), values, 0.0).tolist(),
            "exposed": equity["Exposed"].to_numpy(bool).astype(int).tolist()}


def trades_for_storage(trades: pd.DataFrame) -> pd.DataFrame:
    """Trades (a result's, or a chunk's taken signals) as ``backtest_trades`` rows: stored
    column names, no hold length for trades without an exit."""
    out = trades.rename(columns=_TRADE_MAP)
    out["hold_bars"] = out["hold_bars"].where(out["hold_bars"] >= 0)
    return out


def save_run(engine: Any, result: BacktestResult, *, name: str | None = None,
             trade_batch: int | None = None,
             trades: Iterable[pd.DataFrame] | None = None) -> int:
    """Store a :class:`~swing_core.backtest.BacktestResult`; returns the run id.

    ``trade_batch``: convert and write the trades that many rows at a time (same transaction;
    bounded memory for runs with hundreds of thousands of trades). ``trades``: the rows to
    store instead of ``result.trades``, already ``backtest_trades`` rows
    (:func:`trades_for_storage`), frame by frame (e.g. generated from a universe run's spill
    files: never all in memory)."""
    config = result.config
    settings = config.to_dict()
    params = settings.pop("params")
    metrics = {
        "stats": {str(k): json_value(v) for k, v in result.stats.items()},
        "breakdowns": {k: _frame_json(v) for k, v in result.breakdowns.items()},
        "calibration": _frame_json(result.calibration.set_index("bin_low")),
        "equity": _equity_json(result.equity),
        "errors": dict(result.errors),
        "fingerprints": dict(result.data_fingerprints),
        "notes": {symbol: list(notes) for symbol, notes in result.notes.items()},
    }
    run = {
        "run_hash": result.run_hash,
        "name": name,
        "symbols": list(result.symbols),
        "interval": config.interval,
        "start": config.start,
        "end": config.end,
        "params": json.dumps(params, default=str),
        "settings": json.dumps(settings, default=str),
        "metrics": json.dumps(metrics),
        "engine_version": ENGINE_VERSION,
        "data_fingerprint": ",".join(f"{s}:{fp}" for s, fp in
                                     sorted(result.data_fingerprints.items())),
        "lookahead": json.dumps(result.lookahead.to_dict()) if result.lookahead else None,
        "status": "done",
    }
    if trades is not None:
        return db.save_backtest_run(engine, run, trades)
    trades = result.trades
    if trade_batch:
        # each slice built column by column: slicing the frame itself may consolidate (copy)
        # all of a frame of many separately added columns at once
        parts = (trades_for_storage(pd.DataFrame(
                     {c: trades[c].iloc[i:i + trade_batch] for c in trades.columns}))
                 for i in range(0, len(trades), trade_batch))
        return db.save_backtest_run(engine, run, parts)
    return db.save_backtest_run(engine, run, trades_for_storage(trades))


def _stats_from_json(values: dict[str, Any]) -> pd.Series:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            out[key] = pd.NaT if key in _TIME_KEYS + _DURATION_KEYS else float("nan")
        elif key in _TIME_KEYS:
            out[key] = pd.Timestamp(value)
        elif key in _DURATION_KEYS:
            out[key] = pd.Timedelta(value)
        else:
            out[key] = value
    return pd.Series(out, dtype=object)


def _frame_from_json(values: dict[str, list[Any]], index: str | None) -> pd.DataFrame:
    frame = pd.DataFrame(values)
    return frame.set_index(index) if index and index in frame else frame


def load_run(engine: Any, run_hash: str) -> BacktestResult | None:
    """The stored run with this hash as a BacktestResult (``from_storage=True``), or None."""
    stored = db.load_backtest_run(engine, run_hash)
    if stored is None:
        return None
    run = stored.run
    settings = dict(run.get("settings") or {})
    settings["params"] = run.get("params") or {}
    config = BacktestConfig.from_dict(settings)
    metrics = run.get("metrics") or {}
    eq = metrics.get("equity") or {"ts_ms": [], "equity": [], "exposed": []}
    equity_index = pd.DatetimeIndex(pd.to_datetime(np.asarray(eq["ts_ms"], np.int64), unit="ms",
                                                   utc=True), name="ts")
    values = pd.Series(eq["equity"], index=equity_index, dtype=float)
    peak = values.cummax()
    equity = pd.DataFrame({"Equity": values, "DrawdownPct": 1 - values / peak,
                           "Exposed": pd.Series(eq["exposed"], index=equity_index, dtype=bool)})
    trades = stored.trades.rename(columns={v: k for k, v in _TRADE_MAP.items()})
    trades["qty"] = trades["qty"].fillna(0.0)
    look = run.get("lookahead")
    report = (LookaheadReport(ok=bool(look["ok"]), cuts=tuple(look["cuts"]),
                              compared=dict(look["compared"]),
                              mismatches=tuple(look["mismatches"])) if look else None)
    fingerprints = metrics.get("fingerprints") or {}
    return BacktestResult(
        run_hash=run_hash, config=config, symbols=tuple(run.get("symbols") or ()),
        stats=_stats_from_json(metrics.get("stats") or {}), trades=trades, equity=equity,
        breakdowns={k: _frame_from_json(v, k) for k, v in
                    (metrics.get("breakdowns") or {}).items()},
        calibration=_frame_from_json(metrics.get("calibration") or {}, None),
        errors=dict(metrics.get("errors") or {}), lookahead=report, from_storage=True,
        run_id=int(run["id"]) if run.get("id") is not None else None,
        data_fingerprints=dict(fingerprints),
        notes={symbol: tuple(notes) for symbol, notes in (metrics.get("notes") or {}).items()},
    )


def list_runs(engine: Any, *, limit: int | None = 200) -> pd.DataFrame:
    """Stored runs, newest first: id, run_hash, name, created_at, symbols, interval, start,
    end, status, ``n_trades`` (the run's ``# Trades``: its closed trades, see
    :func:`swing_core.metrics.closed_mask`; empty while a universe run is unfinished) and the
    headline statistics as columns."""
    runs = db.list_backtest_runs(engine, limit=limit)
    rows = []
    for metrics_text in runs.get("metrics_json", pd.Series(dtype=object)).tolist():
        stats = (json.loads(metrics_text) or {}).get("stats", {}) if metrics_text else {}
        rows.append({k: stats.get(k) for k in HEADLINE})
    headline = pd.DataFrame(rows, index=runs.index, columns=list(HEADLINE))
    keep = [c for c in ("id", "run_hash", "name", "created_at", "symbols", "interval", "start",
                        "end", "status", "engine_version") if c in runs]
    out = pd.concat([runs[keep], headline], axis=1)
    out.insert(out.columns.get_loc("end") + 1 if "end" in out else len(keep), "n_trades",
               pd.to_numeric(headline["# Trades"], errors="coerce").astype("Int64"))
    return out


def progress_marker(stored: Any) -> dict[str, Any]:
    """A chunked run's progress marker (``metrics_json["universe"]``: finished chunks,
    errors, fingerprints, sources) from its stored row (``db.load_backtest_run``; {} when
    None)."""
    metrics = (stored.run.get("metrics") or {}) if stored is not None else {}
    return dict(metrics.get("universe") or {})


def progress_row(digest: str, names: list[str], config: BacktestConfig,
                 marker: dict[str, Any], *, status: str, name: str | None) -> dict[str, Any]:
    """The run row of an unfinished chunked run (``db.save_backtest_chunk``): its inputs,
    ``status`` and progress ``marker`` (no statistics yet)."""
    settings = config.to_dict()
    params = settings.pop("params")
    return {"run_hash": digest, "name": name, "symbols": names, "interval": config.interval,
            "start": config.start, "end": config.end,
            "params": json.dumps(params, default=str), "settings": json.dumps(settings,
                                                                              default=str),
            "metrics": json.dumps({"universe": marker}), "engine_version": ENGINE_VERSION,
            "status": status}


def compare_runs(engine: Any, run_hashes: list[str]) -> pd.DataFrame:
    """Statistics of several stored runs side by side (one column per run hash)."""
    columns = {}
    for digest in run_hashes:
        result = load_run(engine, digest)
        if result is not None:
            columns[digest[:12]] = result.stats
    return pd.DataFrame(columns)
