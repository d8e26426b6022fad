"""The command line: the main path end to end, and every error path ends with one clear line."""

import csv
import json
import re
import sqlite3

import pytest

from laptime.cli.main import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_user_error(code, err, *fragments):
    assert code == 2, err
    assert err.startswith("error: ") or "\nerror: " in err, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


def test_list_json_shows_workloads_targets_and_algorithms(capsys):
    code, out, _ = run_cli(capsys, "list", "--json")
    assert code == 0
    data = json.loads(out)
    keys = {w["key"] for w in data["workloads"]}
    assert {"mnist1d/base@cpu", "mnist1d/cnn@cpu", "shakespeare/base@cpu"} <= keys
    for w in data["workloads"]:
        assert w["budget_sec"] > 0 and w["step_hint"] > 0 and w["eval_period_sec"] > 0
        assert w["direction"] in ("max", "min")
    assert {"sgd_nesterov", "adamw", "nadamw"} <= {a["name"] for a in data["algorithms"]}


def test_list_table(capsys):
    code, out, _ = run_cli(capsys, "list")
    assert code == 0
    assert "mnist1d" in out and "nadamw" in out


def _expected_list_cells():
    """Every workload's cells and every algorithm's summary, from the registries themselves."""
    from laptime.algorithms import default_algorithms
    from laptime.workloads import default_workloads

    workloads = [[s.key, f"{s.max_allowed_runtime_sec:g} s", f"{s.eval_period_time_sec:g} s", str(s.step_hint),
                  f"{s.max_allowed_steps}/{s.eval_period_steps_or_default}"] for s in default_workloads().specs()]
    return workloads, [(a.name, a.summary) for a in default_algorithms().all()]


def test_list_piped_is_plain_text_and_nothing_is_cut(capsys, monkeypatch):
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    code, out, _ = run_cli(capsys, "list")  # captured: not a terminal
    assert code == 0
    assert "…" not in out
    lines = out.splitlines()
    workloads, algorithms = _expected_list_cells()
    for row in workloads:  # one line per workload, with every cell whole
        line = next((line for line in lines if line.split()[:1] == [row[0]]), None)
        assert line is not None, row[0]
        for cell in row:
            assert cell in line, (cell, line)
    for name, summary in algorithms:
        assert any(line.split()[:1] == [name] and line.endswith(summary.rstrip()) for line in lines), name


def test_list_on_an_80_column_terminal_folds_instead_of_cutting(capsys, monkeypatch):
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # a terminal, as rich sees it
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("NO_COLOR", "1")
    code, text, _ = run_cli(capsys, "list")
    assert code == 0
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)  # the headers' bold
    assert "┃" in text  # rich's table
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    workloads, _ = _expected_list_cells()
    for row in workloads:
        for cell in row[1:]:  # budget, eval, step_hint, steps/eval: whole on one line of the table
            assert cell in text, cell


def test_list_json_is_the_registries_listing(capsys):
    from laptime.cli import catalog

    for _ in range(2):  # built, then from the cache
        code, out, _ = run_cli(capsys, "list", "--json")
        assert code == 0
        assert json.loads(out) == catalog.build()


