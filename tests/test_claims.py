"""Plan claims: two benchmarks on one results file never run a plan twice; a dead owner's claim expires."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from toys import meeting_workloads, toy_workloads

from laptime.algorithms import default_algorithms
from laptime.execution import InlineExecutor, TrialPlan, execute_plan, plan_key_for
from laptime.execution.book import PlanBook
from laptime.results import SCHEMA_VERSION, ResultsStore
from laptime.results.schema import DDL
from laptime.runner import TrialOptions

OPTIONS = TrialOptions(max_steps=3)
HP = dict(default_algorithms().get("sgd_nesterov").self_tuning_defaults)
TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"


def plan(seed=0, workload="toy") -> TrialPlan:
    return TrialPlan(workload=workload, algorithm="sgd_nesterov", hyperparameters=HP, seed=seed, variant="base",
                     config="cpu")


def key(p: TrialPlan) -> str:
    return plan_key_for(p, "cpu", meeting_workloads())


def dead_pid() -> int:
    """The id of a process that has ended (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ---- the store's claims ---------------------------------------------------------------------------


def test_claim_release_heartbeat_and_takeover(tmp_path):
    here = socket.gethostname()
    with ResultsStore(tmp_path / "r.sqlite") as store:
        assert store.claim("k", "a", lease=60, now=1000.0) is None  # free: a's now
        assert store.claim("k", "a", lease=60, now=1010.0) is None  # a's own: renewed
        held = store.claim("k", "b", lease=60, host="elsewhere", now=1069.0)  # a's heartbeat is 59 s old
        assert held is not None and held.owner == "a" and held.heartbeat_at == 1010.0 and held.host == here
        assert held.pid == os.getpid()
        assert store.heartbeat("a", ["k"], now=1060.0) == 1
        assert store.claim("k", "b", lease=60, now=1119.0) is not None  # renewed at 1060: alive
        assert store.claim("k", "b", lease=60, host="elsewhere", now=1120.5) is None  # 60.5 s: stale, b's now
        (claim,) = store.claims()
        assert (claim.owner, claim.host, claim.claimed_at) == ("b", "elsewhere", 1120.5)
        assert store.heartbeat("a", ["k"]) == 0  # a lost it: not renewed
        assert store.release("k", "a") is False and store.claims()  # a cannot release b's claim
        assert store.release("k", "b") is True and store.claims() == []
        assert store.heartbeat("b", []) == 0


def test_a_claim_whose_process_is_gone_is_taken_at_once(tmp_path):
    with ResultsStore(tmp_path / "r.sqlite") as store:
        store.claim("k", "gone", lease=3600, pid=dead_pid())
        store.claim("j", "alive", lease=3600, pid=os.getpid())
        store.claim("i", "far", lease=3600, pid=dead_pid(), host="another-host")  # cannot be checked from here
        assert store.claim("k", "me", lease=3600) is None
        assert store.claim("j", "me", lease=3600).owner == "alive"
        assert store.claim("i", "me", lease=3600).owner == "far"  # only its heartbeat can expire
        assert {c.plan_key: c.owner for c in store.claims()} == {"i": "far", "j": "alive", "k": "me"}


def test_version_2_files_get_the_claims_table(tmp_path):
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    with conn:
        for stmt in DDL:
            if "claims" not in stmt:
                conn.execute(stmt)
        conn.execute("INSERT INTO meta VALUES ('schema_version', '2')")
        conn.execute("INSERT INTO runs (created_at, command) VALUES ('2026-01-01', 'old run')")
    conn.close()
    with ResultsStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION == 3
        assert store.claims() == [] and store.claim("k", "a", lease=60) is None
        assert [r["command"] for r in store.runs()] == ["old run"]


# ---- the book: claimed, waiting, taken over --------------------------------------------------------


def book(store, plans, **kw) -> PlanBook:
    prepared = [(p, key(p)) for p in plans]
    return PlanBook(store, plans, prepared, **kw)


def test_the_book_waits_for_a_live_claim_and_takes_over_stale_ones(tmp_path):
    plans = [plan(s) for s in range(4)]
    with ResultsStore(tmp_path / "r.sqlite") as store:
        now = time.time()
        store.claim(key(plans[0]), "alive-here", lease=60, pid=os.getpid())  # a live process on this host
        store.claim(key(plans[1]), "dead-here", lease=60, pid=dead_pid())  # its process is gone
        store.claim(key(plans[2]), "silent", lease=60, host="elsewhere", now=now - 61)  # heartbeat too old
        store.claim(key(plans[3]), "busy", lease=60, host="elsewhere", now=now + 3600)  # renewed (in the future)
        b = book(store, plans, lease=60)
        try:
            assert b.next() == 1 and b.next() == 2 and b.next() is None
            assert sorted(b.waiting) == [0, 3] and b.pending and 0 < b.wait_time() <= 5
            owners = {c.plan_key: c.owner for c in store.claims()}
            assert owners[key(plans[1])] == owners[key(plans[2])] == b.owner
            assert owners[key(plans[0])] == "alive-here" and owners[key(plans[3])] == "busy"
        finally:
            b.close()  # its claims on plans 1 and 2 are released
        assert {c.owner for c in store.claims()} == {"alive-here", "busy"}


def test_a_benchmark_reuses_the_record_of_a_plan_another_one_was_running(tmp_path):
    db = tmp_path / "r.sqlite"
    p = plan(0)
    with ResultsStore(db) as store:
        # another benchmark, alive, runs the plan (its heartbeat far ahead: never stale during this test)
        store.claim(key(p), "other", lease=1, pid=os.getpid(), now=time.time() + 3600)
    got = {}
    executor = InlineExecutor(db, options=OPTIONS, workloads_factory=meeting_workloads, claim_lease=1.0)
    thread = threading.Thread(target=lambda: got.update(records=executor.run([p, plan(1)])))
    thread.start()
    time.sleep(1.0)  # it runs plan 1 and waits for plan 0 (checking every 0.25 s)
    with ResultsStore(db) as store:
        record = execute_plan(p, store=None, workloads=meeting_workloads(), options=OPTIONS)
        with store.transaction():
            other_id = store.add_trial(None, record)
            store.release(key(p), "other")
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert [r.trial_id for r in got["records"]][0] == other_id  # reused, not run again
    with ResultsStore(db) as store:
        assert sorted(r.seed for r in store.trials()) == [0, 1] and store.claims() == []


# ---- two benchmarks at once, two processes -------------------------------------------------------------

SCRIPT = """
import json, sys
from laptime.execution import InlineExecutor, TrialPlan
from laptime.results import ResultsStore
from laptime.runner import TrialOptions
from toys import meeting_workloads

db, n, hp = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
lease = float(sys.argv[4]) if len(sys.argv) > 4 else 4.0
plans = [TrialPlan(workload="toy_meet", algorithm="sgd_nesterov", hyperparameters=hp, seed=s) for s in range(n)]
with ResultsStore(db) as store:
    run_id = store.start_run("claims test")
    executor = InlineExecutor(store, run_id=run_id, options=TrialOptions(max_steps=3),
                              workloads_factory=meeting_workloads, claim_lease=lease)
    records = executor.run(plans)
print(json.dumps({"run_id": run_id, "trial_ids": [r.trial_id for r in records]}))
"""


def test_two_benchmarks_at_once_store_every_plan_exactly_once(tmp_path):
    db, meet = tmp_path / "r.sqlite", tmp_path / "meet"
    meet.mkdir()
    ResultsStore(db).close()  # created once, before both open it
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(TESTS), os.environ.get("PYTHONPATH", "")]),
           "LAPTIME_TEST_MEET": str(meet)}
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT, str(db), "4", json.dumps(HP)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outs = [proc.communicate(timeout=300) for proc in procs]
    for proc, (out, err) in zip(procs, outs):
        assert proc.returncode == 0, err
    a, b = (json.loads(out.strip().splitlines()[-1]) for out, _ in outs)
    # both ran a trial at the same time (the workload holds each process's first trial until both are in
    # one), so without claims both would have run plan 0
    assert len(list(meet.iterdir())) == 2
    assert a["trial_ids"] == b["trial_ids"]  # the same record for every plan, whoever ran it
    with ResultsStore(db) as store:
        trials = store.trials()
        assert store.claims() == []
    assert len(trials) == 4 and len({t.plan_key for t in trials}) == 4  # every plan stored exactly once
    by_run = {run: sum(t.run_id == run for t in trials) for run in (a["run_id"], b["run_id"])}
    assert all(n >= 1 for n in by_run.values()) and sum(by_run.values()) == 4, by_run


