"""Scanner: an editable (saved) watchlist, a scan with a progress bar, a sortable and filterable
table, click-through to the Signal Explorer, CSV download."""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from pages import _shared as ui
from swing_core import views

ui.require_router()

_TABLE_KEY = "scan_table"


def _open_selected() -> None:
    """Row click (a callback, so it runs before the page): open the symbol in the Explorer."""
    rows = ui.selected_rows(_TABLE_KEY)
    shown = st.session_state.get("scan_shown", [])
    if rows and rows[0] < len(shown):
        symbol, interval = shown[rows[0]]
        ui.request_switch("explorer", symbol=symbol, interval=interval)


def _watchlist_editor() -> list[str]:
    symbols = views.load_watchlist()
    with st.expander(f"Watchlist ({len(symbols)} symbols)", expanded=False):
        edited = st.data_editor(
            pd.DataFrame({"symbol": symbols}), num_rows="dynamic", hide_index=True,
            key="watchlist_editor", width="content",
            column_config={"symbol": st.column_config.TextColumn(
                "Symbol", max_chars=15, validate=ui.SYMBOL_PATTERN, required=True)},
        )
        lock = ui.admin_lock()  # the watchlist is shared: admins only when sign-in is on
        if st.button("Save watchlist", key="save_watchlist", icon=":material/save:",
                     disabled=lock is not None, help=lock) and ui.admin_allowed("Saving the watchlist"):
            wanted = [str(s) for s in edited["symbol"].dropna()]
            valid, errors = views.parse_symbols(wanted)
            for error in errors:
                st.warning(ui.plain(error))
            saved = views.save_watchlist(valid)
            st.success(f"Saved {len(saved)} symbols.")
            symbols = saved
    return symbols


def _run_scan(symbols: list[str], interval: str) -> None:
    bar = st.progress(0.0, text=f"Scanning {len(symbols)} symbols…")

    def progress(done: int, total: int, symbol: str) -> None:
        bar.progress(done / total, text=f"{symbol} done ({done}/{total})")

    started = time.perf_counter()
    results = ui.scan(symbols, interval, progress=progress)
    bar.empty()
    st.session_state["scan"] = {
        "interval": interval,
        "table": views.scan_view(results),
        "seconds": time.perf_counter() - started,
    }


def _filters(table: pd.DataFrame) -> pd.DataFrame:
    cols = st.columns([2, 2, 3, 2, 2, 2])
    verdicts = cols[0].multiselect("Verdict", ["take", "skip", "no edge"], key="f_verdict",
                                   placeholder="all")
    sides = cols[1].multiselect("Side", ["long", "short", "none"], key="f_side",
                                placeholder="all")
    setups = cols[2].multiselect("Setup", ["gp_pullback", "momentum", "mean_reversion", "none"],
                                 key="f_setup", placeholder="all")
    regimes = cols[3].multiselect("Volatility", ["L", "M", "H"], key="f_regime",
                                  placeholder="all")
    min_conf = cols[4].slider("Min confidence", 0.0, 1.0, 0.0, 0.05, key="f_conf")
    text = cols[5].text_input("Symbol contains", key="f_text", max_chars=15)
    return views.filter_table(
        table,
        equals={"verdict": verdicts, "side": sides, "setup": setups, "vol_regime": regimes},
        minimum={"confidence": min_conf or None},
        text={"symbol": text.strip()},
    )


