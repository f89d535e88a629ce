"""Portfolio simulation across symbols: sizing, the open-risk cap, position limit, costs, equity.

Rules (STRATEGY.md, "Sizing and portfolio"): risk ``params.risk_per_trade`` of equity per trade;
risk per share = max(|fill − stop|, 0.01, ``params.min_risk_atr`` · ATR at the signal); quantity
rounded down; a new position opens only while the total open risk (sum of each open position's
initial risk) stays within ``params.max_open_risk`` of equity, and while fewer than
``max_positions`` are open. Costs: ``params.fee_per_fill`` per fill (entry and exit) and
``params.slippage_bps`` against the trader on both fills.

Time alignment: a market entry happens at its signal bar's close, a stop-order entry during
its fill bar (ordered at that bar's open label, the conservative end); an exit is known at the
close of its exit bar (``exit_ts``). Entries at the same moment are decided in order of
confidence (highest first), after every exit known by then. Sizing uses *closed-trade* equity
(initial equity + realized P&L − entry fees of open positions): the cap never depends on a
mark that was not yet known. The equity curve is marked to market at every bar close of the
union timeline of the symbols; its value at label t is the equity at the close of bar t.

One Python step per candidate trade (a heap of open positions), never per bar; the equity curve
is built with cumulative sums over bar positions.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from swing_core.config import StrategyParams

__all__ = ["PortfolioResult", "simulate_portfolio", "SKIP_REASONS"]

#: Values of the ``portfolio_status`` column.
SKIP_REASONS: tuple[str, ...] = ("taken", "max_positions", "open_risk", "too_small")

_REQUIRED = ("symbol", "entry_time", "exit_ts", "fill_pos", "exit_pos", "fill_price",
             "exit_price", "stop", "atr", "side_sign", "confidence")


@dataclass(frozen=True)
class PortfolioResult:
    """``trades``: the candidates with ``portfolio_status``, ``qty``, ``entry_price_net``,
    ``exit_price_net``, ``fees``, ``pnl`` (net, in account currency), ``return_pct`` (net pnl
    / entry notional, a fraction) and ``risk_amount``; ``equity``: a float Series over the
    union timeline (bar open labels, value at each bar's close); ``exposure``: bool Series,
    True where at least one position was held during the bar."""

    trades: pd.DataFrame
    equity: pd.Series
    exposure: pd.Series


def _decide(cand: pd.DataFrame, params: StrategyParams, *, initial_equity: float,
            max_positions: int) -> tuple[np.ndarray, ...]:
    """Event loop over candidates (time order): status, qty, risk amount per candidate."""
    n = len(cand)
    entry_t = cand["entry_time"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    exit_t = cand["exit_ts"].to_numpy(dtype="datetime64[ns]")
    exit_key = np.where(np.isnat(exit_t), np.iinfo(np.int64).max, exit_t.astype(np.int64))
    fill = cand["fill_price"].to_numpy(float)
    risk_ps = np.maximum.reduce([
        np.abs(fill - cand["stop"].to_numpy(float)),
        np.full(n, 0.01),
        params.min_risk_atr * np.nan_to_num(cand["atr"].to_numpy(float)),
    ])
    net_pnl = cand["_net_pnl_per_share"].to_numpy(float)
    order = np.lexsort((-cand["confidence"].to_numpy(float), entry_t))
    status = np.full(n, "", dtype=object)
    qty = np.zeros(n)
    risk_amount = np.zeros(n)
    fee = params.fee_per_fill
    equity = float(initial_equity)
    open_risk = 0.0
    heap: list[tuple[int, int]] = []
    for i in order:
        while heap and heap[0][0] <= entry_t[i]:
            _, j = heapq.heappop(heap)
            equity += qty[j] * net_pnl[j] - fee  # exit fee now; entry fee was paid at entry
            open_risk -= risk_amount[j]
        size = math.floor(params.risk_per_trade * max(equity, 0.0) / risk_ps[i])
        if len(heap) >= max_positions:
            status[i] = "max_positions"
        elif size < 1:
            status[i] = "too_small"
        elif open_risk + size * risk_ps[i] > params.max_open_risk * equity * (1 + 1e-12):
            status[i] = "open_risk"
        else:
            status[i] = "taken"
            qty[i] = size
            risk_amount[i] = size * risk_ps[i]
            open_risk += risk_amount[i]
            equity -= fee
            heapq.heappush(heap, (int(exit_key[i]), int(i)))
    return status, qty, risk_amount


def simulate_portfolio(
    candidates: pd.DataFrame,
    closes: dict[str, pd.Series],
    *,
    params: StrategyParams,
    initial_equity: float = 100_000.0,
    max_positions: int = 10,
    start: pd.Timestamp | None = None,
) -> PortfolioResult:
    """Size and filter filled trades across symbols; build the equity curve.

    ``candidates``: one row per *filled* trade with columns symbol, entry_time, exit_ts
    (NaT while open), fill_pos / exit_pos (positions in that symbol's ``closes`` series; -1
    while open), fill_price, exit_price, stop, atr (at the signal), side_sign (+1/-1),
    confidence. ``closes``: each symbol's close series indexed by bar open labels (UTC).
    ``start``: first label of the equity curve (earlier bars are warm-up).
    """
    missing = [c for c in _REQUIRED if c not in candidates.columns]
    if missing:
        raise ValueError(f"candidates lack column(s): {', '.join(missing)}")
    cand = candidates.reset_index(drop=True).copy()
    slip = params.slippage_bps / 10_000.0
    side = cand["side_sign"].to_numpy(float)
    cand["entry_price_net"] = cand["fill_price"].to_numpy(float) * (1 + side * slip)
    cand["exit_price_net"] = cand["exit_price"].to_numpy(float) * (1 - side * slip)
    cand["_net_pnl_per_share"] = side * (cand["exit_price_net"] - cand["entry_price_net"])
    if len(cand):
        status, qty, risk_amount = _decide(cand, params, initial_equity=initial_equity,
                                           max_positions=max_positions)
    else:
        status, qty, risk_amount = (np.empty(0, dtype=object), np.empty(0), np.empty(0))
    closed = cand["exit_pos"].to_numpy() >= 0
    cand["portfolio_status"] = status
    cand["qty"] = qty
    cand["risk_amount"] = risk_amount
    cand["fees"] = np.where(qty > 0, params.fee_per_fill * np.where(closed, 2, 1), 0.0)
    cand["pnl"] = np.where((qty > 0) & closed, qty * cand["_net_pnl_per_share"] - cand["fees"],
                           np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        cand["return_pct"] = cand["pnl"] / (qty * cand["entry_price_net"])
    del cand["_net_pnl_per_share"]  # in place: drop() would copy every column
    equity, exposure = _equity_curve(cand[cand["qty"] > 0], closes, params=params,
                                     initial_equity=initial_equity, start=start)
    return PortfolioResult(trades=cand, equity=equity, exposure=exposure)


def _union_index(closes: dict[str, pd.Series], start: pd.Timestamp | None) -> pd.DatetimeIndex:
    idx = pd.DatetimeIndex([], tz="UTC")
    for series in closes.values():
        idx = idx.union(series.index)
    if start is not None:
        idx = idx[idx >= start]
    return idx.rename("ts")


def _equity_curve(
    taken: pd.DataFrame, closes: dict[str, pd.Series], *, params: StrategyParams,
    initial_equity: float, start: pd.Timestamp | None,
) -> tuple[pd.Series, pd.Series]:
    """Mark-to-market equity at every bar close (cumulative sums, no loop over bars)."""
    union = _union_index(closes, start)
    total = np.zeros(len(union))
    held = np.zeros(len(union), dtype=np.int64)
    fee = params.fee_per_fill
    for symbol, trades in taken.groupby("symbol", sort=False):
        close = closes[symbol]
        n = len(close)
        fp = trades["fill_pos"].to_numpy(np.int64)
        xp = trades["exit_pos"].to_numpy(np.int64)
        end = np.where(xp >= 0, xp, n)  # still open: held to the last bar
        signed_qty = trades["side_sign"].to_numpy(float) * trades["qty"].to_numpy(float)
        dq = np.zeros(n + 1)
        dbasis = np.zeros(n + 1)
        drealized = np.zeros(n + 1)
        np.add.at(dq, fp, signed_qty)
        np.add.at(dq, end, -signed_qty)
        basis = signed_qty * trades["entry_price_net"].to_numpy(float)
        np.add.at(dbasis, fp, basis)
        np.add.at(dbasis, end, -basis)
        np.add.at(drealized, fp, -fee)
        closed = xp >= 0
        np.add.at(drealized, xp[closed], trades["pnl"].to_numpy(float)[closed] + fee)
        value = (np.cumsum(dq)[:n] * close.to_numpy(float) - np.cumsum(dbasis)[:n]
                 + np.cumsum(drealized)[:n])
        # exposure: from the entry bar (a market entry's signal bar, filled at its close, as
        # backtesting.py's trade_on_close; a stop entry's fill bar) through the exit bar
        # (backtesting.py's EntryBar … ExitBar).
        dheld = np.zeros(n + 1, dtype=np.int64)
        np.add.at(dheld, np.minimum(fp, n), 1)
        np.add.at(dheld, np.minimum(end + 1, n), -1)
        sym_held = np.cumsum(dheld)[:n] > 0
        aligned = pd.Series(value, index=close.index).reindex(union, method="ffill")
        total += aligned.fillna(0.0).to_numpy()
        held_aligned = pd.Series(sym_held.astype(np.int64), index=close.index)
        held += held_aligned.reindex(union, method="ffill").fillna(0).to_numpy(np.int64)
    equity = pd.Series(initial_equity + total, index=union, name="Equity")
    return equity, pd.Series(held > 0, index=union, name="Exposed")
