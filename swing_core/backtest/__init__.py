"""Walk-forward backtests: every row of the signal frame is a signal, in one O(N) pass.

Modules, by concept (the pipeline of :func:`run_backtest` in order):

- :mod:`~swing_core.backtest.config`: :class:`BacktestConfig`, its validation, the bars a run
  uses (:func:`trim_bars`);
- :mod:`~swing_core.backtest.context`: each symbol's benchmark and other-timeframe bars, the
  ones ``analyze`` reads, fetched once per run (:func:`gather_context`);
- :mod:`~swing_core.backtest.walk`: stage 1 per symbol: signal frame, plans, fills and exits
  (:func:`prepare_symbol`; :func:`walk_forward` for one symbol with priors, no portfolio);
- :mod:`~swing_core.backtest.priors`: pattern priors point in time through the pattern engine;
- :mod:`~swing_core.backtest.core`: priors, portfolio, counts and statistics of the signals
  (:mod:`swing_core.metrics` defines the counts and writes the statistics);
- :mod:`~swing_core.backtest.lookahead`: the look-ahead check (recompute on cut data);
- :mod:`~swing_core.backtest.run`: :func:`run_backtest`, :func:`gather_bars`, run hashes;
  :mod:`~swing_core.backtest.result`: :class:`BacktestResult`;
- :mod:`~swing_core.backtest.store`: saving, loading, listing and comparing runs;
- :mod:`~swing_core.backtest.search`: parameter search scored on a held-out later period;
- :mod:`~swing_core.backtest.universe`: chunked runs of large universes with bounded memory,
  through their spill store (:mod:`~swing_core.backtest.spill`);
- :mod:`~swing_core.backtest.executor`: process pool / Dask / inline executors.

Time alignment: ``signal_ts`` is the signal bar's open label; the plan is made at its close
(``asof = signal_ts + INTERVAL_DELTA``); ``exit_ts`` is the close time of the exit bar.
"""

from __future__ import annotations

from swing_core.backtest.config import (
    BacktestConfig,
    ProgressFn,
    params_from_dict,
    trim_bars,
    validate_config,
)
from swing_core.backtest.context import RunContext, gather_context
from swing_core.backtest.executor import (
    InlineExecutor,
    default_workers,
    map_tasks,
    open_executor,
)
from swing_core.backtest.lookahead import LookaheadReport, cut_fractions, lookahead_check
from swing_core.backtest.priors import (
    PRIOR_COLUMNS,
    PriorFn,
    PriorQueries,
    attach_priors,
    no_priors,
    outcome_rows,
    pattern_priors,
)
from swing_core.backtest.result import BacktestResult
from swing_core.backtest.run import (
    data_fingerprint,
    gather_bars,
    run_backtest,
    run_hash,
    store_outcome_vectors,
)
from swing_core.backtest.search import SearchResult, grid_search, optuna_search, resolve_split
from swing_core.backtest.store import compare_runs, list_runs, load_run, save_run
from swing_core.backtest.universe import (
    MarketBarsLoader,
    UniverseResult,
    UniverseSummary,
    run_universe,
)
from swing_core.backtest.walk import SymbolPass, WalkForwardResult, prepare_symbol, walk_forward

__all__ = [
    "PRIOR_COLUMNS",
    "BacktestConfig",
    "BacktestResult",
    "InlineExecutor",
    "LookaheadReport",
    "MarketBarsLoader",
    "PriorFn",
    "PriorQueries",
    "ProgressFn",
    "RunContext",
    "SearchResult",
    "SymbolPass",
    "UniverseResult",
    "UniverseSummary",
    "WalkForwardResult",
    "attach_priors",
    "compare_runs",
    "cut_fractions",
    "data_fingerprint",
    "default_workers",
    "gather_bars",
    "gather_context",
    "grid_search",
    "list_runs",
    "load_run",
    "lookahead_check",
    "map_tasks",
    "no_priors",
    "open_executor",
    "optuna_search",
    "outcome_rows",
    "params_from_dict",
    "pattern_priors",
    "prepare_symbol",
    "resolve_split",
    "run_backtest",
    "run_hash",
    "run_universe",
    "save_run",
    "store_outcome_vectors",
    "trim_bars",
    "validate_config",
    "walk_forward",
]
