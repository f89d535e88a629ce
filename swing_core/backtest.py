"""Walk-forward backtests: every row of the signal frame is a signal, in one O(N) pass.

Pipeline (each stage vectorized; Python loops only over symbols, trades or search points):

1. per symbol (in a worker): the signal frame (row t uses bars <= t), every bar with a plan
   from ``config.start`` on is a signal; exits simulated by :func:`swing_core.exits.
   simulate_exits`; optionally only signals while no position of that symbol is open (an
   unfilled stop order occupies the symbol until its entry window ends);
2. pattern priors of each signal from outcomes known at its as-of time (signal bar close):
   earlier signals of the same run (every simulated plan with an exit, all symbols) and,
   optionally, the stored vector library, through the one pattern engine
   (``PatternIndex.query_many``; adapter: :mod:`swing_core.backtest_priors`), the predicted
   win rate calibrated point in time (:mod:`swing_core.calibration`);
3. the portfolio across symbols (:mod:`swing_core.portfolio`), statistics
   (:mod:`swing_core.metrics`);
4. storage: a run is identified by a hash of its inputs (symbols, dates, parameters, data
   fingerprints, ENGINE_VERSION); an identical run is served from storage.

Time alignment: ``signal_ts`` is the signal bar's open label; the plan is made at its close
(``asof = signal_ts + INTERVAL_DELTA``); ``exit_ts`` is the close time of the exit bar.

Companion modules: :mod:`swing_core.exits` (fills and exits), :mod:`swing_core.backtest_priors`
(priors through :mod:`swing_core.patterns`), :mod:`swing_core.portfolio`,
:mod:`swing_core.metrics`, :mod:`swing_core.backtest_lookahead` (the look-ahead check),
:mod:`swing_core.backtest_store` (saving / loading runs), :mod:`swing_core.backtest_search`
(parameter search), :mod:`swing_core.executor` (process pool / Dask).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from swing_core.backtest_lookahead import LookaheadReport, cut_fractions, lookahead_check
from swing_core.backtest_priors import PriorFn, attach_priors, no_priors
from swing_core.clock import warmup_lookback_days
from swing_core.config import (
    BARS_PER_DAY,
    ENGINE_VERSION,
    INTERVAL_DELTA,
    INTERVALS,
    StrategyParams,
)
from swing_core.errors import BacktestError, SwingError
from swing_core.exits import simulate_exits
from swing_core.features import VECTOR_VERSION
from swing_core.frame import VECTOR_COLUMNS, build_signal_frame, min_bars_required
from swing_core.metrics import breakdown, calibration_table, compute_stats
from swing_core.patterns import PatternIndex
from swing_core.perf.timers import timed_fn
from swing_core.portfolio import simulate_portfolio

__all__ = [
    "BacktestConfig",
    "BacktestResult",
    "LookaheadReport",
    "SymbolPass",
    "WalkForwardResult",
    "attach_priors",
    "data_fingerprint",
    "gather_bars",
    "list_runs",
    "load_run",
    "lookahead_check",
    "params_from_dict",
    "prepare_symbol",
    "run_backtest",
    "run_hash",
    "walk_forward",
]

ProgressFn = Callable[[int, int, str], None]

# Which prior implementation computed a run (part of its hash, so a stored run computed by
# another one is recomputed rather than served): the pattern engine since the kernels merged.
_PRIORS_ENGINE = "patterns.query_many/1"
_PLAN_COLUMNS = ("setup", "side", "trend", "vol_regime", "time_bucket", "entry", "stop",
                 "target", "r_multiple", "atr14", "confidence")


# --------------------------------------------------------------------------- configuration


def _utc(value: Any) -> pd.Timestamp | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise BacktestError(f"Cannot read the date {value!r}: use YYYY-MM-DD.") from exc
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def params_from_dict(values: Mapping[str, Any] | StrategyParams | None) -> StrategyParams:
    """StrategyParams from a dict (or as is), with a :class:`BacktestError` for bad values."""
    if isinstance(values, StrategyParams):
        return values
    try:
        return StrategyParams.from_dict(dict(values or {}))
    except (ValueError, TypeError) as exc:
        raise BacktestError(str(exc)) from exc


@dataclass(frozen=True)
class BacktestConfig:
    """Everything that defines a run besides the symbols and their data.

    ``start`` / ``end``: signals from the first bar labelled >= start to the last labelled
    <= end (UTC; a date means 00:00 UTC); bars before start serve as indicator warm-up
    (``warmup_bars``, default from the parameters). ``one_position_per_symbol``: a new signal
    of a symbol only once its previous trade is closed. ``priors``: pattern priors from
    earlier outcomes of the run; ``use_library``: also from the stored vector library.
    """

    interval: str = "1d"
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    params: StrategyParams = field(default_factory=StrategyParams)
    initial_equity: float = 100_000.0
    max_positions: int = 10
    one_position_per_symbol: bool = True
    priors: bool = True
    use_library: bool = False
    risk_free_rate: float = 0.0
    warmup_bars: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _utc(self.start))
        object.__setattr__(self, "end", _utc(self.end))
        object.__setattr__(self, "params", params_from_dict(self.params))

    @property
    def warmup(self) -> int:
        """Bars kept before ``start`` for the indicators (EMA memory, volatility regime)."""
        if self.warmup_bars is not None:
            return self.warmup_bars
        p = self.params
        return max(200, 2 * (p.bb_period + p.vol_regime_window), 3 * min_bars_required(p))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["start"] = self.start.isoformat() if self.start is not None else None
        out["end"] = self.end.isoformat() if self.end is not None else None
        out["params"] = self.params.to_dict()
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> BacktestConfig:
        return cls(**dict(values))


def validate_config(config: BacktestConfig) -> None:
    """Raise :class:`BacktestError` naming every absurd setting (nothing is silently fixed)."""
    p = config.params
    problems = []
    if config.interval not in INTERVALS:
        problems.append(f"unknown interval {config.interval!r} (choose {', '.join(INTERVALS)})")
    if config.start is not None and config.end is not None and config.start >= config.end:
        problems.append(f"empty date range: start {config.start.date()} is not before end "
                        f"{config.end.date()}")
    if not config.initial_equity > 0:
        problems.append(f"initial equity must be positive (got {config.initial_equity})")
    if config.max_positions < 1:
        problems.append(f"max_positions must be at least 1 (got {config.max_positions})")
    if p.max_open_risk < p.risk_per_trade:
        problems.append(f"max_open_risk ({p.max_open_risk}) is below risk_per_trade "
                        f"({p.risk_per_trade}): no position could ever open")
    for name in ("gp_stop_atr", "mr_stop_atr"):
        if getattr(p, name) < 0:
            problems.append(f"{name} = {getattr(p, name)} puts the stop on the wrong side of "
                            "the entry (it must be >= 0)")
    if p.momentum_stop_atr <= 0:
        problems.append(f"momentum_stop_atr = {p.momentum_stop_atr} puts the stop on the wrong "
                        "side of the entry, or on it (it must be > 0)")
    for name in ("momentum_target_atr", "mr_target_atr"):
        if getattr(p, name) <= 0:
            problems.append(f"{name} = {getattr(p, name)} puts the target on the wrong side of "
                            "the entry, or on it (it must be > 0)")
    if p.extension <= 1:
        problems.append(f"extension = {p.extension} must be above 1 (targets beyond the swing)")
    if p.entry_window_days < 0:
        problems.append(f"entry_window_days must be >= 0 (got {p.entry_window_days})")
    if p.min_risk_atr < 0:
        problems.append(f"min_risk_atr must be >= 0 (got {p.min_risk_atr})")
    if problems:
        raise BacktestError("Cannot run this backtest: " + "; ".join(problems) + ".")


# --------------------------------------------------------------------------- one symbol


@dataclass(frozen=True)
class SymbolPass:
    """One symbol's walk-forward before priors and portfolio (picklable, built in a worker).

    ``signals``: one row per plan from ``start`` on (see :func:`prepare_symbol`); ``close``:
    closes of the bars used (warm-up included; ``fill_pos`` / ``exit_pos`` index them);
    ``frame``: the signal frame when kept (``keep_frame=True``), else None.
    """

    symbol: str
    signals: pd.DataFrame
    close: pd.Series
    buy_hold_return_pct: float
    n_bars: int
    n_invalid_plans: int
    frame: pd.DataFrame | None = None


def trim_bars(bars: pd.DataFrame, *, symbol: str, config: BacktestConfig) -> pd.DataFrame:
    """The bars a run uses: up to ``end``, from ``warmup`` bars before ``start``.

    Raises :class:`BacktestError` when the range holds no bar or too few bars exist."""
    if bars is None or len(bars) == 0:
        raise BacktestError(f"{symbol}: no bars at all; check the symbol or the data source.")
    index = bars.index
    if config.end is not None:
        bars = bars[index <= config.end]
    first = 0
    if config.start is not None:
        first = int(np.searchsorted(bars.index, config.start))
        bars = bars.iloc[max(0, first - config.warmup):]
        first = int(np.searchsorted(bars.index, config.start))
    in_range = len(bars) - first
    if in_range <= 0:
        span = f"{config.start.date() if config.start is not None else '…'} – " \
               f"{config.end.date() if config.end is not None else '…'}"
        raise BacktestError(f"{symbol}: no {config.interval} bars in {span}; the data covers "
                            f"{index[0].date()} – {index[-1].date()}. Pick dates inside it.")
    needed = min_bars_required(config.params) + 2
    if len(bars) < needed:
        raise BacktestError(
            f"{symbol}: only {len(bars)} {config.interval} bars up to the end date, at least "
            f"{needed} are needed for the indicators. Use a longer range or a finer interval."
        )
    return bars


def _one_position_chain(signal_pos: np.ndarray, busy_until: np.ndarray) -> np.ndarray:
    """Greedy: take a signal, skip every later one before the previous trade frees the symbol.

    One Python step per *taken* signal (``searchsorted`` jumps over the skipped ones)."""
    taken = np.zeros(signal_pos.size, bool)
    i = 0
    while i < signal_pos.size:
        taken[i] = True
        i = max(int(np.searchsorted(signal_pos, busy_until[i], side="left")), i + 1)
    return taken


def prepare_symbol(bars: pd.DataFrame, *, symbol: str, config: BacktestConfig,
                   frame: pd.DataFrame | None = None, keep_frame: bool = False) -> SymbolPass:
    """Signal frame, plans and exits of one symbol (stage 1; no priors, no sizing).

    ``bars`` must already be trimmed (:func:`trim_bars`); ``frame`` may be passed to reuse a
    signal frame built from exactly these bars. Signal rows: every bar labelled >= start whose
    plan is complete (setup, side, finite entry/stop/target on the right sides).
    """
    params, interval = config.params, config.interval
    if frame is None:
        frame = build_signal_frame(bars, params=params, interval=interval)
    index = frame.index
    range_start = int(np.searchsorted(index, config.start)) if config.start is not None else 0
    first = max(range_start, min_bars_required(params) - 1)  # indicators behind a plan defined
    side_sign = np.select([frame["side"].to_numpy() == "long",
                           frame["side"].to_numpy() == "short"], [1, -1], 0).astype(np.int8)
    entry, stop, target = (frame[c].to_numpy(float) for c in ("entry", "stop", "target"))
    with np.errstate(invalid="ignore"):
        has_plan = (frame["setup"].to_numpy() != "none") & (side_sign != 0)
        sane = (np.isfinite(entry) & np.isfinite(stop) & np.isfinite(target)
                & ((entry - stop) * side_sign > 0) & ((target - entry) * side_sign > 0))
    in_range = np.arange(len(frame)) >= first
    n_invalid = int((has_plan & ~sane & in_range).sum())
    pos = np.flatnonzero(has_plan & sane & in_range)
    exits = simulate_exits(bars, pos, side_sign[pos], entry[pos], stop[pos], target[pos],
                           interval=interval, params=params)
    window = BARS_PER_DAY[interval] * params.entry_window_days
    never = np.iinfo(np.int64).max  # still pending: the symbol stays busy
    busy = np.where(exits.exit_pos >= 0, exits.exit_pos,
                    np.where(exits.exit_reason == "NOT_FILLED", pos + window, never))
    taken = (_one_position_chain(pos, busy) if config.one_position_per_symbol
             else np.ones(pos.size, bool))
    delta = INTERVAL_DELTA[interval]
    signal_ts = index[pos]
    rows = frame.iloc[pos]
    fill_ts = pd.DatetimeIndex(exits.fill_ts).tz_localize("UTC")
    signals = pd.DataFrame({
        "symbol": symbol,
        "signal_ts": signal_ts,
        "asof": signal_ts + delta,
        "signal_pos": pos,
        **{col: rows[col].to_numpy() for col in _PLAN_COLUMNS},
        "side_sign": side_sign[pos],
        "filled": exits.filled,
        "stop_entry": exits.stop_entry,
        "fill_pos": exits.fill_pos,
        "fill_ts": fill_ts,
        # the moment of entry: a market entry at the signal bar's close, a stop entry during
        # its fill bar (its open label: the conservative end for the portfolio's capacity)
        "entry_time": fill_ts.where(exits.stop_entry, fill_ts + delta),
        "fill_price": exits.fill_price,
        "exit_pos": exits.exit_pos,
        "exit_ts": pd.DatetimeIndex(exits.exit_ts).tz_localize("UTC"),
        "exit_price": exits.exit_price,
        "exit_reason": exits.exit_reason.astype(object),
        "realized_r": exits.realized_r,
        "hold_bars": exits.hold_bars,
        "both_touched": exits.both_touched,
        "taken": taken,
        **{col: rows[col].to_numpy(np.float32) for col in VECTOR_COLUMNS},
    })
    signals = signals.rename(columns={"atr14": "atr", "confidence": "base_confidence"})
    close = frame["close"].astype(float)
    in_close = close.iloc[range_start:]
    bh = (float(in_close.iloc[-1] / in_close.iloc[0] - 1.0) * 100 if len(in_close) else math.nan)
    return SymbolPass(symbol=symbol, signals=signals, close=close, buy_hold_return_pct=bh,
                      n_bars=len(in_close), n_invalid_plans=n_invalid,
                      frame=frame if keep_frame else None)


def _symbol_task(payload: tuple[str, pd.DataFrame, BacktestConfig]) -> SymbolPass:
    """Worker entry point (top level: picklable for process pools and Dask)."""
    symbol, bars, config = payload
    return prepare_symbol(bars, symbol=symbol, config=config)


@dataclass(frozen=True)
class WalkForwardResult:
    """One symbol's walk-forward: ``signals`` (every plan, with ``taken`` and, for taken ones,
    priors) and ``trades`` (the taken signals), plus the pass's bookkeeping."""

    signals: pd.DataFrame
    trades: pd.DataFrame
    symbol_pass: SymbolPass


