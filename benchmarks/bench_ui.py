"""Dashboard speed with Streamlit's AppTest, offline on demo data: prints ONE JSON document.

Measured in one process, with the imports already warm (a server process imports once):

- ``first_render``: each page's first render with every Streamlit cache empty (``st.cache_data``
  and ``st.cache_resource`` cleared: engine, database, demo pattern library, frames all rebuilt)
  — target <= 2 s;
- ``widget_change``: one widget change on a page whose caches are warm (Explorer: the Fibonacci
  toggle and the lookback slider; Scanner: a side filter; Home: the interval, both intervals
  cached; Backtest Review: a trade filter) — target <= 300 ms;
- the naive baseline, measured in the same run: the same widget change with the caches cleared
  before each rerun (what every interaction would cost without ``st.cache_data`` /
  ``st.cache_resource``), and the ratio baseline / cached.

Run: ``python benchmarks/bench_ui.py`` (about a minute; the CPUs are shared, so run it once).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

os.environ["SWING_OFFLINE"] = "1"
os.environ["SWING_DATA_DIR"] = tempfile.mkdtemp(prefix="bench_ui_")
for _name in ("SWING_DATABASE_URL", "OPENAI_API_KEY"):
    os.environ.pop(_name, None)

import streamlit as st  # noqa: E402
from _util import emit, target  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

FIRST_RENDER_LIMIT_S = 2.0
WIDGET_LIMIT_S = 0.300
REPEATS_FIRST = 3
REPEATS_WIDGET = 5

PAGES = ["home", "explorer", "scanner", "pattern_search", "backtest_review", "journal", "data",
         "performance"]


def _clear() -> None:
    st.cache_data.clear()
    st.cache_resource.clear()


def _app() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)


def _check(at: AppTest, where: str) -> None:
    if at.exception:
        raise SystemExit(f"{where}: {[e.value for e in at.exception]}")
    bad = [e.value for e in at.error if "unexpected error" in e.value]
    if bad:
        raise SystemExit(f"{where}: {bad}")


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def first_render(page: str) -> list[float]:
    """Seconds of the page's first render with empty caches (the app already imported)."""
    samples = []
    for _ in range(REPEATS_FIRST):
        at = _app()
        _clear()
        if page == "home":
            samples.append(_timed(at.run))
        else:
            at.run()
            _clear()
            samples.append(_timed(lambda at=at: at.switch_page(f"pages/{page}.py").run()))
        _check(at, f"first render of {page}")
    return samples


def _explorer_fib(at: AppTest, i: int) -> None:
    at.toggle(key="show_fib").set_value(i % 2 == 1).run()


def _explorer_lookback(at: AppTest, i: int) -> None:
    at.select_slider(key="lookback").set_value("30" if i % 2 else "auto").run()


def _scanner_filter(at: AppTest, i: int) -> None:
    at.multiselect(key="f_side").set_value(["long"] if i % 2 else []).run()


def _home_interval(at: AppTest, i: int) -> None:
    at.selectbox(key="interval").set_value("1h" if i % 2 else "30m").run()


def _backtest_filter(at: AppTest, i: int) -> None:
    at.multiselect(key="bt_f_out").set_value(["win"] if i % 2 else []).run()


def _prepare(page: str) -> AppTest:
    at = _app()
    at.run()
    if page != "home":
        at.switch_page(f"pages/{page}.py").run()
    if page == "scanner":
        at.button(key="run_scan").click().run()
    if page == "backtest_review":
        at.text_input(key="bt_symbols").set_value("AAPL")
        at.selectbox(key="bt_interval").set_value("1d")
        at.button(key="FormSubmitter:bt_form-Run backtest").click().run()
    _check(at, f"prepare {page}")
    return at


WIDGETS: dict[str, tuple[str, Callable[[AppTest, int], None]]] = {
    "explorer_fibonacci_toggle": ("explorer", _explorer_fib),
    "explorer_lookback_slider": ("explorer", _explorer_lookback),
    "scanner_side_filter": ("scanner", _scanner_filter),
    "home_interval_switch": ("home", _home_interval),
    "backtest_trade_filter": ("backtest_review", _backtest_filter),
}


def widget_change(page: str, change: Callable[[AppTest, int], None], *, cached: bool
                  ) -> list[float]:
    """Seconds per widget change: with warm caches, or (baseline) caches cleared each time."""
    _clear()
    at = _prepare(page)
    for i in range(2):  # warm both widget states
        change(at, i)
    samples = []
    for i in range(REPEATS_WIDGET):
        if not cached:
            _clear()
        samples.append(_timed(lambda i=i: change(at, i)))
        _check(at, f"widget change on {page}")
    return samples


def _summary(samples: list[float]) -> dict[str, float]:
    return {"median_s": statistics.median(samples), "min_s": min(samples),
            "max_s": max(samples), "repeats": len(samples)}


def main() -> None:
    started = time.perf_counter()
    warm = _app()
    cold_process_s = _timed(warm.run)  # imports, component discovery: once per server process
    _check(warm, "warm-up")
    pages = [p for p in PAGES if (ROOT / "pages" / f"{p}.py").exists()]
    first = {page: _summary(first_render(page)) for page in pages}
    widgets: dict[str, Any] = {}
    for name, (page, change) in WIDGETS.items():
        cached = _summary(widget_change(page, change, cached=True))
        naive = _summary(widget_change(page, change, cached=False))
        widgets[name] = {
            "page": page,
            "cached": cached,
            "baseline_no_cache": naive,
            "speedup_vs_baseline": naive["median_s"] / cached["median_s"],
            "target": target(round(cached["median_s"], 4), WIDGET_LIMIT_S),
        }
    worst_first = max(v["median_s"] for v in first.values())
    worst_widget = max(v["cached"]["median_s"] for v in widgets.values())
    emit({
        "benchmark": "bench_ui",
        "tool": "streamlit.testing.v1.AppTest (in-process; includes AppTest's own overhead)",
        "data": "offline demo data (SWING_OFFLINE=1), fresh SQLite file",
        "first_render": {page: {**v, "target": target(round(v["median_s"], 3),
                                                      FIRST_RENDER_LIMIT_S)}
                         for page, v in first.items()},
        "widget_change": widgets,
        "info": {
            "home_first_render_in_a_fresh_process_s": cold_process_s,
            "note": "first_render keeps the imports warm (a running server has them); the fresh"
                    "-process figure adds importing pandas/plotly/sqlalchemy/swing_core and "
                    "AppTest's component discovery. Scanner, Backtest Review, Journal and Data "
                    "render an empty state first (no bars are loaded until asked).",
        },
        "targets": {
            "first_render_any_page_s": target(round(worst_first, 3), FIRST_RENDER_LIMIT_S),
            "widget_change_warm_cache_s": target(round(worst_widget, 4), WIDGET_LIMIT_S),
        },
        "total_runtime_s": time.perf_counter() - started,
        "load_average": os.getloadavg(),
    })


if __name__ == "__main__":
    main()
