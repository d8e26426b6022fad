"""One timed trial: an algorithm trains a workload until it meets the validation target or its
budget is spent.

Timing rules (AlgoPerf's, made exact):

* **Submission time** is the sum, over steps, of (end of this step − end of the previous step),
  each end read after a device synchronize. A step is ``data_selection`` + ``update_params``.
  ``init_optimizer_state`` is charged too (AlgoPerf leaves it out; laptime counts it so that no
  work can hide in it). ``prepare_for_eval`` is charged. Evaluation, logging, progress display and
  the finiteness checks are not: after them the "end of the previous step" is reset.
* **Eval cadence**: by default the *submission clock* drives it: an eval is due once
  ``eval_period_time_sec`` of submission time has passed since the last one. Because eval time is
  excluded from that clock, evaluation costs never shift when evals happen relative to training.
  ``eval_every_steps`` switches to a step clock (deterministic eval points, used for exact
  reproducibility checks). There is always an eval at the end.
* **Stop**: at the first eval whose validation metric meets the target (inclusive: ``>=`` for
  metrics to maximise, ``<=`` to minimise — :meth:`laptime.api.Target.reached`, used everywhere),
  when the budget (``max_allowed_runtime_sec × budget_factor``) is spent, when ``max_steps`` is
  reached, or when the algorithm raises :class:`~laptime.api.TrainingComplete`. A target met at
  an eval whose submission time is past the budget does not count.
* **Divergence**: a non-finite training loss (seen through ``workload.loss_fn``), a non-finite
  parameter or a non-finite validation metric ends the trial as ``diverged``.
* **Failure**: an exception raised by the algorithm or workload ends the trial as ``failed`` with
  the traceback kept. ``KeyboardInterrupt`` is not caught.
* **Budget modes.** ``budget="time"`` (AlgoPerf's rule, for dedicated hardware): the budget is
  submission seconds and evals follow the submission clock. ``budget="steps"`` (step-budget mode):
  the budget is the workload's step budget (``WorkloadSpec.max_allowed_steps`` × the budget
  factor), evals come every ``eval_period_steps`` steps, and nothing the trial does depends on the
  clock — so on a given machine (CPU kernel path, thread count) its outcome, steps to target and
  whole eval history are exactly the same whatever else the machine is doing. Times are still
  measured and stored. A safety cap stops a step-mode trial whose *robust* submission time passes
  ``time_cap_factor`` × its time budget (an algorithm ten times slower per step than the budget
  allows); that outcome is ``budget`` and the cap is noted in the trial's measurement record.
* **Robust time** (:mod:`laptime.runner.workmeter`): beside the raw submission time, the runner
  measures the timed work on a work clock (process CPU time on the CPU) and converts it into
  seconds at the machine's undisturbed speed with speed probes run between windows of work,
  outside the clock. ``robust=False`` switches it off.
* **Contention** (:mod:`laptime.runner.contention`): the load around the trial is sampled outside
  the clock and stored with it, with a verdict.
* **Checkpoints** (:mod:`laptime.runner.checkpoint`): with ``checkpoint_dir`` the trial is saved
  between steps, outside the clock, every ``checkpoint_every_sec`` submission seconds and/or
  ``checkpoint_every_steps`` steps; started again, it resumes from its checkpoint with the same eval
  history; SIGTERM makes it checkpoint at the next step boundary and raise
  :class:`~laptime.runner.checkpoint.TrialPreempted`.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import hashlib
import math
import random
import traceback
import warnings
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np
import torch

from laptime.api import Algorithm, Hyperparameters, TrainingComplete, Workload
from laptime.errors import UsageError
from laptime.records import EvalRecord, Outcome
from laptime.runner import checkpoint as ckpt
from laptime.runner.clock import DeviceClock
from laptime.runner.contention import ContentionMonitor
from laptime.runner.workmeter import CpuClock, WorkMeter

#: Budget modes: submission seconds (AlgoPerf's rule) or steps (reproducible on a shared machine).
BUDGET_MODES = ("time", "steps")


class Clock(Protocol):
    def now(self) -> float: ...

    def synchronize(self) -> None: ...


class TrialProgress(Protocol):
    """Receives progress; called outside the timed region."""

    def start(self, workload: Workload, algorithm: Algorithm, budget_sec: float) -> None: ...

    def step(self, global_step: int, submission_time: float) -> None: ...

    def evaluated(self, record: EvalRecord, reached: bool) -> None: ...

    def finish(self, result: "TrialResult") -> None: ...


@dataclasses.dataclass(frozen=True)
class TrialOptions:
    budget_factor: float = 1.0  # the self-tuning ruleset multiplies the budget (1.5 by default)
    eval_every_steps: int | None = None  # step clock instead of the submission clock
    eval_period_sec: float | None = None  # override the workload's eval period (submission seconds)
    max_steps: int | None = None  # hard cap on steps (tests, smoke runs)
    eval_splits: Sequence[str] | None = None  # default: the workload's (validation and test)
    check_loss_every: int = 1  # steps between finiteness checks of the training loss
    stop_at_target: bool = True
    budget: str = "time"  # "time" (submission seconds) or "steps" (step-budget mode)
    robust: bool = True  # measure the robust time (speed probes between windows, outside the clock)
    probe_overhead: float = 0.05  # the probes' share of the timed work (wall time, untimed)
    time_cap_factor: float | None = 10.0  # step mode: stop once robust time > this × the time budget
    batch_size: int | None = None  # use this batch size; the algorithm's get_batch_size is not asked
    #: Convert the robust time at this reference cost when it is lower than the trial's own: the
    #: lowest one the results store has seen for the workload on this hardware (``execute_plan``
    #: passes it). Under sustained load even the probe's fastest passes run slower (+8 to +37 %
    #: beside four busy processes on the 2-core VM, while the work moved by under 9 %), so the
    #: machine's best known speed gives a robust time that stays put. Scores never depend on it.
    reference_floor: float | None = None
    #: Checkpoints (:mod:`laptime.runner.checkpoint`): the folder (``None``: off), and how often:
    #: every N submission seconds and/or every N steps (deterministic points); neither given: every
    #: ``checkpoint.DEFAULT_EVERY_SEC`` submission seconds. SIGTERM always checkpoints.
    checkpoint_dir: str | None = None
    checkpoint_every_sec: float | None = None
    checkpoint_every_steps: int | None = None
    #: The checkpoint's file name without suffix (``execute_plan``: the plan key); ``None``: a hash
    #: of the trial's configuration.
    checkpoint_name: str | None = None
    #: Tuning-time pruning (:mod:`laptime.tuning.pruning`): the policy and the bound of the trial's
    #: study so far (``execute_plan`` gets it from the executor). Not part of the checkpoint's identity:
    #: a resumed trial is stopped by the bound it is given now.
    prune: Any = None
    #: Leave the checkpoint when the trial ends (``execute_plan`` removes it once the trial is
    #: stored, so a process killed in between resumes rather than starting over).
    checkpoint_keep: bool = False

    def __post_init__(self) -> None:
        if self.budget_factor <= 0:
            raise UsageError("budget_factor must be > 0")
        if self.budget not in BUDGET_MODES:
            raise UsageError(f"budget must be one of {', '.join(BUDGET_MODES)}, got {self.budget!r}")
        if not 0 < self.probe_overhead < 1:
            raise UsageError("probe_overhead must be in (0, 1)")
        if self.time_cap_factor is not None and self.time_cap_factor <= 0:
            raise UsageError("time_cap_factor must be > 0")
        if self.eval_every_steps is not None and self.eval_every_steps < 1:
            raise UsageError("eval_every_steps must be >= 1")
        if self.eval_period_sec is not None and self.eval_period_sec <= 0:
            raise UsageError("eval_period_sec must be > 0")
        if self.max_steps is not None and self.max_steps < 1:
            raise UsageError("max_steps must be >= 1")
        if self.check_loss_every < 1:
            raise UsageError("check_loss_every must be >= 1")
        if self.batch_size is not None and (isinstance(self.batch_size, bool) or int(self.batch_size) < 1):
            raise UsageError("batch_size must be >= 1")
        if self.checkpoint_every_sec is not None and not self.checkpoint_every_sec > 0:
            raise UsageError("checkpoint_every_sec must be > 0")
        if self.checkpoint_every_steps is not None and (isinstance(self.checkpoint_every_steps, bool)
                                                        or int(self.checkpoint_every_steps) < 1):
            raise UsageError("checkpoint_every_steps must be >= 1")
        if self.checkpoint_dir is not None:
            object.__setattr__(self, "checkpoint_dir", str(self.checkpoint_dir))


@dataclasses.dataclass
class TrialResult:
    outcome: Outcome
    time_to_target: float | None
    steps_to_target: int | None
    submission_time: float
    steps: int
    wall_time: float
    budget_sec: float
    evals: list[EvalRecord]
    started_at: str
    finished_at: str
    error: str | None = None
    budget_mode: str = "time"
    budget_steps: int | None = None  # step mode: the step budget (factor applied)
    robust_time_to_target: float | None = None
    robust_submission_time: float | None = None
    work_to_target: float | None = None  # in reference passes of the workload's speed probe
    reference_cost: float | None = None  # seconds of one reference pass at the machine's best
    cpu_time: float | None = None  # work-clock seconds of the timed regions (CPU time on the CPU)
    measurement: dict[str, Any] = dataclasses.field(default_factory=dict)  # contention, probes, notes

    @property
    def final_metrics(self) -> dict[str, float]:
        return dict(self.evals[-1].metrics) if self.evals else {}


def derive_seeds(seed: int) -> dict[str, int]:
    """Independent 63-bit seeds for the model, the data order and the algorithm's rng."""
    children = np.random.SeedSequence(int(seed)).spawn(3)
    model, data, algo = (int(c.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)) for c in children)
    return {"model": model, "data": data, "algorithm": algo}


