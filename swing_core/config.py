"""Runtime settings (from the environment) and strategy parameters (one frozen dataclass).

Settings are read once per call to :func:`get_settings` from ``os.environ``; nothing here is a
mutable global.  Every strategy threshold lives in :class:`StrategyParams` and is passed
explicitly to the functions that use it (see ``../shared/STRATEGY.md`` for their meaning).
"""

from __future__ import annotations

import functools
import math
import os
import re
from dataclasses import asdict, dataclass, field, fields, replace
from numbers import Real
from pathlib import Path
from typing import Any

import pandas as pd

from swing_core.errors import ConfigError

ENGINE_VERSION = "0.3.0"

INTERVALS: tuple[str, ...] = ("15m", "30m", "1h", "1d")

#: How long one bar lasts: a bar labelled ``t`` (its open time) is known at ``t + INTERVAL_DELTA``.
INTERVAL_DELTA: dict[str, pd.Timedelta] = {
    "15m": pd.Timedelta(minutes=15),
    "30m": pd.Timedelta(minutes=30),
    "1h": pd.Timedelta(hours=1),
    "1d": pd.Timedelta(days=1),
}

#: Bars in one regular US session (a trade is followed for at most 2 trading days).
BARS_PER_DAY: dict[str, int] = {"15m": 26, "30m": 13, "1h": 7, "1d": 1}

#: Yahoo's intraday history limits in calendar days (None: no limit).
YAHOO_MAX_DAYS: dict[str, int | None] = {"15m": 59, "30m": 59, "1h": 729, "1d": None}

EXCHANGE_TZ = "America/New_York"


def validate_interval(interval: str) -> str:
    """Return ``interval`` if SwingDesk supports it, else raise :class:`ConfigError` naming the
    choices. The one interval check: every layer (market data, frame, exits, pages) calls it."""
    if interval not in INTERVALS:
        raise ConfigError(f"Unknown interval {interval!r}: choose one of {', '.join(INTERVALS)}.")
    return interval


#: Allowed range of each integer strategy parameter (lengths in bars unless named otherwise):
#: beyond these a run says so instead of computing on nonsense.
_INT_BOUNDS: dict[str, tuple[int, int]] = {
    "ema_span": (1, 500), "rsi_period": (1, 500), "atr_period": (1, 500),
    "slope_lookback": (1, 500), "bb_period": (1, 500), "swing_lookback": (1, 1000),
    "vol_regime_window": (1, 2000), "rs_lookback": (1, 500), "knn_k": (1, 1000),
    "min_regime_neighbors": (0, 1000), "calibration_min_samples": (2, 100_000),
    "verdict_min_neighbors": (0, 1000), "max_hold_days": (1, 60),
    "entry_window_days": (0, 30),
}


