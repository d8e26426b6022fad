"""The parent's side of every executor: resume by plan key, plan claims, and the single writer.

An executor decides *where* a plan runs (this process, a worker process, a Ray task, a Slurm job);
the :class:`PlanBook` decides *whether* it runs and writes what comes back. It is used by the one
process that holds the results store, so however many workers or nodes run trials, one process
writes the file (SQLite's WAL is not safe on a file system shared by several hosts, and one writer
needs no lock between workers).

The life of a plan in the book::

    todo ──next()──► stored already?  ── yes ──► resolved (reused, on_result)
                     claimed by a live benchmark? ── yes ──► waiting ──(recheck)──► todo
                     else: claimed by us ──► running ──store()──► resolved (stored, claim released)
                                                     ──lost()───► claim released (a failure)

Claims (:meth:`~laptime.results.ResultsStore.claim`) make two benchmarks on one results file
share the work instead of running a plan twice: a plan is claimed in the write transaction that
also checks whether it is stored; the claim is renewed by a heartbeat thread (its own connection)
every ``lease / 4`` seconds while the plan runs, and released in the transaction that stores the
trial. A plan claimed by another live benchmark waits (rechecked every ``poll`` seconds) and its
record is reused once stored; a claim whose heartbeat is older than ``lease`` seconds, or whose
process is gone on this host, is taken over. An in-memory store has no claims (no one else can
see it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from laptime.errors import UsageError
from laptime.records import Outcome, TrialPlan, TrialRecord
from laptime.results import ResultsStore, StoreError

__all__ = ["DEFAULT_LEASE_S", "PlanBook", "new_owner"]

logger = logging.getLogger(__name__)

#: Seconds after its last heartbeat that a claim may be taken over.
DEFAULT_LEASE_S = 60.0


def new_owner() -> str:
    """A name for one benchmark's claims: host, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def stored_record(store: ResultsStore, key: str, retry_failed: bool, pruning: Any = None) -> TrialRecord | None:
    """The stored record that makes ``key`` finished, or None. A pruned trial is finished only for a
    benchmark that prunes alike (:func:`laptime.tuning.pruning.accepts`)."""
    record = store.find_by_plan_key(key)
    if record is None or (retry_failed and record.outcome == Outcome.FAILED):
        return None
    if record.outcome == Outcome.PRUNED:
        from laptime.tuning.pruning import accepts

        if not accepts(pruning, record):
            return None
    return record


class _Heartbeat:
    """Renews the book's claims from a thread of its own (its own store connection)."""

    def __init__(self, path: str, owner: str, interval: float):
        self.path, self.owner, self.interval = path, owner, interval
        self.keys: set[str] = set()
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name="laptime-claims-heartbeat", daemon=True)
        self.thread.start()

    def add(self, key: str) -> None:
        with self.lock:
            self.keys.add(key)

    def discard(self, key: str) -> None:
        with self.lock:
            self.keys.discard(key)

    def _run(self) -> None:
        store = None
        try:
            while not self.stop_event.wait(self.interval):
                with self.lock:
                    keys = sorted(self.keys)
                if not keys:
                    continue
                try:
                    if store is None:
                        store = ResultsStore(self.path)
                    held = store.heartbeat(self.owner, keys)
                except Exception as exc:  # noqa: BLE001 - a busy or unreachable file: try again next time
                    logger.warning("could not renew the claims on %d plan(s): %s", len(keys), exc)
                    continue
                if held < len(keys):
                    logger.warning("%d of %d claim(s) were taken over by another benchmark (their heartbeat "
                                   "came too late); their plans run on here and are stored once", len(keys) - held,
                                   len(keys))
        finally:
            if store is not None:
                store.close()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=30)


