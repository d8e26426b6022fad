"""One trial plan → one stored trial."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from laptime.algorithms import AlgorithmRegistry, default_algorithms
from laptime.algorithms.algoperf import trial_device
from laptime.api import Hyperparameters
from laptime.records import TrialPlan, TrialRecord
from laptime.results import ResultsStore
from laptime.runner import TrialOptions, run_trial
from laptime.runner.checkpoint import remove_checkpoint
from laptime.runner.environment import fingerprint, hardware_info, library_versions, source_hash
from laptime.runner.threads import DEFAULT_CPU_THREADS, ThreadChoice, apply_threads, choose_threads, usable_cores
from laptime.workloads import WorkloadRegistry, default_workloads
from laptime.errors import LaptimeError


#: The fields of a stored trial; those a TrialResult also has are copied from it.
_RECORD_FIELDS = frozenset(f.name for f in dataclasses.fields(TrialRecord))


class DeviceError(LaptimeError):
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


def thread_choice(device: str | torch.device, policy: str | int | None = None, workers: int = 1) -> ThreadChoice:
    """The intra-op threads for trials on ``device`` (see :mod:`laptime.runner.threads`).

    CPU trials: ``policy`` (default: 1 thread). CUDA trials: ``policy`` when given, else torch's own
    setting (the threads only run CPU-side work there).
    """
    device = torch.device(device)
    if device.type == "cpu" or policy is not None:
        return choose_threads(DEFAULT_CPU_THREADS if policy is None else policy, workers)
    threads = torch.get_num_threads()
    return ThreadChoice(threads, "torch default", usable_cores(), None,
                        f"CUDA trial: torch's own setting ({threads}) for CPU-side work")


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
    threads: ThreadChoice | str | int | None = None,
    loggers: Sequence[Any] = (),
    reference_floors: Mapping[str, float] | None = None,
    save: Callable[[TrialRecord], Any] | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    prune: Any = None,
) -> TrialRecord:
    """Run ``plan`` and store the result (if ``store`` is given). Returns the record.

    ``reference_floors``: for a trial that runs away from the store (``store=None``: a worker
    process, a Ray task, a Slurm job), the lowest reference cost the store has seen for the plan's
    workload on each hardware (``{fingerprint: seconds}``, :meth:`ResultsStore.reference_costs`, read
    by the parent); the entry of the hardware the trial runs on becomes ``TrialOptions.reference_floor``,
    as the store's own lookup does when ``store`` is given. ``save(record)``: stores the finished
    record instead of ``store.add_trial`` (an executor's single writer: the trial and the release of
    its claim in one transaction); trackers end their runs after it, with the trial id.

    ``threads``: a :class:`ThreadChoice` made by the caller (an executor makes one per benchmark),
    or a policy for :func:`thread_choice`; it is applied (``torch.set_num_threads``), recorded with
    the trial and part of its plan key. Raises for bad names or an unavailable device (before
    anything runs); never for an algorithm's failure or divergence, which are recorded outcomes.

    ``loggers``: :class:`~laptime.loggers.LoggerSpec` s; each gets one run for this trial, fed
    from the progress hook (outside the timed region) and ended once the trial is stored.

    ``checkpoint_dir`` (default: ``options.checkpoint_dir``): checkpoint the trial there as
    ``<plan key>.pt`` (:mod:`laptime.runner.checkpoint`), so that the same plan run again — by any
    process that sees the folder — resumes it. The file is removed here once the trial is stored
    (``store`` or ``save``); a trial whose record is handed back to be stored elsewhere leaves it to
    the writer (:func:`laptime.runner.checkpoint.sweep` once stored), so a death in between loses
    nothing. SIGTERM makes the trial checkpoint and raise
    :class:`~laptime.runner.checkpoint.TrialPreempted` (nothing is stored).

    ``prune``: the trial's :class:`~laptime.tuning.pruning.PruneSpec` (its study's best so far and
    the pruning policy), handed over by the executor's plan book; None: not pruned.
    """
    device = resolve_device(str(device))
    choice = threads if isinstance(threads, ThreadChoice) else thread_choice(device, threads)
    apply_threads(choice)
    workloads = workloads or default_workloads()
    algorithms = algorithms or default_algorithms()
    workload = workloads.create(plan.workload, variant=plan.variant, config=plan.config, device=device)
    with trial_device(device):  # an AlgoPerf submission's pytorch_setup() answers with the trial's device
        algorithm = algorithms.resolve(plan.algorithm)
    spec = workload.spec
    hp = Hyperparameters(plan.hyperparameters)
    options = dataclasses.replace(options or TrialOptions(), budget_factor=plan.budget_factor,
                                  budget=plan.budget_mode)
    if plan.batch_size is not None:
        options = dataclasses.replace(options, batch_size=plan.batch_size)
    if prune is not None:
        options = dataclasses.replace(options, prune=prune)

    algorithm_hash = source_hash(algorithm.source_files())
    hardware = hardware_info(device)
    if options.robust and reference_floors is not None:  # looked up by the parent, which holds the store
        options = dataclasses.replace(options, reference_floor=reference_floors.get(fingerprint(hardware)))
    elif store is not None and options.robust:  # robust times at the machine's best known speed
        options = dataclasses.replace(options, reference_floor=store.best_reference_cost(
            workload=spec.name, variant=spec.variant, config=spec.config, workload_version=spec.version,
            hardware_fingerprint=fingerprint(hardware)))
    plan_key = plan.key(algorithm_hash, spec.version, device.type, choice.threads)
    checkpoint_dir = options.checkpoint_dir if checkpoint_dir is None else os.fspath(checkpoint_dir)
    if checkpoint_dir is not None:  # one file per plan; kept until the trial is stored
        options = dataclasses.replace(options, checkpoint_dir=checkpoint_dir, checkpoint_name=plan_key,
                                      checkpoint_keep=True)
    trial_log = None
    if loggers:
        from laptime.loggers import TrialContext, open_trial_loggers

        arrow = ">=" if spec.target.direction == "max" else "<="
        context = TrialContext(
            workload=spec.key, algorithm=algorithm.name, hyperparameters=hp.to_dict(), seed=plan.seed,
            device=str(device), budget_mode=options.budget, budget_factor=plan.budget_factor, ruleset=plan.ruleset,
            study=plan.study, trial_index=plan.trial_index, batch_size=plan.batch_size, threads=choice.threads,
            plan_key=plan_key, run_id=run_id,
            target=f"validation/{spec.target.metric} {arrow} {spec.target.validation:g}")
        progress = trial_log = open_trial_loggers(loggers, context, progress)
    try:
        with trial_device(device):
            result = run_trial(workload, algorithm, hp, plan.seed, options, progress=progress)
        # what the runner measured goes over as is (every TrialResult field the record also has)
        measured = {f.name: getattr(result, f.name) for f in dataclasses.fields(result) if f.name in _RECORD_FIELDS}
        measured["measurement"] = {"threads": choice.as_dict(), **result.measurement}
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
            ruleset=plan.ruleset,
            study=plan.study,
            trial_index=plan.trial_index,
            plan_key=plan_key,
            **measured,
        )
        if save is not None:
            record = save(record) or record
        elif store is not None:
            store.add_trial(run_id, record)
        if checkpoint_dir is not None and (save is not None or store is not None):
            remove_checkpoint(checkpoint_dir, plan_key)  # stored: a rerun skips the plan (a leftover is swept)
    except BaseException:
        if trial_log is not None:
            trial_log.abort()  # the runs end as killed
        raise
    if trial_log is not None:
        trial_log.close(record)  # stored: the runs get the trial id and end
    return record
