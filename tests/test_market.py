"""Market data: the yfinance boundary (recorded shapes), files, demo bars, validation, the bar
cache, fetch_many.  Never the network: ``yf.download`` is replaced at the one boundary
(``swing_core.market.yahoo._yf_download``) by :class:`FakeYahoo`, which answers with frames of
the shapes yfinance 1.x really returns and logs its errors the way yfinance does.
"""

from __future__ import annotations

import inspect
import io
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swing_core import db
from swing_core.config import INTERVAL_DELTA
from swing_core.errors import MarketDataError
from swing_core.market import (
    CACHE_STATS,
    CacheCounter,
    DemoProvider,
    FileProvider,
    RateLimitedError,
    UnknownSymbolError,
    YahooProvider,
    YahooUnreachableError,
    clear_cache_state,
    demo_anchor,
    demo_bars,
    fetch_bars,
    fetch_many,
    normalize_symbol,
    read_bars_file,
    validate_bars,
)
from swing_core.market import yahoo as yahoo_module

DATA = Path(__file__).parent / "data"
NY = "America/New_York"
YF_LOGGER = logging.getLogger("yfinance")

# What yfinance 1.7 logs when the network is down (recorded on this machine, no internet).
NETWORK_LOG = [
    "Failed to get ticker '{sym}' reason: Failed to perform, curl: (6) Could not resolve host: "
    "query2.finance.yahoo.com (Domain name not found). See "
    "https://curl.se/libcurl/c/libcurl-errors.html first for more details.",
    "\n1 Failed download:",
    "['{sym}']: DNSError('Failed to perform, curl: (6) Could not resolve host: "
    "query2.finance.yahoo.com. See https://curl.se/libcurl/c/libcurl-errors.html first for more "
    "details.')",
]
# What it logs for an unknown symbol (PriceHistory's soft error, then download's summary).
UNKNOWN_LOG = [
    "${sym}: possibly delisted; no price data found  (30m 2026-09-30 -> 2026-11-28)",
    "\n1 Failed download:",
    "['{sym}']: possibly delisted; no price data found  (30m 2026-09-30 -> 2026-11-28)",
]
# And for a rate limit (download catches YFRateLimitError and logs its repr).
RATE_LOG = [
    "\n1 Failed download:",
    "['{sym}']: YFRateLimitError('Too Many Requests. Rate limited. Try after a while.')",
]


# --------------------------------------------------------------------------- yfinance shapes


def yf_shaped(bars: pd.DataFrame, symbol: str, interval: str, *, auto_adjust: bool = True
              ) -> pd.DataFrame:
    """A bars frame (UTC, lower-case) as ``yf.download`` 1.x returns it: per-ticker columns
    Open/High/Low/Close[/Adj Close]/Volume, index in New York time (``Datetime``; daily:
    ``Date`` at local midnight), then concatenated with ``keys=[ticker]``, the levels swapped to
    ``(Price, Ticker)`` and sorted, exactly as ``yfinance.multi._download_impl`` does."""
    if interval == "1d":
        index = pd.DatetimeIndex(bars.index.tz_convert(None).normalize()).tz_localize(NY)
        name = "Date"
    else:
        index = bars.index.tz_convert(NY)
        name = "Datetime"
    one = pd.DataFrame(index=pd.DatetimeIndex(index, name=name))
    if auto_adjust:
        for col in ("open", "high", "low", "close"):
            one[col.title()] = bars[col].to_numpy()
    else:  # unadjusted prices 2 % above the adjusted ones, plus Adj Close
        for col in ("open", "high", "low", "close"):
            one[col.title()] = bars[col].to_numpy() / 0.98
        one["Adj Close"] = bars["close"].to_numpy()
    one["Volume"] = bars["volume"].to_numpy().astype("int64")
    data = pd.concat([one], axis=1, keys=[symbol], names=["Ticker", "Price"])
    data.columns = data.columns.swaplevel(0, 1)
    return data.sort_index(level=0, axis=1)


def yf_empty(symbol: str) -> pd.DataFrame:
    """What ``yf.download`` returns for a failed ticker (``utils.empty_df()`` concatenated)."""
    empty = pd.DataFrame(index=pd.DatetimeIndex([], name="Date"),
                         columns=["Open", "High", "Low", "Close", "Adj Close", "Volume"],
                         dtype="float64")
    data = pd.concat([empty], axis=1, keys=[symbol], names=["Ticker", "Price"])
    data.columns = data.columns.swaplevel(0, 1)
    return data.sort_index(level=0, axis=1)


def recorded_aapl() -> pd.DataFrame:
    """The stored fixture: a ``yf.download("AAPL", interval="30m").to_csv()`` file read back."""
    raw = pd.read_csv(DATA / "yf_download_AAPL_30m.csv", header=[0, 1], index_col=0)
    raw.index = pd.DatetimeIndex(pd.to_datetime(raw.index, utc=True).tz_convert(NY),
                                 name="Datetime")
    return raw


