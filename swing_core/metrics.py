"""Backtest statistics as one flat, named ``pd.Series`` (backtesting.py's names and formulas),
plus our additions in the same style, breakdowns and the calibration of predicted win rates
(reliability bins and Brier score from :mod:`swing_core.calibration`).

Pure functions of a trades table and an equity curve; nothing here knows about plotting or
storage. Formulas follow backtesting.py's ``compute_stats`` (compounded annualization from
daily equity returns, geometric mean trade return for ``Avg. Trade [%]``, SQN on P&L) so the
numbers a trader knows from it mean the same here. Trade returns are net of fees and slippage.
:func:`compute_stats` is the one function that writes a run's statistics.

The counts of a run, defined here once (:class:`RunCounts`) and shown under the same label on
every surface (statistics, the Backtest Review page, saved runs, universe runs, the CLI):

- a **signal** (``# Signals``): a complete entry plan at a bar from the run's start on;
- a **taken** signal: one not skipped because its symbol still had a trade open (``# Skipped
  (Open Position)`` are the others); the rows of a result's ``trades`` and of the stored
  ``backtest_trades``, whatever became of them (NOT_FILLED, skipped by the portfolio, …);
- a **filled trade** (:func:`filled_mask`): a taken signal whose entry traded and for which the
  portfolio opened a position (``qty > 0``), closed or still open at the end of the data
  (``# Open at End``);
- a **closed trade** (:func:`closed_mask`): a filled trade with an exit (STOP, TARGET or TIME).
  ``# Trades`` counts these, as backtesting.py does, and every trade statistic (win rate,
  SQN, R, breakdowns, calibration, Brier score) is computed over them.

Two kinds of win, named apart (:func:`won_pnl`, :func:`won_r`): ``Win Rate [%]`` keeps
backtesting.py's meaning, P&L > 0 after fees and slippage; ``R Win Rate [%]`` is the share of
closed trades with realized R > 0 (before costs), the event a pattern prior's raw win rate
counts among the neighbours (STRATEGY.md, "Pattern priors"). The predicted win rate is
calibrated to the outcome a trader keeps, a win after costs (:mod:`swing_core.costs`), so the
calibration bins and the Brier score compare it with P&L wins.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from swing_core.calibration import brier_score, reliability_curve

__all__ = [
    "CLOSED_EXIT_REASONS",
    "RunCounts",
    "breakdown",
    "brier_score",
    "calibration_table",
    "closed_mask",
    "compute_stats",
    "drawdown_episodes",
    "filled_mask",
    "geometric_mean",
    "won_pnl",
    "won_r",
]

EXIT_COUNT_NAMES = {"STOP": "# Stop", "TARGET": "# Target", "TIME": "# Time",
                    "NOT_FILLED": "# Not Filled", "PENDING": "# Pending"}
#: Exit reasons of a closed trade (its outcome is known); NOT_FILLED and PENDING have none.
CLOSED_EXIT_REASONS: tuple[str, ...] = ("STOP", "TARGET", "TIME")
_NO_TIME = pd.Timedelta(0)


# --------------------------------------------------------------------------- definitions


def filled_mask(trades: pd.DataFrame) -> np.ndarray:
    """Which rows of a run's taken signals are **filled trades**: the entry traded and the
    portfolio opened a position (``qty > 0``), closed or still open at the end of the data.
    A frame without ``qty`` (no portfolio ran) has none."""
    if "qty" not in trades:
        return np.zeros(len(trades), bool)
    return pd.to_numeric(trades["qty"], errors="coerce").fillna(0.0).to_numpy(float) > 0


def closed_mask(trades: pd.DataFrame) -> np.ndarray:
    """Which rows are **closed trades** (``# Trades``): filled trades with an exit (STOP,
    TARGET or TIME). Every trade statistic is computed over these."""
    if "exit_reason" not in trades:
        return np.zeros(len(trades), bool)
    return filled_mask(trades) & trades["exit_reason"].isin(CLOSED_EXIT_REASONS).to_numpy(bool)


def won_pnl(pnl: pd.Series | np.ndarray) -> np.ndarray:
    """A **P&L win**: net P&L > 0, after fees and slippage (``Win Rate [%]``, backtesting.py's
    meaning; breakdowns' win rate too): what the predicted win rate is calibrated to, so the
    target of the calibration bins and the Brier score."""
    return np.asarray(pnl, dtype=float) > 0


def won_r(realized_r: pd.Series | np.ndarray) -> np.ndarray:
    """An **R win**: realized R > 0, before costs (``R Win Rate [%]``): what a pattern prior's
    raw win rate counts among the neighbours."""
    return np.asarray(realized_r, dtype=float) > 0


@dataclass(frozen=True)
class RunCounts:
    """What a run counted (definitions in the module docstring). ``signals``: every signal;
    ``taken``: those not skipped for an open position; ``filled``: filled trades; ``closed``:
    closed trades (``# Trades``); ``not_filled`` / ``pending``: taken signals whose entry never
    traded / whose outcome is not known yet at the end of the data (portfolio or not);
    ``skipped_risk_cap`` / ``skipped_max_positions``: filled entries the portfolio did not
    size; ``invalid_plans``: plans with a stop or target on the wrong side (not signals);
    ``symbols``: symbols that ran."""

    signals: int
    taken: int
    filled: int
    closed: int
    not_filled: int = 0
    pending: int = 0
    skipped_risk_cap: int = 0
    skipped_max_positions: int = 0
    invalid_plans: int = 0
    symbols: int = 0

    @property
    def skipped_open_position(self) -> int:
        """Signals skipped because their symbol still had a trade open."""
        return self.signals - self.taken

    @property
    def open_at_end(self) -> int:
        """Filled trades without an exit at the end of the data (not in the statistics)."""
        return self.filled - self.closed

    @classmethod
    def of(cls, taken: pd.DataFrame, *, signals: int, invalid_plans: int = 0,
           symbols: int = 0) -> RunCounts:
        """The counts of a run from its taken signals (a result's ``trades``: ``exit_reason``,
        ``qty``, ``portfolio_status``) and the number of all its signals."""
        reason = taken["exit_reason"]
        status = taken["portfolio_status"] if "portfolio_status" in taken else pd.Series(
            dtype=object)
        return cls(signals=int(signals), taken=len(taken),
                   filled=int(filled_mask(taken).sum()), closed=int(closed_mask(taken).sum()),
                   not_filled=int((reason == "NOT_FILLED").sum()),
                   pending=int((reason == "PENDING").sum()),
                   skipped_risk_cap=int((status == "open_risk").sum()),
                   skipped_max_positions=int((status == "max_positions").sum()),
                   invalid_plans=int(invalid_plans), symbols=int(symbols))


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
    # as backtesting.py 0.6: daily returns of the last equity of each day, the first dropped
    day_returns = equity.resample("D").last().dropna().pct_change().dropna()
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
    win rate (share of ``outcome`` that were wins: a run passes P&L wins, :func:`won_pnl`,
    the event the calibrated win rate forecasts); empty bins have n = 0 and NaN rates."""
    curve = reliability_curve(predicted, outcome, bins=bins, empty_bins=True)
    return pd.DataFrame({"bin_low": curve["bin_low"], "bin_high": curve["bin_high"],
                         "n": curve["count"], "mean_predicted": curve["predicted"],
                         "observed_rate": curve["observed"]})


def breakdown(trades: pd.DataFrame, by: str) -> pd.DataFrame:
    """Per-group trade statistics (closed trades): ``# Trades``, ``Win Rate [%]`` (P&L wins,
    :func:`won_pnl`), ``Avg. R``, ``Total R``, ``PnL [$]``, ``Profit Factor`` (on P&L)."""
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
            "Win Rate [%]": np.bincount(codes, weights=won_pnl(pnl).astype(float), minlength=m)
            / count * 100,
            "Avg. R": total_r / count,
            "Total R": total_r,
            "PnL [$]": np.bincount(codes, weights=pnl, minlength=m),
            "Profit Factor": np.where(losses > 0, gains / losses, np.nan),
        }, index=pd.Index(groups, name=by))
    return out


