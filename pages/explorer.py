"""Signal Explorer: one symbol's chart, trend, setup, plan, context chips, pattern prior and
advisor; save the signal to the journal. Symbol, interval and lookback live in the URL."""

from __future__ import annotations

from typing import Any

import streamlit as st

from pages import _shared as ui
from swing_core import agent, charts, journal, llm, views
from swing_core.config import YAHOO_MAX_DAYS, get_settings
from swing_core.errors import ConfigError

ui.require_router()

LOOKBACK_OPTIONS = ("auto", "10", "20", "30", "59", "90", "180", "365", "730", "1825")
_TONE_COLOR = {"good": "green", "bad": "red", "neutral": "gray"}
#: Badge colour and icon of each verdict (swing_core.verdict).
_VERDICT_BADGE = {"take": ("green", ":material/check_circle:"),
                  "skip": ("red", ":material/block:"),
                  "no edge": ("gray", ":material/help:")}
#: Bars the price chart opens on (about two weeks; the whole history is a pan away).
_INITIAL_BARS = {"15m": 260, "30m": 130, "1h": 70, "1d": 120}


def _lookback_days(choice: str, interval: str) -> tuple[int | None, str | None]:
    """Days to fetch (None: the engine's default) and a note when Yahoo's limit clips it."""
    if choice == "auto":
        return None, None
    days = int(choice)
    limit = YAHOO_MAX_DAYS.get(interval)
    if limit is not None and days > limit:
        return limit, (f"Yahoo keeps about {limit + 1} days of {interval} bars: using {limit} "
                       "days. Pick 1h or 1d for longer histories.")
    return days, None


_fmt = views.format_number


def _metrics(signal: Any) -> None:
    entry = signal.entry
    trend = signal.trend.label.replace("_", " ")
    plan = (f"**{entry.side}** · {entry.setup.replace('_', ' ')}" if entry
            else "no setup on the last bar")
    st.markdown(f"#### Trend **{trend}** · {plan}")
    _verdict(signal)
    cols = st.columns(6)
    cols[0].metric("Confidence", f"{signal.confidence:.0%}",
                   help="Base confidence from trend, R, MTF and relative strength, blended with "
                        "the pattern prior when one is available (STRATEGY.md).")
    cols[1].metric("R", _fmt(entry.r_multiple) if entry else "–", help="reward / risk")
    cols[2].metric("Entry", _fmt(entry.entry) if entry else "–",
                   help="A stop order when beyond the close (valid one trading day).")
    cols[3].metric("Stop", _fmt(entry.stop) if entry else "–")
    cols[4].metric("Target", _fmt(entry.target) if entry else "–")
    cols[5].metric("Price", _fmt(signal.trend.price), help="close of the signal bar")


def _verdict(signal: Any) -> None:
    """The engine's verdict next to the side and confidence: take / skip / no edge, and why."""
    if signal.verdict is None:
        return
    color, icon = _VERDICT_BADGE.get(signal.verdict, ("gray", None))
    cols = st.columns([1, 5], vertical_alignment="center")
    cols[0].badge(f"Verdict: {signal.verdict}", color=color, icon=icon,
                  help="From the pattern prior's expected R net of costs and how far the prior "
                       "can be trusted (swing_core.verdict), not from the confidence.")
    cols[1].caption(ui.plain(signal.verdict_reason or ""))


def _trend_card(signal: Any, frame: Any) -> None:
    with st.container(border=True):
        st.subheader("Trend and setup")
        trend = signal.trend
        st.markdown(
            f"**{trend.label.replace('_', ' ')}** · EMA20 slope {_fmt(trend.ema_slope, '+.4f')} · "
            f"RSI14 {_fmt(trend.rsi14, '.1f')} · price {_fmt(trend.price)} "
            f"({'above' if trend.price_above_ema else 'below'} EMA20)"
        )
        st.caption(ui.plain(signal.reasoning))
        if signal.entry:
            st.markdown(f"**Plan:** {ui.plain(signal.entry.comment)}")
        levels = signal.fib_levels
        if levels.get("golden_pocket_low") is not None:
            st.markdown(
                f"Golden pocket {_fmt(levels.get('golden_pocket_low'))} – "
                f"{_fmt(levels.get('golden_pocket_high'))} · 1.272 ext "
                f"{_fmt(levels.get('fib_ext_1272'))} · 1.618 ext {_fmt(levels.get('fib_ext_1618'))}"
            )
        asof = views.bar_time_text(signal.asof, signal.interval)
        where = " (daily bar)" if signal.interval == "1d" else ""
        complete = "" if signal.last_bar_complete else ", still forming"
        st.caption(f"Signal bar {asof}{where}{complete}; {len(frame):,} bars analysed.")


def _chips(signal: Any) -> None:
    cols = st.columns(3)
    for i, chip in enumerate(views.signal_chips(signal)):
        cols[i % 3].badge(f"{chip.label}: {chip.value}", color=_TONE_COLOR.get(chip.tone, "gray"),
                          help=chip.help)