@dataclass(frozen=True)
class StrategyParams:
    """Every threshold of the strategy (defaults are SwingAgent v1.6.1's; see STRATEGY.md)."""

    # indicators
    ema_span: int = 20
    rsi_period: int = 14
    atr_period: int = 14
    slope_lookback: int = 6
    bb_period: int = 20
    bb_std: float = 2.0
    # trend label
    slope_up: float = 0.01
    slope_strong: float = 0.02
    rsi_trend_up: float = 60.0
    rsi_trend_down: float = 40.0
    # swing / fibonacci
    swing_lookback: int = 40
    golden_pocket_lo: float = 0.618
    golden_pocket_hi: float = 0.65
    extension: float = 1.272
    # entry plans
    gp_stop_atr: float = 0.2
    momentum_stop_atr: float = 1.2
    momentum_target_atr: float = 2.0
    mr_rsi_long: float = 35.0
    mr_rsi_short: float = 65.0
    mr_stop_atr: float = 1.0
    mr_target_atr: float = 1.5
    # context
    vol_regime_window: int = 60
    vol_regime_low_pct: float = 33.0
    vol_regime_high_pct: float = 66.0
    rs_lookback: int = 20
    sector_symbol: str = "XLK"
    market_symbol: str = "SPY"
    # confidence
    conf_base: tuple[tuple[str, float], ...] = (
        ("strong_up", 0.35),
        ("up", 0.25),
        ("sideways", 0.15),
        ("down", 0.25),
        ("strong_down", 0.35),
    )
    conf_r_weight: float = 0.2
    conf_r_cap: float = 0.4
    conf_mtf_weight: float = 0.05
    conf_rs_bonus: float = 0.05
    prior_weight: float = 0.4
    llm_agree_weight: float = 0.15
    llm_disagree_weight: float = 0.10
    # pattern priors
    knn_k: int = 60
    min_regime_neighbors: int = 10
    calibration_min_samples: int = 50
    # the verdict on a signal (swing_core.verdict): "take" needs this many neighbours and an
    # expected R net of costs above this
    verdict_min_neighbors: int = 20
    verdict_min_net_r: float = 0.0
    # exits, sizing, costs
    max_hold_days: int = 2
    entry_window_days: int = 1
    risk_per_trade: float = 0.01
    max_open_risk: float = 0.04
    min_risk_atr: float = 0.5
    fee_per_fill: float = 1.0
    slippage_bps: float = 5.0

    def __post_init__(self) -> None:
        values = [(name, getattr(self, name)) for name, _ in _numeric_fields()]
        problems = [f"{name} must be a number (got {value!r})" for name, value in values
                    if type(value) not in (int, float)  # the common case, without ABC checks
                    and (isinstance(value, bool) or not isinstance(value, Real))]
        if problems:  # the range checks below would fail with a TypeError on text
            raise ConfigError("Invalid strategy parameters: " + "; ".join(problems) + ".")
        problems = self._number_problems()
        if problems:  # NaN / inf / 2.5 bars would slip through every comparison below
            raise ConfigError("Invalid strategy parameters: " + "; ".join(problems) + ".")
        for name, (low, high) in _INT_BOUNDS.items():
            if not low <= getattr(self, name) <= high:
                problems.append(f"{name} must be between {low} and {high} "
                                f"(got {getattr(self, name)})")
        if self.slippage_bps > 1000 or self.fee_per_fill > 10_000:
            problems.append("slippage_bps must be at most 1000 and fee_per_fill at most 10000")
        if not 0 < self.risk_per_trade <= 0.2:
            problems.append(f"risk_per_trade must be in (0, 0.2] (got {self.risk_per_trade})")
        if not 0 < self.max_open_risk <= 1:
            problems.append(f"max_open_risk must be in (0, 1] (got {self.max_open_risk})")
        if self.fee_per_fill < 0 or self.slippage_bps < 0:
            problems.append("fees and slippage cannot be negative")
        if not 0 < self.golden_pocket_lo < self.golden_pocket_hi < 1:
            problems.append("golden pocket bounds must satisfy 0 < lo < hi < 1")
        if problems:
            raise ConfigError("Invalid strategy parameters: " + "; ".join(problems) + ".")

    def _number_problems(self) -> list[str]:
        """Every numeric field finite; every integer field a whole number (14.0 is taken as
        14, 2.5 is refused)."""
        problems = []
        for name, integral in _numeric_fields():
            value = getattr(self, name)
            if not math.isfinite(value):
                problems.append(f"{name} must be a finite number (got {value!r})")
            elif integral and not isinstance(value, int):
                if float(value).is_integer():
                    object.__setattr__(self, name, int(value))
                else:
                    problems.append(f"{name} must be a whole number (got {value!r})")
        return problems

    def base_confidence(self, trend: str) -> float:
        return dict(self.conf_base).get(trend, 0.15)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> StrategyParams:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ConfigError(f"Unknown strategy parameter(s): {', '.join(sorted(unknown))}.")
        clean = {k: (tuple(map(tuple, v)) if k == "conf_base" else v) for k, v in values.items()}
        return replace(cls(), **clean)


@functools.cache
def _numeric_fields() -> tuple[tuple[str, bool], ...]:
    """(name, integral) of the numeric fields of :class:`StrategyParams` (read once: the
    checks run on every construction, and ``dataclasses.fields`` is slow)."""
    return tuple((f.name, isinstance(f.default, int)) for f in fields(StrategyParams)
                 if isinstance(f.default, int | float) and not isinstance(f.default, bool))


def _env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _env_switch(name: str) -> bool:
    """On unless the variable says off (``0``, ``false``, ``no``, ``off``)."""
    return os.environ.get(name, "").strip().lower() not in {"0", "false", "no", "off"}


def _env_float(name: str, default: float, *, positive: bool = False) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}.") from exc
    if not math.isfinite(value):  # "nan" would switch off every comparison (e.g. the budget)
        raise ConfigError(f"{name} must be a finite number, got {raw!r}.")
    if positive and value <= 0:
        raise ConfigError(f"{name} must be a number of seconds above 0, got {raw!r}.")
    return value


def _env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = _env_float(name, default)
    if value != int(value):
        raise ConfigError(f"{name} must be a whole number, got {os.environ.get(name)!r}.")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {os.environ.get(name)!r}.")
    return int(value)


def _env_emails(name: str) -> frozenset[str]:
    """A comma- or space-separated list of e-mail addresses, lower-cased."""
    raw = os.environ.get(name, "")
    emails = frozenset(part.strip().lower() for part in re.split(r"[,\s]+", raw) if part.strip())
    bad = sorted(e for e in emails if e.count("@") != 1 or e.startswith("@") or e.endswith("@"))
    if bad:
        raise ConfigError(f"{name} must list e-mail addresses separated by commas; "
                          f"{bad[0]!r} is not one.")
    return emails


def _env_secret(name: str, *, min_chars: int = 32) -> str | None:
    """A secret key of at least ``min_chars`` characters, or None when unset."""
    raw = (os.environ.get(name) or "").strip()
    if raw and len(raw) < min_chars:
        raise ConfigError(f"{name} must be at least {min_chars} characters long (it has "
                          f"{len(raw)}); e.g. python3 -c \"import secrets; "
                          "print(secrets.token_hex(32))\".")
    return raw or None


