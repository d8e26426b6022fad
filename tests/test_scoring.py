"""Tests for laptime.scoring: every expected number is worked out by hand in the comments.

Score of one workload with ratio r (tau_max = T):  area(r) = (T - max(r, 1)) / (T - 1) if r <= T else 0,
and B = sum of areas / |W|.  With T = 4:  area(1) = 1, area(1.5) = 5/6, area(2) = 2/3, area(3) = 1/3,
area(4) = 0, area(inf) = 0.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from laptime.records import Outcome, TrialRecord
from laptime.scoring import (
    ScoreReport,
    ScoringError,
    TimeRow,
    aggregate,
    apply_variant_gate,
    as_time_rows,
    benchmark_scores,
    bootstrap_scores,
    check_comparable,
    geometric_mean,
    geometric_mean_speedups,
    median,
    performance_profiles,
    performance_ratios,
    rank_scores,
    read_times_csv,
    rows_from_records,
    score_records,
    score_table,
    speedups,
    study_bests,
    tau_grid,
    variants_from_workloads,
)

INF = math.inf


def approx(x):
    return pytest.approx(x, rel=1e-12, abs=1e-12)


# ------------------------------------------------------------------------------------------
# Import hygiene
# ------------------------------------------------------------------------------------------


def test_scoring_does_not_import_torch():
    code = (
        "import sys, laptime.scoring; "
        "bad = [m for m in ('torch', 'laptime.api') if m in sys.modules]; "
        "sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# ------------------------------------------------------------------------------------------
# Ratios and scores
# ------------------------------------------------------------------------------------------


def test_two_algorithms_three_workloads():
    times = {"A": {"w1": 10.0, "w2": 20.0, "w3": 30.0}, "B": {"w1": 20.0, "w2": 10.0, "w3": 60.0}}
    # minima: w1 = 10, w2 = 10, w3 = 30
    # A ratios: 10/10 = 1, 20/10 = 2, 30/30 = 1      B ratios: 20/10 = 2, 10/10 = 1, 60/30 = 2
    r = performance_ratios(times)
    assert r == {"A": {"w1": 1.0, "w2": 2.0, "w3": 1.0}, "B": {"w1": 2.0, "w2": 1.0, "w3": 2.0}}
    # A: (area(1) + area(2) + area(1)) / 3 = (1 + 2/3 + 1) / 3 = (8/3) / 3 = 8/9
    # B: (2/3 + 1 + 2/3) / 3 = (7/3) / 3 = 7/9
    s = benchmark_scores(times, tau_max=4)
    assert s["A"] == approx(8 / 9)
    assert s["B"] == approx(7 / 9)
    assert rank_scores(s) == {"A": 1, "B": 2}


def test_ties_both_get_ratio_one():
    times = {"A": {"w1": 5.0, "w2": 10.0}, "B": {"w1": 5.0, "w2": 30.0}}
    # w1: both 5 -> min 5 -> both ratio 1.  w2: min 10 -> A 1, B 3.
    r = performance_ratios(times)
    assert r["A"]["w1"] == 1.0 and r["B"]["w1"] == 1.0
    # A: (1 + 1)/2 = 1.   B: (1 + area(3))/2 = (1 + 1/3)/2 = 2/3
    s = benchmark_scores(times)
    assert s == {"A": approx(1.0), "B": approx(2 / 3)}


def test_miss_adds_zero():
    times = {"A": {"w1": 10.0, "w2": INF}, "B": {"w1": 15.0, "w2": 8.0}}
    # w1 min 10: A 1, B 1.5.   w2 min 8: A inf, B 1.
    # A: (area(1) + 0)/2 = 1/2.   B: (area(1.5) + area(1))/2 = ((4-1.5)/3 + 1)/2 = (5/6 + 1)/2 = 11/12
    s = benchmark_scores(times)
    assert s["A"] == approx(0.5)
    assert s["B"] == approx(11 / 12)


def test_workload_everyone_missed_adds_zero_but_counts_in_W():
    times = {"A": {"w1": 10.0, "w2": INF}, "B": {"w1": 20.0, "w2": INF}}
    # w2: min = inf -> ratio inf for both (adds 0), but |W| = 2.
    r = performance_ratios(times)
    assert r["A"]["w2"] == INF and r["B"]["w2"] == INF
    # A: (1 + 0)/2 = 0.5.  B: ratio 20/10 = 2 -> (2/3 + 0)/2 = 1/3
    assert benchmark_scores(times) == {"A": approx(0.5), "B": approx(1 / 3)}


def test_single_algorithm():
    times = {"solo": {"w1": 3.0, "w2": INF, "w3": 100.0}}
    # ratios 1, inf, 1 -> (1 + 0 + 1)/3 = 2/3
    assert performance_ratios(times) == {"solo": {"w1": 1.0, "w2": INF, "w3": 1.0}}
    assert benchmark_scores(times)["solo"] == approx(2 / 3)


def test_missing_entry_is_a_miss():
    times = {"A": {"w1": 10.0, "w2": 10.0}, "B": {"w1": 10.0}}
    # B has no w2 -> treated as inf.  A: (1 + 1)/2 = 1.  B: (1 + 0)/2 = 0.5
    assert performance_ratios(times)["B"]["w2"] == INF
    assert benchmark_scores(times) == {"A": approx(1.0), "B": approx(0.5)}


def test_ratio_exactly_at_tau_max_counts_in_profile_but_adds_no_area():
    times = {"A": {"w1": 2.0}, "B": {"w1": 8.0}}
    # B ratio = 8/2 = 4 = tau_max: area = (4 - 4)/3 = 0, but rho_B(4) = 1 (inclusive <=)
    assert performance_ratios(times)["B"]["w1"] == 4.0
    assert benchmark_scores(times)["B"] == 0.0
    prof = performance_profiles(times, taus=[1.0, 3.999, 4.0])
    np.testing.assert_array_equal(prof["B"], [0.0, 0.0, 1.0])
    # A ratio exactly 1: rho_A(1) = 1 (inclusive), area 1
    np.testing.assert_array_equal(prof["A"], [1.0, 1.0, 1.0])
    assert benchmark_scores(times)["A"] == 1.0


def test_ratio_just_above_tau_max():
    times = {"A": {"w1": 1.0}, "B": {"w1": 4.000001}}
    # ratio 4.000001 > 4: not in rho(4), area 0
    assert benchmark_scores(times)["B"] == 0.0
    np.testing.assert_array_equal(performance_profiles(times, taus=[4.0])["B"], [0.0])
    # ... and just below: ratio 3.97 -> area (4 - 3.97)/3 = 0.01
    assert benchmark_scores({"A": {"w1": 1.0}, "B": {"w1": 3.97}})["B"] == pytest.approx(0.01)


def test_other_tau_max():
    times = {"A": {"w1": 10.0, "w2": 10.0}, "B": {"w1": 15.0, "w2": 30.0}}
    # tau_max = 2: B ratios 1.5, 3 -> areas (2 - 1.5)/(2 - 1) = 0.5 and 0 (3 > 2) -> B = 0.25
    assert benchmark_scores(times, tau_max=2)["B"] == approx(0.25)
    # tau_max = 4: (area(1.5) + area(3))/2 = (5/6 + 1/3)/2 = 7/12
    assert benchmark_scores(times, tau_max=4)["B"] == approx(7 / 12)


def test_zero_fastest_time():
    times = {"A": {"w1": 0.0}, "B": {"w1": 0.0}, "C": {"w1": 5.0}}
    # 0/0 counts as a tie for fastest (ratio 1); 5/0 = inf
    assert performance_ratios(times) == {"A": {"w1": 1.0}, "B": {"w1": 1.0}, "C": {"w1": INF}}


def test_bad_tau_max_and_bad_times():
    with pytest.raises(ScoringError, match="tau_max"):
        benchmark_scores({"A": {"w": 1.0}}, tau_max=1.0)
    with pytest.raises(ScoringError, match="NaN"):
        benchmark_scores({"A": {"w": math.nan}})


def test_exact_integral_matches_fine_grid():
    rng = np.random.default_rng(3)
    t = rng.uniform(1, 10, size=(4, 6))
    t[1, 2] = INF
    t[:, 5] = INF  # one workload all missed
    times = {f"a{i}": {f"w{j}": float(t[i, j]) for j in range(6)} for i in range(4)}
    taus = np.linspace(1, 4, 300001)
    prof = performance_profiles(times, taus=taus)
    exact = benchmark_scores(times)
    for a in times:
        numeric = np.trapezoid(prof[a], taus) / 3  # 1/(tau_max - 1) * integral
        assert exact[a] == pytest.approx(numeric, abs=1e-4)


def test_performance_profile_values_and_grid():
    times = {"A": {"w1": 10.0, "w2": 20.0, "w3": 30.0}, "B": {"w1": 20.0, "w2": 10.0, "w3": 60.0}}
    # A ratios 1, 2, 1; B ratios 2, 1, 2
    prof = performance_profiles(times, taus=[1.0, 1.5, 2.0, 4.0])
    # A: tau=1 -> {w1, w3} = 2/3; 1.5 -> 2/3; 2 -> all 3 = 1; 4 -> 1
    np.testing.assert_allclose(prof["A"], [2 / 3, 2 / 3, 1.0, 1.0])
    # B: tau=1 -> {w2} = 1/3; 1.5 -> 1/3; 2 -> 1; 4 -> 1
    np.testing.assert_allclose(prof["B"], [1 / 3, 1 / 3, 1.0, 1.0])
    g = tau_grid(4.0, num=7)
    np.testing.assert_allclose(g, [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0])
    assert len(performance_profiles(times)["A"]) == len(tau_grid(4.0))


def test_rank_ties_share_better_rank():
    # scores 0.9, 0.7, 0.7, 0.2 -> ranks 1, 2, 2, 4
    assert rank_scores({"a": 0.9, "b": 0.7, "c": 0.7, "d": 0.2}) == {"a": 1, "b": 2, "c": 2, "d": 4}
    times = {"A": {"w": 5.0}, "B": {"w": 5.0}, "C": {"w": 10.0}}
    # A, B ratio 1 -> 1.0; C ratio 2 -> 2/3 -> ranks 1, 1, 3
    assert rank_scores(benchmark_scores(times)) == {"A": 1, "B": 1, "C": 3}


# ------------------------------------------------------------------------------------------
# Aggregation
# ------------------------------------------------------------------------------------------


def test_fastest_trial_chosen_by_time_not_order():
    rows = [
        TimeRow("A", "w", study=0, trial=0, time_to_target=50.0),
        TimeRow("A", "w", study=0, trial=1, time_to_target=30.0),  # fastest, but not first
        TimeRow("A", "w", study=0, trial=2, time_to_target=INF),
        TimeRow("A", "w", study=0, trial=3, time_to_target=40.0),
    ]
    # min(50, 30, inf, 40) = 30, one study -> median = 30
    assert study_bests(rows) == {"A": {"w": {0: 30.0}}}
    assert aggregate(rows) == {"A": {"w": 30.0}}
    assert aggregate(list(reversed(rows))) == {"A": {"w": 30.0}}


def _studies(alg, wl, bests):
    """Rows with 2 trials per study: the best and a slower one (best + 7, or inf when best is inf)."""
    rows = []
    for s, b in enumerate(bests):
        rows.append(TimeRow(alg, wl, s, 0, b + 7.0))
        rows.append(TimeRow(alg, wl, s, 1, b))
    return rows


def test_median_over_studies_odd():
    # 3 studies, bests [10, inf, 20] -> sorted [10, 20, inf] -> middle = 20
    assert aggregate(_studies("A", "w", [10.0, INF, 20.0])) == {"A": {"w": 20.0}}
    # 5 studies: [1, 2, 3, inf, inf] -> 3;  [1, 2, inf, inf, inf] -> inf
    assert aggregate(_studies("A", "w", [INF, 3.0, 1.0, INF, 2.0]))["A"]["w"] == 3.0
    assert aggregate(_studies("A", "w", [INF, INF, 1.0, INF, 2.0]))["A"]["w"] == INF


def test_median_over_studies_even():
    # [10, 20, 30, inf] -> (20 + 30)/2 = 25
    assert aggregate(_studies("A", "w", [30.0, INF, 10.0, 20.0]))["A"]["w"] == 25.0
    # [10, 20, inf, inf] -> (20 + inf)/2 = inf
    assert aggregate(_studies("A", "w", [INF, 20.0, INF, 10.0]))["A"]["w"] == INF
    # [10, 20] -> 15
    assert median([20.0, 10.0]) == 15.0
    with pytest.raises(ScoringError):
        median([])


def test_aggregate_fills_missing_with_inf_and_accepts_tuples_and_dicts():
    rows = [
        ("A", "w1", 0, 0, 10.0),
        {"algorithm": "A", "workload": "w2", "study": 0, "trial": 0, "time_to_target": None},
        ("B", "w1", 0, 0, 12.0),
    ]
    assert aggregate(rows) == {"A": {"w1": 10.0, "w2": INF}, "B": {"w1": 12.0, "w2": INF}}


def test_steps_to_target_scoring():
    rows = [
        # A: time 100 (fast) but 1000 steps; B: time 200 but 250 steps
        TimeRow("A", "w", 0, 0, 100.0, 1000),
        TimeRow("A", "w", 0, 1, 150.0, 800),  # fewer steps, more time
        TimeRow("B", "w", 0, 0, 200.0, 250),
        TimeRow("B", "w2", 0, 0, 10.0, INF),
        TimeRow("A", "w2", 0, 0, 20.0, 400),
    ]
    # steps: A best per study = min(1000, 800) = 800; B 250 -> ratio A = 800/250 = 3.2, B = 1
    # w2 steps: A 400, B inf -> A 1, B inf
    # A: (area(3.2) + 1)/2 = ((4 - 3.2)/3 + 1)/2 = (0.8/3 + 1)/2 = 19/30
    # B: (1 + 0)/2 = 1/2
    steps = aggregate(rows, column="steps_to_target")
    assert steps == {"A": {"w": 800.0, "w2": 400.0}, "B": {"w": 250.0, "w2": INF}}
    assert benchmark_scores(steps) == {"A": approx(19 / 30), "B": approx(0.5)}
    # times: A min(100, 150) = 100, B 200 -> A 1, B 2; w2: B 10, A 20 -> A 2, B 1
    # both (1 + 2/3)/2 = 5/6
    rep = score_table(rows)
    assert rep.scores == {"A": approx(5 / 6), "B": approx(5 / 6)}
    rep_s = score_table(rows, column="steps_to_target")
    assert rep_s.scores["A"] == approx(19 / 30)
    with pytest.raises(ScoringError, match="steps_to_target"):
        aggregate([("A", "w", 0, 0, 1.0)], column="steps_to_target")


def test_bad_rows_rejected():
    with pytest.raises(ScoringError, match="negative"):
        as_time_rows([("A", "w", 0, 0, -1.0)])
    with pytest.raises(ScoringError, match="NaN"):
        as_time_rows([("A", "w", 0, 0, math.nan)])
    with pytest.raises(ScoringError, match="not a number"):
        as_time_rows([("A", "w", 0, 0, "fast")])
    with pytest.raises(ScoringError, match="time_to_target"):
        as_time_rows([{"algorithm": "A", "workload": "w"}])
    with pytest.raises(ScoringError, match="column"):
        aggregate([], column="loss")


def _record(alg="A", workload="mnist", variant="base", study=None, trial_index=None, ttt=10.0, steps=100,
            outcome=Outcome.REACHED, hw="hw1", version="1"):
    return TrialRecord(
        workload=workload, variant=variant, config="default", workload_version=version, dataset="d",
        algorithm=alg, algorithm_hash="h", hyperparameters={}, seed=0, device="cpu",
        hardware_fingerprint=hw, hardware={}, versions={}, target_metric="acc", target_direction="max",
        target_value=0.9, budget_sec=100.0, outcome=outcome, time_to_target=ttt, steps_to_target=steps,
        submission_time=ttt or 100.0, steps=steps or 1000, wall_time=1.0, started_at="", finished_at="",
        study=study, trial_index=trial_index,
    )


def test_rows_from_records():
    recs = [
        _record("A", "mnist", "base", study=None, ttt=12.5, steps=40),
        _record("A", "mnist", "gelu", study=2, trial_index=3, ttt=20.0, steps=60),
        _record("B", "mnist", "base", study=1, ttt=None, steps=None, outcome=Outcome.BUDGET),
        # outcome not REACHED: a miss even if a time is present
        _record("B", "mnist", "base", study=1, ttt=5.0, steps=5, outcome=Outcome.DIVERGED),
    ]
    rows = rows_from_records(recs)
    assert rows[0] == TimeRow("A", "mnist", 0, 0, 12.5, 40.0)
    assert rows[1] == TimeRow("A", "mnist/gelu", 2, 3, 20.0, 60.0)
    assert rows[2] == TimeRow("B", "mnist", 1, 2, INF, INF)
    assert rows[3].time_to_target == INF
    # records are accepted directly too
    assert aggregate(recs) == aggregate(rows)


# ------------------------------------------------------------------------------------------
# Speedups
# ------------------------------------------------------------------------------------------


def test_speedups_and_geometric_mean():
    times = {
        "base": {"w1": 10.0, "w2": 20.0, "w3": 30.0, "w4": INF, "w5": INF, "w6": 10.0},
        "B": {"w1": 5.0, "w2": 40.0, "w3": 10.0, "w4": 10.0, "w5": INF, "w6": INF},
    }
    sp = speedups(times, "base")
    # w1 10/5 = 2, w2 20/40 = 0.5, w3 30/10 = 3, w4 inf/10 = inf, w5 inf/inf = nan, w6 10/inf = 0
    assert sp["B"]["w1"] == 2.0 and sp["B"]["w2"] == 0.5 and sp["B"]["w3"] == 3.0
    assert sp["B"]["w4"] == INF and math.isnan(sp["B"]["w5"]) and sp["B"]["w6"] == 0.0
    assert sp["base"]["w1"] == 1.0 and math.isnan(sp["base"]["w4"])
    gm = geometric_mean_speedups(times, "base")
    # both reached on w1, w2, w3 only: (2 * 0.5 * 3)^(1/3) = 3^(1/3)
    assert gm["B"] == approx(3 ** (1 / 3))
    assert gm["base"] == approx(1.0)
    assert geometric_mean([4.0, 1.0]) == approx(2.0)
    assert math.isnan(geometric_mean([]))
    with pytest.raises(ScoringError, match="baseline"):
        speedups(times, "nope")


def test_geometric_mean_nan_when_no_common_workload():
    gm = geometric_mean_speedups({"base": {"w": 1.0}, "B": {"w": INF}}, "base")
    assert math.isnan(gm["B"])


# ------------------------------------------------------------------------------------------
# Variant gate
# ------------------------------------------------------------------------------------------


def test_variant_gate_miss_and_slowdown():
    base = {"A": {"w": 10.0, "x": 5.0}, "B": {"w": 12.0, "x": 5.0}, "C": {"w": 11.0, "x": 5.0}}
    var = {
        "A": {"w/v1": 1.0, "w/v2": 3.0},
        "B": {"w/v1": INF, "w/v2": 3.0},  # missed a variant -> w gated
        "C": {"w/v1": 4.5, "w/v2": 3.0},  # 4.5 > 4 * fastest (1.0) -> w gated
    }
    gated = apply_variant_gate(base, var, {"w": ["w/v1", "w/v2"]})
    assert gated == {"A": {"w": 10.0, "x": 5.0}, "B": {"w": INF, "x": 5.0}, "C": {"w": INF, "x": 5.0}}
    # switched off: unchanged
    assert apply_variant_gate(base, var, {"w": ["w/v1", "w/v2"]}, enabled=False) == base
    # scores after the gate: w: A only -> A 1, B inf, C inf; x: all tie 1
    # A (1 + 1)/2 = 1, B (0 + 1)/2 = 0.5, C 0.5
    assert benchmark_scores(gated) == {"A": 1.0, "B": 0.5, "C": 0.5}


def test_variant_gate_exactly_max_slowdown_is_allowed():
    base = {"A": {"w": 10.0}, "B": {"w": 10.0}}
    # B is exactly 4x the fastest on the variant: 8.0 = 4 * 2.0 -> allowed
    var = {"A": {"w/v": 2.0}, "B": {"w/v": 8.0}}
    assert apply_variant_gate(base, var, {"w": ["w/v"]}) == base
    # just over: 8.0001 > 8 -> gated
    var2 = {"A": {"w/v": 2.0}, "B": {"w/v": 8.0001}}
    assert apply_variant_gate(base, var2, {"w": ["w/v"]})["B"]["w"] == INF
    # with max_slowdown = 5, 8.0001 <= 10 -> allowed
    assert apply_variant_gate(base, var2, {"w": ["w/v"]}, max_slowdown=5)["B"]["w"] == 10.0


def test_variant_gate_one_table_and_errors():
    times = {"A": {"w": 10.0, "w/v": 2.0}, "B": {"w": 5.0}}  # B never ran the variant -> miss -> gated
    assert variants_from_workloads(["w", "w/v", "orphan/v", "z"]) == {"w": ["w/v"], "z": []}
    gated = apply_variant_gate(times, None, {"w": ["w/v"]})
    assert gated == {"A": {"w": 10.0}, "B": {"w": INF}}
    with pytest.raises(ScoringError, match="no times for variant"):
        apply_variant_gate(times, None, {"w": ["w/zzz"]})
    with pytest.raises(ScoringError, match="base workload"):
        apply_variant_gate(times, None, {"q": ["w/v"]})
    with pytest.raises(ScoringError, match="max_slowdown"):
        apply_variant_gate(times, None, {"w": ["w/v"]}, max_slowdown=0.5)


def test_score_table_variant_gate_auto_and_off():
    rows = [
        ("A", "w", 0, 0, 10.0), ("B", "w", 0, 0, 20.0),
        ("A", "w/v", 0, 0, 100.0), ("B", "w/v", 0, 0, 10.0),  # A is 10x slower on the variant
        ("A", "x", 0, 0, 30.0), ("B", "x", 0, 0, 30.0),
    ]
    # auto gate: A's w -> inf.  w: B only -> B 1, A 0.  x: tie 1.
    # A = (0 + 1)/2 = 0.5; B = (1 + 1)/2 = 1
    rep = score_table(rows)
    assert rep.workloads == ["w", "x"]
    assert rep.scores == {"A": 0.5, "B": 1.0}
    assert rep.variants == {"w": ["w/v"]}
    assert rep.raw_times["A"]["w/v"] == 100.0
    # gate off: w/v scored as its own workload.  w: A 1, B 2; w/v: A 10, B 1; x: 1, 1
    # A = (1 + 0 + 1)/3 = 2/3; B = (2/3 + 1 + 1)/3 = 8/9
    off = score_table(rows, variants=None)
    assert off.workloads == ["w", "w/v", "x"]
    assert off.scores == {"A": approx(2 / 3), "B": approx(8 / 9)}


# ------------------------------------------------------------------------------------------
# Bootstrap
# ------------------------------------------------------------------------------------------


def _noisy_rows(seed=0):
    rng = np.random.default_rng(seed)
    centers = {"A": [10, 20, 30, 40], "B": [12, 18, 45, 41], "C": [30, 60, 90, 35]}
    rows = []
    for alg, cs in centers.items():
        for j, c in enumerate(cs):
            for s in range(5):
                for t in range(3):
                    v = c * float(rng.lognormal(0.0, 0.15))
                    if alg == "C" and j == 1 and s == 0 and t == 0:
                        v = INF
                    rows.append(TimeRow(alg, f"w{j}", s, t, v))
    return rows


def test_bootstrap_deterministic_and_contains_point():
    rows = _noisy_rows()
    r1 = bootstrap_scores(rows, n_resamples=500, seed=7)
    r2 = bootstrap_scores(rows, n_resamples=500, seed=7)
    np.testing.assert_array_equal(r1.score_samples, r2.score_samples)
    assert r1.score_ci == r2.score_ci and r1.rank_ci == r2.rank_ci
    r3 = bootstrap_scores(rows, n_resamples=500, seed=8)
    assert not np.array_equal(r1.score_samples, r3.score_samples)
    # point estimates are the plain scores of the aggregate
    assert r1.scores == pytest.approx(benchmark_scores(aggregate(rows)))
    for a in r1.algorithms:
        lo, hi = r1.score_ci[a]
        assert lo <= r1.scores[a] <= hi
        rlo, rhi = r1.rank_ci[a]
        assert rlo <= r1.ranks[a] <= rhi
        assert 1 <= rlo <= rhi <= 3
    # C is far slower everywhere: always last
    assert r1.rank_ci["C"] == (3, 3)
    assert r1.score_samples.shape == (500, 3)
    json.dumps(r1.to_dict(), allow_nan=False)


def test_bootstrap_hand_computed_interval():
    # A: 3 studies all 10 -> always 10.  B: studies [20, 20, 30] -> point median 20 (ratio 2).
    # A resample of B's 3 studies has median 30 iff >= 2 of 3 draws are 30:
    #   P = 3 * (1/3)^2 * (2/3) + (1/3)^3 = 6/27 + 1/27 = 7/27 ~ 0.259, else median 20.
    # B score: ratio 2 -> 2/3, ratio 3 -> 1/3.  A score always 1.
    # 95% interval for B: 2.5% quantile = 1/3 (since 0.259 > 0.025), 97.5% = 2/3.
    rows = _studies("A", "w", [10.0, 10.0, 10.0]) + _studies("B", "w", [20.0, 20.0, 30.0])
    res = bootstrap_scores(rows, n_resamples=2000, seed=1)
    assert res.scores == {"A": 1.0, "B": approx(2 / 3)}
    assert res.score_ci["A"] == (1.0, 1.0)
    assert res.score_ci["B"] == (approx(1 / 3), approx(2 / 3))
    assert res.rank_ci == {"A": (1, 1), "B": (2, 2)}
    frac = np.mean(np.isclose(res.score_samples[:, 1], 1 / 3))
    assert frac == pytest.approx(7 / 27, abs=0.04)


def test_bootstrap_single_study_is_degenerate_and_gate_applies():
    rows = [("A", "w", 0, 0, 10.0), ("B", "w", 0, 0, 20.0), ("A", "w/v", 0, 0, 50.0), ("B", "w/v", 0, 0, 10.0)]
    # gate: A is 5x slower on w/v -> A's w = inf -> A 0, B 1
    res = bootstrap_scores(rows, n_resamples=50, seed=0, variants={"w": ["w/v"]})
    assert res.workloads == ["w"]
    assert res.scores == {"A": 0.0, "B": 1.0}
    assert res.score_ci == {"A": (0.0, 0.0), "B": (1.0, 1.0)}
    rep = score_table(rows, n_bootstrap=50)
    assert rep.bootstrap is not None and rep.bootstrap.scores == rep.scores


def test_bootstrap_bad_args():
    rows = [("A", "w", 0, 0, 1.0)]
    with pytest.raises(ScoringError):
        bootstrap_scores(rows, n_resamples=0)
    with pytest.raises(ScoringError):
        bootstrap_scores(rows, confidence=1.5)


# ------------------------------------------------------------------------------------------
# Comparability
# ------------------------------------------------------------------------------------------


def test_comparability_hardware():
    recs = [_record("A", hw="h100-abc"), _record("B", hw="a100-xyz")]
    with pytest.raises(ScoringError) as e:
        check_comparable(recs)
    msg = str(e.value)
    assert "hardware_fingerprint" in msg and "'h100-abc'" in msg and "'a100-xyz'" in msg
    assert "force=True" in msg
    problems = check_comparable(recs, force=True)
    assert len(problems) == 1
    with pytest.raises(ScoringError, match="h100-abc"):
        score_records(recs)
    assert score_records(recs, force=True).scores == {"A": 1.0, "B": 1.0}


def test_comparability_workload_version():
    recs = [
        _record("A", "mnist", version="1"),
        _record("B", "mnist", version="2"),
        _record("A", "cifar", version="1"),
        _record("B", "cifar", version="7"),
        _record("B", "mnist", "gelu", version="3"),  # a different key: not compared with mnist
    ]
    with pytest.raises(ScoringError) as e:
        check_comparable(recs)
    msg = str(e.value)
    assert "'mnist'" in msg and "'1'" in msg and "'2'" in msg
    assert "'cifar'" in msg and "'7'" in msg
    assert "'3'" not in msg
    assert len(check_comparable(recs, force=True)) == 2
    assert check_comparable([_record("A"), _record("B")]) == []


# ------------------------------------------------------------------------------------------
# CSV input and reports
# ------------------------------------------------------------------------------------------


def _write(tmp_path, text, name="times.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_read_times_csv_ok(tmp_path):
    p = _write(
        tmp_path,
        "Workload,algorithm,study,trial,time_to_target,notes\n"
        "w1,A,0,0,10.5,first\n"
        "w1,A,0,1,inf,\n"
        "\n"
        "w1,B,0,0,Infinity,x\n"
        "w2,B,1,0,,y\n"
        "w2,A,1,0,+INF,z\n",
    )
    rows = read_times_csv(p)
    assert rows == [
        TimeRow("A", "w1", 0, 0, 10.5),
        TimeRow("A", "w1", 0, 1, INF),
        TimeRow("B", "w1", 0, 0, INF),
        TimeRow("B", "w2", 1, 0, INF),
        TimeRow("A", "w2", 1, 0, INF),
    ]


@pytest.mark.parametrize(
    "text, match",
    [
        ("algorithm,workload,study,trial\nA,w,0,0\n", r"line 1: missing column\(s\) time_to_target"),
        ("algorithm,workload,study,trial,time_to_target\nA,w,0,0,1\nA,w,0,1,fast\n", r"line 3: time_to_target 'fast' is not a number"),
        ("algorithm,workload,study,trial,time_to_target\nA,w,0,0,-3\n", r"line 2: time_to_target '-3' is negative"),
        ("algorithm,workload,study,trial,time_to_target\nA,w,0,0,nan\n", r"line 2: time_to_target is NaN"),
        ("algorithm,workload,study,trial,time_to_target\nA,w,0,0\n", r"line 2: expected 5 fields, got 4"),
        ("algorithm,workload,study,trial,time_to_target\nA,w,x,0,1\n", r"line 2: study 'x' is not an integer"),
        ("algorithm,workload,study,trial,time_to_target\n,w,0,0,1\n", r"line 2: algorithm is empty"),
        ("", r"empty"),
        ("\n\n", r"empty"),
        ("algorithm,workload,study,trial,time_to_target\n", r"no data rows"),
    ],
)
def test_read_times_csv_errors(tmp_path, text, match):
    p = _write(tmp_path, text)
    with pytest.raises(ScoringError, match=match):
        read_times_csv(p)


def test_read_times_csv_missing_file(tmp_path):
    with pytest.raises(ScoringError, match="not found"):
        read_times_csv(tmp_path / "nope.csv")


def test_score_table_report_json_and_text(tmp_path):
    p = _write(
        tmp_path,
        "algorithm,workload,study,trial,time_to_target\n"
        "A,w1,0,0,10\nA,w1,0,1,12\nA,w2,0,0,20\nA,w3,0,0,30\n"
        "B,w1,0,0,20\nB,w2,0,0,10\nB,w3,0,0,inf\n",
    )
    rep = score_table(read_times_csv(p), tau_max=4, baseline="A")
    assert isinstance(rep, ScoreReport)
    # A ratios 1, 2, 1 -> (1 + 2/3 + 1)/3 = 8/9; B ratios 2, 1, inf -> (2/3 + 1 + 0)/3 = 5/9
    assert rep.scores == {"A": approx(8 / 9), "B": approx(5 / 9)}
    assert rep.algorithms == ["A", "B"] and rep.ranks == {"A": 1, "B": 2}
    assert rep.ratios["B"] == {"w1": 2.0, "w2": 1.0, "w3": INF}
    text = rep.to_json()
    assert "Infinity" not in text and "NaN" not in text
    d = json.loads(text)
    assert d["tau_max"] == 4 and d["workloads"] == ["w1", "w2", "w3"]
    assert d["algorithms"]["A"]["score"] == pytest.approx(8 / 9)
    assert d["algorithms"]["A"]["times"] == {"w1": 10.0, "w2": 20.0, "w3": 30.0}
    assert d["algorithms"]["B"]["times"]["w3"] == "inf"
    # speedups of B over A: w1 10/20 = 0.5, w2 20/10 = 2, w3 30/inf = 0; geomean over w1, w2 = 1
    assert d["algorithms"]["B"]["speedups"] == {"w1": 0.5, "w2": 2.0, "w3": 0.0}
    assert d["algorithms"]["B"]["geomean_speedup"] == pytest.approx(1.0)
    table = rep.format_table()
    lines = table.splitlines()
    assert lines[0].split() == ["rank", "algorithm", "score", "speedup", "vs", "A", "w1", "w2", "w3"]
    assert lines[2].split() == ["1", "A", "0.8889", "1.00x", "10", "20", "30"]
    assert lines[3].split() == ["2", "B", "0.5556", "1.00x", "20", "10", "inf"]
    # the per-workload speedups over the baseline follow
    speedup_rows = {line.split()[0]: line.split()[1:] for line in lines[lines.index("") + 4:]}
    assert speedup_rows == {"A": ["1.00x", "1.00x", "1.00x"], "B": ["0.50x", "2.00x", "0.00x"]}


def test_score_table_nan_encoded_as_null():
    rows = [("A", "w1", 0, 0, 1.0), ("B", "w1", 0, 0, 2.0), ("A", "w2", 0, 0, INF), ("B", "w2", 0, 0, INF)]
    d = json.loads(score_table(rows, baseline="A").to_json())
    assert d["algorithms"]["B"]["speedups"]["w2"] is None  # inf/inf = nan -> null
    assert d["algorithms"]["B"]["ratios"]["w2"] == "inf"


def test_score_table_empty_rows():
    with pytest.raises(ScoringError, match="no trial rows"):
        score_table([])


# ------------------------------------------------------------------------------------------
# Trial choice (AlgoPerf's earliest eval index vs laptime's fastest) and the integration rule
# ------------------------------------------------------------------------------------------


def test_algoperf_trial_choice_takes_earliest_eval_index_not_fastest_time():
    # one study, two trials: trial 0 met the target at eval 1 after 100 s; trial 1 at eval 3 after 60 s
    rows = [TimeRow("A", "w", 0, 0, 100.0, 10.0, eval_index_to_target=1),
            TimeRow("A", "w", 0, 1, 60.0, 30.0, eval_index_to_target=3),
            TimeRow("A", "w", 0, 2, INF, INF)]  # a miss never wins
    assert study_bests(rows) == {"A": {"w": {0: 60.0}}}
    assert study_bests(rows, trial_choice="algoperf") == {"A": {"w": {0: 100.0}}}
    # the chosen trial's value of the scored column, not the smallest one
    assert study_bests(rows, "steps_to_target", trial_choice="algoperf") == {"A": {"w": {0: 10.0}}}
    assert aggregate(rows, trial_choice="algoperf") == {"A": {"w": 100.0}}


def test_algoperf_trial_choice_ties_go_to_the_smaller_trial_and_misses_stay_inf():
    rows = [TimeRow("A", "w", 0, 4, 50.0, eval_index_to_target=2),
            TimeRow("A", "w", 0, 1, 70.0, eval_index_to_target=2),
            TimeRow("A", "w", 1, 0, INF), TimeRow("A", "w", 1, 1, INF)]
    assert study_bests(rows, trial_choice="algoperf") == {"A": {"w": {0: 70.0, 1: INF}}}


def test_algoperf_trial_choice_needs_the_eval_index_of_reached_trials():
    with pytest.raises(ScoringError, match="eval index is unknown"):
        study_bests([TimeRow("A", "w", 0, 0, 10.0)], trial_choice="algoperf")
    with pytest.raises(ScoringError, match="unknown trial choice"):
        score_table([TimeRow("A", "w", 0, 0, 10.0)], trial_choice="best")


def test_eval_index_of_records_from_measurement_or_evals():
    from laptime.records import EvalRecord

    stored = _record(study=0, trial_index=0)
    stored.measurement = {"eval_index_to_target": 5}
    derived = _record(study=0, trial_index=1, ttt=20.0, steps=60)
    derived.evals = [EvalRecord(step=s, submission_time=s / 3, wall_time=0.0, metrics={}) for s in (20, 40, 60)]
    missed = _record(study=0, trial_index=2, ttt=None, steps=None, outcome=Outcome.BUDGET)
    rows = rows_from_records([stored, derived, missed])
    assert [r.eval_index_to_target for r in rows] == [5, 2, None]
    # stored: index 5 at 10 s; derived: index 2 at 20 s -> AlgoPerf picks the earlier index, the slower trial
    assert study_bests([stored, derived, missed]) == {"A": {"mnist": {0: 10.0}}}
    assert study_bests([stored, derived, missed], trial_choice="algoperf") == {"A": {"mnist": {0: 20.0}}}


def test_times_csv_eval_index_column(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("algorithm,workload,study,trial,time_to_target,eval_index_to_target\n"
                    "A,w,0,0,100,1\nA,w,0,1,60,3\nA,w,0,2,inf,\n")
    rows = read_times_csv(path)
    assert [r.eval_index_to_target for r in rows] == [1, 3, None]
    assert score_table(rows, trial_choice="algoperf").times == {"A": {"w": 100.0}}
    path.write_text("algorithm,workload,study,trial,time_to_target,eval_index_to_target\nA,w,0,0,100,1.5\n")
    with pytest.raises(ScoringError, match="line 2: eval_index_to_target '1.5' is not an integer"):
        read_times_csv(path)


def test_tau_points_integrates_like_algoperf_trapezoid():
    # A fastest (ratio 1), B ratio 2 on one workload. Exact: B = (4 - 2) / 3 = 2/3.
    times = {"A": {"w": 1.0}, "B": {"w": 2.0}}
    assert benchmark_scores(times)["B"] == approx(2 / 3)
    # Trapezoid on taus = linspace(1, 4, 100): rho_B = 0 below tau = 2 and 1 from the first grid tau >= 2.
    # Step h = 3/99; grid taus 1 + k h, the first >= 2 is k = 33 (tau = 2 exactly): the interval [32h, 33h]
    # contributes h/2, the 66 intervals above it h each: area = (66 + 0.5) h = 66.5 * 3/99, score = 66.5/99.
    assert benchmark_scores(times, tau_points=100)["B"] == approx(66.5 / 99)
    assert benchmark_scores(times, tau_points=100)["A"] == approx(1.0)
    report = score_table([("A", "w", 0, 0, 1.0), ("B", "w", 0, 0, 2.0)], tau_points=100, n_bootstrap=20)
    assert report.scores["B"] == approx(66.5 / 99) and report.bootstrap.scores["B"] == approx(66.5 / 99)
    assert report.to_dict()["tau_points"] == 100 and "trapezoid rule on 100 taus" in report.format_table()
    with pytest.raises(ScoringError, match="tau_points"):
        benchmark_scores(times, tau_points=1)
