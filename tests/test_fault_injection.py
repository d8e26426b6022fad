"""Fault injection through the command line: ``laptime bench`` killed with SIGKILL at 20 random points
and started again each time stores every plan exactly once with an uninterrupted run's eval
histories, and at every look (while it runs and after every kill) the database is intact and nothing
half-written is visible, also with two benchmarks racing on one database (``benchmarks/fault_injection.py``,
here in its quick form; the longer runs' figures are in docs/benchmarks.md); ``laptime run`` stopped by SIGTERM checkpoints, exits with
status 75 and resumes; the checkpoint options' bad values are one-line errors."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import laptime
from laptime.cli.main import main
from laptime.results import ResultsStore
from laptime.runner import checkpoint as ckpt

SRC = Path(laptime.__file__).resolve().parents[1]
SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "fault_injection.py"


def laptime_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "laptime", *args]


def env() -> dict[str, str]:
    out = dict(os.environ)
    out["PYTHONPATH"] = os.pathsep.join([str(SRC), out.get("PYTHONPATH", "")])
    return out


def history(db: Path) -> dict[str, list]:
    """Eval history (step, metrics) by plan key; fails on a plan stored twice."""
    with ResultsStore(db) as store:
        trials = store.trials(with_evals=True)
    keys = [t.plan_key for t in trials]
    assert len(keys) == len(set(keys)), "a plan was stored twice"
    return {t.plan_key: [(e.step, e.metrics) for e in t.evals] for t in trials}


@pytest.mark.parametrize("racers", [1, 2])
def test_bench_killed_at_20_random_points_stores_every_plan_once_with_exact_histories(racers, tmp_path):
    """benchmarks/fault_injection.py with benchmarks forked from a preloaded interpreter (no imports
    per start): 20 SIGKILLs at random points of ``laptime bench`` (4 plans) — one benchmark, or two
    racing on one database (plan claims) — what a reader sees checked while they run and after every
    kill; then the files it kept are checked again here."""
    work = tmp_path / "work"
    done = subprocess.run([sys.executable, str(SCRIPT), "--processes", "fork", "--kills", "20", "--max-steps", "30",
                           "--checkpoint-every-steps", "3", "--racers", str(racers), "--seed", "20261130",
                           "--workdir", str(work)], env=env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (done.stderr + (work / "benchmarks.log").read_text())[-4000:]
    summary = json.loads(done.stdout)
    assert summary["kills"] == 20 and summary["racers"] == racers and summary["processes started"] >= 20 + racers
    assert summary["trial resumes"] >= 1  # some kills landed in a trial, which then resumed
    assert summary["checkpoints loaded while running"] >= 1 and summary["looks while running"] >= 20

    reference = history(work / "reference.sqlite")
    assert len(reference) == 4 and all(evals for evals in reference.values())
    campaigns = sorted(work.glob("campaign*.sqlite"))
    assert len(campaigns) == summary["campaigns"]
    for db in campaigns:  # every campaign ended with every plan once, as uninterrupted
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert history(db) == reference
        assert not (work / f"{db.name}.checkpoints").exists()
        with ResultsStore(db) as store:
            assert all(t.measurement["checkpoint"]["written"] >= 1 for t in store.trials())


def test_sigterm_checkpoints_exits_75_and_the_same_command_resumes(tmp_path, capsys):
    run = ["run", "-w", "mnist1d", "-a", "adamw", "--budget", "steps", "--max-steps", "1000", "--eval-every-steps",
           "250", "--threads", "1", "--json"]
    folder = tmp_path / "ckpts"
    with_ckpt = [*run, "--db", str(tmp_path / "a.sqlite"), "--checkpoint-dir", str(folder),
                 "--checkpoint-every-steps", "5"]
    proc = subprocess.Popen(laptime_command(*with_ckpt), env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 300
    while not list(folder.glob("*.pt")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)  # soon after the first checkpoint: in the middle of the trial
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == ckpt.PREEMPTED_EXIT_STATUS, err[-3000:]
    assert "preempted (SIGTERM)" in err.strip().splitlines()[-1] and "run the same command again" in err
    (path,) = folder.glob("*.pt")
    stopped_at = ckpt.read_checkpoint(path)["runner"]["step"]
    assert stopped_at >= 5  # stopped at the step boundary after the signal
    with ResultsStore(tmp_path / "a.sqlite") as store:
        assert store.trials() == []  # nothing stored for a preempted trial

    assert main(with_ckpt) == 0  # the same command again (here in this process): resumes
    assert main([*run, "--db", str(tmp_path / "b.sqlite")]) == 0  # uninterrupted, no checkpoints
    capsys.readouterr()
    with ResultsStore(tmp_path / "a.sqlite") as a, ResultsStore(tmp_path / "b.sqlite") as b:
        (ta,), (tb,) = a.trials(with_evals=True), b.trials(with_evals=True)
    assert [(e.step, e.metrics) for e in ta.evals] == [(e.step, e.metrics) for e in tb.evals]
    assert [e.step for e in ta.evals][:1] == [250] and ta.steps == tb.steps
    assert ta.measurement["checkpoint"]["resumes"][0]["step"] == stopped_at < ta.steps
    assert ta.submission_time > 0 and not list(folder.glob("*.pt"))


@pytest.mark.parametrize("args,message", [
    (["run", "-w", "mnist1d", "-a", "adamw", "--checkpoint-every", "0", "--checkpoint-dir", "x"],
     "--checkpoint-every must be"),
    (["run", "-w", "mnist1d", "-a", "adamw", "--checkpoint-every", "nan", "--checkpoint-dir", "x"],
     "--checkpoint-every must be"),
    (["run", "-w", "mnist1d", "-a", "adamw", "--checkpoint-every-steps", "0", "--checkpoint-dir", "x"],
     "--checkpoint-every-steps must be >= 1"),
    (["run", "-w", "mnist1d", "-a", "adamw", "--checkpoint-every", "30"], "need --checkpoint-dir"),
    (["run", "-w", "mnist1d", "-a", "adamw", "--checkpoint-dir", "{tmp}/no/such/dir"], "does not exist"),
    (["run", "-w", "mnist1d", "-a", "adamw", "--checkpoint-dir", "{tmp}/file"], "not a folder"),
    (["bench", "--suite", "mnist1d", "--no-checkpoint", "--checkpoint-every-steps", "5"], "cannot be combined"),
])
def test_bad_checkpoint_options_are_one_line_errors(args, message, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    code = main([*args, "--db", str(tmp_path / "r.sqlite")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.startswith("error: ") and err.count("\n") == 1
    assert not (tmp_path / "r.sqlite").exists()  # nothing ran


def test_bench_checkpoints_beside_the_database_by_default_and_can_be_switched_off(tmp_path, capsys):
    db = tmp_path / "r.sqlite"
    args = ["bench", "--suite", "mnist1d", "-a", "adamw", "--budget", "steps", "--max-steps", "12", "--threads", "1",
            "--bootstrap", "0", "--json", "--db", str(db), "--out", str(tmp_path / "out")]
    assert main([*args, "--checkpoint-every-steps", "5"]) == 0
    reported = json.loads(capsys.readouterr().out)["checkpoints"]
    assert reported["dir"] == str(tmp_path / "r.sqlite.checkpoints") and reported["trials"] == 2
    assert reported["written"] == 4 and reported["max_bytes"] > 0 and reported["resumes"] == reported["left"] == 0
    with ResultsStore(db) as store:
        trials = store.trials()
    assert len(trials) == 2
    for trial in trials:
        summary = trial.measurement["checkpoint"]
        assert Path(summary["file"]) == tmp_path / "r.sqlite.checkpoints" / f"{trial.plan_key}.pt"
        assert summary["written"] == 2 and summary["bytes"] > 0 and summary["every_steps"] == 5
    assert not (tmp_path / "r.sqlite.checkpoints").exists()
    assert main([*args, "--no-checkpoint", "--no-resume"]) == 0
    assert json.loads(capsys.readouterr().out)["checkpoints"] is None
    with ResultsStore(db) as store:
        assert [("checkpoint" in t.measurement) for t in store.trials()] == [True, True, False, False]


def test_bench_files_take_the_checkpoint_options(tmp_path):
    from laptime.cli import benchfile

    config = tmp_path.resolve() / "b.toml"
    config.write_text('checkpoint_dir = "ckpts"\ncheckpoint_every = 30\ncheckpoint_every_steps = 100\n')
    assert benchfile.load(config) == {"checkpoint_dir": str(tmp_path.resolve() / "ckpts"), "checkpoint_every": 30.0,
                                      "checkpoint_every_steps": 100}
    config.write_text("checkpoint = false\n")
    assert benchfile.load(config) == {"no_checkpoint": True}
