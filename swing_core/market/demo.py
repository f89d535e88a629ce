"""Deterministic synthetic bars for offline use, tests and benchmarks (always labelled "demo").

The generator is vectorized numpy (one short Python loop over regimes) and deterministic per
``(symbol, interval)``: the seed is ``zlib.crc32`` of the pair, never Python's salted ``hash()``.
Series are built *backwards from the last bar* with one random stream per component, so for a
fixed ``end`` the last ``m`` bars of ``demo_bars(..., n_bars=n)`` equal ``demo_bars(...,
n_bars=m)`` for any ``m <= n``.

What the series contains, so every setup of the strategy gets exercised:

* regimes: trending stretches (drift up or down, chosen to pull the price back towards its
  starting level so long histories stay bounded) alternating with ranging stretches
  (mean-reverting oscillation that produces RSI extremes);
* volatility clustering: log-volatility follows an AR(1) process (a stochastic-volatility,
  GARCH-like pattern), times a U-shaped time-of-day profile for intraday bars;
* overnight gaps at each session's first bar;
* regular-session bars only (09:30–16:00 New York, labelled by open time, UTC), no weekends,
  NYSE holidays skipped (``holidays=False`` keeps every weekday); half-day sessions are treated
  as full days;
* ``high >= max(open, close)``, ``low <= min(open, close)``, prices > 0, volume > 0.

Daily bars are labelled by their session date at 00:00 UTC.
"""

from __future__ import annotations

import datetime as _dt
import math
import zlib
from functools import lru_cache

import numpy as np
import pandas as pd

from swing_core.clock import utc_timestamp
from swing_core.config import BARS_PER_DAY, EXCHANGE_TZ, INTERVAL_DELTA, validate_interval
from swing_core.market._common import DEFAULT_LOOKBACK_DAYS, label

#: Per-bar base log-volatility, by interval (about 1.5 % a day for a typical large stock).
_BAR_SIGMA = {"15m": 0.0022, "30m": 0.0032, "1h": 0.0045, "1d": 0.014}
#: Overnight gap standard deviation (log), applied at each session's first bar.
_GAP_SIGMA = {"15m": 0.005, "30m": 0.005, "1h": 0.005, "1d": 0.004}
#: Regime lengths in bars: [low, high).
_REGIME_BARS = {"15m": (40, 320), "30m": (26, 200), "1h": (14, 110), "1d": (12, 90)}
_VOL_PERSISTENCE = 0.97  # AR(1) coefficient of log-volatility, per bar
_VOL_OF_VOL = 0.35  # stationary standard deviation of log-volatility
_OU_PERSISTENCE = 0.9  # AR(1) coefficient of the ranging oscillation, per bar
_MAX_DAILY_BARS = 70_000  # about 278 years: pandas timestamps end before 1678
_SESSION_OPEN = pd.Timedelta(hours=9, minutes=30)

# stream ids: one independent random stream per component keeps suffixes stable
_S_REGIME_LEN, _S_REGIME_KIND, _S_REGIME_DIR, _S_REGIME_STRENGTH = 1, 2, 3, 4
_S_NOISE, _S_VOL, _S_OU, _S_GAP, _S_WICK, _S_VOLUME, _S_LEVEL, _S_JITTER = range(5, 13)


def _seed(symbol: str, interval: str) -> int:
    return zlib.crc32(f"{symbol.upper()}|{interval}".encode())


def _stream(seed: int, component: int) -> np.random.Generator:
    return np.random.default_rng([seed, component])


# --------------------------------------------------------------------------- calendar


