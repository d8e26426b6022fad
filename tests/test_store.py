"""Tests for the results store (laptime.results): round trips, filters, atomicity, versions, export."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import math
import os
import pathlib
import sqlite3
import subprocess
import sys
import textwrap

import pytest

import laptime.results.store as store_mod
from laptime.records import EvalRecord, Outcome, TrialRecord
from laptime.results import SCHEMA_VERSION, ResultsStore, StoreError, default_store_path
from laptime.results.schema import EVAL_FIELDS, TRIAL_FIELDS
from laptime.results.store import TRIAL_EXPORT_COLUMNS

NAN, INF = math.nan, math.inf


def make_trial(**overrides) -> TrialRecord:
    fields = dict(
        workload="mnist1d",
        variant="base",
        config="default",
        workload_version="1",
        dataset="mnist1d-v1",
        algorithm="adamw",
        algorithm_hash="abc123",
        hyperparameters={"lr": 1e-3, "betas": [0.9, 0.999], "schedule": {"warmup": 0.05}},
        seed=7,
        device="cpu",
        hardware_fingerprint="cpu-x86",
        hardware={"cpu": "x86", "threads": 16},
        versions={"torch": "2.4.0", "laptime": "0.1.0"},
        target_metric="accuracy",
        target_direction="max",
        target_value=0.9,
        budget_sec=60.0,
        outcome=Outcome.REACHED,
        time_to_target=12.5,
        steps_to_target=300,
        submission_time=12.5,
        steps=300,
        wall_time=14.0,
        started_at="2025-01-01T00:00:00+00:00",
        finished_at="2025-01-01T00:00:14+00:00",
        ruleset="external",
        study=0,
        trial_index=1,
        plan_key="mnist1d/base/adamw/s0/t1",
        evals=[
            EvalRecord(step=100, submission_time=4.0, wall_time=4.5,
                       metrics={"loss": 1.5, "accuracy": 0.5}, eval_duration=0.25),
            EvalRecord(step=200, submission_time=8.0, wall_time=9.0,
                       metrics={"loss": NAN, "accuracy": 0.8, "grad_norm": INF}, eval_duration=0.3),
            EvalRecord(step=300, submission_time=12.5, wall_time=14.0,
                       metrics={"loss": 0.2, "accuracy": 0.91, "neg": -INF}, eval_duration=0.2),
        ],
    )
    fields.update(overrides)
    return TrialRecord(**fields)


def canon(obj):
    """Make NaN compare equal to NaN (and keep everything else as is) for record comparison."""
    if isinstance(obj, float) and math.isnan(obj):
        return "<nan>"
    if isinstance(obj, dict):
        return {k: canon(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [canon(v) for v in obj]
    return obj


def as_comparable(trial: TrialRecord, ids: bool = False) -> dict:
    d = dataclasses.asdict(trial)
    if not ids:
        d.pop("trial_id"), d.pop("run_id")
    return canon(d)


def raw_count(path, table: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    finally:
        conn.close()


@pytest.fixture
def db(tmp_path) -> pathlib.Path:
    return tmp_path / "sub" / "results.sqlite"


@pytest.fixture
def store(db):
    with ResultsStore(db) as s:
        yield s


# ---- round trip ---------------------------------------------------------------------------------


def test_schema_covers_every_trial_record_field():
    stored_elsewhere = {"evals", "trial_id", "run_id"}
    record_fields = [f.name for f in dataclasses.fields(TrialRecord) if f.name not in stored_elsewhere]
    assert list(TRIAL_FIELDS) == record_fields


def test_round_trip_with_nan_and_inf(store, db):
    assert db.parent.is_dir()  # parent directory created
    run_id = store.start_run("laptime run mnist1d adamw", meta={"argv": ["run"], "x": INF})
    trial = make_trial()
    original = as_comparable(trial)
    trial_id = store.add_trial(run_id, trial)
    assert trial.trial_id == trial_id and trial.run_id == run_id

    back = store.get_trial(trial_id)
    assert isinstance(back.outcome, Outcome) and back.outcome is Outcome.REACHED
    assert (back.trial_id, back.run_id) == (trial_id, run_id)
    assert as_comparable(back) == original
    assert math.isnan(back.evals[1].metrics["loss"])
    assert back.evals[1].metrics["grad_norm"] == INF
    assert back.evals[2].metrics["neg"] == -INF
    assert [e.step for e in back.evals] == [100, 200, 300]
    assert back.hyperparameters["schedule"] == {"warmup": 0.05}

    no_evals = store.get_trial(trial_id, with_evals=False)
    assert no_evals.evals == [] and no_evals.workload == "mnist1d"
    assert as_comparable_eval(store.evals(trial_id)[1]) == as_comparable_eval(trial.evals[1])


def as_comparable_eval(ev: EvalRecord) -> dict:
    return canon(dataclasses.asdict(ev))


def test_round_trip_none_and_nonfinite_scalars(store):
    trial = make_trial(
        outcome="diverged", time_to_target=None, steps_to_target=None, error="loss is nan",
        ruleset=None, study=None, trial_index=None, plan_key=None, run_id=None,
        wall_time=NAN, budget_sec=INF, target_value=-INF, evals=[],
        hyperparameters={"lr": NAN, "clip": INF},
    )
    original = as_comparable(trial)
    tid = store.add_trial(None, trial)
    back = store.get_trial(tid)
    assert back.outcome is Outcome.DIVERGED
    assert back.time_to_target is None and back.steps_to_target is None
    assert back.time_to_target_or_inf == INF
    assert math.isnan(back.wall_time)  # SQLite keeps NaN as NULL; read back as NaN
    assert back.budget_sec == INF and back.target_value == -INF
    assert back.run_id is None and back.evals == []
    assert as_comparable(back) == original


def test_numpy_scalars_are_stored_as_numbers(store):
    np = pytest.importorskip("numpy")
    trial = make_trial(evals=[EvalRecord(step=1, submission_time=1.0, wall_time=1.0,
                                         metrics={"loss": np.float32(0.5), "n": np.int64(3)})],
                       hyperparameters={"lr": np.float64(0.1), "w": np.array([1.0, 2.0])})
    back = store.get_trial(store.add_trial(None, trial))
    assert back.evals[0].metrics == {"loss": 0.5, "n": 3}
    assert back.hyperparameters == {"lr": 0.1, "w": [1.0, 2.0]}


def test_memory_store_and_runs():
    with ResultsStore(":memory:") as s:
        r1 = s.start_run("laptime bench", meta={"workloads": ["a", "b"]})
        r2 = s.start_run("laptime run")
        s.add_trial(r1, make_trial())
        s.add_trial(r1, make_trial())
        runs = s.runs()
        assert [r["id"] for r in runs] == [r1, r2]
        assert runs[0]["command"] == "laptime bench"
        assert runs[0]["meta"] == {"workloads": ["a", "b"]}
        assert runs[1]["meta"] == {}
        assert [r["n_trials"] for r in runs] == [2, 0]
        created = dt.datetime.fromisoformat(runs[0]["created_at"])
        assert created.utcoffset() == dt.timedelta(0)
        assert abs((dt.datetime.now(dt.timezone.utc) - created).total_seconds()) < 60


def test_missing_ids_and_closed_store(db):
    s = ResultsStore(db)
    with pytest.raises(StoreError, match="no trial with id 42"):
        s.get_trial(42)
    assert s.evals(42) == []
    with pytest.raises(StoreError, match="no run 99"):
        s.add_trial(99, make_trial())
    assert s.trials() == []
    s.close()
    s.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        s.trials()


def test_wal_and_foreign_keys_are_on(store):
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert store.conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000


# ---- filters ------------------------------------------------------------------------------------


@pytest.fixture
def filled(store):
    r1 = store.start_run("laptime bench")
    r2 = store.start_run("laptime run")
    specs = [
        (r1, dict(workload="mnist1d", algorithm="adamw", outcome="reached", plan_key="k1")),
        (r1, dict(workload="mnist1d", algorithm="sgd", outcome="budget", plan_key="k2",
                  time_to_target=None, steps_to_target=None)),
        (r1, dict(workload="cifar", variant="small", algorithm="adamw", outcome="failed",
                  error="boom", plan_key="k3", time_to_target=None, steps_to_target=None)),
        (r2, dict(workload="mnist1d", algorithm="adamw", outcome="reached", plan_key="k1")),
    ]
    ids = [store.add_trial(run, make_trial(**kw)) for run, kw in specs]
    return store, (r1, r2), ids


def test_filters(filled):
    store, (r1, r2), ids = filled
    tid = lambda trials: [t.trial_id for t in trials]  # noqa: E731
    assert tid(store.trials()) == ids
    assert tid(store.trials(workload="mnist1d")) == [ids[0], ids[1], ids[3]]
    assert tid(store.trials(workload="cifar")) == [ids[2]]
    assert tid(store.trials(variant="small")) == [ids[2]]
    assert tid(store.trials(algorithm="adamw")) == [ids[0], ids[2], ids[3]]
    assert tid(store.trials(algorithm="adamw", workload="mnist1d")) == [ids[0], ids[3]]
    assert tid(store.trials(run_id=r2)) == [ids[3]]
    assert tid(store.trials(run_id=r1, algorithm="adamw")) == [ids[0], ids[2]]
    assert tid(store.trials(outcome=Outcome.REACHED)) == [ids[0], ids[3]]
    assert tid(store.trials(outcome="budget")) == [ids[1]]
    assert tid(store.trials(outcome=[Outcome.BUDGET, "failed"])) == [ids[1], ids[2]]
    assert tid(store.trials(plan_key="k1")) == [ids[0], ids[3]]
    assert tid(store.trials(algorithm=["sgd", "nope"])) == [ids[1]]
    assert store.trials(algorithm=[]) == []
    assert store.trials(workload="nope") == []
    with pytest.raises(StoreError, match="unknown outcome"):
        store.trials(outcome="reachd")


def test_trials_with_evals(filled):
    store, _, ids = filled
    without = store.trials(workload="mnist1d")
    assert all(t.evals == [] for t in without)
    with_ = store.trials(workload="mnist1d", with_evals=True)
    assert [len(t.evals) for t in with_] == [3, 3, 3]
    assert [e.step for e in with_[1].evals] == [100, 200, 300]
    assert with_[2].evals[2].metrics["accuracy"] == 0.91
    assert store.trials(outcome="failed")[0].error == "boom"


def test_find_by_plan_key(filled):
    store, (r1, r2), ids = filled
    latest = store.find_by_plan_key("k1")
    assert latest is not None and latest.trial_id == ids[3] and latest.run_id == r2
    assert len(latest.evals) == 3
    failed = store.find_by_plan_key("k3")
    assert failed.trial_id == ids[2] and failed.outcome is Outcome.FAILED
    assert store.find_by_plan_key("missing") is None


# ---- atomicity ----------------------------------------------------------------------------------


def test_unserialisable_metric_rolls_back_whole_trial(store, db):
    run_id = store.start_run("laptime run")
    trial = make_trial()
    trial.evals[2].metrics["bad"] = object()  # only the third eval fails, mid-transaction
    with pytest.raises(StoreError, match="cannot store metrics of eval 2"):
        store.add_trial(run_id, trial)
    assert trial.trial_id is None and trial.run_id is None
    assert raw_count(db, "trials") == 0
    assert raw_count(db, "evals") == 0
    assert store.trials() == []
    # The store is still usable.
    good = store.add_trial(run_id, make_trial())
    assert [t.trial_id for t in store.trials()] == [good]
    assert raw_count(db, "evals") == 3


def test_unserialisable_hyperparameters_store_nothing(store, db):
    with pytest.raises(StoreError, match="hyperparameters"):
        store.add_trial(None, make_trial(hyperparameters={"fn": print}))
    assert raw_count(db, "trials") == 0


def test_crash_midway_leaves_nothing_and_other_connection_never_sees_half(store, db, monkeypatch):
    other = ResultsStore(db)  # a second connection, as another process would have
    seen: list[tuple[int, int]] = []
    real_eval_row = store_mod._eval_row

    def spying_eval_row(trial_id, idx, ev):
        # Runs inside the write transaction, after the trial row and earlier evals went in.
        seen.append((len(other.trials()), raw_count(db, "evals")))
        if idx == 2 and fail:
            raise RuntimeError("killed mid-insert")
        return real_eval_row(trial_id, idx, ev)

    monkeypatch.setattr(store_mod, "_eval_row", spying_eval_row)

    fail = True
    with pytest.raises(RuntimeError, match="killed mid-insert"):
        store.add_trial(None, make_trial())
    assert seen == [(0, 0), (0, 0), (0, 0)]
    assert raw_count(db, "trials") == 0 and raw_count(db, "evals") == 0
    assert other.trials() == []

    fail = False
    seen.clear()
    tid = store.add_trial(None, make_trial())
    assert seen == [(0, 0), (0, 0), (0, 0)]  # nothing visible until commit
    got = other.trials(with_evals=True)
    assert [t.trial_id for t in got] == [tid] and len(got[0].evals) == 3
    other.close()


# ---- versions and foreign files -----------------------------------------------------------------


def test_reopen_keeps_data_and_version(db):
    with ResultsStore(db) as s:
        tid = s.add_trial(s.start_run("x"), make_trial())
        assert s.schema_version == SCHEMA_VERSION
    with ResultsStore(str(db)) as s:
        assert s.get_trial(tid).workload == "mnist1d"
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    conn.close()


def test_newer_schema_version_is_refused(db):
    ResultsStore(db).close()
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                     (str(SCHEMA_VERSION + 1),))
    conn.close()
    with pytest.raises(StoreError) as info:
        ResultsStore(db)
    msg = str(info.value)
    assert f"schema version {SCHEMA_VERSION + 1}" in msg
    assert "upgrade laptime" in msg


def test_text_file_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "notes.sqlite"
    content = "these are my notes, not a database\n" * 20
    path.write_text(content)
    with pytest.raises(StoreError, match="not a laptime results database"):
        ResultsStore(path)
    assert path.read_text() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.sqlite"]


def test_other_sqlite_db_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO users (name) VALUES ('ada')")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match=r"not a laptime results database.*users"):
        ResultsStore(path)
    assert path.read_bytes() == before  # not switched to WAL, no tables added


def test_meta_without_version_is_refused(tmp_path):
    path = tmp_path / "odd.db"
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute("INSERT INTO meta VALUES ('owner', 'someone else')")
    conn.close()
    with pytest.raises(StoreError, match="no valid schema_version"):
        ResultsStore(path)


def test_directory_path_is_refused(tmp_path):
    with pytest.raises(StoreError, match="directory"):
        ResultsStore(tmp_path)


# ---- export -------------------------------------------------------------------------------------


def read_csv(path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def test_export_csv_trials(filled, tmp_path):
    store, (r1, r2), ids = filled
    out = tmp_path / "out" / "trials.csv"
    assert store.export_csv(out) == 4
    cols, rows = read_csv(out)
    assert cols == list(TRIAL_EXPORT_COLUMNS)
    assert cols[:3] == ["trial_id", "run_id", "workload"] and "evals" not in cols
    assert [int(r["trial_id"]) for r in rows] == ids
    assert [r["outcome"] for r in rows] == ["reached", "budget", "failed", "reached"]
    assert rows[0]["run_id"] == str(r1) and rows[3]["run_id"] == str(r2)
    assert json.loads(rows[0]["hyperparameters"])["betas"] == [0.9, 0.999]
    assert json.loads(rows[0]["versions"]) == {"torch": "2.4.0", "laptime": "0.1.0"}
    assert float(rows[0]["time_to_target"]) == 12.5 and rows[1]["time_to_target"] == ""
    assert rows[2]["error"] == "boom" and rows[0]["error"] == ""
    assert int(rows[0]["seed"]) == 7
    # Filters narrow the export; no temp files are left behind.
    assert store.export_csv(out, run_id=r2) == 1
    assert [r["trial_id"] for r in read_csv(out)[1]] == [str(ids[3])]
    assert sorted(p.name for p in out.parent.iterdir()) == ["trials.csv"]


def test_export_csv_evals(store, tmp_path):
    t1 = store.add_trial(None, make_trial())
    t2 = store.add_trial(None, make_trial(evals=[
        EvalRecord(step=5, submission_time=NAN, wall_time=1.0, metrics={"zeta": 1.0, "step": 9.0}),
    ]))
    out = tmp_path / "evals.csv"
    assert store.export_csv(out, table="evals") == 4
    cols, rows = read_csv(out)
    assert cols == [*EVAL_FIELDS, "accuracy", "grad_norm", "loss", "metric.step", "neg", "zeta"]
    assert [(r["trial_id"], r["idx"], r["step"]) for r in rows] == [
        (str(t1), "0", "100"), (str(t1), "1", "200"), (str(t1), "2", "300"), (str(t2), "0", "5")]
    assert rows[0]["loss"] == "1.5" and rows[0]["grad_norm"] == "" and rows[0]["zeta"] == ""
    assert rows[1]["loss"] == "nan" and rows[1]["grad_norm"] == "inf"
    assert rows[2]["neg"] == "-inf" and rows[2]["eval_duration"] == "0.2"
    assert rows[3]["metric.step"] == "9.0" and rows[3]["submission_time"] == "nan"
    assert store.export_csv(out, table="evals", workload="none") == 0
    assert read_csv(out) == (list(EVAL_FIELDS), [])
    with pytest.raises(StoreError, match="unknown table"):
        store.export_csv(out, table="runs")


def test_export_failure_keeps_old_file(store, tmp_path, monkeypatch):
    store.add_trial(None, make_trial())
    out = tmp_path / "csv" / "t.csv"
    out.parent.mkdir()
    out.write_text("old\n")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(store_mod.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        store.export_csv(out)
    assert out.read_text() == "old\n"
    assert sorted(p.name for p in out.parent.iterdir()) == ["t.csv"]


def test_to_pandas(filled):
    pd = pytest.importorskip("pandas")
    store, (r1, r2), ids = filled
    df = store.to_pandas()
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == list(TRIAL_EXPORT_COLUMNS)
    assert df["trial_id"].tolist() == ids
    assert df["outcome"].tolist() == ["reached", "budget", "failed", "reached"]
    assert df["hyperparameters"].iloc[0]["lr"] == 1e-3
    assert df.loc[df.algorithm == "sgd", "time_to_target"].isna().all()

    ev = store.to_pandas("evals", run_id=r2)
    assert list(ev.columns) == [*EVAL_FIELDS, "accuracy", "grad_norm", "loss", "neg"]
    assert ev["trial_id"].tolist() == [ids[3]] * 3
    assert ev["accuracy"].tolist() == [0.5, 0.8, 0.91]
    assert math.isnan(ev["loss"].iloc[1]) and ev["grad_norm"].iloc[1] == INF
    assert math.isnan(ev["grad_norm"].iloc[0])  # missing metric -> NaN
    assert store.to_pandas("evals", workload="none").empty


def test_to_pandas_without_pandas(store, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # makes `import pandas` raise ImportError
    with pytest.raises(StoreError, match="pip install pandas"):
        store.to_pandas()


# ---- default path -------------------------------------------------------------------------------


def test_default_store_path(monkeypatch, tmp_path):
    monkeypatch.setenv("LAPTIME_DB", str(tmp_path / "x.sqlite"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_store_path() == tmp_path / "x.sqlite"
    monkeypatch.delenv("LAPTIME_DB")
    assert default_store_path() == tmp_path / "xdg" / "laptime" / "results.sqlite"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_store_path() == tmp_path / "home" / ".local" / "share" / "laptime" / "results.sqlite"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/dir")  # invalid per XDG: ignored
    assert default_store_path() == tmp_path / "home" / ".local" / "share" / "laptime" / "results.sqlite"


# ---- several connections and processes ----------------------------------------------------------


def test_two_stores_on_one_file(db):
    with ResultsStore(db) as a, ResultsStore(db) as b:
        ra = a.start_run("a")
        ta = a.add_trial(ra, make_trial(algorithm="from_a"))
        assert [t.algorithm for t in b.trials()] == ["from_a"]
        rb = b.start_run("b")
        tb = b.add_trial(rb, make_trial(algorithm="from_b"))
        assert [(t.trial_id, t.run_id) for t in a.trials()] == [(ta, ra), (tb, rb)]
        assert [r["command"] for r in a.runs()] == ["a", "b"]
        assert len(a.get_trial(tb).evals) == 3


WRITER = textwrap.dedent("""
    import sys
    from laptime.results import ResultsStore
    sys.path.insert(0, sys.argv[3])
    from test_store import make_trial
    with ResultsStore(sys.argv[1]) as s:
        run = s.start_run("writer " + sys.argv[2])
        for i in range(int(sys.argv[2])):
            s.add_trial(run, make_trial(algorithm="p" + sys.argv[2], trial_index=i))
    assert "torch" not in sys.modules, "laptime.results must not import torch"
