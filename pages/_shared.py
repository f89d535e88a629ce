"""What every page shares: cached engine resources, cached engine calls, the shared symbol /
interval state (bound to the URL), status banners and the error edge.

Streamlit lives here and in the page files only; the engine (``swing_core``) never imports it.
Caching:

- ``st.cache_resource``: the database engine (migrated once), the services (prior provider),
  keyed by the database URL so a different ``SWING_DATABASE_URL`` / ``SWING_DATA_DIR`` never
  reuses another database's engine;
- ``st.cache_data``: signal views and other frames, with a time-to-live by interval (a 15m chart
  goes stale sooner than a daily one), keyed by the database URL and the offline flag too.
"""

from __future__ import annotations

import logging
import re
import runpy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import streamlit as st
from streamlit.runtime.scriptrunner_utils.exceptions import ScriptControlException

from swing_core import market, views
from swing_core.config import INTERVALS, StrategyParams, get_settings
from swing_core.errors import DatabaseError, MarketDataError, SwingError

log = logging.getLogger("swingdesk.ui")

T = TypeVar("T")

DEFAULT_SYMBOL = "AAPL"
DEFAULT_INTERVAL = "30m"
SYMBOL_PATTERN = r"^\s*[A-Za-z0-9.\-^=]{1,15}\s*$"

#: How long a cached view stays fresh, by interval (seconds).
TTL_S: dict[str, int] = {"15m": 5 * 60, "30m": 10 * 60, "1h": 20 * 60, "1d": 6 * 3600}

#: Page files, for links and switches (the navigation itself is built in app.py).
PAGE_FILES: dict[str, str] = {
    "home": "pages/home.py",
    "explorer": "pages/explorer.py",
    "scanner": "pages/scanner.py",
    "patterns": "pages/pattern_search.py",
    "backtest": "pages/backtest_review.py",
    "journal": "pages/journal.py",
    "data": "pages/data.py",
    "performance": "pages/performance.py",
}


_ROOT = Path(__file__).resolve().parent.parent


def page_exists(key: str) -> bool:
    """Whether the page file of ``key`` exists (app.py registers only existing pages)."""
    return key in PAGE_FILES and (_ROOT / PAGE_FILES[key]).is_file()