def _easter(year: int) -> _dt.date:
    """Gregorian Easter Sunday (anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    leap = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * leap) // 451
    month = (h + leap - 7 * m + 114) // 31
    day = (h + leap - 7 * m + 114) % 31 + 1
    return _dt.date(year, month, day)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> _dt.date:
    """The n-th (1-based; -1 = last) ``weekday`` (Mon=0) of a month."""
    if n > 0:
        first = _dt.date(year, month, 1)
        return first + _dt.timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    nxt = _dt.date(year + (month == 12), month % 12 + 1, 1)
    last = nxt - _dt.timedelta(days=1)
    return last - _dt.timedelta(days=(last.weekday() - weekday) % 7)


def _observed(day: _dt.date) -> _dt.date:
    if day.weekday() == 5:
        return day - _dt.timedelta(days=1)
    if day.weekday() == 6:
        return day + _dt.timedelta(days=1)
    return day


@lru_cache(maxsize=512)
def _nyse_holidays(year: int) -> tuple[_dt.date, ...]:
    """Full-day NYSE holidays of ``year`` (the usual rules; special closures not included)."""
    days = []
    new_year = _dt.date(year, 1, 1)
    if new_year.weekday() != 5:  # a Saturday New Year is not observed on the Friday before
        days.append(_observed(new_year))
    if year >= 1998:
        days.append(_nth_weekday(year, 1, 0, 3))  # Martin Luther King Jr. Day
    days.append(_nth_weekday(year, 2, 0, 3))  # Washington's Birthday
    days.append(_easter(year) - _dt.timedelta(days=2))  # Good Friday
    days.append(_nth_weekday(year, 5, 0, -1))  # Memorial Day
    if year >= 2022:
        days.append(_observed(_dt.date(year, 6, 19)))  # Juneteenth
    days.append(_observed(_dt.date(year, 7, 4)))
    days.append(_nth_weekday(year, 9, 0, 1))  # Labor Day
    days.append(_nth_weekday(year, 11, 3, 4))  # Thanksgiving
    days.append(_observed(_dt.date(year, 12, 25)))
    return tuple(days)


def _holiday_array(first_year: int, last_year: int) -> np.ndarray:
    days = [d for y in range(first_year, last_year + 1) for d in _nyse_holidays(y)]
    return np.array(days, dtype="datetime64[D]")


def session_dates(last: _dt.date | np.datetime64, count: int, *, holidays: bool = True
                  ) -> np.ndarray:
    """The ``count`` session dates ending at the session on or before ``last`` (datetime64[D])."""
    last = np.datetime64(last, "D")
    first_year = int(str(last)[:4]) - int(count / 240) - 2
    hol = _holiday_array(max(first_year, 1678), int(str(last)[:4])) if holidays else []
    end = np.busday_offset(last, 0, roll="backward", holidays=hol)
    start = np.busday_offset(end, -(count - 1), roll="backward", holidays=hol)
    days = np.arange(start, end + np.timedelta64(1, "D"), dtype="datetime64[D]")
    return days[np.is_busday(days, holidays=hol)]


def demo_anchor(now: pd.Timestamp | None = None, *, holidays: bool = True) -> _dt.date:
    """The default last session of demo data: the last session before today's New York date.

    Derived from the date only, so every call on the same (New York) day gives the same frames.
    """
    now = utc_timestamp() if now is None else pd.Timestamp(now)
    if now.tzinfo is None:
        now = now.tz_localize("UTC")
    yesterday = now.tz_convert(EXCHANGE_TZ).date() - _dt.timedelta(days=1)
    return session_dates(yesterday, 1, holidays=holidays)[-1].astype(_dt.date)


def _bar_times(last_session: _dt.date, interval: str, n_days: int, *, holidays: bool
               ) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """Open times (UTC) of every bar of the ``n_days`` sessions ending at ``last_session``, and
    each bar's slot within its session (0 = the session's first bar)."""
    days = session_dates(last_session, n_days, holidays=holidays)
    if interval == "1d":
        index = pd.DatetimeIndex(days.astype("datetime64[ns]")).tz_localize("UTC")
        return index, np.zeros(len(days), dtype=np.int64)
    per_day = BARS_PER_DAY[interval]
    step = INTERVAL_DELTA[interval].value
    opens = (pd.DatetimeIndex(days.astype("datetime64[ns]")) + _SESSION_OPEN).tz_localize(
        EXCHANGE_TZ).tz_convert("UTC")
    slots = np.arange(per_day, dtype=np.int64)
    stamps = opens.asi8[:, None] + slots[None, :] * step
    index = pd.DatetimeIndex(stamps.ravel()).tz_localize("UTC")
    return index, np.tile(slots, len(days))


def _ar1(innovations: np.ndarray, phi: float) -> np.ndarray:
    """Stationary AR(1) with unit variance: ``z_k = phi z_(k-1) + sqrt(1-phi^2) e_k``.

    Computed with pandas' exponentially weighted mean (a C loop): ``y_k = phi y_(k-1) +
    (1-phi) x_k`` is the same recursion up to a constant factor.
    """
    scale = (1 - phi) / math.sqrt(1 - phi * phi)  # stationary sd of the EWM recursion
    x = innovations.copy()
    if len(x):
        x[0] *= scale  # start in the stationary distribution
    y = pd.Series(x).ewm(alpha=1 - phi, adjust=False).mean().to_numpy()
    return y / scale


def _regimes(seed: int, interval: str, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Regime blocks in reverse time order: (lengths in bars, trending flags, drift strengths)."""
    lo, hi = _REGIME_BARS[interval]
    max_blocks = n // lo + 2
    lengths = _stream(seed, _S_REGIME_LEN).integers(lo, hi, size=max_blocks)
    trending = _stream(seed, _S_REGIME_KIND).random(max_blocks) < 0.5
    strength = _stream(seed, _S_REGIME_STRENGTH).uniform(0.08, 0.3, size=max_blocks)
    return lengths, trending, strength