def _trade_stats(trades: pd.DataFrame, bar_delta: pd.Timedelta) -> dict[str, object]:
    pnl = trades["pnl"].astype(float)
    returns = trades["return_pct"].astype(float)
    # backtesting.py's Duration: exit bar's label - entry bar's label (fill_ts is the label of
    # the entry bar: the signal bar for a market entry at its close, the fill bar for a stop)
    durations = trades["exit_ts"] - bar_delta - trades["fill_ts"]
    n = len(trades)
    win_rate = won_pnl(pnl).mean() if n else np.nan
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
    counts: RunCounts | None = None,
    exposure: pd.Series | None = None,
    buy_hold_return_pct: float = float("nan"),
    risk_free_rate: float = 0.0,
    resolution: str | None = None,
    bar_delta: pd.Timedelta = _NO_TIME,
    initial_equity: float | None = None,
    data_sources: Iterable[str] | None = None,
    lookahead_ok: bool | None = None,
) -> pd.Series:
    """Flat statistics of a run: the only function that writes them.

    ``trades``: the closed trades (:func:`closed_mask`; one row each) with ``pnl`` (net,
    currency), ``return_pct`` (net, fraction of entry notional), ``fill_ts`` (label of the
    entry bar), ``exit_ts`` (close of the exit bar; ``bar_delta`` is the bar length),
    ``realized_r``, ``exit_reason``, ``both_touched``, optional ``prior_win_rate`` and ``fees``;
    ``# Trades`` is their number. ``equity``: marked to market at every bar close, indexed by
    bar labels (UTC). ``counts``: the run's :class:`RunCounts` (``# Signals``, ``# Not Filled``,
    ``# Pending``, ``# Open at End``, the skips, ``# Invalid Plans``, ``# Symbols``); its
    ``closed`` must equal ``len(trades)``. ``exposure``: bool per equity bar (a position held).
    ``risk_free_rate``: annual, a fraction. ``resolution``: durations are rounded up to it
    (e.g. "D", "min"), as backtesting.py rounds to the data's period. ``initial_equity``: the
    base of ``Return [%]`` (default the first equity value; differs when a trade opens at the
    first bar's close and its costs are already marked). ``data_sources``: where the bars came
    from (``Data Sources``); ``lookahead_ok``: the look-ahead check's verdict when it ran
    (``Look-ahead Check``). Durations are pandas Timedeltas, percentages are in percent.
    """
    if counts is not None and counts.closed != len(trades):
        raise ValueError(f"compute_stats: {len(trades)} closed trades given but counts.closed "
                         f"is {counts.closed}: select the trades with closed_mask.")
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
    years = (s["Duration"] / pd.Timedelta(days=365.25)) if len(index) else nan
    s["CAGR [%]"] = ((values[-1] / values[0]) ** (1 / years) - 1) * 100 if years else nan
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
    s.update(_trade_stats(trades, bar_delta))
    s.update(_additions(trades, counts))
    if lookahead_ok is not None:
        s["Look-ahead Check"] = "passed" if lookahead_ok else "FAILED"
    if data_sources is not None:
        s["Data Sources"] = ", ".join(sorted(set(data_sources)))
    if resolution:
        for key in ("Avg. Drawdown Duration", "Max. Drawdown Duration", "Max. Trade Duration",
                    "Avg. Trade Duration"):
            if isinstance(s[key], pd.Timedelta):
                s[key] = s[key].ceil(resolution)
    return pd.Series(s, dtype=object)


