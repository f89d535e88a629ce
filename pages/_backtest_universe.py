"""Backtest Review's universe runs: hundreds of symbols backtested in chunks in a background
thread (each chunk stored as it finishes, so a cancelled run resumes), with live progress; the
finished run is loaded as the page's result."""

from __future__ import annotations

import logging
import threading
from typing import Any

import streamlit as st

from pages import _shared as ui
from pages._backtest_form import RESULT
from swing_core import views
from swing_core.backtest import BacktestConfig, load_run, run_universe
from swing_core.config import INTERVALS
from swing_core.errors import SwingError

log = logging.getLogger("swingdesk.ui")

_UNIVERSE = "bt_universe_job"


def _universe_job(symbols: list[str], config: Any, engine: Any, chunk_size: int,
                  job: dict[str, Any], source: str) -> None:
    """Background thread body: run the chunked backtest, report into ``job`` (no st calls)."""

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


def universe_form(engine: Any) -> None:
    """The universe form (hundreds of symbols in chunks, run in a background thread) and the
    status of the running or finished job."""
    with st.expander("Universe backtest (hundreds of symbols, in chunks)"):
        if engine is None:
            st.info("Universe runs store each chunk as it finishes: they need the database.")
            return
        job = st.session_state.get(_UNIVERSE)
        running = job is not None and job["thread"].is_alive()
        lock = ui.admin_lock()  # hundreds of symbols on the shared server: admins only
        with st.form("bt_universe_form"):
            text = st.text_area("Symbols", key="bt_u_symbols", height=80,
                                help="Tickers separated by commas, spaces or new lines.")
            cols = st.columns(2)
            chunk = cols[0].number_input("Chunk size", 5, 500, 50, 5, key="bt_u_chunk")
            interval = cols[1].selectbox("Interval", INTERVALS, index=INTERVALS.index("1d"),
                                         key="bt_u_interval")
            start = st.form_submit_button("Run universe backtest",
                                          disabled=running or lock is not None,
                                          icon=":material/play_arrow:", help=lock)
        if start and ui.admin_allowed("Running a universe backtest"):
            symbols, errors = views.parse_symbols(text, limit=5000)
            for error in errors[:5]:
                st.warning(ui.plain(error))
            if symbols:
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
        job["loaded"] = True
        st.session_state[RESULT] = load_run(ui.database_engine(), job["run_hash"])
        st.rerun(scope="app")
    elif status == "done":
        n_trades = job.get("n_trades")
        trades = f" ({n_trades:,} trades)" if n_trades is not None else ""
        st.success(f"Universe backtest done{trades}: its results are in the tabs below.")
