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

The formulas applied to the engine's answer (confidence blend, calibrated win rate) live in
:func:`priced_columns` / :func:`unpriced_columns`: :func:`attach_priors` and the universe's
final stage (:mod:`swing_core.backtest.universe`, which prices in batches from its spill
files) both call them. The neighbours' win rate is an R win rate (before costs); it is
calibrated to a win after costs (:func:`swing_core.costs.won_after_costs`: realized R net of
fees and slippage > 0), the outcome the run's ``Win Rate [%]`` counts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from swing_core.backtest.config import BacktestConfig
from swing_core.calibration import calibrate_point_in_time
from swing_core.config import INTERVAL_DELTA, StrategyParams
from swing_core.costs import won_after_costs
from swing_core.frame import VECTOR_COLUMNS
from swing_core.patterns import PatternIndex, PriorBatch, blend_confidence

__all__ = [
    "PRIORS_ENGINE",
    "PRIOR_COLUMNS",
    "PriorFn",
    "PriorQueries",
    "attach_priors",
    "concat_batches",
    "no_priors",
    "outcome_rows",
    "outcome_rows_from_columns",
    "pattern_priors",
    "priced_columns",
    "select_batch",
    "stored_library",
    "unpriced_columns",
]

#: Which prior implementation computed a run (part of its hash, so a stored run computed by
#: another one is recomputed rather than served): the pattern engine since the kernels merged.
PRIORS_ENGINE = "patterns.query_many/4"  # 3: wins after costs; 4: shrunk isotonic blocks

#: Prior columns of a signal (NaN / None where a signal was not priced).
PRIOR_COLUMNS: tuple[str, ...] = (
    "prior_n", "prior_win_rate", "prior_avg_r", "prior_avg_win_r", "prior_avg_loss_r",
    "prior_profit_factor", "prior_median_hold_bars", "prior_median_hold_days", "prior_n_stop",
    "prior_n_target", "prior_n_time", "expected_r", "prior_scope",
)
# PriorBatch field -> signal column, copied as is (the win rate, expected R and confidence go
# through priced_columns)
_BATCH_COLUMNS = {"avg_r": "prior_avg_r", "avg_win_r": "prior_avg_win_r",
                  "avg_loss_r": "prior_avg_loss_r", "profit_factor": "prior_profit_factor",
                  "median_hold_bars": "prior_median_hold_bars",
                  "median_hold_days": "prior_median_hold_days"}
#: The columns attach_priors adds, in their order.
_ATTACHED_ORDER = ("prior_win_rate", *_BATCH_COLUMNS.values(), "expected_r", "prior_n",
                   "prior_n_stop", "prior_n_target", "prior_n_time", "prior_scope",
                   "confidence", "prior_win_rate_raw")
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


def priced_columns(batch: PriorBatch, *, base_confidence: np.ndarray, exited: np.ndarray,
                   realized_r: np.ndarray, fill_price: np.ndarray, stop: np.ndarray,
                   exit_price: np.ndarray, exit_ts: Any, asof: Any, params: StrategyParams
                   ) -> dict[str, np.ndarray]:
    """The prior columns of priced signals (one row per query of ``batch``, in its order), from
    the engine's answer: ``expected_r``; ``confidence`` (base confidence clipped to [0, 1],
    blended with the prior, STRATEGY.md "Confidence"); ``prior_win_rate_raw`` (the neighbours'
    R win rate, before costs) and ``prior_win_rate`` (calibrated point in time to a win after
    costs, :func:`_calibrated`). ``exited``, ``realized_r``, ``fill_price``, ``stop``,
    ``exit_price``, ``exit_ts`` (when each outcome became known) and ``asof`` (UTC close of
    each signal bar) are those of the same rows."""
    raw = np.asarray(batch.win_rate, dtype=float)
    confidence = np.clip(np.asarray(base_confidence, dtype=float), 0.0, 1.0)
    return {
        "expected_r": np.asarray(batch.expected_r, dtype=float),
        "confidence": blend_confidence(confidence, batch, params=params),
        "prior_win_rate_raw": raw,
        "prior_win_rate": _calibrated(raw, exited=np.asarray(exited, bool),
                                      won=won_after_costs(realized_r, fill_price, stop,
                                                          exit_price=exit_price,
                                                          params=params),
                                      exit_ts=exit_ts, asof=asof, params=params),
    }


def unpriced_columns(base_confidence: np.ndarray) -> dict[str, np.ndarray]:
    """The prior columns of signals a run does not price (priors off): no prior figures, the
    base confidence as is."""
    n = len(base_confidence)
    columns = {col: np.full(n, np.nan) for col in PRIOR_COLUMNS}
    columns["prior_scope"] = np.full(n, None, dtype=object)
    columns["prior_n"] = np.zeros(n, np.int64)
    columns["prior_win_rate_raw"] = np.full(n, np.nan)
    columns["confidence"] = np.asarray(base_confidence, dtype=float)
    return columns