def _neighbor_r(signal: Any) -> list[float]:
    """Realized R of the neighbours behind the prior (empty when there is no library)."""
    library = ui.library(signal.interval)
    if library is None or len(library) == 0:
        return []
    return list(views.neighbors_of(library, signal).frame["realized_r"])


def _prior_card(signal: Any) -> None:
    with st.container(border=True):
        st.subheader("Pattern prior")
        card = views.prior_card(signal)
        if card is None:
            if signal.entry is None:
                st.info("No setup on the last bar, so there is nothing to compare. Try another "
                        "symbol or interval, or open the Scanner to find live setups.")
            else:
                st.info("No pattern prior yet: the setup library has no known outcomes for this "
                        "interval. Save signals to the journal and evaluate them (Journal page) "
                        "to build it.")
            return
        calibrated = card["win_rate_kind"] == "predicted_net"
        cols = st.columns([3, 2])
        cols[0].metric(
            views.win_rate_label(card["win_rate_kind"], short=True),
            views.rate_text(card["win_rate"], card["n"]),
            help=(f"Calibrated on the journal to a win after fees and slippage; the "
                  f"neighbours' own R win rate is {_fmt(card['win_rate_raw'], '.0%')} (before "
                  "costs)." if calibrated else
                  "The neighbours' share of R wins (R > 0, before costs), shrunk toward 50 % "
                  "for a small n: a handful of neighbours never says 0 % or 100 %. "
                  "Calibrated to a win after costs once the journal holds enough outcomes."))
        cols[1].metric("Neighbours (n)", card["n"] if card["n"] is not None else "–",
                       help="Evaluated setups most like this one; every rate here rests on them.")
        cols = st.columns(3)
        cols[0].metric("Exp. R (gross)", _fmt(card["expected_r"], "+.2f"),
                       help="The neighbours' expected R, before costs.")
        cols[1].metric("Costs (R)", _fmt(card["cost_r"], ".2f"),
                       help="Slippage on both fills and two fees, relative to this plan's risk "
                            "per share (swing_core.costs).")
        cols[2].metric("Exp. R (net)", _fmt(card["expected_r_net"], "+.2f"),
                       help="Expected R net of costs: what the verdict weighs.")
        cols = st.columns(4)
        cols[0].metric("Profit factor", _fmt(card["profit_factor"]))
        cols[1].metric("Hold bars", _fmt(card["hold_bars"], ".1f"),
                       help=f"{_fmt(card['hold_days'], '.1f')} trading days")
        cols[2].metric("Wins hold", _fmt(card["win_hold_bars"], ".1f"))
        cols[3].metric("Losses hold", _fmt(card["loss_hold_bars"], ".1f"))
        outcomes = _neighbor_r(signal)
        if outcomes:
            st.plotly_chart(charts.outcome_histogram(outcomes, title="Neighbours' outcomes (R)",
                                                     marker=card["expected_r"], height=260),
                            key="prior_hist")
        if card.get("notes"):
            st.caption(ui.plain(card["notes"]))
        library = ui.library(signal.interval)
        if library is not None and library.source == "demo":
            st.caption(f"⚠ {library.note}")


def _calibration_card(interval: str) -> None:
    """Do the priors carry information? The journal's calibration report, side by side."""
    report = ui.journal_calibration(interval)
    if report is None:
        return
    with st.expander(f"Calibration of the priors (journal, n = {report.n})",
                     expanded=report.n > 0):
        st.caption(ui.plain(report.verdict))
        if report.n == 0:
            st.caption("Save signals to the journal and evaluate them to judge the priors.")
            return
        st.dataframe(views.brier_table(report.comparison, short=True), hide_index=True,
                     key="explorer_brier_table", column_config={
                         "predictor": st.column_config.TextColumn("Predictor"),
                         "brier": st.column_config.NumberColumn("Brier score", format="%.4f"),
                         "n": st.column_config.NumberColumn("n", format="%d")})
        st.caption("Brier score against a win after fees and slippage (lower is better; 0.25 "
                   "= always 50 %), each predictor walk-forward over the evaluated signals.")


def _service_notes(interval: str) -> None:
    """What the services could not provide (e.g. no pattern priors), said once, plainly."""
    notes = [n for n in ui.runtime(interval).notes if "DEMO library" not in n]
    for note in notes:
        st.caption(ui.plain(note))


@st.fragment
def _advisor(signal: Any, engine: Any) -> None:
    """The advisor panel, last on the page and a fragment: asking reruns only this panel, and
    the rest of the page is already shown while the advisor thinks (at most
    SWING_LLM_DEADLINE_S for the vote and the plan together)."""
    with ui.error_edge("The advisor"):
        _advisor_panel(signal, engine)