class FakeYahoo:
    """Stands in for ``yf.download``: serves ``master`` bars in yfinance's shape for the range
    asked, as of ``self.now`` (a still-forming bar comes back half-built), and can fail the way
    yfinance does: by logging (``mode="log"``) or by raising (``mode="raise"``)."""

    def __init__(self, master: dict[str, pd.DataFrame], interval: str, now: pd.Timestamp):
        self.master = master
        self.interval = interval
        self.now = now
        self.calls: list[dict] = []
        self.failures: dict[str, list[str]] = {}  # symbol -> queue of "network"/"unknown"/"rate"
        self.mode = "log"
        self.lock = threading.Lock()

    def fail(self, symbol: str, *kinds: str) -> None:
        self.failures.setdefault(symbol, []).extend(kinds)

    def __call__(self, **kwargs):
        with self.lock:
            self.calls.append(kwargs)
            queue = self.failures.get(kwargs["tickers"], [])
            kind = queue.pop(0) if queue else None
        symbol = kwargs["tickers"]
        if symbol not in self.master and kind is None:
            kind = "unknown"
        if kind == "forever_rate":
            self.fail(symbol, "forever_rate")
            kind = "rate"
        if kind is not None:
            return self._failure(kind, symbol)
        bars = self.master[symbol]
        start = pd.Timestamp(kwargs["start"])
        end = pd.Timestamp(kwargs["end"]) if kwargs.get("end") is not None else self.now
        sel = bars[(bars.index >= start.floor("D") if self.interval == "1d"
                    else bars.index >= start) & (bars.index < end) & (bars.index <= self.now)]
        sel = sel.copy()
        forming = sel.index + INTERVAL_DELTA[self.interval] > self.now
        if forming.any():  # the newest bar is still being built: half its move, half its volume
            sel.loc[forming, "close"] = (sel.loc[forming, "open"] + sel.loc[forming, "close"]) / 2
            sel.loc[forming, "high"] = sel.loc[forming, ["open", "close"]].max(axis=1)
            sel.loc[forming, "low"] = sel.loc[forming, ["open", "close"]].min(axis=1)
            sel.loc[forming, "volume"] = sel.loc[forming, "volume"] // 2
        if len(sel) == 0:
            return self._failure("unknown", symbol)
        return yf_shaped(sel, symbol, self.interval, auto_adjust=kwargs["auto_adjust"])

    def _failure(self, kind: str, symbol: str):
        if self.mode == "raise":
            from yfinance.exceptions import YFPricesMissingError, YFRateLimitError

            if kind == "rate":
                raise YFRateLimitError()
            if kind == "network":
                raise ConnectionError("Failed to perform, curl: (7) Couldn't connect to server")
            raise YFPricesMissingError(symbol, "(30m 2026-09-30 -> 2026-11-28)")
        lines = {"network": NETWORK_LOG, "unknown": UNKNOWN_LOG, "rate": RATE_LOG}[kind]
        for line in lines:
            YF_LOGGER.error(line.format(sym=symbol))
        return yf_empty(symbol)


@pytest.fixture(autouse=True)
def _fresh_market_state():
    clear_cache_state()
    CACHE_STATS.reset()
    yield
    clear_cache_state()


@pytest.fixture
def fast_yahoo() -> YahooProvider:
    return YahooProvider(backoff_s=0.001, max_backoff_s=0.005, max_tries=3)


def install(monkeypatch: pytest.MonkeyPatch, fake: FakeYahoo) -> FakeYahoo:
    monkeypatch.setattr(yahoo_module, "_yf_download", fake)
    return fake


def master_bars(symbol: str = "AAPL", interval: str = "30m", n: int = 400,
                end: str = "2026-11-25") -> pd.DataFrame:
    bars = demo_bars(symbol, interval, n, end=end)
    bars.attrs.clear()
    return bars


# --------------------------------------------------------------------------- symbols


@pytest.mark.parametrize("text, expected", [
    ("aapl", "AAPL"), (" brk-b ", "BRK-B"), ("^gspc", "^GSPC"), ("eurusd=x", "EURUSD=X"),
    ("BTC-USD", "BTC-USD"), ("sap.de", "SAP.DE"), ("A" * 15, "A" * 15),
])
def test_normalize_symbol_accepts_tickers(text, expected):
    assert normalize_symbol(text) == expected


@pytest.mark.parametrize("text", ["", "   ", "A" * 16, "AA PL", "AAPL;DROP", "ÄPFEL", "$AAPL"])
def test_normalize_symbol_rejects_garbage(text):
    with pytest.raises(MarketDataError, match="ticker|symbol"):
        normalize_symbol(text)


# --------------------------------------------------------------------------- yfinance boundary


def test_download_kwargs_match_installed_yfinance_signature():
    import yfinance as yf

    params = inspect.signature(yf.download).parameters
    passed = set(yahoo_module.YF_DOWNLOAD_DEFAULTS) | {"tickers", "interval", "start", "end",
                                                        "timeout", "auto_adjust"}
    assert passed <= set(params), passed - set(params)


def test_recorded_multiindex_frame_becomes_utc_bars(monkeypatch):
    raw = recorded_aapl()
    assert isinstance(raw.columns, pd.MultiIndex) and raw.columns.names == ["Price", "Ticker"]
    assert str(raw.index.tz) == NY
    calls = []

    def fake(**kwargs):
        calls.append(kwargs)
        return raw

    monkeypatch.setattr(yahoo_module, "_yf_download", fake)
    now = pd.Timestamp("2026-11-25 22:00", tz="UTC")
    bars = fetch_bars("aapl", "30m", offline=False, now=now, lookback_days=5)
    assert list(bars.columns) == ["open", "high", "low", "close", "volume"]
    assert (bars.dtypes == "float64").all()
    assert str(bars.index.tz) == "UTC" and bars.index.name == "ts"
    assert bars.index[0] == pd.Timestamp("2026-11-24 14:30", tz="UTC")  # 09:30 New York (EST)
    assert len(bars) == 26
    assert bars.attrs["source"] == "yahoo" and bars.attrs["symbol"] == "AAPL"
    assert bars.attrs["last_bar_complete"] is True and bars.attrs["adjusted"] is True
    assert np.allclose(bars["close"].to_numpy(), raw[("Close", "AAPL")].to_numpy())
    (kw,) = calls
    assert kw["auto_adjust"] is True and kw["multi_level_index"] is True
    assert kw["ignore_tz"] is False and kw["progress"] is False and kw["tickers"] == "AAPL"
    assert kw["interval"] == "30m" and kw["prepost"] is False


