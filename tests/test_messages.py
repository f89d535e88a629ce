"""Messages about bad input say what is wrong in the user's terms: a long symbol is quoted cut
short with what a symbol looks like, on every surface; 0 and negative numbers for whole-number
CLI options are refused with the allowed range, never silently taken as the default."""

from __future__ import annotations

import pytest

from swing_core import cli, views
from swing_core.agent import analyze
from swing_core.errors import MarketDataError
from swing_core.market import check_lookback_days, normalize_symbol

LONG = "ABCDEFGHIJ" * 20  # 200 characters
CUT = "'ABCDEFGHIJABCDEFGHIJ'… (200 characters)"
RULE = "a symbol is 1 to 15 letters, digits and . - ^ ="


def test_a_long_symbol_is_quoted_cut_short_with_what_a_symbol_looks_like() -> None:
    with pytest.raises(MarketDataError) as caught:
        normalize_symbol(LONG)
    message = str(caught.value)
    assert message.startswith(f"{CUT} is not a valid ticker: {RULE}")
    assert LONG[:21] not in message and len(message) < 200
    with pytest.raises(MarketDataError, match=r"^'BAD\$YMBOL' is not a valid ticker"):
        normalize_symbol("BAD$YMBOL")  # a short one is quoted whole


def test_the_pages_symbol_parser_gives_the_same_short_message() -> None:
    valid, errors = views.parse_symbols(f"AAPL {LONG}")
    assert valid == ["AAPL"] and len(errors) == 1
    assert errors[0].startswith(CUT) and RULE in errors[0]


@pytest.mark.parametrize("argv", [
    ["analyze", LONG],
    ["data", "delete", LONG],
    ["data", "export", LONG, "--interval", "1d"],
    ["backtest", LONG, "--source", "demo", "--workers", "1", "--no-save"],
    ["backtest-search", LONG, "--source", "demo", "--workers", "1", "--space", "rsi_period=10,14"],
    ["scan", LONG, "--no-priors"],
], ids=["analyze", "data-delete", "data-export", "backtest", "backtest-search", "scan"])
def test_every_cli_command_echoes_a_long_symbol_cut_short(argv: list[str], capsys) -> None:
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    shown = captured.out + captured.err
    assert CUT in shown and RULE in shown
    assert LONG[:21] not in shown, "the symbol is never echoed whole (nor past 20 characters)"


def _refused(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as caught:
        cli.main(argv)
    assert caught.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


LOOKBACK = ("argument --lookback-days: The lookback must be a whole number of calendar days "
            "from 1 to 36,500 (got '{}'); omit it for the interval's default.")


@pytest.mark.parametrize("command", [["analyze", "AAPL"], ["scan", "AAPL"],
                                     ["journal", "add", "AAPL"]])
@pytest.mark.parametrize("days", ["0", "-5", "2.5", "99999999"])
def test_lookback_days_zero_is_refused_like_a_negative_one(command: list[str], days: str,
                                                           capsys) -> None:
    line = _refused([*command, f"--lookback-days={days}"], capsys)
    assert line.endswith(LOOKBACK.format(days))


def test_the_engine_refuses_a_zero_lookback_too() -> None:
    for days in (0, -5):
        with pytest.raises(MarketDataError, match=rf"from 1 to 36,500 \(got '{days}'\)"):
            analyze("AAPL", "1d", lookback_days=days)
    assert check_lookback_days(30) == 30 and check_lookback_days("30") == 30


@pytest.mark.parametrize(("argv", "expected"), [
    (["journal", "list", "--limit", "0"],
     "argument --limit: must be a whole number of at least 1 (got '0')"),
    (["journal", "list", "--limit", "-1"],
     "argument --limit: must be a whole number of at least 1 (got '-1')"),
    (["backtest-runs", "--limit", "0"],
     "argument --limit: must be a whole number of at least 1 (got '0')"),
    (["backtest", "AAPL", "--workers", "0"],
     "argument --workers: must be a whole number of at least 1 (got '0')"),
    (["backtest", "AAPL", "--max-positions", "-2"],
     "argument --max-positions: must be a whole number of at least 1 (got '-2')"),
    (["backtest-search", "AAPL", "--optuna", "-1"],
     "argument --optuna: must be a whole number of at least 0 (got '-1')"),
    (["journal", "list", "--limit", "many"],
     "argument --limit: must be a whole number of at least 1 (got 'many')"),
], ids=["limit-0", "limit-neg", "runs-limit-0", "workers-0", "max-positions", "optuna", "text"])
def test_whole_number_options_state_the_allowed_range(argv: list[str], expected: str,
                                                      capsys) -> None:
    assert _refused(argv, capsys).endswith(expected)
