"""The Performance page's "Profile" section: run one analyze, backtest or scan under the
profiler in a separate process (admins only, like the self-benchmark: it takes a CPU), save it,
and show a saved profile: its total, the top functions and the call tree as an icicle.

A thin view: the run is :func:`swing_core.perf.profiling.profile_operation`, the storage
:mod:`swing_core.perf.profile_store`, the tables :mod:`swing_core.views.perf`, the chart
:func:`swing_core.charts.perf.profile_icicle`.
"""

from __future__ import annotations

import streamlit as st

from pages import _shared as ui
from swing_core import views
from swing_core.charts import perf as perf_charts
from swing_core.config import INTERVALS
from swing_core.errors import SwingError
from swing_core.perf import profile_store, profiling
from swing_core.views import perf as perf_views

_CHOICE = "perf_profile_choice"
_UNSAVED = "perf_profile_unsaved"  # a profile made while the database was unavailable
_LABELS = {"analyze": "Analyze one symbol", "scan": "Scan symbols",
           "backtest": "Backtest symbols"}


def _run(kind: str, symbols_text: str, interval: str, warm: bool) -> None:
    symbols, errors = views.parse_symbols(symbols_text, limit=profiling.MAX_SYMBOLS)
    if errors:
        st.error(ui.plain(" ".join(errors)))
        return
    try:
        with st.spinner(f"Profiling {kind} of {', '.join(symbols) or '…'} in a separate "
                        "process…"):
            result = profiling.profile_operation(kind, symbols, interval,
                                                 source=ui.current_source(),
                                                 offline=ui.is_offline(), warm=warm)
    except SwingError as exc:
        st.error(ui.plain(str(exc)))
        return
    engine = ui.database_engine()
    if engine is None:
        st.session_state[_UNSAVED] = result
        st.session_state[_CHOICE] = None
        return
    with ui.error_edge("Saving the profile"):
        st.session_state[_CHOICE] = profile_store.save_profile(engine, result)
        st.session_state.pop(_UNSAVED, None)


def _form() -> None:
    cols = st.columns([2, 3, 1, 1])
    kind = cols[0].selectbox("Operation", profiling.KINDS, key="perf_profile_kind",
                             format_func=_LABELS.get)
    symbols_text = cols[1].text_input(
        "Symbols", value=ui.current_symbol(), key="perf_profile_symbols",
        help=f"One for analyze; up to {profiling.MAX_SYMBOLS} for scan and backtest (commas or "
             "spaces between them). Bars come from the sidebar's \"Bars from\".")
    interval = cols[2].selectbox("Interval", INTERVALS, index=INTERVALS.index("1d"),
                                 key="perf_profile_interval")
    warm = cols[3].checkbox("Warm", key="perf_profile_warm",
                            help="Run once unprofiled first and profile the second run "
                                 "(imports and caches warm, as in a running app).")
    lock = ui.admin_lock()  # a CPU-heavy process on the shared server: admins only
    if st.button("Profile", key="perf_profile_run", type="primary", help=lock,
                 icon=":material/troubleshoot:", disabled=lock is not None):
        if ui.admin_allowed("Profiling"):  # re-checked: a disabled button is only a hint
            _run(kind, symbols_text, interval, warm)


def _show(result: profiling.ProfileResult) -> None:
    cols = st.columns(3)
    cols[0].metric("Total", f"{result.total_s:,.3f} s",
                   help="Wall time of the run under the profiler (slower than without it).")
    cols[1].metric("Functions", f"{len(result.functions):,}",
                   help="Functions kept with the profile, by cumulative time.")
    cols[2].metric("Tree nodes", f"{len(result.tree):,}")
    for note in result.notes:
        st.caption(ui.plain(note))
    st.plotly_chart(perf_charts.profile_icicle(result.tree), key="perf_profile_chart")
    top = int(st.number_input("Functions shown", min_value=1,
                              max_value=max(1, len(result.functions)),
                              value=min(profiling.DEFAULT_TOP, max(1, len(result.functions))),
                              step=5, key="perf_profile_top"))
    st.dataframe(perf_views.profile_functions(result.functions, top), hide_index=True,
                 key="perf_profile_table", column_config={
                     "function": st.column_config.TextColumn("Function", width="medium"),
                     "location": st.column_config.TextColumn("File:line", width="medium"),
                     "calls": st.column_config.NumberColumn("Calls", format="localized"),
                     "own_s": st.column_config.NumberColumn("Own", format="%.4f s"),
                     "cumulative_s": st.column_config.NumberColumn("Cumulative",
                                                                   format="%.4f s"),
                     "cumulative_pct": st.column_config.NumberColumn("Cumulative %",
                                                                     format="%.1f %%"),
                     "own_pct": st.column_config.NumberColumn("Own %", format="%.1f %%"),
                     "per_call_ms": st.column_config.NumberColumn("Per call",
                                                                  format="%.3f ms")})
    st.caption("Own: time in the function itself; cumulative: with the functions it called. "
               "Times and calls from cProfile (exact); the chart from stacks sampled every "
               f"{profiling.SAMPLE_INTERVAL_S * 1000:g} ms during the same run (click a box to "
               "zoom in). Same as `python -m swing_core profile " + result.kind + " "
               + " ".join(result.arguments.get("symbols") or []) + "`.")


def _saved(engine: object) -> None:
    history = perf_views.profile_history(engine)
    if history.empty:
        st.info("No saved profiles yet: choose an operation and press Profile.",
                icon=":material/troubleshoot:")
        return
    labels = dict(zip(history["id"].astype(int), history["label"], strict=True))
    if st.session_state.get(_CHOICE) not in labels:
        st.session_state[_CHOICE] = int(history["id"].iloc[0])
    chosen = st.selectbox("Saved profile", list(labels), key=_CHOICE, format_func=labels.get,
                          help="Every profile is saved with its run; the newest "
                               f"{profile_store.KEEP_PROFILES} are kept.")
    _show(profile_store.load_profile(engine, int(chosen)))


def panel() -> None:
    """The Profile section (a full-page rerun: the run is synchronous, with a spinner)."""
    st.subheader("Profile")
    st.caption("Runs one analyze, scan or backtest under Python's profiler in a separate "
               "process (a time limit of "
               f"{profiling.DEFAULT_TIMEOUT_S:.0f} s) and shows where its time goes: the "
               "functions with the most time and the call tree. Find the hot spot before "
               "optimizing. From a terminal: `python -m swing_core profile analyze AAPL`.")
    _form()
    engine = ui.database_engine()
    unsaved = st.session_state.get(_UNSAVED)
    if engine is None:
        ui.database_banner()
        if unsaved is not None:
            st.caption("Not saved: the database is unavailable.")
            _show(unsaved)
        return
    with ui.error_edge("Saved profiles"):
        _saved(engine)
