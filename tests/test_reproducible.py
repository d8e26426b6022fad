"""Reproducible verdicts: step-budget mode, the robust time, contention detection and thread choice."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time

import pytest

from laptime.records import Outcome, TrialRecord
from laptime.runner import ManualClock, TrialOptions, run_trial
from laptime.runner.contention import THRESHOLDS, ContentionMonitor, assess
from laptime.runner.threads import _busy_jiffies, _cgroup_quota, choose_threads, parse_policy, usable_cores
from laptime.runner.workmeter import WorkMeter
from laptime.scoring import rows_from_records, score_records
from toys import ClockedAlgorithm, ToyWorkload

UNREACHABLE = 2.0


# --------------------------------------------------------------------------- the work meter


def _meter(probe_costs, **kwargs):
    costs = iter(probe_costs)
    return WorkMeter(lambda: next(costs), **kwargs)


def test_a_window_counts_its_cost_over_the_mean_of_the_probes_around_it():
    meter = _meter([1.0, 1.0, 3.0], initial_probes=2, max_overhead=0.1, min_window=0.0)
    meter.start()
    assert meter.window_target == pytest.approx(10.0)  # median probe 1.0 / 10 % overhead
    meter.add(4.0)
    assert not meter.due
    meter.add(6.0)
    assert meter.due
    meter.close()
    assert meter.work == pytest.approx(10.0 / ((1.0 + 3.0) / 2))  # 5 reference passes
    assert meter.reference == pytest.approx(1.0)  # 10 % quantile of [1, 1, 3]
    assert meter.seconds(meter.work) == pytest.approx(5.0)
    meter.close()  # an empty window adds nothing and runs no probe
    assert len(meter.probes) == 3


@pytest.mark.parametrize("slowdown", [1.0, 2.0, 3.7])
def test_work_does_not_change_when_the_whole_machine_slows_down(slowdown):
    """Windows of a trial with steps of unequal cost (a periodic heavy step) on a machine that runs
    everything ``slowdown`` times slower: the same work in reference passes."""
    windows = [10.0, 10.0, 25.0, 10.0, 10.0, 25.0]  # every third window holds a preconditioner update
    meter = _meter([0.5 * slowdown] * 10, initial_probes=3, max_overhead=0.05, min_window=0.0)
    meter.start()
    for cost in windows:
        meter.add(cost * slowdown)
        meter.close()
    assert meter.work == pytest.approx(sum(windows) / 0.5)
    assert meter.slowdown == pytest.approx(1.0)


def test_estimate_includes_the_open_window_and_the_probe_share_is_bounded():
    meter = _meter([0.01] * 200, initial_probes=5, max_overhead=0.05, min_window=0.0)
    meter.start()
    for _ in range(1000):  # 1000 steps of 4 ms
        meter.add(0.004)
        if meter.due:
            meter.close()
    assert sum(meter.probes) <= 0.05 * meter.cost + 5 * 0.01 + 0.01  # the initial probes and the last one
    assert meter.estimate() == pytest.approx(4.0)
    with pytest.raises(ValueError):
        WorkMeter(lambda: 1.0, max_overhead=1.5)


# --------------------------------------------------------------------------- step-budget mode (manual clocks)


def _step_trial(update_cost: float, probe_cost: float, **options):
    clock = ManualClock()
    workload = ToyWorkload(target=0.5, clock=clock, eval_cost=3.0, step_budget=40, eval_period_steps=10,
                           budget=1e9, probe_cost=probe_cost)
    algorithm = ClockedAlgorithm(clock, update=update_cost)
    result = run_trial(workload, algorithm, {}, seed=3, clock=clock, work_clock=clock,
                       options=TrialOptions(budget="steps", **options))
    return result


def test_step_mode_stops_at_the_step_budget_and_evaluates_on_a_step_clock():
    result = _step_trial(1.0, 0.05, stop_at_target=False)
    assert result.budget_mode == "steps" and result.budget_steps == 40
    assert result.steps == 40
    assert [e.step for e in result.evals] == [10, 20, 30, 40]
    assert result.outcome in (Outcome.REACHED, Outcome.BUDGET)


def test_step_mode_self_tuning_factor_multiplies_the_step_budget():
    result = _step_trial(1.0, 0.05, stop_at_target=False, budget_factor=1.5)
    assert result.budget_steps == 60 and result.steps == 60


def test_a_slower_machine_changes_the_raw_time_but_not_the_step_mode_verdict():
    fast = _step_trial(update_cost=1.0, probe_cost=0.05)
    slow = _step_trial(update_cost=4.0, probe_cost=0.2)  # the same work, everything 4x slower
    assert fast.outcome == slow.outcome == Outcome.REACHED
    assert fast.steps_to_target == slow.steps_to_target
    assert [(e.step, e.metrics) for e in fast.evals] == [(e.step, e.metrics) for e in slow.evals]
    assert slow.time_to_target == pytest.approx(4 * fast.time_to_target)
    assert slow.work_to_target == pytest.approx(fast.work_to_target)  # reference passes: the same


def test_time_mode_on_a_slower_machine_can_miss_where_step_mode_does_not():
    """The same trial with a time budget of 25 s: the fast machine reaches the target, the 4x slower
    one runs out of time — exactly the verdict flip that step-budget mode removes."""
    def trial(update_cost):
        clock = ManualClock()
        workload = ToyWorkload(target=0.5, clock=clock, step_budget=40, eval_period_steps=10, budget=25.0,
                               eval_period=5.0)
        return run_trial(workload, ClockedAlgorithm(clock, update=update_cost), {}, seed=3, clock=clock,
                         work_clock=clock, options=TrialOptions(budget="time", robust=False))

    assert trial(1.0).outcome == Outcome.REACHED
    assert trial(4.0).outcome == Outcome.BUDGET


def test_step_mode_safety_cap_stops_a_runaway_trial_and_says_so():
    clock = ManualClock()
    workload = ToyWorkload(target=UNREACHABLE, clock=clock, step_budget=1000, eval_period_steps=100, budget=10.0)
    result = run_trial(workload, ClockedAlgorithm(clock, update=1.0), {}, seed=0, clock=clock, work_clock=clock,
                       options=TrialOptions(budget="steps", robust=False, time_cap_factor=2.0))
    assert result.outcome == Outcome.BUDGET
    assert result.steps == 21  # stops at the first step past 2 x 10 s
    assert "safety cap" in result.measurement["notes"][0]


def test_probes_never_change_a_trials_numbers():
    """Speed probes run between windows with the RNG states saved and restored: the eval history is
    the same with the robust time on and off (the toy draws its batches from torch's generator)."""
    def trial(robust):
        workload = ToyWorkload(target=UNREACHABLE, step_budget=60, eval_period_steps=20)
        from laptime.algorithms import default_algorithms

        algorithm = default_algorithms().get("adamw")
        return run_trial(workload, algorithm, dict(algorithm.self_tuning_defaults), seed=5,
                         options=TrialOptions(budget="steps", robust=robust, probe_overhead=0.5))

    on, off = trial(True), trial(False)
    assert len(on.measurement["probes"]) and on.measurement["probes"]["count"] > 5
    assert [e.metrics for e in on.evals] == [e.metrics for e in off.evals]
    assert off.robust_time_to_target is None and off.work_to_target is None


# --------------------------------------------------------------------------- a real trial beside a busy process


def _mnist1d_trial():
    from laptime.algorithms import default_algorithms
    from laptime.workloads import default_workloads

    workload = default_workloads().create("mnist1d", variant="base", config="cpu")
    algorithm = default_algorithms().get("nadamw")
    return run_trial(workload, algorithm, dict(algorithm.self_tuning_defaults), seed=0,
                     options=TrialOptions(budget="steps"))


@pytest.mark.usefixtures("one_thread")
def test_a_busy_process_beside_a_step_mode_trial_changes_nothing_it_decides():
    quiet = _mnist1d_trial()
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        loaded = _mnist1d_trial()
    finally:
        spinner.kill()
        spinner.wait()
    assert quiet.outcome == loaded.outcome == Outcome.REACHED
    assert quiet.steps_to_target == loaded.steps_to_target
    assert [(e.step, e.metrics) for e in quiet.evals] == [(e.step, e.metrics) for e in loaded.evals]
    # The robust estimate is measured, not decided: it may move with the load, but far less than the
    # raw time can (allowing for a slow, shared machine: a factor 2 either way).
    assert 0.5 < loaded.robust_time_to_target / quiet.robust_time_to_target < 2.0
    assert "contention" in loaded.measurement and "other_cores" in loaded.measurement["contention"]


# --------------------------------------------------------------------------- scoring by robust time


def _record(algorithm, work, reference, steps, raw, study=0):
    return TrialRecord(
        workload="w", variant="base", config="cpu", workload_version="1", dataset="d", algorithm=algorithm,
        algorithm_hash="h", hyperparameters={}, seed=0, device="cpu", hardware_fingerprint="f", hardware={},
        versions={}, target_metric="accuracy", target_direction="max", target_value=0.5, budget_sec=10.0,
        outcome=Outcome.REACHED, time_to_target=raw, steps_to_target=steps, submission_time=raw, steps=steps,
        wall_time=raw, started_at="", finished_at="", study=study, trial_index=0, budget_mode="steps",
        robust_time_to_target=work * reference, work_to_target=work, reference_cost=reference,
    )


def test_robust_scores_use_one_reference_cost_per_workload():
    """Algorithm b ran while the machine was twice as slow (its own reference cost doubled, and its
    raw time more than that); scored on robust time, only the work counts: b did 1.5x a's work."""
    a = _record("a", work=100.0, reference=0.01, steps=500, raw=1.0)
    b = _record("b", work=150.0, reference=0.02, steps=500, raw=4.0)
    rows = {r.algorithm: r for r in rows_from_records([a, b])}
    assert rows["a"].robust_time_to_target == pytest.approx(100 * 0.01)  # the lowest reference cost
    assert rows["b"].robust_time_to_target == pytest.approx(150 * 0.01)
    by_raw = score_records([a, b], column="time_to_target")
    by_robust = score_records([a, b], column="robust_time_to_target")
    assert by_raw.ratios["b"]["w"] == pytest.approx(4.0)
    assert by_robust.ratios["b"]["w"] == pytest.approx(1.5)


def test_scoring_by_robust_time_refuses_a_reached_trial_without_one():
    from laptime.scoring import ScoringError

    plain = _record("a", work=1.0, reference=1.0, steps=1, raw=1.0)
    plain.work_to_target = plain.robust_time_to_target = plain.reference_cost = None
    with pytest.raises(ScoringError, match="no robust time"):
        score_records([plain], column="robust_time_to_target")
    assert score_records([plain], column="time_to_target").scores == {"a": 1.0}


# --------------------------------------------------------------------------- contention and threads


def test_contention_verdict_names_each_kind_of_disturbance():
    assert assess({"other_cores": 0.1, "steal_fraction": 0.0, "inflation": 0.02, "cpu_share": 0.99}) == {
        "contaminated": False, "reasons": []}
    verdict = assess({"other_cores": 2.0, "steal_fraction": 0.2, "inflation": 1.5, "cpu_share": 0.4,
                      "other_gpu_processes": [123]})
    assert verdict["contaminated"] and len(verdict["reasons"]) == 4
    assert assess({"other_cores": THRESHOLDS["other_cores"]})["contaminated"]  # at the threshold counts
    # a busy *host* (raw time inflated over the robust one, nothing seen here) is not contention
    assert not assess({"other_cores": 0.01, "inflation": 0.33, "cpu_share": 1.0})["contaminated"]


def test_stored_verdicts_are_judged_again_by_todays_thresholds():
    record = _record("a", work=1.0, reference=1.0, steps=1, raw=1.0)
    record.measurement = {"contention": {"other_cores": 0.0, "inflation": 0.3, "contaminated": True,
                                         "reasons": ["raw submission time +30% over the robust estimate"]}}
    assert not record.contaminated and record.contention["reasons"] == []


def test_contention_monitor_sees_a_busy_process():
    monitor = ContentionMonitor("cpu", threads=1)
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1.0)
    finally:
        spinner.kill()
        spinner.wait()
    summary = monitor.summary(timed_wall=1.0, timed_cpu=0.5, raw_time=2.0, robust_time=1.0, slowdown=1.3)
    if "other_cores" not in summary:
        pytest.skip("no /proc/stat on this system")
    assert summary["other_cores"] > 0.5  # the spinner held a core for most of the second
    assert summary["contaminated"]
    assert summary["cpu_share"] == 0.5 and summary["inflation"] == 1.0


