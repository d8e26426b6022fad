"""Executors: run plans, store each trial once, resume, and survive dying workers."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import time

import pytest
import torch
from toys import ToyWorkload, toy_workloads, workloads_failing_in_workers

from laptime.algorithms import default_algorithms
from laptime.execution import TrialPlan, execute_plan
from laptime.execution.executors import (
    Executor,
    ExecutorError,
    InlineExecutor,
    LocalParallelExecutor,
    PlanError,
    plan_key_for,
)
from laptime.records import Outcome
from laptime.results import ResultsStore
from laptime.runner import TrialOptions
from laptime.tuning.rulesets import SelfTuning, plan_trials

OPTIONS = TrialOptions(max_steps=3)
HP = dict(default_algorithms().get("sgd_nesterov").self_tuning_defaults)


def plan(seed=0, workload="toy", **kw) -> TrialPlan:
    return TrialPlan(workload=workload, algorithm="sgd_nesterov", hyperparameters=HP, seed=seed, **kw)


def count(path) -> int:
    with ResultsStore(path) as store:
        return len(store.trials())


@contextlib.contextmanager
def deadline(seconds: int):
    """Fail (instead of hanging the suite) if the block takes longer than ``seconds``."""

    def expire(signum, frame):
        raise TimeoutError(f"took longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def inline(path, **kw) -> InlineExecutor:
    return InlineExecutor(path, options=OPTIONS, workloads_factory=toy_workloads, **kw)


def parallel(path, **kw) -> LocalParallelExecutor:
    kw.setdefault("devices", ["cpu", "cpu"])
    kw.setdefault("workloads_factory", toy_workloads)
    return LocalParallelExecutor(path, options=OPTIONS, **kw)


# ---- keys ------------------------------------------------------------------------------------


def test_plan_key_for_matches_execute_plan(tmp_path):
    p = plan(seed=3, variant="base", config="cpu")
    with ResultsStore(tmp_path / "r.sqlite") as store:
        record = execute_plan(p, store=store, workloads=toy_workloads(), options=OPTIONS)
    assert record.plan_key == plan_key_for(p, "cpu", toy_workloads(), default_algorithms())
    assert plan_key_for(p, torch.device("cpu"), toy_workloads()) == record.plan_key
    assert plan_key_for(dataclasses.replace(p, seed=4), "cpu", toy_workloads()) != record.plan_key


# ---- inline ----------------------------------------------------------------------------------


def test_inline_runs_stores_and_resumes(tmp_path):
    db = tmp_path / "r.sqlite"
    plans = [plan(seed=s) for s in range(3)]
    seen = []
    executor = inline(db)
    assert isinstance(executor, Executor)
    records = executor.run(plans, on_result=lambda p, r: seen.append((p, r.trial_id)))
    assert count(db) == 3
    assert [r.seed for r in records] == [0, 1, 2]
    assert [p for p, _ in seen] == plans  # the plans as passed in
    assert all(r.trial_id is not None and r.steps == 3 for r in records)
    # the stored key is the canonical plan's: variant/config spelled out
    assert records[0].plan_key == plan_key_for(plan(seed=0, variant="base", config="cpu"), "cpu", toy_workloads())
    # resume: nothing new is written, the same records come back (with their evals)
    again = inline(db).run(plans + [plan(seed=0, variant="base", config="cpu")])
    assert count(db) == 3
    assert [r.trial_id for r in again] == [r.trial_id for r in records] + [records[0].trial_id]
    assert [len(r.evals) for r in again[:3]] == [len(r.evals) for r in records]
    assert again[1].hyperparameters == records[1].hyperparameters
    # without resume everything runs again
    inline(db, resume=False).run(plans[:1])
    assert count(db) == 4


def test_inline_resume_failed_and_retry_failed(tmp_path):
    db = tmp_path / "r.sqlite"
    bad = TrialPlan(workload="toy", algorithm="sgd_nesterov", hyperparameters={}, seed=0)  # no learning_rate
    first = inline(db).run([bad])[0]
    assert first.outcome == Outcome.FAILED
    assert inline(db).run([bad])[0].trial_id == first.trial_id  # a failure is a result
    assert count(db) == 1
    assert inline(db, retry_failed=True).run([bad])[0].trial_id != first.trial_id
    assert count(db) == 2


def test_inline_progress_factory_and_open_store(tmp_path):
    made = []

    class Progress:
        def __init__(self):
            self.steps = 0
            made.append(self)

        def start(self, *a): pass
        def step(self, *a): self.steps += 1
        def evaluated(self, *a): pass
        def finish(self, *a): pass

    with ResultsStore(":memory:") as store:
        records = inline(store, progress_factory=Progress).run([plan(0), plan(1)])
        assert len(store.trials()) == 2  # the caller's store, left open
    assert [p.steps for p in made] == [3, 3]
    assert len(records) == 2


def test_unknown_workload_fails_before_anything_runs(tmp_path):
    db = tmp_path / "r.sqlite"
    plans = [plan(0), plan(1, workload="toyy"), plan(2, variant="huge"),
             TrialPlan(workload="toy", algorithm="nope", hyperparameters={})]
    with pytest.raises(PlanError) as info:
        inline(db).run(plans)
    message = str(info.value)
    assert "3 of 4 plan(s) cannot run" in message
    assert "plan 1" in message and "unknown workload 'toyy'" in message and "Did you mean 'toy'" in message
    assert "plan 2" in message and "no variant 'huge'" in message
    assert "plan 3" in message and "unknown algorithm 'nope'" in message
    assert [i for i, _, _ in info.value.problems] == [1, 2, 3]
    assert count(db) == 0
    with pytest.raises(PlanError, match="unknown workload 'toyy'"):
        parallel(db).run(plans[:2])
    assert count(db) == 0


def test_bad_executor_arguments(tmp_path):
    with pytest.raises(ValueError, match="in-memory"):
        parallel(":memory:")
    with pytest.raises(ValueError, match="non-empty list"):
        parallel(tmp_path / "r.sqlite", devices=[])
    with pytest.raises(TypeError, match="workloads_factory must be picklable"):
        LocalParallelExecutor(tmp_path / "r.sqlite", devices=["cpu"], workloads_factory=lambda: toy_workloads())
    if not torch.cuda.is_available():
        from laptime.execution.plan import DeviceError

        with pytest.raises(DeviceError, match="no CUDA device"):
            parallel(tmp_path / "r.sqlite", devices=["cuda:0", "cuda:1"])
        with pytest.raises(DeviceError, match="no CUDA device"):
            inline(tmp_path / "r.sqlite", device="cuda")
    assert parallel(tmp_path / "r.sqlite", devices=["cpu"] * 4).threads_per_worker >= 1


# ---- local parallel --------------------------------------------------------------------------


def test_parallel_stores_every_trial_once_and_resumes(tmp_path):
    db = tmp_path / "r.sqlite"
    plans = plan_trials(SelfTuning(studies=3), ["toy"], [("sgd_nesterov", None, HP)])
    plans.append(plans[0])  # a duplicate runs once and shares the record
    seen = []
    with deadline(90):
        records = parallel(db).run(plans, on_result=lambda p, r: seen.append((p.seed, r.trial_id)))
    assert count(db) == 3
    with ResultsStore(db) as store:
        stored = store.trials()
    assert sorted(r.plan_key for r in stored) == sorted({r.plan_key for r in records})
    assert [r.seed for r in records] == [p.seed for p in plans]
    assert [r.study for r in records] == [0, 1, 2, 0]
    assert {r.budget_sec for r in records} == {1e9 * 1.5}
    assert records[3].trial_id == records[0].trial_id
    assert len(seen) == 4 and {t for _, t in seen} == {r.trial_id for r in stored}
    assert all(r.evals for r in records)  # reloaded from the store with evals
    # both workers ran with max(1, cores // 2) threads: recorded in the hardware description
    assert {r.hardware["torch_threads"] for r in stored} == {max(1, len(__import__("os").sched_getaffinity(0)) // 2)}
    # resume: nothing to run, no workers started, same records
    start = time.monotonic()
    again = parallel(db).run(plans)
    assert time.monotonic() - start < 2.0
    assert count(db) == 3
    assert [r.trial_id for r in again] == [r.trial_id for r in records]


def test_parallel_worker_death_does_not_hang(tmp_path):
    db = tmp_path / "r.sqlite"
    plans = [plan(0), plan(1, workload="toy_crash"), plan(2), plan(3)]
    seen = []
    with deadline(90), pytest.raises(ExecutorError) as info:
        parallel(db).run(plans, on_result=lambda p, r: seen.append(p.seed))
    error = info.value
    assert [(f.index, f.reason, f.exitcode) for f in error.failures] == [(1, "crashed", 3)]
    assert "exit code 3" in str(error) and "plan 1" in str(error) and "resume=True" in str(error)
    # the other plans ran (on the surviving or a replacement worker) and are stored once
    assert sorted(seen) == [0, 2, 3]
    assert [r is not None for r in error.records] == [True, False, True, True]
    assert count(db) == 3


def test_parallel_worker_that_cannot_start(tmp_path):
    db = tmp_path / "r.sqlite"
    with deadline(90), pytest.raises(ExecutorError) as info:
        parallel(db, devices=["cpu"], workloads_factory=workloads_failing_in_workers).run([plan(0), plan(1)])
    assert "failed to start" in str(info.value) and "no workloads for you" in str(info.value)
    assert [f.reason for f in info.value.failures] == ["not run", "not run"]
    assert count(db) == 0


def test_toy_workload_is_still_the_base():  # the crash workload must not change the toy
    assert toy_workloads().get_class("toy") is ToyWorkload


# ---- one writer ------------------------------------------------------------------------------------


def test_a_record_pickles(tmp_path):
    import pickle

    record = inline(tmp_path / "r.sqlite").run([plan(0)])[0]
    again = pickle.loads(pickle.dumps(record))
    assert again == record and again.outcome is Outcome(record.outcome) and again.evals == record.evals


def test_parallel_workers_never_open_the_store(tmp_path, monkeypatch):
    from toys import workloads_without_store

    monkeypatch.setenv("LAPTIME_TEST_PARENT_PID", str(os.getpid()))  # in the workers SQLite refuses to open
    db = tmp_path / "r.sqlite"
    with ResultsStore(db) as store:
        run_id = store.start_run("test")
    with deadline(90):
        records = parallel(db, run_id=run_id, workloads_factory=workloads_without_store).run([plan(s) for s in range(3)])
    assert count(db) == 3 and {r.run_id for r in records} == {run_id}
    with ResultsStore(db) as store:
        stored = {t.trial_id: t.plan_key for t in store.trials()}  # ids in completion order, not plan order
        assert {r.trial_id: r.plan_key for r in records} == stored and [r.seed for r in records] == [0, 1, 2]
        assert store.claims() == []


def test_workers_get_the_reference_floor_from_the_parent(tmp_path):
    db = tmp_path / "r.sqlite"
    with deadline(90):
        first = parallel(db, devices=["cpu"]).run([plan(0)])[0]
    own = first.measurement["probes"]["own_reference_sec"]
    assert first.reference_cost == pytest.approx(own)
    # the store has seen this workload run ten times faster on this hardware: the next trial is converted at that
    # cost, which only the parent could read (the worker has no store)
    with ResultsStore(db) as store:
        store.add_trial(None, dataclasses.replace(first, reference_cost=own / 10, evals=[], plan_key="elsewhere"))
    with deadline(90):
        again = parallel(db, devices=["cpu"], resume=False).run([plan(0)])[0]
    assert again.reference_cost == pytest.approx(own / 10)
    assert again.measurement["probes"]["own_reference_sec"] > own / 10
