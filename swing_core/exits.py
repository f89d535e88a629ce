"""Exit simulation: from entry plans (entry / stop / target) to fills, exits and realized R.

Vectorized: one ``(n_trades, window)`` matrix of bar positions per phase (entry window, then
hold window), first hits found with ``argmax``; no Python loop over bars.

Semantics (STRATEGY.md, "Exits"), for a plan produced by the close of bar ``s``:

Entry
    * **Market entry** when the entry is at or through the signal bar's close (long:
      ``entry <= close[s]``; short: ``entry >= close[s]``). Its fill follows the run's **fill
      convention** (``fill``):

      - ``"close"`` (the default; what every statistic uses unless a run says otherwise):
        filled at ``close[s]``, ``fill_pos = s``, the close at which the plan was made
        (backtesting.py's ``trade_on_close=True``);
      - ``"next_open"``: a market-on-open order, filled at ``open[s+1]``, ``fill_pos = s+1``
        (backtesting.py's default); PENDING while bar ``s+1`` does not exist yet.
    * **Stop-order entry** otherwise (long entry above the close, short entry below it), the
      same under both conventions: it
      must trade within the next ``BARS_PER_DAY[interval] * params.entry_window_days`` bars
      (``s+1 …``). A long fills on the first bar whose high reaches the entry, at
      ``max(open, entry)`` (a bar that gaps through the entry fills at its open); shorts
      mirror with the low and ``min(open, entry)``. Not traded in a complete window:
      ``NOT_FILLED``.

Exit
    The trade is followed for at most ``H = BARS_PER_DAY[interval] * params.max_hold_days``
    bars after the fill bar (``fill_pos+1 … fill_pos+H``). Long: the stop is hit when
    ``low <= stop``, the target when ``high >= target`` (shorts mirror).

    * A bar that **opens beyond** the stop (target) exits at its open, not at the level.
      The open comes first in time, so a bar opening beyond the target is a ``TARGET`` at the
      open even if it later touches the stop.
    * A bar that touches **both** levels without its open deciding the order counts as
      ``STOP`` at the stop price, and is flagged in ``both_touched``.
    * **Fill bar of a stop-order entry** (conservative convention): the part of that bar after
      the fill is unknown, so only the stop is checked on it, against the bar's full low
      (long) / high (short), exiting at the stop price; the target can only be hit from the
      next bar on. ``both_touched`` is flagged when that bar also reached the target.
      For a market entry filled at the signal bar's close the first bar followed is ``s+1``.
    * **Next-open fill** (``fill="next_open"``): the order fills at the open of bar ``s+1``,
      so all of that bar comes after the fill and it is followed like any later bar: a next
      open already at or beyond the stop (target) exits at that open (0 R before costs),
      else both levels are checked on it (both touched: ``STOP``). It is held to the close of
      bar ``s+H`` at most, the same time exit as a fill at the signal bar's close, so the two
      conventions differ only in the entry (its price and moment).
    * No hit in the ``H`` followed bars: ``TIME`` exit at the close of bar ``fill_pos+H``
      (``s+H`` for a next-open fill).
    * Not enough later bars yet to decide (entry window or hold window incomplete and no
      exit so far): ``PENDING``, no outcome.

``realized_r = (exit_price - fill_price) * side / |fill_price - stop|``, before costs (fees and
slippage are the portfolio's business). Time alignment: ``fill_ts`` is the open-time label of
the fill bar; ``exit_ts`` is the *close* time of the exit bar (label + ``INTERVAL_DELTA``), the
moment the outcome is known (``exit_ts <= as-of`` is the point-in-time rule of the contracts).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from swing_core.config import BARS_PER_DAY, INTERVAL_DELTA, StrategyParams, validate_interval
from swing_core.errors import BacktestError, ConfigError

__all__ = [
    "EXIT_REASONS",
    "FILL_CONVENTIONS",
    "ExitResults",
    "simulate_exits",
]

STOP, TARGET, TIME, NOT_FILLED, PENDING = "STOP", "TARGET", "TIME", "NOT_FILLED", "PENDING"
EXIT_REASONS: tuple[str, ...] = (STOP, TARGET, TIME, NOT_FILLED, PENDING)
_REASON_DTYPE = "<U10"
#: Where a market entry fills: at the signal bar's close, or at the next bar's open.
FILL_CONVENTIONS: tuple[str, ...] = ("close", "next_open")
#: Trades per matrix block: bounds memory at about 80 bars × 50,000 trades × 8 B per array.
_CHUNK = 50_000


@dataclass(frozen=True)
class ExitResults:
    """Outcome of each plan; every field is a numpy array with one entry per input plan.

    ``filled`` (bool), ``fill_pos`` (int, -1 when not filled), ``fill_price`` (NaN when not
    filled), ``exit_pos`` (int, -1 when not exited), ``exit_price`` (NaN when not exited),
    ``exit_reason`` (str: STOP, TARGET, TIME, NOT_FILLED, PENDING), ``realized_r`` (NaN unless
    exited), ``hold_bars`` (``exit_pos - fill_pos``, 0 for a stop on the fill bar, -1 when not
    exited), ``both_touched`` (bool), ``stop_entry`` (bool: the entry was a stop order),
    ``fill_ts`` (datetime64[ns] UTC open-time label of the fill bar, NaT when not filled),
    ``exit_ts`` (datetime64[ns] UTC close time of the exit bar, NaT when not exited).
    """

    filled: np.ndarray
    fill_pos: np.ndarray
    fill_price: np.ndarray
    exit_pos: np.ndarray
    exit_price: np.ndarray
    exit_reason: np.ndarray
    realized_r: np.ndarray
    hold_bars: np.ndarray
    both_touched: np.ndarray
    stop_entry: np.ndarray
    fill_ts: np.ndarray
    exit_ts: np.ndarray

    def __len__(self) -> int:
        return int(self.filled.shape[0])

    @property
    def exited(self) -> np.ndarray:
        """True where the trade has an outcome (STOP, TARGET or TIME)."""
        return self.exit_pos >= 0

    def to_frame(self, index: pd.Index | None = None) -> pd.DataFrame:
        """One row per plan (``index``: e.g. the signal timestamps); times as tz-aware UTC."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        frame = pd.DataFrame(data, index=index)
        for col in ("fill_ts", "exit_ts"):
            frame[col] = pd.to_datetime(frame[col]).dt.tz_localize("UTC")
        return frame