def walk_forward(bars: pd.DataFrame, *, symbol: str, config: BacktestConfig | None = None,
                 prior_fn: PriorFn | None = None, library: PatternIndex | None = None,
                 frame: pd.DataFrame | None = None) -> WalkForwardResult:
    """Walk-forward of one symbol over its whole signal frame in one pass (no portfolio).

    Row t of the signal frame uses bars <= t; its plan's exit uses bars after t; its prior uses
    outcomes known by t's close only. ``library``: stored outcomes (a PatternIndex) searched
    with the run's own; ``prior_fn``: see :mod:`swing_core.backtest_priors`. ``frame``: a
    signal frame of the trimmed bars to reuse."""
    config = config or BacktestConfig()
    validate_config(config)
    bars = trim_bars(bars, symbol=symbol, config=config)
    sp = prepare_symbol(bars, symbol=symbol, config=config, frame=frame)
    signals = (attach_priors(sp.signals, params=config.params, prior_fn=prior_fn, library=library)
               if config.priors else no_priors(sp.signals))
    return WalkForwardResult(signals=signals, trades=signals[signals["taken"]].copy(),
                             symbol_pass=sp)


# --------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class BacktestResult:
    """A finished (or reloaded) run.

    ``stats``: flat Series (backtesting.py names + ours); ``trades``: every taken signal
    (NOT_FILLED and PENDING included, ``qty`` 0 when the portfolio skipped it) with setup,
    trend, vol_regime, predicted win rate and expected R at entry; ``equity``: DataFrame
    (Equity, DrawdownPct, Exposed) over bar labels; ``breakdowns``: by setup / trend /
    vol_regime / exit_reason; ``calibration``: reliability bins; ``errors``: symbols that could
    not run and why."""

    run_hash: str
    config: BacktestConfig
    symbols: tuple[str, ...]
    stats: pd.Series
    trades: pd.DataFrame
    equity: pd.DataFrame
    breakdowns: dict[str, pd.DataFrame]
    calibration: pd.DataFrame
    errors: dict[str, str] = field(default_factory=dict)
    lookahead: LookaheadReport | None = None
    from_storage: bool = False
    run_id: int | None = None
    data_fingerprints: dict[str, str] = field(default_factory=dict)
    data_sources: dict[str, str] = field(default_factory=dict)
    library_rows_stored: int = 0

    @property
    def is_demo(self) -> bool:
        """True when any symbol ran on synthetic demo bars (its figures say nothing of the
        market)."""
        return "demo" in self.data_sources.values()

    @property
    def closed_trades(self) -> pd.DataFrame:
        """Trades the portfolio took that have an outcome (what the trade statistics use)."""
        t = self.trades
        return t[(t["qty"] > 0) & t["exit_reason"].isin(["STOP", "TARGET", "TIME"])]


