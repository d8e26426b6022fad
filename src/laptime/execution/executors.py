"""Executors: run a list of trial plans, store every trial, return the records.

The contract
------------
An executor has one method::

    run(plans, *, on_result=None) -> list[TrialRecord]

It runs every :class:`~laptime.execution.plan.TrialPlan` (each one a call of
:func:`~laptime.execution.plan.execute_plan` somewhere), stores one trial per plan in the results
store, and returns the records **in the order of** ``plans``. ``on_result(plan, record)`` is called
in the calling process once per plan as soon as its record is known (in completion order, which
for a parallel executor is not the plan order), with the plan object exactly as it was passed in.
That is the whole interface between planning (:mod:`laptime.tuning.rulesets`) and execution:
nothing in the rulesets or scoring knows where a trial ran.

**One writer.** Only the calling process writes the results store
(:class:`~laptime.execution.book.PlanBook`): workers, Ray tasks and Slurm jobs run
``execute_plan(store=None)`` and hand the record back (a :class:`~laptime.records.TrialRecord`
pickles), with the reference-cost floor the parent read for them (``reference_floors``).
**Claims.** Before a plan runs, the parent claims it in the results store, so that two
benchmarks on one file never run a plan twice (see :mod:`laptime.execution.book`).

Executors here
--------------
:class:`InlineExecutor`
    Runs the plans one after the other in this process, on one device, with optional live
    progress (``progress_factory``, called once per trial).

Both take ``loggers`` (:class:`~laptime.loggers.LoggerSpec` s or ``--log`` strings): every trial
that runs gets one run in each tracker, fed from its progress hook -- in this process for the
inline executor, in the worker process for the parallel one (the specs are picklable and part of
what each worker is given). Trackers are checked (package installed, shared folder or experiment
created) before anything runs. A worker does not know the trial id the parent will give the
record, so its trackers' runs carry the plan key (as every run does) but not the trial id.
:class:`LocalParallelExecutor`
    One worker **process** per entry of ``devices`` (``["cuda:0", "cuda:1"]``, or
    ``["cpu", "cpu"]``), started with the ``spawn`` method. The parent hands out plans one at a
    time to idle workers (each worker has its own pipe, so no lock is shared between workers);
    each worker runs ``execute_plan`` on its device without a store and sends the record back
    through its pipe; the parent stores it. Every worker applies one
    :class:`~laptime.runner.threads.ThreadChoice`, made by
    the parent from the ``threads`` policy (default for CPU trials: 1 thread per worker; ``"auto"``
    shares the usable cores among the workers, minus those other processes keep busy), so that
    workers do not oversubscribe the CPU. The thread count is part of the stored hardware
    fingerprint and of the plan key, so trials run with another count are other trials. Workers
    ignore SIGINT: on Ctrl-C the parent terminates them.
:class:`~laptime.execution.ray_executor.RayExecutor`, :class:`~laptime.execution.slurm_executor.SlurmExecutor`
    One Ray task or one Slurm job (through submitit) per trial (:mod:`laptime.execution.jobs`).

Common behaviour
----------------
* **Validation first.** Before anything runs, every plan's workload (name, variant,
  configuration), algorithm and the device(s) are resolved; any problem raises
  :class:`PlanError` listing the bad plans, and nothing is run or stored.
* **Canonical plans.** A plan whose ``variant``/``config`` is ``None`` is run as the workload's
  default variant/configuration *spelled out* (``dataclasses.replace``), so that ``variant=None``
  and ``variant="base"`` are one trial with one plan key.
* **Resume.** With ``resume=True`` (the default) a plan whose key (:func:`plan_key_for`) is
  already in the store is not run again: its latest stored record is returned (and passed to
  ``on_result``); so is the record of a plan another benchmark was running (its claim) once that
  one stores it. Every outcome counts as finished -- ``reached``, ``budget``, ``complete``,
  ``diverged`` and ``failed`` are results of the plan -- unless ``retry_failed=True``, which
  re-runs plans whose stored outcome is ``failed``. Within one call, identical plans (same key)
  are run once and share the record when ``resume=True``; with ``resume=False`` every plan runs.
  The key covers the plan, the algorithm's source hash, the workload version and the device
  *type*, so all devices of a parallel executor must have one type.
* **Failures.** An algorithm's failure or divergence is an outcome, stored like any other.
  Problems outside a trial raise: the inline executor lets the exception propagate at once. The
  parallel executor finishes what it can and then raises :class:`ExecutorError`:

  - a worker process that *dies* while running a plan (killed, out of memory, ``os._exit``,
    segfault) does not hang the parent: its death is seen through the process sentinel, the plan
    it was running is reported as lost (not stored, not retried in this call -- it may kill the
    next worker too), a replacement worker is started on the same device, and the other plans
    go on;
  - an exception raised by ``execute_plan`` in a worker (e.g. the device cannot be used) stops
    the hand-out of new plans; plans already running finish; a record that cannot be stored
    raises at once (nothing else would be stored either);
  - a worker that fails while starting (a factory raises, the store cannot be opened) aborts
    the run at once.

  :class:`ExecutorError` lists every plan without a record (``failures``) and carries the
  records that were obtained (``records``, ``None`` for the others). Everything that finished is
  stored, so running the same plans again with ``resume=True`` runs only the rest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import multiprocessing
import os
import pickle
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from multiprocessing import connection as mp_connection
from typing import Any, Protocol, runtime_checkable

import torch

from laptime.algorithms import AlgorithmRegistry, default_algorithms
from laptime.execution.book import DEFAULT_LEASE_S, PlanBook, stored_record
from laptime.execution.plan import TrialPlan, execute_plan, resolve_device, thread_choice
from laptime.loggers import check_loggers, parse_loggers
from laptime.records import TrialRecord
from laptime.results import ResultsStore
from laptime.runner import TrialOptions
from laptime.runner.checkpoint import PREEMPTED_EXIT_STATUS, TrialPreempted
from laptime.runner.environment import source_hash
from laptime.runner.threads import ThreadChoice, apply_threads
from laptime.workloads import WorkloadRegistry, default_workloads
from laptime.errors import LaptimeError, UsageError

__all__ = [
    "EngineError",
    "Executor",
    "ExecutorError",
    "InlineExecutor",
    "LocalParallelExecutor",
    "PlanError",
    "PlanFailure",
    "plan_key_for",
]

logger = logging.getLogger(__name__)

OnResult = Callable[[TrialPlan, TrialRecord], None]

#: How many problems a :class:`PlanError` message spells out.
_MAX_LISTED = 5


@runtime_checkable
class Executor(Protocol):
    """Runs plans, stores one trial per plan, returns the records in plan order."""

    def run(self, plans: Sequence[TrialPlan], *, on_result: OnResult | None = None) -> list[TrialRecord]: ...


# --------------------------------------------------------------------------------------------
# Errors


class PlanError(LaptimeError, ValueError):
    """Some plans cannot run (unknown workload/variant/configuration/algorithm). Nothing ran.

    ``problems`` is a list of ``(index, plan, message)``.
    """

    def __init__(self, problems: list[tuple[int, Any, str]], total: int):
        self.problems = problems
        lines = []
        for index, plan, message in problems[:_MAX_LISTED]:
            lines.append(f"  plan {index} ({_describe(plan)}): {message}")
        if len(problems) > _MAX_LISTED:
            lines.append(f"  ... and {len(problems) - _MAX_LISTED} more")
        super().__init__(
            f"{len(problems)} of {total} plan(s) cannot run, so nothing was run:\n" + "\n".join(lines)
        )


class EngineError(UsageError):
    """An executor's engine is missing or cannot be used as asked (Ray or submitit not installed, a
    device or thread count it cannot honour). Raised before anything runs."""


@dataclasses.dataclass
class PlanFailure:
    """A plan that got no record: ``reason`` is ``"crashed"``, ``"error"`` or ``"not run"``."""

    index: int
    plan: TrialPlan
    reason: str
    message: str
    device: str | None = None
    exitcode: int | None = None


class ExecutorError(LaptimeError, RuntimeError):
    """Some plans got no record (see the module docstring). Finished trials are stored.

    ``failures``: the :class:`PlanFailure` of every plan without a record; ``records``: one entry
    per plan, the record or ``None``.
    """

    exit_code = 1  # not the user's input: some plans got no record

    def __init__(self, failures: list[PlanFailure], records: list[TrialRecord | None], detail: str = ""):
        self.failures = failures
        self.records = records
        self.detail = detail
        done = sum(r is not None for r in records)
        lines = []
        for f in failures[:_MAX_LISTED]:
            where = f" on {f.device}" if f.device else ""
            lines.append(f"  plan {f.index} ({_describe(f.plan)}){where}: {f.reason}: {f.message}")
        if len(failures) > _MAX_LISTED:
            lines.append(f"  ... and {len(failures) - _MAX_LISTED} more")
        super().__init__(
            f"{len(failures)} of {len(records)} planned trial(s) did not finish "
            f"({done} did and are stored):\n" + "\n".join(lines)
            + (f"\n{detail.rstrip()}" if detail else "")
            + "\nRun the same plans again with resume=True to run only the missing ones."
        )


def _describe(plan: Any) -> str:
    if not isinstance(plan, TrialPlan):
        return f"not a TrialPlan: {type(plan).__name__}"
    workload = plan.workload + (f"/{plan.variant}" if plan.variant else "") + (f"@{plan.config}" if plan.config else "")
    parts = [workload, plan.algorithm]
    if plan.study is not None:
        parts.append(f"study {plan.study}")
    if plan.trial_index is not None:
        parts.append(f"trial {plan.trial_index}")
    parts.append(f"seed {plan.seed}")
    return ", ".join(parts)


# --------------------------------------------------------------------------------------------
# Plan keys and validation


class _Resolver:
    """Resolves workload specs and algorithm hashes once per name (the expensive part of a key)."""

    def __init__(self, workloads: WorkloadRegistry, algorithms: AlgorithmRegistry):
        self.workloads = workloads
        self.algorithms = algorithms
        self._specs: dict[tuple[str, str | None, str | None], Any] = {}
        self._hashes: dict[str, str] = {}

    def spec(self, plan: TrialPlan):
        key = (plan.workload, plan.variant, plan.config)
        if key not in self._specs:
            # A workload instance is cheap (data loads on first use); "cpu" keeps CUDA untouched here.
            self._specs[key] = self.workloads.create(plan.workload, variant=plan.variant, config=plan.config,
                                                     device="cpu").spec
        return self._specs[key]

    def algorithm_hash(self, plan: TrialPlan) -> str:
        if plan.algorithm not in self._hashes:
            algorithm = self.algorithms.resolve(plan.algorithm)
            self._hashes[plan.algorithm] = source_hash(algorithm.source_files())
        return self._hashes[plan.algorithm]

    def key(self, plan: TrialPlan, device: torch.device, threads: int | None = None) -> str:
        return plan.key(self.algorithm_hash(plan), self.spec(plan).version, device.type, threads)

    def canonical(self, plan: TrialPlan) -> TrialPlan:
        spec = self.spec(plan)
        if plan.variant == spec.variant and plan.config == spec.config:
            return plan
        return dataclasses.replace(plan, variant=spec.variant, config=spec.config)


def plan_key_for(
    plan: TrialPlan,
    device: str | torch.device,
    workloads: WorkloadRegistry | None = None,
    algorithms: AlgorithmRegistry | None = None,
    threads: int | None = None,
) -> str:
    """The key :func:`execute_plan` stores for ``plan`` on ``device`` (exactly its computation).

    ``plan.key(algorithm_hash, workload_version, device_type, threads)`` with the algorithm's
    source hash, the workload's version, the device type and the intra-op thread count (default:
    what :func:`~laptime.execution.plan.thread_choice` gives for the device). Raises for an unknown
    workload/algorithm. The plan is taken as given (executors canonicalise ``variant``/``config``
    before keying and running).
    """
    device = resolve_device(str(device))
    resolver = _Resolver(workloads or default_workloads(), algorithms or default_algorithms())
    if threads is None:
        threads = thread_choice(device).threads
    return resolver.key(plan, device, threads)


def _prepare(plans: Sequence[TrialPlan], device: torch.device, resolver: _Resolver,
             threads: int | None = None) -> list[tuple[TrialPlan, str]]:
    """Canonical plan and key for every plan; :class:`PlanError` listing every bad one."""
    prepared: list[tuple[TrialPlan, str]] = []
    problems: list[tuple[int, Any, str]] = []
    seen: dict[str, str] = {}  # one message per distinct problem is enough to act on, list all plans
    for index, plan in enumerate(plans):
        if not isinstance(plan, TrialPlan):
            problems.append((index, plan, f"expected a TrialPlan, got {type(plan).__name__}"))
            continue
        try:
            canonical = resolver.canonical(plan)
            prepared.append((canonical, resolver.key(canonical, device, threads)))
        except Exception as exc:  # noqa: BLE001 - any resolution problem is reported per plan
            message = str(exc) or type(exc).__name__
            problems.append((index, plan, seen.setdefault(message, message)))
    if problems:
        raise PlanError(problems, len(plans))
    return prepared


_stored = stored_record  # the older name


def reference_floors(store: ResultsStore, resolver: _Resolver, plan: TrialPlan) -> dict[str, float]:
    """The lowest reference cost per hardware fingerprint for ``plan``'s workload, read by the parent
    for a trial that runs without the store (see :func:`~laptime.execution.plan.execute_plan`)."""
    spec = resolver.spec(plan)
    return store.reference_costs(workload=spec.name, variant=spec.variant, config=spec.config,
                                 workload_version=spec.version)


def _book(store: ResultsStore, plans, prepared, executor: Any, on_result: OnResult | None) -> PlanBook:
    return PlanBook(store, plans, prepared, run_id=executor.run_id, resume=executor.resume,
                    pruning=getattr(executor, "pruning", None),
                    retry_failed=executor.retry_failed, on_result=on_result, claims=executor.claims,
                    lease=executor.claim_lease, describe=_describe,
                    checkpoint_dir=getattr(getattr(executor, "options", None), "checkpoint_dir", None))


def _failures_of_duplicates(book: PlanBook, failures: list[PlanFailure]) -> None:
    """Duplicates share their first plan's record, or its failure."""
    for index, first in book.duplicates():
        if book.records[first] is None:
            first_failure = next((f for f in failures if f.index == first), None)
            if first_failure is None:
                continue
            failures.append(dataclasses.replace(first_failure, index=index, plan=book.plans[index],
                                                message=f"same plan as plan {first}: {first_failure.message}"))


