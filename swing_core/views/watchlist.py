"""The watchlist: parsing typed tickers, loading and saving ``SWING_DATA_DIR/watchlist.json``."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from swing_core.config import Settings, get_settings
from swing_core.errors import MarketDataError
from swing_core.market import normalize_symbol

DEFAULT_WATCHLIST: tuple[str, ...] = ("AAPL", "MSFT", "NVDA", "AMZN", "SPY", "QQQ")
MAX_WATCHLIST = 50


def parse_symbols(text: str | Iterable[str], *, limit: int = MAX_WATCHLIST
                  ) -> tuple[list[str], list[str]]:
    """Split user input (commas, spaces, new lines, or an iterable) into valid tickers.

    Returns (valid symbols without duplicates in input order, error messages for the rest); at
    most ``limit`` symbols are kept (a message says so).
    """
    items = text.replace(",", " ").split() if isinstance(text, str) else [str(t) for t in text]
    symbols: list[str] = []
    errors: list[str] = []
    for item in items:
        if not item or not item.strip():
            continue
        try:
            symbol = normalize_symbol(item)
        except MarketDataError as exc:
            errors.append(str(exc))
            continue
        if symbol not in symbols:
            symbols.append(symbol)
    if len(symbols) > limit:
        errors.append(f"Only the first {limit} symbols are kept ({len(symbols)} given).")
        symbols = symbols[:limit]
    return symbols, errors


def _watchlist_path(settings: Settings | None) -> Path:
    settings = settings or get_settings()
    return Path(settings.data_dir) / "watchlist.json"


def load_watchlist(*, settings: Settings | None = None) -> list[str]:
    """The saved watchlist (``SWING_DATA_DIR/watchlist.json``), or the default one when none is
    saved or the file is unreadable."""
    path = _watchlist_path(settings)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return list(DEFAULT_WATCHLIST)
    symbols, _ = parse_symbols(raw.get("symbols", []) if isinstance(raw, dict) else [])
    return symbols or list(DEFAULT_WATCHLIST)


def save_watchlist(symbols: Iterable[str], *, settings: Settings | None = None) -> list[str]:
    """Validate and save the watchlist atomically; returns what was saved. Raises
    ``MarketDataError`` when no valid symbol is left or the folder is not writable."""
    valid, errors = parse_symbols(list(symbols))
    if not valid:
        raise MarketDataError("The watchlist needs at least one valid ticker (e.g. AAPL). "
                              + " ".join(errors))
    path = _watchlist_path(settings)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".watchlist.", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"symbols": valid}, handle)
        os.replace(tmp, path)
    except OSError as exc:
        raise MarketDataError(f"Cannot save the watchlist to {path}: {exc.strerror}. Set "
                              "SWING_DATA_DIR to a writable folder.") from None
    return valid
