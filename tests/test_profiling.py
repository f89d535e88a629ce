"""Profiling on demand (swing_core/perf/profiling.py, profile_tree.py, stack_sampler.py,
profile_store.py, cli_profile.py, the Performance page's Profile section): the top functions and
the call tree of a real demo run, the tree's arithmetic, the CLI, storage on SQLite and
PostgreSQL, and the page."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from apptest_support import assert_clean, demo_app, open_page, table_with

from swing_core.errors import SwingError
from swing_core.perf import profile_store, profiling
from swing_core.perf.profile_tree import call_tree

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def demo_profile() -> profiling.ProfileResult:
    """One demo analyze profiled in a subprocess, as the page does it."""
    return profiling.profile_operation("analyze", "AAPL", "1d", source="demo")


def _ancestors(tree: pd.DataFrame, node_id: str) -> list[str]:
    by_id = tree.set_index("id")
    names, parent = [], by_id.at[node_id, "parent"]
    while parent:
        names.append(by_id.at[parent, "function"])
        parent = by_id.at[parent, "parent"]
    return names


def test_a_demo_analyze_shows_the_signal_frame_among_its_top_functions(demo_profile) -> None:
    result = demo_profile
    assert result.kind == "analyze" and result.arguments["symbols"] == ["AAPL"]
    assert result.arguments["interval"] == "1d" and result.arguments["source"] == "demo"
    assert any(note.startswith("DEMO DATA") for note in result.notes)
    functions = result.functions
    assert 0 < len(functions) <= profiling.KEEP_FUNCTIONS
    assert functions["cumulative_s"].is_monotonic_decreasing
    assert (functions["own_s"] <= functions["cumulative_s"] + 1e-9).all()
    assert (functions["calls"] >= 1).all()
    # the profiled operation holds (nearly) all of the run; the work is below it
    assert functions["cumulative_share"].iloc[0] > 0.9
    frame = functions[functions["function"] == "build_signal_frame"]
    assert len(frame) == 1 and frame["location"].iloc[0].startswith("swing_core/frame.py:")
    assert frame["calls"].iloc[0] == 1  # one analyze builds one signal frame
    assert 0 < frame["cumulative_s"].iloc[0] < result.total_s
    assert "analyze" in set(result.top(10)["function"])


def test_the_call_tree_is_consistent_and_follows_real_call_paths(demo_profile) -> None:
    tree = demo_profile.tree
    assert 1 < len(tree) <= profiling.MAX_TREE_NODES
    assert (tree["parent"] == "").sum() == 1 and tree["id"].is_unique
    assert set(tree.loc[tree["parent"] != "", "parent"]) <= set(tree["id"])
    children = tree[tree["parent"] != ""].groupby("parent")["value_us"].sum()
    values = tree.set_index("id")["value_us"]
    assert (children <= values.reindex(children.index)).all()
    assert (tree["self_s"] >= 0).all() and (tree["share"] <= 1.0).all()
    # sampled stacks keep the path: the signal frame is built inside analysis(), under analyze()
    node = tree.loc[tree["function"] == "build_signal_frame", "id"]
    assert len(node) >= 1
    assert {"analysis", "analyze"} <= set(_ancestors(tree, node.iloc[0]))


def test_call_tree_of_known_stacks() -> None:
    a, b, c, d = (("f.py", i, name) for i, name in enumerate("abcd", start=1))
    samples = {(a, b, c): 5_000_000, (a, b): 1_000_000, (a, d): 3_000_000, (a,): 500_123}
    tree = call_tree(samples)
    by_name = tree.set_index("function")
    assert list(tree["function"]) == ["a", "b", "c", "d"]  # biggest first
    assert by_name.at["a", "value_us"] == 9_500 and by_name.at["b", "value_us"] == 6_000
    assert by_name.at["a", "self_s"] == pytest.approx(0.000500123)
    assert by_name.at["b", "self_s"] == pytest.approx(0.001)
    assert by_name.at["c", "parent"] == by_name.at["b", "id"]
    assert by_name.at["d", "share"] == pytest.approx(3 / 9.500123)
    # bounded best-first: the two biggest nodes, a connected tree
    assert list(call_tree(samples, max_nodes=2)["function"]) == ["a", "b"]
    # below min_share: left out (the parent's box keeps its width); own times unchanged
    small = call_tree(samples, min_share=0.55).set_index("function")
    assert list(small.index) == ["a", "b"]
    assert small.at["b", "self_s"] == pytest.approx(0.001)
    assert call_tree({}).empty


def test_profile_call_counts_calls_exactly() -> None:
    def leaf(n: int) -> int:
        total = 0
        for i in range(n):  # Python bytecode: long enough for the sampler to see it
            total += i
        return total

    def work() -> int:
        total = 0
        for _ in range(7):
            total += leaf(200_000)
        return total

    value, result = profiling.profile_call(work, kind="analyze", arguments={"symbols": ["X"]})
    assert value == 7 * sum(range(200_000))
    row = result.functions[result.functions["function"].str.endswith("leaf")]
    assert row["calls"].tolist() == [7]
    assert result.tree["function"].iloc[0].endswith("work")
    assert result.tree["function"].iloc[1].endswith("leaf")
    with pytest.raises(profiling.ProfileError):
        profiling.profile_call(len, kind="analyze", arguments={})  # type: ignore[arg-type]


@pytest.mark.parametrize(("kind", "symbols", "interval", "expected"), [
    ("compile", ["AAPL"], "1d", "Cannot profile"),
    ("analyze", ["AAPL", "MSFT"], "1d", "analyze profiles one symbol"),
    ("scan", ["AAPL"], "2h", "Unknown interval"),
    ("scan", ["BAD SYMBOL!"], "1d", "not a valid ticker"),
    ("backtest", [" "], "1d", "No symbol given"),
])
def test_bad_requests_are_refused_before_any_process_starts(kind, symbols, interval,
                                                            expected) -> None:
    with pytest.raises(SwingError, match=expected):
        profiling.profile_operation(kind, symbols, interval, source="demo")


def test_a_run_past_its_time_limit_is_stopped() -> None:
    with pytest.raises(profiling.ProfileError, match="longer than"):
        profiling.profile_operation("scan", ["AAPL"], "1d", source="demo", timeout_s=0.05)


# --------------------------------------------------------------------------- command line


def _cli(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SWING_DATA_DIR": str(tmp_path), "SWING_OFFLINE": "1",
           "PYTHONPATH": str(ROOT)}
    env.pop("SWING_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "swing_core", "profile", *args],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=240)


def test_cli_prints_the_top_functions_table(tmp_path: Path) -> None:
    done = _cli("analyze", "AAPL", "--interval", "1d", "--source", "demo", "--top", "7",
                "--save", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("profile of analyze AAPL 1d (demo): ")
    assert lines[1].split() == ["function", "file:line", "calls", "own", "s", "cumulative", "s",
                                "cum", "%", "ms/call"]
    assert len(lines) == 2 + 7 + 1 and lines[-1].startswith("saved as profile 1")
    assert "DEMO DATA" in done.stderr


def test_cli_json_scan_and_backtest(tmp_path: Path) -> None:
    done = _cli("backtest", "AAPL", "MSFT", "--source", "demo", "--json", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    result = profiling.ProfileResult.from_payload(json.loads(done.stdout))
    assert result.kind == "backtest" and result.arguments["interval"] == "1d"
    assert "run_backtest" in set(result.functions["function"])
    done = _cli("scan", "AAPL", "MSFT", "--interval", "1d", "--source", "demo", "--top", "3",
                tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr and "scan" in done.stdout


@pytest.mark.parametrize(("args", "expected"), [
    (("analyze", "BAD SYMBOL!"), "is not a valid ticker"),
    (("analyze", "AAPL", "MSFT"), "analyze profiles one symbol"),
    (("backtest", "AAPL", "--lookback-days", "5"), "--lookback-days applies to analyze"),
    (("analyze", "AAPL", "--top", "0"), "must be a whole number"),
])
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path: Path, args, expected) -> None:
    done = _cli(*args, "--source", "demo", tmp_path=tmp_path)
    assert done.returncode == 2
    assert expected in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""


# --------------------------------------------------------------------------- storage


def test_saved_profiles_round_trip_and_only_the_newest_are_kept(
        db_engine: sa.Engine, demo_profile, monkeypatch: pytest.MonkeyPatch) -> None:
    first = profile_store.save_profile(db_engine, demo_profile)
    loaded = profile_store.load_profile(db_engine, first)
    assert loaded.profile_id == first and loaded.kind == demo_profile.kind
    assert loaded.arguments == demo_profile.arguments and loaded.notes == demo_profile.notes
    assert loaded.total_s == demo_profile.total_s
    assert loaded.created_at == demo_profile.created_at and loaded.created_at.tzinfo
    pd.testing.assert_frame_equal(loaded.functions, demo_profile.functions)
    pd.testing.assert_frame_equal(loaded.tree, demo_profile.tree)
    listed = profile_store.list_profiles(db_engine)
    assert listed[["id", "kind", "symbols", "interval", "source"]].values.tolist() == [
        [first, "analyze", "AAPL", "1d", "demo"]]
    monkeypatch.setattr(profile_store, "KEEP_PROFILES", 2)
    second = profile_store.save_profile(db_engine, demo_profile)
    third = profile_store.save_profile(db_engine, demo_profile)
    assert profile_store.list_profiles(db_engine)["id"].tolist() == [third, second]
    with pytest.raises(profiling.ProfileError, match=f"no saved profile {first}"):
        profile_store.load_profile(db_engine, first)


# --------------------------------------------------------------------------- the page


def test_the_performance_page_profiles_a_demo_analyze(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    at = demo_app(monkeypatch, tmp_path, watchlist=["AAPL"], timeout=240)
    open_page(at, "pages/performance.py")
    assert_clean(at)
    assert any("No saved profiles yet" in i.value for i in at.info)
    at.selectbox(key="perf_profile_kind").set_value("analyze")
    at.text_input(key="perf_profile_symbols").set_value("msft")
    at.selectbox(key="perf_profile_interval").set_value("1d")
    at.button(key="perf_profile_run").click().run()
    assert_clean(at)
    table = table_with(at, "function", "location", "calls", "cumulative_s")
    assert {"analyze", "analysis"} <= set(table["function"])  # what was run, at the top
    assert len(table) == profiling.DEFAULT_TOP
    icicles = [c for c in at.get("plotly_chart")
               if '"type":"icicle"' in c.proto.spec.replace(" ", "")]
    assert len(icicles) == 1
    choice = at.selectbox(key="perf_profile_choice")
    assert choice.value == 1 and "analyze MSFT 1d" in choice.format_func(choice.value)
    # a bad symbol: one message, nothing saved
    at.text_input(key="perf_profile_symbols").set_value("BAD SYMBOL!").run()
    at.button(key="perf_profile_run").click().run()
    assert at.error and "not a valid ticker" in at.error[0].value
    assert len(at.selectbox(key="perf_profile_choice").options) == 1
