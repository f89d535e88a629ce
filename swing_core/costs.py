"""Trading costs in R: what fees and slippage take from a trade's R multiple, and the win the
trader keeps (net of costs), in one place.

The portfolio (:mod:`swing_core.portfolio`) charges, per trade, ``params.fee_per_fill`` on each
of the two fills and ``params.slippage_bps`` against the trader on both fill prices. Its net
P&L per share is ``side · (exit − fill) − slip · (exit + fill)`` (slip = bps / 10 000; the sign
of the side drops out of the slippage), less ``2 · fee / qty``. Divided by the risk per share
``|fill − stop|`` (the R of :mod:`swing_core.exits`), that is

    net R = realized R − cost R,
    cost R = slip · (fill + exit) / |fill − stop| + 2 · fee / (qty · |fill − stop|).

``qty · |fill − stop|`` is the money at risk. The portfolio sizes a position to risk
``params.risk_per_trade`` of equity, so without a known quantity the fee term is taken at that
size: ``2 · fee / (risk_per_trade · equity)``, ``equity`` = :data:`REFERENCE_EQUITY` (100 000,
the backtest's default initial equity) unless given. At the defaults that is 0.002 R: the
slippage term is what matters (10 bps of the price round trip; 0.04 R on a daily stop of 2.5 %
of the price, 0.3 R on an intraday stop of 0.35 %). Before the exit is known (a plan), the
round trip is priced at the entry on both fills (``exit_price`` None).

With the trade's own ``qty`` :func:`net_r` > 0 is exactly the portfolio's net P&L > 0
(:func:`swing_core.metrics.won_pnl`); :func:`won_after_costs` is that win for any exited plan,
sized or not (a backtest's untaken signals, the journal's signals): the outcome the calibration
of predicted win rates targets.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from swing_core.config import StrategyParams

__all__ = ["REFERENCE_EQUITY", "cost_r", "net_r", "won_after_costs"]

#: Equity a position is sized on when its quantity is unknown (the fee term of :func:`cost_r`):
#: the backtest's default initial equity.
REFERENCE_EQUITY = 100_000.0


def _out(values: np.ndarray) -> Any:
    return float(values) if values.ndim == 0 else values


def cost_r(entry: Any, stop: Any, *, params: StrategyParams, exit_price: Any = None,
           qty: Any = None, equity: float = REFERENCE_EQUITY) -> Any:
    """Round-trip costs of a trade in R (module docstring): slippage on both fills plus two
    fees, relative to the risk per share ``|entry − stop|`` (``entry``: the fill price when
    known). ``exit_price`` None: the round trip priced at ``entry``. ``qty`` (shares, > 0):
    the fee spread over that position; else over a position risking ``risk_per_trade`` of
    ``equity``. NaN where the risk is 0 or a price is missing. A float for scalars, else an
    array."""
    entry_a = np.asarray(entry, dtype=float)
    risk = np.abs(entry_a - np.asarray(stop, dtype=float))
    exit_a = entry_a if exit_price is None else np.asarray(exit_price, dtype=float)
    slip = params.slippage_bps / 10_000.0
    if qty is None:
        fee_r = np.asarray(2.0 * params.fee_per_fill / (params.risk_per_trade * equity))
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            fee_r = 2.0 * params.fee_per_fill / (np.asarray(qty, dtype=float) * risk)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(risk > 0, slip * (entry_a + exit_a) / risk + fee_r, np.nan)
    return _out(np.asarray(out, dtype=float))


def net_r(realized_r: Any, entry: Any, stop: Any, *, exit_price: Any, params: StrategyParams,
          qty: Any = None, equity: float = REFERENCE_EQUITY) -> Any:
    """Realized R net of fees and slippage: ``realized_r − cost_r`` (:func:`cost_r` with the
    trade's exit price). NaN where any input is missing."""
    cost = cost_r(entry, stop, params=params, exit_price=exit_price, qty=qty, equity=equity)
    return _out(np.asarray(realized_r, dtype=float) - np.asarray(cost, dtype=float))


def won_after_costs(realized_r: Any, entry: Any, stop: Any, *, exit_price: Any,
                    params: StrategyParams, equity: float = REFERENCE_EQUITY) -> np.ndarray:
    """1.0 where an exited trade made money after fees and slippage (:func:`net_r` > 0, the
    position sized at ``risk_per_trade`` of ``equity``), 0.0 where it did not, NaN where its
    outcome or prices are unknown: the target of the win-rate calibration. Always an array."""
    net = np.atleast_1d(np.asarray(net_r(realized_r, entry, stop, exit_price=exit_price,
                                         params=params, equity=equity), dtype=float))
    return np.where(np.isfinite(net), (net > 0).astype(float), np.nan)