@pytest.mark.parametrize("how", ["killed", "hung"])
def test_the_claim_of_a_benchmark_that_died_or_hangs_is_taken_over(tmp_path, how):
    """A benchmark is stopped in the middle of a trial, holding its claim: killed (its process is gone: the
    claim is taken at once, long before its lease ends) or hung (SIGSTOP: alive, but its heartbeat stops, so
    the claim is taken once the lease is over). Another benchmark then runs that plan, and each plan is
    stored exactly once."""
    db, meet = tmp_path / "r.sqlite", tmp_path / "meet"
    meet.mkdir()
    ResultsStore(db).close()
    # hung: a lease of 4 s, renewed every second; at 2 s a heartbeat delayed on a loaded 2-core machine
    # once let the probe below take a live benchmark's claim
    lease = 600.0 if how == "killed" else 4.0
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(TESTS), os.environ.get("PYTHONPATH", "")]),
           "LAPTIME_TEST_MEET": str(meet)}  # its trial waits (up to 120 s) for a second process that never comes
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(db), "1", json.dumps(HP), str(lease)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    p0 = TrialPlan(workload="toy_meet", algorithm="sgd_nesterov", hyperparameters=HP, seed=0)
    try:
        deadline = time.monotonic() + 120
        while not list(meet.iterdir()) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert list(meet.iterdir()), proc.stderr.read().decode() if proc.poll() is not None else "no trial started"
        if how == "hung":
            time.sleep(2 * lease)  # longer than the lease, but the heartbeat renews the claim of a live benchmark
            with ResultsStore(db) as store:
                (claim,) = store.claims()
                held = store.claim(claim.plan_key, "probe", lease=lease)
            assert held is not None and held.pid == proc.pid and held.heartbeat_at > claim.claimed_at
            proc.send_signal(signal.SIGSTOP)
            stopped = time.time()
        else:
            proc.kill()
            proc.wait(timeout=30)
        with ResultsStore(db) as store:
            (claim,) = store.claims()
        assert claim.pid == proc.pid  # the plan is still claimed by the benchmark that stopped
        start = time.time()
        records = InlineExecutor(db, options=OPTIONS, workloads_factory=meeting_workloads, claim_lease=lease).run(
            [p0, dataclasses.replace(p0, seed=1)])
        took = time.time() - start
    finally:
        proc.kill()
        proc.wait(timeout=30)
    if how == "hung":  # waited for the lease to run out
        assert time.time() - stopped > lease and took < 60
    else:  # taken at once
        assert took < lease / 10
    with ResultsStore(db) as store:
        trials = store.trials()
        assert store.claims() == []
    assert sorted(t.seed for t in trials) == [0, 1] and [r.seed for r in records] == [0, 1]
    assert sorted(r.trial_id for r in records) == [t.trial_id for t in trials]


def test_claims_are_off_for_an_in_memory_store():
    with ResultsStore(":memory:") as store:
        records = InlineExecutor(store, options=OPTIONS, workloads_factory=toy_workloads).run([plan(0), plan(0)])
        assert records[0].trial_id == records[1].trial_id
        assert store.claims() == []


@pytest.mark.parametrize("lease", [0, -1])
def test_a_lease_must_be_positive(tmp_path, lease):
    with ResultsStore(tmp_path / "r.sqlite") as store, pytest.raises(ValueError, match="lease"):
        book(store, [plan(0)], lease=lease)