""")


def test_concurrent_processes_write_one_file(db):
    tests_dir = str(pathlib.Path(__file__).parent)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(n), tests_dir],
                              env=env, stderr=subprocess.PIPE, text=True) for n in (15, 16)]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    with ResultsStore(db) as s:
        trials = s.trials(with_evals=True)
        assert len(trials) == 31
        assert sorted(t.trial_index for t in trials if t.algorithm == "p15") == list(range(15))
        assert sorted(t.trial_index for t in trials if t.algorithm == "p16") == list(range(16))
        assert all(len(t.evals) == 3 for t in trials)
        assert sorted(r["n_trials"] for r in s.runs()) == [15, 16]


# ---- grouped writes --------------------------------------------------------------------------


def test_transaction_stores_a_run_and_its_trials_all_or_nothing(tmp_path):
    path = tmp_path / "r.sqlite"
    with ResultsStore(path) as store:
        with store.transaction():
            run = store.start_run("laptime import", {"kind": "import"})
            ids = [store.add_trial(run, make_trial(seed=s)) for s in range(3)]
            store.update_run_meta(run, {"trial_ids": ids})
        assert [r["n_trials"] for r in store.runs()] == [3]
        with pytest.raises(RuntimeError, match="disk full"):
            with store.transaction():
                run2 = store.start_run("laptime import", {})
                store.add_trial(run2, make_trial(seed=9))
                raise RuntimeError("disk full")
        # nothing of the failed block: neither its run nor its trial
        assert [r["id"] for r in store.runs()] == [run]
        assert len(store.trials()) == 3
        with store.transaction():
            with pytest.raises(StoreError, match="already open"):
                with store.transaction():
                    pass
        store.add_trial(None, make_trial(seed=10))  # single writes work again after the block
        assert len(store.trials()) == 4
    with sqlite3.connect(path) as conn:  # committed for other connections
        assert conn.execute("SELECT COUNT(*) FROM trials").fetchone()[0] == 4
