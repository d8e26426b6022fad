"""Plain progress lines for logs and pipes: what is printed, and how often (a fake clock: no timing)."""

import io
from types import SimpleNamespace

from laptime.records import EvalRecord, Outcome
from laptime.runner.progress import (BenchProgress, PlainBenchProgress, PlainTrialProgress, RichTrialProgress,
                                     bench_progress, trial_progress)


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


WORKLOAD = SimpleNamespace(target=SimpleNamespace(direction="max", metric="accuracy", validation=0.6),
                           spec=SimpleNamespace(key="mnist1d/base@cpu"))
ALGORITHM = SimpleNamespace(name="adamw")


def evaluation(step, value):
    return EvalRecord(step=step, submission_time=step / 100, wall_time=step / 50,
                      metrics={"validation/accuracy": value})


def test_plain_trial_progress_prints_start_rate_limited_evals_first_hit_and_end():
    clock, out = FakeClock(), io.StringIO()
    progress = PlainTrialProgress(out, min_interval=5.0, clock=clock)
    progress.start(WORKLOAD, ALGORITHM, budget_sec=60.0)
    progress.set_step_budget(1000)
    for step in range(1, 301):  # 300 steps, one eval every 25 steps, 0.1 s apart
        clock.t += 0.1
        progress.step(step, step / 100)
        if step % 25 == 0:
            progress.evaluated(evaluation(step, 0.4 + step / 1000), reached=0.4 + step / 1000 >= 0.6)
    progress.finish(SimpleNamespace(outcome=Outcome.REACHED, steps=300, submission_time=3.0, steps_to_target=200,
                                    time_to_target=2.0))
    lines = out.getvalue().splitlines()
    assert all(line.startswith("mnist1d/base@cpu · adamw: ") for line in lines)
    assert "started" in lines[0] and "accuracy ≥ 0.6" in lines[0] and "budget 1000 steps" in lines[0]
    # 30 s of steps: a line at most every 5 s (6), plus the first eval meeting the target at once
    evals = [line for line in lines if ": eval at " in line]
    assert any("step 200/1000" in line and "(target met)" in line for line in evals)
    assert 5 <= len(lines) - 2 <= 7, lines
    assert "reached the target at step 200 (2.00 s); 300 steps" in lines[-1]


def test_plain_trial_progress_says_something_between_rare_evals():
    clock, out = FakeClock(), io.StringIO()
    progress = PlainTrialProgress(out, min_interval=5.0, clock=clock)
    progress.start(WORKLOAD, ALGORITHM, budget_sec=60.0)
    for step in range(1, 121):  # no eval at all, 1 s per step
        clock.t += 1.0
        progress.step(step, float(step))
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("started (target accuracy ≥ 0.6, budget 60 s)")  # a time budget
    # said at the first step (t = 101), then every 5 s: 106, 111, ..., 216
    assert len(lines[1:]) == 23 and all("last eval: no eval yet" in line for line in lines[1:])


def test_plain_bench_progress_one_line_per_trial_and_reused_ones_counted():
    clock, out = FakeClock(), io.StringIO()

    def record(run_id, k, outcome=Outcome.BUDGET):
        return SimpleNamespace(run_id=run_id, workload="mnist1d", variant="base", config="cpu", algorithm="adamw",
                               study=0, trial_index=k, outcome=outcome, steps=100, submission_time=1.0,
                               steps_to_target=None, time_to_target=None, wall_time=10.0)

    with PlainBenchProgress(6, stream=out, run_id=7, clock=clock) as progress:
        for k in range(3):  # reused from an earlier run: one line for all three
            progress.on_result(None, record(3, k))
        for k in range(3, 6):
            clock.t += 10
            progress.on_result(None, record(7, k))
    lines = out.getvalue().splitlines()
    assert lines[0] == "benchmark: 6 trial(s)"
    assert lines[1].startswith("[3/6] reused 3 trial(s) already stored")
    assert lines[2].startswith("[4/6] mnist1d/base@cpu · adamw (study 0, trial 3): budget after 100 steps")
    assert "~0:20 left" in lines[2]
    assert lines[4].startswith("[6/6]") and lines[5] == "benchmark: 6/6 trials done (3 reused) in 0:30"
    assert len(lines) == 6
    # each trial of a benchmark only reports while it runs long (a line a minute), not its start or end
    trial = progress.trial_progress()
    assert not trial.start_line and not trial.finish_line and trial.min_interval == 60.0


def test_displays_are_chosen_by_the_stream(monkeypatch):
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    monkeypatch.setenv("FORCE_COLOR", "1")  # colour in a CI log does not make it a terminal
    assert isinstance(trial_progress(io.StringIO()), PlainTrialProgress)
    assert isinstance(bench_progress(3, stream=io.StringIO()), PlainBenchProgress)

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    assert isinstance(trial_progress(Terminal()), RichTrialProgress)
    assert isinstance(bench_progress(3, stream=Terminal()), BenchProgress)
    monkeypatch.setenv("TTY_COMPATIBLE", "0")
    assert isinstance(trial_progress(Terminal()), PlainTrialProgress)
