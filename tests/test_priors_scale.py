"""The walk-forward search at backtest scale: the kernel's group floor (the k-th best found
from group maxima, not a partition of whole rows) returns exactly the float64 brute force,
ties by row, for growing prefixes of every width regime; and the backtest's priors step gives
the neighbours a plain per-query search gives."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swing_core.config import StrategyParams
from swing_core.patterns import PatternIndex, exact_topk
from swing_core.patterns.kernel import _direct
from tests.test_patterns import setup_like_vectors


def _walk_limits(m: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Prefixes of a walk-forward: growing with the query's time, a few empty or full."""
    limits = np.sort(rng.integers(0, n + 1, m))
    limits[: min(3, m)] = 0
    return limits


def _reference(queries: np.ndarray, matrix: np.ndarray, limits: np.ndarray, k: int
               ) -> list[np.ndarray]:
    """Rows by float64 cosine, ties by lower row, one query at a time. Each row's cosine is
    computed on its own (an einsum per row, as the kernel's re-scoring): a BLAS ``rows @ q``
    may round exact duplicate rows differently by their position, which would turn ties into
    strict orders by chance."""
    out = []
    for q, limit in zip(queries.astype(float), limits, strict=True):
        rows = matrix[None, :limit].astype(float)
        dots = np.einsum("mwd,md->mw", rows, q[None])[0]
        norms = np.sqrt(np.einsum("mwd,mwd->mw", rows, rows)[0] * np.einsum("d,d->", q, q))
        out.append(np.lexsort((np.arange(limit), -(dots / norms)))[:k])
    return out


def _assert_exact(queries: np.ndarray, matrix: np.ndarray, limits: np.ndarray, k: int,
                  sims: np.ndarray, rows: np.ndarray) -> None:
    for i, want in enumerate(_reference(queries, matrix, limits, k)):
        np.testing.assert_array_equal(rows[i][rows[i] >= 0], want)
        assert np.isneginf(sims[i][len(want):]).all()
        q = queries[i].astype(float)
        full = matrix[want].astype(float)
        expect = full @ q / (np.linalg.norm(full, axis=1) * np.linalg.norm(q))
        np.testing.assert_allclose(sims[i][: len(want)], expect, atol=1e-12)


# widths: below 8k (one cell per group), a few cells per group, 16 per group, chunked scan
@pytest.mark.parametrize("m,n,k", [(50, 400, 60), (120, 2_500, 60), (200, 9_000, 60),
                                   (90, 9_000, 7), (60, 30_000, 60)])
def test_walk_forward_topk_equals_brute_force(m: int, n: int, k: int) -> None:
    rng = np.random.default_rng(n + k)
    matrix = setup_like_vectors(n, rng)
    matrix[100:400] = matrix[3]  # a run of exact duplicates: ties across many groups
    queries = setup_like_vectors(m, rng)
    queries[5] = matrix[3]  # its k best are all tied
    limits = _walk_limits(m, n, rng)
    sims, rows = exact_topk(queries, matrix, k, limits=limits)
    _assert_exact(queries, matrix, limits, k, sims, rows)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 2_500), m=st.integers(1, 40), k=st.integers(1, 80),
       ties=st.integers(0, 3), seed=st.integers(0, 2**16))
def test_group_floor_property(n: int, m: int, k: int, ties: int, seed: int) -> None:
    """Any block (limits in any order, any width and k, coarse vectors with many exact ties at
    the k-th score) through the group floor equals the brute force."""
    rng = np.random.default_rng(seed)
    matrix = setup_like_vectors(n, rng)
    if ties:  # few distinct vectors: group maxima tie at the floor
        matrix = matrix[rng.integers(0, min(n, 4 * ties), n)]
    queries = setup_like_vectors(m, rng)
    limits = rng.integers(0, n + 1, m)
    limits[0] = n
    sims, rows = _direct(queries.astype(np.float64), matrix, limits, k)
    _assert_exact(queries, matrix, limits, k, sims, rows)


def test_priors_step_batch_equals_one_query_at_a_time() -> None:
    """query_many over a run's outcomes (the backtest's priors step, in-memory rows, thousands
    of growing prefixes) gives each signal the neighbours of its own point-in-time query."""
    rng = np.random.default_rng(7)
    n, m = 3_000, 400
    ts = pd.Timestamp("2024-01-02 15:30", tz="UTC") + pd.to_timedelta(np.arange(n), unit="h")
    vectors = setup_like_vectors(n, rng)
    vectors[500:900] = vectors[11]
    outcomes = pd.DataFrame({
        "symbol": "AAPL", "interval": "1h", "ts": ts,
        "exit_ts": ts + pd.to_timedelta(rng.integers(1, 30, n), unit="h"),
        "realized_r": rng.normal(0.1, 1.0, n), "hold_bars": rng.integers(1, 30, n),
        "exit_reason": rng.choice(["STOP", "TARGET", "TIME"], n),
        "vol_regime": rng.choice(["low", "mid", "high"], n),
        **{f"vec_{i:02d}": vectors[:, i] for i in range(16)}})
    queries = setup_like_vectors(m, rng)
    queries[:20] = vectors[11]
    asof = np.sort(rng.choice(ts, m)) + pd.Timedelta(hours=1)
    regimes = rng.choice(["low", "mid", "high"], m)
    params = StrategyParams()
    index = PatternIndex(interval="1h", backend="numpy")
    batch = index.query_many(queries, asof, "AAPL", regimes, params=params, extra=outcomes)
    alone = PatternIndex.from_frame(outcomes, backend="numpy", interval="1h")
    assert batch.n[20:].min() > 0
    for i in range(0, m, 7):
        one = alone.priors(queries[i], asof=asof[i], symbol="AAPL", vol_regime=regimes[i],
                           params=params)
        got, want = dataclasses.asdict(batch[i]), dataclasses.asdict(one)
        assert got.pop("exit_reasons") == want.pop("exit_reasons")
        assert got == pytest.approx(want, nan_ok=True, rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 3_000), k=st.integers(1, 80), ties=st.integers(0, 3),
       limit=st.floats(0, 1), seed=st.integers(0, 2**16))
def test_a_single_query_fast_path_equals_the_brute_force_and_the_block_path(
        n: int, k: int, ties: int, limit: float, seed: int) -> None:
    """One query (a live analysis, the Explorer) takes the matrix-vector path: the same rows and
    bit-identical similarities as the block path it skips, and the brute force."""
    rng = np.random.default_rng(seed)
    matrix = setup_like_vectors(n, rng)
    if ties:
        matrix = matrix[rng.integers(0, min(n, 4 * ties), n)]
    query = setup_like_vectors(1, rng).astype(np.float64)
    limits = np.array([int(limit * n)])
    sims, rows = exact_topk(query, matrix, k, limits=limits)
    if limits[0]:
        block_s, block_i = _direct(query, matrix, limits, k)
        np.testing.assert_array_equal(rows, block_i)
        np.testing.assert_array_equal(sims, block_s)
    _assert_exact(query, matrix, limits, k, sims, rows)