def test_thread_policy_parsing_and_choice():
    assert parse_policy(None) == 1 and parse_policy("auto") == "auto" and parse_policy("3") == 3
    for bad in ("0", "-2", "many", 0):
        with pytest.raises(ValueError, match="threads must be"):
            parse_policy(bad)
    assert choose_threads(1, cores=8).threads == 1
    over = choose_threads(4, cores=2)
    assert over.threads == 4 and "oversubscribed" in over.reason
    assert choose_threads("auto", cores=8, busy=0.0).threads == 8
    assert choose_threads("auto", cores=8, busy=3.2).threads == 4  # floor(8 - 3.2)
    assert choose_threads("auto", cores=8, workers=3, busy=0.0).threads == 2
    assert choose_threads("auto", cores=2, busy=2.0).threads == 1  # never below one
    assert choose_threads("auto", cores=0.5, busy=0.0).threads == 1


def test_cgroup_quota_caps_the_usable_cores(tmp_path):
    assert _cgroup_quota(tmp_path) is None
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert _cgroup_quota(tmp_path) is None
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert _cgroup_quota(tmp_path) == 1.5
    assert usable_cores(tmp_path) <= 1.5
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("200000")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert _cgroup_quota(v1) == 2.0


def test_proc_stat_busy_time_leaves_out_idle_and_iowait():
    busy, total = _busy_jiffies("cpu  100 5 50 1000 20 1 2 7 0 0")
    assert total == 100 + 5 + 50 + 1000 + 20 + 1 + 2 + 7
    assert busy == total - 1000 - 20
    assert not math.isnan(busy)


