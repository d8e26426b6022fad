"""The timed trial loop: time accounting, eval cadence, target detection, outcomes, determinism."""

import math

import pytest

from laptime.algorithms import default_algorithms
from laptime.records import Outcome
from laptime.runner import ManualClock, TrialOptions, run_trial
from toys import ClockedAlgorithm, ClockedProgress, RaisingBatchSize, ToyWorkload

UNREACHABLE = 2.0  # accuracy can never reach 2.0


def test_time_accounting_excludes_eval_and_logging_includes_prepare_for_eval():
    clock = ManualClock()
    workload = ToyWorkload(target=UNREACHABLE, clock=clock, eval_cost=100.0)
    algorithm = ClockedAlgorithm(clock, init=2.0, select=0.5, update=1.0, prepare=0.25)
    progress = ClockedProgress(clock, cost=50.0)
    result = run_trial(workload, algorithm, {}, seed=0,
                       options=TrialOptions(eval_every_steps=3, max_steps=7), clock=clock, progress=progress)
    assert result.outcome == Outcome.BUDGET
    assert result.steps == 7
    # Evals at steps 3, 6 and a final one at 7. Submission time at an eval =
    #   init 2.0 + steps × (0.5 select + 1.0 update) + evals so far × 0.25 prepare.
    assert [e.step for e in result.evals] == [3, 6, 7]
    assert [e.submission_time for e in result.evals] == [
        2.0 + 3 * 1.5 + 1 * 0.25,  # 6.75
        2.0 + 6 * 1.5 + 2 * 0.25,  # 11.5
        2.0 + 7 * 1.5 + 3 * 0.25,  # 13.25
    ]
    assert result.submission_time == 13.25
    assert algorithm.prepare_calls == 3
    # Each eval evaluates validation and test: 2 × 100 s, recorded as eval duration, never charged.
    assert all(e.eval_duration == 200.0 for e in result.evals)
    # Wall time holds everything: 13.25 submission + 3 evals × 200 + progress (7 steps + 3 evals) × 50
    # (start() comes before the wall clock starts and finish() after it stops).
    assert result.wall_time == pytest.approx(13.25 + 600 + (7 + 3) * 50)


def test_eval_cadence_follows_the_submission_clock():
    clock = ManualClock()
    workload = ToyWorkload(target=UNREACHABLE, clock=clock, eval_cost=1000.0, eval_period=4.0)
    algorithm = ClockedAlgorithm(clock, update=1.5)
    result = run_trial(workload, algorithm, {}, seed=0, options=TrialOptions(max_steps=10), clock=clock)
    # Submission time after step k is 1.5k. Due when ≥ 4 s since the last eval: steps 3 (4.5), 6 (9.0), 9 (13.5);
    # then the final eval at step 10. The 1000 s evals do not move the cadence.
    assert [e.step for e in result.evals] == [3, 6, 9, 10]


@pytest.mark.parametrize(
    "direction,target,scripted,reached_at",
    [
        ("max", 0.5, [0.4, 0.5, 0.9], 2),  # equal counts as reached (inclusive)
        ("max", 0.5, [0.4, 0.49999, 0.50001], 3),
        ("min", 1.0, [1.5, 1.0, 0.5], 2),  # for a loss, <= target
        ("min", 1.0, [1.5, 1.00001, 0.99999], 3),
    ],
)
def test_target_detection_is_inclusive_and_stops_at_first_hit(direction, target, scripted, reached_at):
    clock = ManualClock()
    workload = ToyWorkload(target=target, direction=direction, metric="score", scripted=scripted)
    algorithm = ClockedAlgorithm(clock, update=1.0)
    result = run_trial(workload, algorithm, {}, seed=0, options=TrialOptions(eval_every_steps=5, max_steps=100),
                       clock=clock)
    assert result.outcome == Outcome.REACHED
    assert len(result.evals) == reached_at  # stopped at the first eval that met the target
    assert result.steps_to_target == 5 * reached_at
    assert result.time_to_target == 5.0 * reached_at
    assert result.steps == 5 * reached_at


def test_budget_ends_the_trial_and_late_hits_do_not_count():
    clock = ManualClock()
    # Steps cost 1 s, budget 10 s; the only eval that meets the target comes at the end (11th value).
    workload = ToyWorkload(target=0.5, metric="score", budget=10.0, scripted=[0.0] * 3 + [0.9])
    algorithm = ClockedAlgorithm(clock, update=1.0, prepare=0.5)
    result = run_trial(workload, algorithm, {}, seed=0, options=TrialOptions(eval_every_steps=3), clock=clock)
    # Evals at 3 (3.5 s), 6 (7.0 s), 9 (10.5 s ≥ budget → final). The 4th value would hit but never comes.
    assert [e.step for e in result.evals] == [3, 6, 9]
    assert result.outcome == Outcome.BUDGET
    assert result.time_to_target is None and result.steps_to_target is None

    clock = ManualClock()
    # Now the hit comes at the final eval, but its submission time (10.5 s) is past the 10 s budget.
    workload = ToyWorkload(target=0.5, metric="score", budget=10.0, scripted=[0.0, 0.0, 0.9])
    result = run_trial(workload, ClockedAlgorithm(clock, update=1.0, prepare=0.5), {}, seed=0,
                       options=TrialOptions(eval_every_steps=3), clock=clock)
    assert result.evals[-1].submission_time == 10.5
    assert result.outcome == Outcome.BUDGET


def test_budget_factor_scales_the_budget():
    clock = ManualClock()
    workload = ToyWorkload(target=UNREACHABLE, budget=10.0)
    result = run_trial(workload, ClockedAlgorithm(clock, update=1.0), {}, seed=0,
                       options=TrialOptions(budget_factor=1.5), clock=clock)
    assert result.budget_sec == 15.0
    assert result.steps == 15 and result.submission_time == 15.0


