"""Tests of laptime.tuning.curves: learning-curve extrapolation for predictive early stopping."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest

from laptime.tuning.curves import CurvePrediction, predict_reach


def power_loss(s):
    """A loss falling as a power law towards 0.1."""
    return 0.1 + 2.0 * (np.asarray(s, dtype=float) / 10.0) ** -0.5


def power_history(seed=0, n=60):
    """Noisy (1 % relative) power-law loss at log-spaced steps 10 .. 1000."""
    rng = np.random.default_rng(seed)
    s = np.geomspace(10, 1000, n)
    return s, power_loss(s) * np.exp(rng.normal(0.0, 0.01, n))


def plateau_accuracy(seed=0):
    """Accuracy saturating at 0.70 (flat from about step 600), noise sd 0.01, steps 10 .. 1000."""
    rng = np.random.default_rng(seed)
    s = np.arange(10, 1001, 10.0)
    return s, 0.70 - 0.6 * np.exp(-s / 150.0) + rng.normal(0.0, 0.01, s.size)


def rising_accuracy(seed=0):
    """Accuracy rising from 0.1 towards 0.72 over a 1000-step budget, noise sd 0.01, 100 evals."""
    rng = np.random.default_rng(seed)
    s = np.arange(10, 1001, 10.0)
    return s, 0.1 + 0.62 * (1.0 - np.exp(-s / 250.0)) + rng.normal(0.0, 0.01, s.size)


# --- 1. power law: reach, crossing step, limit before the crossing --------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_power_law_reaches_target_at_known_step(seed):
    s, y = power_history(seed)
    target = float(power_loss(4000.0))  # the true curve crosses at step 4000, 4x the data
    r = predict_reach(s, y, target=target, direction="min", limit_step=20000)
    assert r is not None
    assert r.p_reach > 0.9
    assert abs(r.median_step - 4000.0) / 4000.0 < 0.15
    assert r.model != "observed"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_power_law_limit_well_before_crossing(seed):
    s, y = power_history(seed)
    target = float(power_loss(4000.0))
    r = predict_reach(s, y, target=target, direction="min", limit_step=1500)
    assert r is not None
    assert r.p_reach < 0.1
    # the limit does not change the predicted crossing
    r_far = predict_reach(s, y, target=target, direction="min", limit_step=20000)
    assert r.median_step == r_far.median_step


def test_p_reach_grows_with_the_limit():
    s, y = power_history(3)
    target = float(power_loss(4000.0))
    ps = [
        predict_reach(s, y, target=target, direction="min", limit_step=lim).p_reach
        for lim in (1200, 2500, 3500, 4500, 8000, math.inf)
    ]
    assert ps == sorted(ps)
    assert ps[0] < 0.1
    assert ps[-1] > 0.9


# --- 2. plateau below the target ------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("limit", [3000.0, math.inf])
def test_plateau_worse_than_target_is_unlikely(seed, limit):
    s, acc = plateau_accuracy(seed)
    r = predict_reach(s, acc, target=0.76, direction="max", limit_step=limit)
    assert r is not None
    assert r.p_reach < 0.05
    assert r.median_step == math.inf


def test_plateau_close_to_the_target_can_be_reached_by_noise():
    # 0.715 is 1.5 noise sd above the plateau: over 200 more evaluations some will meet it
    s, acc = plateau_accuracy(0)
    r = predict_reach(s, acc, target=0.715, direction="max", limit_step=3000)
    assert r.p_reach > 0.5
    assert r.median_step < 3000


# --- 3. already reached ---------------------------------------------------------------------------


def test_already_reached_in_the_data():
    s, acc = rising_accuracy(0)
    first = float(s[np.argmax(acc >= 0.5)])
    r = predict_reach(s, acc, target=0.5, direction="max", limit_step=1000)
    assert r.p_reach == 1.0
    assert r.median_step == first
    assert r.model == "observed"


def test_already_reached_wins_over_too_few_points():
    r = predict_reach([10, 20], [0.3, 0.6], target=0.5, direction="max", limit_step=100)
    assert r is not None and r.p_reach == 1.0 and r.median_step == 20.0


def test_reached_only_after_the_limit():
    r = predict_reach(
        [10, 20, 30, 40, 50], [0.1, 0.2, 0.3, 0.4, 0.5], target=0.45, direction="max", limit_step=40
    )
    assert r.p_reach == 0.0
    assert r.median_step == 50.0


def test_limit_before_the_last_evaluation_depends_on_the_data_only():
    s, acc = rising_accuracy(0)
    k = 40  # acc[:40] does not meet 0.64; the model expects it soon after
    assert not np.any(acc[:k] >= 0.64)
    r = predict_reach(s[:k], acc[:k], target=0.64, direction="max", limit_step=s[k - 1])
    assert r.p_reach == 0.0
    assert r.median_step > s[k - 1]
    r = predict_reach(s[:k], acc[:k], target=0.64, direction="max", limit_step=s[k // 2])
    assert r.p_reach == 0.0


# --- 4. direction "min" mirrors "max" -------------------------------------------------------------


@pytest.mark.parametrize("limit", [700.0, 1000.0, math.inf])
def test_min_is_the_mirror_of_max(limit):
    s, acc = rising_accuracy(1)
    k = 30
    r_max = predict_reach(s[:k], acc[:k], target=0.64, direction="max", limit_step=limit)
    r_min = predict_reach(s[:k], -acc[:k], target=-0.64, direction="min", limit_step=limit)
    assert r_max.p_reach == pytest.approx(r_min.p_reach, abs=1e-12)
    assert r_max.median_step == pytest.approx(r_min.median_step, rel=1e-12)
    # a loss (error rate) falling to 0.36 is the same problem
    r_err = predict_reach(s[:k], 1.0 - acc[:k], target=0.36, direction="min", limit_step=limit)
    assert r_err.p_reach == pytest.approx(r_max.p_reach, abs=0.02)


def test_min_and_max_targets_are_inclusive():
    r = predict_reach(
        [1, 2, 3, 4], [2.0, 1.5, 1.25, 1.0], target=1.0, direction="min", limit_step=4
    )
    assert r.p_reach == 1.0 and r.median_step == 4.0
    r = predict_reach([1, 2, 3, 4], [0.1, 0.2, 0.3, 0.4], target=0.4, direction="max", limit_step=4)
    assert r.p_reach == 1.0 and r.median_step == 4.0


# --- 5. too few points, NaN, bad arguments --------------------------------------------------------


def test_too_few_points_returns_none():
    assert (
        predict_reach([10, 20, 30], [0.1, 0.2, 0.3], target=0.9, direction="max", limit_step=100)
        is None
    )
    assert predict_reach([], [], target=0.9, direction="max", limit_step=100) is None
    r = predict_reach(
        [10, 20, 30, 40], [0.1, 0.2, 0.3, 0.35], target=0.9, direction="max", limit_step=1e4
    )
    assert r is not None and r.n_points == 4
    assert (
        predict_reach(
            [10, 20, 30, 40],
            [0.1, 0.2, 0.3, 0.35],
            target=0.9,
            direction="max",
            limit_step=1e4,
            min_points=5,
        )
        is None
    )


def test_nan_values_are_dropped():
    s, acc = rising_accuracy(2)
    s, acc = s[:30], acc[:30]
    with_nan = acc.copy()
    with_nan[[3, 17]] = np.nan
    with_inf = acc.copy()
    with_inf[[3, 17]] = np.inf
    kept = np.ones(s.size, bool)
    kept[[3, 17]] = False
    expected = predict_reach(s[kept], acc[kept], target=0.64, direction="max", limit_step=1000)
    assert predict_reach(s, with_nan, target=0.64, direction="max", limit_step=1000) == expected
    assert predict_reach(s, with_inf, target=0.64, direction="max", limit_step=1000) == expected
    # NaN does not count as meeting the target
    vals = [0.1, 0.2, float("nan"), 0.3]
    assert predict_reach([1, 2, 3, 4], vals, target=0.9, direction="max", limit_step=10) is None


def test_all_nan_returns_none():
    nan = float("nan")
    assert (
        predict_reach([1, 2, 3, 4, 5], [nan] * 5, target=1.8, direction="min", limit_step=10)
        is None
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"direction": "maximize"}, "direction"),
        ({"direction": "MAX"}, "direction"),
        ({"steps": [1, 2, 3, 4]}, "length"),
        ({"limit_step": float("nan")}, "NaN"),
        ({"target": float("nan")}, "target"),
        ({"steps": [1, 2, 2, 4, 5]}, "increasing"),
        ({"steps": [5, 4, 3, 2, 1]}, "increasing"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    args = {
        "steps": [1, 2, 3, 4, 5],
        "values": [0.1, 0.2, 0.3, 0.35, 0.4],
        "target": 0.9,
        "direction": "max",
        "limit_step": 10,
    }
    args.update(kwargs)
    steps, values = args.pop("steps"), args.pop("values")
    with pytest.raises(ValueError, match=match) as info:
        predict_reach(steps, values, **args)
    assert "\n" not in str(info.value)


def test_step_zero_evaluation_is_accepted():
    s, acc = rising_accuracy(0)
    r0 = predict_reach(
        np.r_[0.0, s[:30]], np.r_[0.1, acc[:30]], target=0.64, direction="max", limit_step=1000
    )
    r = predict_reach(s[:30], acc[:30], target=0.64, direction="max", limit_step=1000)
    assert r0 is not None and r0.p_reach == pytest.approx(r.p_reach, abs=0.05)


def test_constant_curve_never_improves():
    r = predict_reach(
        np.arange(1, 21) * 10, np.full(20, 0.5), target=0.6, direction="max", limit_step=math.inf
    )
    assert r is not None and r.p_reach < 0.05 and r.median_step == math.inf


def test_worsening_curve_is_unlikely_to_reach():
    s = np.arange(1, 41) * 10.0
    rng = np.random.default_rng(0)
    loss = 1.0 + 0.002 * s + rng.normal(0, 0.01, s.size)  # diverging
    r = predict_reach(s, loss, target=0.9, direction="min", limit_step=2000)
    assert r is not None and r.p_reach < 0.05


# --- 6. determinism -------------------------------------------------------------------------------


def test_deterministic_for_a_seed():
    s, acc = rising_accuracy(3)
    args = {"target": 0.66, "direction": "max", "limit_step": 1000}
    a = predict_reach(s[:20], acc[:20], **args, seed=7)
    b = predict_reach(list(s[:20]), list(acc[:20]), **args, seed=7)
    assert a == b
    others = {predict_reach(s[:20], acc[:20], **args, seed=k).p_reach for k in range(5)}
    assert len(others) > 1  # the seed matters: the result is sampled
    assert max(others) - min(others) < 0.1  # ... but not by much with 256 samples


# --- 7. speed -------------------------------------------------------------------------------------


def test_speed():
    s, acc = rising_accuracy(4)
    predict_reach(
        s, acc, target=0.9, direction="max", limit_step=2000
    )  # warm up imports and caches
    t0 = time.perf_counter()
    for i in range(200):
        predict_reach(s, acc + 1e-4 * i, target=0.9, direction="max", limit_step=2000, seed=i)
    assert time.perf_counter() - t0 < 2.0


# --- 8. to_dict -----------------------------------------------------------------------------------


def test_to_dict_is_json_ready():
    s, acc = plateau_accuracy(0)
    never = predict_reach(s, acc, target=0.76, direction="max", limit_step=math.inf)
    assert never.median_step == math.inf
    d = never.to_dict()
    assert d["median_step"] == "inf"
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    assert set(d) == {"p_reach", "median_step", "n_points", "model"}

    r = CurvePrediction(
        p_reach=0.123456, median_step=12345.678, n_points=17, model="power/exp ensemble"
    )
    d = r.to_dict()
    assert d == {
        "p_reach": 0.1235,
        "median_step": 12350.0,
        "n_points": 17,
        "model": "power/exp ensemble",
    }
    assert json.dumps(d, allow_nan=False)
    assert all(type(v) in (float, int, str) for v in d.values())

    s, y = power_history(0)
    d = predict_reach(
        s, y, target=float(power_loss(4000.0)), direction="min", limit_step=1e4
    ).to_dict()
    assert type(d["p_reach"]) is float and type(d["median_step"]) is float
    assert json.dumps(d, allow_nan=False)


# --- realistic noisy accuracy curve ---------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_realistic_accuracy_early_and_late(seed):
    s, acc = rising_accuracy(seed)  # meets 0.64 at about step 550 of a 1000-step budget
    early, late = 25, 45
    assert not np.any(acc[:late] >= 0.64)
    r = predict_reach(s[:early], acc[:early], target=0.64, direction="max", limit_step=1000)
    assert r.p_reach > 0.5  # a quarter in, on track: no reason to stop
    r = predict_reach(s[:late], acc[:late], target=0.64, direction="max", limit_step=1000)
    assert r.p_reach > 0.95
    assert 450 < r.median_step < 750
    # a target the run cannot reach in time: unlikely late; early (4x extrapolation from a curve
    # that has not bent much yet) uncertain, but not confidently reachable
    r = predict_reach(s[:late], acc[:late], target=0.9, direction="max", limit_step=1000)
    assert r.p_reach < 0.05
    r = predict_reach(s[:early], acc[:early], target=0.9, direction="max", limit_step=1000)
    assert r.p_reach < 0.9
    # at the end of the budget, with the curve flat below the target
    r = predict_reach(s, acc, target=0.76, direction="max", limit_step=1200)
    assert r.p_reach < 0.05
