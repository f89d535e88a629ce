"""Status banners: where the bars came from (demo data gets a warning everyone sees), whether the
database is usable, and the sidebar's data-mode badge."""

from __future__ import annotations

from typing import Any

import streamlit as st

from pages._resources import database, is_offline
from pages._state import current_source
from pages._text import plain
from swing_core import market, views


def database_banner() -> bool:
    """Show an st.error naming the database when it is unusable; True when it is usable."""
    runtime = database()
    if runtime.engine is None:
        st.error(f"Database unavailable ({plain(runtime.database)}): "
                 f"{plain(runtime.database_error)}  \nCheck `SWING_DATABASE_URL` / "
                 "`SWING_DATA_DIR`; pages that need storage are limited until it is reachable.")
        return False
    return True


def source_banner(source: str | None, *, notes: tuple[str, ...] | list[str] = ()) -> None:
    """Say plainly where the bars came from; demo data gets a warning everyone sees."""
    text = views.describe_source(source)
    if source == "demo":
        why = next((n for n in notes if "DEMO DATA" in n), "")
        reason = why.split(":", 1)[1].split(";")[0].strip() if ":" in why else ""
        st.warning(f"**DEMO DATA** — synthetic prices, not the market"
                   f"{' (' + plain(reason) + ')' if reason else ''}.", icon=":material/science:")
    elif source in ("cache", "local"):
        st.info(f"Showing {text}.", icon=":material/database:")
    else:
        st.caption(f"Data: {text}.")
    extra = [n for n in notes if "DEMO DATA" not in n]
    if extra:
        with st.expander(f"Data notes ({len(extra)})"):
            for note in extra:
                st.caption(plain(note))


def source_note(what: str) -> None:
    """On pages that load no bars up front: say where their bars will come from."""
    source = current_source()
    if source == "demo":
        st.warning(f"Bars from: demo data. {what} use DEMO data, synthetic prices, not the "
                   "market.", icon=":material/science:")
    elif is_offline() and source == "auto":
        st.info(f"Offline mode (SWING_OFFLINE=1): {what} use your local bars where you have "
                "them, else DEMO data (labelled).", icon=":material/cloud_off:")


def status_badge(slot: Any = None) -> None:
    """The sidebar's data-mode line (into ``slot``, e.g. an ``st.sidebar.empty()`` filled after
    the page ran, so it reflects this run's fetches), telling the truth about Yahoo: switched
    off, not asked yet, reachable, or unreachable (then local bars or demo are used)."""
    source = current_source()
    status = market.yahoo_status()
    target = slot if slot is not None else st.sidebar
    if source == "demo":
        target.badge("Demo data (chosen)", icon=":material/science:", color="orange")
    elif source == "local":
        target.badge("Local bar library", icon=":material/folder:", color="blue")
    elif is_offline():
        target.badge("Offline · local bars, else demo", icon=":material/cloud_off:",
                     color="orange")
    elif status.state == "unreachable":
        target.badge("Yahoo unreachable · local bars, else demo", icon=":material/cloud_off:",
                     color="red")
    elif status.state == "reachable":
        target.badge("Yahoo Finance reachable", icon=":material/cloud_done:", color="green")
    else:
        target.badge("Yahoo Finance · not asked yet", icon=":material/cloud:", color="gray")
