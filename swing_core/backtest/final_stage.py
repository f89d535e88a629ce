"""The universe run's final stage (:func:`~swing_core.backtest.run_universe`): priors,
portfolio, statistics and the stored run, streamed from the spill files
(:mod:`swing_core.backtest.spill`) so the parent's memory does not grow with the universe.

- priors (:func:`price_taken`): chunk by chunk, each symbol's taken signals priced by the
  pattern engine's ``query_many`` against its own outcomes (what the engine searches first);
  the few signals whose symbol had no outcome known yet are priced afterwards against every
  symbol's outcomes known by then, read from the files batch by batch. Only the four figures
  :func:`~swing_core.backtest.priors.priced_columns` reads are kept per taken signal;
- portfolio and statistics (:func:`~swing_core.backtest.core.core_from_taken`,
  :func:`~swing_core.backtest.core.run_statistics`) on a frame of the taken signals with only
  the columns they read (labels as categoricals);
- the stored trades (:func:`trade_parts`) re-read from the files chunk by chunk and written in
  slices, with the priors' and the portfolio's columns kept from the steps above (about 56
  bytes per taken signal).

Same figures as :func:`~swing_core.backtest.core.core_from_signals` on the full signal frame:
every other signal only counts (# Signals) or is an outcome the priors search.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from swing_core.backtest.config import BacktestConfig
from swing_core.backtest.core import core_from_taken, run_statistics
from swing_core.backtest.priors import (
    PriorQueries,
    outcome_rows_from_columns,
    pattern_priors,
    priced_columns,
    unpriced_columns,
)
from swing_core.backtest.result import BacktestResult
from swing_core.backtest.spill import (
    _BOOLS,
    _FLOATS,
    _INTS,
    _LABELS,
    _TIMES,
    SpillColumns,
    release_memory,
    utc_times,
)
from swing_core.backtest.store import save_run, trades_for_storage
from swing_core.backtest.walk import entry_times
from swing_core.config import INTERVAL_DELTA
from swing_core.patterns import PatternIndex, PriorBatch

__all__ = ["PRICED_FIELDS", "final_stage", "price_taken", "slim_batch", "trade_parts"]

#: The PriorBatch fields :func:`~swing_core.backtest.priors.priced_columns` reads (win rate,
#: expected R; the confidence blend: n, avg R): all the final stage keeps per taken signal.
PRICED_FIELDS = ("n", "win_rate", "avg_r", "expected_r")
_OUTCOME_KEYS = ("signal_ts", "exit_ts", "realized_r", "hold_bars", "vectors")
_OUTCOME_LABELS = ("exit_reason", "setup", "side", "vol_regime")
#: Columns of the taken signals the portfolio and the counts read (``core_from_taken``) ...
_FRAME_KEYS = ("signal_ts", "fill_ts", "exit_ts", "fill_pos", "exit_pos", "fill_price",
               "exit_price", "stop", "atr", "side_sign", "stop_entry", "filled")
#: ... and those only the statistics read (``run_statistics``: added after the portfolio)
_STATS_KEYS = ("realized_r", "both_touched")
_STATS_LABELS = ("setup", "trend", "vol_regime")
#: Prior columns only the stored trades read: on disk while the portfolio runs
_STORED_PRIORS = ("prior_win_rate_raw", "expected_r", "prior_n")


def slim_batch(fields: dict[str, np.ndarray]) -> PriorBatch:
    """A PriorBatch holding only :data:`PRICED_FIELDS` (the others: NaN / empty views that
    take no memory), for :func:`~swing_core.backtest.priors.priced_columns`."""
    m = len(fields["n"])
    out: dict[str, Any] = {}
    for name in PriorBatch.__dataclass_fields__:
        if name in fields:
            out[name] = fields[name]
        elif name == "exit_reason_names":
            out[name] = ()
        elif name == "exit_reason_counts":
            out[name] = np.zeros((m, 0), np.int64)
        elif name == "scope":
            out[name] = np.broadcast_to(np.array(None, dtype=object), (m,))
        elif name == "regime_filtered":
            out[name] = np.broadcast_to(np.False_, (m,))
        else:
            out[name] = np.broadcast_to(np.float64(np.nan), (m,))
    return PriorBatch(**out)


def _known_outcomes(data: SpillColumns, limit_ns: int) -> dict[str, np.ndarray]:
    """Every symbol's outcomes known by ``limit_ns`` (exit bar closed by then), as outcome
    columns (``outcome_rows_from_columns``), read chunk by chunk in signal order."""
    pieces: list[dict[str, Any]] = []
    for k in range(len(data.paths)):
        head = data.chunk(k, ("exit_pos", "exit_ts"))
        known = (head["exit_pos"] >= 0) & (head["exit_ts"] <= limit_ns)
        if known.any():
            pieces.append(data.chunk(k, _OUTCOME_KEYS, _OUTCOME_LABELS, rows=known))
    keys = ("symbol", *_OUTCOME_KEYS, *_OUTCOME_LABELS)
    if not pieces:
        return {key: np.empty((0, 16), np.float32) if key == "vectors" else np.empty(0)
                for key in keys}
    return {key: np.concatenate([p[key] for p in pieces]) for key in keys}


def price_taken(data: SpillColumns, config: BacktestConfig, *, library: PatternIndex | None,
                batch: int) -> PriorBatch:
    """The pattern engine's priors of the taken signals (``attach_priors``' ``prior_fn`` call
    with the default engine), as a :func:`slim_batch` in the taken signals' order.

    Pass 1, chunk by chunk: symbols in groups of about ``batch`` taken signals, each group
    searching only its symbols' outcomes (known by its last as-of time): what the engine
    searches first, the same symbol's outcomes, is all there, in the same order. Pass 2: the
    signals whose symbol had no outcome known yet search every symbol's outcomes, in as-of
    order, ``batch`` at a time, each batch with the outcomes known by its last as-of time (the
    engine searches only those known by each query's as-of, so the rows and their order in
    the search are the same as with every outcome)."""
    delta = pd.Timedelta(INTERVAL_DELTA[config.interval]).value
    prior_fn = pattern_priors(library, interval=config.interval)
    heads = [data.chunk(k, ("taken", "exit_pos")) for k in range(len(data.paths))]
    n_taken = int(sum(int(h["taken"].sum()) for h in heads))
    out = {name: np.zeros(n_taken, np.int64) if name == "n" else np.full(n_taken, np.nan)
           for name in PRICED_FIELDS}

    def price(queries: PriorQueries, outcomes: dict[str, np.ndarray], known: np.ndarray
              ) -> PriorBatch:
        rows = outcome_rows_from_columns(outcomes, known, interval=config.interval)
        return prior_fn(queries, rows, config.params)

    redo: list[dict[str, np.ndarray]] = []
    offset = 0
    for k, head in enumerate(heads):
        taken, exited = head["taken"].astype(bool), head["exit_pos"] >= 0
        query = data.chunk(k, ("signal_ts", "vectors"), ("vol_regime",), rows=taken)
        q_asof = query["signal_ts"] + delta
        outcomes = data.chunk(k, _OUTCOME_KEYS, _OUTCOME_LABELS, rows=exited)
        outcomes["hold_bars"] = outcomes["hold_bars"].astype(np.int64)
        counts = data.counts[data.chunk_symbols[k]:data.chunk_symbols[k + 1]]
        edges = np.r_[0, np.cumsum(counts)]
        q_bounds = np.r_[0, np.cumsum(taken, dtype=np.int64)][edges]
        o_bounds = np.r_[0, np.cumsum(exited, dtype=np.int64)][edges]
        j, n_parts = 0, len(counts)
        while j < n_parts:
            end = j + 1
            while end < n_parts and q_bounds[end + 1] - q_bounds[j] <= batch:
                end += 1
            sel = np.arange(q_bounds[j], q_bounds[end])
            if sel.size:
                block = np.zeros(len(outcomes["exit_ts"]), bool)
                block[o_bounds[j]:o_bounds[end]] = True
                known = block & (outcomes["exit_ts"] <= int(q_asof[sel].max()))
                got = price(PriorQueries(vectors=np.ascontiguousarray(query["vectors"][sel]),
                                         asof=utc_times(q_asof[sel]),
                                         symbol=query["symbol"][sel],
                                         vol_regime=query["vol_regime"][sel]),
                            outcomes, known)
                mine = np.asarray(got.scope, dtype=object) == "symbol"
                for name in PRICED_FIELDS:
                    out[name][offset + sel[mine]] = getattr(got, name)[mine]
                rest = sel[~mine]
                redo.append({"pos": offset + rest, "asof": q_asof[rest],
                             "vectors": query["vectors"][rest], "symbol": query["symbol"][rest],
                             "vol_regime": query["vol_regime"][rest]})
            j = end
        offset += len(q_asof)
        del query, outcomes
    if redo:
        rest = {key: np.concatenate([r[key] for r in redo]) for key in redo[0]}
        order = np.argsort(rest["asof"], kind="stable")
        rest = {key: values[order] for key, values in rest.items()}
        for i in range(0, len(order), batch):
            part = {key: values[i:i + batch] for key, values in rest.items()}
            known = _known_outcomes(data, int(part["asof"].max()))
            known["hold_bars"] = known["hold_bars"].astype(np.int64)
            got = price(PriorQueries(vectors=np.ascontiguousarray(part["vectors"]),
                                     asof=utc_times(part["asof"]), symbol=part["symbol"],
                                     vol_regime=part["vol_regime"]),
                        known, np.ones(len(known["exit_ts"]), bool))
            for name in PRICED_FIELDS:
                out[name][part["pos"]] = getattr(got, name)
            del known, got
    return slim_batch(out)


def _priors(data: SpillColumns, taken: np.ndarray, config: BacktestConfig, *,
            library: PatternIndex | None, batch: int) -> dict[str, np.ndarray]:
    """The taken signals' prior columns: ``prior_win_rate``, ``prior_win_rate_raw``,
    ``expected_r``, ``confidence`` (``priced_columns`` / ``unpriced_columns``), ``prior_n``."""
    base = data.column("base_confidence", rows=taken)
    if not (config.priors and taken.any()):
        cols = unpriced_columns(base)
        return {k: cols[k] for k in ("prior_win_rate", "prior_win_rate_raw", "expected_r",
                                     "confidence", "prior_n")}
    priced = price_taken(data, config, library=library, batch=batch)
    release_memory()
    need = data.read(("exit_pos", "realized_r", "fill_price", "stop", "exit_price", "exit_ts",
                      "signal_ts"), rows=taken)
    delta = pd.Timedelta(INTERVAL_DELTA[config.interval]).value
    cols = priced_columns(priced, base_confidence=base, exited=need["exit_pos"] >= 0,
                          realized_r=need["realized_r"], fill_price=need["fill_price"],
                          stop=need["stop"], exit_price=need["exit_price"],
                          exit_ts=utc_times(need["exit_ts"]),
                          asof=utc_times(need["signal_ts"] + delta), params=config.params)
    cols["prior_n"] = np.asarray(priced.n)
    return cols


def _taken_frame(data: SpillColumns, taken: np.ndarray, interval: str,
                 confidence: np.ndarray) -> pd.DataFrame:
    """The taken signals with the columns the portfolio and the counts read (``exit_reason``
    as a categorical) and their ``confidence``."""
    raw = data.read(_FRAME_KEYS, ("exit_reason",), rows=taken, categorical=True)
    frame = pd.DataFrame(index=pd.RangeIndex(int(taken.sum())))
    frame["symbol"] = data.symbols(taken)
    frame["exit_reason"] = raw.pop("exit_reason")
    signal_ts = utc_times(raw.pop("signal_ts"))
    for col in ("fill_ts", "exit_ts"):
        frame[col] = utc_times(raw.pop(col))
    frame["entry_time"] = entry_times(signal_ts, pd.DatetimeIndex(frame["fill_ts"]),
                                      INTERVAL_DELTA[interval])
    del signal_ts
    for col in list(raw):  # column by column: never the columns and a copy at once
        frame[col] = raw.pop(col)
    frame["confidence"] = confidence
    return frame


def _add_stats_columns(trades: pd.DataFrame, data: SpillColumns, taken: np.ndarray,
                       prior_win_rate: np.ndarray) -> None:
    """The columns only the statistics read, added in place after the portfolio ran."""
    raw = data.read(_STATS_KEYS, _STATS_LABELS, rows=taken, categorical=True)
    for col in (*_STATS_LABELS, *_STATS_KEYS):
        trades[col] = raw.pop(col)
    trades["prior_win_rate"] = prior_win_rate


def trade_parts(data: SpillColumns, taken: np.ndarray, kept: dict[str, np.ndarray], *,
                batch: int) -> Iterator[pd.DataFrame]:
    """The final trades as ``backtest_trades`` rows, ``batch`` at a time: the taken signals'
    columns re-read from the files chunk by chunk, ``kept`` (per taken signal, in order: the
    priors' and the portfolio's columns) added."""
    offset = 0
    for k in range(len(data.paths)):
        sel = taken[data.chunk_rows[k]:data.chunk_rows[k + 1]]
        n = int(sel.sum())
        if not n:
            continue
        cols = data.chunk(k, (*_TIMES, *_FLOATS, *_BOOLS, *_INTS), _LABELS, rows=sel)
        for col in _TIMES:
            cols[col] = utc_times(cols[col])
        cols["hold_bars"] = cols["hold_bars"].astype(np.int64)
        for start in range(0, n, batch):
            stop = min(start + batch, n)
            part = {col: values[start:stop] for col, values in cols.items()}
            part.update({col: values[offset + start:offset + stop]
                         for col, values in kept.items()})
            yield trades_for_storage(pd.DataFrame(part))
        offset += n
        del cols


def final_stage(n_chunks: int, spill: Path, config: BacktestConfig, errors: dict[str, str],
                digest: str, *, engine: Any, name: str | None, library: PatternIndex | None,
                prior_batch: int, trade_batch: int) -> tuple[int, BacktestResult] | None:
    """Priors, portfolio and statistics over every stored chunk (``run_backtest``'s stages),
    then the run stored (status "done", its final trades). Returns (run id, the result
    without its trades: they are stored), or None when no symbol ran."""
    data = SpillColumns(spill, n_chunks)
    if not data.meta:
        return None
    taken = data.column("taken").astype(bool)
    priors = _priors(data, taken, config, library=library, batch=prior_batch)
    stored = spill / "stored_priors.npy"  # read back (memory-mapped) when the trades are saved
    np.save(stored, np.stack([np.asarray(priors.pop(c), np.float64) for c in _STORED_PRIORS]))
    release_memory()
    frame = _taken_frame(data, taken, config.interval, priors.pop("confidence"))
    bh = [m["buy_hold"] for m in data.meta if np.isfinite(m["buy_hold"])]
    core = core_from_taken(frame, data.closes(), config,
                           buy_hold_return_pct=float(np.mean(bh)) if bh else math.nan,
                           n_invalid_plans=sum(m["n_invalid"] for m in data.meta),
                           n_signals=data.n)
    del frame  # core.trades is the same frame, with the portfolio's columns
    release_memory()
    _add_stats_columns(core.trades, data, taken, priors["prior_win_rate"])
    sources = {m["symbol"]: m["source"] for m in data.meta}
    summary = run_statistics(core, config, data_sources=sources.values())
    on_disk = np.load(stored, mmap_mode="r")
    kept = {"prior_win_rate": priors.pop("prior_win_rate"),
            **{col: on_disk[i] for i, col in enumerate(_STORED_PRIORS)},
            **{col: core.trades[col].to_numpy() for col in ("qty", "pnl", "fees")}}
    result = BacktestResult(
        run_hash=digest, config=config, symbols=tuple(data.names), stats=summary.stats,
        trades=pd.DataFrame(), equity=core.equity, breakdowns=summary.breakdowns,
        calibration=summary.calibration, errors=dict(errors), data_sources=sources,
        data_fingerprints={m["symbol"]: m["fingerprint"] for m in data.meta},
        notes={m["symbol"]: m["notes"] for m in data.meta if m["notes"]})
    del core, summary, priors
    release_memory()
    run_id = save_run(engine, result, name=name,
                      trades=trade_parts(data, taken, kept, batch=trade_batch))
    del kept, on_disk
    stored.unlink(missing_ok=True)
    return run_id, result
