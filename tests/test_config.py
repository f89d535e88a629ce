"""Settings and strategy parameters: bad configuration is a ConfigError (a SwingError the edges
show as a message), there is one interval check, and only config.py reads the environment."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from swing_core.config import INTERVALS, StrategyParams, get_settings, validate_interval
from swing_core.errors import ConfigError, SwingError

ROOT = Path(__file__).resolve().parent.parent

# --------------------------------------------------------------------------- errors


def test_config_error_is_a_swing_error_and_not_a_value_error():
    assert issubclass(ConfigError, SwingError)
    assert not issubclass(ConfigError, ValueError)  # edges must not need to catch ValueError


@pytest.mark.parametrize("interval", INTERVALS)
def test_known_intervals_pass(interval):
    assert validate_interval(interval) == interval


@pytest.mark.parametrize("interval", ["5m", "2h", "1wk", "", "1D"])
def test_unknown_interval_is_a_config_error_naming_the_choices(interval):
    with pytest.raises(ConfigError, match="15m, 30m, 1h, 1d"):
        validate_interval(interval)


@pytest.mark.parametrize("call", [
    lambda: __import__("swing_core.market", fromlist=["x"]).demo_bars("AAPL", "2h"),
    lambda: __import__("swing_core.market", fromlist=["x"]).fetch_bars("AAPL", "2h"),
    lambda: __import__("swing_core.exits", fromlist=["x"]).simulate_exits(
        None, [], [], [], [], [], interval="2h", params=StrategyParams()),
    lambda: __import__("swing_core.backtest", fromlist=["x"]).validate_config(
        __import__("swing_core.backtest", fromlist=["x"]).BacktestConfig(interval="2h")),
], ids=["demo", "fetch", "exits", "backtest"])
def test_every_layer_uses_the_one_interval_check(call):
    with pytest.raises(ConfigError, match="Unknown interval '2h'"):
        call()


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"max_hold_days": 0}, "max_hold_days must be between 1 and 60"),
    ({"risk_per_trade": 0.5}, "risk_per_trade"),
    ({"golden_pocket_lo": 0.7}, "golden pocket"),
    ({"fee_per_fill": -1.0}, "negative"),
    ({"max_hold_days": "three"}, "max_hold_days must be a number"),
    # issue 16 item 3: NaN, ±inf, fractions of a bar and absurd sizes are refused by name
    ({"rsi_period": float("nan")}, "rsi_period must be a finite number"),
    ({"fee_per_fill": float("inf")}, "fee_per_fill must be a finite number"),
    ({"slippage_bps": float("nan")}, "slippage_bps must be a finite number"),
    ({"rsi_period": 2.5}, "rsi_period must be a whole number"),
    ({"ema_span": 1_000_000}, "ema_span must be between 1 and 500"),
    ({"slippage_bps": 5000.0}, "slippage_bps must be at most 1000"),
])
def test_invalid_strategy_parameters_are_config_errors(kwargs, expected):
    with pytest.raises(ConfigError, match=expected):
        StrategyParams(**kwargs)


def test_a_whole_number_given_as_a_float_is_taken_as_the_integer():
    params = StrategyParams(rsi_period=14.0)
    assert params.rsi_period == 14 and isinstance(params.rsi_period, int)


def test_unknown_strategy_parameter_is_a_config_error():
    with pytest.raises(ConfigError, match="no_such_threshold"):
        StrategyParams.from_dict({"no_such_threshold": 1})


@pytest.mark.parametrize("name", ["SWING_SLOW_QUERY_MS", "SWING_DB_POOL_SIZE",
                                  "SWING_LLM_TIMEOUT_S"])
def test_a_malformed_number_in_the_environment_is_a_config_error(monkeypatch, name):
    monkeypatch.setenv(name, "fast")
    with pytest.raises(ConfigError, match=f"{name} must be a number, got 'fast'"):
        get_settings()


@pytest.mark.parametrize("raw", ["nan", "inf", "-Infinity"])
def test_a_non_finite_number_in_the_environment_is_a_config_error(monkeypatch, raw):
    # a NaN budget would compare False with every spend and switch the budget off
    monkeypatch.setenv("SWING_LLM_MONTHLY_BUDGET_USD", raw)
    with pytest.raises(ConfigError, match="SWING_LLM_MONTHLY_BUDGET_USD must be a finite number"):
        get_settings()


@pytest.mark.parametrize("name", ["SWING_LLM_TIMEOUT_S", "SWING_LLM_DEADLINE_S"])
@pytest.mark.parametrize("raw", ["0", "-3"])
def test_advisor_times_must_be_above_zero(monkeypatch, name, raw):
    # a deadline of 0 would make the advisor never ask and always say "no answer within 0 s"
    monkeypatch.setenv(name, raw)
    with pytest.raises(ConfigError, match=f"{name} must be a number of seconds above 0"):
        get_settings()


@pytest.mark.parametrize("name", ["SWING_DB_POOL_SIZE", "SWING_DB_STATEMENT_TIMEOUT_MS"])
def test_integer_settings_must_be_whole_and_timeouts_not_negative(monkeypatch, name):
    monkeypatch.setenv(name, "2.5")
    with pytest.raises(ConfigError, match=f"{name} must be a whole number"):
        get_settings()
    monkeypatch.setenv("SWING_DB_STATEMENT_TIMEOUT_MS", "-1")
    monkeypatch.delenv("SWING_DB_POOL_SIZE", raising=False)
    with pytest.raises(ConfigError, match="SWING_DB_STATEMENT_TIMEOUT_MS must be at least 0"):
        get_settings()


def test_the_openai_key_never_shows_in_the_settings_repr(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-value")
    settings = get_settings()
    assert settings.openai_api_key == "sk-test-secret-value"
    assert "sk-test-secret-value" not in repr(settings)


def test_the_grid_values_a_user_types_are_checked_as_configuration():
    from swing_core.views import parse_grid_values

    assert parse_grid_values("1, 1.5 2") == [1.0, 1.5, 2.0]
    for text, expected in (("1, x", "not a number"), ("", "at least one"), ("nan", "finite")):
        with pytest.raises(ConfigError, match=expected):
            parse_grid_values(text)


# --------------------------------------------------------------------------- environment


@pytest.mark.parametrize(("raw", "enabled"), [
    (None, True), ("", True), ("1", True), ("on", True), ("0", False), ("off", False),
    ("No", False), ("false", False)])
def test_swing_perf_is_a_setting(monkeypatch, raw, enabled):
    if raw is None:
        monkeypatch.delenv("SWING_PERF", raising=False)
    else:
        monkeypatch.setenv("SWING_PERF", raw)
    assert get_settings().perf_enabled is enabled


def test_swing_perf_role_is_a_setting_used_by_the_recorder(monkeypatch):
    from swing_core.perf.storage import process_name

    monkeypatch.delenv("SWING_PERF_ROLE", raising=False)
    assert get_settings().perf_role is None
    monkeypatch.setenv("SWING_PERF_ROLE", " worker ")
    assert get_settings().perf_role == "worker"
    assert process_name().startswith("worker:")
    assert process_name("cli").startswith("cli:")


_OWN_PREFIXES = ("SWING_", "OPENAI_")


def _env_name(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _is_environ(node: ast.AST) -> bool:
    """``os.environ`` or a bare ``environ``."""
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id == "environ")


def _environment_reads(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, variable) of every read of a SWING_* / OPENAI_* variable: ``os.environ.get(…)``,
    ``os.getenv(…)``, ``os.environ[…]`` (loaded, not assigned) and ``… in os.environ``."""
    found: list[tuple[int, str | None]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and isinstance(node.func, ast.Attribute):
            func = node.func
            if (func.attr == "get" and _is_environ(func.value)) or func.attr == "getenv":
                found.append((node.lineno, _env_name(node.args[0])))
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) \
                and _is_environ(node.value):
            found.append((node.lineno, _env_name(node.slice)))
        elif isinstance(node, ast.Compare) and any(_is_environ(c) for c in node.comparators):
            found.append((node.lineno, _env_name(node.left)))
    # A name that is not a literal could be anything: count it too (config.py is the place).
    return sorted((line, name or "<computed>") for line, name in found
                  if name is None or name.startswith(_OWN_PREFIXES))


