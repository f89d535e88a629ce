"""Performance: latency per operation, memory, slow queries (with their query plan), cache hit
rates and LLM cost, refreshing itself live; and a self-benchmark against the original
performance guide.

A thin view: the figures come from ``swing_core.views.perf`` (persisted history of every
process: this app, CLI runs, workers, self-benchmarks; and this process's live registry), the
charts from ``swing_core.charts.perf``, the self-benchmark from ``swing_core.perf.selfbench``.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import streamlit as st

from pages import _monitoring, _profile
from pages import _shared as ui
from swing_core import perf
from swing_core.charts import perf as perf_charts
from swing_core.config import get_settings
from swing_core.errors import DatabaseError
from swing_core.perf import selfbench
from swing_core.timefmt import clock_text
from swing_core.views import perf as perf_views

ui.require_router()

#: Auto-refresh choices of the live panel (label -> seconds; None: off).
REFRESH: dict[str, float | None] = {"5 s": 5.0, "10 s": 10.0, "30 s": 30.0, "1 min": 60.0,
                                    "Off": None}
_JOB = "perf_selfbench_job"
_REPORT = "perf_selfbench_report"
_EXPLAIN = "perf_explain"


# --------------------------------------------------------------------------- cached reads


@st.cache_data(ttl=4, show_spinner=False, max_entries=32)
def _overview(key: str, window_label: str, role: str | None) -> perf_views.PerfOverview:
    engine = ui.database_engine()
    return perf_views.load_overview(engine, window=perf_views.WINDOWS[window_label], role=role)


# --------------------------------------------------------------------------- live panel


def _kpis(view: perf_views.PerfOverview, live: perf_views.LiveStatus) -> None:
    cols = st.columns(5)
    cols[0].metric("Memory, this process", f"{live.rss_mb:,.0f} MiB",
                   help=f"Resident memory now; peak so far {live.peak_rss_mb:,.0f} MiB.")
    calls = int(view.latency_table["calls"].sum()) if len(view.latency_table) else 0
    cols[1].metric("Timed calls", f"{calls:,}",
                   help="Operations timed by every process in this window (written history).")
    slow = int(view.slow_groups["count"].sum()) if len(view.slow_groups) else 0
    cols[2].metric("Slow queries", f"{slow:,}",
                   help=f"Statements slower than {get_settings().slow_query_ms:g} ms "
                        "(SWING_SLOW_QUERY_MS) in this window.")
    bars = view.caches[view.caches["cache"] == "bars"]
    rate = float(bars["hit_rate"].iloc[0]) if len(bars) else float("nan")
    cols[3].metric("Bar cache hit rate", "–" if rate != rate else f"{rate:.0%}",
                   help="Share of bar requests answered from the local cache in this window.")
    budget = get_settings().llm_monthly_budget_usd
    cols[4].metric("LLM cost", f"${view.llm_totals['cost_usd']:,.2f}",
                   help=f"In this window. This UTC month: ${view.month_spend_usd:,.2f} of the "
                        f"${budget:,.2f} budget (SWING_LLM_MONTHLY_BUDGET_USD).")


def _latency_tab(view: perf_views.PerfOverview, live: perf_views.LiveStatus) -> None:
    if view.latency.empty:
        st.info("No timings yet: analyze a symbol on the Signal Explorer or run a scan (each "
                "process writes its timings every 15 s, CLI runs when they exit), or run the "
                "self-benchmark below.", icon=":material/timer:")
    else:
        st.plotly_chart(perf_charts.latency_figure(view.latency, window=(view.since, view.until)),
                        key="perf_latency_chart")
        st.dataframe(
            perf_views.to_exchange_time(view.latency_table, ("last_seen",)), hide_index=True,
            key="perf_latency_table",
            column_config={
                "operation": "Operation", "calls": st.column_config.NumberColumn("Calls"),
                "mean_ms": st.column_config.NumberColumn("Mean", format="%.1f ms"),
                "p50_ms": st.column_config.NumberColumn("p50", format="%.1f ms"),
                "p95_ms": st.column_config.NumberColumn("p95", format="%.1f ms"),
                "max_ms": st.column_config.NumberColumn("Max", format="%.1f ms"),
                "total_s": st.column_config.NumberColumn("Total", format="%.2f s"),
                "processes": "Processes",
                "last_seen": st.column_config.DatetimeColumn("Last written (NY)",
                                                             format="MMM D HH:mm:ss"),
            })
        st.caption("p50 / p95 per written interval are exact; across intervals they are "
                   "call-weighted means (an approximation). Mean and max are exact.")
    with st.expander(f"This process, last {live.window_s / 60:.0f} minutes (live)"):
        if live.operations.empty:
            st.caption("Nothing timed in this process in the last minutes.")
        else:
            st.dataframe(live.operations, hide_index=True, key="perf_live_ops")


def _memory_tab(view: perf_views.PerfOverview, live: perf_views.LiveStatus) -> None:
    st.caption(f"This process now: {live.rss_mb:,.0f} MiB resident, peak {live.peak_rss_mb:,.0f} "
               f"MiB. Each process samples itself every 10 s.")
    if view.memory.empty:
        st.info("No memory samples in this window yet: they are written every 15 s while the "
                "app runs (and when a CLI run exits).", icon=":material/memory:")
        return
    st.plotly_chart(perf_charts.memory_figure(view.memory, window=(view.since, view.until)),
                    key="perf_memory_chart")


def _explain(engine: Any, groups: pd.DataFrame) -> None:
    label = "EXPLAIN QUERY PLAN" if engine.dialect.name == "sqlite" else "EXPLAIN"
    by_id = groups.set_index("id")
    cols = st.columns([5, 1])
    chosen = cols[0].selectbox(
        "Statement", list(by_id.index), key="perf_explain_choice",
        format_func=lambda i: (f"{by_id.at[i, 'max_ms']:,.0f} ms · ×{by_id.at[i, 'count']} · "
                               f"{by_id.at[i, 'preview']}"))
    if cols[1].button(label, key="perf_explain_button", icon=":material/account_tree:",
                      help="Plans the statement without running it (values planned as NULL)."):
        statement = str(by_id.at[chosen, "statement"])
        try:
            plan = perf.explain(engine, statement)
            st.session_state[_EXPLAIN] = {"id": chosen, "plan": plan, "statement": statement,
                                          "note": plan.attrs.get("note", ""), "error": None}
        except DatabaseError as exc:
            st.session_state[_EXPLAIN] = {"id": chosen, "statement": statement,
                                          "error": str(exc)}
    result = st.session_state.get(_EXPLAIN)
    if not result or result["id"] not in by_id.index:
        return
    st.code(result["statement"], language="sql", wrap_lines=True)
    if result["error"]:
        st.error(f"{ui.plain(result['error'])}  \nCopy the statement into a SQL console to plan "
                 "it with real values, or pick another one.")
        return
    st.code(perf_views.plan_text(result["plan"]), language="text")
    if result["note"]:
        st.caption(ui.plain(result["note"]))


def _slow_tab(view: perf_views.PerfOverview, engine: Any) -> None:
    threshold = get_settings().slow_query_ms
    if view.slow_groups.empty:
        st.info(f"No statement slower than {threshold:g} ms in this window: nothing to tune. "
                "(The threshold is SWING_SLOW_QUERY_MS.)", icon=":material/check_circle:")
        return
    table = perf_views.to_exchange_time(view.slow_groups.drop(columns=["statement", "id"]),
                                        ("last_seen",))
    st.dataframe(table, hide_index=True, key="perf_slow_table", column_config={
        "preview": st.column_config.TextColumn("Statement", width="large"),
        "count": st.column_config.NumberColumn("Times"),
        "max_ms": st.column_config.NumberColumn("Slowest", format="%.1f ms"),
        "median_ms": st.column_config.NumberColumn("Median", format="%.1f ms"),
        "total_ms": st.column_config.NumberColumn("Total", format="%.0f ms"),
        "last_seen": st.column_config.DatetimeColumn("Last (NY)", format="MMM D HH:mm:ss"),
        "processes": "Processes", "dialect": "Database"})
    st.caption(f"Statements slower than {threshold:g} ms, grouped by text (values are never "
               "recorded). Click a column header to sort.")
    st.markdown("**Query plan**")
    _explain(engine, view.slow_groups)


def _cache_tab(view: perf_views.PerfOverview, live: perf_views.LiveStatus) -> None:
    if view.caches.empty:
        st.info("No cache lookups yet: open a symbol on the Signal Explorer twice; the second "
                "load is answered from the bar cache.", icon=":material/cached:")
    else:
        st.dataframe(view.caches, hide_index=True, key="perf_cache_table", column_config={
            "cache": "Cache", "hits": "Hits", "misses": "Misses", "lookups": "Lookups",
            "hit_rate": st.column_config.ProgressColumn("Hit rate", format="percent",
                                                        min_value=0.0, max_value=1.0),
            "source": "From"})
        st.plotly_chart(perf_charts.cache_figure(view.cache_series,
                                                 window=(view.since, view.until)),
                        key="perf_cache_chart")
    if len(live.caches):
        text = ", ".join(f"{r.cache} {r.hits:,}/{r.hits + r.misses:,}"
                         for r in live.caches.itertuples())
        st.caption(f"This process since start (hits/lookups): {text}.")


def _llm_tab(view: perf_views.PerfOverview) -> None:
    totals = view.llm_totals
    budget = get_settings().llm_monthly_budget_usd
    if view.llm_daily.empty:
        st.info("No LLM calls in this window. The advisor runs only when OPENAI_API_KEY is set, "
                "and only for signals with a plan whose confidence is at most the ceiling "
                "(SWING_LLM_CONFIDENCE_CEILING); try the Signal Explorer.",
                icon=":material/smart_toy:")
        st.caption(f"This UTC month: ${view.month_spend_usd:,.2f} of ${budget:,.2f}.")
        return
    cols = st.columns(5)
    cols[0].metric("Requests", f"{totals['api_calls']:,.0f}")
    cols[1].metric("Cache hits", f"{totals['cache_hits']:,.0f}")
    cols[2].metric("Failed", f"{totals['failures']:,.0f}")
    cols[3].metric("Tokens in / out", f"{totals['tokens_in']:,.0f} / {totals['tokens_out']:,.0f}")
    cols[4].metric("Cost", f"${totals['cost_usd']:,.4f}",
                   help=f"This UTC month: ${view.month_spend_usd:,.2f} of ${budget:,.2f}.")
    st.plotly_chart(perf_charts.llm_cost_figure(view.llm_daily), key="perf_llm_chart")
    st.dataframe(view.llm_daily.assign(day=view.llm_daily["day"].dt.date), hide_index=True,
                 key="perf_llm_table", column_config={
                     "cost_usd": st.column_config.NumberColumn("Cost", format="$%.4f"),
                     "mean_latency_ms": st.column_config.NumberColumn("Mean latency",
                                                                      format="%.0f ms")})


def _live_panel(window_label: str, role: str | None, refresh_label: str) -> None:
    """The auto-refreshing part (an ``st.fragment`` with ``run_every``)."""
    live = perf_views.live_status()
    engine = ui.database_engine()
    status = _monitoring.start()
    top = st.columns([6, 1])
    every = REFRESH[refresh_label]
    top[0].caption(f"Updated {clock_text(live.at)} New York · "
                   + (f"refreshes every {refresh_label}" if every else "auto-refresh off")
                   + (f" · this process writes its figures every "
                      f"{_monitoring.FLUSH_INTERVAL_S:g} s as {status.process}"
                      if status and status.running else ""))
    if top[1].button("Refresh now", key="perf_refresh_now", icon=":material/refresh:",
                     help="Write this process's figures now and reload the history."):
        if status is not None and status.recorder is not None:
            status.recorder.flush()
        _overview.clear()
    if not live.enabled:
        st.warning("Instrumentation is off in this process (SWING_PERF=0): nothing new is "
                   "timed. Unset SWING_PERF and restart the app to turn it on.")
    if engine is None:
        ui.database_banner()
        st.dataframe(live.operations, hide_index=True, key="perf_live_only")
        return
    with ui.error_edge("The Performance page"):
        view = _overview(ui.db_key(), window_label, role)
        _kpis(view, live)
        if view.empty and live.operations.empty:
            st.info("No performance history yet: analyze a symbol on the Signal Explorer, run a "
                    "scan or a backtest, or run the self-benchmark below. Figures appear here "
                    "within 15 s.", icon=":material/speed:")
        tabs = st.tabs(["Latency", "Memory", "Slow queries", "Caches", "LLM"])
        with tabs[0]:
            _latency_tab(view, live)
        with tabs[1]:
            _memory_tab(view, live)
        with tabs[2]:
            _slow_tab(view, engine)
        with tabs[3]:
            _cache_tab(view, live)
        with tabs[4]:
            _llm_tab(view)
        if status is not None and status.notes:
            for note in status.notes:
                st.warning(ui.plain(note))


# --------------------------------------------------------------------------- self-benchmark


def _start_job() -> None:
    if ui.admin_lock() is not None:  # re-checked here: a disabled button is only a hint
        st.session_state["perf_selfbench_refused"] = True
        return
    try:
        job = selfbench.SelfBenchJob(quick=True, record_perf=ui.database_engine() is not None)
        st.session_state[_JOB] = job.start()
    except selfbench.SelfBenchError as exc:
        st.session_state[_JOB] = None
        st.session_state["perf_selfbench_error"] = f"{exc}"


def _show_report(report: selfbench.SelfBenchReport) -> None:
    finished = clock_text(report.finished_at)
    verdict = (f"{report.passed} of {report.passed + report.failed} targets met"
               if report.passed + report.failed else "no targets")
    st.caption(f"{report.mode.capitalize()} run finished at {finished} New York in "
               f"{report.seconds:.0f} s: {verdict}.")
    for error in report.errors:
        st.error(f"{ui.plain(error)}  \nRun `python benchmarks/run_all.py --quick` in a "
                 "terminal to see the whole output.")
    guide = report.guide.drop(columns=["key"])
    st.dataframe(guide, hide_index=True, key="perf_guide_table", column_config={
        "operation": "Operation", "unit": "Unit",
        "guide_before": st.column_config.NumberColumn("Guide before", format="%.4g"),
        "guide_after": st.column_config.NumberColumn("Guide after", format="%.4g"),
        "swingdesk": st.column_config.NumberColumn("SwingDesk", format="%.4g"),
        "x_vs_guide_after": st.column_config.NumberColumn("× vs after", format="%.1f×"),
        "x_vs_guide_before": st.column_config.NumberColumn("× vs before", format="%.1f×"),
        "passed": st.column_config.CheckboxColumn("≤ guide after"),
        "workload": st.column_config.TextColumn("What SwingDesk measured", width="large")})
    st.plotly_chart(perf_charts.selfbench_figure(report.guide.dropna(subset=["swingdesk"])),
                    key="perf_guide_chart")
    st.dataframe(report.figures, hide_index=True, key="perf_targets_table", column_config={
        "benchmark": "Benchmark", "figure": "Figure",
        "value": st.column_config.NumberColumn("Value", format="%.4g"),
        "target": "Target", "passed": st.column_config.CheckboxColumn("Met")})
    st.download_button("Download the JSON report", json.dumps(report.raw, indent=2, default=str),
                       file_name="swingdesk_selfbench.json", mime="application/json",
                       key="perf_selfbench_download", icon=":material/download:")


def _cancel_job() -> None:
    job: selfbench.SelfBenchJob | None = st.session_state.get(_JOB)
    if job is not None:
        st.session_state["perf_selfbench_error"] = job.cancel().error
    st.session_state[_JOB] = None


def _job_state() -> selfbench.JobState | None:
    """The running job's state; a finished job's report or error is moved to the session."""
    job: selfbench.SelfBenchJob | None = st.session_state.get(_JOB)
    state = job.poll() if job is not None else None
    if state is None or not state.finished:
        return state
    st.session_state[_JOB] = None
    if state.report is not None:
        st.session_state[_REPORT] = state.report
    elif state.error:
        st.session_state["perf_selfbench_error"] = state.error
    return None


def _selfbench_panel() -> None:
    state = _job_state()
    running = state is not None
    # The panel polls (run_every) only while a job runs: a full rerun re-declares it.
    if running != bool(st.session_state.get("_perf_polling")):
        st.session_state["_perf_polling"] = running
        st.rerun()
    st.subheader("Self-benchmark")
    st.caption("Runs a short version of `benchmarks/` in a separate process (usually under a "
               "minute; the CPUs are shared, so once is enough): the original performance "
               "guide's five operations on demo data with a temporary database, the 100-signal "
               "memory benchmark, the engine benchmark and the instrumentation overhead. Full run: "
               "`python benchmarks/run_all.py`.")
    cols = st.columns([2, 1, 5])
    lock = ui.admin_lock()  # a CPU-heavy process on the shared server: admins only
    cols[0].button("Run self-benchmark", key="perf_selfbench_run", type="primary", help=lock,
                   icon=":material/speed:", disabled=running or lock is not None,
                   on_click=_start_job)
    if st.session_state.pop("perf_selfbench_refused", False):
        ui.admin_allowed("Running the self-benchmark")  # says why
    if running:
        cols[1].button("Cancel", key="perf_selfbench_cancel", on_click=_cancel_job)
        cols[2].caption(f"Running for {state.elapsed_s:.0f} s · {ui.plain(state.progress)}")
    error = st.session_state.pop("perf_selfbench_error", None)
    if error:
        st.error(ui.plain(error))
    report: selfbench.SelfBenchReport | None = st.session_state.get(_REPORT)
    if report is not None:
        _show_report(report)
    elif not running:
        st.dataframe(selfbench.guide_frame().drop(columns=["key", "swingdesk",
                                                           "x_vs_guide_after",
                                                           "x_vs_guide_before", "passed"]),
                     hide_index=True, key="perf_guide_only")
        st.caption("The guide's figures; run the self-benchmark to put this machine's beside "
                   "them.")


# --------------------------------------------------------------------------- page


def main() -> None:
    st.title("Performance")
    st.caption("How fast and how lean SwingDesk runs: every process (this app, CLI runs, "
               "workers) writes its timings, memory, slow queries and cache counters to the "
               "database; a week is kept.")
    cols = st.columns([2, 2, 1])
    window_label = cols[0].selectbox("Window", list(perf_views.WINDOWS), index=0,
                                     key="perf_window")
    roles: tuple[str, ...] = ()
    with ui.error_edge("The Performance page"):
        roles = _overview(ui.db_key(), window_label, None).roles if (
            ui.database_engine() is not None) else ()
    role_label = cols[1].selectbox("Processes", ["All", *roles], key="perf_role",
                                   help="app: this dashboard; cli: command-line runs; worker: "
                                        "pool workers; selfbench: the self-benchmark.")
    refresh_label = cols[2].selectbox("Auto-refresh", list(REFRESH), index=1,
                                      key="perf_refresh")
    role = None if role_label == "All" else role_label
    st.fragment(run_every=REFRESH[refresh_label])(_live_panel)(window_label, role, refresh_label)
    st.divider()
    polling = bool(st.session_state.get("_perf_polling"))
    st.fragment(run_every=2.0 if polling else None)(_selfbench_panel)()
    st.divider()
    _profile.panel()  # run a profile (admins), view the saved ones


main()
