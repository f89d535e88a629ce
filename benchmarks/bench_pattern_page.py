"""The Pattern Search page over a 100,000-vector stored library: prints ONE JSON document.

Seeds a fresh SQLite database (under a temporary ``SWING_DATA_DIR``) with 100,000 setup vectors
with known outcomes (the synthetic 30m library of ``bench_patterns.py``), then measures, in one
process:

- ``map``: the library map of one setup (:func:`swing_core.views.projection_view`): the first
  call (projects the library and keeps the projection with it) and a rerun (projects only the
  setup; hover text only for the <= 20,000 points drawn), against the naive baseline measured
  in the same run: what the page did before, a full SVD projection and a hover string built
  row by row for all 100,000 rows on every rerun;
- ``page``: the page in Streamlit's AppTest: first render with empty caches (loading the
  library included) and a rerun after moving the k slider (caches warm).

Targets (issue 17): rerun <= 0.3 s, first render <= 1 s.
Run: ``python benchmarks/bench_pattern_page.py [--n 100000] [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

os.environ["SWING_OFFLINE"] = "1"
os.environ["SWING_DATA_DIR"] = tempfile.mkdtemp(prefix="bench_pattern_page_")
for _name in ("SWING_DATABASE_URL", "OPENAI_API_KEY"):
    os.environ.pop(_name, None)

import numpy as np  # noqa: E402
import streamlit as st  # noqa: E402
from _util import emit, target  # noqa: E402
from bench_patterns import library  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from swing_core import db, views  # noqa: E402
from swing_core.views.formatting import bar_time_text  # noqa: E402


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _summary(samples: list[float]) -> dict[str, float]:
    return {"median_s": statistics.median(samples), "min_s": min(samples),
            "max_s": max(samples), "repeats": len(samples)}


def naive_map(lib: views.Library, vector: np.ndarray) -> list[str]:
    """The page before: an SVD of the whole library and a hover string per row, every rerun."""
    data = lib.matrix.astype(np.float64)
    centred = data - data.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    centred @ vt[:2].T
    (vector[None, :] - data.mean(axis=0)) @ vt[:2].T
    rows = lib.rows
    return [f"{s} {bar_time_text(t, iv)} {side} {setup} · {r:+.2f}R"
            for s, t, iv, side, setup, r in zip(rows["symbol"], rows["ts"], rows["interval"],
                                                rows["side"], rows["setup"], rows["realized_r"],
                                                strict=True)]


def measure_map(engine, repeats: int) -> dict:
    lib = views.stored_library(engine, "30m")
    vector = lib.matrix[len(lib.matrix) // 2].astype(np.float64)
    neighbors = lib.index.neighbors(vector, asof=None, symbol="S01", k=50).frame
    first = _timed(lambda: views.projection_view(lib, vector, neighbors))
    rerun = [_timed(lambda: views.projection_view(lib, vector, neighbors))
             for _ in range(repeats)]
    naive = [_timed(lambda: naive_map(lib, vector)) for _ in range(max(2, repeats // 2))]
    out = {"rows": len(lib), "first_call_s": first, "rerun": _summary(rerun),
           "naive_baseline_per_rerun": _summary(naive)}
    out["rerun_speedup_vs_naive"] = out["naive_baseline_per_rerun"]["median_s"] / \
        out["rerun"]["median_s"]
    return out


def measure_page(repeats: int) -> dict:
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    app.run()
    first = []
    for _ in range(max(2, repeats // 2)):
        st.cache_data.clear()
        st.cache_resource.clear()
        first.append(_timed(lambda: app.switch_page("pages/pattern_search.py").run()))
        if app.exception:
            raise SystemExit(f"Pattern Search raised: {[e.value for e in app.exception]}")
    reruns = []
    for i in range(repeats):
        reruns.append(_timed(lambda i=i: app.slider(key="ps_k").set_value(
            40 if i % 2 else 60).run()))
    return {"first_render": _summary(first), "rerun_k_slider": _summary(reruns),
            "drawn_caption": [c.value for c in app.caption if "drawn" in c.value][:1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    started = time.perf_counter()
    engine = db.get_engine()
    seed_s = _timed(lambda: db.upsert_vectors(engine, library(args.n, 7)))
    map_figures = measure_map(engine, args.repeats)
    page = measure_page(args.repeats)
    emit({
        "benchmark": "pattern_page",
        "library_vectors": args.n,
        "seed_database_s": seed_s,
        "map": map_figures,
        "page": page,
        "targets": {
            "page_rerun_s": target(round(page["rerun_k_slider"]["median_s"], 3), 0.3),
            "page_first_render_s": target(round(page["first_render"]["median_s"], 3), 1.0),
        },
        "total_runtime_s": time.perf_counter() - started,
        "load_average": os.getloadavg(),
    })


if __name__ == "__main__":
    main()
