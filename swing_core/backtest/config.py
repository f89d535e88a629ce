"""What defines a backtest besides its symbols and data: :class:`BacktestConfig` (dates,
parameters, portfolio settings), its validation, and the bars a run of it uses
(:func:`trim_bars`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from swing_core.clock import warmup_lookback_days
from swing_core.config import BARS_PER_DAY, StrategyParams, validate_interval
from swing_core.errors import BacktestError, ConfigError
from swing_core.exits import FILL_CONVENTIONS
from swing_core.frame import min_bars_required

__all__ = [
    "BacktestConfig",
    "ProgressFn",
    "params_from_dict",
    "trim_bars",
    "validate_config",
]

#: ``progress(done, total, message)``: called as work items finish.
ProgressFn = Callable[[int, int, str], None]


def _utc(value: Any) -> pd.Timestamp | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise BacktestError(f"Cannot read the date {value!r}: use YYYY-MM-DD.") from exc
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def params_from_dict(values: Mapping[str, Any] | StrategyParams | None) -> StrategyParams:
    """StrategyParams from a dict (or as is), with a :class:`BacktestError` for bad values."""
    if isinstance(values, StrategyParams):
        return values
    try:
        return StrategyParams.from_dict(dict(values or {}))
    except (ConfigError, ValueError, TypeError) as exc:
        raise BacktestError(str(exc)) from exc


@dataclass(frozen=True)
class BacktestConfig:
    """Everything that defines a run besides the symbols and their data.

    ``start`` / ``end``: signals from the first bar labelled >= start to the last labelled
    <= end (UTC; a date means 00:00 UTC); bars before start serve as indicator warm-up
    (``warmup_bars``, default from the parameters). ``one_position_per_symbol``: a new signal
    of a symbol only once its previous trade is closed. ``priors``: pattern priors from
    earlier outcomes of the run; ``use_library``: also from the stored vector library.
    ``fill``: where market entries fill (:data:`~swing_core.exits.FILL_CONVENTIONS`): "close",
    at the signal bar's close (the default; the plan is made at that close), or "next_open",
    at the next bar's open; stop-order entries fill the same way under both (STRATEGY.md
    "Exits").
    """

    interval: str = "1d"
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    params: StrategyParams = field(default_factory=StrategyParams)
    initial_equity: float = 100_000.0
    max_positions: int = 10
    one_position_per_symbol: bool = True
    priors: bool = True
    use_library: bool = False
    risk_free_rate: float = 0.0
    warmup_bars: int | None = None
    fill: str = "close"

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _utc(self.start))
        object.__setattr__(self, "end", _utc(self.end))
        object.__setattr__(self, "params", params_from_dict(self.params))

    @property
    def warmup(self) -> int:
        """Bars kept before ``start`` for the indicators (EMA memory, volatility regime)."""
        if self.warmup_bars is not None:
            return self.warmup_bars
        p = self.params
        return max(200, 2 * (p.bb_period + p.vol_regime_window), 3 * min_bars_required(p))

    @property
    def lookback_days(self) -> int | None:
        """Calendar days of history to fetch so that ``start`` has its warm-up bars before it
        (None without a start: all the history there is)."""
        if self.start is None:
            return None
        return warmup_lookback_days(self.start, warmup_bars=self.warmup,
                                    bars_per_day=BARS_PER_DAY[self.interval])

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["start"] = self.start.isoformat() if self.start is not None else None
        out["end"] = self.end.isoformat() if self.end is not None else None
        out["params"] = self.params.to_dict()
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> BacktestConfig:
        return cls(**dict(values))


def _plan_problems(p: StrategyParams) -> list[str]:
    """Parameters that would put a stop or a target on the wrong side of the entry."""
    problems = []
    for name in ("gp_stop_atr", "mr_stop_atr"):
        if getattr(p, name) < 0:
            problems.append(f"{name} = {getattr(p, name)} puts the stop on the wrong side of "
                            "the entry (it must be >= 0)")
    if p.momentum_stop_atr <= 0:
        problems.append(f"momentum_stop_atr = {p.momentum_stop_atr} puts the stop on the wrong "
                        "side of the entry, or on it (it must be > 0)")
    for name in ("momentum_target_atr", "mr_target_atr"):
        if getattr(p, name) <= 0:
            problems.append(f"{name} = {getattr(p, name)} puts the target on the wrong side of "
                            "the entry, or on it (it must be > 0)")
    if p.extension <= 1:
        problems.append(f"extension = {p.extension} must be above 1 (targets beyond the swing)")
    if p.entry_window_days < 0:
        problems.append(f"entry_window_days must be >= 0 (got {p.entry_window_days})")
    if p.min_risk_atr < 0:
        problems.append(f"min_risk_atr must be >= 0 (got {p.min_risk_atr})")
    return problems


def validate_config(config: BacktestConfig) -> None:
    """Raise :class:`ConfigError` for an unknown interval (the one interval check,
    :func:`~swing_core.config.validate_interval`) or fill convention
    (:data:`~swing_core.exits.FILL_CONVENTIONS`), else :class:`BacktestError` naming every
    absurd setting (nothing is silently fixed)."""
    validate_interval(config.interval)
    if config.fill not in FILL_CONVENTIONS:
        raise ConfigError(f"Unknown fill convention {config.fill!r}: market entries fill at "
                          "the signal bar's close ('close') or at the next bar's open "
                          "('next_open').")
    p = config.params
    problems = []
    if config.start is not None and config.end is not None and config.start >= config.end:
        problems.append(f"empty date range: start {config.start.date()} is not before end "
                        f"{config.end.date()}")
    if not (math.isfinite(config.initial_equity) and config.initial_equity > 0):
        problems.append(f"initial equity must be a positive number (got {config.initial_equity})")
    if not (math.isfinite(config.risk_free_rate) and -1 < config.risk_free_rate < 1):
        problems.append("risk_free_rate must be a yearly fraction between -1 and 1 "
                        f"(got {config.risk_free_rate})")
    if config.max_positions < 1:
        problems.append(f"max_positions must be at least 1 (got {config.max_positions})")
    if p.max_open_risk < p.risk_per_trade:
        problems.append(f"max_open_risk ({p.max_open_risk}) is below risk_per_trade "
                        f"({p.risk_per_trade}): no position could ever open")
    problems += _plan_problems(p)
    if problems:
        raise BacktestError("Cannot run this backtest: " + "; ".join(problems) + ".")


def trim_bars(bars: pd.DataFrame, *, symbol: str, config: BacktestConfig) -> pd.DataFrame:
    """The bars a run uses: up to ``end``, from ``warmup`` bars before ``start``.

    Raises :class:`BacktestError` when the range holds no bar or too few bars exist."""
    if bars is None or len(bars) == 0:
        raise BacktestError(f"{symbol}: no bars at all; check the symbol or the data source.")
    index = bars.index
    if config.end is not None:
        bars = bars[index <= config.end]
    first = 0
    if config.start is not None:
        first = int(np.searchsorted(bars.index, config.start))
        bars = bars.iloc[max(0, first - config.warmup):]
        first = int(np.searchsorted(bars.index, config.start))
    in_range = len(bars) - first
    if in_range <= 0:
        span = f"{config.start.date() if config.start is not None else '…'} – " \
               f"{config.end.date() if config.end is not None else '…'}"
        raise BacktestError(f"{symbol}: no {config.interval} bars in {span}; the data covers "
                            f"{index[0].date()} – {index[-1].date()}. Pick dates inside it.")
    needed = min_bars_required(config.params) + 2
    if len(bars) < needed:
        raise BacktestError(
            f"{symbol}: only {len(bars)} {config.interval} bars up to the end date, at least "
            f"{needed} are needed for the indicators. Use a longer range or a finer interval."
        )
    return bars