class _LossProbe:
    """Wraps ``workload.loss_fn`` to remember the last loss an algorithm computed (no sync)."""

    def __init__(self, workload: Workload):
        self.workload = workload
        self.original = workload.loss_fn
        self.last: torch.Tensor | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        out = self.original(*args, **kwargs)
        summed = out.get("summed") if isinstance(out, Mapping) else None
        if isinstance(summed, torch.Tensor):
            self.last = summed.detach()
        return out

    def __enter__(self) -> "_LossProbe":
        self.workload.loss_fn = self  # instance attribute shadows the method
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            del self.workload.loss_fn
        except AttributeError:
            pass

    def nonfinite(self) -> bool:
        """Whether the last loss was NaN/inf. Called after the step's synchronize, so reading a
        scalar costs a copy, not a wait."""
        last, self.last = self.last, None
        if last is None:
            return False
        if last.numel() == 1:
            return not math.isfinite(last.item())
        return not bool(torch.isfinite(last).all())


def _params_finite(model: torch.nn.Module) -> bool:
    with torch.no_grad():
        return all(bool(torch.isfinite(p).all()) for p in model.parameters())


@functools.cache
def warm_up_torch() -> None:
    """Pay torch's one-off lazy work before any clock starts.

    The first optimizer built in a process imports ``torch._dynamo`` (about a second on a CPU);
    without this, the first trial of every process would be charged for it.
    """
    param = torch.nn.Parameter(torch.zeros(2))
    param.grad = torch.ones(2)
    for make in (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW):
        make([param], lr=0.0).step()