def test_nonfinite_parameters_end_as_diverged():
    clock = ManualClock()
    workload = ToyWorkload(target=UNREACHABLE)
    result = run_trial(workload, ClockedAlgorithm(clock, poison_at=4), {}, seed=0,
                       options=TrialOptions(eval_every_steps=10, max_steps=50), clock=clock)
    assert result.outcome == Outcome.DIVERGED
    assert result.error is None
    # Poisoned in the 5th step (global_step 4); the 6th step's training loss is NaN and ends the trial.
    assert result.steps == 6

    # With the loss check switched off, the parameter check at the next eval (step 10) catches it.
    clock = ManualClock()
    result = run_trial(workload, ClockedAlgorithm(clock, poison_at=4), {}, seed=0,
                       options=TrialOptions(eval_every_steps=10, max_steps=50, check_loss_every=1000), clock=clock)
    assert result.outcome == Outcome.DIVERGED
    assert result.steps == 10 and [e.step for e in result.evals] == [10]


def test_nonfinite_training_loss_ends_as_diverged_at_once():
    clock = ManualClock()
    workload = ToyWorkload(target=UNREACHABLE)
    result = run_trial(workload, ClockedAlgorithm(clock, poison_loss_at=6), {}, seed=0,
                       options=TrialOptions(eval_every_steps=100, max_steps=50), clock=clock)
    assert result.outcome == Outcome.DIVERGED
    assert result.steps == 7


def test_algorithm_exception_is_a_failed_outcome_with_the_error_kept():
    clock = ManualClock()
    workload = ToyWorkload(target=UNREACHABLE)
    result = run_trial(workload, ClockedAlgorithm(clock, fail_at=3), {}, seed=0,
                       options=TrialOptions(eval_every_steps=2, max_steps=50), clock=clock)
    assert result.outcome == Outcome.FAILED
    assert "ValueError: boom at step 3" in result.error
    assert result.steps == 3
    assert [e.step for e in result.evals] == [2]  # the history before the failure is kept


def test_setup_errors_are_failed_outcomes():
    result = run_trial(ToyWorkload(), RaisingBatchSize(), {}, seed=0, clock=ManualClock())
    assert result.outcome == Outcome.FAILED
    assert "must be >= 1" in result.error


def test_training_complete_gets_a_final_eval():
    clock = ManualClock()
    workload = ToyWorkload(target=UNREACHABLE)
    algorithm = ClockedAlgorithm(clock, complete_at=5)
    result = run_trial(workload, algorithm, {}, seed=0, options=TrialOptions(eval_every_steps=100), clock=clock)
    assert result.outcome == Outcome.COMPLETE
    assert result.steps == 5
    assert [e.step for e in result.evals] == [5]


def _real_run(seed):
    workload = ToyWorkload(target=UNREACHABLE)
    algorithm = default_algorithms().get("nadamw")
    return run_trial(workload, algorithm, algorithm.self_tuning_defaults, seed=seed,
                     options=TrialOptions(eval_every_steps=20, max_steps=100))


def test_same_seed_same_eval_history_on_cpu():
    a, b, c = _real_run(7), _real_run(7), _real_run(8)
    history = lambda r: [(e.step, e.metrics) for e in r.evals]  # noqa: E731
    assert history(a) == history(b)
    assert history(a) != history(c)
    # and it really trained: validation accuracy went up
    assert a.evals[-1].metrics["validation/accuracy"] > a.evals[0].metrics["validation/accuracy"] - 1e-9
    # measured: 0.832 at the last eval on avx2 and default alike, >= 0.75 from step 40 on
    assert a.evals[-1].metrics["validation/accuracy"] > 0.6


def test_real_clock_times_are_positive_and_consistent():
    result = _real_run(0)
    assert result.outcome == Outcome.BUDGET
    times = [e.submission_time for e in result.evals]
    assert times == sorted(times) and times[0] > 0
    assert result.wall_time >= result.submission_time
    assert math.isclose(result.submission_time, times[-1])


def test_baseline_ends_training_when_its_schedule_reaches_zero():
    workload = ToyWorkload(target=UNREACHABLE)  # step_hint 200
    algorithm = default_algorithms().get("nadamw")
    result = run_trial(workload, algorithm, algorithm.self_tuning_defaults, seed=0,
                       options=TrialOptions(eval_every_steps=50, max_steps=1000))
    # cosine decay reaches 0 at step_hint = 200: the 201st call raises TrainingComplete
    assert result.outcome == Outcome.COMPLETE
    assert result.steps == 200
    assert [e.step for e in result.evals] == [50, 100, 150, 200]


def test_warm_up_is_untimed_once_per_workload_and_leaves_results_unchanged():
    clock = ManualClock()

    class Counting(ToyWorkload):
        calls = 0

        def warm_up(self, batch_size):
            type(self).calls += 1
            clock.advance(100.0)  # an expensive warm-up must not reach the submission clock
            super().warm_up(batch_size)

    options = TrialOptions(eval_every_steps=5, max_steps=10)
    workload = Counting(clock=clock)
    first = run_trial(workload, ClockedAlgorithm(clock), {}, 3, options, clock=clock)
    second = run_trial(workload, ClockedAlgorithm(clock), {}, 3, options, clock=clock)
    assert first.submission_time == second.submission_time == 10.0
    assert Counting.calls == 2 and workload._warmed_up_batch == 32

    class NoWarmUp(ToyWorkload):
        def warm_up(self, batch_size):
            pass

    cold = run_trial(NoWarmUp(clock=clock), ClockedAlgorithm(clock), {}, 3, options, clock=clock)
    assert [e.metrics for e in cold.evals] == [e.metrics for e in first.evals]  # RNG states restored
