"""Plain records shared by the runner, the results store and scoring. No torch here.

A :class:`TrialRecord` is what one finished trial leaves behind: its identity (workload, variant,
algorithm and its source hash, hyperparameters, seed, hardware, library versions), its outcome and
its eval history.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import math
from typing import Any


class Outcome(str, enum.Enum):
    """How a trial ended."""

    REACHED = "reached"  # met the validation target at an eval
    BUDGET = "budget"  # spent its time budget without reaching the target
    COMPLETE = "complete"  # the algorithm said "training complete" without reaching the target
    DIVERGED = "diverged"  # a non-finite loss or parameter
    FAILED = "failed"  # the algorithm (or the workload) raised; the error is kept
    PRUNED = "pruned"  # stopped by tuning-time pruning (laptime.tuning.pruning); measurement["prune"] says why

    def __str__(self) -> str:  # pragma: no cover - cosmetic
        return self.value


#: A trial's timings count as contaminated when any of these is crossed (see :func:`assess_contention`).
CONTENTION_THRESHOLDS = {
    "other_cores": 0.5,  # other processes kept at least half a core busy on average
    "steal_fraction": 0.05,  # the hypervisor took 5 % of the machine's CPU time
    "cpu_share_min": 0.85,  # the timed work got less than 85 % of its threads' wall time on the CPU
}


def assess_contention(summary: dict[str, Any]) -> dict[str, Any]:
    """``{"contaminated": bool, "reasons": [...]}`` for a contention summary (what
    :class:`laptime.runner.contention.ContentionMonitor` records). Stored summaries are assessed
    again when read, so every trial is judged by the same thresholds."""
    reasons: list[str] = []
    other = summary.get("other_cores")
    if other is not None and other >= CONTENTION_THRESHOLDS["other_cores"]:
        reasons.append(f"other processes kept {other:.2f} core(s) busy")
    steal = summary.get("steal_fraction")
    if steal is not None and steal >= CONTENTION_THRESHOLDS["steal_fraction"]:
        reasons.append(f"{steal:.0%} of the CPU time was stolen by the hypervisor")
    share = summary.get("cpu_share")
    if share is not None and share < CONTENTION_THRESHOLDS["cpu_share_min"]:
        reasons.append(f"the timed work got {share:.0%} of its threads' time on the CPU")
    gpu = summary.get("other_gpu_processes")
    if gpu:
        reasons.append(f"{len(gpu)} other process(es) on the GPU")
    return {"contaminated": bool(reasons), "reasons": reasons}


@dataclasses.dataclass
class EvalRecord:
    """One evaluation: when (step, submission time, wall time) and every metric."""

    step: int
    submission_time: float  # seconds of submission time accumulated when the eval started
    wall_time: float  # seconds since the trial started, eval time included
    metrics: dict[str, float]
    eval_duration: float = 0.0  # seconds the eval itself took (not counted as submission time)
    robust_time: float | None = None  # robust submission time at this eval (see laptime.runner.workmeter)
    work: float | None = None  # timed work so far, in reference passes of the workload's speed probe


@dataclasses.dataclass
class TrialRecord:
    """One trial as stored. ``time_to_target``/``steps_to_target`` are ``None`` unless reached."""

    workload: str
    variant: str
    config: str
    workload_version: str
    dataset: str
    algorithm: str
    algorithm_hash: str
    hyperparameters: dict[str, Any]
    seed: int
    device: str
    hardware_fingerprint: str
    hardware: dict[str, Any]
    versions: dict[str, Any]
    target_metric: str
    target_direction: str
    target_value: float
    budget_sec: float
    outcome: Outcome
    time_to_target: float | None
    steps_to_target: int | None
    submission_time: float
    steps: int
    wall_time: float
    started_at: str
    finished_at: str
    error: str | None = None
    ruleset: str | None = None
    study: int | None = None
    trial_index: int | None = None
    plan_key: str | None = None  # identifies the planned trial, so re-running a benchmark can skip it
    budget_mode: str = "time"  # "time": budget in submission seconds; "steps": step-budget mode
    budget_steps: int | None = None  # the step budget in step-budget mode
    robust_time_to_target: float | None = None  # contention-robust estimate (laptime.runner.workmeter)
    robust_submission_time: float | None = None
    work_to_target: float | None = None  # in reference passes of the workload's speed probe
    reference_cost: float | None = None  # seconds of one reference pass at the machine's undisturbed speed
    cpu_time: float | None = None  # CPU seconds of the timed regions (CPU trials)
    measurement: dict[str, Any] = dataclasses.field(default_factory=dict)  # contention, probes, threads
    evals: list[EvalRecord] = dataclasses.field(default_factory=list)
    trial_id: int | None = None
    run_id: int | None = None

    def __post_init__(self) -> None:
        self.outcome = Outcome(self.outcome)

    @property
    def time_to_target_or_inf(self) -> float:
        return math.inf if self.time_to_target is None else float(self.time_to_target)

    @property
    def contention(self) -> dict[str, Any]:
        """The contention recorded with this trial, judged by today's thresholds ({} if none)."""
        summary = (self.measurement or {}).get("contention")
        return {**summary, **assess_contention(summary)} if summary else {}

    @property
    def contaminated(self) -> bool:
        """Whether contention was detected while this trial ran (its raw times are suspect)."""
        return bool(self.contention.get("contaminated", False))


@dataclasses.dataclass(frozen=True)
class TrialPlan:
    workload: str
    algorithm: str
    hyperparameters: dict[str, Any]
    seed: int = 0
    variant: str | None = None
    config: str | None = None
    ruleset: str | None = None
    study: int | None = None
    trial_index: int | None = None
    budget_factor: float = 1.0
    budget_mode: str = "time"
    batch_size: int | None = None  # overrides the algorithm's get_batch_size (laptime run/bench --batch-size)

    def key(self, algorithm_hash: str = "", workload_version: str = "", device_type: str = "",
            threads: int | None = None) -> str:
        """A stable id of this planned trial; re-running a benchmark skips plans already stored.

        ``threads`` (torch's intra-op threads) is part of it: the thread count changes a CPU
        trial's numbers, so a trial run with another count is another trial.
        """
        fields = dataclasses.asdict(self)
        if fields["batch_size"] is None:  # keys of plans without an override stay what they were
            del fields["batch_size"]
        payload = json.dumps({**fields, "algorithm_hash": algorithm_hash,
                              "workload_version": workload_version, "device_type": device_type,
                              "threads": threads},
                             sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:24]
