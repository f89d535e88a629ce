"""Win-rate calibration: isotonic fit on synthetic data with a known miscalibration, the
reliability curve, the Brier score, and fitting from the journal's evaluated signals."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.isotonic import IsotonicRegression

from swing_core import db
from swing_core.calibration import (
    brier_score,
    calibrate_point_in_time,
    calibration_pairs,
    calibration_report,
    fit_calibrator,
    fit_from_signals,
    reliability_curve,
)
from swing_core.config import StrategyParams


def overconfident(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True win probabilities p, an overconfident prediction of them (logit doubled: 0.7 is
    said as 0.84) and 0/1 outcomes drawn from p."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.1, 0.9, n)
    logit = np.log(p / (1 - p))
    predicted = 1 / (1 + np.exp(-2 * logit))
    return p, predicted, (rng.random(n) < p).astype(float)


def test_isotonic_calibration_repairs_a_known_miscalibration() -> None:
    _, predicted, won = overconfident(6000, seed=1)
    true_p, test_pred, test_won = overconfident(6000, seed=2)
    calibrator = fit_calibrator(predicted, won)
    assert calibrator.fitted and calibrator.n_samples == 6000

    calibrated = calibrator.predict(test_pred)
    raw_brier, cal_brier = brier_score(test_pred, test_won), brier_score(calibrated, test_won)
    assert cal_brier < raw_brier - 0.01  # out of sample
    assert cal_brier == pytest.approx(brier_score(true_p, test_won), abs=0.005)  # near the truth

    raw_curve = reliability_curve(test_pred, test_won)
    cal_curve = reliability_curve(calibrated, test_won)
    big = cal_curve["count"] >= 200
    assert (np.abs(cal_curve["observed"] - cal_curve["predicted"])[big] < 0.05).all()
    assert (np.abs(raw_curve["observed"] - raw_curve["predicted"]) > 0.08).any()
    assert np.quantile(np.abs(calibrated - true_p), 0.99) < 0.08  # isotonic ends are steps


def test_predict_matches_sklearn_and_is_monotone() -> None:
    _, predicted, won = overconfident(500, seed=3)
    calibrator = fit_calibrator(predicted, won)
    model = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(predicted, won)
    grid = np.linspace(-0.2, 1.2, 301)
    np.testing.assert_allclose(calibrator.predict(grid), model.predict(grid), atol=1e-12)
    assert (np.diff(calibrator.predict(grid)) >= 0).all()
    assert 0.0 <= calibrator.predict(0.73) <= 1.0 and isinstance(calibrator.predict(0.73), float)
    assert np.isnan(calibrator.predict([np.nan, 0.5])[0])


def test_fit_equals_sklearn_with_many_tied_predictions() -> None:
    rng = np.random.default_rng(7)
    for _ in range(10):  # neighbour win rates take few distinct values: many ties
        x = np.round(rng.random(150), 2)
        y = (rng.random(150) < x).astype(float)
        new = rng.random(40) * 1.2 - 0.1
        want = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(x, y)
        calibrator = fit_calibrator(x, y, min_samples=2)
        np.testing.assert_allclose(calibrator.predict(new), want.predict(new), atol=1e-12)
        np.testing.assert_allclose(calibrator.x, want.X_thresholds_)


def test_walk_forward_calibration_uses_only_outcomes_known_by_then() -> None:
    _, predicted, won = overconfident(400, seed=8)
    start = pd.Timestamp("2025-01-02 15:00", tz="UTC")
    known_at = start + pd.to_timedelta(np.arange(400) * 2, unit="h")
    asof = start + pd.to_timedelta(np.arange(0, 800, 5), unit="h")
    queries = np.linspace(0.05, 0.95, asof.size)
    got = calibrate_point_in_time(predicted, won, known_at, queries=queries, asof=asof)
    n_known = np.searchsorted(known_at, asof, side="right")
    early = n_known < 50
    np.testing.assert_array_equal(got[early], queries[early])  # identity until 50 are known
    sizes = [50, 75, 113, 170, 255, 383]  # refits as the known pairs grow by 1.5x
    for i in np.flatnonzero(~early)[::9]:
        size = max(s for s in sizes if s <= n_known[i])
        fit = fit_calibrator(predicted[:size], won[:size])
        assert got[i] == pytest.approx(fit.predict(queries[i]), abs=1e-12)
    # outcomes learned later change nothing before them (planted: all flipped after t)
    cut = asof[100]
    flipped = np.where(known_at > cut, 1.0 - won, won)
    again = calibrate_point_in_time(predicted, flipped, known_at, queries=queries, asof=asof)
    before = asof <= cut
    np.testing.assert_array_equal(again[before], got[before])
    assert (again[~before] != got[~before]).any()


def test_calibration_waits_for_enough_samples() -> None:
    _, predicted, won = overconfident(80, seed=4)
    params = StrategyParams()  # calibration_min_samples = 50
    early = fit_calibrator(predicted[:49], won[:49], params=params)
    assert not early.fitted and early.n_samples == 49
    assert early.predict(0.8) == 0.8  # identity until then
    assert fit_calibrator(predicted[:50], won[:50], params=params).fitted
    with_nan = np.r_[predicted[:50], np.nan]
    assert fit_calibrator(with_nan, np.r_[won[:50], 1.0]).n_samples == 50
    assert fit_calibrator(predicted[:20], won[:20], min_samples=10).fitted


def test_brier_and_reliability_curve_by_hand() -> None:
    assert brier_score([0.5, 0.5], [1, 0]) == 0.25
    assert brier_score([1.0, 0.0, 0.75], [1, 0, 0]) == pytest.approx(0.5625 / 3)
    assert np.isnan(brier_score([], []))
    curve = reliability_curve([0.05, 0.12, 0.18, 0.91, 1.0], [0, 1, 1, 1, 0], bins=10)
    assert curve["count"].tolist() == [1, 2, 2]
    assert curve["predicted"].tolist() == pytest.approx([0.05, 0.15, 0.955])
    assert curve["observed"].tolist() == pytest.approx([0.0, 1.0, 0.5])
    assert curve["bin_low"].tolist() == pytest.approx([0.0, 0.1, 0.9])
    edges = reliability_curve([0.3, 0.6, 0.7, 0.7], [1, 0, 1, 1], empty_bins=True)
    assert len(edges) == 10 and edges["count"].tolist() == [0, 0, 0, 1, 0, 0, 1, 2, 0, 0]
    assert np.isnan(edges.loc[0, "observed"]) and edges.loc[7, "observed"] == 1.0
    quantile = reliability_curve(np.linspace(0, 1, 100), np.ones(100), bins=4,
                                 strategy="quantile")
    assert quantile["count"].tolist() == [25, 25, 25, 25]
    with pytest.raises(ValueError, match="predictions"):
        brier_score([0.1, 0.2], [1])


def test_report_for_the_ui() -> None:
    _, predicted, won = overconfident(2000, seed=5)
    report = calibration_report(predicted, won)
    assert report.fitted and report.n == 2000
    assert report.brier_calibrated < report.brier_raw  # out of fold, not in sample
    assert set(report.curve_raw.columns) >= {"predicted", "observed", "count"}
    assert report.curve_calibrated["count"].sum() == 2000
    json.dumps(report.to_dict())
    few = calibration_report(predicted[:10], won[:10])
    assert not few.fitted and np.isnan(few.brier_calibrated) and "50" in few.note
    json.dumps(few.to_dict())


def _signal(i: int, predicted: float, r: float | None) -> dict[str, object]:
    return {"symbol": "AAPL", "interval": "30m",
            "asof": pd.Timestamp("2025-06-02 14:30", tz="UTC") + pd.Timedelta(hours=i),
            "setup": "momentum", "side": "long", "expected_winrate": 0.99,
            "prior_json": json.dumps({"n": 40, "win_rate": predicted}) if r is not None
            or i % 2 else None}


def test_fit_from_journal_signals(db_engine: object) -> None:
    _, predicted, won = overconfident(70, seed=6)
    ids = db.record_signals(db_engine, [_signal(i, predicted[i], 1.0) for i in range(70)])
    exit_ts = [pd.Timestamp("2025-06-02 15:00", tz="UTC") + pd.Timedelta(hours=i)
               for i in range(70)]
    db.set_signal_outcomes(db_engine, pd.DataFrame({
        "id": ids, "exit_reason": "TIME", "exit_price": 1.0, "exit_ts": exit_ts,
        "realized_r": np.where(won > 0, 1.0, -1.0), "hold_bars": 3}))
    pairs = calibration_pairs(db_engine)
    assert len(pairs) == 70
    np.testing.assert_allclose(pairs["predicted"], predicted)  # prior_json, not the 0.99
    assert pairs["won"].tolist() == (won > 0).tolist()

    calibrator, note = fit_from_signals(db_engine)
    assert calibrator is not None and note is None and calibrator.n_samples == 70
    early, why = fit_from_signals(db_engine, known_by=exit_ts[30])  # point in time: 31 known
    assert early is None and "31" in why
