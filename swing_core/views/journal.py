"""The signal journal: stored signals as a table, evaluating pending ones, their summary."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from swing_core import market
from swing_core.config import StrategyParams
from swing_core.costs import won_after_costs
from swing_core.journal import evaluate_pending
from swing_core.views.formatting import row_time_texts

JOURNAL_COLUMNS: tuple[str, ...] = (
    "id", "asof", "symbol", "interval", "verdict", "side", "setup", "trend_label", "entry",
    "stop", "target", "r_multiple", "confidence", "expected_winrate", "prior_n", "expected_r",
    "data_source", "evaluated", "exit_reason", "realized_r", "hold_bars", "exit_ts",
    "verdict_reason",
)


def journal_table(signals: pd.DataFrame) -> pd.DataFrame:
    """Stored signals (``db.list_signals``) in the journal's column order. Times as text by each
    row's interval (:func:`swing_core.timefmt.bar_time_text`): a daily signal bar as its trading
    date, an intraday one in New York time with the zone; ``exit_ts`` (stored as the exit bar's
    close time) as the exit bar's trading date for daily signals, never the next day."""
    table = signals.copy()
    for column in JOURNAL_COLUMNS:
        if column not in table:
            table[column] = None
    table = table.loc[:, list(JOURNAL_COLUMNS)]
    for column in ("asof", "exit_ts"):
        stamps = pd.to_datetime(table[column], utc=True, errors="coerce")
        table[column] = row_time_texts(stamps, table["interval"].tolist(),
                                       close=column == "exit_ts")
    return table.reset_index(drop=True)


def evaluate_journal(engine: Any, *, offline: bool | None = None) -> Any:
    """Evaluate pending live signals (``journal.evaluate_pending``) on bars fetched through the
    market module (the cache topped up from Yahoo, or demo bars offline). Returns its
    ``EvaluationSummary``."""

    def load(symbol: str, interval: str) -> pd.DataFrame:
        return market.fetch_bars(symbol, interval, engine=engine, offline=offline)

    return evaluate_pending(engine, load_bars=load)


def evaluation_text(summary: Any) -> str:
    """One sentence about an ``EvaluationSummary``."""
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(summary.by_reason.items())) or "none"
    text = (f"Checked {summary.checked} pending signal(s): evaluated {summary.evaluated} "
            f"({reasons}); still pending {summary.still_pending}; skipped {summary.skipped}.")
    if summary.errors:
        text += " Problems: " + "; ".join(f"{k}: {v}" for k, v in summary.errors.items())
    return text


def journal_summary(table: pd.DataFrame, *, params: StrategyParams | None = None
                    ) -> dict[str, Any]:
    """Counts and outcomes of journal rows: signals, evaluated, pending, wins, ``win_rate`` (R
    wins: share of evaluated signals with R > 0, before costs, among those with a realized R),
    ``win_rate_net`` (wins after ``params``' fees and slippage,
    :func:`swing_core.costs.won_after_costs`, among those whose prices are known),
    ``n_outcomes`` / ``n_outcomes_net`` (the outcomes each rate rests on), average realized R."""
    evaluated = table["evaluated"].fillna(False).astype(bool) if "evaluated" in table else \
        pd.Series(False, index=table.index)

    def number(column: str) -> pd.Series:
        return (pd.to_numeric(table[column], errors="coerce") if column in table
                else pd.Series(np.nan, index=table.index))

    realized = number("realized_r")
    known = realized.dropna()
    net_won = won_after_costs(realized.to_numpy(float), number("entry").to_numpy(float),
                              number("stop").to_numpy(float),
                              exit_price=number("exit_price").to_numpy(float),
                              params=params or StrategyParams())
    net_known = net_won[np.isfinite(net_won)]
    return {
        "signals": int(len(table)),
        "evaluated": int(evaluated.sum()),
        "pending": int((~evaluated).sum()),
        "wins": int((known > 0).sum()),
        "win_rate": float((known > 0).mean()) if len(known) else None,
        "win_rate_net": float(net_known.mean()) if net_known.size else None,
        "n_outcomes": int(len(known)),
        "n_outcomes_net": int(net_known.size),
        "avg_r": float(known.mean()) if len(known) else None,
    }