def _batch_size(workload: Workload, algorithm: Algorithm, options: TrialOptions, notes: list[str]) -> int:
    """``options.batch_size``, else the algorithm's (``batch_size_for(workload)``: by default its
    ``get_batch_size`` for the workload's key).

    Warnings the algorithm issues while choosing (an AlgoPerf submission falling back to the
    workload's default) are kept in ``notes`` and shown again.
    """
    if options.batch_size is not None:
        notes.append(f"batch size {int(options.batch_size)} set by the caller (--batch-size); "
                     "the algorithm's get_batch_size was not asked")
        return int(options.batch_size)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        choose = getattr(algorithm, "batch_size_for", None)  # Algorithm subclasses have it
        batch_size = int(choose(workload) if callable(choose) else algorithm.get_batch_size(workload.spec.key))
    for warning in caught:
        notes.append(str(warning.message))
        warnings.warn(warning.message, stacklevel=3)
    if batch_size < 1:
        raise ValueError(f"get_batch_size returned {batch_size}; it must be >= 1")
    return batch_size


def _identity(workload: Workload, algorithm: Algorithm, hp: Hyperparameters, seed: int, batch_size: int,
              options: TrialOptions, budget: float, budget_steps: int | None, eval_every_steps: int | None,
              eval_period: float) -> dict[str, Any]:
    """What a checkpoint must match to be resumed: everything that shapes the trial's course."""
    spec = workload.spec
    return {
        "workload": spec.key, "workload_version": spec.version, "algorithm": algorithm.name,
        "hyperparameters": hp.to_dict(), "seed": int(seed), "batch_size": int(batch_size),
        "budget": options.budget, "budget_sec": budget, "budget_steps": budget_steps,
        "eval_every_steps": eval_every_steps, "eval_period_sec": eval_period, "max_steps": options.max_steps,
        "eval_splits": None if options.eval_splits is None else list(options.eval_splits),
        "check_loss_every": options.check_loss_every, "stop_at_target": options.stop_at_target,
        "robust": options.robust, "time_cap_factor": options.time_cap_factor,
        "device": workload.device.type, "threads": torch.get_num_threads(),
        "compile": getattr(workload, "compile_options", None),
    }


