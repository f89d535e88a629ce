"""How two runs of one configuration differ, for the look-ahead check
(:mod:`swing_core.backtest.lookahead`): a run converted to arrays once (:class:`_Run`: signal
frames, signals, trades, equity), compared column by column (floats to 1e-10 relative, NaN-aware,
exact equality first), each difference named by its column and its first differing bar with
the value on both runs; what a cut run has decided (a fill once seen, an exit once known) is
all that is compared.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from swing_core.backtest.core import CoreResult
from swing_core.backtest.priors import PRIOR_COLUMNS

_RTOL, _ATOL = 1e-10, 1e-12

#: Signal columns decided only once the stop order has filled (or its window has ended) ...
_FILL_COLUMNS = frozenset({"filled", "stop_entry", "fill_pos", "fill_ts", "entry_time",
                           "fill_price"})
#: ... and once the trade has exited; the portfolio's columns of a trade likewise.
_EXIT_COLUMNS = frozenset({"exit_pos", "exit_ts", "exit_price", "exit_reason", "realized_r",
                           "hold_bars", "both_touched"})
_PORTFOLIO_EXIT_COLUMNS = frozenset({"exit_price_net", "fees", "pnl", "return_pct"})
#: A signal's prior and calibration values (reported as "priors").
_PRIOR_COLUMNS = frozenset({*PRIOR_COLUMNS, "confidence", "prior_win_rate_raw"})


def _show(value: Any) -> str:
    if isinstance(value, np.datetime64):
        return "NaT" if np.isnat(value) else pd.Timestamp(value).tz_localize("UTC").isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return repr(value)


def _arrays(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Every column as a numpy array, converted once (tz-aware times as UTC datetime64[ns],
    never arrays of Timestamp objects)."""
    return {col: (values.to_numpy("datetime64[ns]")
                  if isinstance(values.dtype, pd.DatetimeTZDtype) else values.to_numpy())
            for col, values in frame.items()}


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise equality: floats to :data:`_RTOL`, NaN == NaN, None == NaN == NaT.

    Exact equality first (an honest run's values are mostly bit-identical); the tolerance
    and the missing-value rules only for the rest."""
    kinds = a.dtype.kind + b.dtype.kind
    with np.errstate(invalid="ignore"):
        same = np.asarray(a == b, dtype=bool)
    if same.all():
        return same
    rest = np.flatnonzero(~same)
    x, y = a[rest], b[rest]
    if all(k in "fciub" for k in kinds) and any(k in "fc" for k in kinds):
        same[rest] = np.isclose(x.astype(float), y.astype(float), rtol=_RTOL, atol=_ATOL,
                                equal_nan=True)
    else:
        same[rest] = pd.isna(x) & pd.isna(y)
    return same


class _Labels:
    """Row labels made only when a message needs one (``labels[i]``)."""

    def __init__(self, make: Callable[[int], str]) -> None:
        self._make = make

    def __getitem__(self, i: int) -> str:
        return self._make(i)


def _differ(where: str, column: str, a: np.ndarray, b: np.ndarray, labels: _Labels,
            mask: np.ndarray | None = None) -> str | None:
    """A message for the first row where ``a`` (cut run) and ``b`` (full run) differ."""
    same = _same(a, b)
    if mask is not None:
        same |= ~mask
    if same.all():
        return None
    bad = np.flatnonzero(~same)
    i = int(bad[0])
    return (f"{where} column {column!r}: {bad.size} of {same.size} differ, first at "
            f"{labels[i]}: {_show(a[i])} with data up to the cut vs {_show(b[i])} with all "
            "data")


@dataclass(frozen=True)
class _Run:
    """What the check compares of one run, converted to arrays once: each symbol's signal
    frame, its signals, trades (taken signals with the portfolio's columns) and equity."""

    frames: dict[str, tuple[pd.DatetimeIndex, dict[str, np.ndarray]]]
    signals: dict[str, np.ndarray]
    trades: dict[str, np.ndarray]
    equity: tuple[pd.DatetimeIndex, dict[str, np.ndarray]]

    @classmethod
    def of(cls, frames: Mapping[str, pd.DataFrame], core: CoreResult) -> _Run:
        signals = core.signals if core.signals is not None else core.trades
        return cls(frames={s: (f.index, _arrays(f)) for s, f in frames.items()},
                   signals=_arrays(signals), trades=_arrays(core.trades),
                   equity=(core.equity.index, _arrays(core.equity)))


def _frame_mismatches(where: str, part: tuple[pd.DatetimeIndex, dict[str, np.ndarray]],
                      full: tuple[pd.DatetimeIndex, dict[str, np.ndarray]]) -> list[str]:
    """Every column of a signal frame (or the equity) of the cut run against the same rows
    of the full run's."""
    (index, columns), (full_index, full_columns) = part, full
    at = full_index.get_indexer(index)
    if (at < 0).any():
        return [f"{where} rows only with data up to the cut: {int((at < 0).sum())}, first "
                f"{index[np.flatnonzero(at < 0)[0]].isoformat()}"]
    labels = _Labels(lambda i: index[i].isoformat())
    out = [f"{where} column {c!r}: only in one run" for c in
           sorted(set(columns).symmetric_difference(full_columns))]
    for col, values in columns.items():
        if col in full_columns:
            msg = _differ(where, col, values, full_columns[col][at], labels)
            if msg:
                out.append(msg)
    return out


def _match(where: str, part: dict[str, np.ndarray], full: dict[str, np.ndarray],
           full_in_cut: np.ndarray, full_keys: pd.MultiIndex
           ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Rows of both runs matched on (symbol, signal_ts) as (cut run rows, full run rows), and
    messages for rows only in one (``full_in_cut``: the full run's rows the cut run should
    have)."""
    at = full_keys.get_indexer(pd.MultiIndex.from_arrays([part["symbol"], part["signal_ts"]]))
    only_full = full_in_cut.copy()
    only_full[at[at >= 0]] = False
    out = []
    for rows, run, which in ((np.flatnonzero(at < 0), part, "with data up to the cut"),
                             (np.flatnonzero(only_full), full, "with all data")):
        if rows.size:
            i = rows[0]
            out.append(f"{where} rows only {which}: {rows.size}, first {run['symbol'][i]} "
                       f"{_show(run['signal_ts'][i])} ({run['setup'][i]} {run['side'][i]})")
    rows = np.flatnonzero(at >= 0)
    return rows, at[rows], out


def _rows_mismatches(where: str, part: dict[str, np.ndarray], full: dict[str, np.ndarray],
                     rows: tuple[np.ndarray, np.ndarray], columns: Sequence[str], *,
                     fill_columns: frozenset[str]) -> list[str]:
    """``columns`` of matched signals / trades; ``fill_columns`` only where the cut run had
    seen the fill (or the end of the entry window), exit columns only where it had seen the
    exit."""
    mine, theirs = rows
    labels = _Labels(lambda i: f"{part['symbol'][mine[i]]} {_show(part['signal_ts'][mine[i]])}")
    exited = part["exit_reason"][mine] != "PENDING"
    fill_known = part["filled"][mine].astype(bool) | exited
    out = []
    for col in columns:
        if col not in full or col not in part:
            out.append(f"{where} column {col!r}: only in one run")
            continue
        mask = (exited if col in _EXIT_COLUMNS or col in _PORTFOLIO_EXIT_COLUMNS
                else fill_known if col in fill_columns else None)
        msg = _differ(where, col, part[col][mine], full[col][theirs], labels, mask)
        if msg:
            out.append(msg)
    return out


def _mismatches(label: str, part: _Run, whole: _Run, *, cut: pd.Timestamp,
                keys: Mapping[str, pd.MultiIndex], signal_cols: Sequence[str],
                portfolio_cols: Sequence[str]) -> tuple[list[str], dict[str, int]]:
    """Everything the cut run decided against the full run: frames, signals, priors, trades
    (the portfolio's columns), equity; and how many of each were compared."""
    out: list[str] = []
    counts = {"frame_rows": 0}
    for symbol, frame in part.frames.items():
        out += _frame_mismatches(f"{label}: {symbol} frame", frame, whole.frames[symbol])
        counts["frame_rows"] += len(frame[0])
    until = np.datetime64(cut.tz_convert("UTC").tz_localize(None))
    symbols = list(part.frames)
    for name, mine, theirs, cols in (("signals", part.signals, whole.signals, signal_cols),
                                     ("trades", part.trades, whole.trades, portfolio_cols)):
        in_cut = np.isin(theirs["symbol"], symbols) & (theirs["signal_ts"] <= until)
        rows_mine, rows_theirs, only = _match(f"{label}: {name}", mine, theirs, in_cut,
                                              keys[name])
        out += only
        groups = ((("signals", [c for c in cols if c not in _PRIOR_COLUMNS]),
                   ("priors", [c for c in cols if c in _PRIOR_COLUMNS])) if name == "signals"
                  else (("trades", cols),))
        fill_columns = _FILL_COLUMNS if name == "signals" else frozenset(cols)
        for what, group in groups:
            out += _rows_mismatches(f"{label}: {what}", mine, theirs, (rows_mine, rows_theirs),
                                    group, fill_columns=fill_columns)
        if name == "signals":
            counts["signals"] = rows_mine.size
            counts["priors"] = int((mine["prior_n"][rows_mine] > 0).sum())
        else:
            counts["trades"] = int((mine["exit_reason"][rows_mine] != "PENDING").sum())
    out += _frame_mismatches(f"{label}: equity", part.equity, whole.equity)
    counts["equity"] = len(part.equity[0])
    return out, counts


def _first_of_each(messages: Sequence[str]) -> tuple[str, ...]:
    """One message per place and column (the one of the earliest cut), noting how many later
    cuts found that column differing too: a leak shows at most cuts, and the report should
    name every column it reaches rather than one cut's columns only."""
    first: dict[str, str] = {}
    more: dict[str, int] = {}
    for message in messages:
        key = message.split(": ")[1]  # "cut <time>: <where> column '<name>': ..."
        if key in first:
            more[key] += 1
        else:
            first[key], more[key] = message, 0
    return tuple(msg + (f" (and at {more[key]} later cuts)" if more[key] else "")
                 for key, msg in first.items())