def data_fingerprint(bars: pd.DataFrame) -> str:
    """Short hash of the bars' timestamps and OHLCV values (identifies the data of a run)."""
    digest = hashlib.sha256()
    digest.update(np.asarray(bars.index.asi8 if isinstance(bars.index, pd.DatetimeIndex)
                             else np.arange(len(bars)), dtype=np.int64).tobytes())
    cols = [c for c in ("open", "high", "low", "close", "volume") if c in bars]
    digest.update(np.ascontiguousarray(bars[cols].to_numpy(np.float64)).tobytes())
    return digest.hexdigest()[:20]


def run_hash(symbols: Sequence[str], config: BacktestConfig, fingerprints: Mapping[str, str],
             *, extra: Mapping[str, Any] | None = None) -> str:
    """Hash identifying a run's inputs: symbols, dates, parameters, data, ENGINE_VERSION."""
    payload = {"symbols": sorted(symbols), "config": config.to_dict(),
               "data": dict(sorted(fingerprints.items())), "engine": ENGINE_VERSION,
               "extra": dict(extra or {})}
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _core(passes: list[SymbolPass], config: BacktestConfig, *, prior_fn: PriorFn | None,
          library: PatternIndex | None) -> dict[str, Any]:
    """Stages 2–3 on the symbols' passes: priors, portfolio, statistics."""
    signals = pd.concat([p.signals for p in passes], ignore_index=True)
    bh = [p.buy_hold_return_pct for p in passes if np.isfinite(p.buy_hold_return_pct)]
    return _core_signals(signals, {p.symbol: p.close for p in passes}, config,
                         prior_fn=prior_fn, library=library,
                         buy_hold_return_pct=float(np.mean(bh)) if bh else math.nan,
                         n_invalid_plans=sum(p.n_invalid_plans for p in passes))


