"""Pattern Search: for the current setup of the shared symbol and interval, its nearest
neighbours in the setup library (point in time) as a table and as small multiples of their
price paths after entry (in R), their outcome distribution, and a 2-D projection of the library
coloured by outcome with the current setup marked."""

from __future__ import annotations

from typing import Any

import streamlit as st

from pages import _shared as ui
from swing_core import charts, views
from swing_core.config import StrategyParams

ui.require_router()


def _library_banner(library: views.Library) -> None:
    if library.source == "demo":
        st.warning(f"**{library.note}**", icon=":material/science:")
    else:
        st.caption(library.note)


def _stats(neighbors: Any) -> None:
    stats = neighbors.stats()
    fmt = views.format_number
    cols = st.columns([2, 3, 2, 2, 2])  # the win rate carries its n
    cols[0].metric("Neighbours", stats.n, help=f"scope: {stats.scope}; same volatility regime: "
                   f"{'yes' if stats.regime_filtered else 'no'}")
    cols[1].metric(views.win_rate_label("predicted_r", short=True),
                   views.rate_text(stats.win_rate, stats.n),
                   help="The neighbours' share of R wins (R > 0, before costs), shrunk toward "
                        "50 % for a small n.")
    cols[2].metric("Expected R (gross)", fmt(stats.expected_r, "+.2f"),
                   help="Before fees and slippage.")
    cols[3].metric("Profit factor", fmt(stats.profit_factor))
    cols[4].metric("Median hold (bars)", fmt(stats.median_hold_bars, ".0f"),
                   help=f"wins {fmt(stats.median_hold_bars_wins, '.0f')}, losses "
                        f"{fmt(stats.median_hold_bars_losses, '.0f')}; "
                        f"{fmt(stats.median_hold_days, '.1f')} trading days")
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(stats.exit_reasons.items())) or "none"
    st.caption(f"Exits: {reasons} · scope: {'this symbol' if stats.scope == 'symbol' else stats.scope}"
               f"{' · same volatility regime' if stats.regime_filtered else ''}")


def _time_column(label: str, interval: str) -> Any:
    """Daily bar times come as trading-date text, intraday ones as New York times."""
    if interval == "1d":
        return st.column_config.TextColumn(label)
    return st.column_config.DatetimeColumn(f"{label} (NY)", format="YYYY-MM-DD HH:mm")


def _projection(library: views.Library, signal: Any, neighbors: Any) -> None:
    view = views.projection_view(library, signal.vector, neighbors.frame)
    st.plotly_chart(
        charts.projection_figure(view.xy, outcome_r=view.outcome_r, current=view.current,
                                 neighbors=view.neighbors, hover=view.hover),
        key="ps_projection")
    drawn = (f" {len(view.xy):,} of its {view.total:,} setups are drawn (evenly thinned)."
             if len(view.xy) < view.total else "")
    st.caption("Principal-component projection of the 16-d setup vectors (for orientation only: "
               "neighbours are found by cosine similarity in all 16 dimensions, known outcomes "
               f"only, so ringed points may sit apart here).{drawn}")


def main() -> None:
    symbol, interval = ui.current_symbol(), ui.current_interval()
    st.title(f"Pattern Search · {symbol} {interval}")
    with ui.error_edge("Pattern Search"):
        library = ui.library(interval)
        if library is None:
            ui.database_banner()
            st.info("The setup library lives in the database, which is unavailable.")
            return
        view = ui.signal_view(symbol, interval)
        ui.source_banner(view.source, notes=view.notes)
        _library_banner(library)
        signal = view.signal
        entry = signal.entry
        st.markdown(
            f"**Current setup:** {entry.side + ' · ' + entry.setup.replace('_', ' ') if entry else 'no setup'}"
            f" · trend {signal.trend.label.replace('_', ' ')} · volatility {signal.vol_regime} · "
            f"signal bar {views.bar_time_text(signal.asof, signal.interval)}")
        if len(library) == 0:
            st.info("The library has no setup with a known outcome yet. Save signals from the "
                    "Signal Explorer (or the Scanner's symbols) and evaluate them on the Journal "
                    "page once their two-day window has passed; each outcome joins the library.")
            return
        cols = st.columns([3, 2, 5])
        k = cols[0].slider("Neighbours (k)", 10, 120, StrategyParams().knn_k, 10, key="ps_k")
        same_setup = cols[1].toggle("Same setup only", value=False, key="ps_same",
                                    disabled=entry is None)
        if entry is None:
            st.caption("No setup on the last bar: these are the neighbours of its context "
                       "vector (what happened after similar conditions).")
        neighbors = views.neighbors_of(library, signal, k=k, same_setup=same_setup)
        if len(neighbors) == 0:
            st.info("No neighbour had a known outcome by this bar's close. Try another symbol or "
                    "interval, or grow the library.")
            return
        _stats(neighbors)
        left, right = st.columns([3, 2])
        with left:
            paths = views.neighbor_paths(
                neighbors.frame, interval=interval,
                load_bars=lambda sym, iv, since: ui.chart_bars(sym, iv, since.normalize()))
            st.plotly_chart(charts.neighbor_paths_figure(
                [p["path"] for p in paths], titles=[p["title"] for p in paths],
                outcomes=[p["realized_r"] for p in paths]), key="ps_paths")
        with right:
            st.plotly_chart(charts.outcome_histogram(
                neighbors.frame["realized_r"], title="Neighbours' outcomes (R)",
                marker=neighbors.stats().expected_r), key="ps_hist")
        st.subheader("Nearest neighbours")
        st.dataframe(views.neighbor_table(neighbors), hide_index=True, key="ps_table",
                     column_config={
                         "ts": _time_column("Signal bar", interval),
                         "exit_ts": _time_column("Exit", interval),
                         "similarity": st.column_config.NumberColumn("Cosine", format="%.4f"),
                         "realized_r": st.column_config.NumberColumn("R", format="%+.2f"),
                         "symbol": "Symbol", "side": "Side", "setup": "Setup",
                         "vol_regime": "Vol.", "exit_reason": "Exit",
                         "hold_bars": st.column_config.NumberColumn("Bars held", format="%d"),
                     })
        st.subheader("The library")
        _projection(library, signal, neighbors)
        lock = ui.admin_lock()  # clears a shared cache: admins only when sign-in is on
        if library.source == "stored" and st.button(
                "Reload the library", key="ps_reload", icon=":material/refresh:",
                disabled=lock is not None, help=lock) and ui.admin_allowed("Reloading the library"):
            ui.reload_library()
            st.rerun()


main()