def require_router() -> None:
    """Call first in every page file: make sure the page runs inside app.py (sidebar, shared
    state, navigation).

    Streamlit treats a folder named ``pages`` next to the entry point as a v1 multipage app until
    ``st.navigation`` has run in the process: a session whose first request is a sub-page URL
    (and every AppTest run after the first) would run the page file alone. Then run app.py here,
    in this same script run (widget values and clicks are kept), and stop the bare run.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if not PagesManager.uses_pages_directory:
        return
    PagesManager.uses_pages_directory = False
    runpy.run_path(str(_ROOT / "app.py"), run_name="__main__")
    st.stop()


# --------------------------------------------------------------------------- text safety


#: Markdown / Streamlit-directive characters that could format or link user text: escaping them
#: (and "[" in particular, which every link, image and colour directive needs) keeps it plain.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>~$|#])")


def plain(text: Any) -> str:
    """``text`` with Markdown specials escaped, for messages that may contain user input (they
    are rendered by st.error / st.caption, which interpret Markdown; raw HTML never is)."""
    return _MD_SPECIAL.sub(r"\\\1", str(text))


# --------------------------------------------------------------------------- settings, keys


def db_key() -> str:
    """Identifies the database and data mode for cache keys (never shown: may hold a password)."""
    settings = get_settings()
    return f"{settings.effective_database_url}|offline={settings.offline}"


def is_offline() -> bool:
    return get_settings().offline


# --------------------------------------------------------------------------- services


@dataclass
class Services:
    """The engine resources a page may use. ``engine`` is None when the database is unusable
    (``error`` says why); the pages still work on fetched/demo data without it."""

    engine: Any = None
    prior_provider: Callable[..., dict[str, Any]] | None = None
    pattern_index: Any = None
    database: str = ""
    error: str | None = None
    notes: list[str] = field(default_factory=list)


@st.cache_resource(show_spinner=False)
def _database(key: str) -> tuple[Any, str, str | None]:
    from swing_core import db

    description = db.describe_database()
    try:
        engine = db.get_engine()
        db.init_db(engine)
    except DatabaseError as exc:
        return None, description, str(exc)
    return engine, description, None


@st.cache_resource(show_spinner=False)
def _services(key: str, interval: str) -> Services:
    engine, description, error = _database(key)
    services = Services(engine=engine, database=description, error=error)
    if engine is None:
        return services
    try:
        from swing_core.services import open_services

        opened = open_services(use_priors=True, interval=interval)
    except SwingError as exc:
        services.notes.append(f"Pattern priors unavailable: {exc}")
        return services
    except ImportError as exc:  # an engine without the pattern layer: signals without priors
        services.notes.append(f"Pattern priors unavailable in this installation ({exc.name}).")
        return services
    services.engine = getattr(opened, "engine", None) or engine
    services.prior_provider = getattr(opened, "prior_provider", None)
    services.pattern_index = getattr(opened, "pattern_index", None)
    services.notes.extend(getattr(opened, "notes", None) or [])
    if get_settings().offline and (services.pattern_index is None
                                   or len(services.pattern_index) == 0):
        _use_demo_priors(services, interval)
    return services


def _use_demo_priors(services: Services, interval: str) -> None:
    """Offline with an empty stored library: price demo signals with the in-memory DEMO library
    (built from demo bars, never stored), and say so."""
    try:
        from swing_core.priors import PriorProvider

        library = _demo_library(interval)
    except (ImportError, SwingError) as exc:
        services.notes.append(f"No demo pattern library ({exc}).")
        return
    services.prior_provider = PriorProvider(library.index)
    services.notes.append(library.note)


@st.cache_resource(show_spinner=False)
def _demo_library(interval: str) -> views.Library:
    return views.demo_library(views.DEFAULT_WATCHLIST, interval)


@st.cache_resource(show_spinner=False)
def _library(key: str, interval: str) -> views.Library | None:
    svc = _services(key, interval)
    if svc.engine is not None:
        stored = views.stored_library(svc.engine, interval, index=svc.pattern_index)
        if len(stored) or not get_settings().offline:
            return stored
    if get_settings().offline:
        return _demo_library(interval)
    return None


def library(interval: str) -> views.Library | None:
    """The setup library for ``interval``: the stored one, or offline with nothing stored the
    in-memory DEMO library; None when there is no database (online)."""
    return _library(db_key(), interval)


def reload_library() -> None:
    """Reload the stored library and the services' index (after new outcomes were stored)."""
    _library.clear()
    _services.clear()
    st.cache_data.clear()


def services(interval: str | None = None) -> Services:
    """The cached services for ``interval`` (the shared interval by default)."""
    return _services(db_key(), interval or current_interval())


def database_engine() -> Any:
    """The cached database engine, or None (the reason is shown by :func:`database_banner`)."""
    return _database(db_key())[0]


def database_banner() -> bool:
    """Show an st.error naming the database when it is unusable; True when it is usable."""
    engine, description, error = _database(db_key())
    if engine is None:
        st.error(f"Database unavailable ({plain(description)}): {plain(error)}  \nCheck "
                 "`SWING_DATABASE_URL` / `SWING_DATA_DIR`; pages that need storage are limited "
                 "until it is reachable.")
        return False
    return True


def clear_caches(*, services: bool = False) -> None:
    """Forget every cached frame (after uploads, cache clears, evaluations); with ``services``
    also the pattern index (rebuilt from the stored vectors on next use)."""
    st.cache_data.clear()
    if services:
        _services.clear()


# --------------------------------------------------------------------------- shared state


def _valid_symbol(text: Any) -> str | None:
    try:
        return views.parse_symbols([str(text)], limit=1)[0][0]
    except (IndexError, SwingError):
        return None


def current_symbol() -> str:
    """The shared symbol (sidebar, bound to ``?symbol=``), validated; the default when invalid."""
    return _valid_symbol(st.session_state.get("symbol") or DEFAULT_SYMBOL) or DEFAULT_SYMBOL


def current_source() -> str:
    """Where bars come from (sidebar "Bars from", bound to ``?source=``): "auto", "yahoo",
    "local" or "demo". Every page passes it to the engine."""
    value = st.session_state.get("source") or "auto"
    return value if value in market.SOURCES else "auto"


