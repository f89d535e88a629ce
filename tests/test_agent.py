"""analyze() and scan(): the signal is the frame's last row, labelled with its data source."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from swing_core import market
from swing_core.agent import analyze, scan, scan_table
from swing_core.errors import MarketDataError
from swing_core.features import VECTOR_COLUMNS
from swing_core.frame import FrameContext, build_signal_frame
from tests.test_market import yf_empty, yf_shaped


@pytest.fixture
def recorded_yahoo(monkeypatch):
    """Yahoo replaced at the yfinance boundary: demo bars in yfinance's real shape, and an empty
    frame (what yf.download returns) for the symbol NOPE."""
    calls = []

    def download(**kwargs):
        symbol, interval = kwargs["tickers"], kwargs["interval"]
        calls.append((symbol, interval))
        if symbol == "NOPE":
            return yf_empty(symbol)
        bars = market.demo_bars(symbol, interval, 2000)
        return yf_shaped(bars[bars.index >= pd.Timestamp(kwargs["start"])], symbol, interval)

    monkeypatch.setattr(market.yahoo, "_yf_download", download)
    market.clear_cache_state()
    return calls


def test_analyze_offline_is_demo_and_equals_the_frames_last_row(sqlite_engine):
    signal = analyze("aapl", "30m", engine=sqlite_engine, offline=True)
    assert signal.symbol == "AAPL" and signal.data_source == "demo" and signal.is_demo
    assert any("DEMO" in note for note in signal.notes)
    bars = market.fetch_bars("AAPL", "30m", lookback_days=59, offline=True)
    context = FrameContext(
        sector=market.fetch_bars("XLK", "30m", lookback_days=59, offline=True),
        market=market.fetch_bars("SPY", "30m", lookback_days=59, offline=True),
        mtf={i: market.fetch_bars("AAPL", i, lookback_days=59, offline=True)
             for i in ("15m", "1h")},
    )
    last = build_signal_frame(bars, interval="30m", context=context).iloc[-1]
    assert pd.Timestamp(signal.asof) == bars.index[-1]
    assert signal.trend.label == last["trend"]
    assert signal.confidence == pytest.approx(last["confidence"])
    assert signal.mtf_alignment == last["mtf_alignment"]
    assert signal.vol_regime == last["vol_regime"]
    np.testing.assert_allclose(signal.vector, last[list(VECTOR_COLUMNS)].to_numpy(float))
    if last["setup"] != "none":
        assert signal.entry is not None
        assert signal.entry.entry == pytest.approx(last["entry"])
        assert signal.entry.r_multiple == pytest.approx(last["r_multiple"])
    # the flat record has every column of the signals table that analyze can fill
    record = signal.to_record()
    for key in ("symbol", "asof", "trend_label", "confidence", "data_source", "vol_regime",
                "rs_sector", "mtf_alignment", "fib_json"):
        assert key in record


def test_analyze_through_the_bar_cache_downloads_once(sqlite_engine, recorded_yahoo):
    first = analyze("MSFT", "30m", engine=sqlite_engine, offline=False)
    downloads = len(recorded_yahoo)
    assert downloads == 5  # MSFT 30m, XLK, SPY, MSFT 15m, MSFT 1h
    second = analyze("MSFT", "30m", engine=sqlite_engine, offline=False)
    assert len(recorded_yahoo) == downloads  # served from the cache
    assert second.data_source == "cache" and first.asof == second.asof
    assert second.confidence == pytest.approx(first.confidence)


def test_unknown_symbol_is_a_clear_error(sqlite_engine, recorded_yahoo):
    with pytest.raises(MarketDataError, match="NOPE"):
        analyze("NOPE", "1d", engine=sqlite_engine, offline=False)


def test_too_few_bars_says_how_many_are_needed(sqlite_engine):
    with pytest.raises(MarketDataError, match=r"(?i)bars"):
        analyze("AAPL", "1d", lookback_days=10, engine=sqlite_engine, offline=True)


def test_scan_keeps_going_when_one_symbol_fails(sqlite_engine, recorded_yahoo):
    seen = []
    results = scan(["AAPL", "NOPE", "bad symbol!", "MSFT"], "1d", engine=sqlite_engine,
                   offline=False, progress=lambda done, total, sym: seen.append((done, total)))
    assert [r.symbol for r in results] == ["AAPL", "NOPE", "BAD SYMBOL!", "MSFT"]
    assert results[0].ok and results[3].ok
    assert not results[1].ok and "NOPE" in results[1].error
    assert not results[2].ok and results[2].error
    assert seen[-1] == (4, 4)
    table = scan_table(results)
    assert len(table) == 4 and table["error"].notna().sum() == 2


def test_advise_applies_the_vote_and_a_failure_only_adds_a_note(sqlite_engine):
    """The advisor through a real loopback Chat Completions server (tests/openai_stub_server)."""
    import json
    from dataclasses import replace

    from swing_core.agent import advise
    from swing_core.config import Settings, StrategyParams
    from swing_core.llm import Advisor, CircuitBreaker
    from tests.openai_stub_server import ChatStubServer, StubReply, completion

    signal = None
    for symbol in ("AAPL", "MSFT", "NVDA", "AMZN", "META", "TSLA", "AMD", "GOOG"):
        candidate = analyze(symbol, "1d", engine=sqlite_engine, offline=True)
        if candidate.entry is not None and candidate.confidence <= 0.8:
            signal = candidate
            break
    assert signal is not None, "some demo symbol must carry a plan"
    side = signal.entry.side
    vote = {"trend_label": "up" if side == "long" else "down", "entry_bias": side,
            "entry_window_low": None, "entry_window_high": None, "confidence": 0.8,
            "rationale": "trend and setup agree"}
    with ChatStubServer() as server:
        settings = replace(Settings(openai_api_key="test-key", openai_base_url=server.base_url,
                                    llm_timeout_s=2.0))
        advisor = Advisor(settings, sqlite_engine, breaker=CircuitBreaker(), retry_base_s=0.01)
        server.enqueue(completion(json.dumps(vote)))
        advised = advise(signal, advisor, params=StrategyParams())
        assert advised.llm_vote["entry_bias"] == side
        assert advised.confidence == pytest.approx(min(1.0, signal.confidence + 0.15 * 0.8))
        assert advised.vector[14] > 0 and np.linalg.norm(advised.vector) == pytest.approx(1, 1e-5)

        server.enqueue(*[StubReply(status=500, body={"error": {"message": "boom"}})] * 3)
        failed = advise(signal.model_copy(update={"confidence": signal.confidence - 1e-6}),
                        advisor, params=StrategyParams())
        assert failed.llm_vote is None
        assert failed.confidence == pytest.approx(signal.confidence - 1e-6)
        assert len(failed.notes) == len(signal.notes) + 1
        advisor.close()
