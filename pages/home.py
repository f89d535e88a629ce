"""Home: the watchlist at a glance, where the data comes from, the database, links to every
page."""

from __future__ import annotations

import streamlit as st

from pages import _shared as ui
from swing_core import db, llm, views

ui.require_router()

def _status(table_sources: list[str | None]) -> None:
    cols = st.columns(3)
    tone, sentence = views.source_summary(table_sources, offline=ui.is_offline())
    with cols[0].container(border=True):
        st.markdown("**Market data**")
        {"ok": st.success, "info": st.info, "warning": st.warning}[tone](sentence)
    with cols[1].container(border=True):
        st.markdown("**Database**")
        engine = ui.database_engine()
        if engine is None:
            ui.database_banner()
        else:
            status = db.database_status(engine)
            state = "schema up to date" if status.up_to_date else (
                f"schema at {status.current_revision}, code expects {status.head_revision}")
            st.success(f"{ui.plain(status.description)} · {state}")
    with cols[2].container(border=True):
        st.markdown("**Advisor**")
        st.info(ui.plain(llm.advisor_status()))


def _watchlist(interval: str) -> list[str | None]:
    symbols = views.load_watchlist()
    st.subheader(f"Watchlist · {interval}")
    with st.spinner(f"Analysing {len(symbols)} symbols…"):
        found = ui.signal_views(symbols, interval)
    table = views.watchlist_table(found)
    st.dataframe(
        table, hide_index=True, key="home_watchlist",
        column_order=["symbol", "closes", "side", "setup", "confidence", "r_multiple", "trend",
                      "price", "asof", "source", "error"],
        column_config={
            "symbol": st.column_config.TextColumn("Symbol", pinned=True),
            "closes": st.column_config.LineChartColumn("Last 60 bars", width="medium"),
            "side": "Side",
            "setup": "Setup",
            "confidence": st.column_config.ProgressColumn("Confidence", min_value=0.0,
                                                          max_value=1.0, format="percent"),
            "r_multiple": st.column_config.NumberColumn("R", format="%.2f"),
            "trend": "Trend",
            "price": st.column_config.NumberColumn("Price", format="%.2f"),
            "asof": (st.column_config.TextColumn("Signal bar") if interval == "1d" else
                     st.column_config.DatetimeColumn("Signal bar (NY)", format="YYYY-MM-DD HH:mm")),
            "source": "Data",
            "error": "Problem",
        },
    )
    st.caption("The signal of each symbol's last bar. Edit the watchlist on the Scanner page; "
               "open a symbol in the Signal Explorer for the full picture.")
    return list(table["source"])


def main() -> None:
    st.title("SwingDesk")
    st.caption("1–2 day swing-trading signals: trend, golden-pocket pullbacks, momentum and "
               "mean-reversion setups, with the outcomes of the most similar past setups.")
    interval = ui.current_interval()
    with ui.error_edge("The Home page"):
        placeholder = st.empty()
        sources = _watchlist(interval)
        with placeholder.container():
            _status(sources)
    st.subheader("Pages")
    cols = st.columns(3)
    for i, page in enumerate(p for p in ui.PAGES if p.key != "home"):
        with cols[i % 3].container(border=True):
            if ui.page_exists(page.key):
                st.page_link(page.file, label=page.title, icon=page.icon)
            else:
                st.markdown(f"{page.title} (not installed)")
            st.caption(page.blurb)


main()