def test_auto_adjust_off_drops_adj_close_and_keeps_raw_prices(monkeypatch):
    master = master_bars(n=60)
    fake = install(monkeypatch, FakeYahoo({"AAPL": master}, "30m", master.index[-1]
                                          + pd.Timedelta(hours=2)))
    provider = YahooProvider(auto_adjust=False)
    bars = fetch_bars("AAPL", "30m", offline=False, provider=provider, now=fake.now)
    assert fake.calls[0]["auto_adjust"] is False
    assert "Adj Close" in fake(**fake.calls[0]).columns.get_level_values(0)
    assert "adjclose" not in bars.columns and bars.attrs["adjusted"] is False
    assert np.allclose(bars["close"].to_numpy(), master["close"].to_numpy() / 0.98)


def test_auto_adjust_on_has_no_adj_close(monkeypatch):
    master = master_bars(n=60)
    fake = install(monkeypatch, FakeYahoo({"AAPL": master}, "30m",
                                          master.index[-1] + pd.Timedelta(hours=2)))
    raw = fake(tickers="AAPL", start=master.index[0], auto_adjust=True)
    assert "Adj Close" not in raw.columns.get_level_values(0)
    bars = fetch_bars("AAPL", "30m", offline=False, now=fake.now)
    pd.testing.assert_frame_equal(bars, master, check_freq=False)


def test_flat_columns_and_multi_ticker_frames_are_understood(monkeypatch):
    raw = recorded_aapl()
    flat = raw.droplevel("Ticker", axis=1)  # multi_level_index=False / older yfinance
    monkeypatch.setattr(yahoo_module, "_yf_download", lambda **kw: flat)
    now = pd.Timestamp("2026-11-25 22:00", tz="UTC")
    one = fetch_bars("AAPL", "30m", offline=False, now=now)
    other = raw.rename(columns={"AAPL": "MSFT"}, level="Ticker") * 2
    both = pd.concat([raw, other], axis=1).sort_index(level=0, axis=1)
    monkeypatch.setattr(yahoo_module, "_yf_download", lambda **kw: both)
    picked = fetch_bars("AAPL", "30m", offline=False, now=now)
    pd.testing.assert_frame_equal(one, picked)


def test_duplicates_keep_last_and_forming_bar_is_flagged(monkeypatch):
    raw = recorded_aapl()
    last = raw.iloc[[-1]].copy()
    last[("Close", "AAPL")] += 1.0  # Yahoo's updated version of the newest bar
    last[("High", "AAPL")] = last[[("High", "AAPL"), ("Close", "AAPL")]].max(axis=1)
    raw = pd.concat([raw, last])
    monkeypatch.setattr(yahoo_module, "_yf_download", lambda **kw: raw)
    newest = pd.Timestamp("2026-11-25 20:30", tz="UTC")  # 15:30 New York
    bars = fetch_bars("AAPL", "30m", offline=False, now=newest + pd.Timedelta(minutes=10))
    assert bars.index.is_unique and len(bars) == 26
    assert bars["close"].iloc[-1] == pytest.approx(last[("Close", "AAPL")].iloc[0])
    assert bars.attrs["last_bar_complete"] is False
    assert any("duplicate" in n for n in bars.attrs["notes"])
    done = fetch_bars("AAPL", "30m", offline=False, now=newest + pd.Timedelta(minutes=30))
    assert done.attrs["last_bar_complete"] is True


def test_intraday_lookback_is_clamped_to_yahoo_limit(monkeypatch):
    master = master_bars(n=60)
    fake = install(monkeypatch, FakeYahoo({"AAPL": master}, "30m",
                                          master.index[-1] + pd.Timedelta(hours=2)))
    bars = fetch_bars("AAPL", "30m", lookback_days=120, offline=False, now=fake.now)
    start = pd.Timestamp(fake.calls[0]["start"])
    assert start == fake.now - pd.Timedelta(days=59)
    assert any("clamped from 120 to 59 days" in n for n in bars.attrs["notes"])


def test_daily_bars_are_labelled_by_date_at_midnight_utc(monkeypatch):
    master = master_bars(interval="1d", n=30)
    fake = install(monkeypatch, FakeYahoo({"SPY": master}, "1d",
                                          master.index[-1] + pd.Timedelta(days=1, hours=1)))
    raw = fake(tickers="SPY", start=master.index[0], auto_adjust=True)
    assert raw.index.name == "Date" and str(raw.index.tz) == NY
    bars = fetch_bars("SPY", "1d", offline=False, now=fake.now)
    assert (bars.index == master.index).all()
    assert (bars.index.hour == 0).all() and str(bars.index.tz) == "UTC"


@pytest.mark.parametrize("mode", ["log", "raise"])
def test_unknown_symbol_names_it_and_says_what_to_do(monkeypatch, mode, fast_yahoo):
    fake = install(monkeypatch, FakeYahoo({}, "30m", pd.Timestamp("2026-11-25 22:00", tz="UTC")))
    fake.mode = mode
    with pytest.raises(UnknownSymbolError) as info:
        fetch_bars("ZZZZQ", "30m", offline=False, now=fake.now, provider=fast_yahoo)
    message = str(info.value)
    assert "ZZZZQ" in message and "finance.yahoo.com" in message and "upload" in message
    assert len(fake.calls) == 1  # not retried


