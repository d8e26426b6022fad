"""Experiment trackers fed from the trial progress hook (laptime.loggers): TensorBoard event files
read back, MLflow's file store read back with its client, W&B offline files; in the inline executor,
in the parallel executor's workers, and from the CLI."""

from __future__ import annotations

import json
import os
import pickle
import sqlite3
import sys
import types
import warnings

import pytest
from toys import toy_workloads

from laptime.algorithms import default_algorithms
from laptime.cli.main import main
from laptime.execution import TrialPlan, execute_plan
from laptime.execution.executors import InlineExecutor, LocalParallelExecutor
from laptime.loggers import (
    LoggerError,
    LoggerSpec,
    LoggerWarning,
    TrialLoggers,
    check_loggers,
    final_values,
    parse_loggers,
)
from laptime.records import Outcome
from laptime.results import ResultsStore
from laptime.runner import TrialOptions

# every run: 6 steps, an eval every 2 (steps 2, 4, 6), no early stop: nothing depends on the clock
OPTIONS = TrialOptions(max_steps=6, eval_every_steps=2, stop_at_target=False)
HP = dict(default_algorithms().get("sgd_nesterov").self_tuning_defaults)


def plan(seed=0, **kw) -> TrialPlan:
    kw.setdefault("hyperparameters", HP)
    return TrialPlan(workload="toy", algorithm="sgd_nesterov", seed=seed, budget_mode="steps", **kw)


def inline(tmp_path, loggers, **kw) -> InlineExecutor:
    return InlineExecutor(tmp_path / "r.sqlite", options=OPTIONS, workloads_factory=toy_workloads,
                          loggers=loggers, **kw)


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ---- specs ---------------------------------------------------------------------------------------


def test_parse_specs():
    specs = parse_loggers(["tensorboard:runs", "mlflow:http://host:5000", "wandb", "WANDB:proj", "tensorboard:runs"])
    assert specs == (LoggerSpec("tensorboard", "runs"), LoggerSpec("mlflow", "http://host:5000"),
                     LoggerSpec("wandb"), LoggerSpec("wandb", "proj"))  # URIs keep their colons; duplicates once
    assert [str(s) for s in specs] == ["tensorboard:runs", "mlflow:http://host:5000", "wandb", "wandb:proj"]
    assert pickle.loads(pickle.dumps(specs)) == specs  # what a parallel executor's workers are given
    with pytest.raises(LoggerError, match="unknown logger 'neptune'.*tensorboard"):
        parse_loggers(["neptune:x"])
    with pytest.raises(LoggerError, match="nothing after the colon"):
        parse_loggers(["mlflow:"])
    with pytest.raises(LoggerError, match="KIND"):
        parse_loggers([":x"])


@pytest.mark.parametrize("kind, module, extra", [("tensorboard", "tensorboard", "tensorboard"),
                                                 ("mlflow", "mlflow", "mlflow"), ("wandb", "wandb", "wandb")])
