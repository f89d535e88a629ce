"""Parameter search over StrategyParams: a grid, or Optuna, scored on a held-out later period.

The data is split in time at ``split`` (a timestamp, or a fraction of the run's bars): every
parameter set is backtested on the **train** period (signals before the split, outcomes known
by the split) and, independently, on the **test** period (signals from the split on; the bars
before it serve only as indicator warm-up). The search *selects* on the train score; the test
score is what the choice would have earned afterwards, the honest estimate. Results are one
row per parameter set, ready for ``table.pivot(index=p1, columns=p2, values="test_score")``
(a heatmap).

Every period runs the backtest's own stage 1 (:func:`~swing_core.backtest.prepare_symbol`) with
each symbol's context (benchmarks, other timeframes: what ``analyze`` and ``run_backtest``
read, :func:`~swing_core.backtest.context.gather_context`), so a searched signal is the
backtested and the live one.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from swing_core.backtest.config import (
    BacktestConfig,
    ProgressFn,
    params_from_dict,
    trim_bars,
    validate_config,
)
from swing_core.backtest.context import gather_context
from swing_core.backtest.core import core_from_passes, run_statistics
from swing_core.backtest.executor import map_tasks
from swing_core.backtest.walk import prepare_symbol
from swing_core.errors import BacktestError, SwingError
from swing_core.frame import FrameContext

__all__ = ["SearchResult", "grid_search", "optuna_search", "resolve_split"]


@dataclass(frozen=True)
class SearchResult:
    """``table``: one row per parameter set: the parameters, ``train_score``, ``test_score``,
    ``train_trades``, ``test_trades``, ``train_return_pct``, ``test_return_pct``, ``rank``
    (by train score, 1 = best); ``best_params``: the set ranked first; ``best_test_score``:
    its score on the held-out period."""

    table: pd.DataFrame
    metric: str
    split: pd.Timestamp
    best_params: dict[str, Any]
    best_train_score: float
    best_test_score: float

    def heatmap(self, x: str, y: str, *, values: str = "test_score") -> pd.DataFrame:
        """Pivot of ``values`` over two searched parameters (mean over the others)."""
        return self.table.pivot_table(index=y, columns=x, values=values, aggfunc="mean")


def resolve_split(bars: Mapping[str, pd.DataFrame], config: BacktestConfig,
                  split: float | str | pd.Timestamp) -> pd.Timestamp:
    """The split timestamp: given, or the bar at ``split`` (a fraction) of the union timeline
    of the run's range."""
    if isinstance(split, float) and 0 < split < 1:
        index = pd.DatetimeIndex([], tz="UTC")
        for frame in bars.values():
            index = index.union(frame.index)
        if config.start is not None:
            index = index[index >= config.start]
        if config.end is not None:
            index = index[index <= config.end]
        if len(index) < 10:
            raise BacktestError("Too few bars in the range to split it into train and test.")
        return index[int(len(index) * split)]
    ts = pd.Timestamp(split)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    if (config.start is not None and ts <= config.start) or (config.end is not None
                                                              and ts >= config.end):
        raise BacktestError(f"The split {ts} must fall strictly inside the backtest range.")
    return ts


def _score(stats: pd.Series, metric: str, min_trades: int) -> float:
    if int(stats.get("# Trades", 0) or 0) < min_trades:
        return math.nan
    value = stats.get(metric)
    try:
        value = float(value)
    except (TypeError, ValueError):
        return math.nan
    return value if math.isfinite(value) else math.nan


def _period(bars: Mapping[str, pd.DataFrame], config: BacktestConfig,
            context: Mapping[str, FrameContext]) -> pd.Series | None:
    passes = []
    for symbol, frame in bars.items():
        try:
            passes.append(prepare_symbol(trim_bars(frame, symbol=symbol, config=config),
                                         symbol=symbol, config=config,
                                         context=context.get(symbol)))
        except SwingError:
            continue
    if not passes:
        return None
    return run_statistics(core_from_passes(passes, config, prior_fn=None, library=None),
                          config).stats


_Payload = tuple[Mapping[str, pd.DataFrame], BacktestConfig, pd.Timestamp, str, int,
                 Mapping[str, FrameContext]]


def _evaluate(payload: _Payload) -> dict[str, Any]:
    """Train and test statistics of one configuration (top level: runs in workers)."""
    bars, config, split, metric, min_trades, context = payload
    before = split - pd.Timedelta(microseconds=1)
    train = _period(bars, replace(config, end=before), context)
    test = _period(bars, replace(config, start=split), context)
    row: dict[str, Any] = {}
    for name, stats in (("train", train), ("test", test)):
        row[f"{name}_score"] = _score(stats, metric, min_trades) if stats is not None else math.nan
        row[f"{name}_trades"] = int(stats["# Trades"]) if stats is not None else 0
        row[f"{name}_return_pct"] = float(stats["Return [%]"]) if stats is not None else math.nan
    return row