@pytest.mark.parametrize("mode", ["log", "raise"])
def test_network_failure_falls_back_to_labelled_demo(monkeypatch, mode):
    master = master_bars(n=60)
    fake = install(monkeypatch, FakeYahoo({"AAPL": master}, "30m",
                                          pd.Timestamp("2026-11-25 22:00", tz="UTC")))
    fake.mode = mode
    fake.fail("AAPL", "network")
    bars = fetch_bars("AAPL", "30m", offline=False, now=fake.now)
    assert bars.attrs["source"] == "demo"
    assert "DEMO DATA" in bars.attrs["notes"][0] and "unreachable" in bars.attrs["notes"][0]
    assert CACHE_STATS["fallbacks"] == 1
    fake.fail("AAPL", "network")
    with pytest.raises(YahooUnreachableError, match="unreachable.*SWING_OFFLINE=1"):
        fetch_bars("AAPL", "30m", offline=False, now=fake.now, demo_fallback=False)


def test_yfinance_error_lines_are_not_printed(monkeypatch, capsys):
    fake = install(monkeypatch, FakeYahoo({}, "30m", pd.Timestamp("2026-11-25 22:00", tz="UTC")))
    with pytest.raises(UnknownSymbolError):
        fetch_bars("NOPE", "30m", offline=False, now=fake.now)
    assert "Failed download" not in capsys.readouterr().err


def test_rate_limit_is_retried_with_backoff(monkeypatch, fast_yahoo):
    master = master_bars(n=60)
    fake = install(monkeypatch, FakeYahoo({"AAPL": master}, "30m",
                                          master.index[-1] + pd.Timedelta(hours=2)))
    fake.fail("AAPL", "rate", "rate")
    bars = fetch_bars("AAPL", "30m", offline=False, now=fake.now, provider=fast_yahoo)
    assert len(fake.calls) == 3 and len(bars) == 60
    fake.mode = "raise"
    fake.fail("AAPL", "forever_rate")
    with pytest.raises(RateLimitedError, match="gave up after 3 tries"):
        fetch_bars("AAPL", "30m", offline=False, now=fake.now, provider=fast_yahoo)
    assert len(fake.calls) == 6


def test_offline_setting_serves_demo_without_calling_yahoo(monkeypatch):
    fake = install(monkeypatch, FakeYahoo({}, "30m", pd.Timestamp("2026-11-25 22:00", tz="UTC")))
    monkeypatch.setenv("SWING_OFFLINE", "1")
    bars = fetch_bars("MSFT", "1h")
    assert bars.attrs["source"] == "demo" and "offline" in bars.attrs["notes"][0]
    assert fake.calls == []


# --------------------------------------------------------------------------- fetch_many


def test_fetch_many_keeps_going_and_retries_rate_limited(monkeypatch, fast_yahoo):
    masters = {s: master_bars(s, n=40) for s in ("AAA", "CCC", "DDD")}
    now = masters["AAA"].index[-1] + pd.Timedelta(hours=2)
    fake = install(monkeypatch, FakeYahoo(masters, "30m", now))
    fake.fail("CCC", "rate")
    out = fetch_many(["aaa", "BAD", "ccc", "not valid!", "DDD", "AAA"], "30m", offline=False,
                     provider=fast_yahoo, max_workers=2, now=now)
    assert list(out) == ["not valid!", "AAA", "BAD", "CCC", "DDD"]
    assert isinstance(out["AAA"], pd.DataFrame) and isinstance(out["DDD"], pd.DataFrame)
    assert isinstance(out["CCC"], pd.DataFrame) and len(out["CCC"]) == 40
    assert isinstance(out["BAD"], UnknownSymbolError) and "BAD" in str(out["BAD"])
    assert isinstance(out["not valid!"], MarketDataError)
    assert sum(c["tickers"] == "CCC" for c in fake.calls) == 2
    assert sum(c["tickers"] == "AAA" for c in fake.calls) == 1  # duplicates fetched once


def test_fetch_many_offline_is_deterministic():
    a = fetch_many(["SPY", "QQQ"], "30m", offline=True, lookback_days=10)
    b = fetch_many(["SPY", "QQQ"], "30m", offline=True, lookback_days=10)
    for sym in ("SPY", "QQQ"):
        pd.testing.assert_frame_equal(a[sym], b[sym])
        assert a[sym].attrs["source"] == "demo"


# --------------------------------------------------------------------------- the bar cache


def test_cache_tops_up_only_missing_bars(monkeypatch, db_engine):
    master = master_bars(n=200)
    t0 = master.index[150] + pd.Timedelta(minutes=10)  # bar 150 still forming
    fake = install(monkeypatch, FakeYahoo({"AAPL": master}, "30m", t0))
    first = fetch_bars("AAPL", "30m", engine=db_engine, offline=False, now=t0, lookback_days=20)
    assert first.attrs["cache"] == "miss" and len(fake.calls) == 1
    assert first.attrs["last_bar_complete"] is False
    assert db.load_bars(db_engine, "AAPL", "30m")["close"].iloc[-1] != master["close"].iloc[150]
    assert CACHE_STATS.snapshot()["misses"] == 1

    # within the freshness window (10 min for 30m): served from the database, no download
    again = fetch_bars("AAPL", "30m", engine=db_engine, offline=False,
                       now=t0 + pd.Timedelta(minutes=5), lookback_days=20)
    assert len(fake.calls) == 1 and again.attrs["source"] == "cache"
    assert again.attrs["cache"] == "hit" and CACHE_STATS["hits"] == 1
    pd.testing.assert_frame_equal(again, first, check_freq=False)

    # later: one download starting at the last cached bar (refreshing it), not the whole range
    fake.now = master.index[160] + pd.Timedelta(minutes=31)
    later = fetch_bars("AAPL", "30m", engine=db_engine, offline=False, now=fake.now,
                       lookback_days=20)
    assert len(fake.calls) == 2
    assert pd.Timestamp(fake.calls[1]["start"]) == master.index[150]
    assert later.attrs["cache"] == "topup" and later.attrs["source"] == "yahoo"
    assert later.index[-1] == master.index[160] and later.attrs["last_bar_complete"] is True
    expected = master.loc[later.index]
    pd.testing.assert_frame_equal(later, expected, check_freq=False)  # bar 150 now complete
    assert CACHE_STATS["topups"] == 1 and CACHE_STATS["misses"] == 2


