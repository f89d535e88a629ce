"""What the neighbours of a setup say: neighbour records, prior statistics, the confidence blend.

STRATEGY.md, "Pattern priors": n, win rate (share with R > 0), average R, average win R,
average loss R, profit factor (sum of wins / |sum of losses|), median hold in bars (all, wins,
losses) and in days, counts by exit reason; expected R = win rate · average win R +
(1 − win rate) · average loss R. :class:`PriorStats` is one query's, :class:`PriorBatch` many
queries' as arrays (the walk-forward backtest's), both computed by the same formulas.
STRATEGY.md, "Confidence": :func:`blend_confidence`.

**Differs** (honest small samples): the win rate is not the bare share of winning neighbours,
which says 0 % or 100 % from a handful of them, but the posterior mean of a Beta prior:
(wins + s·m) / (n + s), ``s`` = :data:`WIN_RATE_PRIOR_STRENGTH` (4) pseudo-outcomes centred on
the base rate ``m`` (:data:`WIN_RATE_PRIOR_CENTRE`, 50 %, unless the caller passes one). 3 wins
of 3 say 71 %, 0 of 3 say 29 %, 45 of 60 say 73 % (not 75 %): it matters only when n is small.
Expected R uses that win rate (the formula above, with the rate shown). The bare share stays
available as ``win_rate_unshrunk``; ``n`` (how many neighbours a rate rests on) goes with every
rate.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from swing_core.calibration.scores import (
    WIN_RATE_PRIOR_CENTRE,
    WIN_RATE_PRIOR_STRENGTH,
    shrunk_win_rate,
)
from swing_core.config import BARS_PER_DAY, StrategyParams

__all__ = ["NEIGHBOR_COLUMNS", "WIN_RATE_PRIOR_CENTRE", "WIN_RATE_PRIOR_STRENGTH", "Neighbor",
           "Neighbors", "PriorBatch", "PriorStats", "blend_confidence", "neighbor_stats",
           "shrunk_win_rate"]

def _nan_to_none(value: Any) -> Any:
    return None if isinstance(value, float) and np.isnan(value) else value


@dataclass(frozen=True, eq=False)
class PriorStats:
    """What happened after the neighbours of a setup (STRATEGY.md, "Pattern priors").

    R values are realized R multiples; a win is R > 0. ``win_rate``: the share of wins shrunk
    toward a base rate (see the module docstring), with ``n`` the neighbours it rests on;
    ``win_rate_unshrunk``: the bare share. ``profit_factor`` = sum of wins /
    |sum of losses| (``inf`` with wins and no losses). Medians are of ``hold_bars`` (bars from
    entry to exit) and of hold days (hold bars / ``BARS_PER_DAY[interval]`` per neighbour).
    ``scope``: "symbol" (the query's symbol), "all" (every symbol) or "none" (no neighbour);
    ``regime_filtered``: the neighbours were narrowed to the query's volatility regime.
    Undefined values are NaN (``to_dict`` turns them into None)."""

    n: int = 0
    win_rate: float = float("nan")
    win_rate_unshrunk: float = float("nan")
    avg_r: float = float("nan")
    avg_win_r: float = float("nan")
    avg_loss_r: float = float("nan")
    profit_factor: float = float("nan")
    expected_r: float = float("nan")
    median_hold_bars: float = float("nan")
    median_hold_bars_wins: float = float("nan")
    median_hold_bars_losses: float = float("nan")
    median_hold_days: float = float("nan")
    exit_reasons: dict[str, int] = field(default_factory=dict)
    scope: str = "none"
    regime_filtered: bool = False

    def to_dict(self) -> dict[str, Any]:
        out = {name: _nan_to_none(getattr(self, name)) for name in self.__dataclass_fields__}
        out["exit_reasons"] = dict(self.exit_reasons)
        return out

    def __eq__(self, other: object) -> bool:  # NaN (undefined) equals NaN here
        return isinstance(other, PriorStats) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


_STAT_FIELDS = ("win_rate", "win_rate_unshrunk", "avg_r", "avg_win_r", "avg_loss_r", "profit_factor", "expected_r",
                "median_hold_bars", "median_hold_bars_wins", "median_hold_bars_losses",
                "median_hold_days")


@dataclass(frozen=True)
class PriorBatch:
    """:class:`PriorStats` of many queries as arrays (row i = query i): ``n`` int64, the float
    statistics (NaN when undefined; ``win_rate`` shrunk, ``win_rate_unshrunk`` the bare share,
    both resting on ``n``), ``exit_reason_counts`` (m, len(exit_reason_names)),
    ``scope`` (object: "symbol"/"all"/"none"), ``regime_filtered`` bool."""

    n: np.ndarray
    win_rate: np.ndarray
    win_rate_unshrunk: np.ndarray
    avg_r: np.ndarray
    avg_win_r: np.ndarray
    avg_loss_r: np.ndarray
    profit_factor: np.ndarray
    expected_r: np.ndarray
    median_hold_bars: np.ndarray
    median_hold_bars_wins: np.ndarray
    median_hold_bars_losses: np.ndarray
    median_hold_days: np.ndarray
    exit_reason_names: tuple[str, ...]
    exit_reason_counts: np.ndarray
    scope: np.ndarray
    regime_filtered: np.ndarray

    def __len__(self) -> int:
        return int(self.n.shape[0])

    def __getitem__(self, i: int) -> PriorStats:
        counts = self.exit_reason_counts[i]
        return PriorStats(
            n=int(self.n[i]), **{f: float(getattr(self, f)[i]) for f in _STAT_FIELDS},
            exit_reasons={name: int(c) for name, c in zip(self.exit_reason_names, counts,
                                                          strict=True) if c},
            scope=str(self.scope[i]), regime_filtered=bool(self.regime_filtered[i]))

    def to_frame(self, index: Any = None) -> pd.DataFrame:
        """One row per query: n, the statistics, ``exit_<REASON>`` counts, scope,
        regime_filtered."""
        data: dict[str, Any] = {"n": self.n, **{f: getattr(self, f) for f in _STAT_FIELDS}}
        for j, name in enumerate(self.exit_reason_names):
            data[f"exit_{name}"] = self.exit_reason_counts[:, j]
        data["scope"] = self.scope
        data["regime_filtered"] = self.regime_filtered
        return pd.DataFrame(data, index=index)


@dataclass(frozen=True)
class Neighbor:
    """One stored setup near the query, with what is needed to draw its path after entry:
    ``ts`` = open time (UTC) of its signal bar, ``exit_ts`` = when its outcome became known;
    ``entry`` / ``stop`` when the library knew them (else None)."""

    symbol: str
    interval: str
    ts: pd.Timestamp
    exit_ts: pd.Timestamp
    side: str
    setup: str
    vol_regime: str
    similarity: float
    realized_r: float
    exit_reason: str
    hold_bars: int | None
    entry: float | None
    stop: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: times as ISO 8601 UTC strings, NaN as None."""
        out = {name: _nan_to_none(getattr(self, name)) for name in self.__dataclass_fields__}
        out["ts"], out["exit_ts"] = self.ts.isoformat(), self.exit_ts.isoformat()
        return out


NEIGHBOR_COLUMNS = ["symbol", "interval", "ts", "exit_ts", "side", "setup", "vol_regime",
                    "similarity", "realized_r", "exit_reason", "hold_bars", "entry", "stop"]


@dataclass(frozen=True)
class Neighbors:
    """The neighbours of one query, most similar first, with the scope used, whether the regime
    filter applied, the as-of time (None: unrestricted) and the k asked for. ``data``: one array
    per :data:`NEIGHBOR_COLUMNS` (``ts`` / ``exit_ts`` as int64 UTC nanoseconds, ``hold_bars``
    float with NaN when unknown); ``frame`` builds the DataFrame on first use (tz-aware
    timestamps, ``hold_bars`` Int64), so answering a query never pays for pandas."""

    data: dict[str, np.ndarray] = field(repr=False)
    scope: str
    regime_filtered: bool
    asof: pd.Timestamp | None
    k: int

    def __len__(self) -> int:
        return int(self.data["similarity"].shape[0])

    @functools.cached_property
    def frame(self) -> pd.DataFrame:
        data = dict(self.data)
        for name in ("ts", "exit_ts"):
            data[name] = pd.to_datetime(data[name], utc=True)
        data["hold_bars"] = pd.array(data["hold_bars"], dtype="Int64")
        return pd.DataFrame(data, columns=NEIGHBOR_COLUMNS)

    def __iter__(self) -> Iterator[Neighbor]:
        for row in self.frame.itertuples(index=False):
            values = row._asdict()
            values["hold_bars"] = None if pd.isna(values["hold_bars"]) else int(values["hold_bars"])
            for name in ("entry", "stop"):
                values[name] = None if pd.isna(values[name]) else float(values[name])
            yield Neighbor(**values)

    def records(self) -> list[Neighbor]:
        return list(self)

    def stats(self) -> PriorStats:
        return neighbor_stats(self)

    def to_dict(self) -> dict[str, Any]:
        return {"scope": self.scope, "regime_filtered": self.regime_filtered,
                "asof": None if self.asof is None else self.asof.isoformat(), "k": self.k,
                "neighbors": [n.to_dict() for n in self]}


# --------------------------------------------------------------------------- statistics


def _stat_arrays(r: np.ndarray, hold: np.ndarray, days: np.ndarray, keep: np.ndarray, *,
                 base_rate: Any = WIN_RATE_PRIOR_CENTRE) -> dict[str, np.ndarray]:
    """Statistics per row of (m, k) arrays over the cells where ``keep``; the win rate shrunk
    toward ``base_rate`` (one for all rows, or one per row)."""
    r = np.where(keep, r, np.nan)
    n = keep.sum(axis=1)
    win, loss = keep & (r > 0), keep & ~(r > 0)
    n_win, n_loss = win.sum(axis=1), loss.sum(axis=1)
    sum_win = np.where(win, r, 0.0).sum(axis=1)
    sum_loss = np.where(loss, r, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        win_share = np.where(n > 0, n_win / np.maximum(n, 1), np.nan)
        win_rate = shrunk_win_rate(n_win, n, base_rate=base_rate)
        avg_win = np.where(n_win > 0, sum_win / np.maximum(n_win, 1), np.nan)
        avg_loss = np.where(n_loss > 0, sum_loss / np.maximum(n_loss, 1), np.nan)
        profit_factor = np.where(sum_loss < 0, sum_win / -sum_loss,
                                 np.where(sum_win > 0, np.inf, np.nan))
    out = {
        "n": n.astype(np.int64),
        "win_rate": win_rate,
        "win_rate_unshrunk": win_share,
        "avg_r": np.where(n > 0, np.where(keep, r, 0.0).sum(axis=1) / np.maximum(n, 1), np.nan),
        "avg_win_r": avg_win,
        "avg_loss_r": avg_loss,
        "profit_factor": profit_factor,
        # STRATEGY.md: win rate · avg win R + (1 − win rate) · avg loss R (a side with no trades
        # weighs nothing)
        "expected_r": np.where(n > 0, win_rate * np.nan_to_num(avg_win)
                               + (1 - win_rate) * np.nan_to_num(avg_loss), np.nan),
    }
    for name, mask, values in (("median_hold_bars", keep, hold),
                               ("median_hold_bars_wins", win, hold),
                               ("median_hold_bars_losses", loss, hold),
                               ("median_hold_days", keep, days)):
        out[name] = _row_nanmedian(np.where(mask, values, np.nan))
    return out


def _row_nanmedian(values: np.ndarray) -> np.ndarray:
    """Median of each row ignoring NaN (NaN for a row without values)."""
    if values.shape[1] == 0:
        return np.full(values.shape[0], np.nan)
    ordered = np.sort(values, axis=1)  # NaN sort last
    count = np.isfinite(values).sum(axis=1)
    lo = np.maximum((count - 1) // 2, 0)[:, None]
    hi = np.maximum(count // 2, 0).clip(max=values.shape[1] - 1)[:, None]
    middle = (np.take_along_axis(ordered, lo, 1) + np.take_along_axis(ordered, hi, 1))[:, 0]
    return np.where(count > 0, middle / 2, np.nan)


def _median(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    return float(np.median(values)) if values.size else float("nan")


def _stats(r: np.ndarray, hold: np.ndarray, intervals: np.ndarray, reasons: np.ndarray,
           scope: str | None, regime_filtered: bool | None,
           base_rate: float = WIN_RATE_PRIOR_CENTRE) -> PriorStats:
    """One neighbour set (1-D arrays): the same numbers as :func:`_stat_arrays`, without its
    (m, k) machinery (a single query stays well under a millisecond)."""
    keep = np.isfinite(r)
    r, hold, intervals, reasons = r[keep], hold[keep], intervals[keep], reasons[keep]
    n = int(r.size)
    win = r > 0
    wins, losses = r[win], r[~win]
    win_share = float(win.mean()) if n else float("nan")
    win_rate = shrunk_win_rate(int(win.sum()), n, base_rate=base_rate)
    avg_win = float(wins.mean()) if wins.size else float("nan")
    avg_loss = float(losses.mean()) if losses.size else float("nan")
    sum_win, sum_loss = float(wins.sum()), float(losses.sum())
    profit_factor = (sum_win / -sum_loss if sum_loss < 0
                     else float("inf") if sum_win > 0 else float("nan"))
    per_day = np.array([BARS_PER_DAY.get(i, np.nan) for i in intervals.tolist()], float)
    names, counts = np.unique(reasons.astype(str), return_counts=True)
    return PriorStats(
        n=n, win_rate=win_rate, win_rate_unshrunk=win_share, avg_r=float(r.mean()) if n else float("nan"),
        avg_win_r=avg_win, avg_loss_r=avg_loss, profit_factor=profit_factor,
        expected_r=(win_rate * (avg_win if wins.size else 0.0)
                    + (1 - win_rate) * (avg_loss if losses.size else 0.0)) if n
        else float("nan"),
        median_hold_bars=_median(hold), median_hold_bars_wins=_median(hold[win]),
        median_hold_bars_losses=_median(hold[~win]), median_hold_days=_median(hold / per_day),
        exit_reasons={str(a): int(b) for a, b in zip(names, counts, strict=True)},
        scope=scope if scope is not None else ("all" if n else "none"),
        regime_filtered=bool(regime_filtered))


def neighbor_stats(neighbors: Neighbors | pd.DataFrame, *, scope: str | None = None,
                   regime_filtered: bool | None = None,
                   base_rate: float = WIN_RATE_PRIOR_CENTRE) -> PriorStats:
    """:class:`PriorStats` of a neighbour set: a :class:`Neighbors` or a frame with columns
    ``realized_r``, ``hold_bars`` (bars, may be missing), ``exit_reason`` and ``interval`` (for
    hold days; missing: NaN days). Rows without a realized R are ignored. ``base_rate``: where
    the win rate's prior is centred (a share known at the query's as-of time, e.g. the win
    share of every outcome known by then; default 50 %)."""
    if isinstance(neighbors, Neighbors):
        data = neighbors.data
        return _stats(data["realized_r"].astype(float), data["hold_bars"].astype(float),
                      data["interval"], data["exit_reason"],
                      neighbors.scope if scope is None else scope,
                      neighbors.regime_filtered if regime_filtered is None else regime_filtered,
                      base_rate)
    frame = neighbors
    r = pd.to_numeric(frame["realized_r"], errors="coerce").to_numpy(float)
    nothing = np.full(r.shape, np.nan)
    hold = (pd.to_numeric(frame["hold_bars"], errors="coerce").to_numpy(float)
            if "hold_bars" in frame else nothing)
    intervals = frame["interval"].to_numpy(object) if "interval" in frame else nothing
    reasons = frame["exit_reason"].to_numpy(object) if "exit_reason" in frame else \
        np.full(r.shape, "", object)
    return _stats(r, hold, intervals, reasons, scope, regime_filtered, base_rate)


def blend_confidence(confidence: float | np.ndarray, stats: PriorStats | PriorBatch | None, *,
                     params: StrategyParams | None = None) -> Any:
    """STRATEGY.md, "Confidence": (1 − w)·confidence + w·clip(0.5 + avg R / 4, 0, 1) with
    w = ``params.prior_weight`` (0.4), clipped to [0, 1]. Without neighbours (``stats`` None or
    n = 0) there is no prior and the confidence is only clipped (the original blends a neutral
    0.5 even then). One query (:class:`PriorStats`): a float; a :class:`PriorBatch`: an array,
    ``confidence`` being one value per query (or one for all)."""
    params = params or StrategyParams()
    w = params.prior_weight
    conf = np.asarray(confidence, dtype=float)
    n, avg_r = (0, np.nan) if stats is None else (np.asarray(stats.n),
                                                  np.asarray(stats.avg_r, dtype=float))
    has = (n > 0) & np.isfinite(avg_r)
    prior = np.clip(0.5 + np.where(has, avg_r, 0.0) / 4.0, 0.0, 1.0)
    out = np.clip(np.where(has, (1.0 - w) * conf + w * prior, conf), 0.0, 1.0)
    return float(out) if out.ndim == 0 else out
