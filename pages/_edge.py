"""The error edge of every page: a :class:`~swing_core.errors.SwingError` (bad input, settings,
data or database: something the user can act on) becomes an ``st.error`` with its message;
anything else is a bug: logged with its traceback, shown as a plain one-line message (never a
traceback in the UI). Streamlit's own control flow (rerun, stop, switch_page) passes through."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st
from streamlit.runtime.scriptrunner_utils.exceptions import ScriptControlException

from pages._text import plain
from swing_core.errors import SwingError

log = logging.getLogger("swingdesk.ui")


@contextmanager
def error_edge(what: str = "This page") -> Iterator[None]:
    """Run the body of a page (or a part of one, ``what`` naming it in messages) and turn its
    errors into an ``st.error``, never a traceback."""
    try:
        yield
    except ScriptControlException:
        raise
    except SwingError as exc:
        st.error(plain(exc))
    except Exception as exc:  # a bug: log it with its traceback, tell the user plainly
        log.exception("unexpected error in %s", what)
        st.error(f"{what} hit an unexpected error ({exc.__class__.__name__}). Reload the page; "
                 "if it persists, check the server log and report it.")