def _source_control() -> None:
    """The sidebar's "Bars from", kept in ``?source=`` by hand rather than with ``bind``: a bound
    selectbox keeps its display label in the URL and drops plain values such as
    ``source=local``. A link or bookmark (a URL value this session did not write) wins over the
    widget; older spellings (``cache``) are accepted; an unknown value falls back to automatic
    with a visible note."""
    raw = st.query_params.get("source")
    if raw is not None and raw != st.session_state.get("_source_in_url"):
        try:
            st.session_state["source"] = market.check_source(raw)
        except MarketDataError:
            st.sidebar.warning(f"Unknown source {plain(str(raw)[:20])} in the link; using "
                               "automatic.")
            st.session_state["source"] = "auto"
    if st.session_state.get("source") not in market.SOURCES:
        st.session_state["source"] = "auto"
    st.selectbox("Bars from", market.SOURCES, key="source",
                 format_func=market.SOURCE_LABELS.get,
                 help="Where every page gets its bars: Yahoo Finance, your local bar library "
                      "(files imported on the Data page and earlier fetches), or demo data. "
                      "Automatic tries them in that order.")
    value = st.session_state["source"]
    if raw != value:
        st.query_params["source"] = value
    st.session_state["_source_in_url"] = value


def current_interval() -> str:
    value = st.session_state.get("interval") or DEFAULT_INTERVAL
    return value if value in INTERVALS else DEFAULT_INTERVAL


def _follow_links() -> None:
    """A link opened in this session (``st.page_link`` with ``query_params``, e.g. the Data page's
    "Open GOOG 1d in the Signal Explorer") changes the URL, but bound widgets keep their session
    values: adopt a URL value of the symbol or interval that this session has not seen yet."""
    seen = st.session_state.setdefault("_url_seen", {})
    for key, accept in (("symbol", _valid_symbol),
                        ("interval", lambda v: v if v in INTERVALS else None)):
        raw = st.query_params.get(key)
        if raw is not None and raw != seen.get(key):
            value = accept(raw)
            if value is not None and st.session_state.get(key) != value:
                st.session_state[key] = value
        seen[key] = raw


def shared_controls() -> None:
    """The sidebar's symbol and interval, bound to the URL (``?symbol=…&interval=…``) so a view
    can be bookmarked and shared; their values persist across pages."""
    st.session_state.setdefault("symbol", DEFAULT_SYMBOL)
    _follow_links()
    with st.sidebar:
        st.text_input(
            "Symbol", key="symbol", max_chars=15, bind="query-params",
            validate=(SYMBOL_PATTERN, "Use a ticker: letters, digits and . - ^ = (e.g. AAPL)."),
            help="Any Yahoo Finance ticker, e.g. AAPL, BRK-B, ^GSPC, EURUSD=X, BTC-USD.",
        )
        st.selectbox("Interval", INTERVALS, index=INTERVALS.index(DEFAULT_INTERVAL),
                     key="interval", bind="query-params",
                     help="Bar length. Yahoo keeps about 60 days of 15m/30m bars and 730 days "
                          "of 1h bars.")
        raw = st.session_state.get("symbol")
        if raw and _valid_symbol(raw) is None:
            st.error(f"{plain(str(raw)[:40])} is not a valid ticker; showing "
                     f"{current_symbol()}.")
        _source_control()


def selected_rows(key: str) -> list[int]:
    """Row positions selected in the ``st.dataframe`` with ``key`` (empty when none)."""
    state = st.session_state.get(key)
    if state is None:
        return []
    selection = state.get("selection") if isinstance(state, dict) else getattr(state, "selection",
                                                                              None)
    if selection is None:
        return []
    rows = selection.get("rows") if isinstance(selection, dict) else getattr(selection, "rows", [])
    return [int(r) for r in rows or []]


def request_switch(page: str, **state: Any) -> None:
    """For widget callbacks: set shared state (e.g. symbol) and ask the app to open ``page``
    (a key of :data:`PAGE_FILES`) on this rerun."""
    for key, value in state.items():
        st.session_state[key] = value
    st.session_state["_switch_to"] = page


def follow_switch() -> None:
    """Open the page requested by :func:`request_switch`, if any (called by app.py)."""
    page = st.session_state.pop("_switch_to", None)
    if page in PAGE_FILES:
        st.switch_page(PAGE_FILES[page])


# --------------------------------------------------------------------------- banners


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


# --------------------------------------------------------------------------- the error edge


@contextmanager
def error_edge(what: str = "This page") -> Iterator[None]:
    """Turn engine errors into an st.error with what to do, never a traceback. Streamlit's own
    control flow (rerun, stop, switch_page) passes through."""
    try:
        yield
    except ScriptControlException:
        raise
    except SwingError as exc:
        st.error(plain(exc))
    except ValueError as exc:  # invalid parameters or settings
        st.error(f"{what} could not run: {plain(exc)}")
    except Exception as exc:  # the last line of defence: log it, tell the user plainly
        log.exception("unexpected error in %s", what)
        st.error(f"{what} hit an unexpected error ({exc.__class__.__name__}). Reload the page; "
                 "if it persists, check the server log.")