def test_robust_times_are_expressed_at_the_best_reference_cost_the_store_has_seen(tmp_path):
    """The results store knows the lowest reference cost seen for a workload on this hardware; a
    trial converts its work at that cost when it is lower than its own (a trial under load), keeps
    its own beside it, and its evals and hooks see the same robust times as the stored record."""
    from laptime.results import ResultsStore

    quiet = _record("a", work=100.0, reference=0.010, steps=500, raw=1.0)
    key = dict(workload="w", variant="base", config="cpu", workload_version="1", hardware_fingerprint="f")
    with ResultsStore(tmp_path / "r.sqlite") as store:
        assert store.best_reference_cost(**key) is None
        store.add_trial(None, quiet)
        assert store.best_reference_cost(**key) == pytest.approx(0.010)
        assert store.best_reference_cost(**{**key, "hardware_fingerprint": "other"}) is None

    def trial(floor):
        clock = ManualClock()
        workload = ToyWorkload(target=0.5, clock=clock, step_budget=40, eval_period_steps=10, probe_cost=0.05)
        return run_trial(workload, ClockedAlgorithm(clock, update=1.0), {}, seed=3, clock=clock, work_clock=clock,
                         options=TrialOptions(budget="steps", reference_floor=floor))

    own, floored, higher = trial(None), trial(0.01), trial(0.5)
    assert floored.work_to_target == own.work_to_target
    assert own.reference_cost == pytest.approx(0.05) and floored.reference_cost == 0.01
    assert floored.robust_time_to_target == pytest.approx(own.robust_time_to_target * 0.01 / 0.05)
    assert [e.robust_time for e in floored.evals] == pytest.approx([e.robust_time * 0.2 for e in own.evals])
    assert floored.measurement["probes"]["own_reference_sec"] == pytest.approx(0.05)
    assert higher.robust_time_to_target == pytest.approx(own.robust_time_to_target)  # a higher floor: unused


