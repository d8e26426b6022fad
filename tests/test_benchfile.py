"""`laptime bench --config bench.toml`: a benchmark described by a file; the command line wins."""

from __future__ import annotations

import json
import sqlite3
import textwrap

import pytest

from laptime.cli import benchfile
from laptime.cli.benchfile import BenchFileError
from laptime.cli.main import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write(path, text):
    path.write_text(textwrap.dedent(text))
    return path


def test_bench_from_a_file(capsys, tmp_path, monkeypatch):
    study = tmp_path.resolve() / "study"
    study.mkdir()
    config = write(study / "bench.toml", """\
        # a tiny benchmark: two MNIST-1D workloads x one algorithm, 2 studies of 1 trial, 20 steps each
        suite = "mnist1d"
        algorithms = ["adamw"]
        ruleset = "external"
        studies = 2
        trials = 1
        seed = 3
        budget = "steps"
        threads = 1
        max_steps = 20
        bootstrap = 0
        by = "steps"
        db = "results.sqlite"       # relative to this file
        out = "report"
        """)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # paths in the file do not depend on where it is run from
    code, out, err = run_cli(capsys, "bench", "--config", str(config), "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["db"] == str(study / "results.sqlite") and result["report"] == str(study / "report" / "report.html")
    assert result["trials"] == 4 and result["budget_mode"] == "steps" and result["column"] == "steps_to_target"
    assert list(result["algorithms"]) == ["adamw"] and "bootstrap" not in result
    with sqlite3.connect(study / "results.sqlite") as conn:
        rows = conn.execute("SELECT ruleset, study, budget_mode, steps <= 20 FROM trials ORDER BY id").fetchall()
        meta = json.loads(conn.execute("SELECT meta_json FROM runs").fetchone()[0])
    assert {r[0] for r in rows} == {"external"} and sorted({r[1] for r in rows}) == [0, 1]
    assert all(r[2] == "steps" and r[3] for r in rows)
    assert meta["seed"] == 3 and meta["studies"] == 2 and meta["threads"]["threads"] == 1
    assert meta["bench_file"]["path"] == str(config.resolve())
    assert meta["bench_file"]["options"]["studies"] == 2
    assert not list(elsewhere.iterdir())  # nothing written where it was run from

    # the command line overrides the file: one study, another database and report folder
    code, out, err = run_cli(capsys, "bench", "--config", str(config), "--studies", "1", "--db", "other.sqlite",
                             "--out", "rep", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["trials"] == 2 and result["db"] == "other.sqlite" and (elsewhere / "rep" / "report.html").exists()
    with sqlite3.connect(elsewhere / "other.sqlite") as conn:
        meta = json.loads(conn.execute("SELECT meta_json FROM runs").fetchone()[0])
    assert meta["studies"] == 1 and "studies" not in meta["bench_file"]["options"]


def test_options_and_paths(tmp_path):
    tmp_path = tmp_path.resolve()
    (tmp_path / "algos").mkdir()
    config = write(tmp_path / "b.toml", """\
        algorithms = ["nadamw", "algos/mine.py", "theirs=algos/sub.py", "pkg.mod:algo"]
        devices = ["cpu", "cpu"]
        robust = false
        resume = false
        retry_failed = true
        threads = "auto"
        budget_factor = 2
        search_space = "/abs/space.json"
        log = ["tensorboard:tb", "mlflow:http://host:5000", "mlflow:mlruns", "wandb:proj"]
        """)
    values = benchfile.load(config)
    assert values["algorithm"] == ["nadamw", str(tmp_path / "algos/mine.py"), f"theirs={tmp_path / 'algos/sub.py'}",
                                   "pkg.mod:algo"]
    assert values["device"] == "cpu,cpu"
    assert values["no_robust"] is True and values["no_resume"] is True and values["retry_failed"] is True
    assert values["threads"] == "auto" and values["budget_factor"] == 2.0
    assert values["search_space"] == "/abs/space.json"
    assert values["log"] == [f"tensorboard:{tmp_path / 'tb'}", "mlflow:http://host:5000",
                             f"mlflow:{tmp_path / 'mlruns'}", "wandb:proj"]
    write(config, 'devices = "cuda:0, cuda:1"\nalgorithms = "adamw"\nthreads = 2\n')
    assert benchfile.load(config) == {"device": "cuda:0,cuda:1", "algorithm": ["adamw"], "threads": "2"}


def test_where_trials_run(tmp_path):
    tmp_path = tmp_path.resolve()
    config = write(tmp_path / "b.toml", """\
        executor = "slurm"
        workers = 8
        partition = "gpu"
        gpus_per_trial = 1
        time_limit = 30
        jobs_folder = "jobs"        # relative to this file
        claim_lease = 90
        """)
    assert benchfile.load(config) == {"executor": "slurm", "workers": 8, "partition": "gpu", "gpus_per_trial": 1,
                                      "time_limit": 30.0, "jobs_folder": str(tmp_path / "jobs"), "claim_lease": 90.0}
    write(config, 'executor = "ray"\nray_address = "head:6379"\n')
    assert benchfile.load(config) == {"executor": "ray", "ray_address": "head:6379"}
    write(config, 'executor = "cluster"\n')
    with pytest.raises(BenchFileError, match="executor must be one of 'auto', 'inline', 'local', 'ray', 'slurm'"):
        benchfile.load(config)


@pytest.mark.parametrize("text, message", [
    ('sute = "mnist1d"\n', "unknown key 'sute' (did you mean 'suite'?)"),
    ('colour = "red"\n', "unknown key 'colour'; known keys: suite, algorithms"),
    ("studies = \"3\"\n", "studies must be an integer, got '3'"),
    ("studies = true\n", "studies must be an integer, got True"),
    ("studies = 1.5\n", "studies must be an integer, got 1.5"),
    ("algorithms = [1, 2]\n", "algorithms must be a string or a list of strings, got [1, 2]"),
    ("algorithms = []\n", "algorithms must be a string or a list of strings, got []"),
    ('ruleset = "both"\n', "ruleset must be one of 'external', 'self', got 'both'"),
    ('threads = "many"\n', "threads must be an integer or \"auto\", got 'many'"),
    ("robust = 0\n", "robust must be true or false, got 0"),
    ("[suite]\nname = 'x'\n", "suite must be a string, got a table"),
    ('suite = "mnist1d\n', "not valid TOML"),
])
def test_bad_files_are_one_line_errors_naming_the_key(capsys, tmp_path, text, message):
    config = write(tmp_path / "bench.toml", text)
    with pytest.raises(BenchFileError) as info:
        benchfile.load(config)
    assert message in str(info.value) and str(config) in str(info.value)
    db = tmp_path / "r.sqlite"
    code, out, err = run_cli(capsys, "bench", "--config", str(config), "--db", str(db))
    assert code == 2 and err.startswith("error: ") and message in err and err.strip().count("\n") == 0
    assert not db.exists()  # nothing ran


def test_missing_file(capsys, tmp_path):
    code, _, err = run_cli(capsys, "bench", "--config", str(tmp_path / "none.toml"), "--db", str(tmp_path / "r.sqlite"))
    assert code == 2 and "benchmark file not found" in err and not (tmp_path / "r.sqlite").exists()


def test_bad_values_are_checked_as_on_the_command_line(capsys, tmp_path):
    config = write(tmp_path / "bench.toml", 'suite = "nope"\n')
    code, _, err = run_cli(capsys, "bench", "--config", str(config), "--db", str(tmp_path / "r.sqlite"))
    assert code == 2 and "unknown suite" in err
    config = write(tmp_path / "bench.toml", 'log = ["neptune"]\nsuite = "mnist1d"\n')
    code, _, err = run_cli(capsys, "bench", "--config", str(config), "--db", str(tmp_path / "r.sqlite"))
    assert code == 2 and "unknown logger 'neptune'" in err and not (tmp_path / "r.sqlite").exists()


def test_pruning_options(tmp_path):
    config = write(tmp_path / "p.toml", """\
        ruleset = "external"
        prune = "predict"
        predictor = "rung"
        prune_eta = 4
        prune_threshold = 0.1
        """)
    values = benchfile.load(config)
    assert (values["prune"], values["predictor"], values["prune_eta"], values["prune_threshold"]) == \
        ("predict", "rung", 4, 0.1)
    write(config, 'prune = "sometimes"\n')
    with pytest.raises(BenchFileError, match="prune"):
        benchfile.load(config)
