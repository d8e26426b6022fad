"""Target calibration (``laptime calibrate``): medians over seeds, time to target, budget, tuning."""

from __future__ import annotations

import json
import math

import pytest

from laptime.cli.main import main
from laptime.records import EvalRecord
from laptime.runner import ManualClock
from laptime.tuning import SearchSpace
from laptime.tuning.calibrate import CalibrationError, calibrate, summarise_run, time_to_target

from toys import ClockedAlgorithm, ToyWorkload


def _evals(values, every=2, seconds_per_step=1.0, test_offset=-0.05):
    return [EvalRecord(step=every * (i + 1), submission_time=every * (i + 1) * seconds_per_step, wall_time=0.0,
                       metrics={"validation/accuracy": v, "test/accuracy": v + test_offset})
            for i, v in enumerate(values)]


def test_summary_takes_the_best_eval_up_to_the_step_hint():
    run = summarise_run(_evals([0.5, 0.8, 0.7, 0.95]), "accuracy", "max", step_hint=6, seed=0,
                        hyperparameters={}, outcome="budget", steps=8, submission_time=8.0)
    # the 0.95 at step 8 is past the step hint and does not count
    assert (run.best_validation, run.best_step, run.best_time) == (0.8, 4, 4.0)
    assert run.test_at_best == pytest.approx(0.75)
    assert run.median_step_time == pytest.approx(1.0)
    low = summarise_run(_evals([3.0, 2.0, 2.5]), "accuracy", "min", step_hint=100, seed=0,
                        hyperparameters={}, outcome="budget", steps=6, submission_time=6.0)
    assert low.best_validation == 2.0 and low.best_step == 4


def test_time_to_target_is_inclusive_and_infinite_when_missed():
    run = summarise_run(_evals([0.5, 0.8, 0.7]), "accuracy", "max", 100, 0, {}, "budget", 6, 6.0)
    assert time_to_target(run, 0.8, "max") == 4.0
    assert time_to_target(run, 0.5, "max") == 2.0
    assert math.isinf(time_to_target(run, 0.81, "max"))
    nan_run = summarise_run(_evals([float("nan")]), "accuracy", "max", 100, 0, {}, "diverged", 2, 2.0)
    assert nan_run.best_validation is None and math.isinf(time_to_target(nan_run, 0.1, "max"))


def _scripted_calibration(scripts, **kwargs):
    """Each run's validation metrics come from ``scripts`` in turn (5 evals of 2 steps, 1 s/step)."""
    clock = ManualClock()
    flat = [v for script in scripts for v in script]
    workload = ToyWorkload(scripted=flat, clock=clock)
    algorithm = ClockedAlgorithm(clock, update=1.0)
    return calibrate(lambda: workload, algorithm, step_hint=10, eval_every_steps=2, base_hyperparameters={},
                     clock=clock, **kwargs)


def test_target_is_the_median_best_and_budget_three_times_the_median_time():
    result = _scripted_calibration(
        [[0.5, 0.6, 0.8, 0.7, 0.75],    # seed 0: best 0.80, first reaches 0.80 at step 6
         [0.5, 0.6, 0.65, 0.7, 0.7],    # seed 1: best 0.70, never reaches 0.80
         [0.6, 0.85, 0.9, 0.9, 0.9]],   # seed 2: best 0.90, reaches 0.80 at step 4
        seeds=(0, 1, 2))
    assert result.validation_target == pytest.approx(0.8)
    assert [r.seed for r in result.seeds] == [0, 1, 2]
    assert result.times_to_target[0] == 6.0 and math.isinf(result.times_to_target[1]) and result.times_to_target[2] == 4.0
    assert result.median_time_to_target == 6.0 and result.budget == pytest.approx(18.0)
    assert result.suggested()["budget"] == pytest.approx(18.0)
    assert result.step_hint == 10 and result.eval_every_steps == 2 and len(result.tuning) == 1
    record = result.to_json()
    assert record["workload"] == "toy/base@cpu" and record["suggested"]["validation"] == pytest.approx(0.8)
    json.dumps(record, allow_nan=True)  # plain data


