"""Backtest Review: run a walk-forward backtest from a form (symbols, interval, dates,
parameters, costs) with progress; then metrics, equity and drawdown, trades on the price chart,
a filterable trade list (click a trade to zoom), R distribution, breakdowns, calibration, a
parameter-search heatmap, and saved runs to reload and compare."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from pages import _shared as ui
from pages._backtest_form import RESULT, run_form
from pages._backtest_saved import saved_tab
from pages._backtest_search import search_tab
from pages._backtest_universe import universe_form
from pages._columns import prior_rate_columns
from swing_core import charts, views

ui.require_router()

_HEADLINE = (("Return [%]", "{:+.0f} %"), ("Sharpe Ratio", "{:.2f}"),
             ("Max. Drawdown [%]", "{:.1f} %"), ("Win Rate [%]", "{:.0f} %"),
             ("# Trades", "{:.0f}"), ("SQN", "{:.2f}"), ("Avg. R", "{:+.2f}"))
#: What a headline figure counts (the definitions: swing_core.metrics).
_HEADLINE_HELP = {
    "# Trades": "Closed trades: filled, with an exit (stop, target or time). Positions still "
                "open at the end are listed apart under Trades.",
    "Win Rate [%]": "Share of the closed trades with a P&L above 0 after fees and slippage "
                    "(the R Win Rate statistic counts realized R > 0, before costs).",
}


# --------------------------------------------------------------------------- result tabs


def _header(result: Any) -> None:
    cfg = result.config
    # the period the run covered (its first and last bar), as a trader reads bar times
    period = [result.stats.get("Start"), result.stats.get("End")]
    dates = " → ".join(views.bar_time_text(d, cfg.interval) for d in period
                       if d is not None and not pd.isna(d))
    st.subheader(f"Run {result.run_hash[:12]} · {', '.join(result.symbols)} · {cfg.interval}"
                 + (f" · {dates}" if dates else ""))
    if result.from_storage:
        st.caption("Served from storage (an identical run was saved before).")
    demo = getattr(result, "is_demo", False) or "demo" in str(result.stats.get("Data Sources", ""))
    if demo or (ui.is_offline() and not result.data_sources):
        st.warning("DEMO DATA: this backtest ran on synthetic prices; its numbers say nothing "
                   "about the market.", icon=":material/science:")
    if getattr(result, "library_rows_stored", 0):
        st.caption(f"{result.library_rows_stored} exited setups added to the pattern library.")
    for symbol, error in result.errors.items():
        st.warning(f"{ui.plain(symbol)} left out: {ui.plain(error)}")
    for symbol, notes in getattr(result, "notes", {}).items():
        st.caption(f"{ui.plain(symbol)} context: {ui.plain('; '.join(notes))}.")
    if cfg.fill != "close":
        st.caption("Market entries filled at the next bar's open (not at the signal bar's "
                   "close).")
    if result.lookahead is not None:
        (st.success if result.lookahead.ok else st.error)(
            "Look-ahead check " + ("passed" if result.lookahead.ok else "FAILED: "
                                   + ui.plain("; ".join(result.lookahead.mismatches[:3]))))
    # the win rate's label says what it counts: give it the room
    cols = st.columns([1.7 if name == "Win Rate [%]" else 1 for name, _ in _HEADLINE])
    for col, (name, fmt) in zip(cols, _HEADLINE, strict=True):
        value = result.stats.get(name)
        try:
            text = fmt.format(float(value))
        except (TypeError, ValueError):
            text = "–"
        label = (views.win_rate_label("pnl", short=True) if name == "Win Rate [%]"
                 else name.replace(" [%]", ""))
        col.metric(label, "–" if text == "nan" or "nan" in text else text,
                   help=_HEADLINE_HELP.get(name))


def _trades_tab(result: Any) -> None:
    trades = views.trade_list(result.trades)  # the closed trades: the statistics' "# Trades"
    still_open = views.open_trades(result.trades)
    if trades.empty:
        st.info("No trade was closed: try a longer period, more symbols or looser parameters.")
        _open_trades(still_open, result.config.interval)
        return
    cols = st.columns([2, 2, 2, 2, 2])
    symbol = cols[0].selectbox("Chart symbol", list(result.symbols), key="bt_chart_symbol")
    sides = cols[1].multiselect("Side", ["long", "short"], key="bt_f_side", placeholder="all")
    setups = cols[2].multiselect("Setup", sorted(trades["setup"].dropna().unique()),
                                 key="bt_f_setup", placeholder="all")
    reasons = cols[3].multiselect("Exit", sorted(trades["exit_reason"].dropna().unique()),
                                  key="bt_f_exit", placeholder="all")
    outcomes = cols[4].multiselect("Outcome (R)", ["win", "loss", "flat"], key="bt_f_out",
                                   placeholder="all", help="By realized R, before costs (an R "
                                   "win); the Win Rate statistic counts P&L after costs.")
    trades = trades.assign(outcome=trades["realized_r"].map(views.outcome_label))
    shown = views.filter_table(trades, equals={"side": sides, "setup": setups,
                                               "exit_reason": reasons, "outcome": outcomes})
    of_symbol = shown[shown["symbol"] == symbol]
    focus = None
    rows = ui.selected_rows("bt_trades")
    if rows and rows[0] < len(shown):
        chosen = shown.iloc[rows[0]]
        if chosen["symbol"] != symbol:
            st.caption(f"The selected trade is on {chosen['symbol']}: choose it as the chart "
                       "symbol to zoom to it.")
        else:
            focus = views.trade_window(chosen.to_dict(), result.config.interval)
    # the bars the run used: from the source its data came from, not today's sidebar choice
    ran_on = result.data_sources.get(symbol)
    source = {"local": "local", "file": "local", "demo": "demo"}.get(str(ran_on), "auto")
    bars = ui.chart_bars(symbol, result.config.interval, result.config.start, source)
    if focus is None and result.config.start is not None and len(bars):
        focus = (result.config.start, result.config.end or bars.index[-1])  # the run's period
    st.plotly_chart(
        charts.price_figure(bars, trades=of_symbol, interval=result.config.interval,
                            show_fib=False, show_indicators=False, focus=focus, height=520,
                            title=f"{symbol} trades (▲ long, ▼ short, ✕ exit; green win, red "
                                  "loss)"),
        key="bt_price_chart", config={"scrollZoom": True, "displaylogo": False})
    st.caption(f"{views.trade_count_text(len(shown), len(trades))} · click a row to zoom the "
               "chart to it")
    daily = result.config.interval == "1d"
    when = ((lambda title: st.column_config.TextColumn(title)) if daily else  # trading dates
            (lambda title: st.column_config.DatetimeColumn(f"{title} (NY)",
                                                           format="YYYY-MM-DD HH:mm")))
    st.dataframe(
        views.for_display(shown, interval=result.config.interval), hide_index=True,
        key="bt_trades", on_select="rerun", selection_mode="single-row",
        column_config={
            "symbol": "Symbol", "side": "Side", "setup": "Setup", "trend": "Trend",
            "vol_regime": "Vol.", "exit_reason": "Exit",
            "hold_bars": st.column_config.NumberColumn("Bars held", format="%d"),
            "signal_ts": when("Signal"), "entry_ts": when("Entry"), "exit_ts": when("Exit"),
            "entry_price": st.column_config.NumberColumn("Entry", format="%.2f"),
            "exit_price": st.column_config.NumberColumn("Exit", format="%.2f"),
            "stop": st.column_config.NumberColumn("Stop", format="%.2f"),
            "target": st.column_config.NumberColumn("Target", format="%.2f"),
            "realized_r": st.column_config.NumberColumn("R", format="%+.2f"),
            "pnl": st.column_config.NumberColumn("P&L $", format="%.2f"),
            "qty": st.column_config.NumberColumn("Qty", format="%d"),
            **prior_rate_columns("predicted_winrate", when="is"),
            "expected_r": st.column_config.NumberColumn("Exp. R", format="%+.2f"),
        })
    st.download_button("Download trades CSV", views.to_csv_bytes(views.for_display(shown)),
                       file_name=f"swingdesk_trades_{result.run_hash[:12]}.csv",
                       mime="text/csv", key="bt_trades_csv", icon=":material/download:")
    _open_trades(still_open, result.config.interval)


def _open_trades(still_open: pd.DataFrame, interval: str) -> None:
    """Positions still open at the end of the data: listed apart (no outcome yet, so neither
    in the trade list nor in the statistics)."""
    if still_open.empty:
        return
    with st.expander(f"{len(still_open)} position(s) still open at the end (not in the "
                     "statistics)"):
        st.dataframe(views.for_display(still_open.drop(columns=["exit_ts", "exit_price",
                                                                "realized_r", "pnl"]),
                                       interval=interval),
                     hide_index=True, key="bt_open_trades")


def _distribution_tab(result: Any) -> None:
    closed = result.closed_trades
    st.plotly_chart(charts.outcome_histogram(closed["realized_r"], title="R distribution "
                                             "(closed trades)"), key="bt_r_hist")
    cols = st.columns(2)
    for col, by, title in ((cols[0], "setup", "By setup"), (cols[1], "vol_regime",
                                                            "By volatility regime")):
        with col:
            table = views.breakdown_table(result.breakdowns.get(by), by)
            st.plotly_chart(charts.breakdown_figure(table, category=by, value="Avg. R",
                                                    count="# Trades", title=f"{title}: avg R"),
                            key=f"bt_breakdown_{by}")
            st.dataframe(table, hide_index=True, key=f"bt_breakdown_table_{by}")


#: How the verdict of a calibration report is shown, by its outcome.
_VERDICT_BOX = {"beats_base_rate": st.success, "no_information": st.warning,
                "worse_than_base_rate": st.warning, "too_few": st.info}


def _calibration_report(result: Any) -> Any:
    """The run's calibration report, made once per run in this session (same hash, same
    trades)."""
    key = f"bt_calibration:{result.run_hash}"
    if key not in st.session_state:
        st.session_state[key] = views.backtest_calibration(result)
    return st.session_state[key]


def _win_rates(result: Any, report: Any) -> None:
    """Predicted against realized, each named by what it counts and with its n."""
    pairs = report.pairs
    on = pairs[pairs["known_before"] >= report.comparison.min_samples]
    n_trades = result.stats.get("# Trades")
    cols = st.columns(4)
    cols[0].metric(views.win_rate_label("predicted_r", short=True),
                   views.rate_text(pairs["predicted"].mean() if len(pairs) else None, report.n),
                   help="The neighbours' share of R wins (R > 0, before costs), shrunk toward "
                        "50 % for a small number of neighbours; mean over the evaluated signals.")
    cols[1].metric(views.win_rate_label("predicted_net", short=True),
                   views.rate_text(on["calibrated"].mean() if len(on) else None, len(on)),
                   help="That rate calibrated walk-forward (isotonic, on the outcomes known at "
                        "each signal) to a win after fees and slippage; mean over the signals "
                        "predicted with calibration on.")
    cols[2].metric(views.win_rate_label("pnl", short=True),
                   views.rate_text(_percent(result.stats.get("Win Rate [%]")), n_trades),
                   help=_HEADLINE_HELP["Win Rate [%]"])
    cols[3].metric(views.win_rate_label("r", short=True),
                   views.rate_text(_percent(result.stats.get("R Win Rate [%]")), n_trades),
                   help="Share of the closed trades with realized R > 0, before costs.")


def _percent(value: Any) -> float | None:
    try:
        return float(value) / 100.0
    except (TypeError, ValueError):
        return None


def _calibration_tab(result: Any) -> None:
    report = _calibration_report(result)
    _win_rates(result, report)
    st.markdown("##### Do the priors carry information?")
    if report.n == 0:
        st.info("No evaluated signal with a raw predicted win rate in this run (priors off, "
                "or a run stored before the raw rate was kept: run it again).")
    else:
        _VERDICT_BOX.get(report.comparison.outcome, st.info)(ui.plain(report.verdict))
        st.dataframe(views.brier_table(report.comparison), hide_index=True,
                     key="bt_brier_table", column_config={
                         "predictor": st.column_config.TextColumn("Predictor", width="large"),
                         "brier": st.column_config.NumberColumn("Brier score", format="%.4f"),
                         "n": st.column_config.NumberColumn("n", format="%d")})
        st.caption(f"Brier score: mean squared error of the predicted chance of a win after "
                   f"fees and slippage (lower is better; 0.25 = always 50 %). "
                   f"{ui.plain(report.note)}")
    curve = views.reliability_curve(result.calibration)
    st.plotly_chart(charts.reliability_figure(
        curve, title="Predicted win rate vs share of P&L wins (after costs), closed trades"),
        key="bt_reliability")
    brier = result.stats.get("Brier Score")
    st.caption(f"Brier score of the closed trades {views.format_number(brier, '.3f')}. The "
               "predicted win rate is calibrated to a win after costs (net P&L > 0); points "
               "on the diagonal mean those forecasts came true.")


def main() -> None:
    st.title("Backtest Review")
    ui.source_note("backtests")
    engine = ui.database_engine() if ui.database_banner() else None
    with ui.error_edge("The backtest"):
        run_form(engine)
    with ui.error_edge("The universe backtest"):
        universe_form(engine)
    result = st.session_state.get(RESULT)
    if result is not None:
        with ui.error_edge("The backtest review"):
            _header(result)
    tabs = st.tabs(["Metrics", "Equity", "Trades", "Distributions", "Calibration",
                    "Parameter search", "Saved runs"])
    if result is None:
        for tab in tabs[:5]:
            tab.info("Fill in the form and press **Run backtest** (a few symbols on 1d bars "
                     "take a second), or load a saved run from the last tab.")
    else:
        with tabs[0], ui.error_edge("The metrics"):
            st.dataframe(views.stats_table(result.stats), hide_index=True, key="bt_stats",
                         height=560)
        with tabs[1], ui.error_edge("The equity curve"):
            st.plotly_chart(charts.equity_figure(result.equity["Equity"]), key="bt_equity_chart")
        with tabs[2], ui.error_edge("The trades"):
            _trades_tab(result)
        with tabs[3], ui.error_edge("The distributions"):
            _distribution_tab(result)
        with tabs[4], ui.error_edge("The calibration"):
            _calibration_tab(result)
    with tabs[5], ui.error_edge("The parameter search"):
        search_tab(result)
    with tabs[6], ui.error_edge("Saved runs"):
        saved_tab(engine)


main()