def _core_signals(signals: pd.DataFrame, closes: Mapping[str, pd.Series],
                  config: BacktestConfig, *, prior_fn: PriorFn | None,
                  library: PatternIndex | None, buy_hold_return_pct: float,
                  n_invalid_plans: int) -> dict[str, Any]:
    """:func:`_core` on the symbols' signals already concatenated (symbol by symbol, each in
    time order) and their closes (chunked universe runs feed it from compact storage)."""
    signals = (attach_priors(signals, params=config.params, prior_fn=prior_fn, library=library)
               if config.priors else no_priors(signals))
    taken_mask = signals["taken"].to_numpy(bool)
    out = _core_taken(signals[taken_mask].reset_index(drop=True), closes, config,
                      buy_hold_return_pct=buy_hold_return_pct, n_invalid_plans=n_invalid_plans,
                      n_signals=len(signals), n_skipped=int((~taken_mask).sum()))
    return {"signals": signals, **out}


#: Columns the portfolio simulation reads (it gets only these: no copies of the rest).
_PORTFOLIO_COLUMNS = ("symbol", "entry_time", "exit_ts", "fill_pos", "exit_pos", "fill_price",
                      "exit_price", "stop", "atr", "side_sign", "confidence", "stop_entry")
#: Columns the statistics, breakdowns and calibration read from the closed trades.
_STATS_COLUMNS = ("symbol", "setup", "trend", "vol_regime", "exit_reason", "entry_time",
                  "exit_ts", "realized_r", "both_touched", "prior_win_rate", "fees", "pnl",
                  "return_pct")


