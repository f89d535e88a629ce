"""Numbers and times as the dashboard shows them: formatted numbers, New York wall-clock
times for intraday bars, trading dates for daily bars."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from swing_core.config import EXCHANGE_TZ


def format_number(value: Any, spec: str = ".2f", none: str = "–") -> str:
    """``value`` formatted with ``spec``, or ``none`` when it is missing or not finite."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return none
    return none if not math.isfinite(number) else format(number, spec)


def local_times(values: Any, *, daily: bool | None = None) -> pd.DatetimeIndex:
    """UTC timestamps as the naive wall-clock times the UI shows: New York time for intraday
    bars; for daily bars (labelled by their trading date at 00:00 UTC) that date itself, since
    converting it would show the evening before. ``daily`` None decides per value (a timestamp
    at exactly 00:00 UTC is a date label: no US intraday bar opens or closes then)."""
    idx = pd.DatetimeIndex(pd.to_datetime(values, utc=True))
    utc = idx.tz_convert("UTC").tz_localize(None)
    if daily is True:
        return utc
    local = idx.tz_convert(EXCHANGE_TZ).tz_localize(None)
    if daily is False:
        return local
    midnight = np.asarray((utc == utc.normalize()) & ~utc.isna())
    return pd.DatetimeIndex(np.where(midnight, utc.to_numpy(), local.to_numpy()))


def exchange_time_text(ts: Any, *, daily: bool | None = None) -> str:
    """A UTC timestamp as the UI shows it: New York wall-clock text (``2026-03-02 10:30``), or
    the trading date of a daily bar (``2026-03-02``; see :func:`local_times`)."""
    utc = pd.Timestamp(ts)
    utc = utc.tz_localize("UTC") if utc.tzinfo is None else utc.tz_convert("UTC")
    is_date = daily if daily is not None else bool(utc == utc.normalize())
    if is_date:
        return utc.strftime("%Y-%m-%d")
    return utc.tz_convert(EXCHANGE_TZ).strftime("%Y-%m-%d %H:%M")


def for_display(table: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``table`` with tz-aware columns as New York wall-clock times (for st.dataframe)."""
    out = table.copy()
    for column in out.columns:
        if isinstance(out[column].dtype, pd.DatetimeTZDtype):
            out[column] = local_times(out[column])
    return out
