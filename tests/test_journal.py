"""The journal: record live signals, evaluate them with the real exit simulator once later bars
exist, store outcomes on signals and setup vectors, export CSV; plus the journal/db CLI."""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from swing_core import db, journal
from swing_core.cli_journal import add_journal_commands
from swing_core.errors import MarketDataError

START = pd.Timestamp("2024-03-04 14:30", tz="UTC")
STEP = pd.Timedelta(minutes=30)


def _bars(n: int, changes: dict[int, tuple[float, float, float, float]] | None = None
          ) -> pd.DataFrame:
    """Flat 30m bars around 100 (high 100.5, low 99.5); ``changes``: position -> OHLC."""
    idx = pd.date_range(START, periods=n, freq="30min", tz="UTC", name="ts")
    ohlc = np.tile([100.0, 100.5, 99.5, 100.0], (n, 1))
    for pos, values in (changes or {}).items():
        ohlc[pos] = values
    frame = pd.DataFrame(ohlc, index=idx, columns=["open", "high", "low", "close"])
    frame["volume"] = 1000.0
    return frame


def _signal(symbol: str, pos: int, side: str = "long", entry: float = 100.0,
            stop: float = 98.0, target: float = 104.0, **extra) -> dict:
    return {"symbol": symbol, "interval": "30m", "asof": START + pos * STEP, "setup": "momentum",
            "side": side, "entry": entry, "stop": stop, "target": target, "price": 100.0,
            "trend_label": "up", "data_source": "demo", **extra}


def test_evaluate_stores_outcomes_on_signals_and_vectors(db_engine: sa.Engine) -> None:
    # TGT: the bar after next reaches the target (R = (104 - 100) / (100 - 98) = 2)
    db.upsert_bars(db_engine, "TGT", "30m", _bars(40, {32: (101, 104.5, 100.5, 104)}),
                   source="demo")
    # NOF: a short stop order at 95 that never trades within one day (13 bars)
    db.upsert_bars(db_engine, "NOF", "30m", _bars(40), source="demo")
    # TIM: stop and target far away: closed at the close 26 bars after the fill (R = 0)
    db.upsert_bars(db_engine, "TIM", "30m", _bars(40), source="demo")
    vector = np.full(16, 0.25, np.float32)
    saved = journal.record_signals(db_engine, [
        _signal("TGT", 30, vector=vector),
        _signal("NOF", 5, side="short", entry=95.0, stop=97.0, target=90.0),
        _signal("TIM", 2, stop=90.0, target=120.0),
        _signal("TGT", 39),  # the last bar: nothing after it yet
    ])
    assert saved.added == 4 and saved.already == saved.no_plan == 0
    # a signal without a plan, stored before the journal refused them: closed as NO_PLAN
    (no_plan,) = db.record_signals(db_engine, [
        _signal("TIM", 3, setup="none", side="none", entry=None, stop=None, target=None)])
    ids = [*saved.ids[:3], no_plan, saved.ids[3]]
    db.record_signals(db_engine, [_signal("TGT", 30)], run_id="backtest-7")  # not live

    summary = journal.evaluate_pending(db_engine)
    assert summary.checked == 5 and summary.evaluated == 4 and summary.still_pending == 1
    assert summary.by_reason == {"TARGET": 1, "NOT_FILLED": 1, "TIME": 1, "NO_PLAN": 1}

    rows = db.list_signals(db_engine, limit=None).set_index("id")
    tgt = rows.loc[ids[0]]
    assert tgt["exit_reason"] == "TARGET" and bool(tgt["evaluated"])
    assert tgt["exit_price"] == pytest.approx(104.0) and tgt["realized_r"] == pytest.approx(2.0)
    assert tgt["exit_ts"] == START + 32 * STEP + STEP  # the close of the exit bar
    assert tgt["hold_bars"] == 2
    nof = rows.loc[ids[1]]
    assert nof["exit_reason"] == "NOT_FILLED" and np.isnan(nof["realized_r"])
    tim = rows.loc[ids[2]]
    assert tim["exit_reason"] == "TIME" and tim["realized_r"] == pytest.approx(0.0)
    assert tim["hold_bars"] == 26
    assert rows.loc[ids[3], "exit_reason"] == journal.NO_PLAN
    assert not bool(rows.loc[ids[4], "evaluated"])
    assert not db.list_signals(db_engine, run_id="backtest-7")["evaluated"].any()

    known = db.load_vector_matrix(db_engine)  # the outcome reached the setup vector
    assert known.meta["realized_r"].tolist() == [pytest.approx(2.0)]
    assert known.meta["exit_ts"].iloc[0] == START + 33 * STEP

    # more bars arrive: the pending signal is stopped out on the next bar (R = -1)
    db.upsert_bars(db_engine, "TGT", "30m", _bars(42, {32: (101, 104.5, 100.5, 104),
                                                       40: (99.5, 99.8, 97.0, 97.5)}),
                   source="demo")
    again = journal.evaluate_pending(db_engine)
    assert again.checked == 1 and again.by_reason == {"STOP": 1}
    last = db.list_signals(db_engine, limit=None).set_index("id").loc[ids[4]]
    assert last["realized_r"] == pytest.approx(-1.0)
    assert journal.evaluate_pending(db_engine).checked == 0


