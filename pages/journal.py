"""Journal: stored live signals with filters, evaluation of pending ones, their outcomes, CSV
export."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import streamlit as st

from pages import _shared as ui
from pages._columns import prior_rate_columns
from swing_core import charts, clock, db, journal, views
from swing_core.config import INTERVALS

ui.require_router()

_STATUS = {"all": None, "pending": False, "evaluated": True}
_TRENDS = ("any", "strong_up", "up", "sideways", "down", "strong_down")


def _filters() -> dict[str, Any]:
    cols = st.columns([2, 1, 3, 2, 2])
    symbol_text = cols[0].text_input("Symbol", key="j_symbol", max_chars=15,
                                     placeholder="all symbols",
                                     validate=(ui.SYMBOL_PATTERN, "Use a ticker such as AAPL."))
    interval = cols[1].selectbox("Interval", ("all", *INTERVALS), key="j_interval")
    status = cols[2].segmented_control("Status", list(_STATUS), default="all", key="j_status")
    trend = cols[3].selectbox("Trend", _TRENDS, key="j_trend")
    since = cols[4].date_input("Signals since", value=None, key="j_since",
                               max_value=clock.exchange_today() + dt.timedelta(days=1))
    symbol = None
    if symbol_text.strip():
        valid, errors = views.parse_symbols(symbol_text, limit=1)
        if errors or not valid:
            st.error(ui.plain(" ".join(errors) or "Type a ticker such as AAPL."))
        symbol = valid[0] if valid else None
    return {
        "symbol": symbol,
        "interval": None if interval == "all" else interval,
        "evaluated": _STATUS.get(status or "all"),
        "trend": None if trend == "any" else trend,
        "since": pd.Timestamp(since).tz_localize("America/New_York") if since else None,
    }


def _evaluate(engine: Any, pending: int) -> None:
    lock = ui.admin_lock()  # writes outcomes to the shared journal, clears caches: admins only
    if st.button(f"Evaluate {pending} pending", key="j_evaluate",
                 disabled=pending == 0 or lock is not None, icon=":material/fact_check:",
                 help=lock or "Follow each pending plan through the bars after it (at most 2 "
                              "trading days); signals whose window has not ended stay pending."
                 ) and ui.admin_allowed("Evaluating the journal"):
        with st.spinner("Evaluating…"):
            summary = views.evaluate_journal(engine)
        ui.clear_caches(services=True)  # new outcomes join the pattern library
        st.session_state["j_last_eval"] = views.evaluation_text(summary)
        st.rerun()
    message = st.session_state.pop("j_last_eval", None)
    if message:
        st.success(ui.plain(message), icon=":material/fact_check:")


def _table(table: pd.DataFrame) -> None:
    shown = views.journal_table(table)
    st.dataframe(shown, hide_index=True, key="journal_table", column_config={
        "id": st.column_config.NumberColumn("#", format="%d"),
        "asof": st.column_config.TextColumn("Signal bar"),  # a date (daily) or NY time
        "exit_ts": st.column_config.TextColumn("Exit"),
        "confidence": st.column_config.ProgressColumn("Confidence", min_value=0.0,
                                                      max_value=1.0, format="percent"),
        **prior_rate_columns("expected_winrate", when="was"),
        "verdict": "Verdict",
        "verdict_reason": st.column_config.TextColumn("Why", width="large"),
        "expected_r": st.column_config.NumberColumn("Exp. R", format="%+.2f"),
        "realized_r": st.column_config.NumberColumn("Realized R", format="%+.2f"),
        "r_multiple": st.column_config.NumberColumn("R", format="%.2f"),
        "entry": st.column_config.NumberColumn("Entry", format="%.2f"),
        "stop": st.column_config.NumberColumn("Stop", format="%.2f"),
        "target": st.column_config.NumberColumn("Target", format="%.2f"),
        "evaluated": st.column_config.CheckboxColumn("Evaluated"),
        "symbol": "Symbol", "interval": "Interval", "side": "Side", "setup": "Setup",
        "trend_label": "Trend", "data_source": "Data", "exit_reason": "Exit",
        "hold_bars": st.column_config.NumberColumn("Bars held", format="%d"),
    })
    st.download_button("Download CSV", views.to_csv_bytes(shown),
                       file_name="swingdesk_journal.csv", mime="text/csv", key="journal_csv",
                       icon=":material/download:")


def main() -> None:
    st.title("Journal")
    ui.source_note("signals saved and evaluated now")
    with ui.error_edge("The Journal"):
        if not ui.database_banner():
            return
        engine = ui.database_engine()
        filters = _filters()
        table = db.list_signals(engine, run_id=journal.JOURNAL_RUN_ID, limit=5000, **filters)
        if table.empty:
            if any(v is not None for v in filters.values()):
                st.info("No stored signal matches these filters: clear a filter.")
            else:
                st.info("The journal is empty. Open a symbol in the Signal Explorer and press "
                        "**Save to journal**; come back after two trading days to evaluate it.")
            return
        summary = views.journal_summary(table)
        cols = st.columns([2, 2, 2, 5, 5, 2])  # the win rates carry their n: room for it
        cols[0].metric("Signals", summary["signals"])
        cols[1].metric("Evaluated", summary["evaluated"])
        cols[2].metric("Pending", summary["pending"])
        cols[3].metric(views.win_rate_label("r", short=True),
                       views.rate_text(summary["win_rate"], summary["n_outcomes"]),
                       help="Share of evaluated signals with realized R > 0, before costs.")
        cols[4].metric(views.win_rate_label("net", short=True),
                       views.rate_text(summary["win_rate_net"], summary["n_outcomes_net"]),
                       help="Share with R net of fees and slippage > 0 (swing_core.costs): "
                            "what the predicted win rate is calibrated to.")
        cols[5].metric("Average R", views.format_number(summary["avg_r"], "+.2f"))
        demo = int((table["data_source"] == "demo").sum())
        if demo:
            were = "was" if demo == 1 else "were"
            st.warning(f"{demo} of these signals {were} made on DEMO data (synthetic prices); "
                       "their outcomes say nothing about the market.", icon=":material/science:")
        _evaluate(engine, summary["pending"])
        _table(table)
        moved = journal.moved_duplicates(engine)
        if moved:
            st.caption(f"{moved} differing duplicate(s) of signals above (the same bar saved "
                       "again) were set aside when the journal began keeping one signal per bar; "
                       "nothing was deleted: `python -m swing_core journal list --run-id "
                       f"{journal.DUPLICATE_RUN_ID}`.")
        if summary["evaluated"]:
            st.plotly_chart(charts.outcome_histogram(table["realized_r"],
                                                     title="Realized R of evaluated signals"),
                            key="journal_hist")


main()
