"""Yahoo Finance bars through yfinance 1.x: the provider, its retries, and what its failures mean.

Behaviour of yfinance 1.7 that this module relies on (read from its source, ``multi.py`` and
``scrapers/history.py``):

* ``auto_adjust`` defaults to True in 1.x but we always pass it: SwingDesk uses
  ``auto_adjust=True`` (open/high/low/close adjusted for splits and dividends, no
  ``Adj Close`` column).  With ``auto_adjust=False`` the prices are unadjusted and the frame
  says so in ``attrs["adjusted"]``.
* ``download()`` does not raise for an unknown symbol, a network failure or a rate limit: each
  ticker's exception is caught, an empty frame is returned and the error is *logged* on the
  ``yfinance`` logger ("1 Failed download: ['XYZ']: YFPricesMissingError(...)",
  "DNSError(...)", "YFRateLimitError(...)").  We capture those records (for the calling thread)
  to tell "unknown symbol / no data" from "Yahoo unreachable" from "rate limited".  Exceptions
  that do escape (other versions, ``Ticker.history`` with exceptions enabled) are classified
  the same way.
* Intraday history is limited (15m/30m about 60 days, 1h about 730 days): requests are clamped
  to ``config.YAHOO_MAX_DAYS`` and the clamp is reported in ``attrs["notes"]``.

The shape of what ``download()`` returns (column levels, timezones) is turned into a bars frame
by :mod:`~swing_core.market.yfinance_frame`.  The only call into yfinance is
:func:`_yf_download`; tests replace it with recorded frames.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pandas as pd

from swing_core.clock import utc_timestamp
from swing_core.config import INTERVAL_DELTA, YAHOO_MAX_DAYS, validate_interval
from swing_core.errors import MarketDataError
from swing_core.market._common import DEFAULT_LOOKBACK_DAYS, label, yahoo_limit_note
from swing_core.market.yfinance_frame import normalize_yfinance_frame
from swing_core.timefmt import bar_time_text

__all__ = [
    "YF_DOWNLOAD_DEFAULTS",
    "RateLimitedError",
    "UnknownSymbolError",
    "YahooProvider",
    "YahooStatus",
    "YahooUnreachableError",
    "yahoo_status",
]

log = logging.getLogger(__name__)

#: Keyword arguments of every ``yf.download`` call (explicit, so yfinance's defaults can change).
YF_DOWNLOAD_DEFAULTS: dict[str, Any] = {
    "auto_adjust": True,
    "actions": False,
    "prepost": False,  # regular session only
    "repair": False,
    "keepna": False,
    "threads": False,  # one ticker per call; our own pool parallelizes (fetch_many)
    "progress": False,
    "ignore_tz": False,  # keep the exchange timezone so we can convert to UTC
    "group_by": "column",  # (Price, Ticker) column levels
    "multi_level_index": True,
}


def _yf_download(**kwargs: Any) -> pd.DataFrame | None:
    """The one call into yfinance: ``yf.download(**kwargs)`` (imported lazily: ~1 s to import)."""
    import yfinance as yf

    return yf.download(**kwargs)


class YahooUnreachableError(MarketDataError):
    """Yahoo Finance could not be reached (network error, DNS failure, timeout, outage)."""

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class RateLimitedError(MarketDataError):
    """Yahoo Finance answered "Too Many Requests" (HTTP 429) every time we asked."""


class UnknownSymbolError(MarketDataError):
    """Yahoo Finance has no bars for this symbol and range (unknown or delisted symbol)."""

    def __init__(self, message: str, *, symbol: str, reason: str = "") -> None:
        super().__init__(message)
        self.symbol = symbol
        self.reason = reason


_RATE_MARKERS = ("yfratelimiterror", "too many requests", "rate limited", "429")
_NETWORK_MARKERS = (
    "dnserror", "could not resolve", "failed to perform", "connectionerror", "connection refused",
    "connection reset", "connection aborted", "timeout", "timed out", "sslerror", "proxyerror",
    "curl: (", "network is unreachable", "max retries exceeded", "currently down",
    "temporary failure in name resolution", "name or service not known",
)
_NO_DATA_MARKERS = ("delisted", "no price data", "no timezone", "no data found", "not found",
                    "404", "yfpricesmissingerror", "yftzmissingerror", "yftickermissingerror")


def _kind(text: str) -> str:
    """Classify an error text: ``rate``, ``network``, ``no_data`` or ``other``."""
    low = text.lower()
    if any(m in low for m in _RATE_MARKERS):
        return "rate"
    if any(m in low for m in _NETWORK_MARKERS):
        return "network"
    if any(m in low for m in _NO_DATA_MARKERS):
        return "no_data"
    return "other"


def _exception_kind(exc: BaseException) -> str:
    names = " ".join(cls.__name__ for cls in type(exc).__mro__)
    kind = _kind(f"{names} {exc}")
    if kind == "other" and isinstance(exc, OSError):  # requests / curl_cffi errors are OSErrors
        return "network"
    return kind


class _ThreadErrorCapture(logging.Handler):
    """Collects the ``yfinance`` logger's warnings and errors emitted by one thread."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            try:
                self.messages.append(record.getMessage())
            except Exception:  # a malformed record must not break a download
                self.messages.append(str(record.msg))


