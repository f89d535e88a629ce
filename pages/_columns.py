"""Column configurations shared by several pages' tables (one label and help text each)."""

from __future__ import annotations

from typing import Any

import streamlit as st


def prior_rate_columns(rate_column: str, *, when: str) -> dict[str, Any]:
    """The prior's predicted win rate and the number of neighbours it rests on. ``when``:
    "is" for a run's trades, "was" for stored signals (the rate as it was then)."""
    then = "when the signal was made" if when == "was" else "at the signal"
    return {
        rate_column: st.column_config.NumberColumn(
            "Pred. win", format="percent",
            help=f"The prior's win rate {then}: calibrated to a win after costs once enough "
                 "outcomes are known, before that the neighbours' R win rate (before costs)."),
        "prior_n": st.column_config.NumberColumn(
            "n", format="%d", help=f"Neighbours the prior rest{'ed' if when == 'was' else 's'} on."),
    }
