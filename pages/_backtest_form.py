"""Backtest Review's run form: symbols, interval, dates (following the data's own range), costs
and strategy parameters; Run backtest runs it and keeps the result in the session (:data:`RESULT`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import streamlit as st

from pages import _shared as ui
from swing_core import clock, views
from swing_core.backtest import BacktestConfig, run_backtest
from swing_core.config import INTERVALS, StrategyParams
from swing_core.exits import FILL_CONVENTIONS

#: Session key of the result the page shows (a run just made, loaded or finished in the
#: background).
RESULT = "bt_result"
_DEFAULT_DAYS = {"15m": 40, "30m": 50, "1h": 180, "1d": 365}
#: The earliest date the form accepts (Streamlit's default refuses more than ten years back).
_EARLIEST = dt.date(1900, 1, 1)
_FILL_LABELS = {"close": "Signal bar's close", "next_open": "Next bar's open"}


def progress_bar(label: str) -> tuple[Any, Any]:
    """A progress bar and the ``progress(done, total, message)`` callback that moves it."""
    bar = st.progress(0.0, text=label)

    def progress(done: int, total: int, message: str) -> None:
        bar.progress(min(1.0, done / max(total, 1)), text=f"{ui.plain(message)} ({done}/{total})")

    return bar, progress


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


def run_form(engine: Any) -> None:
    """The run form: symbols, interval, dates, costs, parameters; a click on Run runs the
    backtest (saved when the database is there) and keeps its result in the session."""
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
    fill = st.selectbox(
        "Market entries fill at", FILL_CONVENTIONS, key="bt_fill",
        format_func=lambda value: _FILL_LABELS.get(value, value),
        help="Where a market entry (entry at the signal bar's close) is filled: at that close, "
             "where the plan is made (the default; what the statistics use unless you change "
             "it), or at the next bar's open (a market-on-open order). Stop-order entries fill "
             "when a later bar trades through the entry either way. The choice is part of the "
             "run: saved runs with different fills differ.")
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
    config = BacktestConfig(
        interval=interval, start=pd.Timestamp(start),
        end=pd.Timestamp(end) + pd.Timedelta(days=1) if end else None,
        params={**StrategyParams().to_dict(), **params, "risk_per_trade": risk / 100.0,
                "fee_per_fill": fee, "slippage_bps": slippage},
        initial_equity=float(equity), max_positions=int(max_positions),
        one_position_per_symbol=one_pos, priors=priors, use_library=library, fill=fill,
    )
    bar, progress = progress_bar(f"Backtesting {len(symbols)} symbol(s)…")
    result = run_backtest(symbols, config=config, engine=engine, save=engine is not None,
                          executor="inline" if len(symbols) <= 4 else None, progress=progress,
                          lookahead=lookahead, name=name.strip() or None, source=source)
    bar.empty()
    st.session_state[RESULT] = result