def test_cached_forming_bar_is_refetched_once_it_closes(monkeypatch, sqlite_engine):
    master = master_bars(n=100)
    opened = master.index[80]
    fake = install(monkeypatch, FakeYahoo({"AAPL": master}, "30m", opened
                                          + pd.Timedelta(minutes=25)))
    fetch_bars("AAPL", "30m", engine=sqlite_engine, offline=False, now=fake.now,
               lookback_days=20)
    fake.now = opened + pd.Timedelta(minutes=31)  # inside the freshness window, bar now closed
    bars = fetch_bars("AAPL", "30m", engine=sqlite_engine, offline=False, now=fake.now,
                      lookback_days=20)
    assert len(fake.calls) == 2 and bars.attrs["cache"] == "topup"
    assert bars.index[-1] == master.index[81] and bars.attrs["last_bar_complete"] is False
    assert bars.loc[opened, "close"] == master["close"].iloc[80]  # no longer half-built


def test_cache_fetches_older_bars_for_a_longer_lookback(monkeypatch, sqlite_engine):
    master = master_bars(n=300)
    now = master.index[-1] + pd.Timedelta(hours=1)
    fake = install(monkeypatch, FakeYahoo({"AAPL": master}, "30m", now))
    fetch_bars("AAPL", "30m", engine=sqlite_engine, offline=False, now=now, lookback_days=7)
    longer = fetch_bars("AAPL", "30m", engine=sqlite_engine, offline=False,
                        now=now + pd.Timedelta(minutes=1), lookback_days=20)
    assert len(fake.calls) == 2
    older = fake.calls[1]
    assert pd.Timestamp(older["end"]) <= pd.Timestamp(fake.calls[0]["start"]) + pd.Timedelta(
        days=4)
    assert longer.index[0] == master.index[master.index >= now - pd.Timedelta(days=20)][0]
    assert len(longer) == (master.index >= now - pd.Timedelta(days=20)).sum()


def test_freshness_window_depends_on_interval(monkeypatch, sqlite_engine):
    master = master_bars(interval="1d", n=300)
    now = master.index[-1] + pd.Timedelta(days=1, hours=2)
    fake = install(monkeypatch, FakeYahoo({"SPY": master}, "1d", now))
    fetch_bars("SPY", "1d", engine=sqlite_engine, offline=False, now=now, lookback_days=200)
    fetch_bars("SPY", "1d", engine=sqlite_engine, offline=False, now=now + pd.Timedelta(hours=5),
               lookback_days=200)
    assert len(fake.calls) == 1  # 1d: fresh for 6 hours
    fetch_bars("SPY", "1d", engine=sqlite_engine, offline=False, now=now + pd.Timedelta(hours=7),
               lookback_days=200)
    assert len(fake.calls) == 2


def test_cache_serves_stale_bars_when_yahoo_is_unreachable(monkeypatch, sqlite_engine):
    master = master_bars(n=100)
    now = master.index[-1] + pd.Timedelta(hours=1)
    fake = install(monkeypatch, FakeYahoo({"AAPL": master}, "30m", now))
    fetch_bars("AAPL", "30m", engine=sqlite_engine, offline=False, now=now, lookback_days=20)
    fake.fail("AAPL", "network")
    stale = fetch_bars("AAPL", "30m", engine=sqlite_engine, offline=False,
                       now=now + pd.Timedelta(hours=1), lookback_days=20)
    assert stale.attrs["source"] == "cache" and stale.attrs["cache"] == "stale"
    assert stale.attrs["notes"][0].startswith("STALE") and len(stale) == 100


def test_demo_fallback_is_never_cached(monkeypatch, sqlite_engine):
    fake = install(monkeypatch, FakeYahoo({}, "30m", pd.Timestamp("2026-11-25 22:00", tz="UTC")))
    fake.fail("AAPL", "network")
    demo = fetch_bars("AAPL", "30m", engine=sqlite_engine, offline=False, now=fake.now)
    assert demo.attrs["source"] == "demo"
    offline = fetch_bars("AAPL", "30m", engine=sqlite_engine, offline=True, now=fake.now)
    assert offline.attrs["source"] == "demo"
    assert len(db.load_bars(sqlite_engine, "AAPL", "30m")) == 0


