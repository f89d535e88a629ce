"""Backtest Review: run a walk-forward backtest from a form (symbols, interval, dates,
parameters, costs) with progress; then metrics, equity and drawdown, trades on the price chart,
a filterable trade list (click a trade to zoom), R distribution, breakdowns, calibration, a
parameter-search heatmap, and saved runs to reload and compare."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pandas as pd
import streamlit as st

from pages import _shared as ui
from swing_core import charts, clock, views
from swing_core.config import INTERVALS, StrategyParams
from swing_core.errors import SwingError

ui.require_router()

log = logging.getLogger("swingdesk.ui")

_RESULT = "bt_result"
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
_METRICS = ("SQN", "Sharpe Ratio", "Avg. R", "Total R", "Return [%]", "Profit Factor",
            "Win Rate [%]")
_DEFAULT_DAYS = {"15m": 40, "30m": 50, "1h": 180, "1d": 365}
#: The earliest date the form accepts (Streamlit's default refuses more than ten years back).
_EARLIEST = dt.date(1900, 1, 1)


def _progress_bar(label: str) -> tuple[Any, Any]:
    bar = st.progress(0.0, text=label)

    def progress(done: int, total: int, message: str) -> None:
        bar.progress(min(1.0, done / max(total, 1)), text=f"{ui.plain(message)} ({done}/{total})")

    return bar, progress


# --------------------------------------------------------------------------- the form


def _params_inputs() -> dict[str, Any]:
    defaults = StrategyParams()
    values: dict[str, Any] = {}
    with st.expander("Strategy parameters"):
        cols = st.columns(4)
        for i, (name, step) in enumerate((
                ("swing_lookback", 5), ("momentum_stop_atr", 0.1), ("momentum_target_atr", 0.1),
                ("gp_stop_atr", 0.05), ("mr_stop_atr", 0.1), ("mr_target_atr", 0.1),
                ("mr_rsi_long", 1.0), ("mr_rsi_short", 1.0))):
            default = getattr(defaults, name)
            values[name] = cols[i % 4].number_input(
                name.replace("_", " "), value=default, step=type(default)(step),
                key=f"bt_p_{name}", min_value=type(default)(0))
    return values


def _date_inputs(symbols: list[str], interval: str, engine: Any) -> tuple[Any, Any]:
    """Start and End: any past date; they follow the chosen symbols' own data range (the local
    library's bars) whenever the symbols or the interval change, else the last few months."""
    today = clock.exchange_today()
    known = views.library_date_range(engine, symbols, interval) if engine is not None else None
    default = known or (today - dt.timedelta(days=_DEFAULT_DAYS[interval]), None)
    if st.session_state.get("_bt_range_for") != (tuple(symbols), interval):
        st.session_state["_bt_range_for"] = (tuple(symbols), interval)
        st.session_state["bt_start"], st.session_state["bt_end"] = default
    cols = st.columns(2)
    start = cols[0].date_input("Start", key="bt_start", min_value=_EARLIEST, max_value=today,
                               help="First signal date. Any past date; bars before it serve as "
                                    "indicator warm-up.")
    end = cols[1].date_input("End (optional)", key="bt_end", min_value=_EARLIEST,
                             max_value=today, help="Last bar date; empty: up to the newest bar.")
    if known is not None:
        st.caption(f"Your local {interval} bars of {', '.join(symbols)} cover "
                   f"{known[0]:%Y-%m-%d} – {known[1]:%Y-%m-%d}.")
    return start, end


def _form_problems(symbols: list[str], symbol_errors: list[str], start: Any, end: Any
                   ) -> list[str]:
    """Why the form cannot run as filled in (empty: it can)."""
    problems = [ui.plain(e) for e in symbol_errors]
    if not symbols:
        problems.append("Type at least one valid ticker, e.g. AAPL.")
    if start is None:
        problems.append("Pick a start date.")
    if start is not None and end is not None and end < start:
        problems.append(f"The end date {end:%Y-%m-%d} is before the start date "
                        f"{start:%Y-%m-%d}.")
    return problems


