"""Backtest statistics as one flat, named ``pd.Series`` (backtesting.py's names and formulas),
plus our additions in the same style, breakdowns and the calibration of predicted win rates
(reliability bins and Brier score from :mod:`swing_core.calibration`).

Pure functions of a trades table and an equity curve; nothing here knows about plotting or
storage. Formulas follow backtesting.py's ``compute_stats`` (compounded annualization from
daily equity returns, geometric mean trade return for ``Avg. Trade [%]``, SQN on P&L) so the
numbers a trader knows from it mean the same here. Trade returns are net of fees and slippage.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from swing_core.calibration import brier_score, reliability_curve

__all__ = [
    "breakdown",
    "brier_score",
    "calibration_table",
    "compute_stats",
    "drawdown_episodes",
    "geometric_mean",
]

EXIT_COUNT_NAMES = {"STOP": "# Stop", "TARGET": "# Target", "TIME": "# Time",
                    "NOT_FILLED": "# Not Filled", "PENDING": "# Pending"}


def geometric_mean(returns: pd.Series | np.ndarray) -> float:
    """Geometric mean of simple returns (fractions); 0 when any return is ≤ -100 %."""
    values = np.nan_to_num(np.asarray(returns, dtype=float)) + 1.0
    if values.size == 0:
        return float("nan")
    if np.any(values <= 0):
        return 0.0
    return float(np.exp(np.log(values).sum() / values.size) - 1.0)


def drawdown_episodes(equity: pd.Series) -> pd.DataFrame:
    """Drawdown episodes of an equity curve: start (last peak), end (recovery or last bar),
    ``duration`` (Timedelta between them) and ``peak_dd`` (deepest drawdown, a fraction).

    Same definition as backtesting.py: an episode runs between two bars at a running high with
    at least one bar below it in between; an unrecovered drawdown ends at the last bar.
    """
    values = equity.to_numpy(dtype=float)
    if values.size == 0:
        return pd.DataFrame(columns=["start", "end", "duration", "peak_dd"])
    dd = 1.0 - values / np.maximum.accumulate(values)
    marks = np.unique(np.r_[np.flatnonzero(dd == 0), values.size - 1])
    prev, cur = marks[:-1], marks[1:]
    keep = cur > prev + 1
    prev, cur = prev[keep], cur[keep]
    if prev.size == 0:
        return pd.DataFrame(columns=["start", "end", "duration", "peak_dd"])
    peaks = np.array([dd[a:b + 1].max() for a, b in zip(prev, cur, strict=True)])
    index = equity.index
    return pd.DataFrame({
        "start": index[prev], "end": index[cur],
        "duration": index[cur] - index[prev], "peak_dd": peaks,
    })


def _annual_days(index: pd.DatetimeIndex) -> float:
    weekend_share = index.dayofweek.to_series().between(5, 6).mean()
    return 365.0 if weekend_share > 2 / 7 * 0.6 else 252.0


def _risk_stats(equity: pd.Series, risk_free_rate: float) -> dict[str, float]:
    """Annualized return / volatility, Sharpe, Sortino from daily equity returns."""
    nan = float("nan")
    if not isinstance(equity.index, pd.DatetimeIndex) or len(equity) < 2:
        return dict.fromkeys(("ret", "vol", "sharpe", "sortino"), nan)
    # as backtesting.py: the first day's NaN return counts as 0 in the geometric mean
    day_returns = equity.resample("D").last().dropna().pct_change()
    if day_returns.count() == 0:
        return dict.fromkeys(("ret", "vol", "sharpe", "sortino"), nan)
    days = _annual_days(equity.index)
    gmean = geometric_mean(day_returns)
    ann_return = (1 + gmean) ** days - 1
    var = day_returns.var(ddof=1) if day_returns.count() > 1 else 0.0
    ann_vol = float(np.sqrt(max((var + (1 + gmean) ** 2) ** days - (1 + gmean) ** (2 * days),
                                0.0)))
    downside = float(np.sqrt((day_returns.clip(upper=0) ** 2).mean()) * np.sqrt(days))
    return {
        "ret": ann_return,
        "vol": ann_vol,
        "sharpe": (ann_return - risk_free_rate) / ann_vol if ann_vol else nan,
        "sortino": (ann_return - risk_free_rate) / downside if downside else nan,
    }


def calibration_table(predicted: np.ndarray, outcome: np.ndarray, *, bins: int = 10
                      ) -> pd.DataFrame:
    """Reliability bins of a run (:func:`swing_core.calibration.reliability_curve`, every
    bin kept): for predictions in [k/bins, (k+1)/bins): n, mean predicted win rate, observed
    win rate (share of outcomes that were wins); empty bins have n = 0 and NaN rates."""
    curve = reliability_curve(predicted, outcome, bins=bins, empty_bins=True)
    return pd.DataFrame({"bin_low": curve["bin_low"], "bin_high": curve["bin_high"],
                         "n": curve["count"], "mean_predicted": curve["predicted"],
                         "observed_rate": curve["observed"]})


def breakdown(trades: pd.DataFrame, by: str) -> pd.DataFrame:
    """Per-group trade statistics (closed trades): ``# Trades``, ``Win Rate [%]``, ``Avg. R``,
    ``Total R``, ``PnL [$]``, ``Profit Factor`` (on P&L)."""
    columns = ["# Trades", "Win Rate [%]", "Avg. R", "Total R", "PnL [$]", "Profit Factor"]
    if trades.empty or by not in trades:
        return pd.DataFrame(columns=columns)
    codes, groups = pd.factorize(trades[by].astype(str), sort=True)
    m = len(groups)
    pnl = trades["pnl"].to_numpy(float)
    r = trades["realized_r"].to_numpy(float)
    count = np.bincount(codes, minlength=m)
    total_r = np.bincount(codes, weights=r, minlength=m)
    gains = np.bincount(codes, weights=np.clip(pnl, 0, None), minlength=m)
    losses = np.bincount(codes, weights=-np.clip(pnl, None, 0), minlength=m)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = pd.DataFrame({
            "# Trades": count,
            "Win Rate [%]": np.bincount(codes, weights=(pnl > 0).astype(float), minlength=m)
            / count * 100,
            "Avg. R": total_r / count,
            "Total R": total_r,
            "PnL [$]": np.bincount(codes, weights=pnl, minlength=m),
            "Profit Factor": np.where(losses > 0, gains / losses, np.nan),
        }, index=pd.Index(groups, name=by))
    return out


def _trade_stats(trades: pd.DataFrame) -> dict[str, object]:
    pnl = trades["pnl"].astype(float)
    returns = trades["return_pct"].astype(float)
    durations = trades["exit_ts"] - trades["entry_time"]
    n = len(trades)
    win_rate = (pnl > 0).mean() if n else np.nan
    avg_win, avg_loss = pnl[pnl > 0].mean(), -pnl[pnl < 0].mean()
    return {
        "# Trades": n,
        "Win Rate [%]": win_rate * 100,
        "Best Trade [%]": returns.max() * 100,
        "Worst Trade [%]": returns.min() * 100,
        "Avg. Trade [%]": geometric_mean(returns) * 100 if n else np.nan,
        "Max. Trade Duration": durations.max() if n else pd.NaT,
        "Avg. Trade Duration": durations.mean() if n else pd.NaT,
        "Profit Factor": (returns[returns > 0].sum() / abs(returns[returns < 0].sum())
                          if (returns < 0).any() else np.nan),
        "Expectancy [%]": returns.mean() * 100,
        "SQN": (np.sqrt(n) * pnl.mean() / pnl.std()) if n > 1 and pnl.std() else np.nan,
        "Kelly Criterion": (win_rate - (1 - win_rate) / (avg_win / avg_loss)
                            if n and avg_loss and np.isfinite(avg_win / avg_loss) else np.nan),
    }


def compute_stats(
    trades: pd.DataFrame,
    equity: pd.Series,
    *,
    exposure: pd.Series | None = None,
    buy_hold_return_pct: float = float("nan"),
    signals: pd.DataFrame | None = None,
    risk_free_rate: float = 0.0,
    resolution: str | None = None,
    initial_equity: float | None = None,
) -> pd.Series:
    """Flat statistics of a run.

    ``trades``: closed trades (one row each) with ``pnl`` (net, currency), ``return_pct`` (net,
    fraction of entry notional), ``entry_time``, ``exit_ts``, ``realized_r``, ``exit_reason``,
    ``both_touched``, optional ``prior_win_rate`` and ``fees``. ``equity``: marked to market
    at every bar close, indexed by bar labels (UTC). ``exposure``: bool per equity bar (a
    position held). ``signals``: every plan of the run (for the counts by exit reason,
    including NOT_FILLED and PENDING, and the portfolio's skips). ``risk_free_rate``: annual,
    a fraction. ``resolution``: durations are rounded up to it (e.g. "D", "min"), as
    backtesting.py rounds to the data's period. ``initial_equity``: the base of
    ``Return [%]`` (default the first equity value; differs when a trade opens at the first
    bar's close and its costs are already marked). Durations are pandas Timedeltas, percentages
    are in percent.
    """
    nan = float("nan")
    s: dict[str, object] = {}
    index = equity.index
    s["Start"] = index[0] if len(index) else pd.NaT
    s["End"] = index[-1] if len(index) else pd.NaT
    s["Duration"] = s["End"] - s["Start"] if len(index) else pd.NaT
    s["Exposure Time [%]"] = (float(exposure.mean()) * 100 if exposure is not None
                              and len(exposure) else nan)
    values = equity.to_numpy(dtype=float)
    s["Equity Final [$]"] = values[-1] if values.size else nan
    s["Equity Peak [$]"] = values.max() if values.size else nan
    base = initial_equity if initial_equity is not None else (values[0] if values.size else nan)
    s["Return [%]"] = (values[-1] - base) / base * 100 if values.size else nan
    s["Buy & Hold Return [%]"] = buy_hold_return_pct
    risk = _risk_stats(equity, risk_free_rate)
    s["Return (Ann.) [%]"] = risk["ret"] * 100
    s["Volatility (Ann.) [%]"] = risk["vol"] * 100
    s["Sharpe Ratio"] = risk["sharpe"]
    s["Sortino Ratio"] = risk["sortino"]
    dd = 1.0 - values / np.maximum.accumulate(values) if values.size else np.array([0.0])
    max_dd = float(np.nan_to_num(dd.max()))
    s["Calmar Ratio"] = risk["ret"] / max_dd if max_dd else nan
    episodes = drawdown_episodes(equity)
    s["Max. Drawdown [%]"] = -max_dd * 100
    s["Avg. Drawdown [%]"] = -episodes["peak_dd"].mean() * 100 if len(episodes) else nan
    s["Max. Drawdown Duration"] = episodes["duration"].max() if len(episodes) else pd.NaT
    s["Avg. Drawdown Duration"] = episodes["duration"].mean() if len(episodes) else pd.NaT
    s.update(_trade_stats(trades))
    s.update(_additions(trades, signals))
    if resolution:
        for key in ("Avg. Drawdown Duration", "Max. Drawdown Duration", "Max. Trade Duration",
                    "Avg. Trade Duration"):
            if isinstance(s[key], pd.Timedelta):
                s[key] = s[key].ceil(resolution)
    return pd.Series(s, dtype=object)


def _additions(trades: pd.DataFrame, signals: pd.DataFrame | None) -> dict[str, object]:
    """Our statistics in backtesting.py's style: R, exit reasons, calibration, costs."""
    r = trades["realized_r"].astype(float) if "realized_r" in trades else pd.Series(dtype=float)
    out: dict[str, object] = {
        "Avg. R": r.mean() if len(r) else np.nan,
        "Total R": r.sum() if len(r) else 0.0,
        "Best R": r.max() if len(r) else np.nan,
        "Worst R": r.min() if len(r) else np.nan,
        "Commissions [$]": float(trades["fees"].sum()) if "fees" in trades else np.nan,
    }
    reasons = trades["exit_reason"] if "exit_reason" in trades else pd.Series(dtype=object)
    source = signals if signals is not None else trades
    counts = source["exit_reason"].value_counts() if "exit_reason" in source else {}
    for reason, name in EXIT_COUNT_NAMES.items():
        if reason in ("NOT_FILLED", "PENDING") or signals is None:
            out[name] = int(counts.get(reason, 0))
        else:
            out[name] = int((reasons == reason).sum())
    out["# Both Touched"] = int(trades["both_touched"].sum()) if "both_touched" in trades else 0
    if signals is not None:
        out["# Signals"] = len(signals)
        status = signals.get("portfolio_status", pd.Series(dtype=object))
        out["# Skipped (Open Position)"] = int((~signals.get(
            "taken", pd.Series(True, index=signals.index)).astype(bool)).sum())
        out["# Skipped (Risk Cap)"] = int((status == "open_risk").sum())
        out["# Skipped (Max Positions)"] = int((status == "max_positions").sum())
    if "prior_win_rate" in trades:
        predicted = trades["prior_win_rate"].to_numpy(float)
        wins = (r > 0).to_numpy(float)
        has = np.isfinite(predicted)
        out["# Trades With Prior"] = int(has.sum())
        out["Avg. Predicted Win Rate [%]"] = (float(np.mean(predicted[has])) * 100
                                              if has.any() else np.nan)
        out["Brier Score"] = brier_score(predicted, wins)
    return out
