"""The names of win rates and calibration figures, in one place, so that every page says the
same thing: a *predicted* win rate is either the neighbours' R win rate (R > 0, before costs)
or that rate calibrated to a win after fees and slippage; a *realized* one is either
``Win Rate [%]`` (P&L > 0 after costs, backtesting.py's meaning) or ``R Win Rate [%]`` (R > 0,
before costs). A rate always goes with the number of outcomes it rests on (:func:`rate_text`).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from swing_core.views.formatting import format_number

__all__ = ["BRIER_LABELS", "WIN_RATE_KINDS", "brier_table", "predicted_kind", "rate_text",
           "stat_label", "win_rate_label"]

#: kind -> (label, short label for narrow places: metric tiles, table headers).
WIN_RATE_KINDS: dict[str, tuple[str, str]] = {
    "predicted_r": ("Predicted R win rate (before costs)", "Pred. R win (before costs)"),
    "predicted_net": ("Predicted win rate (after costs, calibrated)",
                      "Pred. win (after costs)"),
    "pnl": ("Win Rate [%] (P&L after costs)", "Win Rate (P&L after costs)"),
    "r": ("R Win Rate [%] (before costs)", "R Win Rate (before costs)"),
    # the journal's signals have no P&L: their win after costs is R net of costs > 0
    "net": ("Win rate after costs (R net of fees and slippage > 0)", "Win rate (after costs)"),
}
#: Statistics (:func:`swing_core.metrics.compute_stats` names) shown with what they count.
_STAT_KINDS = {"Win Rate [%]": "pnl", "R Win Rate [%]": "r"}
_STAT_NOTES = {"Avg. Predicted Win Rate [%]": "Avg. Predicted Win Rate [%] (calibrated to "
                                              "wins after costs once enough are known)"}

#: The four predictors of a calibration report's Brier comparison, as a trader reads them.
BRIER_LABELS: dict[str, str] = {
    "raw": "Raw prior: the neighbours' R win rate (before costs)",
    "calibrated": "Calibrated prior (walk-forward isotonic, to wins after costs)",
    "base_rate": "Running base rate (share of wins so far)",
    "constant": "Always 50 %",
}
#: The same, for narrow places.
_BRIER_SHORT: dict[str, str] = {"raw": "Raw prior (before costs)",
                                "calibrated": "Calibrated (after costs)",
                                "base_rate": "Running base rate", "constant": "Always 50 %"}


def win_rate_label(kind: str, *, short: bool = False) -> str:
    """The name of a win rate of ``kind`` (:data:`WIN_RATE_KINDS`: ``predicted_r``,
    ``predicted_net``, ``pnl``, ``r``, ``net``)."""
    label, short_label = WIN_RATE_KINDS[kind]
    return short_label if short else label


def stat_label(name: str) -> str:
    """A statistic's name as shown: the win rates say what they count."""
    kind = _STAT_KINDS.get(name)
    return win_rate_label(kind) if kind else _STAT_NOTES.get(name, name)


def predicted_kind(prior: dict[str, Any] | None) -> str:
    """``predicted_net`` when a signal's ``expected_winrate`` was calibrated (its prior says
    so), else ``predicted_r`` (the neighbours' own R win rate)."""
    return "predicted_net" if (prior or {}).get("calibrated") else "predicted_r"


def rate_text(rate: Any, n: Any, *, spec: str = ".0%") -> str:
    """A rate with the count it rests on: ``39% (n = 12)``; ``–`` without a rate."""
    text = format_number(rate, spec)
    if text == "–":
        return text
    count = format_number(n, ".0f")
    return f"{text} (n = {count})" if count != "–" else text


def brier_table(comparison: Any, *, short: bool = False) -> pd.DataFrame:
    """A :class:`~swing_core.calibration.BrierComparison` as a table: one row per predictor
    (:data:`BRIER_LABELS`; ``short``: shorter names for a narrow column), its Brier score
    (lower is better; 0.25 for always 50 %) and the pairs it was scored on (all of them for
    every predictor: the calibrated one scores the pairs predicted before calibration could
    start raw)."""
    names = _BRIER_SHORT if short else BRIER_LABELS
    rows = [("raw", comparison.brier_raw, comparison.n),
            ("calibrated", comparison.brier_calibrated, comparison.n),
            ("base_rate", comparison.brier_base_rate, comparison.n),
            ("constant", comparison.brier_constant, comparison.n)]
    return pd.DataFrame({
        "predictor": [names[key] for key, _, _ in rows],
        "brier": [float(value) for _, value, _ in rows],
        "n": [int(n) for _, _, n in rows],
    })