def _form(engine: Any) -> None:
    interval_default = ui.current_interval()
    source = ui.current_source()
    default_symbols = ([ui.current_symbol()] if source == "local"
                       else views.load_watchlist()[:3])
    cols = st.columns([3, 1])
    symbols_text = cols[0].text_input(
        "Symbols", value=", ".join(default_symbols), key="bt_symbols", max_chars=400,
        help="Tickers separated by commas or spaces (at most 20).")
    interval = cols[1].selectbox("Interval", INTERVALS, index=INTERVALS.index(interval_default),
                                 key="bt_interval")
    symbols, symbol_errors = views.parse_symbols(symbols_text, limit=20)
    start, end = _date_inputs(symbols, interval, engine)
    cols = st.columns(5)
    equity = cols[0].number_input("Initial equity $", 1_000.0, 1e9, 100_000.0, 1_000.0,
                                  key="bt_initial_equity")
    risk = cols[1].number_input("Risk per trade %", 0.1, 20.0, 1.0, 0.1, key="bt_risk")
    fee = cols[2].number_input("Fee per fill $", 0.0, 100.0, 1.0, 0.5, key="bt_fee")
    slippage = cols[3].number_input("Slippage (bps)", 0.0, 200.0, 5.0, 1.0, key="bt_slip")
    max_positions = cols[4].number_input("Max positions", 1, 100, 10, 1, key="bt_maxpos")
    cols = st.columns(4)
    priors = cols[0].toggle("Pattern priors", value=True, key="bt_priors")
    library = cols[1].toggle("Use stored library", value=False, key="bt_library",
                             help="Also learn from the stored setup vectors, point in time.")
    one_pos = cols[2].toggle("One position per symbol", value=True, key="bt_onepos")
    lookahead = cols[3].toggle("Look-ahead check", value=False, key="bt_lookahead",
                               help="Re-run on truncated histories and compare (slower).")
    params = _params_inputs()
    name = st.text_input("Run name (optional)", key="bt_name", max_chars=80)
    problems = _form_problems(symbols, symbol_errors, start, end)
    for problem in problems:
        st.error(problem, icon=":material/block:")
    submitted = st.button("Run backtest", type="primary", icon=":material/play_arrow:",
                          key="bt_run", disabled=bool(problems),
                          help=f"Bars from: {ui.current_source()} (sidebar).")
    if not submitted or problems:
        return
    from swing_core.backtest import BacktestConfig, run_backtest

    config = BacktestConfig(
        interval=interval, start=pd.Timestamp(start),
        end=pd.Timestamp(end) + pd.Timedelta(days=1) if end else None,
        params={**StrategyParams().to_dict(), **params, "risk_per_trade": risk / 100.0,
                "fee_per_fill": fee, "slippage_bps": slippage},
        initial_equity=float(equity), max_positions=int(max_positions),
        one_position_per_symbol=one_pos, priors=priors, use_library=library,
    )
    bar, progress = _progress_bar(f"Backtesting {len(symbols)} symbol(s)…")
    result = run_backtest(symbols, config=config, engine=engine, save=engine is not None,
                          executor="inline" if len(symbols) <= 4 else None, progress=progress,
                          lookahead=lookahead, name=name.strip() or None, source=source)
    bar.empty()
    st.session_state[_RESULT] = result


# --------------------------------------------------------------------------- universe runs

_UNIVERSE = "bt_universe_job"


def _universe_job(symbols: list[str], config: Any, engine: Any, chunk_size: int,
                  job: dict[str, Any], source: str) -> None:
    """Background thread body: run the chunked backtest, report into ``job`` (no st calls)."""
    from swing_core.backtest import run_universe

    def progress(done: int, total: int, message: str) -> None:
        job.update(done=done, total=total, message=message)

    try:
        out = run_universe(symbols, config=config, engine=engine, chunk_size=chunk_size,
                           progress=progress, cancel=job["cancel"], offline=ui.is_offline(),
                           source=source)
        # the result carries no trades (they are stored): the page loads the stored run
        job.update(status=out.status, run_hash=out.run_hash, errors=out.errors,
                   chunks=(out.chunks_done, out.chunks_total),
                   n_trades=out.summary.n_trades if out.summary is not None else None)
    except SwingError as exc:  # the user can act on it: shown on the page
        job.update(status="failed", message=str(exc))
    except Exception as exc:  # noqa: BLE001 - a bug: logged, said plainly (not raised in a thread)
        log.exception("unexpected error in the universe backtest")
        job.update(status="failed", message=f"unexpected error ({type(exc).__name__}); see the "
                                            "server log and report it")


def _universe_form(engine: Any) -> None:
    import threading

    with st.expander("Universe backtest (hundreds of symbols, in chunks)"):
        if engine is None:
            st.info("Universe runs store each chunk as it finishes: they need the database.")
            return
        job = st.session_state.get(_UNIVERSE)
        running = job is not None and job["thread"].is_alive()
        with st.form("bt_universe_form"):
            text = st.text_area("Symbols", key="bt_u_symbols", height=80,
                                help="Tickers separated by commas, spaces or new lines.")
            cols = st.columns(2)
            chunk = cols[0].number_input("Chunk size", 5, 500, 50, 5, key="bt_u_chunk")
            interval = cols[1].selectbox("Interval", INTERVALS, index=INTERVALS.index("1d"),
                                         key="bt_u_interval")
            start = st.form_submit_button("Run universe backtest", disabled=running,
                                          icon=":material/play_arrow:")
        if start:
            symbols, errors = views.parse_symbols(text, limit=5000)
            for error in errors[:5]:
                st.warning(ui.plain(error))
            if symbols:
                from swing_core.backtest import BacktestConfig

                job = {"cancel": threading.Event(), "done": 0, "total": len(symbols),
                       "message": "starting", "status": "running"}
                job["thread"] = threading.Thread(
                    target=_universe_job, args=(symbols, BacktestConfig(interval=interval),
                                                engine, int(chunk), job,
                                                ui.current_source()), daemon=True)
                job["thread"].start()
                st.session_state[_UNIVERSE] = job
            else:
                st.error("Type at least one valid ticker, e.g. AAPL.")
        if st.session_state.get(_UNIVERSE) is not None:
            _universe_status()


