"""Numbers and times as the dashboard shows them: formatted numbers, and bar times by the one
rule of :mod:`swing_core.timefmt` (daily bars as their trading date, intraday bars in New York
time), re-exported here for the pages."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from swing_core.timefmt import bar_time_text, bar_time_texts, bar_times, is_daily, looks_daily

#: Columns holding the *close* time of a bar (``exit_ts``: label + bar length, see
#: ``swing_core.exits``); shown as the trading date of that bar for daily bars.
CLOSE_TIME_COLUMNS: tuple[str, ...] = ("exit_ts",)


def format_number(value: Any, spec: str = ".2f", none: str = "–") -> str:
    """``value`` formatted with ``spec``, or ``none`` when it is missing or not finite."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return none
    return none if not math.isfinite(number) else format(number, spec)


def exchange_time_text(ts: Any, *, daily: bool | None = None) -> str:
    """Deprecated alias of :func:`bar_time_text` for callers not told the interval: ``daily``
    True shows the trading date; None decides from the value (00:00 UTC is a daily label)."""
    return bar_time_text(ts, "1d" if daily else None)


def table_times(values: Any, interval: str | None, *, close: bool = False) -> pd.Series:
    """A column of bar times for ``st.dataframe`` and CSV: daily bars as their trading date text
    (``2004-08-19``), intraday bars as naive New York wall-clock times (sortable; the page's
    header says NY). ``interval`` None: daily when every value is 00:00 UTC. ``close`` as in
    :func:`bar_times`. The index of a Series ``values`` is kept."""
    stamps = pd.to_datetime(values, utc=True)
    series = stamps if isinstance(stamps, pd.Series) else pd.Series(stamps)
    if is_daily(interval) if interval is not None else looks_daily(series):
        texts = pd.Series(bar_time_texts(series, interval or "1d", close=close),
                          index=series.index, dtype=object)
        return texts.where(series.notna().to_numpy(), None)
    return pd.Series(bar_times(series, interval), index=series.index)


def for_display(table: pd.DataFrame, *, interval: str | None = None) -> pd.DataFrame:
    """A copy of ``table`` with its tz-aware columns as :func:`table_times` shows them: bar
    times of ``interval`` (None: each column decided on its own, daily when all its values are
    00:00 UTC); :data:`CLOSE_TIME_COLUMNS` are bar close times (a daily exit shows its exit
    bar's trading date, never the next day)."""
    out = table.copy()
    for column in out.columns:
        if isinstance(out[column].dtype, pd.DatetimeTZDtype):
            out[column] = table_times(out[column], interval,
                                      close=column in CLOSE_TIME_COLUMNS)
    return out


def row_time_texts(values: Any, intervals: Sequence[str | None] | str | None, *,
                   close: bool = False) -> list[str | None]:
    """Bar times as text (:func:`bar_time_text`), one interval per row (or one for all): for
    tables that mix intervals, such as the journal. Missing times stay None."""
    stamps = list(values)
    per_row = ([intervals] * len(stamps) if intervals is None or isinstance(intervals, str)
               else list(intervals))
    if not stamps:
        return []
    texts = bar_time_texts(stamps, per_row, close=close)
    return [None if t is None or pd.isna(t) else str(text)
            for t, text in zip(stamps, texts, strict=True)]