def _set_common(executor: Any, store_path: Any, *, run_id, options, workloads_factory, algorithms_factory, resume,
                retry_failed, loggers, claims, claim_lease) -> None:
    """The attributes every executor has (see the module docstring), from its common arguments."""
    executor.store = store_path
    executor.run_id = run_id
    executor.options = options
    executor.workloads_factory = workloads_factory or default_workloads
    executor.algorithms_factory = algorithms_factory or default_algorithms
    executor.resume = resume
    executor.retry_failed = retry_failed
    executor.loggers = parse_loggers(loggers)  # picklable specs: the trackers run where the trial runs
    executor.claims = claims
    executor.claim_lease = claim_lease
    executor.pruning = None  # a laptime.tuning.pruning.PruningPolicy: set by the benchmark (see PlanBook)


@contextlib.contextmanager
def _open_store(store: Any) -> Iterator[ResultsStore]:
    if isinstance(store, ResultsStore):
        yield store  # the caller's: not ours to close
        return
    with ResultsStore(store) as opened:
        yield opened


def _log_result(plan: TrialPlan, record: TrialRecord, note: str = "") -> None:
    logger.info("%s: %s after %d steps, %.1f s submission time%s", _describe(plan), record.outcome.value,
                record.steps, record.submission_time, note)


