"""Backtest Review's parameter search tab: a grid over two strategy parameters, each combination
scored on the train period and on the held-out later period."""

from __future__ import annotations

from typing import Any

import streamlit as st

from pages import _shared as ui
from pages._backtest_form import progress_bar
from swing_core import charts, views
from swing_core.backtest import gather_bars, gather_context, grid_search
from swing_core.config import StrategyParams

#: Statistics a search can score by.
_METRICS = ("SQN", "Sharpe Ratio", "Avg. R", "Total R", "Return [%]", "Profit Factor",
            "Win Rate [%]")


def search_tab(result: Any | None) -> None:
    """A grid search over two parameters on the shown run's symbols, dates and settings, scored
    on the train period and, independently, on the later test period (two heatmaps)."""
    if result is None:
        st.info("Run a backtest first: the search uses its symbols, dates and settings.")
        return
    names = list(views.SEARCH_PARAMS)
    with st.form("bt_search"):
        cols = st.columns([2, 3, 2, 3])
        x = cols[0].selectbox("Parameter X", names, index=1, key="bt_sx")
        x_values = cols[1].text_input("X values", key="bt_sxv",
                                      value=", ".join(map(str, views.SEARCH_PARAMS[names[1]])))
        y = cols[2].selectbox("Parameter Y", names, index=0, key="bt_sy")
        y_values = cols[3].text_input("Y values", key="bt_syv",
                                      value=", ".join(map(str, views.SEARCH_PARAMS[names[0]])))
        cols = st.columns(3)
        metric = cols[0].selectbox("Score", _METRICS, key="bt_smetric")
        split = cols[1].slider("Train share", 0.5, 0.9, 0.7, 0.05, key="bt_split")
        min_trades = cols[2].number_input("Min trades", 1, 100, 5, key="bt_smin")
        run = st.form_submit_button("Run search", icon=":material/grid_on:")
    if run:
        if x == y:
            st.error("Choose two different parameters.")
            return
        defaults = StrategyParams()
        grid = {x: views.parse_grid_values(x_values, integer=isinstance(getattr(defaults, x),
                                                                        int)),
                y: views.parse_grid_values(y_values, integer=isinstance(getattr(defaults, y),
                                                                        int))}
        engine = ui.database_engine()
        bars, errors = gather_bars(list(result.symbols), result.config, engine=engine,
                                   source=ui.current_source())
        for symbol, error in errors.items():
            st.warning(f"{ui.plain(symbol)} left out: {ui.plain(error)}")
        context = gather_context(bars, result.config, engine=engine)
        bar, progress = progress_bar(f"Searching {len(grid[x]) * len(grid[y])} combinations…")
        found = grid_search(bars, grid, config=result.config, split=split, metric=metric,
                            min_trades=int(min_trades), executor="inline", progress=progress,
                            context=context.frames)
        bar.empty()
        st.session_state["bt_search_result"] = (found, x, y)
    saved = st.session_state.get("bt_search_result")
    if saved is None:
        st.info("Pick two parameters and their values, then run the search: each combination is "
                "scored on the train period and, independently, on the later test period.")
        return
    found, x, y = saved
    st.caption(f"Split at {found.split:%Y-%m-%d}; best by train {found.metric}: "
               f"{ui.plain(found.best_params)} (train {found.best_train_score:.3f}, test "
               f"{found.best_test_score:.3f}).")
    cols = st.columns(2)
    for col, column, label in ((cols[0], "train_score", "train"),
                               (cols[1], "test_score", "test (held out)")):
        col.plotly_chart(charts.heatmap_figure(found.table, x=x, y=y, z=column,
                                               title=f"{found.metric}, {label}"),
                         key=f"bt_heat_{column}")
    st.dataframe(found.table, hide_index=True, key="bt_search_table")