# --------------------------------------------------------------------------- the verdict of a benchmark beside a busy process


@pytest.mark.usefixtures("one_thread")
def test_a_benchmark_gives_the_same_verdict_beside_a_busy_process(capsys, tmp_path):
    """The same small benchmark (step budgets, the CLI's defaults) quiet and beside a busy process:
    identical outcomes and steps-to-target scores, and robust-time scores within each other's
    intervals (which include the robust time's measurement noise)."""
    from laptime.cli.main import main

    def bench(name):
        argv = ["bench", "--suite", "mnist1d", "-a", "sgd_nesterov", "-a", "adamw", "--max-steps", "400",
                "--db", str(tmp_path / f"{name}.sqlite"), "--out", str(tmp_path / name), "--json"]
        scores = {}
        for by in ("steps", "robust"):
            assert main([*argv, "--by", by]) == 0  # the second call reuses the stored trials
            scores[by] = json.loads(capsys.readouterr().out)
        return scores

    quiet = bench("quiet")
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        loaded = bench("loaded")
    finally:
        spinner.kill()
        spinner.wait()
    assert quiet["steps"]["outcomes"] == loaded["steps"]["outcomes"]
    for name, entry in quiet["steps"]["algorithms"].items():
        assert loaded["steps"]["algorithms"][name]["score"] == entry["score"]
        assert loaded["steps"]["algorithms"][name]["times"] == entry["times"]
    for name, entry in quiet["robust"]["algorithms"].items():
        other = loaded["robust"]["algorithms"][name]
        lo, hi = entry["score_ci"]
        olo, ohi = other["score_ci"]
        assert lo - 1e-9 <= other["score"] <= hi + 1e-9 or olo - 1e-9 <= entry["score"] <= ohi + 1e-9
