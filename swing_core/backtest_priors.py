"""The walk-forward backtest's pattern priors: a thin adapter over the pattern engine.

Every taken signal is priced by :meth:`swing_core.patterns.PatternIndex.query_many`
(STRATEGY.md, "Pattern priors"), point in time: only outcomes known by the signal's as-of time
(the close of the signal bar) count. Those are

- the run's own outcomes: every simulated plan with an exit (taken or not, all symbols of the
  run), known at the close of its exit bar (``exit_ts``), passed to ``query_many`` as ``extra``
  in-memory rows;
- optionally the stored vector library (a :class:`~swing_core.patterns.PatternIndex`, e.g.
  ``PatternIndex.from_db``), searched under the same rule ``exit_ts <= asof``.

The confidence blend is :func:`swing_core.patterns.blend_confidence`; the predicted win rate is
calibrated by :func:`swing_core.calibration.calibrate_point_in_time` (isotonic, each signal's
calibrator fitted only on outcomes known by its as-of time). Nothing here searches or counts
by itself.

Pluggable: :func:`attach_priors` takes any :data:`PriorFn` (the look-ahead check's tests plant
a leaky one to prove the check catches it); the default is :func:`pattern_priors`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from swing_core.calibration import calibrate_point_in_time
from swing_core.config import INTERVAL_DELTA, StrategyParams
from swing_core.frame import VECTOR_COLUMNS
from swing_core.patterns import PatternIndex, PriorBatch, blend_confidence

__all__ = [
    "PRIOR_COLUMNS",
    "PriorFn",
    "PriorQueries",
    "attach_priors",
    "no_priors",
    "outcome_rows",
    "pattern_priors",
]

#: Prior columns of a signal (NaN / None where a signal was not priced).
PRIOR_COLUMNS: tuple[str, ...] = (
    "prior_n", "prior_win_rate", "prior_avg_r", "prior_avg_win_r", "prior_avg_loss_r",
    "prior_profit_factor", "prior_median_hold_bars", "prior_median_hold_days", "prior_n_stop",
    "prior_n_target", "prior_n_time", "expected_r", "prior_scope",
)
# PriorBatch field -> signal column
_BATCH_COLUMNS = {"win_rate": "prior_win_rate", "avg_r": "prior_avg_r",
                  "avg_win_r": "prior_avg_win_r", "avg_loss_r": "prior_avg_loss_r",
                  "profit_factor": "prior_profit_factor",
                  "median_hold_bars": "prior_median_hold_bars",
                  "median_hold_days": "prior_median_hold_days", "expected_r": "expected_r"}
_OUTCOME_COLUMNS = ("symbol", "signal_ts", "exit_ts", "realized_r", "hold_bars", "exit_reason",
                    "setup", "side", "vol_regime", *VECTOR_COLUMNS)


@dataclass(frozen=True)
class PriorQueries:
    """Signals to price: ``vectors`` float32 (m, 16), ``asof`` (UTC close times of the signal
    bars), ``symbol``, ``vol_regime`` (m,)."""

    vectors: np.ndarray
    asof: pd.DatetimeIndex
    symbol: np.ndarray
    vol_regime: np.ndarray

    def __len__(self) -> int:
        return int(self.vectors.shape[0])


#: (queries, the run's outcomes as pattern rows (:func:`outcome_rows`), params) -> PriorBatch,
#: one row per query in order.
PriorFn = Callable[[PriorQueries, pd.DataFrame, StrategyParams], PriorBatch]


def pattern_priors(library: PatternIndex | None = None, *, interval: str | None = None
                   ) -> PriorFn:
    """The default :data:`PriorFn`: ``library.query_many`` (an empty index when None) with
    the run's outcomes as ``extra`` rows, so both are searched point in time together."""
    index = library if library is not None else PatternIndex(interval=interval,
                                                              backend="numpy")

    def prior_fn(queries: PriorQueries, outcomes: pd.DataFrame, params: StrategyParams
                 ) -> PriorBatch:
        return index.query_many(queries.vectors, queries.asof, queries.symbol,
                                queries.vol_regime, params=params, extra=outcomes)

    return prior_fn


def outcome_rows(signals: pd.DataFrame, *, interval: str | None) -> pd.DataFrame:
    """The run's outcomes as pattern rows (``PatternIndex.add`` columns): every signal with an
    exit, taken or not, ``ts`` its signal bar's open label, ``exit_ts`` the close of its exit
    bar (when the outcome became known)."""
    exited = signals["exit_pos"].to_numpy() >= 0
    rows = signals.loc[exited, list(_OUTCOME_COLUMNS)].rename(columns={"signal_ts": "ts"})
    return rows.assign(interval=interval or "")


def _interval_of(signals: pd.DataFrame) -> str | None:
    """The bar interval of a run's signals (the gap between a signal's label and its as-of)."""
    if signals.empty:
        return None
    delta = signals["asof"].iloc[0] - signals["signal_ts"].iloc[0]
    return next((name for name, d in INTERVAL_DELTA.items() if d == delta), None)


