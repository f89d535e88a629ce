"""Data: the local bar library. Import CSV/Parquet files (one, many, or a .zip of them) into it,
see what it holds per symbol and interval (trading dates for daily bars), open a series in the
Signal Explorer or Backtest Review on those bars, refresh from Yahoo, export, delete."""

from __future__ import annotations

import io
from typing import Any

import pandas as pd
import streamlit as st

from pages import _shared as ui
from swing_core import charts, market, views
from swing_core.config import INTERVALS
from swing_core.errors import MarketDataError

ui.require_router()

_MAX_MB = views.MAX_UPLOAD_BYTES // (1024 * 1024)
#: A .zip of many files may be larger than one file (each file inside keeps the per-file limit).
_MAX_ARCHIVE_MB = 200
_REPORT = "data_import_report"


def _explorer_link(symbol: str, interval: str) -> None:
    st.page_link(ui.PAGE_FILES["explorer"], label=f"Open {symbol} {interval} in the Signal "
                 "Explorer (local bars)", icon=":material/candlestick_chart:",
                 query_params={"symbol": symbol, "interval": interval, "source": "local"})


def _preview(uploaded: Any, symbol_text: str, interval: str) -> None:
    """One CSV/Parquet file: read it as the import will, and chart it before storing."""
    symbol = market.normalize_symbol(symbol_text) if symbol_text.strip() else None
    try:
        bars = market.read_bars_file(
            uploaded.getvalue(), filename=uploaded.name, symbol=symbol,
            interval=None if interval == "infer" else interval,
            max_bytes=views.MAX_UPLOAD_BYTES, max_rows=views.MAX_UPLOAD_ROWS)
    except MarketDataError as exc:
        st.error(f"{ui.plain(exc)}  \nFix the file and upload it again.")
        return
    symbol, interval = bars.attrs["symbol"], bars.attrs["interval"]
    first, last = (views.bar_time_text(t, interval) for t in (bars.index[0], bars.index[-1]))
    st.success(f"{len(bars):,} {interval} bars of {symbol}, {first} → {last}.")
    for note in bars.attrs.get("notes", []):
        st.caption(ui.plain(note))
    st.plotly_chart(charts.price_figure(bars, interval=interval, show_fib=False,
                                        show_indicators=False, height=360,
                                        title=f"{symbol} {interval} (preview)"),
                    key="upload_chart")


def _import(engine: Any) -> None:
    st.subheader("Import bars")
    st.caption(f"CSV or Parquet files with Date/Datetime, Open, High, Low, Close and Volume "
               f"columns (at most {_MAX_MB} MB and {views.MAX_UPLOAD_ROWS:,} rows each), several "
               f"at once, or a .zip of them (up to {_MAX_ARCHIVE_MB} MB). The symbol comes from a "
               "Symbol/Ticker column or the file name (AAPL.csv, AAPL_1d.csv). Naive intraday "
               "times are read as New York time. From a terminal: "
               "`python -m swing_core data import FOLDER`.")
    lock = ui.admin_lock()  # uploads and imports change the shared library: admins only
    cols = st.columns([3, 1, 1])
    uploaded = cols[0].file_uploader(
        "Bars files", type=["csv", "txt", "tsv", "parquet", "pq", "zip"],
        accept_multiple_files=True, key="upload_file", max_upload_size=_MAX_ARCHIVE_MB,
        disabled=lock is not None, help=lock)
    symbol_text = cols[1].text_input("Symbol", key="upload_symbol", max_chars=15,
                                     placeholder="from the file",
                                     validate=(ui.SYMBOL_PATTERN, "Use a ticker such as AAPL."),
                                     help="Label a single-symbol file with this symbol instead.")
    interval = cols[2].selectbox("Interval", ("infer", *INTERVALS), key="upload_interval")
    files = list(uploaded or [])
    if not files:
        st.info("Choose files to import them into your local bar library; every page can then "
                "use them (sidebar: Bars from → Local bar library, or Automatic).")
        return
    single = len(files) == 1 and not files[0].name.lower().endswith(".zip")
    if single:
        _preview(files[0], symbol_text, interval)
    if engine is None:
        st.warning("The database is unavailable, so files cannot be stored.")
        return
    label = (f"Import {files[0].name}" if len(files) == 1
             else f"Import {len(files)} files")
    if st.button(label, type="primary", key="store_upload", icon=":material/upload:",
                 disabled=lock is not None, help=lock) and ui.admin_allowed("Importing"):
        with st.spinner("Importing…"):
            report = market.import_bars(
                files, engine=engine, symbol=symbol_text.strip() or None,
                interval=None if interval == "infer" else interval,
                max_bytes=views.MAX_UPLOAD_BYTES, max_rows=views.MAX_UPLOAD_ROWS)
        ui.clear_caches()
        st.session_state[_REPORT] = report
    report = st.session_state.get(_REPORT)
    if report is not None:
        _report(report)