# --------------------------------------------------------------------------------------------
# Inline


class InlineExecutor:
    """Runs plans one after the other in this process (see the module docstring).

    ``store_path``: a results file, or an open :class:`ResultsStore` (used as is, not closed).
    ``claims``/``claim_lease``: see :mod:`laptime.execution.book` (seconds).
    """

    def __init__(
        self,
        store_path: Any,
        *,
        device: str | torch.device = "cpu",
        run_id: int | None = None,
        options: TrialOptions | None = None,
        workloads_factory: Callable[[], WorkloadRegistry] | None = None,
        algorithms_factory: Callable[[], AlgorithmRegistry] | None = None,
        progress_factory: Callable[[], Any] | None = None,
        resume: bool = True,
        retry_failed: bool = False,
        threads: str | int | None = None,
        loggers: Sequence[Any] = (),
        claims: bool = True,
        claim_lease: float = DEFAULT_LEASE_S,
    ):
        _set_common(self, store_path, run_id=run_id, options=options, workloads_factory=workloads_factory,
                    algorithms_factory=algorithms_factory, resume=resume, retry_failed=retry_failed, loggers=loggers,
                    claims=claims, claim_lease=claim_lease)
        self.device = resolve_device(str(device))
        self.threads = threads  # policy; the choice is made once per run()
        self.progress_factory = progress_factory

    def run(self, plans: Sequence[TrialPlan], *, on_result: OnResult | None = None) -> list[TrialRecord]:
        plans = list(plans)
        if not plans:
            return []
        workloads = self.workloads_factory()
        algorithms = self.algorithms_factory()
        choice = thread_choice(self.device, self.threads)
        self.thread_choice = choice
        prepared = _prepare(plans, self.device, _Resolver(workloads, algorithms), choice.threads)
        check_loggers(self.loggers)
        with _open_store(self.store) as store:
            book = _book(store, plans, prepared, self, on_result)
            try:
                while book.pending:
                    index = book.next()  # stored plans are resolved on the way
                    if index is None:  # the rest is being run by another benchmark
                        time.sleep(min(book.wait_time(), 5.0))
                        continue
                    plan = prepared[index][0]
                    progress = self.progress_factory() if self.progress_factory is not None else None
                    try:
                        # the lookup of the reference floor stays in execute_plan: this process holds the store
                        record = execute_plan(plan, device=self.device, store=store, run_id=self.run_id,
                                              workloads=workloads, algorithms=algorithms, options=self.options,
                                              progress=progress, threads=choice, loggers=self.loggers,
                                              save=lambda r, i=index: book.store_record(i, r),
                                              prune=book.prune_spec(index))
                    except BaseException:
                        book.lost(index)
                        raise
                    _log_result(plan, record)
                    book.resolve(index, record)
                book.duplicates()
            finally:
                book.close()
        return book.records  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# Local parallel: one process per device


