"""Backtest Review's saved runs tab: every run is saved; load one, or compare several."""

from __future__ import annotations

from typing import Any

import streamlit as st

from pages import _shared as ui
from pages._backtest_form import RESULT
from swing_core import charts, views
from swing_core.backtest import list_runs, load_run


def saved_tab(engine: Any) -> None:
    """The saved runs: select one to load it as the page's result, several to compare their
    equity and statistics side by side."""
    if engine is None:
        st.info("Saved runs need the database (see the error above).")
        return
    runs = list_runs(engine)
    if runs.empty:
        st.info("No saved runs yet: run a backtest above; every run is saved automatically.")
        return
    # n_trades is the "# Trades" statistic: one column, under the statistic's name
    st.dataframe(views.for_display(runs.drop(columns=["# Trades"])), hide_index=True,
                 key="bt_saved", on_select="rerun", selection_mode="multi-row",
                 column_config={"run_hash": st.column_config.TextColumn("Run", width="small"),
                                "n_trades": st.column_config.NumberColumn("# Trades",
                                                                          format="%d")})
    picked = [runs.iloc[i]["run_hash"] for i in ui.selected_rows("bt_saved") if i < len(runs)]
    cols = st.columns(2)
    if cols[0].button("Load selected", key="bt_load", disabled=len(picked) != 1,
                      icon=":material/upload_file:", help="Select one run in the table."):
        st.session_state[RESULT] = load_run(engine, picked[0])
        st.rerun()
    if cols[1].button("Compare selected", key="bt_compare", disabled=len(picked) < 2,
                      icon=":material/compare:", help="Select two or more runs."):
        loaded = {h[:12]: load_run(engine, h) for h in picked}
        loaded = {k: v for k, v in loaded.items() if v is not None}
        st.session_state["bt_compare_runs"] = loaded
    compared = st.session_state.get("bt_compare_runs")
    if compared:
        st.plotly_chart(charts.equity_figure({k: v.equity["Equity"] for k, v in compared.items()},
                                             title="Equity, side by side"), key="bt_compare_eq")
        st.dataframe(views.stats_table({k: v.stats for k, v in compared.items()}),
                     hide_index=True, key="bt_compare_table")
