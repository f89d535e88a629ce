"""Pattern index: exact k-NN against a plain brute force, point-in-time, fallbacks, statistics,
updates and the database round trip."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swing_core import db
from swing_core.config import StrategyParams
from swing_core.errors import ConfigError
from swing_core.patterns import (
    NumpyVectorIndex,
    PatternIndex,
    PriorStats,
    SklearnVectorIndex,
    VectorIndex,
    blend_confidence,
    exact_topk,
    make_vector_index,
    neighbor_stats,
)
from swing_core.patterns.stats import _stat_arrays, shrunk_win_rate

VEC = [f"vec_{i:02d}" for i in range(16)]
T0 = pd.Timestamp("2025-03-03 14:30", tz="UTC")
SYMBOLS = ["AAPL", "MSFT", "NVDA", "AMD"]


def setup_like_vectors(n: int, rng: np.random.Generator) -> np.ndarray:
    """Vectors shaped like the v1 layout: a few binary bits, small continuous values, 1."""
    trend = rng.integers(0, 3, n)
    cols = [rng.normal(0, 0.02, n), rng.uniform(0.2, 0.8, n), rng.lognormal(-4.8, 0.5, n),
            rng.integers(0, 2, n), rng.lognormal(-4.6, 0.5, n), rng.normal(0, 0.002, n),
            rng.uniform(0, 1, n), rng.integers(0, 2, n), rng.uniform(0, 1.2, n),
            trend == 0, trend == 1, trend == 2, rng.integers(0, 2, n), rng.integers(0, 2, n),
            np.where(rng.random(n) < 0.3, rng.uniform(0.4, 0.9, n), 0.0), np.ones(n)]
    x = np.column_stack(cols).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def library(n: int, seed: int = 0, *, symbols: list[str] = SYMBOLS) -> pd.DataFrame:
    """Rows with unique (symbol, ts), outcomes known 1-60 bars later."""
    rng = np.random.default_rng(seed)
    ts = T0 + pd.to_timedelta(np.sort(rng.choice(200_000, n, replace=False)) * 30, unit="min")
    frame = pd.DataFrame({
        "symbol": rng.choice(symbols, n), "interval": "30m", "ts": ts,
        "exit_ts": ts + pd.to_timedelta(rng.integers(1, 60, n) * 30, unit="min"),
        "realized_r": np.round(rng.normal(0.1, 1.2, n), 3),
        "hold_bars": rng.integers(1, 27, n),
        "exit_reason": rng.choice(["STOP", "TARGET", "TIME"], n),
        "setup": rng.choice(["gp_pullback", "momentum", "mean_reversion"], n),
        "side": rng.choice(["long", "short"], n),
        "vol_regime": rng.choice(["L", "M", "H"], n),
    })
    frame[VEC] = setup_like_vectors(n, rng)
    return frame


def brute_force(lib: pd.DataFrame, q: np.ndarray, *, k: int, asof: pd.Timestamp | None = None,
                **filters: str) -> list[tuple[float, str, pd.Timestamp]]:
    """The k most similar rows by cosine, written plainly: a loop over every row."""
    q = np.asarray(q, float)
    q = q / np.linalg.norm(q)
    found = []
    for row in lib.itertuples(index=False):
        if asof is not None and row.exit_ts > asof:
            continue
        if any(getattr(row, name) != value for name, value in filters.items()):
            continue
        v = np.array([getattr(row, c) for c in VEC], dtype=np.float32).astype(float)
        found.append((float(v @ q / np.linalg.norm(v)), row.symbol, row.ts))
    found.sort(key=lambda t: -t[0])
    return found[:k]


def assert_same_neighbours(got: pd.DataFrame, want: list[tuple[float, str, pd.Timestamp]]
                           ) -> None:
    """Equal similarities; equal rows apart from ties at the k-th similarity."""
    assert len(got) == len(want)
    np.testing.assert_allclose(got["similarity"].to_numpy(), [w[0] for w in want], atol=1e-9)
    if not want:
        return
    kth = want[-1][0]
    clear = {(s, t) for sim, s, t in want if sim > kth + 1e-9}
    mine = {(s, t) for sim, s, t in zip(got["similarity"], got["symbol"], got["ts"],
                                        strict=True) if sim > kth + 1e-9}
    assert mine == clear


def assert_stats_close(got: PriorStats, want: PriorStats) -> None:
    """Same counts and labels; statistics equal up to float summation order."""
    assert (got.n, got.scope, got.regime_filtered, got.exit_reasons) == \
        (want.n, want.scope, want.regime_filtered, want.exit_reasons)
    for name in ("win_rate", "avg_r", "avg_win_r", "avg_loss_r", "profit_factor", "expected_r",
                 "median_hold_bars", "median_hold_bars_wins", "median_hold_bars_losses",
                 "median_hold_days"):
        np.testing.assert_allclose(getattr(got, name), getattr(want, name), rtol=1e-9,
                                   err_msg=name)


@pytest.fixture(scope="module")
def lib() -> pd.DataFrame:
    return library(1500, seed=1)


@pytest.fixture(scope="module", params=["sklearn", "numpy"])
def index(request: pytest.FixtureRequest, lib: pd.DataFrame) -> PatternIndex:
    return PatternIndex.from_frame(lib, backend=request.param)


# --------------------------------------------------------------------------- the kernel


def _kernel_reference(queries: np.ndarray, matrix: np.ndarray, limits: np.ndarray, k: int
                      ) -> list[np.ndarray]:
    """Row order by float64 cosine (ties: lower row first), one query at a time."""
    out = []
    for q, limit in zip(queries.astype(float), limits, strict=True):
        rows = matrix[:limit].astype(float)
        sims = rows @ q / (np.linalg.norm(rows, axis=1) * np.linalg.norm(q))
        out.append(np.lexsort((np.arange(limit), -sims))[:k])
    return out


@pytest.mark.parametrize("m,n", [(40, 3000), (300, 20_000)])  # all-at-once and chunked paths
def test_exact_topk_equals_brute_force_with_prefixes_and_duplicates(m: int, n: int) -> None:
    rng = np.random.default_rng(m)
    matrix = setup_like_vectors(n, rng)
    matrix[50:70] = matrix[7]  # exact duplicates: ties broken by row
    queries = setup_like_vectors(m, rng)
    queries[0] = matrix[7]
    limits = rng.integers(0, n + 1, m)
    limits[:3] = [0, 5, n]
    sims, rows = exact_topk(queries, matrix, 60, limits=limits)
    for i, want in enumerate(_kernel_reference(queries, matrix, limits, 60)):
        got = rows[i][rows[i] >= 0]
        np.testing.assert_array_equal(got, want)
        assert np.isneginf(sims[i][len(want):]).all()


@settings(max_examples=30, deadline=None)
@given(n=st.integers(0, 60), m=st.integers(1, 5), k=st.integers(1, 12),
       seed=st.integers(0, 2**16))
def test_exact_topk_property(n: int, m: int, k: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    matrix = setup_like_vectors(n, rng) if n else np.empty((0, 16), np.float32)
    coarse = np.round(matrix[: n // 3], 1) + np.eye(16, dtype=np.float32)[15]
    matrix[: n // 3] = coarse / np.linalg.norm(coarse, axis=1, keepdims=True)  # many exact ties
    queries = setup_like_vectors(m, rng)
    limits = rng.integers(0, n + 1, m)
    _, rows = exact_topk(queries, matrix, k, limits=limits)
    for i, want in enumerate(_kernel_reference(queries, matrix, limits, k)):
        np.testing.assert_array_equal(rows[i][rows[i] >= 0], want)


@pytest.mark.parametrize("backend", [SklearnVectorIndex, NumpyVectorIndex])
def test_backends_answer_batches_exactly(backend: type) -> None:
    rng = np.random.default_rng(3)
    matrix = setup_like_vectors(4000, rng)
    index = backend()
    assert isinstance(index, VectorIndex)
    index.build(matrix[:3000])
    index.add(matrix[3000:])
    queries = setup_like_vectors(300, rng)  # >= SklearnVectorIndex.min_batch: NearestNeighbors
    sims, rows = index.search(queries, 50)
    for i, want in enumerate(_kernel_reference(queries, matrix, np.full(300, 4000), 50)):
        np.testing.assert_array_equal(rows[i], want)
    assert (np.diff(sims, axis=1) <= 0).all()
    assert index.nbytes >= matrix.nbytes and len(index) == 4000
    if backend is SklearnVectorIndex:  # this batch was answered by NearestNeighbors
        assert index._model is not None
    _, rows = index.search(queries[:5], 10, limits=np.full(5, 100))
    assert (rows < 100).all()


def test_backend_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # default "auto": the numpy kernel for a small library (FAISS' flat index from
    # AUTO_FAISS_MIN_ROWS rows when faiss-cpu is installed)
    monkeypatch.delenv("SWING_PATTERN_BACKEND", raising=False)
    assert make_vector_index().name == "numpy"
    monkeypatch.setenv("SWING_PATTERN_BACKEND", "sklearn")
    assert make_vector_index().name == "sklearn"
    monkeypatch.setenv("SWING_PATTERN_BACKEND", "numpy")
    assert make_vector_index().name == "numpy"
    with pytest.raises(ConfigError, match=r"Unknown pattern backend 'faiss': choose one of "
                       r"sklearn, numpy, faiss-flat.* or auto \(SWING_PATTERN_BACKEND\)"):
        make_vector_index("faiss")


# --------------------------------------------------------------------------- search and filters


@pytest.mark.parametrize("filters", [
    {}, {"symbol": "AAPL"}, {"setup": "momentum"}, {"symbol": "MSFT", "setup": "gp_pullback"},
    {"interval": "30m"}, {"symbol": "NOPE"},
])
@pytest.mark.parametrize("asof", [None, T0 + pd.Timedelta(days=500), T0 + pd.Timedelta(days=5)])
def test_search_equals_brute_force_across_filters(index: PatternIndex, lib: pd.DataFrame,
                                                  filters: dict[str, str],
                                                  asof: pd.Timestamp | None) -> None:
    q = setup_like_vectors(3, np.random.default_rng(len(filters)))[2]
    got = index.search(q, k=25, asof=asof, **filters)
    assert_same_neighbours(got.frame, brute_force(lib, q, k=25, asof=asof, **filters))
    assert (got.frame["exit_ts"] <= (asof or pd.Timestamp.max.tz_localize("UTC"))).all()


def test_query_vector_is_normalized_like_the_library(index: PatternIndex, lib: pd.DataFrame
                                                     ) -> None:
    q = lib.loc[10, VEC].to_numpy(float) * 7.5
    got = index.search(q, k=1)
    assert got.frame.loc[0, "ts"] == lib.loc[10, "ts"]
    assert got.frame.loc[0, "similarity"] == pytest.approx(1.0, abs=1e-9)


# --------------------------------------------------------------------------- point in time


def test_planted_future_neighbour_is_invisible_until_its_outcome_is_known() -> None:
    lib = library(400, seed=5)
    q = setup_like_vectors(1, np.random.default_rng(9))[0]
    asof = T0 + pd.Timedelta(days=200)
    future = lib.iloc[[0]].copy()
    future[VEC] = q  # the perfect match ...
    future["ts"] = asof - pd.Timedelta(hours=1)  # ... signalled before the as-of time
    future["exit_ts"] = asof + pd.Timedelta(minutes=30)  # ... but resolved after it
    future["realized_r"] = 25.0  # and it would move the statistics a lot
    index = PatternIndex.from_frame(pd.concat([lib, future], ignore_index=True))
    clean = PatternIndex.from_frame(lib)

    before = index.neighbors(q, asof=asof, symbol=future["symbol"].iloc[0])
    assert future["ts"].iloc[0] not in set(before.frame["ts"])
    assert before.stats() == clean.neighbors(q, asof=asof, symbol=future["symbol"].iloc[0]).stats()
    # exactly at the exit bar's close the outcome is known (exit_ts <= asof)
    at_exit = index.neighbors(q, asof=future["exit_ts"].iloc[0], symbol=future["symbol"].iloc[0])
    assert at_exit.frame.loc[0, "ts"] == future["ts"].iloc[0]
    assert at_exit.frame.loc[0, "similarity"] == pytest.approx(1.0)
    assert at_exit.stats().avg_r > before.stats().avg_r
    # the batched query applies the same rule per row
    batch = index.query_many(np.vstack([q, q]), [asof, future["exit_ts"].iloc[0]],
                             future["symbol"].iloc[0])
    assert_stats_close(batch[0], before.stats())
    assert_stats_close(batch[1], at_exit.stats())


def test_planted_future_extra_row_in_batch() -> None:
    lib = library(300, seed=6)
    q = setup_like_vectors(1, np.random.default_rng(2))[0]
    index = PatternIndex.from_frame(lib)
    asof = T0 + pd.Timedelta(days=100)
    run_trade = lib.iloc[[0]].assign(symbol="RUN", ts=asof - pd.Timedelta(hours=2),
                                     exit_ts=asof + pd.Timedelta(hours=1), realized_r=9.0)
    run_trade[VEC] = q
    early = index.query_many(q, asof, "RUN", extra=run_trade)
    late = index.query_many(q, asof + pd.Timedelta(hours=1), "RUN", extra=run_trade)
    assert early.scope[0] == "all" and late.scope[0] == "symbol"  # its own history once known
    assert late.n[0] == 1 and late.avg_r[0] == 9.0


# --------------------------------------------------------------------------- fallbacks


def test_symbol_first_then_all_symbols() -> None:
    lib = library(600, seed=7)
    index = PatternIndex.from_frame(lib)
    q = setup_like_vectors(1, np.random.default_rng(4))[0]
    first_aapl = lib.loc[lib["symbol"] == "AAPL", "exit_ts"].min()

    own = index.neighbors(q, asof=None, symbol="AAPL", k=30)
    assert own.scope == "symbol" and set(own.frame["symbol"]) == {"AAPL"}
    assert_same_neighbours(own.frame, brute_force(lib, q, k=30, symbol="AAPL"))

    # before AAPL's first known outcome: every symbol
    early = index.neighbors(q, asof=first_aapl - pd.Timedelta(minutes=1), symbol="AAPL", k=30)
    assert early.scope == "all"
    assert_same_neighbours(early.frame, brute_force(lib, q, k=30,
                                                    asof=first_aapl - pd.Timedelta(minutes=1)))
    anyone = index.neighbors(q, asof=None, symbol=None, k=30)
    assert anyone.scope == "all"
    assert_same_neighbours(anyone.frame, brute_force(lib, q, k=30))
    unknown = index.neighbors(q, asof=None, symbol="TSLA", k=30)
    assert unknown.scope == "all" and len(unknown) == 30
    nothing = index.neighbors(q, asof=T0 - pd.Timedelta(days=1), symbol="AAPL")
    assert nothing.scope == "none" and len(nothing) == 0
    assert nothing.stats() == PriorStats(scope="none")


def test_regime_filter_with_fallback() -> None:
    lib = library(800, seed=8)
    index = PatternIndex.from_frame(lib)
    q = setup_like_vectors(1, np.random.default_rng(5))[0]
    params = StrategyParams(knn_k=40, min_regime_neighbors=10)
    raw = brute_force(lib, q, k=40, symbol="NVDA")
    regimes = {(s, t): r for s, t, r in zip(lib["symbol"], lib["ts"], lib["vol_regime"],
                                            strict=True)}
    in_h = [w for w in raw if regimes[(w[1], w[2])] == "H"]
    assert len(in_h) >= 10

    got = index.neighbors(q, asof=None, symbol="NVDA", vol_regime="H", params=params)
    assert got.regime_filtered and set(got.frame["vol_regime"]) == {"H"}
    assert_same_neighbours(got.frame, in_h)

    strict = StrategyParams(knn_k=40, min_regime_neighbors=len(in_h) + 1)  # too few remain
    loose = index.neighbors(q, asof=None, symbol="NVDA", vol_regime="H", params=strict)
    assert not loose.regime_filtered and len(loose) == 40
    assert_same_neighbours(loose.frame, raw)


def test_setup_filter_keeps_symbol_fallback() -> None:
    lib = library(500, seed=10)
    index = PatternIndex.from_frame(lib)
    q = setup_like_vectors(1, np.random.default_rng(6))[0]
    got = index.neighbors(q, asof=None, symbol="AMD", setup="mean_reversion", k=20)
    assert got.scope == "symbol"
    assert_same_neighbours(got.frame, brute_force(lib, q, k=20, symbol="AMD",
                                                  setup="mean_reversion"))
    no_amd_mr = PatternIndex.from_frame(lib[~((lib.symbol == "AMD")
                                              & (lib.setup == "mean_reversion"))])
    fallback = no_amd_mr.neighbors(q, asof=None, symbol="AMD", setup="mean_reversion", k=20)
    assert fallback.scope == "all" and set(fallback.frame["setup"]) == {"mean_reversion"}


# --------------------------------------------------------------------------- batches


@pytest.mark.parametrize("backend", ["sklearn", "numpy"])
def test_query_many_equals_single_queries_with_extra_rows(backend: str) -> None:
    lib = library(1200, seed=11)
    stored, run = lib.iloc[:900], lib.iloc[900:].assign(symbol="RUN")
    index = PatternIndex.from_frame(stored, backend=backend)
    combined = PatternIndex.from_frame(pd.concat([stored, run]), backend=backend)
    rng = np.random.default_rng(12)
    m = 300
    queries = setup_like_vectors(m, rng)
    asof = T0 + pd.to_timedelta(rng.integers(0, 4000, m) * 30, unit="min")
    symbols = rng.choice(["AAPL", "RUN", "ZZZ"], m)
    regimes = rng.choice(["L", "M", "H"], m)
    setups = rng.choice(["gp_pullback", "momentum"], m)
    params = StrategyParams(knn_k=30)
    batch = index.query_many(queries, asof, symbols, regimes, setups=setups, params=params,
                             extra=run)
    frame = batch.to_frame()
    assert len(frame) == m and {"n", "win_rate", "exit_STOP", "scope"} <= set(frame.columns)
    for i in range(0, m, 7):
        one = combined.priors(queries[i], asof=asof[i], symbol=symbols[i],
                              vol_regime=regimes[i], setup=setups[i], params=params)
        assert_stats_close(batch[i], one)


def test_query_many_validates_lengths(index: PatternIndex) -> None:
    q = setup_like_vectors(3, np.random.default_rng(0))
    with pytest.raises(ValueError, match="3 queries"):
        index.query_many(q, [T0, T0], "AAPL")
    with pytest.raises(ValueError, match="16 values"):
        index.query_many(q[:, :8], T0, "AAPL")


# --------------------------------------------------------------------------- statistics


def hand_made() -> pd.DataFrame:
    return pd.DataFrame({
        "realized_r": [2.0, -1.0, 1.5, -1.0, 0.0, 3.0],
        "hold_bars": [4, 10, 6, 26, 13, pd.NA],
        "exit_reason": ["TARGET", "STOP", "TARGET", "STOP", "TIME", "TARGET"],
        "interval": ["30m", "30m", "30m", "30m", "30m", "1h"],
    })


def test_statistics_on_a_hand_made_neighbour_set() -> None:
    s = neighbor_stats(hand_made(), scope="symbol", regime_filtered=True)
    assert s.n == 6
    assert s.win_rate == pytest.approx(3 / 6)  # 0.0 is not a win
    assert s.win_rate_unshrunk == pytest.approx(3 / 6)  # (3 + 2) / (6 + 4): 50 % stays 50 %
    assert s.avg_r == pytest.approx(4.5 / 6)
    assert s.avg_win_r == pytest.approx(6.5 / 3)
    assert s.avg_loss_r == pytest.approx(-2.0 / 3)  # losses: -1, -1, 0
    assert s.profit_factor == pytest.approx(6.5 / 2.0)
    assert s.expected_r == pytest.approx(0.5 * 6.5 / 3 + 0.5 * (-2.0 / 3))
    assert s.median_hold_bars == 10  # of 4, 10, 6, 26, 13
    assert s.median_hold_bars_wins == 5  # of 4, 6 (the third win has no hold)
    assert s.median_hold_bars_losses == 13  # of 10, 26, 13
    assert s.median_hold_days == pytest.approx(10 / 13)  # 30m: 13 bars a day
    assert s.exit_reasons == {"TARGET": 3, "STOP": 2, "TIME": 1}
    assert (s.scope, s.regime_filtered) == ("symbol", True)
    json.dumps(s.to_dict())


def test_statistics_edge_cases() -> None:
    wins_only = neighbor_stats(pd.DataFrame({"realized_r": [1.0, 2.0], "hold_bars": [3, 5],
                                             "exit_reason": ["TARGET"] * 2,
                                             "interval": ["1d"] * 2}))
    assert wins_only.profit_factor == np.inf and np.isnan(wins_only.avg_loss_r)
    # two wins of two are not a 100 % win rate: (2 + 2) / (2 + 4) with the Beta prior; expected
    # R weighs the (unknown-size, counted 0) loss side by the rest
    assert wins_only.win_rate_unshrunk == 1.0 and wins_only.win_rate == pytest.approx(4 / 6)
    assert wins_only.expected_r == pytest.approx(4 / 6 * 1.5) and wins_only.median_hold_days == 4
    empty = neighbor_stats(pd.DataFrame({"realized_r": [], "hold_bars": [], "exit_reason": []}))
    assert empty.n == 0 and empty.scope == "none" and empty.to_dict()["win_rate"] is None


def test_small_samples_never_say_0_or_100_percent() -> None:
    """The win rate is the Beta posterior mean (wins + 4·m) / (n + 4), m = 50 % by default,
    the same in the single and the batch paths; n goes with it."""
    assert shrunk_win_rate(3, 3) == pytest.approx(5 / 7)
    assert shrunk_win_rate(0, 3) == pytest.approx(2 / 7)
    assert shrunk_win_rate(45, 60) == pytest.approx(47 / 64)
    assert np.isnan(shrunk_win_rate(0, 0))  # no neighbours: no rate
    assert shrunk_win_rate(1, 1, base_rate=0.4) == pytest.approx(2.6 / 5)
    np.testing.assert_allclose(shrunk_win_rate([0, 5], [5, 5], base_rate=[0.5, 0.3]),
                               [2 / 9, 6.2 / 9])
    for wins, n in ((0, 1), (1, 1), (3, 3), (0, 5), (7, 60), (60, 60)):
        frame = pd.DataFrame({"realized_r": [1.0] * wins + [-1.0] * (n - wins),
                              "exit_reason": ["TARGET"] * wins + ["STOP"] * (n - wins)})
        s = neighbor_stats(frame)
        assert s.n == n and s.win_rate_unshrunk == pytest.approx(wins / n)
        assert s.win_rate == pytest.approx((wins + 2) / (n + 4)) and 0 < s.win_rate < 1
        assert s.to_dict()["n"] == n and "win_rate_unshrunk" in s.to_dict()
        r = frame["realized_r"].to_numpy(float)[None, :]
        keep = np.ones_like(r, bool)
        batch = _stat_arrays(r, np.full_like(r, np.nan), np.full_like(r, np.nan), keep)
        assert batch["n"][0] == n
        np.testing.assert_allclose(batch["win_rate"], [s.win_rate], rtol=1e-12)
        np.testing.assert_allclose(batch["win_rate_unshrunk"], [s.win_rate_unshrunk])
        np.testing.assert_allclose(batch["expected_r"], [s.expected_r], rtol=1e-12)


def test_stats_of_the_index_match_the_neighbour_frame(index: PatternIndex) -> None:
    q = setup_like_vectors(1, np.random.default_rng(13))[0]
    nb = index.neighbors(q, asof=T0 + pd.Timedelta(days=300), symbol="MSFT", vol_regime="L")
    frame_stats = neighbor_stats(nb.frame, scope=nb.scope, regime_filtered=nb.regime_filtered)
    assert nb.stats() == frame_stats
    assert index.priors(q, asof=T0 + pd.Timedelta(days=300), symbol="MSFT",
                        vol_regime="L") == frame_stats


def test_blend_confidence() -> None:
    stats = neighbor_stats(hand_made())
    assert blend_confidence(0.5, stats) == pytest.approx(0.6 * 0.5 + 0.4 * (0.5 + 0.75 / 4))
    assert blend_confidence(0.9, PriorStats(n=5, avg_r=4.0)) == pytest.approx(0.6 * 0.9 + 0.4)
    assert blend_confidence(0.2, PriorStats(n=5, avg_r=-9.0)) == pytest.approx(0.6 * 0.2)
    weighted = StrategyParams(prior_weight=0.25)
    assert blend_confidence(0.5, PriorStats(n=5, avg_r=2.0), params=weighted) == \
        pytest.approx(0.75 * 0.5 + 0.25 * 1.0)
    assert blend_confidence(0.7, PriorStats()) == 0.7  # no neighbours: no prior
    assert blend_confidence(1.4, None) == 1.0


def test_blend_confidence_of_a_batch_equals_one_query_at_a_time(index: PatternIndex) -> None:
    rng = np.random.default_rng(24)
    queries = setup_like_vectors(50, rng)
    minutes = rng.integers(0, 3000, 50) * 30
    minutes[:5] = 0  # nothing known yet: no prior
    asof = T0 + pd.to_timedelta(minutes, unit="min")
    batch = index.query_many(queries, asof, "AMD", "M")
    confidence = rng.uniform(-0.2, 1.2, 50)
    got = blend_confidence(confidence, batch)
    assert got.shape == (50,) and (batch.n[:5] == 0).all()
    for i in range(50):
        assert got[i] == blend_confidence(confidence[i], batch[i])


def test_fingerprint_identifies_the_searchable_rows() -> None:
    import pickle

    lib = library(300, seed=25)
    index = PatternIndex.from_frame(lib)
    assert index.fingerprint() == PatternIndex.from_frame(lib).fingerprint()
    assert pickle.loads(pickle.dumps(index)).fingerprint() == index.fingerprint()
    changed = PatternIndex.from_frame(lib.assign(realized_r=lib["realized_r"].where(
        lib.index != 7, 9.0)))
    assert changed.fingerprint() != index.fingerprint()
    assert PatternIndex.from_frame(lib.iloc[:299]).fingerprint() != index.fingerprint()


# --------------------------------------------------------------------------- neighbour records


def test_neighbour_records_carry_what_the_path_chart_needs() -> None:
    lib = library(200, seed=14)
    lib["entry"] = np.linspace(100, 120, 200)
    lib["stop"] = lib["entry"] - 2
    index = PatternIndex.from_frame(lib)
    nb = index.neighbors(lib.loc[5, VEC].to_numpy(float), asof=None, symbol=lib.loc[5, "symbol"])
    first = nb.records()[0]
    assert (first.symbol, first.interval, first.ts, first.side) == tuple(
        lib.loc[5, ["symbol", "interval", "ts", "side"]])
    assert first.entry == pytest.approx(lib.loc[5, "entry"]) and first.stop == first.entry - 2
    json.dumps(nb.to_dict())
    without = PatternIndex.from_frame(lib.drop(columns=["entry", "stop"]))
    assert without.search(lib.loc[5, VEC].to_numpy(float), k=1).records()[0].entry is None


# --------------------------------------------------------------------------- updates


def test_adding_rows_keeps_point_in_time_order_and_upserts() -> None:
    lib = library(900, seed=15)
    shuffled = lib.sample(frac=1.0, random_state=0)
    index = PatternIndex(backend="numpy")
    for start in range(0, 900, 150):  # out of time order: re-sorted inserts
        index.add(shuffled.iloc[start:start + 150])
    index.add(lib.iloc[:50])  # the same keys again: replaced, not duplicated
    assert len(index) == 900
    q = setup_like_vectors(1, np.random.default_rng(16))[0]
    for asof in (None, T0 + pd.Timedelta(days=60)):
        assert_same_neighbours(index.search(q, k=40, asof=asof).frame,
                               brute_force(lib, q, k=40, asof=asof))
    changed = lib.iloc[[3]].assign(realized_r=-7.0)
    index.add(changed)
    assert len(index) == 900
    hit = index.search(lib.loc[3, VEC].to_numpy(float), k=1, symbol=lib.loc[3, "symbol"])
    assert hit.frame.loc[0, "realized_r"] == -7.0


def test_pending_rows_become_searchable_with_their_outcome() -> None:
    lib = library(100, seed=17)
    index = PatternIndex.from_frame(lib.iloc[:90])
    pending = lib.iloc[90:].drop(columns=["realized_r", "exit_ts", "hold_bars", "exit_reason"])
    assert index.add(pending) == 0
    assert len(index) == 90 and index.n_pending == 10
    q = lib.loc[95, VEC].to_numpy(float)
    assert index.search(q, k=1).frame.loc[0, "ts"] != lib.loc[95, "ts"]

    outcomes = lib.iloc[90:][["symbol", "interval", "ts", "realized_r", "exit_ts", "hold_bars",
                              "exit_reason"]]
    assert index.set_outcomes(outcomes) == 10
    assert len(index) == 100 and index.n_pending == 0
    assert index.search(q, k=1).frame.loc[0, "ts"] == lib.loc[95, "ts"]
    # a row re-added without outcome keeps the stored one (like db.upsert_vectors)
    index.add(pending.iloc[[5]])
    assert len(index) == 100
    again = index.search(q, k=1).frame.loc[0]
    assert again["realized_r"] == pytest.approx(lib.loc[95, "realized_r"])
    # re-evaluating a searchable row moves it in time
    later = outcomes.iloc[[5]].assign(exit_ts=T0 + pd.Timedelta(days=9000), realized_r=1.0)
    assert index.set_outcomes(later) == 1
    assert index.search(q, k=1, asof=T0 + pd.Timedelta(days=8000)).frame.loc[0, "ts"] != \
        lib.loc[95, "ts"]


def test_bad_rows_are_rejected_with_a_clear_message() -> None:
    lib = library(5, seed=18)
    with pytest.raises(ValueError, match="vec_00"):
        PatternIndex.from_frame(lib.drop(columns=VEC))
    with pytest.raises(ValueError, match="interval"):
        PatternIndex.from_frame(lib.drop(columns=["interval"]))
    bad = lib.copy()
    bad.loc[0, "vec_03"] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        PatternIndex.from_frame(bad)
    with pytest.raises(ValueError, match="missing times"):
        PatternIndex.from_frame(lib).query_many(lib[VEC].to_numpy(), [T0, pd.NaT, T0, T0, T0],
                                                "AAPL")


def test_memory_is_vectors_plus_compact_metadata() -> None:
    index = PatternIndex.from_frame(library(1000, seed=19))
    assert 1000 * 64 <= index.memory_bytes() <= 1000 * 100


# --------------------------------------------------------------------------- database


def _db_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(version="v1", trend="sideways")


def test_from_db_and_incremental_refresh(db_engine: object) -> None:
    lib = library(300, seed=20)
    known, late = lib.iloc[:200], lib.iloc[200:250]
    waiting = lib.iloc[250:].drop(columns=["realized_r", "exit_ts", "hold_bars", "exit_reason"])
    db.upsert_vectors(db_engine, _db_rows(known))
    db.upsert_vectors(db_engine, _db_rows(waiting))
    index = PatternIndex.from_db(db_engine, interval="30m")
    assert len(index) == 200

    db.upsert_vectors(db_engine, _db_rows(late))  # new rows
    db.set_vector_outcomes(db_engine, lib.iloc[250:][["symbol", "interval", "ts", "realized_r",
                                                      "exit_ts", "hold_bars", "exit_reason"]])
    assert index.refresh(db_engine) == 100  # 50 new + 50 evaluated, nothing else re-read
    assert index.refresh(db_engine) == 0
    assert len(index) == 300

    fresh = PatternIndex.from_db(db_engine, interval="30m")
    q = setup_like_vectors(1, np.random.default_rng(21))[0]
    for asof in (None, T0 + pd.Timedelta(days=100)):
        want = brute_force(lib, q, k=30, asof=asof, symbol="AAPL")
        assert_same_neighbours(index.search(q, k=30, asof=asof, symbol="AAPL").frame, want)
        assert_same_neighbours(fresh.search(q, k=30, asof=asof, symbol="AAPL").frame, want)
    assert PatternIndex.from_db(db_engine, interval="1h").search(q, k=5).frame.empty


def test_index_pickles_and_serves_queries_while_updated() -> None:
    import pickle
    import threading

    lib = library(2000, seed=22)
    index = PatternIndex.from_frame(lib.iloc[:1000])
    copy = pickle.loads(pickle.dumps(index))
    q = setup_like_vectors(1, np.random.default_rng(23))[0]
    assert copy.search(q, k=10).frame.equals(index.search(q, k=10).frame)

    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for start in range(1000, 2000, 50):
                index.add(lib.iloc[start:start + 50])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    while thread.is_alive():
        got = index.neighbors(q, asof=None, symbol="AAPL", k=20)
        assert len(got) == 20 and (np.diff(got.frame["similarity"]) <= 0).all()
    thread.join()
    assert not errors and len(index) == 2000