def _subset(frame: pd.DataFrame, rows: np.ndarray | None, columns: Sequence[str]
            ) -> pd.DataFrame:
    """``frame.loc[rows, columns]`` (the columns it has) built column by column: a frame of
    many unconsolidated columns is never copied whole."""
    return pd.DataFrame({c: frame[c] if rows is None else frame[c][rows] for c in columns
                         if c in frame.columns},
                        index=frame.index if rows is None else frame.index[rows])


def _core_taken(taken: pd.DataFrame, closes: Mapping[str, pd.Series], config: BacktestConfig,
                *, buy_hold_return_pct: float, n_invalid_plans: int, n_signals: int,
                n_skipped: int) -> dict[str, Any]:
    """Portfolio and statistics of the taken signals (priors attached, index 0..n-1, in the
    signals' order); ``taken`` gets the portfolio's columns in place and becomes the trades.
    ``n_signals`` / ``n_skipped``: every signal of the run / those skipped for an open
    position (the only figures of the untaken signals the statistics need)."""
    filled = taken["filled"].to_numpy(bool)
    candidates = _subset(taken, filled, _PORTFOLIO_COLUMNS)
    closes = dict(closes)
    start = config.start if config.start is not None else min(
        close.index[0] for close in closes.values())
    port = simulate_portfolio(candidates, closes, params=config.params,
                              initial_equity=config.initial_equity,
                              max_positions=config.max_positions, start=start)
    extra_cols = [c for c in port.trades.columns if c not in taken.columns]
    extra = port.trades.set_index(candidates.index)[extra_cols]
    equity, exposure = port.equity, port.exposure
    del port, candidates
    trades = taken
    for col in extra_cols:  # in place: no copy of the (possibly large) taken frame
        trades[col] = extra[col].reindex(taken.index).to_numpy()
    del extra
    trades["qty"] = trades["qty"].fillna(0.0)
    trades["portfolio_status"] = trades["portfolio_status"].fillna("not_filled")
    peak = np.maximum.accumulate(equity.to_numpy()) if len(equity) else np.empty(0)
    equity_frame = pd.DataFrame({"Equity": equity, "DrawdownPct": 1 - equity / peak,
                                 "Exposed": exposure})
    is_closed = ((trades["qty"] > 0) & trades["exit_reason"].isin(["STOP", "TARGET", "TIME"])
                 ).to_numpy(bool)
    closed = _subset(trades, is_closed, _STATS_COLUMNS)
    stats = compute_stats(closed, equity, exposure=exposure,
                          buy_hold_return_pct=buy_hold_return_pct,
                          signals=_subset(trades, None, ("exit_reason", "portfolio_status",
                                                         "taken")),
                          risk_free_rate=config.risk_free_rate,
                          resolution="D" if config.interval == "1d" else "min",
                          initial_equity=config.initial_equity)
    stats["# Signals"] = n_signals
    stats["# Skipped (Open Position)"] = n_skipped
    stats["# Invalid Plans"] = n_invalid_plans
    stats["# Symbols"] = len(closes)
    wins = (closed["realized_r"] > 0).to_numpy(float)
    return {
        "trades": trades,
        "equity": equity_frame,
        "stats": stats,
        "breakdowns": {by: breakdown(closed, by)
                       for by in ("setup", "trend", "vol_regime", "exit_reason", "symbol")},
        "calibration": calibration_table(closed["prior_win_rate"].to_numpy(float), wins),
    }