def _results(scan: dict) -> None:
    table: pd.DataFrame = scan["table"]
    interval = scan["interval"]
    failed = int(table["error"].notna().sum())
    sources = set(table["data_source"].dropna())
    if "demo" in sources:
        ui.source_banner("demo")
    st.caption(f"{len(table)} symbols on {interval} bars in {scan['seconds']:.1f} s"
               + (f" · {failed} failed (see the Problem column)" if failed else ""))
    shown = _filters(table)
    if shown.empty:
        st.info("No symbol matches these filters: clear a filter or lower the minimum "
                "confidence.")
        return
    st.session_state["scan_shown"] = [(s, interval) for s in shown["symbol"]]
    st.dataframe(
        shown, hide_index=True, key=_TABLE_KEY, on_select=_open_selected,
        selection_mode="single-row",
        column_config={
            "symbol": st.column_config.TextColumn("Symbol", pinned=True),
            "verdict": st.column_config.TextColumn(
                "Verdict", help="take / skip / no edge: from the prior's expected R net of "
                "costs and how far it can be trusted (see the reason column)."),
            "side": "Side", "setup": "Setup",
            "expected_r_net": st.column_config.NumberColumn(
                "Exp. R net", format="%+.2f", help="The prior's expected R minus this plan's "
                "fees and slippage in R: the ranking."),
            "confidence": st.column_config.ProgressColumn("Confidence", min_value=0.0,
                                                          max_value=1.0, format="percent"),
            "r_multiple": st.column_config.NumberColumn("R", format="%.2f"),
            "expected_r": st.column_config.NumberColumn("Exp. R (before costs)",
                                                        format="%+.2f"),
            "cost_r": st.column_config.NumberColumn("Costs (R)", format="%.2f"),
            "expected_winrate_raw": st.column_config.NumberColumn(
                views.win_rate_label("predicted_r", short=True), format="percent",
                help="The neighbours' share of R wins, shrunk toward 50 % for a small n."),
            "prior_n": st.column_config.NumberColumn("n", format="%d",
                                                     help="Neighbours the prior rests on."),
            "verdict_reason": st.column_config.TextColumn("Why", width="large"),
            "vol_regime": "Vol.", "data_source": "Data", "trend_label": "Trend",
            "price": st.column_config.NumberColumn("Price", format="%.2f"),
            "entry": st.column_config.NumberColumn("Entry", format="%.2f"),
            "stop": st.column_config.NumberColumn("Stop", format="%.2f"),
            "target": st.column_config.NumberColumn("Target", format="%.2f"),
            "mtf_alignment": st.column_config.NumberColumn("MTF", format="%+d"),
            "rs_sector": st.column_config.NumberColumn("RS sector", format="%.2f"),
            "time_bucket": "Session",
            "asof": (st.column_config.TextColumn("Signal bar") if interval == "1d" else
                     st.column_config.DatetimeColumn("Signal bar (NY)",
                                                     format="YYYY-MM-DD HH:mm")),
            "error": "Problem",
        },
    )
    st.caption("Ranked by the engine: verdict \"take\" first, then expected R net of costs, "
               "then confidence. Click a row to open the symbol in the Signal Explorer; click a "
               "column header to sort.")
    cols = st.columns([2, 2, 6])
    pick = cols[0].selectbox("Open in the Explorer", list(shown["symbol"]), key="scan_open_pick",
                             label_visibility="collapsed")
    cols[1].button(f"Open {pick}", key="scan_open", icon=":material/open_in_new:",
                   on_click=ui.request_switch, args=("explorer",),
                   kwargs={"symbol": pick, "interval": interval})
    st.download_button("Download CSV", views.to_csv_bytes(shown),
                       file_name=f"swingdesk_scan_{interval}.csv", mime="text/csv",
                       key="scan_csv", icon=":material/download:")


def main() -> None:
    interval = ui.current_interval()
    st.title(f"Scanner · {interval}")
    with ui.error_edge("The Scanner"):
        symbols = _watchlist_editor()
        if st.button(f"Scan {len(symbols)} symbols", type="primary", key="run_scan",
                     icon=":material/radar:"):
            _run_scan(symbols, interval)
        scan = st.session_state.get("scan")
        if scan is None:
            ui.source_note("scans")
            st.info(f"Press **Scan** to analyse the {len(symbols)} symbols of your watchlist on "
                    f"{interval} bars (edit the list above; change the interval in the sidebar).")
            return
        if scan["interval"] != interval:
            st.caption(f"These results are for {scan['interval']} bars; press Scan for "
                       f"{interval}.")
        _results(scan)


main()