def attach_priors(signals: pd.DataFrame, *, params: StrategyParams,
                  prior_fn: PriorFn | None = None, library: PatternIndex | None = None,
                  rows: np.ndarray | None = None) -> pd.DataFrame:
    """Priors for ``signals[rows]`` (default: the taken signals) from outcomes known at each
    one's as-of time: every exited signal of ``signals`` (all symbols) plus ``library``.

    Returns ``signals`` with :data:`PRIOR_COLUMNS`, ``prior_win_rate`` (the predicted win rate:
    the neighbours' R win rate, isotonic-calibrated point in time once enough outcomes are
    known), ``prior_win_rate_raw`` (uncalibrated) and ``confidence`` (base confidence blended
    with the prior, STRATEGY.md "Confidence")."""
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
    priced = priced_columns(batch, base_confidence=sub["base_confidence"].to_numpy(float),
                            exited=sub["exit_pos"].to_numpy() >= 0,
                            realized_r=sub["realized_r"].to_numpy(float),
                            fill_price=sub["fill_price"].to_numpy(float),
                            stop=sub["stop"].to_numpy(float),
                            exit_price=sub["exit_price"].to_numpy(float),
                            exit_ts=sub["exit_ts"], asof=sub["asof"], params=params)
    confidence = np.clip(signals["base_confidence"].to_numpy(float), 0.0, 1.0)
    confidence[rows] = priced.pop("confidence")
    columns["confidence"] = confidence
    for col, values in priced.items():
        columns[col] = _spread(values, rows, n)
    return _with_columns(signals, {col: columns[col] for col in _ATTACHED_ORDER})


def _calibrated(raw: np.ndarray, *, exited: np.ndarray, won: np.ndarray, exit_ts: Any,
                asof: Any, params: StrategyParams) -> np.ndarray:
    """STRATEGY.md: once enough (predicted, realized) pairs are known, the predicted win rate is
    calibrated with isotonic regression on them, point in time (see
    :func:`~swing_core.calibration.calibrate_point_in_time`). Pairs: the priced signals with an
    outcome, ``won`` a win after costs or not (:func:`~swing_core.costs.won_after_costs`, NaN
    where unknown: left out), known at their exit bar's close."""
    out = raw.copy()
    priced = np.flatnonzero(np.isfinite(raw))
    pairs = priced[exited[priced]]
    out[priced] = calibrate_point_in_time(
        raw[pairs], won[pairs], _take(exit_ts, pairs), queries=raw[priced],
        asof=_take(asof, priced), params=params)
    return out


def _take(times: Any, rows: np.ndarray) -> Any:
    """``times[rows]`` of a Series (by position) or an index / array."""
    return times.iloc[rows] if isinstance(times, pd.Series) else times[rows]


def no_priors(signals: pd.DataFrame) -> pd.DataFrame:
    """``signals`` with empty prior columns and the base confidence (a run without priors)."""
    return _with_columns(signals,
                         unpriced_columns(signals["base_confidence"].to_numpy(float)))


def _with_columns(frame: pd.DataFrame, columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """``frame`` plus (or with replaced) ``columns``, in one concat (no per-column inserts)."""
    kept = frame.drop(columns=[c for c in columns if c in frame.columns])
    return pd.concat([kept, pd.DataFrame(columns, index=frame.index)], axis=1)


# --------------------------------------------------------------------------- batched pricing


def outcome_rows_from_columns(columns: dict[str, np.ndarray], keep: np.ndarray, *,
                              interval: str) -> pd.DataFrame:
    """:func:`outcome_rows` of column arrays (``symbol``, ``signal_ts`` / ``exit_ts`` in int64
    ns, ``realized_r``, ``hold_bars``, labels, ``vectors`` (n, 16)), rows ``keep`` only."""
    frame: dict[str, Any] = {
        "symbol": columns["symbol"][keep],
        "ts": pd.DatetimeIndex(pd.to_datetime(columns["signal_ts"][keep], utc=True)),
        "exit_ts": pd.DatetimeIndex(pd.to_datetime(columns["exit_ts"][keep], utc=True))}
    for col in ("realized_r", "hold_bars", "exit_reason", "setup", "side", "vol_regime"):
        frame[col] = columns[col][keep]
    vectors = columns["vectors"][keep]
    frame.update({name: vectors[:, j] for j, name in enumerate(VECTOR_COLUMNS)})
    frame["interval"] = np.full(len(vectors), interval, dtype=object)
    return pd.DataFrame(frame)


def select_batch(batch: PriorBatch, rows: np.ndarray) -> PriorBatch:
    """The PriorBatch of the queries ``rows`` (a boolean mask or positions) of ``batch``."""
    fields = {f: getattr(batch, f)[rows] for f in PriorBatch.__dataclass_fields__
              if f != "exit_reason_names"}
    return PriorBatch(**fields, exit_reason_names=batch.exit_reason_names)


def concat_batches(parts: Sequence[PriorBatch], positions: np.ndarray) -> PriorBatch:
    """One PriorBatch of ``parts`` priced separately, row ``positions[i]`` of the result being
    the i-th row of the parts in order (exit reasons merged by name)."""
    m = len(positions)
    inverse = np.empty(m, np.int64)
    inverse[positions] = np.arange(m)
    names = tuple(dict.fromkeys(n for p in parts for n in p.exit_reason_names))
    counts = np.zeros((m, len(names)), np.int64)
    row = 0
    for p in parts:
        for j, name in enumerate(p.exit_reason_names):
            counts[row:row + len(p), names.index(name)] = p.exit_reason_counts[:, j]
        row += len(p)
    fields = {f: np.concatenate([getattr(p, f) for p in parts])[inverse] if parts
              else np.empty(0)
              for f in PriorBatch.__dataclass_fields__
              if f not in ("exit_reason_names", "exit_reason_counts")}
    return PriorBatch(**fields, exit_reason_names=names, exit_reason_counts=counts[inverse])


def stored_library(config: BacktestConfig, engine: Any) -> tuple[PatternIndex | None, str]:
    """The stored vector library of the run's interval (searched point in time per signal)
    and its fingerprint ("" when not used, "empty" when there is none)."""
    if not config.use_library or engine is None:
        return None, ""
    library = PatternIndex.from_db(engine, interval=config.interval)
    if len(library) == 0:
        return None, "empty"
    return library, library.fingerprint()
