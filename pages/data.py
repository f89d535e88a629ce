"""Data: upload CSV/Parquet bars (the file provider) into the bar cache, see what the cache
holds per symbol and interval, refresh or clear it."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from pages import _shared as ui
from swing_core import charts, views
from swing_core.config import INTERVALS
from swing_core.errors import MarketDataError

ui.require_router()

_MAX_MB = views.MAX_UPLOAD_BYTES // (1024 * 1024)


def _parse_upload(uploaded: Any, symbol_text: str, interval: str) -> pd.DataFrame:
    from swing_core import market

    symbol = None
    if symbol_text.strip():
        symbol = market.normalize_symbol(symbol_text)
    return market.read_bars_file(
        uploaded.getvalue(), filename=uploaded.name, symbol=symbol,
        interval=None if interval == "infer" else interval,
        max_bytes=views.MAX_UPLOAD_BYTES, max_rows=views.MAX_UPLOAD_ROWS,
    )


def _upload(engine: Any) -> None:
    st.subheader("Upload bars")
    st.caption(f"A CSV or Parquet file with Date/Datetime, Open, High, Low, Close and Volume "
               f"columns; at most {_MAX_MB} MB and {views.MAX_UPLOAD_ROWS:,} rows. Naive "
               "intraday times are read as New York time.")
    cols = st.columns([3, 1, 1])
    uploaded = cols[0].file_uploader("Bars file", type=["csv", "txt", "parquet", "pq"],
                                     key="upload_file", max_upload_size=_MAX_MB)
    symbol_text = cols[1].text_input("Symbol", key="upload_symbol", max_chars=15,
                                     placeholder="from file name",
                                     validate=(ui.SYMBOL_PATTERN, "Use a ticker such as AAPL."))
    interval = cols[2].selectbox("Interval", ("infer", *INTERVALS), key="upload_interval")
    if uploaded is None:
        st.info("Choose a file to preview it; then store it in the bar cache and open it in the "
                "Signal Explorer with the 'Local bar cache' source.")
        return
    try:
        bars = _parse_upload(uploaded, symbol_text, interval)
    except MarketDataError as exc:
        st.error(f"{ui.plain(exc)}  \nFix the file and upload it again.")
        return
    symbol, interval = bars.attrs["symbol"], bars.attrs["interval"]
    first, last = (views.exchange_time_text(t) for t in (bars.index[0], bars.index[-1]))
    st.success(f"{len(bars):,} {interval} bars of {symbol}, {first} → {last} (New York).")
    for note in bars.attrs.get("notes", []):
        st.caption(ui.plain(note))
    st.plotly_chart(charts.price_figure(bars, interval=interval, show_fib=False,
                                        show_indicators=False, height=360,
                                        title=f"{symbol} {interval} (uploaded)"),
                    key="upload_chart")
    if engine is None:
        st.warning("The database is unavailable, so the file cannot be stored.")
        return
    if st.button(f"Store {len(bars):,} bars of {symbol} {interval} in the cache", type="primary",
                 key="store_upload", icon=":material/upload:"):
        from swing_core import db

        written = db.upsert_bars(engine, symbol, interval, bars, source="file")
        ui.clear_caches()
        st.success(f"Stored {written:,} bars.")
        st.page_link(ui.PAGE_FILES["explorer"], label=f"Open {symbol} {interval} in the "
                     "Signal Explorer", icon=":material/candlestick_chart:",
                     query_params={"symbol": symbol, "interval": interval, "source": "cache"})


def _cache(engine: Any) -> None:
    from swing_core import db, market

    st.subheader("Bar cache")
    summary = db.bar_cache_summary(engine)
    if summary.empty:
        hint = ("Offline mode serves demo bars, which are never cached: upload a file above."
                if ui.is_offline() else "Open a symbol in the Signal Explorer or run a scan: "
                "fetched bars are cached here.")
        st.info(f"The cache is empty. {hint}")
        return
    shown = summary.copy()
    for column in ("first_ts", "last_ts", "fetched_at"):
        shown[column] = shown[column].dt.tz_convert("America/New_York").dt.tz_localize(None)
    st.dataframe(shown, hide_index=True, key="cache_table", column_config={
        "bars": st.column_config.NumberColumn("Bars", format="%d"),
        "first_ts": st.column_config.DatetimeColumn("First bar (NY)", format="YYYY-MM-DD HH:mm"),
        "last_ts": st.column_config.DatetimeColumn("Last bar (NY)", format="YYYY-MM-DD HH:mm"),
        "fetched_at": st.column_config.DatetimeColumn("Written (NY)", format="YYYY-MM-DD HH:mm"),
    })
    pairs = sorted({(s, i) for s, i in zip(summary["symbol"], summary["interval"], strict=True)})
    options = ["all", *[f"{s} · {i}" for s, i in pairs]]
    cols = st.columns([2, 1, 1, 1])
    choice = cols[0].selectbox("Cached series", options, key="cache_choice")
    target = None if choice == "all" else pairs[options.index(choice) - 1]
    if cols[1].button("Refresh from Yahoo", key="cache_refresh", disabled=ui.is_offline()
                      or target is None, icon=":material/refresh:",
                      help="Fetch the newest bars of the chosen series (not in offline mode)."):
        market.clear_cache_state()
        bars = market.fetch_bars(target[0], target[1], engine=engine, offline=False,
                                 demo_fallback=False)
        ui.clear_caches()
        st.success(f"{target[0]} {target[1]}: {len(bars):,} bars, source {bars.attrs['source']}.")
    confirm = cols[2].checkbox("Confirm", key="cache_confirm",
                               help="Tick to enable clearing.")
    if cols[3].button("Clear", key="cache_clear", disabled=not confirm,
                      icon=":material/delete:"):
        deleted = db.delete_bars(engine, symbol=target[0] if target else None,
                                 interval=target[1] if target else None)
        market.clear_cache_state()
        ui.clear_caches()
        st.toast(f"Deleted {deleted:,} cached bars ({choice}).", icon=":material/delete:")
        st.rerun()


def main() -> None:
    st.title("Data")
    if ui.is_offline():
        st.warning("Offline mode (SWING_OFFLINE=1): charts use DEMO data unless you choose the "
                   "local bar cache in the Signal Explorer.", icon=":material/science:")
    with ui.error_edge("The Data page"):
        usable = ui.database_banner()
        engine = ui.database_engine() if usable else None
        _upload(engine)
        if engine is not None:
            _cache(engine)


main()
