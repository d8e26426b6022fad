"""One trial plan → one stored trial."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from laptime.algorithms import AlgorithmRegistry, default_algorithms
from laptime.api import Hyperparameters
from laptime.records import TrialPlan, TrialRecord
from laptime.results import ResultsStore
from laptime.runner import TrialOptions, run_trial
from laptime.runner.environment import fingerprint, hardware_info, library_versions, source_hash
from laptime.workloads import WorkloadRegistry, default_workloads


class DeviceError(Exception):
    """The requested device is not available."""


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N``; a clear error when CUDA is asked for but absent."""
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise DeviceError(f"unknown device {name!r}: use cpu, cuda or cuda:N") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError("--device cuda was asked for, but PyTorch sees no CUDA device here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"there is no {name}: {torch.cuda.device_count()} CUDA device(s) visible")
    elif device.type != "cpu":
        raise DeviceError(f"device type {device.type!r} is not supported: use cpu or cuda")
    return device


def execute_plan(
    plan: TrialPlan,
    *,
    device: str | torch.device = "cpu",
    store: ResultsStore | None = None,
    run_id: int | None = None,
    workloads: WorkloadRegistry | None = None,
    algorithms: AlgorithmRegistry | None = None,
    options: TrialOptions | None = None,
    progress: Any = None,
) -> TrialRecord:
    """Run ``plan`` and store the result (if ``store`` is given). Returns the record.

    Raises for bad names or an unavailable device (before anything runs); never for an
    algorithm's failure or divergence, which are recorded outcomes.
    """
    device = resolve_device(str(device))
    workloads = workloads or default_workloads()
    algorithms = algorithms or default_algorithms()
    workload = workloads.create(plan.workload, variant=plan.variant, config=plan.config, device=device)
    algorithm = algorithms.resolve(plan.algorithm)
    spec = workload.spec
    hp = Hyperparameters(plan.hyperparameters)
    options = dataclasses.replace(options or TrialOptions(), budget_factor=plan.budget_factor)

    algorithm_hash = source_hash(algorithm.source_files())
    hardware = hardware_info(device)
    result = run_trial(workload, algorithm, hp, plan.seed, options, progress=progress)
    record = TrialRecord(
        workload=spec.name,
        variant=spec.variant,
        config=spec.config,
        workload_version=spec.version,
        dataset=spec.dataset,
        algorithm=algorithm.name,
        algorithm_hash=algorithm_hash,
        hyperparameters=hp.to_dict(),
        seed=plan.seed,
        device=str(device),
        hardware_fingerprint=fingerprint(hardware),
        hardware=hardware,
        versions=library_versions(),
        target_metric=spec.target.metric,
        target_direction=spec.target.direction,
        target_value=spec.target.validation,
        budget_sec=result.budget_sec,
        outcome=result.outcome,
        time_to_target=result.time_to_target,
        steps_to_target=result.steps_to_target,
        submission_time=result.submission_time,
        steps=result.steps,
        wall_time=result.wall_time,
        started_at=result.started_at,
        finished_at=result.finished_at,
        error=result.error,
        ruleset=plan.ruleset,
        study=plan.study,
        trial_index=plan.trial_index,
        plan_key=plan.key(algorithm_hash, spec.version, device.type),
        evals=result.evals,
    )
    if store is not None:
        store.add_trial(run_id, record)
    return record