def _progress_noop(done: int, total: int, message: str) -> None:
    return None


def gather_bars(symbols: Sequence[str], config: BacktestConfig, *,
                bars: Mapping[str, pd.DataFrame] | None = None, engine: Any = None,
                offline: bool | None = None, source: str | None = None
                ) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """The bars a run of ``config`` uses per symbol, and per-symbol error messages.

    Given ``bars``, or fetched through the market layer from ``source`` ("auto", "yahoo",
    "local", "demo"): enough history for ``config.start`` plus the warm-up bars; a still-forming
    last bar is dropped (its close is not known); then :func:`trim_bars`."""
    errors: dict[str, str] = {}
    if bars is not None:
        found = {s: bars[s] for s in symbols if s in bars}
        errors.update({s: f"{s}: no bars were given for this symbol." for s in symbols
                       if s not in bars})
    else:
        found = {}
        from swing_core import market  # lazy: the market layer pulls in network clients

        lookback = None
        if config.start is not None:
            lookback = warmup_lookback_days(config.start, warmup_bars=config.warmup,
                                            bars_per_day=BARS_PER_DAY[config.interval])
        fetched = market.fetch_many(list(symbols), config.interval, lookback_days=lookback,
                                    engine=engine, offline=offline, source=source)
        for s in symbols:
            value = fetched.get(s, fetched.get(_normalized(s)))
            if isinstance(value, pd.DataFrame):
                if value.attrs.get("last_bar_complete") is False:
                    value = value.iloc[:-1]  # still forming: its close is not known yet
                found[s] = value
            else:
                errors[s] = str(value) if value is not None else f"{s}: no data."
    ready: dict[str, pd.DataFrame] = {}
    for s, frame in found.items():
        try:
            ready[s] = trim_bars(frame, symbol=s, config=config)
        except SwingError as exc:
            errors[s] = str(exc)
    return ready, errors