def demo_bars(symbol: str, interval: str = "30m", n_bars: int = 2000, *,
              end: _dt.date | pd.Timestamp | str | None = None,
              holidays: bool = True) -> pd.DataFrame:
    """``n_bars`` synthetic regular-session bars of ``symbol`` ending at ``end``.

    ``end``: the last bar is the last one of the session on or before ``end``'s New York date
    whose open time is <= ``end`` (a date or a naive value means the whole session); default
    :func:`demo_anchor` (the last session before today, so repeated calls within a day give
    identical frames).  Deterministic per ``(symbol, interval, end)``; see the module docstring
    for what the series contains.  ``attrs["source"] == "demo"``.
    """
    validate_interval(interval)
    n = int(n_bars)
    if n < 1:
        raise ValueError(f"n_bars must be at least 1 (got {n_bars}).")
    if interval == "1d" and n > _MAX_DAILY_BARS:
        raise ValueError(f"At most {_MAX_DAILY_BARS} daily demo bars (timestamps before 1678 do "
                         "not exist in pandas); use an intraday interval for longer histories.")
    symbol = symbol.strip().upper()
    cutoff = None
    if end is None:
        last_session = demo_anchor(holidays=holidays)
    else:
        end_ts = pd.Timestamp(end)
        if end_ts.tzinfo is not None:
            cutoff = end_ts.tz_convert("UTC")
            last_session = end_ts.tz_convert(EXCHANGE_TZ).date()
        else:
            last_session = end_ts.date()
    if n > _CACHED_BARS:
        return _demo_frame(symbol, interval, n, last_session, cutoff, holidays)
    frame = _cached_demo_frame(symbol, interval, n, last_session, cutoff, holidays)
    copy = frame.copy()
    copy.attrs = {**frame.attrs, "notes": list(frame.attrs["notes"])}
    return copy


#: Demo frames up to this many bars are kept (a few dozen, a few MB): an offline analysis asks
#: for the same benchmark and timeframe series again and again.
_CACHED_BARS = 20_000