def test_suggested_values_round_towards_the_easier_side():
    result = _scripted_calibration([[0.81234] * 5], seeds=(0,))
    assert result.suggested()["validation"] == pytest.approx(0.812)
    result.direction = "min"
    assert result.suggested()["validation"] == pytest.approx(0.813)
    result.budget = 123.4
    assert result.suggested()["budget"] == pytest.approx(130.0)


class _Tunable(ClockedAlgorithm):
    def search_space(self):
        return SearchSpace.from_json({"learning_rate": {"min": 0.01, "max": 0.1, "scaling": "log"}})


def test_tuning_picks_the_best_point_and_reruns_it():
    clock = ManualClock()
    scripts = [[0.5] * 5, [0.9] * 5, [0.6] * 5,  # three tuning points with seed 0: the second is best
               [0.8] * 5, [0.85] * 5]           # reruns of the best point with seeds 1 and 2
    workload = ToyWorkload(scripted=[v for s in scripts for v in s], clock=clock)
    result = calibrate(lambda: workload, _Tunable(clock), seeds=(0, 1, 2), tune_points=3, step_hint=10,
                       eval_every_steps=2, base_hyperparameters={}, clock=clock)
    points = _Tunable(clock).search_space().points(3, seed=0)
    assert result.best_hyperparameters == points[1]
    assert [r.hyperparameters for r in result.seeds] == [points[1]] * 3
    assert result.seeds[0] is result.tuning[1]  # the tuning run of seed 0 is reused
    assert result.validation_target == pytest.approx(0.85)


def test_bad_settings_are_refused():
    clock = ManualClock()
    workload = ToyWorkload(clock=clock)
    with pytest.raises(CalibrationError, match="seeds"):
        calibrate(lambda: workload, ClockedAlgorithm(clock), seeds=(), base_hyperparameters={}, clock=clock)
    with pytest.raises(CalibrationError, match="no search space"):
        calibrate(lambda: workload, ClockedAlgorithm(clock), tune_points=2, step_hint=4, base_hyperparameters={},
                  clock=clock)


def test_cli_calibrates_a_real_workload_and_writes_the_record(tmp_path, capsys, one_thread):
    out = tmp_path / "cal.json"
    code = main(["calibrate", "mnist1d", "--config", "cpu", "--seeds", "0", "1", "--step-hint", "20",
                 "--eval-every-steps", "10", "-o", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "validation target (median best)" in text and "budget" in text
    record = json.loads(out.read_text())
    assert record["workload"] == "mnist1d/base@cpu" and record["algorithm"] == "nadamw"
    assert [r["seed"] for r in record["seeds"]] == [0, 1] and record["step_hint"] == 20
    assert [e[0] for e in record["seeds"][0]["evals"]] == [10, 20]
    assert 0.1 < record["validation_target"] <= 1.0
    assert record["hardware"] and record["versions"]["torch"] and record["command"].startswith("laptime calibrate")


@pytest.mark.parametrize("argv, message", [
    (["calibrate", "mnist1dd"], "unknown workload"),
    (["calibrate", "mnist1d", "--seeds", "-1"], "seeds"),
    (["calibrate", "mnist1d", "--algorithm", "nope"], "unknown algorithm"),
    (["calibrate", "mnist1d", "--tune", "-1"], "tuning points"),
    (["calibrate", "mnist1d", "--step-hint", "0"], "step_hint"),
])
def test_cli_bad_input_is_one_error_line(argv, message, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "Traceback" not in captured.err
    assert "calibrating" not in captured.out  # refused before anything ran


def test_a_step_hint_override_reaches_the_algorithms_schedule():
    clock = ManualClock()
    workload = ToyWorkload(clock=clock)
    seen = []

    class Recording(ClockedAlgorithm):
        def update_params(self, workload, *args, **kwargs):
            seen.append(workload.step_hint)
            return super().update_params(workload, *args, **kwargs)

    result = calibrate(lambda: workload, Recording(clock), seeds=(0,), step_hint=6, eval_every_steps=3,
                       base_hyperparameters={}, clock=clock)
    assert result.step_hint == 6 and set(seen) == {6} and len(seen) == 6
    workload.override_step_hint(None)
    assert workload.step_hint == 200  # the spec's again
