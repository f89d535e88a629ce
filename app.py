"""SwingDesk: the entry point and router (``streamlit run app.py``).

Builds ``st.navigation`` with grouped sections over the page list in ``pages/_nav.py`` (page
files are not auto-discovered), the shared sidebar controls (symbol, interval and "Bars from",
bound to the URL) and the data-mode badge. Each page file does one job; ``pages/_shared.py``
lists what they share.
"""

from __future__ import annotations

import streamlit as st

from pages import _auth, _banners, _monitoring, _nav, _state
from swing_core.config import get_settings
from swing_core.errors import ConfigError

st.set_page_config(page_title="SwingDesk", page_icon=":material/candlestick_chart:",
                   layout="wide", initial_sidebar_state="expanded")

try:  # settings are read once, here: a bad value is one clear message, never a traceback
    get_settings()
    admitted = _auth.admitted()  # sign-in off, or a signed-in user
except ConfigError as exc:
    st.error(f"SwingDesk cannot start with this configuration: {exc} Fix or unset the "
             "variable (see README, Configuration) and reload the page.", icon=":material/settings:")
    st.stop()

page = _nav.navigation(hidden=not admitted)
if not admitted:  # sign-in configured: the sign-in screen and nothing else
    _auth.sign_in_screen()
    st.stop()
_nav.follow_switch()
st.sidebar.title("SwingDesk")
badge = st.sidebar.empty()  # filled after the page ran: it tells what this run saw of Yahoo
_state.shared_controls()
st.sidebar.caption("1–2 day swing signals · not investment advice")
_auth.account_panel()  # who is signed in, and Sign out (sign-in configured only)
_monitoring.start()  # performance recorder, once per process (st.cache_resource)
try:
    page.run()
finally:
    _banners.status_badge(badge)
