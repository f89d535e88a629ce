"""Live pattern priors: analyze() fills expected R / win rate from outcomes known by the signal
bar's close, and never from an outcome that became known later."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from swing_core import db
from swing_core.agent import analyze
from swing_core.config import INTERVAL_DELTA, StrategyParams
from swing_core.priors import build_prior_provider


def _library_rows(signal, *, n: int, realized_r: float, exit_ts: pd.Timestamp, seed: int,
                  symbol: str | None = None) -> pd.DataFrame:
    """``n`` vectors very close to the signal's, all with the same outcome."""
    rng = np.random.default_rng(seed)
    base = np.asarray(signal.vector, dtype=np.float32)
    vectors = base + rng.normal(0, 0.01, (n, base.size)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    start = pd.Timestamp(signal.asof) - pd.Timedelta(days=300)
    return pd.DataFrame({
        "symbol": symbol or signal.symbol,
        "interval": signal.interval,
        "ts": pd.date_range(start, periods=n, freq="D", tz="UTC") + pd.Timedelta(minutes=seed),
        "version": "v1",
        "setup": signal.entry.setup if signal.entry else "none",
        "side": signal.entry.side if signal.entry else "none",
        "trend": signal.trend.label,
        "vol_regime": signal.vol_regime,
        "vector": list(vectors),
        "realized_r": realized_r,
        "exit_reason": "TARGET" if realized_r > 0 else "STOP",
        "exit_ts": exit_ts,
        "hold_bars": 5,
    })


def test_priors_use_only_outcomes_known_by_the_signal_close(sqlite_engine):
    plain = analyze("AAPL", "30m", engine=sqlite_engine, offline=True)
    assert plain.entry is not None, "demo AAPL 30m must carry a plan for this test"
    signal_close = pd.Timestamp(plain.asof) + INTERVAL_DELTA["30m"]
    # 30 losers known long before the signal, 30 winners known one minute too late
    db.upsert_vectors(sqlite_engine, _library_rows(
        plain, n=30, realized_r=-1.0, exit_ts=signal_close - pd.Timedelta(days=2), seed=1))
    db.upsert_vectors(sqlite_engine, _library_rows(
        plain, n=30, realized_r=2.0, exit_ts=signal_close + pd.Timedelta(minutes=1), seed=2))

    _, provider, _ = build_prior_provider(sqlite_engine, interval="30m")
    signal = analyze("AAPL", "30m", engine=sqlite_engine, offline=True, prior_provider=provider)
    assert signal.prior["n"] == 30
    # 0 wins of 30: the bare share 0 %, shown as (0 + 2) / (30 + 4) (Beta prior toward 50 %);
    # expected R = that rate · 0 (no win seen) + the rest · -1 R
    assert signal.prior["win_rate_unshrunk"] == 0.0
    assert signal.expected_winrate == pytest.approx(2 / 34)
    assert signal.expected_winrate_raw == pytest.approx(2 / 34)  # uncalibrated, not unshrunk
    assert signal.expected_r == pytest.approx(-32 / 34)
    assert "win share 0% of 30 shrunk to 6%" in signal.expected_notes
    assert signal.expected_hold_bars == 5 and signal.expected_hold_days == pytest.approx(5 / 13)
    expected_conf = 0.6 * plain.confidence + 0.4 * np.clip(0.5 - 1.0 / 4, 0, 1)
    assert signal.confidence == pytest.approx(expected_conf)
    assert signal.confidence_base == pytest.approx(plain.confidence)

    # pending setups (no outcome yet) count once they are evaluated (incremental refresh)
    pending = _library_rows(plain, n=20, realized_r=2.0, exit_ts=pd.NaT, seed=5)
    db.upsert_vectors(sqlite_engine, pending.drop(
        columns=["realized_r", "exit_reason", "exit_ts", "hold_bars"]))
    provider.refresh(force=True)
    assert provider.stats_for(plain, StrategyParams()).n == 30
    db.set_vector_outcomes(sqlite_engine, pending.assign(
        exit_ts=signal_close - pd.Timedelta(minutes=30)))
    provider.refresh(force=True)
    later = analyze("AAPL", "30m", engine=sqlite_engine, offline=True, prior_provider=provider)
    assert later.prior["n"] == 50
    assert later.expected_winrate == pytest.approx(22 / 54)  # 20 of 50, shrunk
    assert later.prior["win_rate_unshrunk"] == pytest.approx(20 / 50)
    assert later.expected_r == pytest.approx(22 / 54 * 2.0 + 32 / 54 * -1.0)


def test_no_library_says_what_to_do(sqlite_engine):
    _, provider, _ = build_prior_provider(sqlite_engine, interval="30m")
    signal = analyze("MSFT", "30m", engine=sqlite_engine, offline=True, prior_provider=provider)
    if signal.entry is not None:
        assert signal.expected_r is None and "Journal" in signal.expected_notes
    assert signal.confidence == pytest.approx(signal.confidence_base)


def test_same_symbol_first_then_all_symbols(sqlite_engine):
    plain = analyze("AAPL", "30m", engine=sqlite_engine, offline=True)
    known = pd.Timestamp(plain.asof) - pd.Timedelta(days=1)
    db.upsert_vectors(sqlite_engine, _library_rows(plain, n=20, realized_r=1.0, exit_ts=known,
                                                   seed=3, symbol="MSFT"))
    _, provider, _ = build_prior_provider(sqlite_engine, interval="30m")
    stats = provider.stats_for(plain, StrategyParams())
    assert stats.scope == "all" and stats.n == 20  # AAPL has none: all symbols
    db.upsert_vectors(sqlite_engine, _library_rows(plain, n=5, realized_r=-1.0, exit_ts=known,
                                                   seed=4))
    provider.refresh(force=True)
    stats = provider.stats_for(plain, StrategyParams())
    assert stats.scope == "symbol" and stats.n == 5