def test_cache_counter_is_thread_safe_and_hookable():
    counter = CacheCounter("hits", "misses")
    seen = []
    counter.subscribe(lambda name, n: seen.append(name))
    threads = [threading.Thread(target=lambda: [counter.incr("hits") for _ in range(500)])
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counter["hits"] == 2000 and dict(counter) == {"hits": 2000, "misses": 0}
    assert len(seen) == 2000
    counter.reset()
    assert counter["hits"] == 0


# --------------------------------------------------------------------------- files


def _odd_csv() -> str:
    return (
        "Date_Time,OPEN price,HIGH,low,Close,Adj_Close,VOL\n"
        "2024-03-01 09:30,100,101,99.5,100.5,100.5,1000\n"
        "2024-03-01 10:00,100.5,102,100,101.5,101.5,1200\n"
        "2024-03-01 10:30,101.5,101.8,100.9,101,101,900\n"
        "2024-03-01 11:00,101,101.2,100.2,100.4,100.4,800\n"
    )


def test_csv_with_odd_spellings_and_naive_new_york_times():
    bars = read_bars_file(_odd_csv().encode(), filename="aapl_30m.csv")
    assert bars.attrs["source"] == "file" and bars.attrs["symbol"] == "AAPL"
    assert bars.attrs["interval"] == "30m"  # inferred from the median spacing
    assert bars.index[0] == pd.Timestamp("2024-03-01 14:30", tz="UTC")  # 09:30 EST
    assert list(bars.columns) == ["open", "high", "low", "close", "volume"]
    assert bars["volume"].tolist() == [1000, 1200, 900, 800]


def test_csv_summer_time_and_offsets():
    text = "timestamp,open,high,low,close,volume\n" + "".join(
        f"2024-07-01T{h}:{m}:00-04:00,10,11,9,10.5,5\n" for h, m in
        (("09", "30"), ("10", "30"), ("11", "30"), ("12", "30")))
    bars = read_bars_file(io.StringIO(text), filename="x.csv", symbol="spy")
    assert bars.attrs["interval"] == "1h" and bars.attrs["symbol"] == "SPY"
    assert bars.index[0] == pd.Timestamp("2024-07-01 13:30", tz="UTC")


def test_csv_mixed_dst_offsets_and_epoch_seconds():
    text = ("Datetime,Open,High,Low,Close,Volume\n"
            "2024-03-08 15:30:00-05:00,1,2,1,1.5,1\n2024-03-11 09:30:00-04:00,1,2,1,1.5,1\n"
            "2024-03-11 10:00:00-04:00,1,2,1,1.5,1\n2024-03-11 10:30:00-04:00,1,2,1,1.5,1\n")
    bars = read_bars_file(text.encode(), filename="x.csv")
    assert bars.attrs["interval"] == "30m"
    assert list(bars.index[:2]) == [pd.Timestamp("2024-03-08 20:30", tz="UTC"),
                                    pd.Timestamp("2024-03-11 13:30", tz="UTC")]
    epochs = "".join(f"{int(ts.timestamp())},1,2,1,1.5,1\n" for ts in bars.index)
    again = read_bars_file(("time,open,high,low,close,volume\n" + epochs).encode(),
                           filename="x.csv")
    assert (again.index == bars.index).all()


def test_daily_csv_dates_become_midnight_utc_and_adj_close_adjusts():
    text = ("date,open,high,low,close,adj close,volume\n"
            "2024-01-02,100,102,99,101,50.5,10\n2024-01-03,101,103,100,102,51,10\n"
            "2024-01-04,102,104,101,103,51.5,10\n2024-01-05,103,105,102,104,52,10\n")
    bars = read_bars_file(text.encode(), filename="MSFT.csv")
    assert bars.attrs["interval"] == "1d"
    assert bars.index[0] == pd.Timestamp("2024-01-02", tz="UTC")
    assert bars["close"].iloc[0] == pytest.approx(50.5)  # scaled by Adj Close / Close
    assert bars["high"].iloc[0] == pytest.approx(51.0)
    raw = read_bars_file(text.encode(), filename="MSFT.csv", adjust=False)
    assert raw["close"].iloc[0] == 101


def test_parquet_with_datetime_index_path_and_filelike(tmp_path):
    master = master_bars(n=50)
    frame = master.rename(columns=str.title)
    frame.index = frame.index.tz_convert(NY).rename("Datetime")
    path = tmp_path / "upload.parquet"
    frame.to_parquet(path)
    from_path = read_bars_file(path, symbol="AAPL")
    pd.testing.assert_frame_equal(from_path, master, check_freq=False)
    buffer = io.BytesIO(path.read_bytes())
    buffer.name = "whatever.pq"
    from_buffer = FileProvider(buffer).fetch("AAPL", "30m")
    pd.testing.assert_frame_equal(from_buffer, master, check_freq=False)
    sniffed = read_bars_file(path.read_bytes(), symbol="AAPL")  # no name: sniffed from PAR1
    assert len(sniffed) == 50


def test_yfinance_csv_and_multiindex_parquet(tmp_path):
    bars = read_bars_file(DATA / "yf_download_AAPL_30m.csv")
    assert len(bars) == 26 and bars.attrs["symbol"] == "YF"  # from the file name's first token
    assert bars.index[0] == pd.Timestamp("2026-11-24 14:30", tz="UTC")
    raw = recorded_aapl()
    raw.to_parquet(tmp_path / "aapl.parquet")
    again = read_bars_file(tmp_path / "aapl.parquet", symbol="AAPL")
    pd.testing.assert_frame_equal(again, bars, check_freq=False, check_exact=False)


def test_nasdaq_style_export_and_separate_date_time_columns():
    text = ("Date,Time,Close/Last,Volume,Open,High,Low\n"
            "03/01/2024,09:30,$100.50,\"1,000\",$100.00,$101.00,$99.50\n"
            "03/01/2024,09:45,$101.00,\"1,100\",$100.50,$101.20,$100.40\n"
            "03/01/2024,10:00,$100.80,\"900\",$101.00,$101.10,$100.60\n")
    bars = read_bars_file(text.encode(), filename="qqq.csv")
    assert bars.attrs["interval"] == "15m"
    assert bars["volume"].tolist() == [1000, 1100, 900]
    assert bars["close"].iloc[0] == 100.5


def test_finer_bars_are_aggregated_to_the_interval_asked():
    idx = pd.date_range("2024-03-04 09:30", periods=12, freq="5min")
    text = "datetime,open,high,low,close,volume\n" + "".join(
        f"{ts:%Y-%m-%d %H:%M},{10 + i},{11 + i},{9 + i},{10.5 + i},1\n" for i, ts in
        enumerate(idx))
    with pytest.raises(MarketDataError, match="interval='15m'"):
        read_bars_file(text.encode(), filename="a.csv")
    bars = read_bars_file(text.encode(), filename="a.csv", interval="15m")
    assert len(bars) == 4 and bars["volume"].tolist() == [3, 3, 3, 3]
    assert bars["open"].iloc[0] == 10 and bars["close"].iloc[0] == 12.5
    assert bars["high"].iloc[0] == 13 and bars["low"].iloc[0] == 9


def test_file_interval_mismatch_is_explained():
    with pytest.raises(MarketDataError, match="1d bars but 30m"):
        read_bars_file(
            b"date,open,high,low,close\n2024-01-02,1,2,1,1.5\n2024-01-03,1,2,1,1.5\n",
            filename="x.csv", interval="30m")


def test_file_limits_and_missing_columns(tmp_path):
    with pytest.raises(MarketDataError, match="limit is"):
        read_bars_file(_odd_csv().encode(), filename="a.csv", max_bytes=50)
    with pytest.raises(MarketDataError, match="more than 2 rows"):
        read_bars_file(_odd_csv().encode(), filename="a.csv", max_rows=2)
    with pytest.raises(MarketDataError, match="lacks column.*High.*Low"):
        read_bars_file(b"date,open,close\n2024-01-02,1,2\n2024-01-03,1,2\n", filename="a.csv")
    with pytest.raises(MarketDataError, match="not found"):
        read_bars_file(tmp_path / "missing.csv")
    with pytest.raises(MarketDataError, match="row 3"):
        read_bars_file(b"date,open,high,low,close\n2024-01-02,1,2,1,1\nsoon,1,2,1,1\n",
                       filename="a.csv")


# --------------------------------------------------------------------------- validation


def _good(n: int = 5) -> pd.DataFrame:
    return master_bars(n=n)


def test_validation_errors_say_what_and_where():
    with pytest.raises(MarketDataError, match="No data for XYZ"):
        validate_bars(_good().iloc[0:0], symbol="XYZ", interval="30m")
    with pytest.raises(MarketDataError, match="missing column.*high, volume"):
        validate_bars(_good().drop(columns=["high", "volume"]), symbol="XYZ")
    bad = _good()
    bad.iloc[2, bad.columns.get_loc("close")] = np.nan
    ts_ny = bad.index[2].tz_convert(NY).strftime("%Y-%m-%d %H:%M %Z")  # e.g. "… 10:30 EST"
    with pytest.raises(MarketDataError, match="NaN.*'close'.*1 row") as info:
        validate_bars(bad, symbol="XYZ")
    assert ts_ny in str(info.value)
    for value in (np.inf, -np.inf):  # never a take_profit of Infinity downstream
        bad = _good()
        bad.iloc[2, bad.columns.get_loc("high")] = value
        with pytest.raises(MarketDataError, match="infinite values in 'high'.*1 row"):
            validate_bars(bad, symbol="XYZ")
    bad = _good()
    bad.iloc[1, bad.columns.get_loc("low")] = 0.0
    with pytest.raises(MarketDataError, match="non-positive 'low'"):
        validate_bars(bad)
    bad = _good()
    bad.iloc[3, bad.columns.get_loc("high")] = bad["low"].iloc[3] - 1
    with pytest.raises(MarketDataError, match="high below low"):
        validate_bars(bad)
    bad = _good()
    bad.iloc[3, bad.columns.get_loc("high")] = bad[["open", "close"]].iloc[3].min()
    with pytest.raises(MarketDataError, match="do not contain open and close"):
        validate_bars(bad)


def test_validation_errors_name_a_daily_bar_by_its_trading_date():
    # a daily bar is labelled by its trading date at 00:00 UTC; in New York time it would be
    # the evening before (Monday's bar on a Sunday)
    index = pd.DatetimeIndex(["2024-03-01", "2024-03-04", "2024-03-05"], tz="UTC", name="ts")
    bad = pd.DataFrame({"open": 10.0, "high": 11.0, "low": 9.0, "close": [10.5, np.nan, 10.2],
                        "volume": 1e6}, index=index)
    for interval in ("1d", None):  # told, or inferred from the 00:00 UTC labels
        with pytest.raises(MarketDataError) as info:
            validate_bars(bad, symbol="XYZ", interval=interval)
        message = str(info.value)
        assert "first at 2024-03-04." in message, message
        assert "2024-03-03" not in message and "19:00" not in message


def test_too_few_bars_says_how_many_and_how_to_get_more():
    with pytest.raises(MarketDataError) as info:
        validate_bars(_good(5), symbol="XYZ", interval="30m", min_bars=120)
    message = str(info.value)
    assert "5 bars" in message and "120" in message
    assert "longer lookback" in message and "1d" in message and "file" in message
    assert validate_bars(_good(5), min_bars=5) is not None


def test_fetch_bars_applies_min_bars():
    with pytest.raises(MarketDataError, match="at least 100000 are needed"):
        fetch_bars("SPY", "1d", offline=True, lookback_days=30, min_bars=100_000)


# --------------------------------------------------------------------------- demo bars


def test_demo_is_deterministic_and_suffix_stable():
    a = demo_bars("AAPL", "30m", 1000, end="2026-06-30")
    b = demo_bars("aapl", "30m", 1000, end="2026-06-30")
    pd.testing.assert_frame_equal(a, b)
    short = demo_bars("AAPL", "30m", 300, end="2026-06-30")
    pd.testing.assert_frame_equal(short, a.iloc[-300:])
    assert not np.allclose(demo_bars("MSFT", "30m", 1000, end="2026-06-30")["close"], a["close"])
    assert not np.allclose(demo_bars("AAPL", "15m", 1000, end="2026-06-30")["close"], a["close"])
    assert a.attrs["source"] == "demo" and a.attrs["symbol"] == "AAPL"


def test_demo_does_not_depend_on_python_hash_seed():
    code = ("from swing_core.market import demo_bars;"
            "print(demo_bars('SPY', '1h', 50, end='2026-03-02')['close'].sum())")
    outs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONHASHSEED": seed},
                       cwd=Path(__file__).parent.parent).stdout
        for seed in ("1", "2")
    }
    assert len(outs) == 1