def _sources() -> list[Path]:
    files = [ROOT / "app.py", *sorted((ROOT / "swing_core").rglob("*.py")),
             *sorted((ROOT / "pages").rglob("*.py"))]
    return [f for f in files if f.name != "config.py" or f.parent.name != "swing_core"]


def test_the_detector_sees_every_kind_of_read():
    code = ("import os\nfrom os import environ\n"
            "a = os.environ.get('SWING_X')\nb = os.getenv('OPENAI_Y')\n"
            "c = os.environ['SWING_Z']\nd = 'SWING_W' in os.environ\ne = environ.get(name)\n"
            "os.environ['SWING_SET'] = '1'\nenv = {**os.environ, 'SWING_PERF_ROLE': 'x'}\n"
            "f = os.environ.get('HOME')\n")
    assert [name for _, name in _environment_reads(ast.parse(code))] == [
        "SWING_X", "OPENAI_Y", "SWING_Z", "SWING_W", "<computed>"]


def test_only_config_reads_swing_and_openai_environment_variables():
    offenders = []
    for path in _sources():
        for line, name in _environment_reads(ast.parse(path.read_text(encoding="utf-8"))):
            offenders.append(f"{path.relative_to(ROOT)}:{line} reads {name}")
    assert offenders == [], "read these through swing_core.config.get_settings():\n" + \
        "\n".join(offenders)