def _finish(rows: list[dict[str, Any]], names: Sequence[str], metric: str,
            split: pd.Timestamp) -> SearchResult:
    table = pd.DataFrame(rows)
    order = table["train_score"].rank(ascending=False, method="first", na_option="bottom")
    table["rank"] = order.astype(int)
    table = table.sort_values("rank").reset_index(drop=True)
    best = table.iloc[0]
    return SearchResult(table=table, metric=metric, split=split,
                        best_params={n: _py(table[n].iloc[0]) for n in names},
                        best_train_score=float(best["train_score"]),
                        best_test_score=float(best["test_score"]))


def _py(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _contexts(bars: Mapping[str, pd.DataFrame], config: BacktestConfig,
              context: Mapping[str, FrameContext] | None) -> dict[str, FrameContext]:
    """The symbols' contexts: given, else from the bars mapping itself (as
    ``run_backtest(bars=...)``: benchmarks given along with the symbols, nothing fetched)."""
    if context is not None:
        return dict(context)
    return gather_context(bars, config, given=bars).frames


def grid_search(bars: Mapping[str, pd.DataFrame], grid: Mapping[str, Sequence[Any]], *,
                config: BacktestConfig | None = None, split: float | str | pd.Timestamp = 0.7,
                metric: str = "SQN", min_trades: int = 5, executor: Any = None,
                max_workers: int | None = None, progress: ProgressFn | None = None,
                context: Mapping[str, FrameContext] | None = None) -> SearchResult:
    """Every combination of ``grid`` (StrategyParams field -> values), train/test scored.

    ``metric``: any statistic of the run (``SQN``, ``Sharpe Ratio``, ``Avg. R``, …); a period
    with fewer than ``min_trades`` trades scores NaN. Parameter sets run on ``executor``
    (see :func:`swing_core.backtest.executor.map_tasks`). ``context``: each symbol's context
    (``gather_context(bars, config, ...).frames``, from the bars' source); None: from ``bars``
    itself (benchmarks given with the symbols, see :func:`_contexts`)."""
    config = config or BacktestConfig()
    if not grid:
        raise BacktestError("The grid is empty: give at least one parameter and its values.")
    names = list(grid)
    combos = list(itertools.product(*(list(grid[n]) for n in names)))
    if len(combos) > 5000:
        raise BacktestError(f"{len(combos)} combinations: narrow the grid (at most 5000).")
    split_ts = resolve_split(bars, config, split)
    contexts = _contexts(bars, config, context)
    payloads = []
    for combo in combos:
        params = params_from_dict({**config.params.to_dict(), **dict(zip(names, combo,
                                                                         strict=True))})
        candidate = replace(config, params=params)
        validate_config(candidate)
        payloads.append((dict(bars), candidate, split_ts, metric, min_trades, contexts))
    outcomes = map_tasks(_evaluate, payloads, executor=executor, max_workers=max_workers,
                         progress=progress, labels=[str(c) for c in combos])
    rows = []
    for combo, outcome in zip(combos, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            raise outcome
        rows.append({**dict(zip(names, combo, strict=True)), **outcome})
    return _finish(rows, names, metric, split_ts)


def optuna_search(bars: Mapping[str, pd.DataFrame],
                  space: Mapping[str, tuple[float, float] | tuple[int, int] | Sequence[Any]], *,
                  config: BacktestConfig | None = None, n_trials: int = 30,
                  split: float | str | pd.Timestamp = 0.7, metric: str = "SQN",
                  min_trades: int = 5, seed: int = 0, timeout: float | None = None,
                  progress: ProgressFn | None = None,
                  context: Mapping[str, FrameContext] | None = None) -> SearchResult:
    """Optuna (TPE) search maximizing the *train* score; every trial's test score is recorded.

    ``space``: field -> (low, high) (ints give an integer range, floats a float range) or a
    list of choices; ``context`` as :func:`grid_search`'s. Needs ``pip install optuna``."""
    try:
        import optuna  # lazy: optional, heavy (only for an Optuna search)
    except ImportError as exc:
        raise BacktestError("Optuna is not installed: pip install optuna.") from exc
    config = config or BacktestConfig()
    split_ts = resolve_split(bars, config, split)
    contexts = _contexts(bars, config, context)
    names = list(space)
    rows: list[dict[str, Any]] = []

    def suggest(trial: Any, name: str) -> Any:
        spec = space[name]
        if isinstance(spec, tuple) and len(spec) == 2 and all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in spec):
            low, high = spec
            if isinstance(low, int) and isinstance(high, int):
                return trial.suggest_int(name, low, high)
            return trial.suggest_float(name, float(low), float(high))
        return trial.suggest_categorical(name, list(spec))

    def objective(trial: Any) -> float:
        values = {n: suggest(trial, n) for n in names}
        params = params_from_dict({**config.params.to_dict(), **values})
        candidate = replace(config, params=params)
        validate_config(candidate)
        outcome = _evaluate((bars, candidate, split_ts, metric, min_trades, contexts))
        rows.append({**values, **outcome})
        if progress is not None:
            progress(len(rows), n_trials, str(values))
        score = outcome["train_score"]
        return score if math.isfinite(score) else -1e9

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=n_trials, timeout=timeout, catch=(BacktestError,))
    if not rows:
        raise BacktestError("No Optuna trial could run: check the search space.")
    return _finish(rows, names, metric, split_ts)