def _as_float(name: str, values: np.ndarray, n_trades: int) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.shape[0] != n_trades:
        raise BacktestError(
            f"{name} has {arr.shape[0]} values but signal_pos has {n_trades}: pass one per plan."
        )
    return arr


def _bad_rows(mask: np.ndarray) -> str:
    rows = np.flatnonzero(mask)
    shown = ", ".join(str(r) for r in rows[:5])
    return f"{rows.size} plan(s), e.g. row(s) {shown}"


def _validate_plans(
    n_bars: int, signal_pos: np.ndarray, side: np.ndarray,
    entry: np.ndarray, stop: np.ndarray, target: np.ndarray,
) -> None:
    if signal_pos.size and (signal_pos.min() < 0 or signal_pos.max() >= n_bars):
        raise BacktestError(
            f"signal_pos must index existing bars (0 … {n_bars - 1}); "
            f"got {int(signal_pos.min())} … {int(signal_pos.max())}."
        )
    if not np.isin(side, (1, -1)).all():
        raise BacktestError(
            f"side must be +1 (long) or -1 (short): {_bad_rows(~np.isin(side, (1, -1)))}."
        )
    finite = np.isfinite(entry) & np.isfinite(stop) & np.isfinite(target)
    if not finite.all():
        raise BacktestError(
            f"entry, stop and target must be finite numbers: {_bad_rows(~finite)} "
            "have NaN or inf; drop rows without a plan before simulating."
        )
    wrong_stop = (stop - entry) * side >= 0
    if wrong_stop.any():
        raise BacktestError(
            "stop on the wrong side of the entry (a long's stop must be below its entry, a "
            f"short's above): {_bad_rows(wrong_stop)}."
        )
    wrong_target = (target - entry) * side <= 0
    if wrong_target.any():
        raise BacktestError(
            "target on the wrong side of the entry (a long's target must be above its entry, "
            f"a short's below): {_bad_rows(wrong_target)}."
        )