def test_list_caches_its_listing_by_source_fingerprint(monkeypatch, tmp_path):
    from laptime.cli import catalog

    monkeypatch.setenv("LAPTIME_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(catalog, "shipped", lambda inputs=None: None)  # as with a plugin or in an edited checkout
    built = []
    monkeypatch.setattr(catalog, "build", lambda: built.append(1) or {"workloads": [], "algorithms": [{"n": len(built)}]})
    assert catalog.load()["algorithms"] == [{"n": 1}]
    assert catalog.load()["algorithms"] == [{"n": 1}] and len(built) == 1  # from the cache
    monkeypatch.setattr(catalog, "fingerprint", lambda inputs=None: "another-source-state")
    assert catalog.load()["algorithms"] == [{"n": 2}]  # sources changed: built again, never stale
    (tmp_path / "cache" / "catalog-another-source-state.json").write_text("{not json")
    assert catalog.load()["algorithms"] == [{"n": 3}]  # a broken cache file is rebuilt, not an error


def test_list_does_not_import_torch_once_cached(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "LAPTIME_CACHE": str(tmp_path / "cache")}
    check = ("import sys; from laptime.cli.main import main; code = main(['list']); sys.stdout.flush(); "
             "print('imported: ' + ' '.join(m for m in ('torch', 'pytorch_optimizer') if m in sys.modules), "
             "file=sys.stderr); sys.exit(code)")
    first = subprocess.run([sys.executable, "-c", check], env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    second = subprocess.run([sys.executable, "-c", check], env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    assert second.stderr.strip() == "imported:", second.stderr


def test_shipped_listing_matches_the_registries_and_sources():
    """The listing shipped with the package (what a first `laptime list` shows) is the registries'
    own listing, stamped with today's sources. Fails after a change to a workload or algorithm until
    `python -m laptime.cli.catalog` writes it again."""
    from laptime.cli import catalog

    payload = json.loads(catalog.BUILTIN.read_text(encoding="utf-8"))
    hint = "stale catalog_builtin.json: run `python -m laptime.cli.catalog`"
    assert payload["sources"] == catalog.source_fingerprint(), hint
    assert payload["records"] == catalog.records_fingerprint(), hint  # docs/calibration/ as shipped
    assert payload["catalog"] == catalog.build(include_plugins=False), hint


def test_first_list_after_install_uses_the_shipped_listing_without_torch(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "LAPTIME_CACHE": str(tmp_path / "empty-cache")}  # as on a fresh machine
    check = ("import sys; from laptime.cli.main import main; code = main(['list', '--json']); sys.stdout.flush(); "
             "print('imported: ' + ' '.join(m for m in ('torch', 'pytorch_optimizer') if m in sys.modules), "
             "file=sys.stderr); sys.exit(code)")
    first = subprocess.run([sys.executable, "-c", check], env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert first.stderr.strip() == "imported:", first.stderr
    from laptime.cli import catalog

    assert json.loads(first.stdout) == catalog.build(include_plugins=False)


def test_shipped_listing_is_not_used_with_plugins_or_edited_sources(monkeypatch, tmp_path):
    from laptime.cli import catalog

    monkeypatch.setenv("LAPTIME_CACHE", str(tmp_path / "cache"))
    assert catalog.shipped() is not None
    monkeypatch.setattr(catalog, "_plugins", lambda: ["laptime.workloads:mine=pkg:Mine@pkg=1.0"])
    assert catalog.shipped() is None  # a plugin's entries are not in it: built (then cached)
    monkeypatch.undo()
    monkeypatch.setenv("LAPTIME_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(catalog, "source_fingerprint", lambda: "an-edited-checkout")
    assert catalog.shipped() is None
    monkeypatch.setattr(catalog, "build", lambda include_plugins=True: {"workloads": [], "algorithms": []})
    assert catalog.load() == {"workloads": [], "algorithms": []}  # so load() builds


@pytest.mark.usefixtures("one_thread")  # faster, alone and under load
def test_run_mnist1d_nadamw_reaches_target_and_is_stored(capsys, tmp_path):
    db = tmp_path / "results.sqlite"
    # About behaviour, not speed or tuning:
    # * learning rate 3e-3, the one the MNIST-1D targets were calibrated with. At the self-tuning default
    #   (2e-3) the best validation accuracy, evaluated every 25 steps to step_hint 1000, was 0.648 (avx2) /
    #   0.650 (default) against the target 0.64, and a handful of evals decided it. At 3e-3: 0.64 first
    #   reached at step 325 on both paths, 27 of 40 evals >= 0.64, best 0.668.
    # * --eval-every-steps 25: evals at fixed steps (by default every 0.25 s of submission time, so on a
    #   fast idle machine only ~5 evals, and which steps they sample depends on the machine's speed).
    # * --budget-factor 1000 (2 s -> 2000 s): the run is bounded by steps instead (it stops at the target,
    #   at the latest at step_hint 1000, where NAdamW's schedule ends). With factor 20 it ran out of
    #   budget before reaching the target beside other jobs on the 2-core machine.
    code, out, err = run_cli(capsys, "run", "--workload", "mnist1d", "--algorithm", "nadamw", "--db", str(db),
                             "--hparams", '{"learning_rate": 0.003}', "--eval-every-steps", "25",
                             "--budget-factor", "1000", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["outcome"] == "reached"
    assert result["time_to_target"] > 0 and result["steps_to_target"] > 0
    assert result["time_to_target"] <= result["budget_sec"]
    assert result["final_metrics"]["validation/accuracy"] >= result["target"]["validation"]
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT outcome, time_to_target, steps_to_target, algorithm FROM trials").fetchone()
        n_evals = conn.execute("SELECT COUNT(*) FROM evals").fetchone()[0]
    assert row == ("reached", result["time_to_target"], result["steps_to_target"], "nadamw")
    assert n_evals >= 1

    out_csv = tmp_path / "trials.csv"
    code, out, err = run_cli(capsys, "export", "--db", str(db), "--out", str(out_csv))
    assert code == 0, err
    with open(out_csv) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and rows[0]["outcome"] == "reached"


def test_run_human_summary_and_user_algorithm_file(capsys, tmp_path):
    algo = tmp_path / "my_sgd.py"
    algo.write_text(
        "import torch\n"
        "from laptime.algorithms import OptimizerAlgorithm\n"
        "algorithm = OptimizerAlgorithm('my_sgd', lambda groups, hp: torch.optim.SGD(groups, lr=hp.learning_rate),"
        " batch_size=64, self_tuning_defaults={'learning_rate': 0.05})\n"
    )
    code, out, err = run_cli(capsys, "run", "-w", "mnist1d", "-a", str(algo), "--db", str(tmp_path / "r.sqlite"),
                             "--max-steps", "30", "--quiet")
    assert code == 0, err
    assert "my_sgd" in out and "outcome" in out


def test_hparams_inline_json_overrides_defaults(capsys, tmp_path):
    code, out, err = run_cli(capsys, "run", "-w", "mnist1d", "-a", "adamw", "--db", str(tmp_path / "r.sqlite"),
                             "--hparams", '{"learning_rate": 0.0005}', "--max-steps", "5", "--json")
    assert code == 0, err
    hp = json.loads(out)["hyperparameters"]
    assert hp["learning_rate"] == 0.0005
    assert hp["beta2"] == 0.995  # from the self-tuning defaults


@pytest.mark.parametrize(
    "argv,fragments",
    [
        (["run", "-w", "mnist2d", "-a", "nadamw"], ["unknown workload", "mnist1d"]),
        (["run", "-w", "mnist1d", "-a", "nadamx"], ["unknown algorithm", "nadamw"]),
        (["run", "-w", "mnist1d", "-a", "nadamw", "--variant", "resnet"], ["no variant", "cnn"]),
        (["run", "-w", "mnist1d", "-a", "nadamw", "--config", "tpu"], ["no configuration"]),
        (["run", "-w", "mnist1d", "-a", "nadamw", "--device", "cuda:7"], ["cuda"]),
        (["run", "-w", "mnist1d", "-a", "nadamw", "--device", "banana"], ["device"]),
        (["run", "-w", "mnist1d", "-a", "nadamw", "--hparams", "nope.json"], ["nope.json"]),
        (["run", "-w", "mnist1d", "-a", "nadamw", "--hparams", '{"learning_rate": }'], ["JSON"]),
        (["run", "-w", "mnist1d", "-a", "nadamw", "--hparams", "[1, 2]"], ["ONE point"]),
        (["run", "-w", "mnist1d", "-a", "nadamw", "--seed", "-1"], ["--seed"]),
        (["run", "-w", "mnist1d", "-a", "nadamw", "--hparams", '{"learnig_rate": 0.1}'],
         ["unknown hyperparameter", "learnig_rate", "learning_rate"]),
        (["run", "-w", "mnist1d", "-a", "missing_file.py"], ["missing_file.py"]),
        # wrong types are refused before anything runs, not stored as a failed trial
        (["run", "-w", "mnist1d", "-a", "adamw", "--hparams", '{"learning_rate": "fast"}'],
         ["'learning_rate'", "a string ('fast')", "expects a number"]),
        (["run", "-w", "mnist1d", "-a", "nadamw", "--hparams", '{"beta2": true}'], ["'beta2'", "a boolean"]),
        (["run", "-w", "mnist1d", "-a", "sgd_nesterov", "--hparams", '{"learning_rate": [0.1]}'], ["a list"]),
    ],
)
def test_run_error_paths(capsys, tmp_path, argv, fragments):
    code, _, err = run_cli(capsys, *argv, "--db", str(tmp_path / "r.sqlite"))
    assert_user_error(code, err, *fragments)
    # nothing was written: no trial rows (the database may not even exist)
    db = tmp_path / "r.sqlite"
    if db.exists():
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT COUNT(*) FROM trials").fetchone()[0] == 0


def test_run_refuses_a_database_that_is_not_laptimes(capsys, tmp_path):
    db = tmp_path / "notes.txt"
    db.write_text("hello, not a database\n")
    code, _, err = run_cli(capsys, "run", "-w", "mnist1d", "-a", "nadamw", "--db", str(db), "--max-steps", "2")
    assert_user_error(code, err, "not a laptime results database")
    assert db.read_text() == "hello, not a database\n"


def test_broken_algorithm_file_is_a_clear_error(capsys, tmp_path):
    algo = tmp_path / "broken.py"
    algo.write_text("import nonexistent_module_xyz\n")
    code, _, err = run_cli(capsys, "run", "-w", "mnist1d", "-a", str(algo), "--db", str(tmp_path / "r.sqlite"))
    assert_user_error(code, err, "broken.py", "nonexistent_module_xyz")


def test_failing_algorithm_is_a_recorded_outcome(capsys, tmp_path):
    algo = tmp_path / "crash.py"
    algo.write_text(
        "from laptime.api import Algorithm\n"
        "class Crash(Algorithm):\n"
        "    def get_batch_size(self, name): return 8\n"
        "    def init_optimizer_state(self, *a): return None\n"
        "    def update_params(self, *a, **k): raise RuntimeError('kaput')\n"
    )
    code, out, err = run_cli(capsys, "run", "-w", "mnist1d", "-a", str(algo), "--db", str(tmp_path / "r.sqlite"),
                             "--json")
    assert code == 1, err  # a failed trial: stored and printed, and the exit status says so
    result = json.loads(out)
    assert result["outcome"] == "failed"
    assert "RuntimeError: kaput" in result["error"]
    assert result["time_to_target"] is None
    with sqlite3.connect(tmp_path / "r.sqlite") as conn:
        assert conn.execute("SELECT outcome FROM trials").fetchall() == [("failed",)]


def test_diverged_trial_exits_1_and_a_finished_one_0(capsys, tmp_path):
    algo = tmp_path / "boom.py"
    algo.write_text(
        "import torch\n"
        "from laptime.algorithms import OptimizerAlgorithm\n"
        "algorithm = OptimizerAlgorithm('boom', lambda groups, hp: torch.optim.SGD(groups, lr=hp.learning_rate),"
        " batch_size=32, self_tuning_defaults={'learning_rate': 1e30})\n"
    )
    db = str(tmp_path / "r.sqlite")
    code, out, err = run_cli(capsys, "run", "-w", "mnist1d", "-a", str(algo), "--db", db, "--max-steps", "50",
                             "--quiet")
    assert code == 1, err
    assert "diverged" in out
    code, out, err = run_cli(capsys, "run", "-w", "mnist1d", "-a", "adamw", "--db", db, "--max-steps", "5",
                             "--json")
    assert code == 0, err
    assert json.loads(out)["outcome"] in ("budget", "reached")


def test_run_help_documents_the_exit_status(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "1 when it failed or diverged" in text and "2 for a usage error" in text


def test_export_without_database(capsys, tmp_path):
    code, _, err = run_cli(capsys, "export", "--db", str(tmp_path / "none.sqlite"), "--out", str(tmp_path / "x.csv"))
    assert_user_error(code, err, "no results database")
    assert not (tmp_path / "x.csv").exists()


def test_missing_required_argument_exits_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["run", "--algorithm", "nadamw"])
    assert info.value.code == 2
    assert "--workload" in capsys.readouterr().err


def test_missing_dataset_is_a_clear_error_before_anything_runs(capsys, tmp_path, monkeypatch):
    import dataclasses

    from laptime.data import sources as sources_mod

    # No prepared data, no local copies, and the official URL pointed at a closed local port.
    monkeypatch.setenv("LAPTIME_DATA", str(tmp_path / "empty-data"))
    monkeypatch.setenv("LAPTIME_DATA_SOURCES", "")
    spec = sources_mod.SOURCES["tinyshakespeare"]
    offline = dataclasses.replace(spec, files=tuple(dataclasses.replace(f, url="http://127.0.0.1:9/input.txt")
                                                    for f in spec.files))
    monkeypatch.setattr(sources_mod, "SOURCES", {**sources_mod.SOURCES, "tinyshakespeare": offline})
    db = tmp_path / "r.sqlite"
    code, _, err = run_cli(capsys, "run", "-w", "shakespeare", "-a", "adamw", "--db", str(db))
    assert_user_error(code, err, "tinyshakespeare", "laptime data prepare tinyshakespeare", "Downloading it failed")
    assert not db.exists()
    assert not (tmp_path / "empty-data" / "tinyshakespeare" / "input.txt").exists()


def test_a_damaged_local_copy_is_named_before_the_download_is_tried(capsys, tmp_path, monkeypatch):
    import dataclasses
    import hashlib

    from laptime.data import sources as sources_mod

    copy = tmp_path / "copies" / "tinyshakespeare" / "input.txt"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(b"First Citizen:\nBefore we proceed any further, hear me speak.\n")
    monkeypatch.setenv("LAPTIME_DATA", str(tmp_path / "empty-data"))
    monkeypatch.setenv("LAPTIME_DATA_SOURCES", str(tmp_path / "copies"))
    spec = sources_mod.SOURCES["tinyshakespeare"]
    offline = dataclasses.replace(spec, files=tuple(dataclasses.replace(f, url="http://127.0.0.1:9/input.txt")
                                                    for f in spec.files))
    monkeypatch.setattr(sources_mod, "SOURCES", {**sources_mod.SOURCES, "tinyshakespeare": offline})
    db = tmp_path / "r.sqlite"
    code, _, err = run_cli(capsys, "run", "-w", "shakespeare", "-a", "adamw", "--db", str(db))
    found = hashlib.md5(copy.read_bytes()).hexdigest()
    # the log line says what was found and what happens next; the error says it again with the fix
    assert f"the local copy {copy} fails its checksum: expected md5 {spec.files[0].md5}, found {found}" in err, err
    assert "downloading it from its official source" in err
    assert_user_error(code, err, "Downloading it failed too", "laptime data prepare tinyshakespeare")
    assert err.count("error: ") == 1 and not err.split("error: ", 1)[1].rstrip("\n").count("\n"), err
    assert not db.exists()


def test_a_damaged_prepared_file_is_one_story_in_list_and_run(capsys, tmp_path, monkeypatch, shared_data_dir):
    """Before: `data list` said "missing", and `run` said "is not prepared: downloading it" and then
    "error: … is incomplete or fails its checksum" about the same folder."""
    import dataclasses
    import shutil

    from laptime.data import sources as sources_mod

    monkeypatch.setenv("LAPTIME_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("LAPTIME_DATA_SOURCES", "")
    spec = sources_mod.SOURCES["tinyshakespeare"]
    offline = dataclasses.replace(spec, files=tuple(dataclasses.replace(f, url="http://127.0.0.1:9/input.txt")
                                                    for f in spec.files))
    monkeypatch.setattr(sources_mod, "SOURCES", {**sources_mod.SOURCES, "tinyshakespeare": offline})
    code, _, _ = run_cli(capsys, "data", "prepare", "tinyshakespeare", "--source",
                         str(shared_data_dir / "tinyshakespeare"))
    assert code == 0
    prepared = tmp_path / "data" / "tinyshakespeare" / "input.txt"
    prepared.write_bytes(prepared.read_bytes()[:1000])
    shutil.copystat(shared_data_dir / "tinyshakespeare" / "input.txt", prepared)

    code, out, _ = run_cli(capsys, "data", "list")
    (line,) = [line for line in out.splitlines() if line.split()[:1] == ["tinyshakespeare"]]
    assert "DAMAGED" in line and "missing" not in line
    assert "input.txt fails its checksum: expected md5 6fb458f1232090904fb40fe944165e91" in out

    code, _, err = run_cli(capsys, "run", "-w", "shakespeare", "-a", "adamw", "--db", str(tmp_path / "r.sqlite"))
    assert_user_error(code, err, "Downloading it failed too")
    log, error = err.rstrip("\n").split("\n")
    for text in (log, error):
        assert "input.txt fails its checksum" in text and "not prepared" not in text, err
    assert "downloading it from its official source" in log and error.startswith("error: ")


@pytest.mark.usefixtures("one_thread")
def test_run_prints_plain_progress_lines_when_not_a_terminal(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    code, out, err = run_cli(capsys, "run", "-w", "mnist1d", "-a", "adamw", "--max-steps", "40",
                             "--eval-every-steps", "20", "--db", str(tmp_path / "r.sqlite"))
    assert code == 0, err
    lines = [line for line in err.splitlines() if line.startswith("mnist1d/base@cpu · adamw: ")]
    assert "started (target accuracy ≥" in lines[0]
    assert "after 40 steps" in lines[-1] or "reached the target" in lines[-1]
    assert "\x1b[" not in err  # no terminal control sequences in a log
    assert "outcome" in out  # the summary still goes to stdout


def test_db_in_a_missing_folder_is_refused_and_nothing_is_created(capsys, tmp_path, monkeypatch):
    missing = tmp_path / "no" / "such" / "folder"
    code, _, err = run_cli(capsys, "run", "-w", "mnist1d", "-a", "adamw", "--max-steps", "2",
                           "--db", str(missing / "r.sqlite"))
    assert_user_error(code, err, str(missing), "does not exist", "--db")
    code, _, err = run_cli(capsys, "bench", "--suite", "mnist1d", "-a", "adamw", "--max-steps", "2",
                           "--db", str(missing / "r.sqlite"), "--out", str(tmp_path / "o"))
    assert_user_error(code, err, str(missing), "does not exist")
    monkeypatch.setenv("LAPTIME_DB", str(missing / "env.sqlite"))
    code, _, err = run_cli(capsys, "run", "-w", "mnist1d", "-a", "adamw", "--max-steps", "2")
    assert_user_error(code, err, "$LAPTIME_DB", str(missing))
    assert not (tmp_path / "no").exists()
    (tmp_path / "file").write_text("x")
    code, _, err = run_cli(capsys, "run", "-w", "mnist1d", "-a", "adamw", "--max-steps", "2",
                           "--db", str(tmp_path / "file" / "r.sqlite"))
    assert_user_error(code, err, "is not a folder")


def test_default_database_location_is_still_created(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("LAPTIME_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data-home"))
    code, _, err = run_cli(capsys, "run", "-w", "mnist1d", "-a", "adamw", "--max-steps", "2", "--quiet")
    assert code == 0, err
    assert (tmp_path / "data-home" / "laptime" / "results.sqlite").is_file()


@pytest.mark.usefixtures("one_thread")
def test_refine_runs_both_runs_stores_and_prints_them(capsys, tmp_path):
    db, norms = tmp_path / "r.sqlite", tmp_path / "norms.json"
    code, out, err = run_cli(capsys, "refine", "-w", "mnist1d", "-a", "nadamw", "--max-steps", "30",
                             "--eval-every-steps", "10", "--norms", str(norms), "--db", str(db), "--json")
    assert code == 0, err
    result = json.loads(out)
    recorded, refined = result["recorded"], result["refined"]
    assert recorded["algorithm"] == "nadamw_gradnorms" and refined["algorithm"] == "nadamw_refined"
    assert recorded["steps"] == 30  # the recording run trains on to its cap: norms of the whole schedule
    assert recorded["hyperparameters"] == refined["hyperparameters"] and recorded["seed"] == refined["seed"]
    saved = json.loads(norms.read_text())
    assert len(saved["l1"]) == len(saved["l2"]) == 30 and saved["workload"] == "mnist1d/base@cpu"
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT algorithm, run_id FROM trials ORDER BY id").fetchall()
        meta = json.loads(conn.execute("SELECT meta_json FROM runs").fetchone()[0])
    assert [r[0] for r in rows] == ["nadamw_gradnorms", "nadamw_refined"] and len({r[1] for r in rows}) == 1
    assert meta["kind"] == "refine" and len(meta["trial_ids"]) == 2

    # any optimizer + schedule, the two results side by side
    code, out, err = run_cli(capsys, "refine", "-w", "mnist1d", "-a", "adamw", "--norm", "l2", "--max-steps", "10",
                             "--db", str(db), "--quiet")
    assert code == 0, err
    table = out.splitlines()
    assert any(line.split()[:2] == ["recorded", "adamw_gradnorms"] for line in table), out
    assert any(line.split()[:2] == ["refined", "adamw_refined"] for line in table), out


def test_refine_error_paths(capsys, tmp_path):
    db = tmp_path / "r.sqlite"
    algo = tmp_path / "own.py"
    algo.write_text(
        "from laptime.api import Algorithm\n"
        "class Own(Algorithm):\n"
        "    def get_batch_size(self, name): return 8\n"
        "    def init_optimizer_state(self, *a): return None\n"
        "    def update_params(self, *a, **k): return None\n"
    )
    code, _, err = run_cli(capsys, "refine", "-w", "mnist1d", "-a", str(algo), "--db", str(db))
    assert_user_error(code, err, "cannot refine", "OptimizerAlgorithm")
    code, _, err = run_cli(capsys, "refine", "-w", "mnist1d", "--norms", str(tmp_path / "no" / "n.json"),
                           "--db", str(db))
    assert_user_error(code, err, "--norms", "does not exist")
    code, _, err = run_cli(capsys, "refine", "-w", "mnist1d", "--hparams", '{"learning_rate": "x"}', "--db", str(db))
    assert_user_error(code, err, "learning_rate")
    assert not db.exists()  # nothing ran