@st.fragment(run_every=1)
def _universe_status() -> None:
    job = st.session_state.get(_UNIVERSE)
    if job is None:
        return
    done, total = job.get("done", 0), max(job.get("total", 1), 1)
    status = job.get("status", "running")
    if status == "running":
        st.progress(min(1.0, done / total), text=f"{ui.plain(job.get('message', ''))} "
                                                  f"({done}/{total} symbols)")
        if st.button("Cancel", key="bt_u_cancel", icon=":material/stop:"):
            job["cancel"].set()
            job["message"] = "cancelling after the current chunk…"
        return
    if status == "cancelled":
        finished, chunks = job.get("chunks", (0, 0))
        st.warning(f"Cancelled: {finished} of {chunks} chunks are stored; run the same "
                   "symbols again to resume.")
    elif status == "failed":
        st.error(ui.plain(job.get("message", "The universe backtest failed.")))
    elif status == "done" and not job.get("loaded"):
        from swing_core.backtest import load_run

        job["loaded"] = True
        st.session_state[_RESULT] = load_run(ui.database_engine(), job["run_hash"])
        st.rerun(scope="app")
    elif status == "done":
        n_trades = job.get("n_trades")
        trades = f" ({n_trades:,} trades)" if n_trades is not None else ""
        st.success(f"Universe backtest done{trades}: its results are in the tabs below.")


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
    if result.lookahead is not None:
        (st.success if result.lookahead.ok else st.error)(
            "Look-ahead check " + ("passed" if result.lookahead.ok else "FAILED: "
                                   + ui.plain("; ".join(result.lookahead.mismatches[:3]))))
    cols = st.columns(len(_HEADLINE))
    for col, (name, fmt) in zip(cols, _HEADLINE, strict=True):
        value = result.stats.get(name)
        try:
            text = fmt.format(float(value))
        except (TypeError, ValueError):
            text = "–"
        col.metric(name.replace(" [%]", ""), "–" if text == "nan" or "nan" in text else text,
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
            "predicted_winrate": st.column_config.NumberColumn("Pred. win", format="percent"),
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


def _calibration_tab(result: Any) -> None:
    curve = views.reliability_curve(result.calibration)
    st.plotly_chart(charts.reliability_figure(curve), key="bt_reliability")
    brier = result.stats.get("Brier Score")
    st.caption(f"Brier score {views.format_number(brier, '.3f')} (0 is perfect; 0.25 is a coin "
               "flip at 50 %). The predicted win rate forecasts an R win (realized R > 0, "
               "before costs); points on the diagonal mean those forecasts came true.")


def _search_tab(result: Any | None) -> None:
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
        from swing_core.backtest import gather_bars, grid_search

        bars, errors = gather_bars(list(result.symbols), result.config,
                                   engine=ui.database_engine(), source=ui.current_source())
        for symbol, error in errors.items():
            st.warning(f"{ui.plain(symbol)} left out: {ui.plain(error)}")
        bar, progress = _progress_bar(f"Searching {len(grid[x]) * len(grid[y])} combinations…")
        found = grid_search(bars, grid, config=result.config, split=split, metric=metric,
                            min_trades=int(min_trades), executor="inline", progress=progress)
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


def _saved_tab(engine: Any) -> None:
    if engine is None:
        st.info("Saved runs need the database (see the error above).")
        return
    from swing_core.backtest import list_runs, load_run

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
        st.session_state[_RESULT] = load_run(engine, picked[0])
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


def main() -> None:
    st.title("Backtest Review")
    ui.source_note("backtests")
    engine = ui.database_engine() if ui.database_banner() else None
    with ui.error_edge("The backtest"):
        _form(engine)
    with ui.error_edge("The universe backtest"):
        _universe_form(engine)
    result = st.session_state.get(_RESULT)
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
        _search_tab(result)
    with tabs[6], ui.error_edge("Saved runs"):
        _saved_tab(engine)


main()