def _queries(sub: pd.DataFrame) -> PriorQueries:
    return PriorQueries(
        vectors=np.ascontiguousarray(sub[list(VECTOR_COLUMNS)].to_numpy(np.float32)),
        asof=pd.DatetimeIndex(sub["asof"]),
        symbol=sub["symbol"].astype(str).to_numpy(object),
        vol_regime=sub["vol_regime"].astype(str).to_numpy(object))


def _spread(values: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    """``values`` of ``rows`` in a column of ``n`` signals (NaN / None elsewhere)."""
    numeric = values.dtype.kind in "fiub"
    out = np.full(n, np.nan if numeric else None, dtype=float if numeric else object)
    out[rows] = values
    return out


def attach_priors(signals: pd.DataFrame, *, params: StrategyParams,
                  prior_fn: PriorFn | None = None, library: PatternIndex | None = None,
                  rows: np.ndarray | None = None) -> pd.DataFrame:
    """Priors for ``signals[rows]`` (default: the taken signals) from outcomes known at each
    one's as-of time: every exited signal of ``signals`` (all symbols) plus ``library``.

    Returns ``signals`` with :data:`PRIOR_COLUMNS`, ``prior_win_rate`` (the predicted win rate:
    the neighbours' win rate, isotonic-calibrated point in time once enough outcomes are known),
    ``prior_win_rate_raw`` (uncalibrated) and ``confidence`` (base confidence blended with the
    prior, STRATEGY.md "Confidence")."""
    n = len(signals)
    if rows is None:
        rows = np.flatnonzero(signals["taken"].to_numpy(bool))
    interval = _interval_of(signals)
    prior_fn = prior_fn or pattern_priors(library, interval=interval)
    sub = signals.iloc[rows]
    batch = prior_fn(_queries(sub), outcome_rows(signals, interval=interval), params)
    columns = {col: _spread(np.asarray(getattr(batch, field)), rows, n)
               for field, col in _BATCH_COLUMNS.items()}
    columns["prior_n"] = np.zeros(n, np.int64)
    columns["prior_n"][rows] = batch.n
    for reason in ("STOP", "TARGET", "TIME"):
        names = batch.exit_reason_names
        counts = (batch.exit_reason_counts[:, names.index(reason)] if reason in names
                  else np.zeros(len(rows), np.int64))
        columns[f"prior_n_{reason.lower()}"] = _spread(counts, rows, n)
    columns["prior_scope"] = _spread(np.asarray(batch.scope, dtype=object), rows, n)
    confidence = np.clip(signals["base_confidence"].to_numpy(float), 0.0, 1.0)
    confidence[rows] = blend_confidence(confidence[rows], batch, params=params)
    columns["confidence"] = confidence
    columns["prior_win_rate_raw"] = columns["prior_win_rate"]
    columns["prior_win_rate"] = _calibrated(columns["prior_win_rate"], signals, rows, params)
    return _with_columns(signals, columns)


def _calibrated(raw: np.ndarray, signals: pd.DataFrame, rows: np.ndarray,
                params: StrategyParams) -> np.ndarray:
    """STRATEGY.md: once enough (predicted, realized) pairs are known, the predicted win rate is
    calibrated with isotonic regression on them, point in time (see
    :func:`~swing_core.calibration.calibrate_point_in_time`). Pairs: the priced signals with an
    outcome, known at their exit bar's close."""
    out = raw.copy()
    priced = rows[np.isfinite(raw[rows])]
    pairs = priced[signals["exit_pos"].to_numpy()[priced] >= 0]
    out[priced] = calibrate_point_in_time(
        raw[pairs], signals["realized_r"].to_numpy(float)[pairs] > 0,
        signals["exit_ts"].iloc[pairs], queries=raw[priced],
        asof=signals["asof"].iloc[priced], params=params)
    return out


def no_priors(signals: pd.DataFrame) -> pd.DataFrame:
    """``signals`` with empty prior columns and the base confidence (a run without priors)."""
    n = len(signals)
    columns = {col: np.full(n, np.nan) for col in PRIOR_COLUMNS}
    columns["prior_scope"] = np.full(n, None, dtype=object)
    columns["prior_n"] = np.zeros(n, np.int64)
    columns["prior_win_rate_raw"] = np.full(n, np.nan)
    columns["confidence"] = signals["base_confidence"].to_numpy(float)
    return _with_columns(signals, columns)


def _with_columns(frame: pd.DataFrame, columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """``frame`` plus (or with replaced) ``columns``, in one concat (no per-column inserts)."""
    kept = frame.drop(columns=[c for c in columns if c in frame.columns])
    return pd.concat([kept, pd.DataFrame(columns, index=frame.index)], axis=1)