def test_demo_default_end_is_the_last_session_before_today():
    bars = demo_bars("SPY", "30m", 100)
    pd.testing.assert_frame_equal(bars, demo_bars("SPY", "30m", 100))
    last_ny = bars.index[-1].tz_convert(NY)
    assert last_ny.date() == demo_anchor()
    assert last_ny.date() < pd.Timestamp.now(tz=NY).date()
    assert (last_ny.hour, last_ny.minute) == (15, 30)
    assert bars.attrs["last_bar_complete"] is True
    # a Monday's anchor is the previous Friday; after Thanksgiving, the Wednesday
    assert str(demo_anchor(pd.Timestamp("2026-11-30 15:00", tz=NY))) == "2026-11-27"
    assert str(demo_anchor(pd.Timestamp("2026-11-27 10:00", tz=NY))) == "2026-11-25"


@pytest.mark.parametrize("interval, per_day", [("15m", 26), ("30m", 13), ("1h", 7)])
def test_demo_sessions_hours_weekdays_holidays(interval, per_day):
    bars = demo_bars("QQQ", interval, per_day * 300, end="2026-01-30")
    local = bars.index.tz_convert(NY)
    minutes = local.hour * 60 + local.minute
    assert (local.dayofweek < 5).all()
    assert minutes.min() == 9 * 60 + 30 and minutes.max() < 16 * 60
    assert (pd.Series(local.date).value_counts() == per_day).all()
    dates = {str(d) for d in local.date}
    assert not dates & {"2025-12-25", "2025-07-04", "2025-11-27", "2026-01-19", "2025-04-18"}
    assert bars.index.is_monotonic_increasing and bars.index.is_unique
    assert str(bars.index.tz) == "UTC"


