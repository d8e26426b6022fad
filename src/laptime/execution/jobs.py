"""Executors on job engines: one job per trial, the records handed back, one writer.

:class:`JobExecutor` is what a Ray or a Slurm executor shares: plans are validated and keyed here
as for the other executors, claimed and handed to the engine as jobs (a :class:`TrialJob` called
with the plan and the reference-cost floors the parent read), at most ``max_parallel`` at a time;
each job runs :func:`~laptime.execution.plan.execute_plan` without a store and returns the
:class:`~laptime.records.TrialRecord`; the parent stores it (:class:`~laptime.execution.book.PlanBook`).
An engine supplies four methods: ``_start`` (connect), ``_submit`` (jobs for a batch of plans),
``_wait`` (the jobs that finished, with their record or why they have none) and ``_stop``.

What is the same everywhere: a trial's plan key includes the device *type* and the thread count,
both decided here (the engine decides which node and which GPU). The thread policy must be a
number (default 1, on CUDA too): it is the job's CPU request, and ``"auto"`` would read this
machine's free cores, not the node's. The device is ``cpu`` or ``cuda`` without an index, not
checked on this machine (a login node may have no GPU). Code must be the same where jobs run: a
record whose plan key differs from the one computed here (another laptime, algorithm file or
workload version on the node) is refused as an error, not stored.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from laptime.algorithms import AlgorithmRegistry
from laptime.execution.book import DEFAULT_LEASE_S
from laptime.execution.executors import (
    EngineError,
    ExecutorError,
    OnResult,
    PlanFailure,
    _book,
    _describe,
    _failures_of_duplicates,
    _log_result,
    _open_store,
    _prepare,
    _Resolver,
    _set_common,
    reference_floors,
)
from laptime.execution.plan import execute_plan
from laptime.loggers import check_loggers
from laptime.records import TrialPlan, TrialRecord
from laptime.runner import TrialOptions
from laptime.runner.threads import ThreadChoice, apply_threads, parse_policy
from laptime.workloads import WorkloadRegistry

__all__ = ["JobExecutor", "TrialJob", "job_device", "job_threads"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class TrialJob:
    """What a job runs: ``job(plan, floors, prune)`` → the plan's :class:`TrialRecord`, not stored
    (``prune``: the trial's :class:`~laptime.tuning.pruning.PruneSpec`, or None).

    Picklable (the factories must be importable where the job runs); the same for every plan of a
    benchmark, so an engine can ship it once."""

    device: str
    run_id: int | None
    options: TrialOptions | None
    workloads_factory: Callable[[], WorkloadRegistry]
    algorithms_factory: Callable[[], AlgorithmRegistry]
    threads: ThreadChoice
    loggers: tuple = ()

    def __call__(self, plan: TrialPlan, floors: dict[str, float] | None = None, prune: Any = None) -> TrialRecord:
        apply_threads(self.threads)
        return execute_plan(plan, device=self.device, store=None, run_id=self.run_id,
                            workloads=self.workloads_factory(), algorithms=self.algorithms_factory(),
                            options=self.options, threads=self.threads, loggers=self.loggers,
                            reference_floors=floors, prune=prune)


def job_device(device: str | torch.device, engine: str) -> torch.device:
    """``cpu`` or ``cuda`` for a job (the engine assigns the GPU); not checked on this machine."""
    try:
        resolved = torch.device(str(device))
    except RuntimeError:
        raise EngineError(f"unknown device {device!r}: use cpu or cuda") from None
    if resolved.type not in ("cpu", "cuda"):
        raise EngineError(f"device type {resolved.type!r} is not supported: use cpu or cuda")
    if resolved.index is not None:
        raise EngineError(f"--device {device}: {engine} chooses the GPU of each trial; give cuda, without an index")
    return resolved


def job_threads(policy: str | int | None, engine: str) -> ThreadChoice:
    """The intra-op threads of every job (its CPU request): a number, default 1."""
    try:
        value = parse_policy(policy)
    except ValueError as exc:
        raise EngineError(str(exc)) from None
    if value == "auto":
        raise EngineError(f"--threads auto reads this machine's free cores, not those of the {engine} nodes: "
                          "give a number of threads per trial (its CPU request)")
    n = int(value)
    return ThreadChoice(n, str(n), float(n), None, f"fixed: {n} thread(s) per trial, the {engine} job's CPU request")


class JobExecutor:
    """Runs each plan as a job of an engine; the records come back, this process stores them.

    Common arguments as for the other executors (``store_path``, ``device``, ``run_id``,
    ``options``, factories, ``resume``, ``retry_failed``, ``threads``, ``loggers``, ``claims``,
    ``claim_lease``); ``max_parallel``: at most this many jobs at once (None: the engine queues
    them all); ``poll``: seconds between looks at the jobs of engines that are polled.
    """

    engine = "jobs"

    def __init__(
        self,
        store_path: Any,
        *,
        device: str | torch.device = "cpu",
        run_id: int | None = None,
        options: TrialOptions | None = None,
        workloads_factory: Callable[[], WorkloadRegistry] | None = None,
        algorithms_factory: Callable[[], AlgorithmRegistry] | None = None,
        resume: bool = True,
        retry_failed: bool = False,
        threads: str | int | None = None,
        loggers: Sequence[Any] = (),
        claims: bool = True,
        claim_lease: float = DEFAULT_LEASE_S,
        max_parallel: int | None = None,
        poll: float = 1.0,
    ):
        _set_common(self, store_path, run_id=run_id, options=options, workloads_factory=workloads_factory,
                    algorithms_factory=algorithms_factory, resume=resume, retry_failed=retry_failed, loggers=loggers,
                    claims=claims, claim_lease=claim_lease)
        self.device = job_device(device, self.engine)
        self.thread_choice = job_threads(threads, self.engine)
        if max_parallel is not None and max_parallel < 1:
            raise EngineError(f"at most how many trials at once must be >= 1, got {max_parallel}")
        self.max_parallel = max_parallel
        self.poll = poll

    # ---- engine hooks ---------------------------------------------------------------------------

    def _start(self) -> None:
        """Connect to the engine (before the first job)."""

    def _submit(self, job: TrialJob, batch: list[tuple[int, TrialPlan, dict[str, float] | None]]) -> list[Any]:
        """One handle per ``(index, plan, floors)``, each a job running ``job(plan, floors)``."""
        raise NotImplementedError

    def _wait(self, handles: list[Any], timeout: float | None) -> list[tuple[Any, str, Any]]:
        """Finished jobs among ``handles`` (waiting at most ``timeout`` s for one; None: until one
        finishes): ``(handle, "done", record)``, ``(handle, "error", text)`` when the trial's code
        raised, ``(handle, "crashed", text)`` when the job died without a result."""
        raise NotImplementedError

    def _cancel(self, handles: list[Any]) -> None:
        """Cancel jobs still running (the run was interrupted or failed)."""

    def _stop(self) -> None:
        """Disconnect (after the last job)."""

    # ---- the run --------------------------------------------------------------------------------

    def job(self) -> TrialJob:
        return TrialJob(str(self.device), self.run_id, self.options, self.workloads_factory,
                        self.algorithms_factory, self.thread_choice, self.loggers)

    def run(self, plans: Sequence[TrialPlan], *, on_result: OnResult | None = None) -> list[TrialRecord]:
        plans = list(plans)
        if not plans:
            return []
        resolver = _Resolver(self.workloads_factory(), self.algorithms_factory())
        prepared = _prepare(plans, self.device, resolver, self.thread_choice.threads)
        check_loggers(self.loggers)
        robust = self.options is None or self.options.robust
        failures: list[PlanFailure] = []
        with _open_store(self.store) as store:
            book = _book(store, plans, prepared, self, on_result)
            running: dict[Any, int] = {}
            started = stop = False
            try:
                while True:
                    batch = []
                    while not stop and (self.max_parallel is None or len(running) + len(batch) < self.max_parallel):
                        index = book.next()
                        if index is None:
                            break
                        plan = prepared[index][0]
                        batch.append((index, plan, reference_floors(store, resolver, plan) if robust else None,
                                      book.prune_spec(index)))
                    if batch:
                        try:
                            if not started:
                                self._start()
                                started = True
                            handles = self._submit(self.job(), batch)
                        except BaseException:
                            for index, *_ in batch:
                                book.lost(index)
                            raise
                        running.update(zip(handles, (index for index, *_ in batch)))
                    if not running:
                        if book.waiting and not stop:  # plans another benchmark is running
                            time.sleep(min(book.wait_time(), 5.0))
                            continue
                        break
                    timeout = book.wait_time() if book.waiting and not stop else None
                    for handle, status, value in self._wait(list(running), None if timeout == float("inf") else timeout):
                        index = running.pop(handle)
                        if status == "done":
                            problem = book.check(index, value)
                            if problem is None:
                                record = book.store_record(index, value)  # the single writer
                                _log_result(prepared[index][0], record, f" ({self.engine})")
                                book.resolve(index, record)
                                continue
                            status, value = "error", problem
                        book.lost(index)
                        if status == "error":
                            stop = True  # as with worker processes: no new plans after an error
                        logger.error("plan %d (%s) in %s: %s: %s", index, _describe(plans[index]), self.engine, status,
                                     value)
                        failures.append(PlanFailure(index, plans[index], status, str(value).strip()))
                reason = "another plan raised an error, so no new plans were started"
                for index in sorted(set(book.todo) | set(book.waiting)):
                    failures.append(PlanFailure(index, plans[index], "not run", reason))
                book.todo.clear()
                book.waiting.clear()
                _failures_of_duplicates(book, failures)
            finally:
                if running:
                    self._cancel(list(running))
                    for index in running.values():
                        book.lost(index)
                if started:
                    self._stop()
                book.close()
        if failures:
            failures.sort(key=lambda f: f.index)
            raise ExecutorError(failures, book.records)
        return book.records  # type: ignore[return-value]