def _additions(trades: pd.DataFrame, counts: RunCounts | None) -> dict[str, object]:
    """Our statistics in backtesting.py's style: R, exit reasons, the run's counts, R wins,
    calibration, costs."""
    r = trades["realized_r"].astype(float) if "realized_r" in trades else pd.Series(dtype=float)
    out: dict[str, object] = {
        "Avg. R": r.mean() if len(r) else np.nan,
        "Total R": r.sum() if len(r) else 0.0,
        "Best R": r.max() if len(r) else np.nan,
        "Worst R": r.min() if len(r) else np.nan,
        "Commissions [$]": float(trades["fees"].sum()) if "fees" in trades else np.nan,
    }
    reasons = trades["exit_reason"] if "exit_reason" in trades else pd.Series(dtype=object)
    for reason in CLOSED_EXIT_REASONS:
        out[EXIT_COUNT_NAMES[reason]] = int((reasons == reason).sum())
    out["# Not Filled"] = counts.not_filled if counts is not None else 0
    out["# Pending"] = counts.pending if counts is not None else 0
    if counts is not None:
        out["# Open at End"] = counts.open_at_end
    out["# Both Touched"] = int(trades["both_touched"].sum()) if "both_touched" in trades else 0
    if counts is not None:
        out["# Signals"] = counts.signals
        out["# Skipped (Open Position)"] = counts.skipped_open_position
        out["# Skipped (Risk Cap)"] = counts.skipped_risk_cap
        out["# Skipped (Max Positions)"] = counts.skipped_max_positions
        out["# Invalid Plans"] = counts.invalid_plans
        out["# Symbols"] = counts.symbols
    wins = won_r(r)
    out["R Win Rate [%]"] = float(wins.mean()) * 100 if len(r) else np.nan
    if "prior_win_rate" in trades:
        predicted = trades["prior_win_rate"].to_numpy(float)
        has = np.isfinite(predicted)
        out["# Trades With Prior"] = int(has.sum())
        # the predicted win rate is calibrated to a win after costs: Brier against won_pnl
        out["Avg. Predicted Win Rate [%]"] = (float(np.mean(predicted[has])) * 100
                                              if has.any() else np.nan)
        pnl = trades["pnl"].to_numpy(float) if "pnl" in trades else np.full(len(trades), np.nan)
        out["Brier Score"] = brier_score(predicted, np.where(np.isfinite(pnl), won_pnl(pnl),
                                                             np.nan))
    return out