def _demo_frame(symbol: str, interval: str, n: int, last_session: _dt.date,
                cutoff: pd.Timestamp | None, holidays: bool) -> pd.DataFrame:
    per_day = BARS_PER_DAY[interval]
    index, slots = _bar_times(last_session, interval, n // per_day + 2, holidays=holidays)
    if cutoff is not None and interval != "1d":
        keep = index <= cutoff
        index, slots = index[keep], slots[keep]
    index, slots = index[-n:], slots[-n:]
    frame = _generate(_seed(symbol, interval), interval, index, slots)
    return label(frame, symbol=symbol, interval=interval, source="demo",
                 notes=["DEMO DATA: synthetic bars, not real prices."])


_cached_demo_frame = lru_cache(maxsize=48)(_demo_frame)


def _generate(seed: int, interval: str, index: pd.DatetimeIndex, slots: np.ndarray
              ) -> pd.DataFrame:
    n = len(index)
    m = n + 1  # one extra (older) bar gives the first bar a previous close
    # Everything below is in reverse time order (position 0 = the newest bar).
    per_day = BARS_PER_DAY[interval]
    rev_slot = np.empty(m)
    rev_slot[:n] = slots[::-1]
    rev_slot[n] = (slots[0] - 1) % per_day if n else 0  # the extra bar's real slot
    rev_first = rev_slot == 0

    sigma = _BAR_SIGMA[interval]
    # volatility: AR(1) log-vol (clustering) times a U-shaped time-of-day profile
    log_vol = _VOL_OF_VOL * _ar1(_stream(seed, _S_VOL).standard_normal(m), _VOL_PERSISTENCE)
    if per_day > 1:
        centre = (per_day - 1) / 2
        u_shape = 0.8 + 0.6 * ((rev_slot - centre) / centre) ** 2
    else:
        u_shape = np.ones(m)
    vol = sigma * np.exp(log_vol - 0.5 * _VOL_OF_VOL**2) * u_shape

    # regimes: trending stretches (drift) and ranging stretches (oscillation, less random walk)
    lengths, trending, strength = _regimes(seed, interval, m)
    block_of_bar = np.repeat(np.arange(len(lengths)), lengths)[:m]
    is_trend = trending[block_of_bar]
    walk_weight = np.where(is_trend, 1.0, 0.55)
    noise = walk_weight * vol * _stream(seed, _S_NOISE).standard_normal(m)
    # overnight gaps at each session's first bar (every daily bar is one)
    gaps = np.where(rev_first, _GAP_SIGMA[interval] * _stream(seed, _S_GAP).standard_normal(m), 0)
    ou = 2.2 * vol * _ar1(_stream(seed, _S_OU).standard_normal(m), _OU_PERSISTENCE)
    oscillation = np.where(is_trend, 0.3, 1.0) * ou

    # drift per block: direction chosen (going backwards) to pull the level back to the start
    walk = np.cumsum(noise + gaps)  # log(close_newest) - log(close_k) before drifts, shifted
    direction_u = _stream(seed, _S_REGIME_DIR).random(len(lengths))
    drift = np.zeros(m)
    level = 0.0  # log deviation of the current (older) end of the path from the newest close
    pos = 0
    for block, length in enumerate(lengths):
        if pos >= m:
            break
        stop = min(pos + int(length), m)
        if trending[block]:
            deviation = level - (walk[pos - 1] if pos else 0.0)
            p_up = 0.5 + float(np.clip(deviation / 0.6, -0.4, 0.4))
            sign = 1.0 if direction_u[block] < p_up else -1.0
            # forward drift `sign` means older bars are lower when sign > 0
            drift[pos:stop] = sign * strength[block] * sigma
            level -= sign * strength[block] * sigma * (stop - pos)
        pos = stop
    returns = drift + noise + gaps  # forward-time log return of each bar (gap included)
    start_level = math.log(_stream(seed, _S_LEVEL).uniform(20.0, 400.0))
    # log close of position k = newest log close - sum of the returns of newer bars
    log_close = start_level - np.concatenate(([0.0], np.cumsum(returns[:-1]))) + oscillation
    log_prev_close = np.empty(m)
    log_prev_close[:-1] = log_close[1:]
    log_prev_close[-1] = log_close[-1] - returns[-1]
    jitter = 0.08 * vol * _stream(seed, _S_JITTER).standard_normal(m)
    log_open = log_prev_close + np.where(rev_first, gaps, jitter)
    wicks = (np.abs(_stream(seed, _S_WICK).standard_normal((m, 2))) * 0.6 * vol[:, None]).T

    rev = slice(n - 1, None, -1)  # back to chronological order, dropping the extra bar
    close = np.round(np.exp(log_close[rev]), 4)
    open_ = np.round(np.exp(log_open[rev]), 4)
    high = np.round(np.exp(np.maximum(log_open, log_close) + wicks[0])[rev], 4)
    low = np.round(np.exp(np.minimum(log_open, log_close) - wicks[1])[rev], 4)
    high = np.maximum(high, np.maximum(open_, close))
    low = np.maximum(np.minimum(low, np.minimum(open_, close)), 0.0001)

    base_volume = 10 ** _stream(seed, _S_LEVEL).uniform(5.5, 7.0, size=2)[1] / per_day
    activity = np.abs(returns - drift) / vol
    vol_noise = np.exp(0.35 * _stream(seed, _S_VOLUME).standard_normal(m))
    volume = np.maximum(np.round(base_volume * u_shape**2 * vol_noise * (0.6 + 0.5 * activity)),
                        1.0)[rev]
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close,
         "volume": volume.astype("float64")},
        index=index.rename("ts"),
    )


class DemoProvider:
    """Provider of :func:`demo_bars` (no network, never cached; always labelled ``demo``)."""

    name = "demo"
    cacheable = False

    def __init__(self, *, holidays: bool = True, end: _dt.date | pd.Timestamp | None = None
                 ) -> None:
        self.holidays = holidays
        self.end = end

    def fetch(self, symbol: str, interval: str, *, lookback_days: int | None = None,
              now: pd.Timestamp | None = None) -> pd.DataFrame:
        """The sessions of the last ``lookback_days`` calendar days up to the demo anchor."""
        validate_interval(interval)
        days = lookback_days or DEFAULT_LOOKBACK_DAYS[interval]
        end = self.end if self.end is not None else demo_anchor(now, holidays=self.holidays)
        sessions = max(1, round(days * 252 / 365.25))
        return demo_bars(symbol, interval, sessions * BARS_PER_DAY[interval], end=end,
                         holidays=self.holidays)