def test_demo_daily_bars_are_weekday_dates():
    bars = demo_bars("SPY", "1d", 500, end="2026-01-30")
    assert (bars.index.hour == 0).all() and (bars.index.dayofweek < 5).all()
    assert bars.index[-1] == pd.Timestamp("2026-01-30", tz="UTC")


@settings(max_examples=25, deadline=None)
@given(symbol=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ^=.-0123456789", min_size=1,
                      max_size=8),
       interval=st.sampled_from(["15m", "30m", "1h", "1d"]),
       n=st.integers(min_value=1, max_value=3000))
def test_demo_ohlc_is_consistent(symbol, interval, n):
    bars = demo_bars(symbol, interval, n, end="2025-09-15")
    assert len(bars) == n
    values = bars.to_numpy()
    assert np.isfinite(values).all()
    o, h, lo, c, v = values.T
    assert (h >= np.maximum(o, c)).all() and (lo <= np.minimum(o, c)).all()
    assert (lo > 0).all() and (v > 0).all()
    validate_bars(bars, symbol=symbol, interval=interval)


def test_demo_has_trends_ranges_clustering_and_gaps():
    bars = demo_bars("SPY", "30m", 6000, end="2026-06-30")
    close = bars["close"]
    ema = close.ewm(span=20, adjust=False).mean()
    slope = (ema - ema.shift(6)) / close
    trending = slope.abs() > 0.01
    assert 0.05 < trending.mean() < 0.6
    assert (slope > 0.01).any() and (slope < -0.01).any()
    quiet = slope.abs().rolling(60).max() < 0.006  # 60 bars without any real slope: a range
    assert quiet.sum() > 100
    returns = np.log(close).diff().dropna()
    assert returns.abs().autocorr(1) > 0.05  # volatility clustering
    first = bars.index.tz_convert(NY).time == pd.Timestamp("09:30").time()
    gap = (np.log(bars["open"]) - np.log(close.shift(1))).abs()
    assert gap[first].mean() > 3 * gap[~first].mean()  # overnight gaps


def test_demo_makes_long_histories():  # its speed is measured in benchmarks/bench_engine.py
    big = demo_bars("BENCH", "15m", 100_000, end="2026-06-30")
    assert len(big) == 100_000 and big.index.is_unique and big.index.is_monotonic_increasing
    assert big.index[-1] <= pd.Timestamp("2026-07-01", tz="UTC")


def test_demo_provider_covers_the_lookback():
    bars = DemoProvider(end=pd.Timestamp("2026-06-30").date()).fetch("SPY", "1h",
                                                                     lookback_days=30)
    assert len(bars) == round(30 * 252 / 365.25) * 7
