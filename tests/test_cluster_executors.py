"""Every executor gives the inline executor's trials and leaderboard (step budgets), and only the
parent writes the results store: local worker processes, Ray tasks, Slurm jobs (submitit's local
executor). The Ray and submitit tests are skipped where those packages are not installed (they are
in the ``test`` extra)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from toys import workloads_without_store

from laptime.algorithms import default_algorithms
from laptime.cli.main import main
from laptime.execution import ExecutorError, TrialPlan
from laptime.results import ResultsStore
from laptime.runner import TrialOptions

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"
BENCH = ["bench", "--suite", "mnist1d", "-a", "nadamw", "-a", "adamw", "--max-steps", "60", "--budget", "steps",
         "--bootstrap", "0", "--by", "steps", "--json"]
HP = dict(default_algorithms().get("sgd_nesterov").self_tuning_defaults)


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def trials_of(db) -> list[tuple]:
    """What a step-budget trial must reproduce exactly, wherever it ran: identity, outcome, steps and
    every eval's metrics."""
    with ResultsStore(db) as store:
        rows = []
        for t in store.trials(with_evals=True):
            rows.append((t.workload, t.variant, t.algorithm, t.seed, t.plan_key, t.outcome.value, t.steps,
                         t.steps_to_target, t.measurement["threads"]["threads"],
                         [(e.step, e.metrics) for e in t.evals]))
    return sorted(rows)


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance for the module's tests (starting one costs seconds). Its workers are started
    with this environment: this checkout and the tests' toys importable, and the guard of
    :func:`toys.workloads_without_store` aimed at this process. Executors find Ray initialised and leave it so."""
    ray = pytest.importorskip("ray")
    saved = {name: os.environ.get(name) for name in ("PYTHONPATH", "LAPTIME_TEST_PARENT_PID")}
    os.environ["PYTHONPATH"] = os.pathsep.join([str(SRC), str(TESTS), saved["PYTHONPATH"] or ""])
    os.environ["LAPTIME_TEST_PARENT_PID"] = str(os.getpid())
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="module")
def inline_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inline")
    code = main([*BENCH, "--executor", "inline", "--db", str(folder / "r.sqlite"), "--out", str(folder / "o")])
    assert code == 0
    with sqlite3.connect(folder / "r.sqlite") as conn:
        meta = json.loads(conn.execute("SELECT meta_json FROM runs").fetchone()[0])
    return folder / "r.sqlite", meta


def check_same_as_inline(capsys, inline_run, db, executor: str) -> None:
    inline_db, _ = inline_run
    assert trials_of(db) == trials_of(inline_db)
    code, ours, err = run_cli(capsys, *BENCH, "--db", str(db), "--out", str(Path(db).parent / "o2"))
    assert code == 0, err
    code, theirs, err = run_cli(capsys, *BENCH, "--db", str(inline_db), "--out", str(Path(db).parent / "o3"))
    assert code == 0, err
    ours, theirs = json.loads(ours), json.loads(theirs)
    assert ours["algorithms"] == theirs["algorithms"] and ours["workloads"] == theirs["workloads"]
    with sqlite3.connect(db) as conn:
        metas = [json.loads(m) for (m,) in conn.execute("SELECT meta_json FROM runs ORDER BY id")]
    assert metas[0]["executor"] == executor


def test_local_workers_give_the_inline_leaderboard(capsys, tmp_path, inline_run):
    db = tmp_path / "r.sqlite"
    code, out, err = run_cli(capsys, *BENCH, "--executor", "local", "--workers", "2", "--db", str(db), "--out",
                             str(tmp_path / "o"))
    assert code == 0, err
    assert json.loads(out)["trials"] == 4 and json.loads(out)["executor"] == "local"
    check_same_as_inline(capsys, inline_run, db, "local")


def test_slurm_jobs_give_the_inline_leaderboard(capsys, tmp_path, inline_run, monkeypatch):
    pytest.importorskip("submitit")
    db, jobs = tmp_path / "r.sqlite", tmp_path / "jobs"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))
    code, out, err = run_cli(capsys, *BENCH, "--executor", "slurm-local", "--jobs-folder", str(jobs), "--time-limit",
                             "30", "--db", str(db), "--out", str(tmp_path / "o"))
    assert code == 0, err
    assert json.loads(out)["executor"] == "slurm-local"
    # the records came back through submitit's result files, one job folder per trial
    assert len([p for p in jobs.iterdir() if list(p.glob("*_result.pkl"))]) == 4
    check_same_as_inline(capsys, inline_run, db, "slurm-local")


def test_ray_tasks_give_the_inline_leaderboard(capsys, tmp_path, inline_run, local_ray):
    db = tmp_path / "r.sqlite"
    code, out, err = run_cli(capsys, *BENCH, "--executor", "ray", "--db", str(db), "--out", str(tmp_path / "o"))
    assert code == 0, err
    assert json.loads(out)["executor"] == "ray" and json.loads(out)["trials"] == 4
    assert local_ray.is_initialized()  # a Ray this process had initialised is left as it was
    check_same_as_inline(capsys, inline_run, db, "ray")


# ---- one writer, failures -------------------------------------------------------------------------------


def plan(seed, workload="toy") -> TrialPlan:
    return TrialPlan(workload=workload, algorithm="sgd_nesterov", hyperparameters=HP, seed=seed)


def job_executor(kind: str, db, tmp_path, **kw):
    common = dict(options=TrialOptions(max_steps=3), workloads_factory=workloads_without_store, **kw)
    if kind == "ray":
        from laptime.execution.ray_executor import RayExecutor

        return RayExecutor(db, **common)
    pytest.importorskip("submitit")
    from laptime.execution.slurm_executor import SlurmExecutor

    return SlurmExecutor(db, folder=tmp_path / "jobs", local=True, time_limit=10, **common)


@pytest.mark.parametrize("kind", ["ray", "slurm-local"])
def test_jobs_hand_records_back_and_never_open_the_store(tmp_path, monkeypatch, kind, request):
    if kind == "ray":
        request.getfixturevalue("local_ray")
    else:
        pytest.importorskip("submitit")
    monkeypatch.setenv("LAPTIME_TEST_PARENT_PID", str(os.getpid()))  # elsewhere SQLite refuses to open
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(SRC), str(TESTS), os.environ.get("PYTHONPATH", "")]))
    db = tmp_path / "r.sqlite"
    with ResultsStore(db) as store:
        run_id = store.start_run("test")
    executor = job_executor(kind, db, tmp_path, run_id=run_id)
    seen = []
    plans = [plan(0), plan(1, workload="toy_crash"), plan(2), plan(0)]
    with pytest.raises(ExecutorError) as info:
        executor.run(plans, on_result=lambda p, r: seen.append(p.seed))
    # the crashing plan is reported; the others ran as jobs, came back and were stored here, once
    assert [(f.index, f.reason) for f in info.value.failures] == [(1, "crashed")]
    assert sorted(seen) == [0, 0, 2]
    records = info.value.records
    assert records[0].trial_id == records[3].trial_id and records[0].run_id == run_id and records[1] is None
    with ResultsStore(db) as store:
        stored = store.trials()
        assert store.claims() == []  # released: the crashed plan's too
    assert sorted(t.seed for t in stored) == [0, 2] and all(t.run_id == run_id for t in stored)
    assert all(t.measurement["threads"]["threads"] == 1 for t in stored)
    # resume: nothing runs again, nothing is submitted
    again = job_executor(kind, db, tmp_path).run([plan(0), plan(2)])
    assert [r.trial_id for r in again] == sorted(t.trial_id for t in stored)


def test_the_store_guard_bites(tmp_path):
    """workloads_without_store really makes a process that opens the store fail (else the test above proves nothing)."""
    code = ("import os, sys; sys.path[:0] = [{!r}, {!r}]; from toys import workloads_without_store; "
            "workloads_without_store(); from laptime.results import ResultsStore; ResultsStore({!r})"
            ).format(str(SRC), str(TESTS), str(tmp_path / "r.sqlite"))
    env = {**os.environ, "LAPTIME_TEST_PARENT_PID": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode != 0 and "a worker opened an SQLite database" in proc.stderr


@pytest.mark.parametrize("argv, message", [
    (["--executor", "ray", "--device", "cuda:1"], "chooses the GPU of each trial"),
    (["--executor", "slurm-local", "--threads", "auto"], "--threads auto reads this machine's free cores"),
    (["--executor", "slurm", "--partition", "gpu"], "sbatch"),
    (["--executor", "slurm-local", "--gpus-per-trial", "-1"], "--gpus-per-trial must be >= 0"),
    (["--executor", "slurm-local", "--time-limit", "0"], "--time-limit must be > 0"),
    (["--executor", "local", "--ray-address", "x:1"], "--ray-address: not an option of --executor local"),
    (["--executor", "ray", "--device", "cpu,cpu"], "give one device type"),
])
def test_engine_errors_are_one_line_and_store_nothing(capsys, tmp_path, argv, message):
    if "slurm" in " ".join(argv):
        pytest.importorskip("submitit")  # without it, the error names the missing extra (tested below)
    db = tmp_path / "r.sqlite"
    code, out, err = run_cli(capsys, "bench", "--suite", "mnist1d", "-a", "adamw", "--db", str(db), *argv)
    assert code == 2 and err.startswith("error: ") and message in err and err.strip().count("\n") == 0, err
    assert not db.exists()


def test_a_missing_engine_names_its_extra(capsys, tmp_path, monkeypatch):
    from laptime.benchmark import core

    monkeypatch.setattr(core, "_installed", lambda module: False)
    for executor, extra in (("ray", "laptime[ray]"), ("slurm", "laptime[slurm]"), ("slurm-local", "laptime[slurm]")):
        code, _, err = run_cli(capsys, "bench", "--suite", "mnist1d", "-a", "adamw", "--executor", executor,
                               "--db", str(tmp_path / "r.sqlite"))
        assert code == 2 and f'pip install "{extra}"' in err, err
    assert not (tmp_path / "r.sqlite").exists()


def test_ray_tasks_prune_the_same_trials_as_inline(capsys, tmp_path, local_ray):
    """Pruning under Ray: each trial is told its study's best so far and a study's trials wait for
    each other (chains), so the same trials are pruned at the same steps as inline."""
    prune = ["bench", "--suite", "mnist1d", "-a", "adamw", "--ruleset", "external", "--studies", "1", "--trials", "3",
             "--max-steps", "400", "--budget", "steps", "--bootstrap", "0", "--by", "steps", "--json",
             "--prune", "exact", "--no-checkpoint"]
    dbs = {}
    for executor in ("inline", "ray"):
        dbs[executor] = tmp_path / f"{executor}.sqlite"
        code, out, err = run_cli(capsys, *prune, "--executor", executor, "--db", str(dbs[executor]), "--out",
                                 str(tmp_path / executor))
        assert code == 0, err
    assert trials_of(dbs["ray"]) == trials_of(dbs["inline"])
    assert any(row[5] == "pruned" for row in trials_of(dbs["ray"]))
