"""Target calibration: how a workload's validation/test targets and budget are set.

AlgoPerf's procedure, scaled down (``laptime calibrate WORKLOAD``):

1. **Tune** the reference algorithm (NAdamW by default): ``tune_points`` quasi-random points of
   its search space (or, with 0 points, its self-tuning defaults), one run each (seed
   ``seeds[0]``), every run trained for exactly ``step_hint`` steps with the target disabled and
   evaluated every ``eval_every_steps`` steps. The best point is the one with the best validation
   metric at any eval up to ``step_hint``.
2. **Rerun** the best point with every seed in ``seeds`` (the tuning run of ``seeds[0]`` is
   reused: trials are deterministic given the seed).
3. The **validation target** is the median over seeds of the best validation metric reached by
   ``step_hint``; the **test target** the median of the test metric at those same evals.
4. The **budget** is ``budget_multiple`` (3) × the median submission time at which each seed's
   evals first reached the validation target (a seed that never reaches it counts as infinite;
   at least half reach a median target, so the median is finite with an odd number of seeds).

Submission times come from the runner (:func:`laptime.runner.run_trial`), so they are charged
exactly as in a benchmark trial (device-synchronised, evaluation excluded). Times are quantised
by the eval cadence: use a cadence of a few percent of ``step_hint``.

The result (:class:`Calibration`) carries every run's figures, the machine and the library
versions, so the numbers shipped in a workload's spec can cite where they come from.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import statistics
from collections.abc import Callable, Sequence
from typing import Any

from laptime.api import Algorithm, Target, Workload
from laptime.records import EvalRecord, Outcome
from laptime.errors import LaptimeError

#: The runner's budget is switched off during calibration by multiplying it by this.
_NO_BUDGET = 1e9


class CalibrationError(LaptimeError, ValueError):
    """Bad calibration settings, or runs that produced nothing to calibrate from."""


@dataclasses.dataclass(frozen=True)
class RunSummary:
    """One calibration run: its hyperparameters, seed and what it reached."""

    seed: int
    hyperparameters: dict[str, Any]
    outcome: str
    steps: int
    submission_time: float
    best_validation: float | None  # best validation metric at any eval up to step_hint
    best_step: int | None
    best_time: float | None
    test_at_best: float | None
    median_step_time: float | None  # submission seconds per step (from the evals)
    evals: list[tuple[int, float, float | None, float | None]]  # (step, submission time, validation, test)
    error: str | None = None


@dataclasses.dataclass
class Calibration:
    workload: str  # name/variant@config
    metric: str
    direction: str
    algorithm: str
    step_hint: int
    eval_every_steps: int
    tuning: list[RunSummary]
    best_hyperparameters: dict[str, Any]
    seeds: list[RunSummary]
    validation_target: float
    test_target: float | None
    times_to_target: list[float]  # per seed, inf when not reached
    median_time_to_target: float
    budget: float
    budget_multiple: float
    hardware: dict[str, Any]
    versions: dict[str, str]
    date: str
    command: str = ""

    def suggested(self, digits: int = 3) -> dict[str, float | None]:
        """Targets rounded to ``digits`` decimals towards the *easier* side, budget rounded up to
        two significant figures — the values to paste into a workload spec."""
        def easier(value: float | None) -> float | None:
            if value is None or not math.isfinite(value):
                return value
            scale = 10**digits
            return (math.floor(value * scale) if self.direction == "max" else math.ceil(value * scale)) / scale

        return {"validation": easier(self.validation_target), "test": easier(self.test_target),
                "budget": _round_up(self.budget, 2)}

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["suggested"] = self.suggested()
        return out


def _round_up(value: float, significant: int) -> float:
    if not math.isfinite(value) or value <= 0:
        return value
    exponent = math.floor(math.log10(value)) - significant + 1
    scale = 10.0**exponent
    return math.ceil(value / scale - 1e-9) * scale


def _better(direction: str) -> Callable[[float, float], bool]:
    return (lambda a, b: a > b) if direction == "max" else (lambda a, b: a < b)


def summarise_run(evals: Sequence[EvalRecord], metric: str, direction: str, step_hint: int, seed: int,
                  hyperparameters: dict[str, Any], outcome: str, steps: int, submission_time: float,
                  error: str | None = None) -> RunSummary:
    """Best validation metric (and the test metric at that eval) over the evals up to ``step_hint``."""
    better = _better(direction)
    rows = []
    best: tuple[float, int, float, float | None] | None = None
    for e in evals:
        val = e.metrics.get(f"validation/{metric}")
        test = e.metrics.get(f"test/{metric}")
        rows.append((e.step, e.submission_time, val, test))
        if e.step > step_hint or val is None or not math.isfinite(val):
            continue
        if best is None or better(val, best[0]):
            best = (val, e.step, e.submission_time, test)
    timed = [(s, t) for s, t, _, _ in rows if s > 0]
    per_step = statistics.median(t / s for s, t in timed) if timed else None
    return RunSummary(
        seed=seed, hyperparameters=dict(hyperparameters), outcome=outcome, steps=steps,
        submission_time=submission_time,
        best_validation=None if best is None else best[0], best_step=None if best is None else best[1],
        best_time=None if best is None else best[2], test_at_best=None if best is None else best[3],
        median_step_time=per_step, evals=rows, error=error,
    )


def time_to_target(run: RunSummary, target: float, direction: str, step_hint: int | None = None) -> float:
    """Submission time of the first eval whose validation metric reaches ``target`` (inclusive, by
    :meth:`laptime.api.Target.reached` like everywhere else)."""
    goal = Target("value", direction, target, target)
    for step, seconds, val, _ in run.evals:
        if step_hint is not None and step > step_hint:
            break
        if val is not None and goal.reached(val):
            return seconds
    return math.inf


def check_settings(seeds: Sequence[int], tune_points: int, budget_multiple: float, step_hint: int | None = None,
                   eval_every_steps: int | None = None) -> list[int]:
    """Refuse bad settings before anything runs (:class:`CalibrationError`); returns the seeds as ints."""
    seeds = [int(s) for s in seeds]
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise CalibrationError("calibration needs one or more distinct non-negative seeds")
    if tune_points < 0:
        raise CalibrationError("the number of tuning points must be >= 0")
    if budget_multiple <= 0:
        raise CalibrationError("the budget multiple must be > 0")
    if step_hint is not None and step_hint < 1:
        raise CalibrationError("step_hint must be >= 1")
    if eval_every_steps is not None and eval_every_steps < 1:
        raise CalibrationError("eval_every_steps must be >= 1")
    return seeds


def calibrate(
    make_workload: Callable[[], Workload],
    algorithm: Algorithm,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    tune_points: int = 0,
    tuning_seed: int = 0,
    step_hint: int | None = None,
    eval_every_steps: int | None = None,
    budget_multiple: float = 3.0,
    base_hyperparameters: dict[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
    command: str = "",
    clock: Any = None,
) -> Calibration:
    """Run the calibration procedure of this module's docstring and return its result.

    ``make_workload`` builds the workload on its device (called once; data loads once). A
    ``step_hint`` other than the spec's also becomes the horizon the algorithm's schedule sees.
    ``base_hyperparameters`` (default: the algorithm's self-tuning defaults) are used as is with
    ``tune_points=0`` and laid under each search-space point otherwise. ``clock`` (tests) replaces
    the runner's device clock.
    """
    from laptime.runner import TrialOptions, run_trial

    seeds = check_settings(seeds, tune_points, budget_multiple, step_hint, eval_every_steps)
    workload = make_workload()
    spec = workload.spec
    hint = int(step_hint or spec.step_hint)
    workload.override_step_hint(hint)  # the algorithms' schedules follow the calibrated horizon
    every = int(eval_every_steps or max(1, hint // 20))
    metric, direction = spec.target.metric, spec.target.direction
    base = dict(algorithm.self_tuning_defaults if base_hyperparameters is None else base_hyperparameters)
    options = TrialOptions(eval_every_steps=every, max_steps=hint, stop_at_target=False, budget_factor=_NO_BUDGET)
    say = log or (lambda _message: None)

    def one(hp: dict[str, Any], seed: int, label: str) -> RunSummary:
        result = run_trial(workload, algorithm, hp, seed, options, clock=clock)
        run = summarise_run(result.evals, metric, direction, hint, seed, hp, result.outcome.value,
                            result.steps, result.submission_time, result.error)
        best = "—" if run.best_validation is None else f"{run.best_validation:.4f} at step {run.best_step}"
        say(f"{label}: seed {seed}, {run.outcome}, {run.steps} steps, {run.submission_time:.1f} s; "
            f"best validation {metric} {best}")
        if result.outcome in (Outcome.FAILED,):
            say(f"    error: {(result.error or '').strip().splitlines()[-1] if result.error else 'unknown'}")
        return run

    better = _better(direction)
    if tune_points:
        space = algorithm.search_space()
        if space is None:
            raise CalibrationError(f"algorithm {algorithm.name!r} has no search space to tune over")
        points = [{**base, **p} for p in space.points(tune_points, seed=tuning_seed)]
    else:
        points = [base]
    tuning = [one(hp, seeds[0], f"tuning point {i + 1}/{len(points)}") for i, hp in enumerate(points)]
    usable = [r for r in tuning if r.best_validation is not None]
    if not usable:
        raise CalibrationError("no tuning run produced a finite validation metric (all diverged or failed)")
    best_run = usable[0]
    for run in usable[1:]:
        if better(run.best_validation, best_run.best_validation):
            best_run = run
    best_hp = best_run.hyperparameters

    runs = [best_run] + [one(best_hp, s, "rerun of the best point") for s in seeds[1:]]
    return conclude(spec.key, metric, direction, algorithm.name, hint, every, tuning, runs, budget_multiple,
                    workload.device, command)


def conclude(workload: str, metric: str, direction: str, algorithm: str, step_hint: int, eval_every_steps: int,
             tuning: Sequence[RunSummary], runs: Sequence[RunSummary], budget_multiple: float = 3.0,
             device: Any = "cpu", command: str = "") -> Calibration:
    """Steps 3 and 4 of the procedure: the targets and the budget from the best point's runs (one
    per seed, ``runs[0]`` the tuning run of the best point). Also used on runs made one at a time
    (``benchmarks/gpu_window.py`` runs each seed as its own item and concludes once all are in)."""
    from laptime.runner.environment import hardware_info, library_versions

    runs = list(runs)
    if not runs:
        raise CalibrationError("no run to calibrate from")
    finite = [r for r in runs if r.best_validation is not None]
    if len(finite) * 2 <= len(runs):
        raise CalibrationError("most reruns of the best point produced no finite validation metric")
    # Runs without a finite metric count as the worst possible value for the median.
    worst = -math.inf if direction == "max" else math.inf
    target = statistics.median(r.best_validation if r.best_validation is not None else worst for r in runs)
    tests = [r.test_at_best for r in finite if r.test_at_best is not None]
    test_target = statistics.median(tests) if tests else None
    times = [time_to_target(r, target, direction, step_hint) for r in runs]
    median_time = statistics.median(times)
    return Calibration(
        workload=workload, metric=metric, direction=direction, algorithm=algorithm, step_hint=step_hint,
        eval_every_steps=eval_every_steps, tuning=list(tuning), best_hyperparameters=runs[0].hyperparameters,
        seeds=runs, validation_target=float(target), test_target=None if test_target is None else float(test_target),
        times_to_target=times, median_time_to_target=median_time, budget=budget_multiple * median_time,
        budget_multiple=budget_multiple, hardware=hardware_info(device), versions=library_versions(),
        date=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d"), command=command,
    )
