"""The one bar-time display rule (swing_core.timefmt): daily bars by trading date, intraday bars
in New York time with the zone, close times of daily bars as the bar's own date."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from swing_core.timefmt import (
    bar_time_text,
    bar_times,
    clock_text,
    exchange_times,
    file_times,
    is_daily,
    looks_daily,
)

DAY = pd.Timedelta(days=1)


@pytest.mark.parametrize(("ts", "interval", "text"), [
    # a daily bar labelled 2004-08-19 00:00 UTC (in New York: 2004-08-18 20:00)
    (pd.Timestamp("2004-08-19", tz="UTC"), "1d", "2004-08-19"),
    (pd.Timestamp("2004-08-19"), "1d", "2004-08-19"),  # naive: taken as UTC
    (dt.datetime(2004, 8, 19, tzinfo=dt.UTC), "1d", "2004-08-19"),
    (pd.Timestamp("2024-03-04", tz="UTC"), "1wk", "2024-03-04"),
    (pd.Timestamp("2004-08-19", tz="UTC"), None, "2004-08-19"),  # untold: 00:00 UTC is a date
    # intraday bars: New York exchange time with its zone (winter EST, summer EDT)
    (pd.Timestamp("2024-03-04 15:30", tz="UTC"), "30m", "2024-03-04 10:30 EST"),
    (pd.Timestamp("2024-07-01 13:30", tz="UTC"), "1h", "2024-07-01 09:30 EDT"),
    (pd.Timestamp("2024-07-01 13:30", tz="UTC"), None, "2024-07-01 09:30 EDT"),
    (pd.NaT, "1d", "–"),
    (None, "30m", "–"),
])
def test_bar_time_text(ts: object, interval: str | None, text: str) -> None:
    assert bar_time_text(ts, interval) == text


def test_daily_close_time_shows_the_exit_bars_own_date_never_a_saturday() -> None:
    friday = pd.Timestamp("2024-03-08", tz="UTC")
    close = friday + DAY  # exit_ts as stored: the exit bar's close, Saturday 00:00 UTC
    assert bar_time_text(close, "1d", close=True) == "2024-03-08"
    assert bar_time_text(close, "1d") == "2024-03-09", "a label is shown as it is"
    week = pd.bdate_range("2024-03-04", periods=10, tz="UTC")
    shown = bar_times(week + DAY, "1d", close=True)
    assert list(shown) == list(week.tz_localize(None))
    assert (shown.dayofweek < 5).all()
    # an intraday close stays the clock time it happened
    assert bar_time_text(pd.Timestamp("2024-03-04 21:00", tz="UTC"), "30m",
                         close=True) == "2024-03-04 16:00 EST"


def test_bar_times_are_naive_dates_for_daily_and_new_york_clock_for_intraday() -> None:
    daily = pd.DatetimeIndex(["2004-08-19", None, "2004-08-20"], tz="UTC")
    shown = bar_times(daily, "1d")
    assert shown.tz is None and shown[0] == pd.Timestamp("2004-08-19") and shown[1] is pd.NaT
    assert list(bar_times(pd.Series(daily), None).dropna()) == list(shown.dropna())
    intraday = pd.DatetimeIndex(["2024-03-04 14:30", "2024-07-01 13:30"], tz="UTC")
    assert [str(t) for t in bar_times(intraday, "30m")] == ["2024-03-04 09:30:00",
                                                            "2024-07-01 09:30:00"]
    assert list(exchange_times(intraday)) == list(bar_times(intraday, None))
    # told it is intraday, a stamp at 00:00 UTC is still a New York clock time
    assert str(bar_times([daily[0]], "1h")[0]) == "2004-08-18 20:00:00"


def test_which_intervals_are_daily() -> None:
    assert is_daily("1d") and is_daily("1wk")
    assert not any(is_daily(i) for i in ("15m", "30m", "1h", None))
    assert looks_daily(pd.DatetimeIndex(["2024-03-04", None], tz="UTC"))
    assert not looks_daily(pd.DatetimeIndex(["2024-03-04", "2024-03-04 14:30"], tz="UTC"))
    assert not looks_daily(np.array([], dtype="datetime64[ns]"))


def test_clock_text_is_new_york_time_of_day() -> None:
    assert clock_text(pd.Timestamp("2024-03-04 20:04:05", tz="UTC")) == "15:04:05"  # EST
    assert clock_text(dt.datetime(2024, 7, 1, 13, 30, tzinfo=dt.UTC)) == "09:30:00"  # EDT
    assert clock_text(None) == clock_text(pd.NaT) == "–"


def test_file_times_read_back_to_the_same_bar() -> None:
    daily = pd.DatetimeIndex(["2004-08-19", "2004-08-20"], tz="UTC")
    assert list(file_times(daily, "1d", text=True)) == ["2004-08-19", "2004-08-20"]
    assert list(file_times(daily, "1d", text=False)) == list(daily.tz_localize(None))
    intraday = pd.DatetimeIndex(["2024-03-04 15:30", "2024-07-01 13:30"], tz="UTC")
    text = list(file_times(intraday, "30m", text=True))
    assert text == ["2024-03-04T10:30:00-05:00", "2024-07-01T09:30:00-04:00"]
    assert (pd.DatetimeIndex(pd.to_datetime(text, utc=True)) == intraday).all()
    aware = file_times(intraday, "30m", text=False)
    assert str(aware.tz) == "America/New_York" and (aware == intraday).all()


def test_bar_time_texts_equal_bar_time_text_value_by_value():
    """The vectorized bar-time text (hover text of many points) is the one-value rule's."""
    from swing_core.timefmt import bar_time_text, bar_time_texts

    stamps = pd.to_datetime(["2024-03-04 15:30", "2024-07-01 13:30", None, "2004-08-19 00:00"],
                            utc=True)
    for interval in ("30m", "1h", "1d", "1wk"):
        got = bar_time_texts(stamps, interval)
        assert list(got) == [bar_time_text(t, interval) for t in stamps]
    midnights = stamps[[2, 3]]  # interval None: daily when every value is 00:00 UTC
    assert list(bar_time_texts(midnights, None)) == ["–", "2004-08-19"]


def test_bar_time_texts_with_one_interval_per_value_equal_the_one_value_rule():
    from swing_core.timefmt import bar_time_text, bar_time_texts

    stamps = list(pd.to_datetime(["2024-03-04 15:30", "2004-08-19 00:00", None,
                                  "2024-07-01 13:30", "2004-08-19 00:00"], utc=True))
    intervals = ["30m", "1d", "1h", None, None]
    assert list(bar_time_texts(stamps, intervals)) == [
        bar_time_text(t, iv) for t, iv in zip(stamps, intervals, strict=True)]