def _normalized(symbol: str) -> str:
    from swing_core import market

    try:
        return market.normalize_symbol(symbol)
    except SwingError:
        return symbol


def _run_passes(bars: Mapping[str, pd.DataFrame], config: BacktestConfig, *,
                executor: Any, max_workers: int | None, progress: ProgressFn,
                engine: Any = None) -> tuple[list[SymbolPass], dict[str, str]]:
    from swing_core.executor import map_tasks

    symbols = list(bars)
    payloads = [(s, bars[s], config) for s in symbols]
    inline = executor is None and (len(symbols) == 1 or max_workers == 1)
    outcomes = map_tasks(_symbol_task, payloads, executor="inline" if inline else executor,
                         max_workers=max_workers, progress=progress,
                         labels=symbols, record_to=None if engine is None
                         else engine.url.render_as_string(hide_password=False))
    passes, errors = [], {}
    for symbol, outcome in zip(symbols, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            if not isinstance(outcome, SwingError):
                raise outcome
            errors[symbol] = str(outcome)
        else:
            passes.append(outcome)
    return passes, errors


def _library_for(config: BacktestConfig, engine: Any) -> tuple[PatternIndex | None, str]:
    """The stored vector library of the run's interval (searched point in time per signal)
    and its fingerprint ("" when not used)."""
    if not config.use_library or engine is None:
        return None, ""
    library = PatternIndex.from_db(engine, interval=config.interval)
    if len(library) == 0:
        return None, "empty"
    return library, library.fingerprint()


@timed_fn("backtest")
def run_backtest(
    symbols: Sequence[str],
    *,
    config: BacktestConfig | None = None,
    bars: Mapping[str, pd.DataFrame] | None = None,
    engine: Any = None,
    save: bool = True,
    reuse: bool = True,
    executor: Any = None,
    max_workers: int | None = None,
    progress: ProgressFn | None = None,
    prior_fn: PriorFn | None = None,
    lookahead: bool | Sequence[float] = False,
    name: str | None = None,
    offline: bool | None = None,
    source: str | None = None,
) -> BacktestResult:
    """Walk-forward backtest of ``symbols`` as one portfolio.

    ``bars``: bars per symbol (else fetched through ``swing_core.market`` with ``engine``'s bar
    cache). A symbol that cannot run (unknown, empty range, too few bars) is reported in
    ``errors`` and the others still run; :class:`BacktestError` when none can. ``engine``:
    SQLAlchemy engine for storage; with ``reuse`` an identical run (same hash) is loaded
    instead of recomputed; with ``save`` the run is stored. ``executor``: None (process pool
    or ``SWING_DASK_ADDRESS``), "inline", or any concurrent.futures Executor. ``progress``:
    called as ``progress(done, total, message)``. ``lookahead``: True or cut fractions to run
    :func:`lookahead_check` and report it with the run. ``offline`` and ``source`` ("auto",
    "yahoo", "local", "demo"): where fetched bars come from (see :func:`gather_bars`).
    """
    config = config or BacktestConfig()
    validate_config(config)
    progress = progress or _progress_noop
    names = list(dict.fromkeys(s.strip().upper() for s in symbols if s and s.strip()))
    if not names:
        raise BacktestError("No symbols given: name at least one, e.g. AAPL.")
    if bars is not None:
        bars = {k.strip().upper(): v for k, v in bars.items()}
    ready, errors = gather_bars(names, config, bars=bars, engine=engine, offline=offline,
                                source=source)
    if not ready:
        raise BacktestError("No symbol could run: " + " | ".join(errors.values()))
    library, library_fp = _library_for(config, engine)
    fingerprints = {s: data_fingerprint(b) for s, b in ready.items()}
    cuts = cut_fractions(lookahead)
    digest = run_hash(list(ready), config, fingerprints,
                      extra={"library": library_fp, "lookahead": list(cuts),
                             "priors": _PRIORS_ENGINE})
    if engine is not None and reuse:
        stored = load_run(engine, digest)
        if stored is not None:
            progress(1, 1, "served from storage")
            return replace(stored, errors={**errors, **stored.errors})
    passes, pass_errors = _run_passes(ready, config, executor=executor,
                                      max_workers=max_workers, progress=progress,
                                      engine=engine)
    errors.update(pass_errors)
    if not passes:
        raise BacktestError("No symbol could run: " + " | ".join(errors.values()))
    core = _core(passes, config, prior_fn=prior_fn, library=library)
    report = None
    if cuts:
        report = lookahead_check({p.symbol: ready[p.symbol] for p in passes}, config=config,
                                 cuts=cuts, prior_fn=prior_fn, library=library, full=core)
        core["stats"]["Look-ahead Check"] = "passed" if report.ok else "FAILED"
    sources = {p.symbol: str(ready[p.symbol].attrs.get("source", "given")) for p in passes}
    core["stats"]["Data Sources"] = ", ".join(sorted(set(sources.values())))
    result = BacktestResult(
        run_hash=digest, config=config, symbols=tuple(p.symbol for p in passes),
        stats=core["stats"], trades=core["trades"], equity=core["equity"],
        breakdowns=core["breakdowns"], calibration=core["calibration"], errors=errors,
        lookahead=report, data_fingerprints=fingerprints, data_sources=sources,
    )
    if engine is not None and save:
        from swing_core.backtest_store import save_result

        stored = store_outcome_vectors(engine, core["signals"], config=config, sources=sources)
        result = replace(result, run_id=save_result(engine, result, name=name),
                         library_rows_stored=stored)
    return result


def store_outcome_vectors(engine: Any, signals: pd.DataFrame, *, config: BacktestConfig,
                          sources: Mapping[str, str]) -> int:
    """Add the run's exited setups (vector + realized outcome) to the stored pattern library.

    Only setups computed with the default :class:`StrategyParams` (the library must describe
    the setups live signals are made of) and never those of demo bars (synthetic outcomes must
    not price real signals). Upserts are idempotent: a re-run rewrites the same rows. Returns
    the rows written.
    """
    from swing_core import db

    if config.params != StrategyParams() or signals.empty:
        return 0
    real = [symbol for symbol, source in sources.items() if source != "demo"]
    exited = signals[signals["symbol"].isin(real)
                     & signals["exit_reason"].isin(["STOP", "TARGET", "TIME"])]
    if exited.empty:
        return 0
    rows = exited[["symbol", "setup", "side", "trend", "vol_regime", "realized_r",
                   "exit_reason", "exit_ts", "hold_bars", *VECTOR_COLUMNS]].assign(
        interval=config.interval, ts=exited["signal_ts"], version=VECTOR_VERSION)
    return db.upsert_vectors(engine, rows)


# --------------------------------------------------------------------------- storage


def load_run(engine: Any, run_hash_value: str) -> BacktestResult | None:
    """A stored run by hash (None when absent)."""
    from swing_core.backtest_store import load_result

    return load_result(engine, run_hash_value)


def list_runs(engine: Any, *, limit: int | None = 200) -> pd.DataFrame:
    """Stored runs, newest first, with their headline statistics as columns."""
    from swing_core.backtest_store import list_results

    return list_results(engine, limit=limit)
