"""Win-rate calibration: isotonic fit on synthetic data with a known miscalibration, the
reliability curve, the Brier score, and fitting from the journal's evaluated signals."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
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
    report_from_signals,
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
    calibrator = fit_calibrator(predicted, won, strength=0)  # the plain fit
    model = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(predicted, won)
    grid = np.linspace(-0.2, 1.2, 301)
    np.testing.assert_allclose(calibrator.predict(grid), model.predict(grid), atol=1e-12)
    assert (np.diff(calibrator.predict(grid)) >= 0).all()
    assert 0.0 <= calibrator.predict(0.73) <= 1.0 and isinstance(calibrator.predict(0.73), float)
    assert np.isnan(calibrator.predict([np.nan, 0.5])[0])


def test_a_handful_of_pairs_at_either_end_never_calibrates_to_0_or_100_percent() -> None:
    # 3 losses at the lowest predictions, 3 wins at the highest, a fair middle
    rng = np.random.default_rng(5)
    middle = rng.uniform(0.4, 0.6, 94)
    predicted = np.r_[0.05, 0.06, 0.07, middle, 0.93, 0.94, 0.95]
    won = np.r_[0, 0, 0, (rng.random(94) < middle).astype(float), 1, 1, 1]
    plain = fit_calibrator(predicted, won, strength=0)
    assert plain.predict(0.05) == 0.0 and plain.predict(0.95) == 1.0  # what isotonic says
    calibrator = fit_calibrator(predicted, won)
    low, high = calibrator.predict(0.05), calibrator.predict(0.95)
    base = won.mean()
    # each end block (the 3 pairs and any the fit pooled with them) moved toward the base rate
    assert 0.1 < low < base < high < 0.9
    assert plain.predict(0.5) == pytest.approx(calibrator.predict(0.5), abs=0.05)
    grid = np.linspace(0, 1, 201)
    assert (np.diff(calibrator.predict(grid)) >= 0).all()  # still increasing


def test_fit_equals_sklearn_with_many_tied_predictions() -> None:
    rng = np.random.default_rng(7)
    for _ in range(10):  # neighbour win rates take few distinct values: many ties
        x = np.round(rng.random(150), 2)
        y = (rng.random(150) < x).astype(float)
        new = rng.random(40) * 1.2 - 0.1
        want = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(x, y)
        calibrator = fit_calibrator(x, y, min_samples=2, strength=0)
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
    known_at = T0 + pd.to_timedelta(np.arange(2000), unit="h")
    report = calibration_report(predicted, won, known_at)
    assert report.fitted and report.n == 2000
    assert report.brier_calibrated < report.brier_raw  # walk-forward, not in sample
    assert set(report.curve_raw.columns) >= {"predicted", "observed", "count"}
    assert report.curve_calibrated["count"].sum() == 2000
    json.dumps(report.to_dict())
    few = calibration_report(predicted[:10], won[:10], known_at[:10])
    assert not few.fitted and np.isnan(few.brier_calibrated) and "50" in few.note
    assert few.comparison.outcome == "too_few" and "Too early" in few.verdict
    json.dumps(few.to_dict())


def test_report_is_walk_forward_by_the_same_rule() -> None:
    """Each pair calibrated as calibrate_point_in_time calibrates it at its own as-of time (one
    rule): nothing learned from its own or later outcomes, no random folds."""
    _, predicted, won = overconfident(600, seed=11)
    rng = np.random.default_rng(11)
    asof = T0 + pd.to_timedelta(np.sort(rng.integers(0, 3000, 600)), unit="h")
    known_at = asof + pd.to_timedelta(rng.integers(1, 200, 600), unit="h")
    report = calibration_report(predicted, won, known_at, asof=asof)
    walk = calibrate_point_in_time(predicted, won, known_at, queries=predicted, asof=asof)
    assert report.brier_calibrated == pytest.approx(brier_score(walk, won), abs=1e-12)
    assert report.comparison.brier_raw == pytest.approx(brier_score(predicted, won))
    assert report.comparison.brier_constant == pytest.approx(0.25)
    # the running base rate: wins among outcomes known when predicted, one win and one loss
    # added
    known = known_at.to_numpy()[None, :] <= asof.to_numpy()[:, None]
    running = (known @ won + 1) / (known.sum(axis=1) + 2)
    assert report.comparison.brier_base_rate == pytest.approx(brier_score(running, won))
    assert report.comparison.n_calibrated == int((known.sum(axis=1) >= 50).sum())
    pairs = report.pairs.set_index("row").sort_index()
    np.testing.assert_array_equal(pairs["calibrated"], walk)
    np.testing.assert_allclose(pairs["running_base_rate"], running, rtol=1e-12)
    assert (pairs["known_at"] > pairs["asof"]).all()  # its own outcome never counts for it


def test_verdict_rule() -> None:
    """Informative priors beat the running base rate; noise does not; too few, no verdict."""
    n = 1500
    known_at = T0 + pd.to_timedelta(np.arange(n), unit="h")
    _, predicted, won = overconfident(n, seed=12)
    good = calibration_report(predicted, won, known_at)
    assert good.comparison.outcome == "beats_base_rate"
    assert good.verdict.startswith("Calibrated priors beat the base rate")
    assert f"n = {n}" in good.verdict and f"{good.brier_calibrated:.4f}" in good.verdict
    assert good.comparison.gain > 2 * good.comparison.gain_se > 0

    rng = np.random.default_rng(12)
    noise = rng.uniform(0.2, 0.8, n)  # says nothing about coin flips
    coin = (rng.random(n) < 0.5).astype(float)
    empty = calibration_report(noise, coin, known_at)
    assert empty.comparison.outcome == "no_information"
    assert empty.brier_calibrated > empty.comparison.brier_base_rate
    assert empty.verdict == (
        "Priors carry no information yet on this data: the calibrated win rate does no better "
        f"than the running base rate (Brier {empty.brier_calibrated:.4f} vs "
        f"{empty.comparison.brier_base_rate:.4f}, n = {n}).")
    # priors that turn around halfway: the fits learned before mislead, clearly
    turned = np.where(np.arange(n) < 700, predicted, 1 - predicted)
    inverted = calibration_report(turned, won, known_at)
    assert inverted.comparison.outcome == "worse_than_base_rate"
    assert inverted.verdict.startswith("Priors mislead on this data")
    too_few = calibration_report(predicted[:90], won[:90], known_at[:90])
    assert too_few.comparison.n_calibrated == 40 and too_few.comparison.outcome == "too_few"
    fields = good.comparison.to_dict()
    assert set(fields) >= {"n", "n_calibrated", "brier_raw", "brier_calibrated",
                           "brier_base_rate", "brier_constant", "outcome", "verdict"}


# --------------------------------------------------------------------------- the refit schedule

T0 = pd.Timestamp("2025-01-02 15:00", tz="UTC")


@pytest.mark.parametrize("known_by_cut", [50, 74, 75, 76, 113, 170, 254, 255, 383])
def test_refits_depend_only_on_outcomes_known_by_then(known_by_cut: int) -> None:
    """With exactly 75 or 255 known outcomes, a run cut there used an older fit than the full
    run at the same time (the schedule was built from the count of all pairs)."""
    _, predicted, won = overconfident(500, seed=9)
    known_at = T0 + pd.to_timedelta(np.arange(500), unit="h")
    cut = known_at[known_by_cut - 1]
    asof = T0 + pd.to_timedelta(np.arange(0, 500, 0.5), unit="h")
    queries = np.linspace(0.02, 0.98, asof.size)
    full = calibrate_point_in_time(predicted, won, known_at, queries=queries, asof=asof)
    part = calibrate_point_in_time(predicted[:known_by_cut], won[:known_by_cut],
                                   known_at[:known_by_cut], queries=queries, asof=asof)
    before = asof <= cut
    np.testing.assert_array_equal(part[before], full[before])
    at_cut = asof == cut
    assert at_cut.any()
    size = max(s for s in (50, 75, 113, 170, 255, 383) if s <= known_by_cut)
    fit = fit_calibrator(predicted[:size], won[:size])
    np.testing.assert_allclose(full[at_cut], fit.predict(queries[at_cut]), atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(n_pairs=st.integers(0, 420), cut_at=st.integers(0, 420), seed=st.integers(0, 2**16),
       ties=st.booleans())
@example(n_pairs=300, cut_at=75, seed=0, ties=False)
@example(n_pairs=300, cut_at=255, seed=1, ties=False)
@example(n_pairs=400, cut_at=75, seed=2, ties=True)
def test_truncation_invariance_of_the_calibrated_win_rate(n_pairs: int, cut_at: int, seed: int,
                                                          ties: bool) -> None:
    """Calibrated values of queries made by a cut are identical whether the pairs known after
    the cut exist or not, in whatever order the pairs come (``cut_at``: known outcomes by the
    cut, when distinct in time)."""
    rng = np.random.default_rng(seed)
    _, predicted, won = overconfident(n_pairs, seed=seed)
    if ties:  # outcomes known at the same close, predictions from few distinct values
        hours = np.sort(rng.integers(0, max(n_pairs // 3, 1), n_pairs)) * 3
        predicted = np.round(predicted, 1)
    else:
        hours = np.arange(n_pairs)
    known_at = T0 + pd.to_timedelta(hours, unit="h")
    cut = T0 + pd.Timedelta(hours=int(hours[cut_at - 1]) if 0 < cut_at <= n_pairs else cut_at)
    asof = T0 + pd.to_timedelta(rng.uniform(-5, n_pairs + 5, 200), unit="h")
    queries = rng.random(200)
    full_order = rng.permutation(n_pairs)
    kept = np.flatnonzero(known_at <= cut)
    part_order = kept[rng.permutation(kept.size)]
    full = calibrate_point_in_time(predicted[full_order], won[full_order],
                                   known_at[full_order], queries=queries, asof=asof)
    part = calibrate_point_in_time(predicted[part_order], won[part_order],
                                   known_at[part_order], queries=queries, asof=asof)
    before = asof <= cut
    np.testing.assert_array_equal(part[before], full[before])
    # and the report's per-pair figures of the pairs known by the cut likewise
    made = known_at - pd.Timedelta(hours=float(rng.uniform(0, 40)))
    figures = ["calibrated", "running_base_rate", "known_before"]
    full_pairs = calibration_report(predicted[full_order], won[full_order],
                                    known_at[full_order], asof=made[full_order]).pairs
    part_pairs = calibration_report(predicted[part_order], won[part_order],
                                    known_at[part_order], asof=made[part_order]).pairs
    full_pairs = full_pairs.assign(row=full_order[full_pairs["row"]]).set_index("row")
    part_pairs = part_pairs.assign(row=part_order[part_pairs["row"]]).set_index("row")
    assert len(part_pairs) == kept.size
    pd.testing.assert_frame_equal(part_pairs.sort_index()[figures],
                                  full_pairs.loc[kept, figures].sort_index())


def _signal(i: int, predicted: float, r: float | None) -> dict[str, object]:
    return {"symbol": "AAPL", "interval": "30m",
            "asof": pd.Timestamp("2025-06-02 14:30", tz="UTC") + pd.Timedelta(hours=i),
            "setup": "momentum", "side": "long", "expected_winrate": 0.99,
            "entry": 100.0, "stop": 99.0, "target": 102.0,
            "prior_json": json.dumps({"n": 40, "win_rate": predicted}) if r is not None
            or i % 2 else None}


def test_fit_from_journal_signals(db_engine: object) -> None:
    _, predicted, won = overconfident(70, seed=6)
    ids = db.record_signals(db_engine, [_signal(i, predicted[i], 1.0) for i in range(70)])
    exit_ts = [pd.Timestamp("2025-06-02 15:00", tz="UTC") + pd.Timedelta(hours=i)
               for i in range(70)]
    db.set_signal_outcomes(db_engine, pd.DataFrame({
        "id": ids, "exit_reason": "TIME", "exit_price": np.where(won > 0, 101.0, 99.0),
        "exit_ts": exit_ts, "realized_r": np.where(won > 0, 1.0, -1.0), "hold_bars": 3}))
    pairs = calibration_pairs(db_engine)
    assert len(pairs) == 70
    np.testing.assert_allclose(pairs["predicted"], predicted)  # prior_json, not the 0.99
    assert pairs["won"].tolist() == (won > 0).tolist()

    calibrator, note = fit_from_signals(db_engine)
    assert calibrator is not None and note is None and calibrator.n_samples == 70
    early, why = fit_from_signals(db_engine, known_by=exit_ts[30])  # point in time: 31 known
    assert early is None and "31" in why

    # the report: predicted at the signal bar's close (asof + 30 minutes), here the very time
    # its outcome is known, which never counts for itself: pair i is calibrated on the i
    # outcomes known before it
    report = report_from_signals(db_engine)
    assert report.n == 70 and report.comparison.n_calibrated == 20
    closes = pairs["asof"] + pd.Timedelta(minutes=30) - pd.Timedelta(1, "ns")
    walk = calibrate_point_in_time(pairs["predicted"], pairs["won"].astype(float),
                                   pairs["exit_ts"], queries=pairs["predicted"], asof=closes)
    assert report.brier_calibrated == pytest.approx(brier_score(walk, pairs["won"]))


def test_journal_wins_are_wins_after_costs(db_engine: object) -> None:
    """The calibration target is the trade that made money after fees and slippage: +0.05 R
    on a 1.00 stop at 100 is an R win but a loss after 5 bps on both fills (0.10 R) and two
    $1 fees (0.002 R at 1 % risk of 100 000)."""
    ids = db.record_signals(db_engine, [_signal(i, 0.6, 1.0) for i in range(3)])
    db.set_signal_outcomes(db_engine, pd.DataFrame({
        "id": ids, "exit_reason": "TIME", "exit_price": [100.05, 100.2, 99.0],
        "exit_ts": [pd.Timestamp("2025-06-03 15:00", tz="UTC") + pd.Timedelta(hours=i)
                    for i in range(3)],
        "realized_r": [0.05, 0.2, -1.0], "hold_bars": 3}))
    pairs = calibration_pairs(db_engine)
    assert pairs["realized_r"].tolist() == [0.05, 0.2, -1.0]
    assert pairs["won"].tolist() == [0.0, 1.0, 0.0]  # 0.05 - 0.10 - 0.002 < 0 < 0.2 - 0.10...
    free = StrategyParams(fee_per_fill=0.0, slippage_bps=0.0)
    assert calibration_pairs(db_engine, params=free)["won"].tolist() == [1.0, 1.0, 0.0]