@contextmanager
def _capture_yfinance_errors() -> Iterator[list[str]]:
    """Capture what yfinance logs during a call (it reports failures by logging, not raising).

    While attached, the handler also keeps yfinance from printing those lines to stderr.
    """
    handler = _ThreadErrorCapture()
    logger = logging.getLogger("yfinance")
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


class YahooProvider:
    """Bars from Yahoo Finance (``source == "yahoo"``), adjusted prices by default.

    ``auto_adjust``: passed explicitly to yfinance (True: OHLC adjusted for splits/dividends).
    ``timeout_s``: per-request timeout.  Rate limits (YFRateLimitError / HTTP 429) are retried
    with exponential back-off and jitter, at most ``max_tries`` attempts, waiting between
    ``backoff_s`` and ``max_backoff_s`` seconds.
    """

    name = "yahoo"
    cacheable = True

    def __init__(self, *, auto_adjust: bool = True, timeout_s: float = 10.0, max_tries: int = 4,
                 backoff_s: float = 1.0, max_backoff_s: float = 30.0) -> None:
        self.auto_adjust = auto_adjust
        self.timeout_s = timeout_s
        self.max_tries = max(1, int(max_tries))
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s

    def fetch(self, symbol: str, interval: str, *, lookback_days: int | None = None,
              now: pd.Timestamp | None = None) -> pd.DataFrame:
        """The last ``lookback_days`` calendar days of bars (clamped to Yahoo's limit)."""
        validate_interval(interval)
        now = _now(now)
        days = lookback_days or DEFAULT_LOOKBACK_DAYS[interval]
        return self.fetch_range(symbol, interval, start=now - pd.Timedelta(days=days), now=now)

    def fetch_range(self, symbol: str, interval: str, *, start: pd.Timestamp,
                    end: pd.Timestamp | None = None, now: pd.Timestamp | None = None
                    ) -> pd.DataFrame:
        """Bars with open time in ``[start, end)`` (``end`` None: up to now), UTC.

        Raises :class:`UnknownSymbolError` (no bars: unknown symbol, delisted, empty range),
        :class:`YahooUnreachableError` (network) or :class:`RateLimitedError` (429 after all
        tries).  ``attrs["last_bar_complete"]`` is False while the last bar is still forming.
        """
        validate_interval(interval)
        now = _now(now)
        notes: list[str] = []
        start = _utc(start)
        max_days = YAHOO_MAX_DAYS.get(interval)
        if max_days is not None and start < now - pd.Timedelta(days=max_days):
            start = now - pd.Timedelta(days=max_days)
            notes.append(f"{yahoo_limit_note(interval)}: history starts {start:%Y-%m-%d}.")
        if end is not None and _utc(end) <= start:
            raise UnknownSymbolError(
                f"No {interval} bars of {symbol} before {start:%Y-%m-%d} are available from "
                f"Yahoo ({yahoo_limit_note(interval)}).", symbol=symbol, reason="out of range")
        kwargs = dict(YF_DOWNLOAD_DEFAULTS)
        kwargs.update(tickers=symbol, interval=interval, auto_adjust=self.auto_adjust,
                      start=start.to_pydatetime(), timeout=self.timeout_s,
                      end=None if end is None else _utc(end).to_pydatetime())
        # tenacity (and the asyncio it imports) only when Yahoo is asked: not at every start
        from tenacity import (
            Retrying,
            retry_if_exception_type,
            stop_after_attempt,
            wait_random_exponential,
        )

        retrying = Retrying(
            retry=retry_if_exception_type(RateLimitedError),
            stop=stop_after_attempt(self.max_tries),
            wait=wait_random_exponential(multiplier=self.backoff_s, max=self.max_backoff_s),
            reraise=True,
        )
        try:
            raw = retrying(self._download_once, symbol, interval, kwargs)
        except RateLimitedError as exc:
            raise RateLimitedError(
                f"Yahoo Finance is rate-limiting requests (HTTP 429) for {symbol}: gave up after "
                f"{self.max_tries} tries. Wait a minute and retry, fetch fewer symbols at once, "
                "or upload a CSV/Parquet file."
            ) from exc
        frame, more = normalize_yfinance_frame(raw, symbol, interval,
                                               auto_adjust=self.auto_adjust)
        if len(frame) == 0:
            raise _unknown_symbol(symbol, interval, "Yahoo returned no bars")
        # Yahoo may add bars outside the range asked for; keep the bar containing `start` on
        first = start.normalize() if interval == "1d" else start.floor(INTERVAL_DELTA[interval])
        frame = frame.loc[frame.index >= first]
        if end is not None:
            frame = frame.loc[frame.index < _utc(end)]
        frame = frame.loc[frame.index <= now]  # a replay clock in the past sees no later bars
        if len(frame) == 0:
            raise _unknown_symbol(symbol, interval,
                                  f"no bars since {bar_time_text(start, interval)}")
        frame = label(frame, symbol=symbol, interval=interval, source="yahoo",
                      notes=notes + more, now=now)
        frame.attrs["adjusted"] = bool(self.auto_adjust)
        return frame

    def _download_once(self, symbol: str, interval: str, kwargs: dict[str, Any]
                       ) -> pd.DataFrame | None:
        try:
            raw = self._download_classified(symbol, interval, kwargs)
        except YahooUnreachableError as exc:
            _CONTACT.record(False, exc.detail or str(exc))
            raise
        except (RateLimitedError, UnknownSymbolError):
            _CONTACT.record(True)  # Yahoo answered, even if with no bars
            raise
        _CONTACT.record(True)
        return raw

    def _download_classified(self, symbol: str, interval: str, kwargs: dict[str, Any]
                             ) -> pd.DataFrame | None:
        with _capture_yfinance_errors() as logged:
            try:
                raw = _yf_download(**kwargs)
            except Exception as exc:
                raise _classified(_exception_kind(exc), symbol, interval, str(exc)) from exc
        if raw is not None and len(raw) and not raw.isna().all(axis=None):
            return raw
        if logged:
            log.debug("yfinance reported for %s: %s", symbol, " | ".join(logged))
            kinds = [_kind(m) for m in logged]
            for kind in ("rate", "network", "no_data"):
                matches = [m for m, k in zip(logged, kinds, strict=True) if k == kind]
                if matches:
                    raise _classified(kind, symbol, interval, matches[-1])
            raise _classified("no_data", symbol, interval, logged[-1])
        return raw