def _now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def run_trial(
    workload: Workload,
    algorithm: Algorithm,
    hyperparameters: Mapping[str, Any] | None,
    seed: int,
    options: TrialOptions | None = None,
    *,
    clock: Clock | None = None,
    work_clock: Clock | None = None,
    progress: TrialProgress | None = None,
) -> TrialResult:
    """Run one trial and return its result. Never raises for algorithm errors or divergence.

    ``clock`` times the submission (default: :class:`DeviceClock`); ``work_clock`` measures the
    robust time's work (default: process CPU time on the CPU, ``clock`` on CUDA).
    """
    options = options or TrialOptions()
    clock = clock or DeviceClock(workload.device)
    if work_clock is None:
        work_clock = CpuClock() if workload.device.type == "cpu" else clock
    hp = hyperparameters if isinstance(hyperparameters, Hyperparameters) else Hyperparameters(hyperparameters or {})
    budget = float(workload.max_allowed_runtime_sec) * options.budget_factor
    step_mode = options.budget == "steps"
    budget_steps = math.ceil(workload.spec.max_allowed_steps * options.budget_factor) if step_mode else None
    eval_every_steps = options.eval_every_steps
    if step_mode and eval_every_steps is None:
        eval_every_steps = workload.spec.eval_period_steps_or_default
    time_cap = budget * options.time_cap_factor if step_mode and options.time_cap_factor else None
    eval_period = options.eval_period_sec or float(workload.eval_period_time_sec)
    metric_key = f"validation/{workload.target_metric_name}"
    seeds = derive_seeds(seed)
    started_at = _now_iso()
    monitor = ContentionMonitor(workload.device, torch.get_num_threads())
    meter: WorkMeter | None = None
    notes: list[str] = []

    evals: list[EvalRecord] = []
    eval_results: list[tuple[int, dict[str, float]]] = []
    state: dict[str, Any] = {
        "accumulated_submission_time": 0.0,
        "last_eval_time": 0.0,
        "is_time_remaining": True,
        "validation_goal_reached": False,
        "training_complete": False,
        "global_step": 0,
        "max_allowed_runtime_sec": budget,
    }
    train_state = MappingProxyType(state)
    outcome: Outcome | None = None
    error: str | None = None
    time_to_target: float | None = None
    steps_to_target: int | None = None
    work_to_target: float | None = None
    sub_time = 0.0
    work_time = 0.0  # work-clock seconds of the timed regions
    step = 0
    batch_size_used: int | None = None
    eval_reached: list[bool] = []  # per eval: whether it met the target (for a resumed progress display)
    last_eval_step = -1
    checkpointer: ckpt.Checkpointer | None = None
    identity: dict[str, Any] = {}
    resume: dict[str, Any] | None = None
    if options.checkpoint_dir is not None and ckpt.preemption_requested():
        raise ckpt.TrialPreempted(None, None)  # SIGTERM came between trials: start nothing
    pruner = None
    if options.prune is not None:
        from laptime.tuning.pruning import Pruner

        pruner = Pruner(options.prune, direction=workload.target.direction, target=workload.target.validation,
                        budget_steps=budget_steps, budget_sec=budget)

    if progress is not None:
        progress.start(workload, algorithm, budget)
        if budget_steps is not None and hasattr(progress, "set_step_budget"):
            progress.set_step_budget(budget_steps)

    warm_up_torch()
    wall_start = clock.now()
    last_end = last_work = 0.0

    def charge(t_start: float, w_start: float) -> None:
        """Add the timed region that began at (t_start, w_start) to both clocks' totals."""
        nonlocal sub_time, work_time, last_end, last_work
        now = clock.now()
        work_now = now if work_clock is clock else work_clock.now()  # on CUDA: one synchronize, not two
        sub_time += now - t_start
        work_time += work_now - w_start
        if meter is not None:
            meter.add(work_now - w_start)
        last_end, last_work = now, work_now

    with _LossProbe(workload) as probe, ckpt.sigterm_requests_checkpoint(options.checkpoint_dir is not None):
        try:
            model, model_state = workload.init_model_fn(seeds["model"])
            param_types = workload.model_params_types
            batch_size = batch_size_used = _batch_size(workload, algorithm, options, notes)
            if options.checkpoint_dir is None:
                input_queue = workload.train_batches(batch_size, seeds["data"])
            else:
                identity = _identity(workload, algorithm, hp, seed, batch_size, options, budget, budget_steps,
                                     eval_every_steps, eval_period)
                name = options.checkpoint_name or hashlib.sha256(ckpt.identity_key(identity).encode()).hexdigest()[:24]
                checkpointer = ckpt.Checkpointer(options.checkpoint_dir, name, every_sec=options.checkpoint_every_sec,
                                                 every_steps=options.checkpoint_every_steps)
                resume = checkpointer.load(identity, workload.device)
                start = int(resume["runner"]["batches_drawn"]) if resume is not None else 0
                # positioned before any clock runs (skipping costs nothing timed)
                input_queue = ckpt.CountingQueue(workload.train_batches_from(batch_size, seeds["data"], start), start)
            workload.warm_up(batch_size)  # untimed, once per workload instance; see Workload.warm_up
            if options.robust:
                reference_pass = workload.speed_probe()
                reference_pass()  # its one-off costs (kernel selection, allocations) are not a probe

                def measure_probe() -> float:
                    w0 = work_clock.now()
                    reference_pass()
                    return work_clock.now() - w0

                meter = WorkMeter(measure_probe, max_overhead=options.probe_overhead)
                meter.start()
            rng = torch.Generator().manual_seed(seeds["algorithm"])
            torch.manual_seed(seeds["algorithm"])  # dropout and other global-RNG users
            np.random.seed(seeds["algorithm"] % 2**32)  # submissions that draw from numpy's or Python's
            random.seed(seeds["algorithm"])

            # ---- timed: optimizer initialisation
            clock.synchronize()
            last_end, last_work = clock.now(), work_clock.now()
            optimizer_state = algorithm.init_optimizer_state(workload, model, model_state, hp, rng)
            charge(last_end, last_work)
            if resume is not None:
                # ---- untimed: continue from the checkpoint; its counters replace the ones above
                r = resume["runner"]
                model.load_state_dict(resume["model"])
                flags = resume["model_training"]
                for module_name, module in model.named_modules():
                    module.training = flags.get(module_name, module.training)
                grads = resume["grads"]
                for param_name, param in model.named_parameters():
                    grad = grads.get(param_name)
                    param.grad = None if grad is None else grad.to(device=param.device, dtype=param.dtype)
                model_state = resume["model_state"]
                optimizer_state = algorithm.load_optimizer_state_dict(optimizer_state, resume["optimizer"])
                ckpt.restore_rng(resume["rng"], workload.device, rng)
                step, sub_time, work_time = int(r["step"]), float(r["sub_time"]), float(r["work_time"])
                state.update(r["train_state"])
                evals[:] = [EvalRecord(**e) for e in r["evals"]]
                eval_results[:] = [(int(s), dict(m)) for s, m in r["eval_results"]]
                eval_reached[:] = list(r["eval_reached"])
                time_to_target, steps_to_target, work_to_target = (r["time_to_target"], r["steps_to_target"],
                                                                   r["work_to_target"])
                last_eval_step = int(r["last_eval_step"])
                if pruner is not None and r.get("pruner"):
                    pruner.load_state_dict(r["pruner"])
                notes[:] = [*r["notes"], f"resumed from a checkpoint at step {step} ({sub_time:.2f} s of submission "
                                         f"time); work after it by the stopped process is not counted"]
                started_at = r["started_at"]
                wall_start = clock.now() - float(r["wall_time"])
                if meter is not None:
                    meter.load_state_dict(resume["meter"])
                checkpointer.resumed(step, sub_time)
                resume = None  # the tensors are in place now; let the rest go
                if progress is not None:
                    for record, reached in zip(evals, eval_reached):
                        progress.evaluated(record, reached)
                    progress.step(step, sub_time)
                last_end, last_work = clock.now(), work_clock.now()
        except Exception:  # noqa: BLE001 - setup errors are recorded outcomes
            outcome, error = Outcome.FAILED, traceback.format_exc()

        def evaluate() -> tuple[bool, bool]:
            """prepare_for_eval (timed) + eval (untimed). Returns (reached, diverged)."""
            nonlocal optimizer_state, model, model_state, time_to_target, steps_to_target, work_to_target
            t0, w0 = clock.now(), work_clock.now()
            optimizer_state, model, model_state = algorithm.prepare_for_eval(
                workload, model, param_types, model_state, hp, workload.loss_type, optimizer_state,
                eval_results, step, rng)
            charge(t0, w0)
            if meter is not None:
                meter.close()  # the work at this eval is then exact (the probe runs outside the clock)
            t1 = clock.now()
            metrics = workload.eval_model(model, model_state, options.eval_splits)
            t2 = clock.now()
            record = EvalRecord(step=step, submission_time=sub_time, wall_time=t2 - wall_start,
                                metrics=metrics, eval_duration=t2 - t1,
                                work=meter.work if meter is not None else None)
            evals.append(record)
            eval_results.append((step, metrics))
            state["last_eval_time"] = sub_time
            state["accumulated_submission_time"] = sub_time
            value = metrics.get(metric_key)
            if value is None:
                raise KeyError(f"workload eval returned no {metric_key!r} (got {sorted(metrics)})")
            diverged = not math.isfinite(value) or not _params_finite(model)
            in_budget = step <= budget_steps if budget_steps is not None else sub_time <= budget
            reached = (not diverged) and in_budget and workload.target.reached(value)
            if reached and time_to_target is None:
                time_to_target, steps_to_target, work_to_target = sub_time, step, record.work
                state["validation_goal_reached"] = True
            eval_reached.append(reached)
            if progress is not None:
                progress.evaluated(record, reached)
            return reached, diverged

        def save_checkpoint() -> None:
            """Untimed: the whole trial as it stands between two steps (see laptime.runner.checkpoint)."""
            assert checkpointer is not None
            if meter is not None:
                meter.close()  # a checkpoint holds closed windows only
            runner = {
                "step": step, "sub_time": sub_time, "work_time": work_time, "wall_time": clock.now() - wall_start,
                "train_state": dict(state), "evals": [dataclasses.asdict(e) for e in evals],
                "eval_results": [(s, dict(m)) for s, m in eval_results], "eval_reached": list(eval_reached),
                "time_to_target": time_to_target, "steps_to_target": steps_to_target,
                "work_to_target": work_to_target, "last_eval_step": last_eval_step, "notes": list(notes),
                "started_at": started_at, "batches_drawn": input_queue.drawn, "batch_size": batch_size,
                "pruner": pruner.state_dict() if pruner is not None else None,
            }
            payload = {
                "runner": runner,
                "model": model.state_dict(),
                "model_training": {n: m.training for n, m in model.named_modules()},
                "grads": {n: p.grad for n, p in model.named_parameters() if p.grad is not None},
                "model_state": model_state,
                "optimizer": algorithm.optimizer_state_dict(optimizer_state),
                "rng": ckpt.capture_rng(workload.device, rng),
                "meter": meter.state_dict() if meter is not None else None,
            }
            checkpointer.save(identity, payload, step, sub_time)

        while outcome is None:
            # ---- timed: one step
            complete = False
            t0, w0 = last_end, last_work
            try:
                batch = algorithm.data_selection(workload, input_queue, optimizer_state, model, model_state, hp,
                                                 step, rng)
                optimizer_state, model, model_state = algorithm.update_params(
                    workload, model, param_types, model_state, hp, batch, workload.loss_type, optimizer_state,
                    eval_results, step, rng, train_state)
                step += 1
            except TrainingComplete:
                complete = True
            except Exception:  # noqa: BLE001 - algorithm errors are recorded outcomes
                outcome, error = Outcome.FAILED, traceback.format_exc()
                break
            charge(t0, w0)
            # ---- untimed bookkeeping
            if pruner is not None and time_to_target is None and not complete:
                # exact: this trial's value to target can no longer be below its study's best
                # the work so far is that of closed windows: a lower bound, so never pruned too early
                why = pruner.after_step(step, sub_time, meter.work if meter is not None else None)
                if why is not None:
                    outcome = Outcome.PRUNED
                    notes.append(why)
                    break
            state["accumulated_submission_time"] = sub_time
            state["global_step"] = step
            state["is_time_remaining"] = step < budget_steps if budget_steps is not None else sub_time < budget
            state["training_complete"] = complete
            if step % options.check_loss_every == 0 and probe.nonfinite():
                outcome = Outcome.DIVERGED
                break
            if progress is not None:
                progress.step(step, sub_time)
            estimate: float | None = None  # robust submission time, when known at this step
            if meter is not None:
                if meter.due:
                    meter.close()
                    monitor.sample()
                    estimate = meter.estimate()
            else:
                estimate = sub_time
            capped = time_cap is not None and estimate is not None and estimate > time_cap
            if capped:
                notes.append(f"stopped by the step-mode safety cap: robust submission time {estimate:.1f} s "
                             f"> {options.time_cap_factor:g} x the {budget:g} s time budget")

            if budget_steps is not None:
                out_of_budget = step >= budget_steps or capped
            else:
                out_of_budget = sub_time >= budget
            out_of_steps = options.max_steps is not None and step >= options.max_steps
            if eval_every_steps is not None:
                due = step % eval_every_steps == 0 and step != last_eval_step
            else:
                due = sub_time - state["last_eval_time"] >= eval_period
            if complete and last_eval_step == step:
                # nothing trained since the last eval: its result stands
                outcome = Outcome.REACHED if time_to_target is not None else Outcome.COMPLETE
            elif due or complete or out_of_budget or out_of_steps:
                try:
                    reached, diverged = evaluate()
                except Exception:  # noqa: BLE001
                    outcome, error = Outcome.FAILED, traceback.format_exc()
                    break
                last_eval_step = step
                if diverged:
                    outcome = Outcome.DIVERGED
                elif reached and options.stop_at_target:
                    outcome = Outcome.REACHED
                elif pruner is not None and time_to_target is None and not (complete or out_of_budget or out_of_steps) \
                        and (why := pruner.after_eval(step, evals[-1].metrics[metric_key], sub_time,
                                                      meter.work if meter is not None else None)) is not None:
                    outcome = Outcome.PRUNED
                    notes.append(why)
                elif complete:
                    outcome = Outcome.REACHED if time_to_target is not None else Outcome.COMPLETE
                elif out_of_budget or out_of_steps:
                    outcome = Outcome.REACHED if time_to_target is not None else Outcome.BUDGET
            if outcome is None and checkpointer is not None:
                preempted = ckpt.preemption_requested()
                if preempted or checkpointer.due(step, sub_time):
                    save_checkpoint()
                    if preempted:
                        raise ckpt.TrialPreempted(checkpointer.path, step)
            # bookkeeping, progress, probes, evals and checkpoints are not charged
            last_end = clock.now()
            last_work = last_end if work_clock is clock else work_clock.now()

    robust_sub = robust_ttt = reference = own_reference = None
    if meter is not None and meter.probes:
        meter.close()
        reference = own_reference = meter.reference
        floor = options.reference_floor
        if floor is not None and 0 < floor < own_reference:
            reference = floor  # the machine's best known speed for this workload (see TrialOptions)
        robust_sub = meter.work * reference
        robust_ttt = None if work_to_target is None else work_to_target * reference
        for record in evals:
            record.robust_time = None if record.work is None else record.work * reference
    on_cpu = workload.device.type == "cpu"
    measurement: dict[str, Any] = {
        "contention": monitor.summary(timed_wall=sub_time, timed_cpu=work_time if on_cpu else None,
                                      raw_time=sub_time, robust_time=meter.seconds(meter.work) if meter else None,
                                      slowdown=meter.slowdown if meter is not None else None),
    }
    if meter is not None:
        measurement["probes"] = {"count": len(meter.probes), "windows": meter.windows,
                                 "median_sec": float(np.median(meter.probes)) if meter.probes else None,
                                 "batch_size": workload.probe_batch_size,
                                 "own_reference_sec": own_reference,
                                 "reference": "this trial's" if reference == own_reference else
                                 "the lowest stored for this workload on this hardware",
                                 "work_clock": "process_cpu" if isinstance(work_clock, CpuClock) else "device_wall"}
    if batch_size_used is not None:
        measurement["batch_size"] = batch_size_used
    if pruner is not None:
        measurement["prune"] = pruner.summary()
    if checkpointer is not None:
        notes.extend(checkpointer.notes)
        measurement["checkpoint"] = checkpointer.summary()
        if not options.checkpoint_keep:
            checkpointer.remove()
    if notes:
        measurement["notes"] = notes

    result = TrialResult(
        outcome=outcome,
        time_to_target=time_to_target,
        steps_to_target=steps_to_target,
        submission_time=sub_time,
        steps=step,
        wall_time=clock.now() - wall_start,
        budget_sec=budget,
        evals=evals,
        started_at=started_at,
        finished_at=_now_iso(),
        error=error,
        budget_mode=options.budget,
        budget_steps=budget_steps,
        robust_time_to_target=robust_ttt,
        robust_submission_time=robust_sub,
        work_to_target=work_to_target,
        reference_cost=reference,
        cpu_time=work_time if on_cpu else None,
        measurement=measurement,
    )
    if progress is not None:
        progress.finish(result)
    return result