def _worker_main(conn, device: str, run_id: int | None, options: TrialOptions | None,
                 workloads_factory, algorithms_factory, threads: ThreadChoice, loggers: tuple = ()) -> None:
    """A worker process: set up, say "ready", then run each plan the parent sends until None.

    It never opens the results store: each record goes back through the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    try:
        apply_threads(threads)
        workloads = workloads_factory()
        algorithms = algorithms_factory()
    except BaseException:  # noqa: BLE001 - reported to the parent, which aborts the run
        conn.send(("setup_error", traceback.format_exc()))
        return
    conn.send(("ready",))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if message is None:
            return
        _, index, plan, floors, prune = message
        try:
            record = execute_plan(plan, device=device, store=None, run_id=run_id, workloads=workloads,
                                  algorithms=algorithms, options=options, threads=threads, loggers=loggers,
                                  reference_floors=floors, prune=prune)
        except TrialPreempted:  # SIGTERM: the trial checkpointed; the exit status says so (no traceback)
            sys.exit(PREEMPTED_EXIT_STATUS)
        except Exception:  # noqa: BLE001 - reported to the parent
            conn.send(("error", index, traceback.format_exc()))
            continue
        conn.send(("done", index, record))


@dataclasses.dataclass
class _Worker:
    slot: int
    device: str
    process: Any
    conn: Any
    ready: bool = False
    current: int | None = None  # index of the plan it is running
    stopping: bool = False  # was sent None
    gone: bool = False


def _exit_description(code: int | None) -> str:
    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (out of memory?)" if -code == signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    return f"exit code {code}"


class LocalParallelExecutor:
    """One worker process per device; the parent alone writes the results file (see the module docstring).

    ``store_path``: a results file, or an open file-backed :class:`ResultsStore` (the parent uses
    it). ``devices``: one entry per worker, all of one type.
    ``workloads_factory``/``algorithms_factory`` must be picklable (module-level functions):
    workers call them. ``threads``: the thread policy (see above); ``threads_per_worker`` is the
    older spelling of an integer policy. ``claims``/``claim_lease``: see :mod:`laptime.execution.book`.
    """

    def __init__(
        self,
        store_path: Any,
        *,
        devices: Sequence[str],
        run_id: int | None = None,
        options: TrialOptions | None = None,
        workloads_factory: Callable[[], WorkloadRegistry] | None = None,
        algorithms_factory: Callable[[], AlgorithmRegistry] | None = None,
        resume: bool = True,
        retry_failed: bool = False,
        threads_per_worker: int | None = None,
        threads: str | int | None = None,
        loggers: Sequence[Any] = (),
        claims: bool = True,
        claim_lease: float = DEFAULT_LEASE_S,
    ):
        if isinstance(devices, str) or not devices:
            raise UsageError('devices must be a non-empty list, e.g. ["cuda:0", "cuda:1"] or ["cpu", "cpu"]')
        resolved = [resolve_device(str(d)) for d in devices]
        types = sorted({d.type for d in resolved})
        if len(types) > 1:
            raise UsageError(
                f"devices {list(map(str, devices))} mix device types ({', '.join(types)}); a trial's plan key "
                "includes the device type, so one executor must use one type"
            )
        path = store_path.path if isinstance(store_path, ResultsStore) else str(store_path)
        if str(path) == ":memory:" or (isinstance(store_path, ResultsStore) and store_path.memory):
            raise UsageError("LocalParallelExecutor needs a results file: an in-memory store cannot be shared "
                             "between processes")
        _set_common(self, store_path, run_id=run_id, options=options, workloads_factory=workloads_factory,
                    algorithms_factory=algorithms_factory, resume=resume, retry_failed=retry_failed, loggers=loggers,
                    claims=claims, claim_lease=claim_lease)
        self.store_file = os.fspath(path)
        self.devices = resolved
        for what, factory in (("workloads_factory", self.workloads_factory),
                              ("algorithms_factory", self.algorithms_factory)):
            try:
                pickle.dumps(factory)
            except Exception as exc:  # noqa: BLE001 - pickling errors come in many types
                raise TypeError(
                    f"{what} must be picklable (a module-level function) because worker processes call "
                    f"it; got {factory!r} ({exc})"
                ) from None
        if threads_per_worker is not None and threads_per_worker < 1:
            raise UsageError("threads_per_worker must be >= 1")
        # one choice for every worker, made here: "auto" shares the usable cores among the workers
        self.thread_choice = thread_choice(self.devices[0], threads if threads_per_worker is None else threads_per_worker,
                                           workers=len(self.devices))
        self.threads_per_worker = self.thread_choice.threads

    def run(self, plans: Sequence[TrialPlan], *, on_result: OnResult | None = None) -> list[TrialRecord]:
        plans = list(plans)
        if not plans:
            return []
        resolver = _Resolver(self.workloads_factory(), self.algorithms_factory())
        prepared = _prepare(plans, self.devices[0], resolver, self.threads_per_worker)
        check_loggers(self.loggers)  # here, so that workers do not race to create shared folders/experiments
        with _open_store(self.store) as store:
            book = _book(store, plans, prepared, self, on_result)
            failures: list[PlanFailure] = []
            try:
                if book.pending:
                    failures = self._run_pool(book, store, resolver)
                _failures_of_duplicates(book, failures)
            finally:
                book.close()
        if failures:
            failures.sort(key=lambda f: f.index)
            raise ExecutorError(failures, book.records)
        return book.records  # type: ignore[return-value]

    # ---- the worker pool --------------------------------------------------------------------

    def _run_pool(self, book: PlanBook, store: ResultsStore, resolver: _Resolver) -> list[PlanFailure]:
        ctx = multiprocessing.get_context("spawn")
        plans, prepared, records = book.plans, book.prepared, book.records
        failures: list[PlanFailure] = []
        workers: list[_Worker] = []
        state = {"stop": False, "respawns": len(prepared) + len(self.devices), "slots": 0}
        robust = self.options is None or self.options.robust

        def unfinished() -> set[int]:
            return set(book.todo) | set(book.waiting) | {w.current for w in workers if w.current is not None}

        def spawn(device: torch.device) -> None:
            parent_conn, child_conn = ctx.Pipe(duplex=True)
            slot = state["slots"]
            state["slots"] += 1
            process = ctx.Process(
                target=_worker_main,
                args=(child_conn, str(device), self.run_id, self.options,
                      self.workloads_factory, self.algorithms_factory, self.thread_choice, self.loggers),
                name=f"laptime-worker-{slot}-{device}",
            )
            process.start()
            child_conn.close()  # so that the parent sees EOF when the worker is gone
            workers.append(_Worker(slot, str(device), process, parent_conn))

        def dispatch(worker: _Worker) -> None:
            """Give an idle worker a plan; stop it when none is left (it waits while plans wait for
            another benchmark's claim)."""
            index = None if state["stop"] else book.next()
            if index is not None:
                plan = prepared[index][0]
                floors = reference_floors(store, resolver, plan) if robust else None
                try:
                    worker.conn.send(("run", index, plan, floors, book.prune_spec(index)))
                except (OSError, ValueError):  # the worker died meanwhile: its sentinel will tell
                    book.lost(index)
                    book.todo.appendleft(index)
                    return
                worker.current = index
            elif state["stop"] or not book.held:
                worker.stopping = True
                with contextlib.suppress(OSError, ValueError):
                    worker.conn.send(None)

        def handle(worker: _Worker, message: tuple) -> None:
            kind = message[0]
            if kind == "ready":
                worker.ready = True
                dispatch(worker)
            elif kind == "done":
                _, index, record = message
                worker.current = None
                problem = book.check(index, record)
                if problem is not None:
                    book.lost(index)
                    state["stop"] = True
                    failures.append(PlanFailure(index, plans[index], "error", problem, worker.device))
                else:
                    record = book.store_record(index, record)  # the single writer
                    _log_result(prepared[index][0], record, f" ({worker.device}, worker {worker.slot})")
                    book.resolve(index, record)
                dispatch(worker)
            elif kind == "error":
                _, index, text = message
                worker.current = None
                book.lost(index)
                state["stop"] = True
                logger.error("plan %d (%s) raised in worker %d:\n%s", index, _describe(plans[index]),
                             worker.slot, text)
                failures.append(PlanFailure(index, plans[index], "error", text.strip(), worker.device))
                dispatch(worker)
            elif kind == "setup_error":
                worker.gone = True
                raise ExecutorError(
                    [PlanFailure(i, plans[i], "not run", "a worker could not start") for i in sorted(unfinished())],
                    records,
                    f"worker {worker.slot} on {worker.device} failed to start:\n{message[1]}",
                )

        def receive(worker: _Worker) -> bool:
            """Handle one message; False when the pipe is closed."""
            try:
                message = worker.conn.recv()
            except (EOFError, OSError):
                return False
            handle(worker, message)
            return True

        def buried(worker: _Worker) -> None:
            """The worker's process ended: collect its last words, account for its plan."""
            while not worker.gone:
                try:
                    if not worker.conn.poll(0):
                        break
                except (EOFError, OSError):
                    break
                if not receive(worker):
                    break
            worker.gone = True
            worker.process.join(timeout=10)
            code = worker.process.exitcode
            worker.conn.close()
            if not worker.ready:
                raise ExecutorError(
                    [PlanFailure(i, plans[i], "not run", "a worker could not start") for i in sorted(unfinished())],
                    records,
                    f"worker {worker.slot} on {worker.device} died while starting ({_exit_description(code)}); "
                    "its error output (stderr) says why",
                )
            if worker.current is not None:
                index, worker.current = worker.current, None
                book.lost(index)
                message = f"the worker process died while running it ({_exit_description(code)})"
                logger.error("plan %d (%s) on %s: %s", index, _describe(plans[index]), worker.device, message)
                failures.append(PlanFailure(index, plans[index], "crashed", message, worker.device, code))
            elif not worker.stopping:
                logger.warning("worker %d on %s ended unexpectedly (%s)", worker.slot, worker.device,
                               _exit_description(code))
            if book.pending and not state["stop"] and state["respawns"] > 0:
                state["respawns"] -= 1
                spawn(torch.device(worker.device))

        try:
            for device in self.devices[: len(book.todo)]:
                spawn(device)
            while True:
                live = [w for w in workers if not w.gone]
                if not live:
                    break
                for w in live:  # idle workers kept while plans waited for another benchmark's claim
                    if w.ready and w.current is None and not w.stopping:
                        dispatch(w)
                waitables = {}
                for w in live:
                    waitables[w.conn] = w
                    waitables[w.process.sentinel] = w
                ready = mp_connection.wait(list(waitables), timeout=min(5.0, book.wait_time()))
                for obj in ready:
                    worker = waitables[obj]
                    if worker.gone:
                        continue
                    if obj is worker.conn:
                        if not receive(worker):
                            buried(worker)
                    elif not worker.process.is_alive():
                        buried(worker)
        finally:
            for w in workers:
                if w.process.is_alive():
                    w.process.terminate()
            for w in workers:
                w.process.join(timeout=10)
                if w.process.is_alive():
                    w.process.kill()
                    w.process.join(timeout=10)
                with contextlib.suppress(OSError):
                    w.conn.close()
        reason = "another plan raised an error, so no new plans were started" if state["stop"] else "every worker died"
        for index in sorted(set(book.todo) | set(book.waiting)):
            failures.append(PlanFailure(index, plans[index], "not run", reason))
        book.todo.clear()
        book.waiting.clear()
        return failures