class PlanBook:
    """One :meth:`Executor.run <laptime.execution.Executor.run>`'s plans, from the parent's side.

    ``prepared``: ``(canonical plan, key)`` per plan, as the executor resolved them; ``plans``: the
    plans as passed in (given to ``on_result``). With ``resume``, a plan whose key is stored is
    reused and identical plans of the call run once (:meth:`duplicates`). ``claims`` switches the
    claims on (never for an in-memory store); ``lease``/``poll`` in seconds (``poll``: how often
    plans held by others are looked at again, default ``min(5, lease / 4)``). ``checkpoint_dir``:
    where the trials' checkpoints are (``TrialOptions.checkpoint_dir``); a plan's is removed once
    its record is stored here, since a trial run away from the store leaves it to the writer.
    ``pruning`` (a :class:`~laptime.tuning.pruning.PruningPolicy`): the plans of one study of one
    algorithm on one workload run one after the other in their chain's order (the study's lead
    workload in trial order, the others by the lead's results; a plan is not handed out while one
    before it is still to run), and :meth:`prune_spec` tells each what the stored trials before it
    bound (:class:`~laptime.tuning.pruning.ChainOrder`).
    """

    def __init__(self, store: ResultsStore, plans: Sequence[Any], prepared: Sequence[tuple[TrialPlan, str]], *,
                 run_id: int | None = None, resume: bool = True, retry_failed: bool = False,
                 on_result: Callable[[Any, TrialRecord], None] | None = None, claims: bool = True,
                 lease: float = DEFAULT_LEASE_S, poll: float | None = None, owner: str | None = None,
                 describe: Callable[[TrialPlan], str] = str, checkpoint_dir: str | None = None,
                 pruning: Any = None):
        if lease <= 0:
            raise UsageError(f"the claim lease must be > 0 seconds, got {lease!r}")
        self.store = store
        self.plans = list(plans)
        self.prepared = list(prepared)
        self.run_id = run_id
        self.resume = resume
        self.retry_failed = retry_failed
        self.on_result = on_result
        self.claims = bool(claims) and not store.memory
        self.lease = float(lease)
        self.poll = float(poll) if poll is not None else min(5.0, self.lease / 4)
        self.owner = owner or new_owner()
        self.describe = describe
        self.checkpoint_dir = checkpoint_dir
        self.pruning = pruning if pruning is not None and pruning.active else None
        self.chains = None
        if self.pruning is not None:
            from laptime.tuning.pruning import ChainOrder

            self.chains = ChainOrder(self.pruning, [plan for plan, _ in self.prepared])
        self.records: list[TrialRecord | None] = [None] * len(self.prepared)
        self.todo: deque[int] = deque()
        self.same_as: dict[int, int] = {}  # a duplicate plan -> the index that runs it
        self.waiting: dict[int, Any] = {}  # index -> the claim that holds it
        self.running: dict[int, str] = {}  # index -> key
        self.reused_from_others = 0  # plans another benchmark ran while this one waited
        self._waited: set[int] = set()
        self._next_check = 0.0
        self._heartbeat: _Heartbeat | None = None
        first_by_key: dict[str, int] = {}
        for index, (_, key) in enumerate(self.prepared):
            if resume:
                if key in first_by_key:
                    self.same_as[index] = first_by_key[key]
                    continue
                first_by_key[key] = index
                record = stored_record(store, key, retry_failed, self.pruning)  # finished earlier: no worker, job or claim
                if record is not None:
                    self._reused(index, record)
                    continue
            self.todo.append(index)

    # ---- handing out -----------------------------------------------------------------------------

    @property
    def held(self) -> bool:
        """Plans that cannot run now but will: waiting for another benchmark's claim, or (with
        pruning) for the earlier trials of their study to be stored. An executor keeps idle workers."""
        return bool(self.todo or self.waiting)

    def prune_spec(self, index: int):
        """What plan ``index`` is told about pruning (a :class:`~laptime.tuning.pruning.PruneSpec`:
        its chain's best so far), or None without pruning."""
        if self.chains is None:
            return None
        return self.chains.spec(index, self.records)

    def _next_free(self) -> int | None:
        """The first plan of ``todo`` whose chain's earlier plans are all done (taken out of todo)."""
        if self.chains is None:
            return self.todo.popleft() if self.todo else None
        unfinished = set(self.todo) | set(self.waiting) | set(self.running)
        for position, index in enumerate(self.todo):
            if not self.chains.blocked(index, unfinished.__contains__, self.records):
                del self.todo[position]
                return index
        return None

    @property
    def pending(self) -> bool:
        """Plans not yet handed out: to run now, or waiting for another benchmark's claim."""
        return bool(self.todo or self.waiting)

    def wait_time(self) -> float:
        """Seconds until plans held by others are looked at again (``inf`` when none waits)."""
        if not self.waiting:
            return float("inf")
        return max(0.0, self._next_check - time.monotonic())

    def next(self) -> int | None:
        """The index of the next plan to run, claimed for this benchmark; plans found stored on the
        way are resolved (reused), plans another live benchmark holds are set aside. None when no
        plan can run now (see :attr:`pending` and :meth:`wait_time`)."""
        if self.waiting and time.monotonic() >= self._next_check:
            self.todo.extendleft(sorted(self.waiting, reverse=True))  # in plan order, before the rest
            self._waited.update(self.waiting)
            self.waiting.clear()
        while self.todo:
            index = self._next_free()
            if index is None:  # every plan left waits for an earlier trial of its study
                return None
            plan, key = self.prepared[index]
            record, holder = self._check_and_claim(key)
            if record is not None:
                self._reused(index, record)
                continue
            if holder is not None:
                if not self.waiting:
                    self._next_check = time.monotonic() + self.poll
                self.waiting[index] = holder
                logger.info("%s: being run by another benchmark (%s); waiting for its record",
                            self.describe(plan), holder.owner)
                continue
            self.running[index] = key
            if self.claims:
                self._beat().add(key)
            return index
        return None

    def _check_and_claim(self, key: str):
        if not self.resume and not self.claims:
            return None, None
        with self.store.transaction():  # one write transaction: nobody stores or claims in between
            record = stored_record(self.store, key, self.retry_failed, self.pruning) if self.resume else None
            if record is not None or not self.claims or key in self.running.values():
                return record, None
            return None, self.store.claim(key, self.owner, lease=self.lease)

    def _beat(self) -> _Heartbeat:
        if self._heartbeat is None:
            self._heartbeat = _Heartbeat(self.store.path, self.owner, interval=self.lease / 4)
        return self._heartbeat

    def _reused(self, index: int, record: TrialRecord) -> None:
        note = " (already stored: skipped)"
        if index in self._waited:
            note = " (run by another benchmark meanwhile: reused)"
            self.reused_from_others += 1
        logger.info("%s: %s after %d steps%s", self.describe(self.prepared[index][0]), record.outcome.value,
                    record.steps, note)
        self.resolve(index, record)

    # ---- what comes back ---------------------------------------------------------------------------

    def check(self, index: int, record: TrialRecord) -> str | None:
        """Why a record that came back for plan ``index`` cannot be stored, or None. Its plan key is
        computed where it ran: another key means other code there (laptime, the algorithm's file or
        the workload's version differ from this process's)."""
        key = self.prepared[index][1]
        if not isinstance(record, TrialRecord):
            return f"the trial returned {type(record).__name__}, not a TrialRecord"
        if record.plan_key != key:
            return (f"the trial ran with other code than this process (its plan key {record.plan_key}, expected "
                    f"{key}): install the same laptime, algorithm files and workloads where trials run")
        return None

    def store_record(self, index: int, record: TrialRecord) -> TrialRecord:
        """Write a finished trial (the single writer) and release its claim, in one transaction.

        If another benchmark took the claim over (our heartbeat came too late) and stored the plan
        meanwhile, its record is kept and returned instead of storing a second one."""
        key = self.running.get(index, self.prepared[index][1])
        with self.store.transaction():
            # under resume the claim was taken when the plan had no record: one now is another benchmark's
            other = stored_record(self.store, key, self.retry_failed, self.pruning) if self.resume else None
            if other is not None:
                logger.warning("%s: another benchmark stored this plan while it ran here; its record is kept",
                               self.describe(self.prepared[index][0]))
                record = other
            else:
                self.store.add_trial(self.run_id, record)
            self._release(index, key)
        if self.checkpoint_dir is not None:  # stored: the running trial's checkpoint is no longer needed
            from laptime.runner.checkpoint import remove_checkpoint

            remove_checkpoint(self.checkpoint_dir, key)
        return record

    def resolve(self, index: int, record: TrialRecord) -> None:
        """Plan ``index`` has its record (stored here or reused): keep it, tell ``on_result``."""
        self.records[index] = record
        if self.on_result is not None:
            self.on_result(self.plans[index], record)

    def lost(self, index: int) -> None:
        """Plan ``index`` got no record (its worker died, it raised): release its claim."""
        key = self.running.get(index)
        if key is None:
            return
        with contextlib.suppress(StoreError):
            if self.claims:
                with self.store.transaction():
                    self._release(index, key)
            else:
                self.running.pop(index, None)

    def _release(self, index: int, key: str) -> None:
        self.running.pop(index, None)
        if self.claims and key not in self.running.values():  # --no-resume may run one key twice at once
            self.store.release(key, self.owner)
            if self._heartbeat is not None:
                self._heartbeat.discard(key)

    def duplicates(self) -> list[tuple[int, int]]:
        """``(index, first)`` for each plan that shares the record of an identical earlier plan;
        resolves those whose first plan has a record."""
        out = []
        for index, first in self.same_as.items():
            out.append((index, first))
            if self.records[first] is not None:
                self.resolve(index, self.records[first])  # type: ignore[arg-type]
        return out

    def close(self) -> None:
        """Stop the heartbeat; release every claim still held (plans that never came back)."""
        if self._heartbeat is not None:
            self._heartbeat.stop()
        for index in list(self.running):
            self.lost(index)
