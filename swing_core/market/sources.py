"""Where bars come from: the one ``source`` choice, the provider protocol, and the uncached
fetch with its demo fallback.

Where bars come from is one choice, ``source`` (:data:`SOURCES`), made once (the sidebar and
``?source=`` in the app, ``--source`` on the CLI, ``source=`` in the API) and passed down to
every fetch, including the benchmark and other-timeframe context of a signal:

* ``"yahoo"``: Yahoo through the bar cache (stale cached bars with a note when unreachable;
  never demo bars).
* ``"local"``: the local bar library only (uploaded or imported files and earlier Yahoo
  fetches, i.e. every real bar stored in the ``bars`` table); the lookback counts back from the
  newest stored bar, so a file that ends years ago is served whole.
* ``"demo"``: the deterministic demo generator, labelled DEMO everywhere.
* ``"auto"`` (default): Yahoo; when it is off (``SWING_OFFLINE=1``), unreachable or does not
  know the symbol, the local library (with a note saying how old its newest bar is); else demo
  bars (labelled), unless ``demo_fallback=False``.

:func:`~swing_core.market.fetch.fetch_bars` acts on the choice; demo bars served instead of
unreachable Yahoo bars are never written to the cache.
"""

from __future__ import annotations

import logging
from typing import Protocol

import pandas as pd

from swing_core.errors import MarketDataError
from swing_core.market._common import CACHE_STATS, relabel
from swing_core.market.demo import DemoProvider
from swing_core.market.yahoo import YahooProvider, YahooUnreachableError

__all__ = [
    "SOURCES",
    "SOURCE_LABELS",
    "BarProvider",
    "check_source",
    "demo_instead",
    "direct",
    "resolve_provider",
]

log = logging.getLogger(__name__)

#: Where bars may come from (see the module docstring); "auto" picks the first that has bars.
SOURCES: tuple[str, ...] = ("auto", "yahoo", "local", "demo")

#: One line per source for selectors and help texts.
SOURCE_LABELS: dict[str, str] = {
    "auto": "Automatic: Yahoo, else your local bars, else demo",
    "yahoo": "Yahoo Finance (through the bar cache)",
    "local": "Local bar library (your files and earlier fetches)",
    "demo": "Demo data (synthetic, offline)",
}

#: Older spellings accepted from bookmarks and scripts.
_SOURCE_ALIASES = {"cache": "local", "file": "local", "library": "local", "automatic": "auto"}


def check_source(source: str | None) -> str:
    """``source`` as one of :data:`SOURCES` (None → "auto"; older spellings accepted), or a
    :class:`MarketDataError` naming the choices."""
    if source is None:
        return "auto"
    key = str(source).strip().lower()
    key = _SOURCE_ALIASES.get(key, key)
    if key not in SOURCES:
        raise MarketDataError(f"Unknown data source {source!r}: choose one of "
                              f"{', '.join(SOURCES)}.")
    return key


class BarProvider(Protocol):
    """What ``fetch_bars`` needs from a provider (Yahoo adds ``fetch_range`` for the cache)."""

    name: str
    cacheable: bool

    def fetch(self, symbol: str, interval: str, *, lookback_days: int | None = None,
              now: pd.Timestamp | None = None) -> pd.DataFrame: ...


def resolve_provider(provider: BarProvider | str | None) -> BarProvider:
    """The provider object for ``provider``: None or "yahoo" → :class:`YahooProvider`, "demo" →
    :class:`DemoProvider`, a provider object as it is."""
    if provider is None or provider == "yahoo":
        return YahooProvider()
    if provider == "demo":
        return DemoProvider()
    if isinstance(provider, str):
        raise MarketDataError(f"Unknown provider {provider!r}: use 'yahoo', 'demo' or a "
                              "FileProvider for an uploaded file.")
    return provider


def demo_instead(symbol: str, interval: str, days: int, now: pd.Timestamp, notes: list[str],
                 exc: YahooUnreachableError) -> pd.DataFrame:
    """Demo bars in place of unreachable Yahoo, labelled DEMO in the first note (never cached);
    counted as a ``fallbacks`` in :data:`~swing_core.market.CACHE_STATS`."""
    log.warning("Yahoo unreachable for %s; serving demo bars: %s", symbol, exc)
    CACHE_STATS.incr("fallbacks")
    notes.insert(0, "DEMO DATA, NOT REAL PRICES: Yahoo Finance is unreachable "
                    f"({exc.detail or exc}); these bars are synthetic. Check the connection, "
                    "or upload a CSV/Parquet file.")
    frame = DemoProvider().fetch(symbol, interval, lookback_days=days, now=now)
    frame.attrs["notes"] = []
    return relabel(frame, notes, cache="off", now=now, source="demo")


def direct(source: BarProvider, symbol: str, interval: str, days: int, now: pd.Timestamp,
           notes: list[str], *, demo_fallback: bool) -> pd.DataFrame:
    """``source``'s last ``days`` days without the cache (``cache == "off"``); demo bars instead
    when Yahoo is unreachable and ``demo_fallback``, else the error."""
    try:
        frame = source.fetch(symbol, interval, lookback_days=days, now=now)
    except YahooUnreachableError as exc:
        if not demo_fallback:
            raise
        return demo_instead(symbol, interval, days, now, notes, exc)
    return relabel(frame, notes, cache="off", now=now)