def test_custom_loader_errors_and_incomplete_last_bar(db_engine: sa.Engine) -> None:
    journal.record_signals(db_engine, [_signal("LIVE", 10), _signal("GONE", 10)])
    live = _bars(12, {11: (101, 104.5, 100.5, 104)})
    live.attrs["last_bar_complete"] = False  # the target bar is still forming: ignore it

    def loader(symbol: str, interval: str) -> pd.DataFrame:
        if symbol == "GONE":
            raise MarketDataError("GONE: no data (delisted?)")
        return live

    summary = journal.evaluate_pending(db_engine, load_bars=loader)
    assert summary.evaluated == 0 and summary.still_pending == 2
    assert summary.errors == {"GONE 30m": "GONE: no data (delisted?)"}
    live.attrs["last_bar_complete"] = True
    assert journal.evaluate_pending(db_engine, load_bars=loader).by_reason == {"TARGET": 1}


def test_signal_bar_missing_from_bars_is_skipped(db_engine: sa.Engine) -> None:
    db.upsert_bars(db_engine, "OLD", "30m", _bars(20).iloc[10:], source="demo")
    journal.record_signals(db_engine, [_signal("OLD", 2)])  # before the first cached bar
    summary = journal.evaluate_pending(db_engine)
    assert summary.skipped == 1 and summary.evaluated == 0


class _AgentLikeSignal:
    """Duck-typed like swing_core.agent.Signal (to_record / vector_row)."""

    def to_record(self) -> dict:
        return _signal("DUCK", 1)

    def vector_row(self) -> dict:
        return {"vector": np.full(16, 0.25, np.float32), "version": "v1"}


def test_record_signal_from_an_agent_signal(db_engine: sa.Engine) -> None:
    (sid,) = journal.record_signal(db_engine, _AgentLikeSignal()).ids
    stored = journal.list_signals(db_engine).iloc[0]
    assert int(stored["id"]) == sid and stored["vector_id"] is not None
    assert len(db.load_vector_matrix(db_engine, known_only=False)) == 1


def test_export_csv(db_engine: sa.Engine, tmp_path) -> None:
    journal.record_signals(db_engine, [_signal("AAA", 1), _signal("BBB", 2)])
    text = journal.export_csv(db_engine)
    frame = pd.read_csv(pd.io.common.StringIO(text))
    assert len(frame) == 2 and {"symbol", "asof", "realized_r", "exit_reason"} <= set(frame)
    assert frame["asof"].iloc[0].endswith("+0000")
    path = journal.export_csv(db_engine, tmp_path / "out" / "journal.csv", symbol="AAA")
    assert pd.read_csv(path)["symbol"].tolist() == ["AAA"]


# --------------------------------------------------------------------------- CLI


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="swing")
    add_journal_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SWING_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("SWING_DATABASE_URL", raising=False)
    yield tmp_path
    db.dispose_engines()


def test_cli_db_and_journal_commands(cli_env, capsys) -> None:
    assert _run(["db", "status"]) == 0
    assert "needs `db upgrade`" in capsys.readouterr().out
    assert _run(["db", "upgrade"]) == 0
    assert "schema at revision" in capsys.readouterr().out
    assert _run(["db", "status"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert _run(["journal", "list"]) == 0
    assert "No signals" in capsys.readouterr().out
    engine = db.get_engine()
    db.upsert_bars(engine, "TGT", "30m", _bars(40, {32: (101, 104.5, 100.5, 104)}),
                   source="demo")
    journal.record_signals(engine, [_signal("TGT", 30), _signal("TGT", 39)])
    assert _run(["journal", "evaluate", "--cache-only"]) == 0
    out = capsys.readouterr().out
    assert "evaluated 1 (TARGET 1), still pending 1" in out
    assert _run(["journal", "list", "--evaluated"]) == 0
    assert "TARGET" in capsys.readouterr().out
    out_file = cli_env / "j.csv"
    assert _run(["journal", "export", "--out", str(out_file)]) == 0
    assert len(pd.read_csv(out_file)) == 2


def test_cli_unreachable_database_is_a_clean_error(cli_env, monkeypatch, capsys) -> None:
    monkeypatch.setenv("SWING_DATABASE_URL", "postgresql://me:topsecret@127.0.0.1:1/swing")
    assert _run(["db", "upgrade"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Cannot use PostgreSQL me@127.0.0.1:1/swing")
    assert "topsecret" not in err and "Traceback" not in err
