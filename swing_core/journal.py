"""The signal journal: record live signals, list them, evaluate their real outcomes, export CSV.

Evaluation follows STRATEGY.md "Exits" through :func:`swing_core.exits.simulate_exits` (the same
simulator the backtests use): a signal on bar ``asof`` (UTC open time) is entered at that bar's
close or by a stop order afterwards and followed on the bars after it. A signal is evaluated
once enough later bars exist to decide it; until then it stays pending. The outcome (exit
reason, exit price, ``exit_ts`` = UTC close time of the exit bar, realized R, bars held) is
stored on the signal and on its setup vector, so the pattern priors learn from live outcomes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from swing_core import db
from swing_core.config import StrategyParams
from swing_core.errors import SwingError
from swing_core.exits import simulate_exits
from swing_core.models import JOURNAL_RUN_ID

__all__ = [
    "EvaluationSummary",
    "BarsLoader",
    "DUPLICATE_RUN_ID",
    "JOURNAL_RUN_ID",
    "JournalWrite",
    "NO_PLAN_MESSAGE",
    "evaluate_pending",
    "export_csv",
    "has_trade_plan",
    "moved_duplicates",
    "list_signals",
    "record_signal",
    "record_signals",
]

#: ``(symbol, interval) -> bars frame`` (UTC open-time index; see the market module).
BarsLoader = Callable[[str, str], pd.DataFrame]

#: Exit reason stored for a signal that carried no trade plan (nothing to follow): only rows
#: saved before the journal refused such signals get it now.
NO_PLAN = "NO_PLAN"
#: Where the 0005 upgrade kept copies of a journal signal that differed from the one kept.
DUPLICATE_RUN_ID = "live-duplicate"
NO_PLAN_MESSAGE = ("No trade plan: nothing to journal (a signal needs an entry, a stop and a "
                   "target on the right sides for its outcome to be followed).")

list_signals = db.list_signals


def _signal_record(signal: Any, *, with_vector: bool) -> dict[str, Any]:
    """A ``signals`` row from an ``agent.Signal`` (``to_record()``/``vector_row()``) or a dict."""
    if hasattr(signal, "to_record"):
        record = dict(signal.to_record())
        if with_vector and hasattr(signal, "vector_row"):
            vector_row = signal.vector_row()
            vector = np.asarray(vector_row.get("vector", []), dtype=np.float32)
            if vector.size:
                record["vector"] = vector
                record["version"] = vector_row.get("version", "v1")
        return record
    record = dict(signal)
    if not with_vector:
        record.pop("vector", None)
    return record


@dataclass(frozen=True)
class JournalWrite:
    """What :func:`record_signals` did with the signals given: ``ids`` of their journal rows in
    input order (new, or the row saved earlier for the same symbol, interval and bar); ``added``
    rows written, ``already`` signals that were in the journal (nothing written), ``no_plan``
    signals refused because they carry no trade plan (not in ``ids``)."""

    ids: tuple[int, ...] = ()
    added: int = 0
    already: int = 0
    no_plan: int = 0

    @property
    def message(self) -> str:
        """One sentence for the trader: saved, already there, or refused."""
        if self.added + self.already + self.no_plan == 1:
            if self.added:
                return f"Saved signal #{self.ids[0]} to the journal."
            if self.already:
                return (f"Already in the journal as signal #{self.ids[0]} (same symbol, interval "
                        "and bar): nothing saved.")
            return NO_PLAN_MESSAGE
        parts = [f"{self.added} signal(s) saved to the journal"]
        if self.already:
            parts.append(f"{self.already} already in the journal (nothing saved for those)")
        if self.no_plan:
            parts.append(f"{self.no_plan} without a trade plan (nothing to journal)")
        return ", ".join(parts) + "."


def record_signal(engine: sa.Engine, signal: Any, *, run_id: str = JOURNAL_RUN_ID,
                  with_vector: bool = True) -> JournalWrite:
    """Store one signal (an ``agent.Signal`` or a dict of ``signals`` columns) and, when it
    carries a setup vector and ``with_vector``, its vector (linked by ``vector_id``), in one
    transaction: what :func:`record_signals` of one does (the same rules, row and message),
    through :func:`swing_core.db.write_signal` (no frame; statements compiled once)."""
    record = _signal_record(signal, with_vector=with_vector)
    if run_id == JOURNAL_RUN_ID and not _has_plan(_plan_columns([record]))[0]:
        return JournalWrite(no_plan=1)
    written = db.write_signal(engine, record, run_id=run_id)
    return JournalWrite(ids=tuple(written.ids), added=written.added, already=written.already)


def record_signals(engine: sa.Engine, signals: Iterable[Any], *, run_id: str = JOURNAL_RUN_ID,
                   with_vector: bool = True) -> JournalWrite:
    """Store many signals (and their vectors) in one transaction.

    The journal (``run_id`` "live") keeps one signal per (symbol, interval, bar): a signal saved
    before is not saved again (the stored row, its outcome and vector stay as they are), even
    when two writers save it at once (a unique index decides). A signal without a usable trade
    plan (the rule :func:`evaluate_pending` follows) is refused: there is no outcome to follow.
    Other run ids are stored as given."""
    records = [_signal_record(s, with_vector=with_vector) for s in signals]
    if not records:
        return JournalWrite()
    refused = 0
    if run_id == JOURNAL_RUN_ID:
        plan = _has_plan(_plan_columns(records))
        refused = int((~plan).sum())
        records = [r for r, ok in zip(records, plan, strict=True) if ok]
    written = db.write_signals(engine, records, run_id=run_id)
    return JournalWrite(ids=tuple(written.ids), added=written.added, already=written.already,
                        no_plan=refused)


def has_trade_plan(signal: Any) -> bool:
    """Whether the journal takes ``signal`` (an ``agent.Signal`` or a dict of ``signals``
    columns): a side, and entry, stop and target on the right sides of each other."""
    return bool(_has_plan(_plan_columns([_signal_record(signal, with_vector=False)]))[0])


def moved_duplicates(engine: sa.Engine) -> int:
    """How many signals the schema upgrade moved out of the journal (run id
    :data:`DUPLICATE_RUN_ID`): later copies of a bar already saved that differed from it."""
    return len(db.list_signals(engine, run_id=DUPLICATE_RUN_ID, limit=None))


_PLAN_COLUMNS = ("side", "entry", "stop", "target")


def _plan_columns(records: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """The plan columns (side, entry, stop, target) of ``records``; missing ones None."""
    return {c: [r.get(c) for r in records] for c in _PLAN_COLUMNS}


@dataclass(frozen=True)
class EvaluationSummary:
    """What :func:`evaluate_pending` did: counts of signals ``checked`` (pending before),
    ``evaluated`` (outcome stored, including NOT_FILLED and NO_PLAN), ``still_pending`` (not
    enough later bars yet), ``skipped`` (signal bar not among the loaded bars); ``by_reason``
    counts per exit reason; ``errors``: ``"SYMBOL interval" -> message`` for bars that could not
    be loaded (those signals stay pending)."""

    checked: int = 0
    evaluated: int = 0
    still_pending: int = 0
    skipped: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


_SIDES = {"long": 1, "short": -1}


def _has_plan(group: pd.DataFrame | dict[str, list[Any]]) -> np.ndarray:
    """Per signal (the plan columns of a frame, or :func:`_plan_columns`): a side, and entry,
    stop and target finite and on the right sides of each other. The one rule of the journal:
    what it takes and what evaluation follows."""
    side = np.array([_SIDES.get(s, 0) if isinstance(s, str) else 0 for s in group["side"]])
    entry, stop, target = (np.asarray(pd.to_numeric(group[c], errors="coerce"), dtype=float)
                           for c in ("entry", "stop", "target"))
    finite = np.isfinite(entry) & np.isfinite(stop) & np.isfinite(target)
    with np.errstate(invalid="ignore"):
        sane = ((stop - entry) * side < 0) & ((target - entry) * side > 0)
    return (side != 0) & finite & sane


def _complete_bars(bars: pd.DataFrame) -> pd.DataFrame:
    """Drop a still-forming last bar (``attrs["last_bar_complete"] is False``)."""
    if len(bars) and bars.attrs.get("last_bar_complete") is False:
        return bars.iloc[:-1]
    return bars


def _evaluate_group(group: pd.DataFrame, bars: pd.DataFrame, interval: str,
                    params: StrategyParams) -> tuple[pd.DataFrame, int, int]:
    """Outcome rows (``id`` + outcome columns) of one symbol/interval; (rows, pending, skipped)."""
    bars = _complete_bars(bars)
    plan = _has_plan(group)
    rows: list[pd.DataFrame] = []
    no_plan = group.loc[~plan, ["id"]]
    if len(no_plan):
        rows.append(no_plan.assign(exit_reason=NO_PLAN))
    with_plan = group.loc[plan]
    if len(with_plan) == 0 or len(bars) == 0:
        return (pd.concat(rows) if rows else pd.DataFrame()), len(with_plan), 0
    index = pd.DatetimeIndex(bars.index)
    asof = pd.DatetimeIndex(with_plan["asof"])
    pos = index.get_indexer(asof)
    found = pos >= 0
    later = ~found & (asof > index[-1])  # the signal bar is not loaded yet: wait
    skipped = int((~found & ~later).sum())
    pending = int(later.sum())
    chosen = with_plan.loc[found]
    if len(chosen):
        side = np.where(chosen["side"].to_numpy() == "long", 1, -1).astype(np.int8)
        result = simulate_exits(
            bars, pos[found], side, chosen["entry"].to_numpy(float),
            chosen["stop"].to_numpy(float), chosen["target"].to_numpy(float),
            interval=interval, params=params,
        )
        frame = result.to_frame()
        frame["id"] = chosen["id"].to_numpy()
        decided = frame["exit_reason"] != "PENDING"
        pending += int((~decided).sum())
        frame = frame.loc[decided]
        hold = frame["hold_bars"].where(frame["hold_bars"] >= 0)
        rows.append(pd.DataFrame({
            "id": frame["id"], "exit_reason": frame["exit_reason"],
            "exit_price": frame["exit_price"], "exit_ts": frame["exit_ts"],
            "realized_r": frame["realized_r"], "hold_bars": hold,
        }))
    return (pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()), pending, skipped


def evaluate_pending(engine: sa.Engine, *, load_bars: BarsLoader | None = None,
                     params: StrategyParams | None = None, run_id: str = "live",
                     symbol: str | None = None) -> EvaluationSummary:
    """Evaluate the pending signals of ``run_id`` whose outcome the bars can now decide.

    ``load_bars``: ``(symbol, interval) -> bars frame``; default: the cached bars
    (:func:`swing_core.db.load_bars`). The CLI passes a fetching loader that tops the cache up.
    A still-forming last bar (``attrs["last_bar_complete"] is False``) is ignored. Signals
    without a usable plan are closed as ``NO_PLAN``; a plan that never filled as ``NOT_FILLED``
    (no realized R). All outcomes are stored in one transaction."""
    params = params or StrategyParams()
    if load_bars is None:
        def load_bars(sym: str, interval: str) -> pd.DataFrame:
            return db.load_bars(engine, sym, interval)

    pending = db.list_signals(engine, evaluated=False, run_id=run_id, symbol=symbol, limit=None)
    if len(pending) == 0:
        return EvaluationSummary()
    outcomes: list[pd.DataFrame] = []
    still_pending = skipped = 0
    errors: dict[str, str] = {}
    for (sym, interval), group in pending.groupby(["symbol", "interval"], sort=True):
        try:
            bars = load_bars(sym, interval)
            rows, n_pending, n_skipped = _evaluate_group(group, bars, interval, params)
        except SwingError as exc:
            errors[f"{sym} {interval}"] = str(exc)
            still_pending += len(group)
            continue
        outcomes.append(rows)
        still_pending += n_pending
        skipped += n_skipped
    done = [o for o in outcomes if len(o)]
    stored = pd.concat(done, ignore_index=True) if done else pd.DataFrame()
    if len(stored):
        db.set_signal_outcomes(engine, stored)
    by_reason = ({str(k): int(v) for k, v in stored["exit_reason"].value_counts().items()}
                 if len(stored) else {})
    return EvaluationSummary(checked=len(pending), evaluated=len(stored),
                             still_pending=still_pending, skipped=skipped,
                             by_reason=by_reason, errors=errors)


def export_csv(engine: sa.Engine, path: str | Path | None = None, *, run_id: str | None = "live",
               **filters: Any) -> str | Path:
    """Write the journal (all matching signals, newest first; timestamps ISO 8601 UTC) as CSV to
    ``path`` and return the path, or return the CSV text when ``path`` is None. ``filters``: as
    :func:`swing_core.db.list_signals` (symbol, since, until, trend, evaluated, interval)."""
    frame = db.list_signals(engine, run_id=run_id, limit=None, **filters)
    if path is None:
        return frame.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%S%z")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False, date_format="%Y-%m-%dT%H:%M:%S%z")
    return out