# --------------------------------------------------------------------------- cached engine calls


def _analysis_uncached(symbol: str, interval: str, lookback_days: int | None, source: str,
                       key: str) -> Any:
    from swing_core import agent

    svc = _services(key, interval)
    return agent.analysis(symbol, interval, lookback_days=lookback_days, params=StrategyParams(),
                          engine=svc.engine, prior_provider=svc.prior_provider, source=source)


def _per_interval_cache(fn: Callable[..., T], name: str) -> dict[str, Callable[..., T]]:
    """One ``st.cache_data`` wrapper of ``fn`` per interval, each with that interval's TTL
    (Streamlit keys a cache by the function's qualified name, so each gets its own)."""
    cached: dict[str, Callable[..., T]] = {}
    for interval in INTERVALS:
        def call(*args: Any, _fn: Callable[..., T] = fn, **kwargs: Any) -> T:
            return _fn(*args, **kwargs)

        call.__qualname__ = call.__name__ = f"{name}_{interval.replace('m', 'min')}"
        cached[interval] = st.cache_data(ttl=TTL_S[interval], max_entries=64,
                                         show_spinner=False)(call)
    return cached


_ANALYSES = _per_interval_cache(_analysis_uncached, "analysis")


def signal_view(symbol: str, interval: str, lookback_days: int | None = None,
                source: str | None = None) -> views.SignalView:
    """The cached :class:`~swing_core.agent.Analysis` (frame + signal + notes) of ``symbol`` on
    ``interval``, from ``source`` (default: the sidebar's "Bars from")."""
    if interval not in INTERVALS:
        raise MarketDataError(f"Unknown interval {interval!r}: choose one of {', '.join(INTERVALS)}.")
    return _ANALYSES[interval](symbol, interval, lookback_days, source or current_source(),
                               db_key())


def signal_views(symbols: list[str], interval: str, lookback_days: int | None = None, *,
                 progress: Callable[[int, int, str], None] | None = None
                 ) -> dict[str, views.SignalView | str]:
    """Cached views of several symbols (a failing symbol maps to its error message), calling
    ``progress(done, total, symbol)`` after each."""
    out: dict[str, views.SignalView | str] = {}
    for done, symbol in enumerate(symbols, start=1):
        try:
            out[symbol] = signal_view(symbol, interval, lookback_days)
        except (SwingError, ValueError) as exc:
            out[symbol] = str(exc)
        if progress is not None:
            progress(done, len(symbols), symbol)
    return out


def scan(symbols: list[str], interval: str, lookback_days: int | None = None, *,
         progress: Callable[[int, int, str], None] | None = None) -> list[Any]:
    """Scan ``symbols`` through the cached per-symbol views (so the Explorer opens warm): one
    ``agent.ScanResult`` per symbol, a failing symbol's error kept, ``progress`` after each."""
    from swing_core.agent import ScanResult

    found = signal_views(symbols, interval, lookback_days, progress=progress)
    return [ScanResult(symbol=s, signal=v.signal) if isinstance(v, views.SignalView)
            else ScanResult(symbol=s, signal=None, error=v) for s, v in found.items()]


def _chart_bars_uncached(symbol: str, interval: str, start: str | None, source: str,
                         key: str) -> Any:
    from swing_core.backtest import BacktestConfig, gather_bars

    config = BacktestConfig(interval=interval, start=start)
    bars, errors = gather_bars([symbol], config, engine=_database(key)[0], source=source)
    if symbol not in bars:
        raise MarketDataError(errors.get(symbol) or f"No bars for {symbol} {interval}.")
    return bars[symbol]


_CHART_BARS = _per_interval_cache(_chart_bars_uncached, "chart_bars")


def chart_bars(symbol: str, interval: str, start: Any = None, source: str | None = None) -> Any:
    """Cached bars of ``symbol`` from ``start`` (minus warm-up) for drawing a backtest's trades,
    from ``source`` (default: the sidebar's "Bars from")."""
    start_text = None if start is None else str(start)
    return _CHART_BARS[interval](symbol, interval, start_text, source or current_source(),
                                 db_key())