def _report(report: Any) -> None:
    if report.imported:
        total = sum(item.bars for item in report.imported)
        st.success(f"Imported {total:,} bars: {len(report.imported)} series.")
        st.dataframe(pd.DataFrame([{
            "Symbol": i.symbol, "Interval": i.interval, "Bars": i.bars,
            "First bar": views.bar_time_text(i.first_ts, i.interval),
            "Last bar": views.bar_time_text(i.last_ts, i.interval), "File": i.name,
        } for i in report.imported]), hide_index=True, key="import_table", column_config={
            "Bars": st.column_config.NumberColumn("Bars", format="localized")})
        first = report.imported[0]
        _explorer_link(first.symbol, first.interval)
    for failed in report.failed:
        st.error(f"{ui.plain(failed.name)}: {ui.plain(failed.error)}")
    if report.skipped:
        st.caption("Skipped: " + ui.plain(", ".join(report.skipped[:20])))


def _export(engine: Any, symbol: str, interval: str) -> bytes:
    buffer = io.BytesIO()
    market.export_bars(engine, symbol, interval, buffer, fmt="csv")
    return buffer.getvalue()


def _library(engine: Any) -> None:
    st.subheader("Local bar library")
    held = market.list_library(engine)
    if held.empty:
        st.info("The library is empty. Import files above; bars fetched from Yahoo are kept "
                "here too (demo bars never are).")
        return
    shown = held.copy()
    for column in ("first_ts", "last_ts"):
        shown[column] = views.bar_time_texts(held[column], held["interval"])
    shown["stored_at"] = views.bar_time_texts(held["stored_at"], "1h")
    st.dataframe(shown, hide_index=True, key="cache_table", column_config={
        "symbol": "Symbol", "interval": "Interval",
        "bars": st.column_config.NumberColumn("Bars", format="localized"),
        "first_ts": "First bar", "last_ts": "Last bar", "source": "From",
        "stored_at": "Stored",
    })
    pairs = list(zip(held["symbol"], held["interval"], strict=True))
    options = ["all", *[f"{s} · {i}" for s, i in pairs]]
    cols = st.columns([2, 1, 1, 1, 1])
    choice = cols[0].selectbox("Series", options, key="cache_choice")
    target = None if choice == "all" else pairs[options.index(choice) - 1]
    if target is not None:
        with cols[1]:
            _explorer_link(*target)
        cols[2].download_button(
            "Export CSV", data=_export(engine, *target),
            file_name=f"{target[0]}_{target[1]}.csv", mime="text/csv", key="cache_export",
            icon=":material/download:")
    lock = ui.admin_lock()  # refreshing and deleting change the shared library: admins only
    if cols[3].button("Refresh from Yahoo", key="cache_refresh", disabled=ui.is_offline()
                      or target is None or lock is not None, icon=":material/refresh:",
                      help=lock or "Fetch the newest bars of the chosen series (not in offline "
                                   "mode).") and ui.admin_allowed("Refreshing from Yahoo"):
        bars = market.fetch_bars(target[0], target[1], engine=engine, offline=False,
                                 source="yahoo")
        ui.clear_caches()
        st.success(f"{target[0]} {target[1]}: {len(bars):,} bars, source {bars.attrs['source']}.")
    with cols[4]:
        confirm = st.checkbox("Confirm", key="cache_confirm", help="Tick to enable deleting.",
                              disabled=lock is not None)
        if st.button("Delete", key="cache_clear", disabled=not confirm or lock is not None,
                     icon=":material/delete:", help=lock) and ui.admin_allowed("Deleting bars"):
            deleted = market.delete_from_library(engine, target[0] if target else None,
                                                 interval=target[1] if target else None)
            ui.clear_caches()
            st.toast(f"Deleted {deleted:,} bars ({choice}).", icon=":material/delete:")
            st.rerun()


def main() -> None:
    st.title("Data")
    with ui.error_edge("The Data page"):
        usable = ui.database_banner()
        engine = ui.database_engine() if usable else None
        _import(engine)
        if engine is not None:
            _library(engine)


main()
