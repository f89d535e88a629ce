"""Domain exceptions. Each message says what is wrong and what the user can do about it."""

from __future__ import annotations


class SwingError(Exception):
    """Base class of every error SwingDesk reports to a user (CLI message or ``st.error``)."""


class MarketDataError(SwingError):
    """Bars could not be had or are unusable (unknown symbol, no data, bad columns, too few bars)."""


class DatabaseError(SwingError):
    """The database is unreachable or misconfigured (the message never contains a password)."""


class DataError(SwingError):
    """A value cannot be stored as given (e.g. text with a NUL character); the message names
    the field."""


class ConfigError(SwingError):
    """A setting or a strategy parameter is invalid."""


class BacktestError(SwingError):
    """A backtest cannot run with the inputs given (empty range, absurd parameters, …)."""


class LLMError(SwingError):
    """The advisor could not answer (no key, budget reached, timeout, malformed answer)."""