@dataclass(frozen=True)
class YahooStatus:
    """What this process last saw of Yahoo Finance: ``state`` "reachable", "unreachable" or
    "unknown" (not asked yet), when (UTC), and the error detail of a failure."""

    state: str
    at: pd.Timestamp | None = None
    detail: str = ""


class _Contact:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._status = YahooStatus("unknown")

    def record(self, ok: bool, detail: str = "") -> None:
        with self._lock:
            self._status = YahooStatus("reachable" if ok else "unreachable", utc_timestamp(),
                                       "" if ok else detail[:200])

    def get(self) -> YahooStatus:
        with self._lock:
            return self._status


_CONTACT = _Contact()


def yahoo_status() -> YahooStatus:
    """The outcome of this process's last download from Yahoo Finance (no network call)."""
    return _CONTACT.get()


def _now(now: pd.Timestamp | None) -> pd.Timestamp:
    return utc_timestamp() if now is None else _utc(now)


def _utc(value: Any) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _unknown_symbol(symbol: str, interval: str, reason: str) -> UnknownSymbolError:
    return UnknownSymbolError(
        f"No data for {symbol!r} at {interval} from Yahoo Finance ({reason.strip()}). Check the "
        f"symbol on finance.yahoo.com (for example BRK-B, ^GSPC, EURUSD=X, BTC-USD), try the 1d "
        "interval, or upload a CSV/Parquet file.",
        symbol=symbol, reason=reason,
    )


def _classified(kind: str, symbol: str, interval: str, detail: str) -> MarketDataError:
    detail = " ".join(detail.split())[:300]
    if kind == "rate":
        return RateLimitedError(f"Yahoo Finance rate-limited the request for {symbol}: {detail}")
    if kind == "network":
        return YahooUnreachableError(
            f"Yahoo Finance is unreachable ({detail}). Check the internet connection, set "
            "SWING_OFFLINE=1 to work with demo data, or upload a CSV/Parquet file.",
            detail=detail,
        )
    if kind == "no_data":
        return _unknown_symbol(symbol, interval, f"Yahoo says: {detail}")
    return MarketDataError(
        f"Yahoo Finance download of {symbol} ({interval}) failed: {detail}. Try again later or "
        "upload a CSV/Parquet file."
    )