def _advisor_panel(signal: Any, engine: Any) -> None:
    settings = get_settings()
    with st.container(border=True):
        st.subheader("Advisor")
        try:
            llm.check_base_url(settings.openai_base_url)
        except ConfigError as exc:
            st.error(ui.plain(exc))
            return
        st.caption(ui.plain(llm.advisor_status(settings)))
        if not settings.openai_api_key:
            st.info("Set OPENAI_API_KEY (and optionally OPENAI_BASE_URL, SWING_LLM_MODEL) to get "
                    "a second opinion and an action plan on each setup.")
            return
        if signal.entry is None:
            st.caption("The advisor is asked only when there is a plan to judge.")
            return
        key = f"advice:{signal.symbol}:{signal.interval}:{signal.asof.isoformat()}"
        if st.button("Ask the advisor", key="ask_advisor", icon=":material/psychology:"):
            with (st.spinner(f"Asking the advisor (at most {settings.llm_deadline_s:g} s)…"),
                  llm.Advisor(settings, engine) as advisor):
                # the one advisor path: vote and plan asked together, vote applied to confidence
                # and vector, plan attached, each failure noted
                st.session_state[key] = agent.advise(signal, advisor, plan=True, force=True)
        advised = st.session_state.get(key)
        if advised is None:
            return
        vote = advised.llm_vote
        if vote:
            st.markdown(f"**Vote:** {vote.get('entry_bias')} · trend "
                        f"{str(vote.get('trend_label', '')).replace('_', ' ')} · confidence "
                        f"{float(vote.get('confidence', 0)):.0%} → signal confidence "
                        f"{signal.confidence:.0%} becomes **{advised.confidence:.0%}**")
            st.caption(ui.plain(advised.llm_explanation or ""))
        if advised.action_plan:
            st.markdown("**Action plan**")
            st.text(advised.action_plan)
            st.markdown("**Risk notes**")
            st.text(advised.risk_notes or "—")
            for scenario in advised.scenarios or []:
                st.text(f"• {scenario}")
        for note in advised.notes[len(signal.notes):]:
            st.warning(ui.plain(note))
        st.caption("Save to journal (above) now stores the advised signal (vote, plan and the "
                   "setup vector's advisor slot).")


def _advised(signal: Any) -> Any:
    """The advised version of ``signal`` when the advisor was asked about it in this session."""
    key = f"advice:{signal.symbol}:{signal.interval}:{signal.asof.isoformat()}"
    return st.session_state.get(key) or signal


def _save(view: views.SignalView, engine: Any) -> None:
    if engine is None:
        st.caption("The journal needs the database (see the error above).")
        return
    plan = journal.has_trade_plan(view.signal)
    if st.button("Save to journal", key="save_journal", icon=":material/bookmark_add:",
                 disabled=not plan,
                 help="Store this signal (once per bar); evaluate it later on the Journal page."
                 if plan else journal.NO_PLAN_MESSAGE):
        # the advised signal when the advisor was asked: its vote and vector are what is kept
        saved = journal.record_signal(engine, _advised(view.signal))
        if saved.added:
            st.success(f"{view.signal.symbol}: {saved.message} Open the Journal to evaluate it "
                       "once its outcome is known.", icon=":material/check:")
        else:  # saved before (this bar), or no plan: nothing was written
            st.info(f"{view.signal.symbol}: {saved.message}", icon=":material/info:")


def main() -> None:
    symbol, interval = ui.current_symbol(), ui.current_interval()
    st.title(f"Signal Explorer · {symbol} {interval}")
    top = st.columns([5, 2])
    choice = top[0].select_slider(
        "Lookback (calendar days)", options=LOOKBACK_OPTIONS, value="auto", key="lookback",
        bind="query-params", help="History to fetch; 'auto' picks the interval's default.")
    show_fib = top[1].toggle("Fibonacci levels", value=True, key="show_fib")
    lookback, clip_note = _lookback_days(choice, interval)
    if clip_note:
        st.caption(clip_note)
    with ui.error_edge("The Signal Explorer"):
        with st.spinner(f"Analysing {symbol}…"):
            view = ui.signal_view(symbol, interval, lookback)
        signal = view.signal
        ui.source_banner(view.source, notes=view.notes)
        _metrics(signal)
        plan = signal.flat() if signal.entry else None
        st.plotly_chart(
            charts.price_figure(view.frame, plan=plan, interval=interval, show_fib=show_fib,
                                initial_bars=_INITIAL_BARS[interval],
                                title=f"{symbol} · {interval}"
                                + (" · New York time" if interval != "1d" else "")),
            key="explorer_chart", config={"scrollZoom": True, "displaylogo": False},
        )
        left, right = st.columns([1, 1])
        with left:
            _trend_card(signal, view.frame)
            _chips(signal)
        with right:
            _prior_card(signal)
            _calibration_card(interval)
            _service_notes(interval)
        engine = ui.runtime(interval).engine
        ui.database_banner()
        _save(view, engine)
        _advisor(signal, engine)  # last: a slow advisor never holds back the rest of the page


main()