def test_missing_package_is_one_line_error_before_anything_runs(kind, module, extra, capsys, tmp_path,
                                                                 monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # `import module` raises ImportError
    if kind == "tensorboard":
        monkeypatch.delitem(sys.modules, "torch.utils.tensorboard", raising=False)
    with pytest.raises(LoggerError, match=rf'pip install "laptime\[{extra}\]"'):
        check_loggers(parse_loggers([kind]))
    db = tmp_path / "r.sqlite"
    code, out, err = run_cli(capsys, "run", "-w", "mnist1d", "-a", "adamw", "--max-steps", "2", "--db", str(db),
                             "--log", f"{kind}:{tmp_path / 'x'}" if kind != "wandb" else kind)
    assert code == 2 and err.startswith("error: ") and err.strip().count("\n") == 0
    assert f'pip install "laptime[{extra}]"' in err
    assert not db.exists()  # nothing ran, nothing was stored
    code, _, err = run_cli(capsys, "bench", "--suite", "mnist1d", "-a", "adamw", "--max-steps", "2", "--db", str(db),
                           "--log", kind, "--json")
    assert code == 2 and f'pip install "laptime[{extra}]"' in err and not db.exists()


def test_unknown_logger_on_the_command_line(capsys, tmp_path):
    code, _, err = run_cli(capsys, "bench", "--log", "neptune", "--db", str(tmp_path / "r.sqlite"))
    assert code == 2 and "unknown logger 'neptune'" in err and not (tmp_path / "r.sqlite").exists()


# ---- the hook: a tracker never breaks a trial -------------------------------------------------------


class _Recording:
    """A fake tracker backend: records what it is told; raises where asked."""

    calls: list = []
    fail_in: str | None = None

    @staticmethod
    def check(spec):
        _Recording.calls.append(("check", spec.target))

    class TrialLogger:
        def __init__(self, spec, context):
            self.spec = spec
            _Recording.calls.append(("open", context.name, dict(context.hyperparameters), context.plan_key))

        def _maybe_fail(self, where):
            if _Recording.fail_in == where:
                raise OSError(f"disk full in {where}")

        def evaluated(self, record, reached):
            self._maybe_fail("evaluated")
            _Recording.calls.append(("eval", record.step, record.metrics["validation/accuracy"]))

        def finish(self, result):
            self._maybe_fail("finish")
            _Recording.calls.append(("finish", final_values(result)))

        def close(self, record, status):
            _Recording.calls.append(("close", getattr(record, "trial_id", None), status))


@pytest.fixture
def fake_backend(monkeypatch):
    import laptime.loggers as loggers_mod

    _Recording.calls, _Recording.fail_in = [], None
    monkeypatch.setattr(loggers_mod, "_backend", lambda kind: _Recording)
    return _Recording


def test_hook_feeds_every_eval_and_the_outcome(fake_backend, tmp_path):
    seen = []

    class Display:  # the live display still gets everything
        def start(self, *a): seen.append("start")
        def step(self, *a): seen.append("step")
        def evaluated(self, *a): seen.append("eval")
        def finish(self, *a): seen.append("finish")

    record = inline(tmp_path, ["tensorboard:a"], progress_factory=Display).run([plan(3)])[0]
    calls = fake_backend.calls
    assert calls[0] == ("check", "a")
    assert calls[1][0] == "open" and calls[1][1] == "toy/base@cpu · sgd_nesterov · seed 3"
    assert calls[1][2] == HP and calls[1][3] == record.plan_key
    assert [c[1:] for c in calls if c[0] == "eval"] == [(e.step, e.metrics["validation/accuracy"])
                                                         for e in record.evals]
    assert [e.step for e in record.evals] == [2, 4, 6]
    finals = next(c[1] for c in calls if c[0] == "finish")
    assert finals["steps"] == 6 and finals["submission_time"] == record.submission_time
    assert finals["reached"] == (1.0 if record.outcome == Outcome.REACHED else 0.0)
    assert calls[-1] == ("close", record.trial_id, "finished")
    assert seen.count("eval") == 3 and seen[0] == "start" and seen[-1] == "finish"


@pytest.mark.parametrize("where", ["evaluated", "finish"])
def test_a_failing_tracker_is_switched_off_and_the_trial_goes_on(fake_backend, tmp_path, where):
    fake_backend.fail_in = where
    with pytest.warns(LoggerWarning, match=f"disk full in {where}; switched off"):
        record = inline(tmp_path, ["tensorboard:a"]).run([plan(0)])[0]
    assert record.outcome != Outcome.FAILED and record.steps == 6 and len(record.evals) == 3
    with ResultsStore(tmp_path / "r.sqlite") as store:
        assert len(store.trials()) == 1
    closes = [c for c in fake_backend.calls if c[0] == "close"]
    assert closes == [("close", None, "failed")]  # closed once, when it failed


def test_interrupted_trial_ends_the_runs_as_killed(fake_backend, tmp_path):
    class Interrupt:
        def start(self, *a): pass
        def step(self, step, t):
            if step == 3:
                raise KeyboardInterrupt
        def evaluated(self, *a): pass
        def finish(self, *a): pass

    with pytest.raises(KeyboardInterrupt):
        inline(tmp_path, ["tensorboard:a"], progress_factory=Interrupt).run([plan(0)])
    assert fake_backend.calls[-1] == ("close", None, "killed")
    with ResultsStore(tmp_path / "r.sqlite") as store:
        assert store.trials() == []


def test_loggers_unit_isolation():
    class Broken:
        def evaluated(self, *a): raise RuntimeError("x")
        def close(self, *a): raise RuntimeError("y")  # closing a broken tracker must not raise either

    hook = TrialLoggers([(LoggerSpec("wandb"), Broken())])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hook.evaluated(types.SimpleNamespace(step=1), False)
        hook.evaluated(types.SimpleNamespace(step=2), False)  # switched off: no second warning
        hook.close(None)
    assert [str(w.message) for w in caught] == ["--log wandb: RuntimeError: x; switched off for this trial"]


# ---- TensorBoard ----------------------------------------------------------------------------------


def _accumulator(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def _check_tensorboard_run(folder, record):
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = _accumulator(folder)
    scalars = acc.Tags()["scalars"]
    assert {"validation/accuracy", "validation/loss", "test/accuracy", "time/submission_time", "time/work",
            "final/steps", "final/submission_time", "final/reached"} <= set(scalars)
    events = acc.Scalars("validation/accuracy")
    assert [e.step for e in events] == [e.step for e in record.evals] == [2, 4, 6]
    assert [e.value for e in events] == pytest.approx([e.metrics["validation/accuracy"] for e in record.evals],
                                                      abs=1e-6)
    times = acc.Scalars("time/submission_time")
    assert [e.value for e in times] == pytest.approx([e.submission_time for e in record.evals], rel=1e-5)
    # the events' wall time is the trial's start + submission time ("Relative" axis = submission seconds)
    assert [e.wall_time - events[0].wall_time for e in events] == pytest.approx(
        [e.submission_time - record.evals[0].submission_time for e in record.evals], abs=1e-5)
    robust = acc.Scalars("time/robust_time")
    assert [e.value for e in robust] == pytest.approx([e.robust_time for e in record.evals], rel=1e-5)
    assert acc.Scalars("final/steps")[0].value == record.steps == 6
    # the hparams plugin: hyperparameters and identity of this trial
    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hp = start.session_start_info.hparams
    assert hp["learning_rate"].number_value == pytest.approx(record.hyperparameters["learning_rate"])
    assert hp["seed"].number_value == record.seed and hp["algorithm"].string_value == "sgd_nesterov"
    assert hp["outcome"].string_value == record.outcome.value
    assert hp["plan_key"].string_value == record.plan_key


def test_tensorboard_inline(tmp_path):
    pytest.importorskip("tensorboard")
    root = tmp_path / "tb"
    records = inline(tmp_path, [f"tensorboard:{root}"]).run([plan(0), plan(1)])
    # one run folder per trial; a rerun gets a new folder rather than appending to the old run
    inline(tmp_path, [f"tensorboard:{root}"], resume=False).run([plan(0)])
    base = root / "toy-base-cpu" / "sgd_nesterov"
    assert sorted(p.name for p in base.iterdir()) == ["seed0", "seed0-2", "seed1"]
    for record, name in zip(records, ["seed0", "seed1"]):
        _check_tensorboard_run(base / name, record)
        assert "stored/text_summary" in _accumulator(base / name).Tags()["tensors"]  # the trial id, once stored


def test_tensorboard_in_parallel_workers(tmp_path):
    pytest.importorskip("tensorboard")
    root = tmp_path / "tb"
    plans = [plan(s, study=s, trial_index=0, ruleset="self") for s in range(3)]
    executor = LocalParallelExecutor(tmp_path / "r.sqlite", devices=["cpu", "cpu"], options=OPTIONS,
                                     workloads_factory=toy_workloads, loggers=[f"tensorboard:{root}"])
    records = executor.run(plans)
    base = root / "toy-base-cpu" / "sgd_nesterov"
    assert sorted(p.name for p in base.iterdir()) == [f"study{s}-trial0-seed{s}" for s in range(3)]
    for record, s in zip(records, range(3)):
        folder = base / f"study{s}-trial0-seed{s}"
        _check_tensorboard_run(folder, record)
        # written by a worker process (event file names carry the writer's pid), not by this one
        (event_file,) = [p.name for p in folder.iterdir() if p.name.startswith("events.out.tfevents")]
        assert int(event_file.split(".")[-2]) != os.getpid()


def test_tensorboard_from_laptime_run(capsys, tmp_path):
    pytest.importorskip("tensorboard")
    root, db = tmp_path / "tb", tmp_path / "r.sqlite"
    code, out, err = run_cli(capsys, "run", "-w", "mnist1d", "-a", "adamw", "--budget", "steps", "--max-steps", "20",
                             "--eval-every-steps", "10", "--db", str(db), "--json", "--log", f"tensorboard:{root}")
    assert code == 0, err
    result = json.loads(out)  # stdout stays pure JSON
    (folder,) = (root / "mnist1d-base-cpu" / "adamw").iterdir()
    acc = _accumulator(folder)
    with sqlite3.connect(db) as conn:
        steps = [s for (s,) in conn.execute("SELECT step FROM evals ORDER BY idx")]
    assert steps and steps[0] == 10
    assert [e.step for e in acc.Scalars("validation/accuracy")] == steps
    assert acc.Scalars("validation/accuracy")[-1].value == pytest.approx(
        result["final_metrics"]["validation/accuracy"], abs=1e-6)
    assert acc.Scalars("final/steps")[0].value == result["steps"] == steps[-1]


def test_tensorboard_folder_that_cannot_be_made(capsys, tmp_path):
    pytest.importorskip("tensorboard")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run_cli(capsys, "run", "-w", "mnist1d", "-a", "adamw", "--max-steps", "2",
                           "--db", str(tmp_path / "r.sqlite"), "--log", f"tensorboard:{blocker / 'tb'}")
    assert code == 2 and "cannot create the folder" in err and err.strip().count("\n") == 0
    assert not (tmp_path / "r.sqlite").exists()


# ---- MLflow ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("store", ["folder", "sqlite"])
def test_mlflow_local_store(tmp_path, monkeypatch, store):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    if store == "folder":  # MLflow's classic file store (MLflow 3 wants an opt-in for it)
        monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
        target, uri = tmp_path / "mlruns", (tmp_path / "mlruns").resolve().as_uri()
    else:
        pytest.importorskip("sqlalchemy")
        target, uri = tmp_path / "mlflow.db", f"sqlite:///{(tmp_path / 'mlflow.db').resolve()}"
    bad = plan(5, hyperparameters={})  # no learning rate: the trial fails (a recorded outcome)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # MLflow's notes on its file store
        records = inline(tmp_path, [f"mlflow:{target}"]).run([plan(0), plan(1), bad])
        client = MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name("laptime")
        runs = client.search_runs([experiment.experiment_id], max_results=10)
        by_trial = {int(r.data.tags["laptime.trial_id"]): r for r in runs}
        assert sorted(by_trial) == sorted(r.trial_id for r in records)
        for record in records:
            run = by_trial[record.trial_id]
            tags, params = run.data.tags, run.data.params
            assert run.info.run_name == f"toy/base@cpu · sgd_nesterov · seed {record.seed}"
            assert tags["laptime.workload"] == "toy/base@cpu" and tags["laptime.algorithm"] == "sgd_nesterov"
            assert tags["laptime.seed"] == str(record.seed) and tags["laptime.plan_key"] == record.plan_key
            assert tags["laptime.outcome"] == record.outcome.value
            assert params == {k: str(v) for k, v in record.hyperparameters.items()}
            assert run.data.metrics["final/steps"] == record.steps
            if record.outcome == Outcome.FAILED:
                assert run.info.status == "FAILED" and not record.evals
                continue
            assert run.info.status == "FINISHED"
            history = sorted(client.get_metric_history(run.info.run_id, "validation/accuracy"), key=lambda m: m.step)
            assert [m.step for m in history] == [e.step for e in record.evals] == [2, 4, 6]
            assert [m.value for m in history] == pytest.approx([e.metrics["validation/accuracy"] for e in record.evals])
            sub = client.get_metric_history(run.info.run_id, "time/submission_time")
            assert sorted(m.value for m in sub) == pytest.approx([e.submission_time for e in record.evals])
            assert run.data.metrics["final/submission_time"] == pytest.approx(record.submission_time)


def test_mlflow_experiment_from_the_environment(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "my-study")
    check_loggers(parse_loggers([f"mlflow:{tmp_path / 'm.db'}"]))  # created up front, before any worker
    client = MlflowClient(tracking_uri=f"sqlite:///{(tmp_path / 'm.db').resolve()}")
    assert client.get_experiment_by_name("my-study") is not None


def test_mlflow_file_store_refused_is_one_line(capsys, tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    db = tmp_path / "r.sqlite"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        code, _, err = run_cli(capsys, "run", "-w", "mnist1d", "-a", "adamw", "--max-steps", "2", "--db", str(db),
                               "--log", f"mlflow:{tmp_path / 'mlruns'}")
    if code == 0:  # an MLflow that still writes new file stores
        assert int(mlflow.__version__.split(".")[0]) < 3 or "MLFLOW_ALLOW_FILE_STORE" not in err
        return
    assert code == 2 and err.strip().count("\n") == 0
    assert "refuses new file stores" in err and f"mlflow:{tmp_path / 'mlruns'}.db" in err
    assert not db.exists()


# ---- Weights & Biases (offline) ------------------------------------------------------------------


def read_wandb_records(path):
    """The records of an offline run's ``.wandb`` file: LevelDB's log format (32 KiB blocks of
    chunks with a 7-byte header) after a 7-byte ``:W&B`` header, each record one of W&B's protobuf
    ``Record`` messages."""
    import struct

    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    records, pending, pos, block = [], b"", 7, 32768
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if length == 0 and kind == 0:
            pos += left
            continue
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


def test_wandb_offline(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    records = inline(tmp_path, ["wandb:laptime-test"]).run([plan(0), plan(1)])
    runs = sorted((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 2  # one run per trial, on disk for `wandb sync`
    seen = []
    for run_dir in runs:
        (run_file,) = run_dir.glob("run-*.wandb")
        content = read_wandb_records(run_file)
        (run,) = [r.run for r in content if r.WhichOneof("record_type") == "run"]
        config = {item.key: json.loads(item.value_json) for item in run.config.update}
        summary = {}
        for r in content:
            if r.WhichOneof("record_type") == "summary":
                summary.update({_key(item): json.loads(item.value_json) for item in r.summary.update})
        history = [{_key(item): json.loads(item.value_json) for item in r.history.item}
                   for r in content if r.WhichOneof("record_type") == "history"]
        record = next(r for r in records if r.trial_id == summary["trial_id"])
        seen.append(record.trial_id)
        assert run.project == "laptime-test" and run.display_name == f"toy/base@cpu · sgd_nesterov · seed {record.seed}"
        assert config["hyperparameters"] == record.hyperparameters
        assert config["plan_key"] == record.plan_key and config["seed"] == record.seed
        assert [h["_step"] for h in history] == [e.step for e in record.evals] == [2, 4, 6]
        assert [h["validation/accuracy"] for h in history] == pytest.approx(
            [e.metrics["validation/accuracy"] for e in record.evals])
        assert [h["time/submission_time"] for h in history] == pytest.approx(
            [e.submission_time for e in record.evals])
        assert summary["outcome"] == record.outcome.value and summary["final/steps"] == record.steps
        assert summary["final/submission_time"] == pytest.approx(record.submission_time)
    assert sorted(seen) == sorted(r.trial_id for r in records)
    with sqlite3.connect(tmp_path / "r.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM trials").fetchone()[0] == 2