@dataclass(frozen=True)
class Settings:
    """Runtime settings, read from the environment by :func:`get_settings`."""

    data_dir: Path = Path("data")
    database_url: str = ""
    offline: bool = False
    slow_query_ms: float = 100.0
    openai_api_key: str | None = field(default=None, repr=False)  # never in a log line
    openai_base_url: str | None = None
    llm_model: str = "gpt-4o-mini"
    llm_timeout_s: float = 10.0
    llm_monthly_budget_usd: float = 20.0
    llm_confidence_ceiling: float = 0.8
    llm_cache_ttl_s: float = 6 * 3600.0
    llm_deadline_s: float = 15.0
    admin_emails: frozenset[str] = frozenset()
    db_pool_size: int = 5
    db_max_overflow: int = 10
    db_pool_recycle_s: int = 1800
    db_statement_timeout_ms: int = 30_000
    db_idle_in_transaction_timeout_ms: int = 60_000
    db_auto_migrate: bool = True
    fetch_workers: int = 4
    pattern_backend: str = "auto"
    dask_address: str | None = None
    perf_enabled: bool = True
    perf_role: str | None = None
    #: HMAC key that signs recorded slow queries (EXPLAIN runs only those); None: a key file
    #: created under ``data_dir``. Never shown in a repr.
    secret_key: str | None = field(default=None, repr=False)
    llm_prices_per_mtok: dict[str, tuple[float, float]] = field(
        default_factory=lambda: {
            # model: (USD per million input tokens, USD per million output tokens)
            "gpt-4o-mini": (0.15, 0.60),
            "gpt-4o": (2.50, 10.00),
            "gpt-4.1-mini": (0.40, 1.60),
            "gpt-4.1": (2.00, 8.00),
        }
    )

    @property
    def effective_database_url(self) -> str:
        """``SWING_DATABASE_URL`` if set, else a SQLite file under the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'swingdesk.sqlite').resolve()}"

    def is_admin(self, email: str | None) -> bool:
        """Whether ``email`` (as the sign-in provider reports it) is in ``SWING_ADMIN_EMAILS``:
        compared trimmed and lower-cased, as the list is stored; no e-mail is never an admin."""
        return bool(email and email.strip().lower() in self.admin_emails)


def get_settings() -> Settings:
    """Read settings from the environment (``SWING_*``, ``OPENAI_*``): the only place that reads
    them (a test checks). Raises :class:`ConfigError` for a value that cannot be parsed."""
    return Settings(
        data_dir=Path(os.environ.get("SWING_DATA_DIR") or "data"),
        database_url=os.environ.get("SWING_DATABASE_URL", "").strip(),
        offline=_env_bool("SWING_OFFLINE"),
        slow_query_ms=_env_float("SWING_SLOW_QUERY_MS", 100.0),
        openai_api_key=os.environ.get("OPENAI_API_KEY") or None,
        openai_base_url=os.environ.get("OPENAI_BASE_URL") or None,
        llm_model=os.environ.get("SWING_LLM_MODEL") or "gpt-4o-mini",
        llm_timeout_s=_env_float("SWING_LLM_TIMEOUT_S", 10.0, positive=True),
        llm_monthly_budget_usd=_env_float("SWING_LLM_MONTHLY_BUDGET_USD", 20.0),
        llm_confidence_ceiling=_env_float("SWING_LLM_CONFIDENCE_CEILING", 0.8),
        llm_cache_ttl_s=_env_float("SWING_LLM_CACHE_TTL_S", 6 * 3600.0),
        llm_deadline_s=_env_float("SWING_LLM_DEADLINE_S", 15.0, positive=True),
        admin_emails=_env_emails("SWING_ADMIN_EMAILS"),
        db_pool_size=_env_int("SWING_DB_POOL_SIZE", 5),
        db_max_overflow=_env_int("SWING_DB_MAX_OVERFLOW", 10),
        db_pool_recycle_s=_env_int("SWING_DB_POOL_RECYCLE_S", 1800),
        db_statement_timeout_ms=_env_int("SWING_DB_STATEMENT_TIMEOUT_MS", 30_000, minimum=0),
        db_idle_in_transaction_timeout_ms=_env_int(
            "SWING_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", 60_000, minimum=0),
        db_auto_migrate=_env_switch("SWING_DB_AUTO_MIGRATE"),
        fetch_workers=_env_int("SWING_FETCH_WORKERS", 4),
        pattern_backend=os.environ.get("SWING_PATTERN_BACKEND") or "auto",
        dask_address=os.environ.get("SWING_DASK_ADDRESS") or None,
        perf_enabled=_env_switch("SWING_PERF"),
        perf_role=(os.environ.get("SWING_PERF_ROLE") or "").strip() or None,
        secret_key=_env_secret("SWING_SECRET_KEY"),
    )