def _bar_arrays(bars: pd.DataFrame) -> tuple[np.ndarray, ...]:
    missing = [c for c in ("open", "high", "low", "close") if c not in bars.columns]
    if missing:
        raise BacktestError(f"bars lack column(s) {', '.join(missing)}; pass a bars frame.")
    arrays = tuple(bars[c].to_numpy(dtype=np.float64) for c in ("open", "high", "low", "close"))
    if not all(np.isfinite(a).all() for a in arrays):
        raise BacktestError("bars contain NaN or inf prices; clean or re-fetch the bars first.")
    return arrays


def _fill_stop_entries(
    se: np.ndarray, signal_pos: np.ndarray, is_long: np.ndarray, entry: np.ndarray,
    open_: np.ndarray, high: np.ndarray, low: np.ndarray, window: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Entry phase for stop orders ``se``: (filled, fill_pos, fill_price, window complete)."""
    n_bars = open_.shape[0]
    start = signal_pos[se]
    complete = start + window <= n_bars - 1
    if window < 1:
        empty = np.zeros(se.size, dtype=bool)
        return empty, np.full(se.size, -1), np.full(se.size, np.nan), complete
    pos = start[:, None] + np.arange(1, window + 1)
    valid = pos < n_bars
    posc = np.minimum(pos, n_bars - 1)
    lng = is_long[se][:, None]
    level = entry[se][:, None]
    hit = valid & np.where(lng, high[posc] >= level, low[posc] <= level)
    filled = hit.any(axis=1)
    fill_pos = np.where(filled, start + 1 + hit.argmax(axis=1), -1)
    fp = np.maximum(fill_pos, 0)
    gap_price = np.where(is_long[se], np.maximum(open_[fp], entry[se]),
                         np.minimum(open_[fp], entry[se]))
    return filled, fill_pos, np.where(filled, gap_price, np.nan), complete


def _follow(
    fill_pos: np.ndarray, stop_entry: np.ndarray, at_open: np.ndarray, is_long: np.ndarray,
    stop: np.ndarray, target: np.ndarray, bars: tuple[np.ndarray, ...], hold: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Exit phase for filled trades: (exit_pos, exit_price, reason, both_touched).

    Column 0 of the window is the fill bar: checked for the stop only for stop entries, in
    full (like a later bar) for fills at its open (``at_open``), not at all for fills at the
    signal bar's close; columns 1 … hold are the followed bars (1 … hold-1 for fills at the
    open: the same last bar as a fill at the signal bar's close).
    """
    open_, high, low, close = bars
    n_bars = open_.shape[0]
    m = fill_pos.shape[0]
    pos = fill_pos[:, None] + np.arange(hold + 1)
    valid = pos < n_bars
    valid[:, 0] &= stop_entry | at_open
    valid[:, hold] &= ~at_open
    posc = np.minimum(pos, n_bars - 1)
    o, h, lo = open_[posc], high[posc], low[posc]
    lng = is_long[:, None]
    st, tg = stop[:, None], target[:, None]
    stop_touch = np.where(lng, lo <= st, h >= st)
    target_touch = np.where(lng, h >= tg, lo <= tg)
    stop_hit = valid & stop_touch
    target_hit = valid & target_touch
    target_hit[:, 0] &= at_open  # a stop entry's fill bar: only after the fill, the stop
    event = stop_hit | target_hit
    has_exit = event.any(axis=1)
    k = event.argmax(axis=1)
    row = np.arange(m)
    ko, kst, ktg = o[row, k], stop, target
    whole_bar = (k > 0) | at_open  # its open came after the fill: the open can decide
    gap_stop = np.where(is_long, ko <= kst, ko >= kst) & whole_bar
    gap_target = target_hit[row, k] & np.where(is_long, ko >= ktg, ko <= ktg)
    is_stop = stop_hit[row, k] & ~gap_target
    stop_price = np.where(whole_bar, np.where(is_long, np.minimum(ko, kst), np.maximum(ko, kst)),
                          kst)
    target_price = np.where(is_long, np.maximum(ko, ktg), np.minimum(ko, ktg))
    both = has_exit & is_stop & target_touch[row, k] & ~gap_stop

    last = fill_pos + hold - at_open
    time_exit = ~has_exit & (last <= n_bars - 1)
    exit_pos = np.where(has_exit, pos[row, k], np.where(time_exit, last, -1))
    exit_price = np.where(
        has_exit, np.where(is_stop, stop_price, target_price),
        np.where(time_exit, close[np.minimum(last, n_bars - 1)], np.nan),
    )
    reason = np.where(
        has_exit, np.where(is_stop, STOP, TARGET), np.where(time_exit, TIME, PENDING)
    ).astype(_REASON_DTYPE)
    return exit_pos, exit_price, reason, both


def simulate_exits(
    bars: pd.DataFrame,
    signal_pos: np.ndarray,
    side: np.ndarray,
    entry: np.ndarray,
    stop: np.ndarray,
    target: np.ndarray,
    *,
    interval: str,
    params: StrategyParams,
    fill: str = "close",
) -> ExitResults:
    """Simulate fills and exits of entry plans over ``bars`` (see the module docstring).

    ``signal_pos``: positional index of the bar whose close produced each plan (uses bars
    after it only, so appending bars never changes a decided outcome, it can only turn a
    PENDING into one). ``side``: +1 long / -1 short. Prices in the bars' currency. ``fill``:
    where market entries fill (:data:`FILL_CONVENTIONS`): "close" (the signal bar's close) or
    "next_open" (the next bar's open).
    Raises :class:`BacktestError` for unusable input (NaN plans, stop or target on the wrong
    side, positions outside the bars, negative windows); :class:`ConfigError` for an unknown
    interval or fill convention.
    """
    validate_interval(interval)
    if fill not in FILL_CONVENTIONS:
        raise ConfigError(f"Unknown fill convention {fill!r}: use one of "
                          f"{', '.join(FILL_CONVENTIONS)}.")
    if params.entry_window_days < 0 or params.max_hold_days < 1:
        raise BacktestError(
            "entry_window_days must be >= 0 and max_hold_days >= 1 "
            f"(got {params.entry_window_days} and {params.max_hold_days})."
        )
    signal_pos = np.asarray(signal_pos, dtype=np.int64).reshape(-1)
    n_trades = signal_pos.shape[0]
    side_arr = np.asarray(side).reshape(-1).astype(np.int8, copy=False)
    if side_arr.shape[0] != n_trades:
        raise BacktestError(f"side has {side_arr.shape[0]} values but signal_pos has {n_trades}.")
    entry_arr = _as_float("entry", entry, n_trades)
    stop_arr = _as_float("stop", stop, n_trades)
    target_arr = _as_float("target", target, n_trades)
    ohlc = _bar_arrays(bars)
    _validate_plans(len(bars), signal_pos, side_arr, entry_arr, stop_arr, target_arr)

    bpd = BARS_PER_DAY[interval]
    parts = [
        _simulate_block(
            ohlc, signal_pos[a:a + _CHUNK], side_arr[a:a + _CHUNK], entry_arr[a:a + _CHUNK],
            stop_arr[a:a + _CHUNK], target_arr[a:a + _CHUNK],
            entry_window=bpd * params.entry_window_days, hold=bpd * params.max_hold_days,
            next_open=fill == "next_open",
        )
        for a in range(0, max(n_trades, 1), _CHUNK)
    ]
    merged = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    merged["fill_ts"], merged["exit_ts"] = _timestamps(
        bars.index, interval, merged["fill_pos"], merged["exit_pos"]
    )
    return ExitResults(**merged)


def _simulate_block(
    ohlc: tuple[np.ndarray, ...], signal_pos: np.ndarray, side: np.ndarray,
    entry: np.ndarray, stop: np.ndarray, target: np.ndarray, *, entry_window: int, hold: int,
    next_open: bool = False,
) -> dict[str, np.ndarray]:
    open_, high, low, close = ohlc
    n = signal_pos.shape[0]
    n_bars = open_.shape[0]
    is_long = side == 1
    close_s = close[signal_pos] if n else np.empty(0)
    stop_entry = np.where(is_long, entry > close_s, entry < close_s)

    if next_open:  # market-on-open for the next bar: pending until that bar exists
        at_open = ~stop_entry
        filled = at_open & (signal_pos + 1 <= n_bars - 1)
        fill_pos = np.where(filled, signal_pos + 1, -1)
        fill_price = np.where(filled, open_[np.minimum(signal_pos + 1, n_bars - 1)], np.nan)
    else:
        at_open = np.zeros(n, dtype=bool)
        filled = ~stop_entry
        fill_pos = np.where(stop_entry, -1, signal_pos)
        fill_price = np.where(stop_entry, np.nan, close_s)
    reason = np.full(n, PENDING, dtype=_REASON_DTYPE)
    se = np.flatnonzero(stop_entry)
    if se.size:
        se_filled, se_pos, se_price, complete = _fill_stop_entries(
            se, signal_pos, is_long, entry, open_, high, low, entry_window
        )
        filled[se], fill_pos[se], fill_price[se] = se_filled, se_pos, se_price
        reason[se[~se_filled & complete]] = NOT_FILLED

    exit_pos = np.full(n, -1, dtype=np.int64)
    exit_price = np.full(n, np.nan)
    both = np.zeros(n, dtype=bool)
    fi = np.flatnonzero(filled)
    if fi.size:
        exit_pos[fi], exit_price[fi], reason[fi], both[fi] = _follow(
            fill_pos[fi], stop_entry[fi], at_open[fi], is_long[fi], stop[fi], target[fi], ohlc,
            hold,
        )
    exited = exit_pos >= 0
    risk = np.abs(fill_price - stop)
    with np.errstate(invalid="ignore", divide="ignore"):
        # risk 0 only for a next open exactly at the stop: it exits at that open, 0 R
        realized_r = np.where(exited, np.where(risk > 0, (exit_price - fill_price) * side
                                               / np.where(risk > 0, risk, 1.0), 0.0), np.nan)
    return {
        "filled": filled,
        "fill_pos": fill_pos.astype(np.int64),
        "fill_price": fill_price,
        "exit_pos": exit_pos,
        "exit_price": exit_price,
        "exit_reason": reason,
        "realized_r": realized_r,
        "hold_bars": np.where(exited, exit_pos - fill_pos, -1).astype(np.int64),
        "both_touched": both,
        "stop_entry": stop_entry,
    }


def _timestamps(
    index: pd.Index, interval: str, fill_pos: np.ndarray, exit_pos: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(fill bar open labels, exit bar close times) as datetime64[ns] UTC, NaT where -1."""
    if isinstance(index, pd.DatetimeIndex):
        idx = index.tz_convert("UTC") if index.tz is not None else index
        labels = idx.tz_localize(None).as_unit("ns").to_numpy()
    else:
        labels = np.full(len(index), np.datetime64("NaT"), dtype="datetime64[ns]")
    delta = INTERVAL_DELTA[interval].to_timedelta64().astype("timedelta64[ns]")
    nat = np.datetime64("NaT", "ns")
    if labels.size == 0:
        return (np.full(fill_pos.shape, nat), np.full(exit_pos.shape, nat))
    fill_ts = np.where(fill_pos >= 0, labels[np.maximum(fill_pos, 0)], nat)
    exit_ts = np.where(exit_pos >= 0, labels[np.maximum(exit_pos, 0)] + delta, nat)
    return fill_ts, exit_ts
