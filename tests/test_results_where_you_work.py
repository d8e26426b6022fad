"""Results in notebooks and files: Parquet export, data frames, HTML tables of scores and stored runs."""

from __future__ import annotations

import json
import math
import re
import sys

import pytest
from test_store import make_trial

from laptime.cli.main import main
from laptime.records import EvalRecord
from laptime.results import ResultsStore, StoredRun, StoreError
from laptime.results.schema import EVAL_FIELDS
from laptime.results.store import TRIAL_EXPORT_COLUMNS
from laptime.scoring import ScoringError, TimeRow, score_records, score_table

INF = math.inf


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def store(tmp_path):
    with ResultsStore(tmp_path / "r.sqlite") as s:
        yield s


@pytest.fixture
def bench_run(store):
    """A stored benchmark: adamw reaches both workloads, sgd only mnist1d (slower), plus an older run."""
    older = store.start_run("laptime run -w mnist1d -a adamw")
    store.add_trial(older, make_trial(plan_key="old"))
    run_id = store.start_run("laptime bench --suite x", {"kind": "bench", "suite": "x", "ruleset": "external",
                                                         "algorithms": ["adamw", "sgd"],
                                                         "score_column": "time_to_target"})
    ids = [
        store.add_trial(run_id, make_trial(algorithm="adamw", plan_key="a1")),
        store.add_trial(run_id, make_trial(algorithm="adamw", variant="cnn", plan_key="a2", time_to_target=20.0,
                                           steps_to_target=400)),
        store.add_trial(run_id, make_trial(algorithm="sgd", plan_key="s1", time_to_target=25.0, steps_to_target=500,
                                           robust_time_to_target=24.0)),
        store.add_trial(run_id, make_trial(algorithm="sgd", variant="cnn", plan_key="s2", outcome="budget",
                                           time_to_target=None, steps_to_target=None)),
    ]
    store.update_run_meta(run_id, {"trial_ids": ids})
    return store, run_id, ids


# ---- Parquet ------------------------------------------------------------------------------------


def test_parquet_round_trip_trials_and_evals(bench_run, tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    store, run_id, ids = bench_run
    out = tmp_path / "out" / "trials.parquet"
    assert store.export_parquet(out) == 5
    back = pd.read_parquet(out)
    assert list(back.columns) == list(TRIAL_EXPORT_COLUMNS)
    assert back["trial_id"].tolist() == [1, *ids]
    assert back["outcome"].tolist() == ["reached", "reached", "reached", "reached", "budget"]
    assert back["algorithm"].tolist() == ["adamw", "adamw", "adamw", "sgd", "sgd"]
    assert back["time_to_target"].iloc[3] == 25.0 and pd.isna(back["time_to_target"].iloc[4])
    assert str(back["steps_to_target"].dtype) == "Int64" and back["steps_to_target"].iloc[2] == 400
    assert pd.isna(back["steps_to_target"].iloc[4])
    assert json.loads(back["hyperparameters"].iloc[0])["betas"] == [0.9, 0.999]  # JSON text, as in the CSV
    # the same rows as the CSV export
    store.export_csv(tmp_path / "trials.csv")
    csv = pd.read_csv(tmp_path / "trials.csv")
    assert csv["plan_key"].tolist() == back["plan_key"].tolist()
    assert csv["submission_time"].tolist() == back["submission_time"].tolist()

    assert store.export_parquet(tmp_path / "evals.parquet", table="evals", run_id=run_id) == 12
    evals = pd.read_parquet(tmp_path / "evals.parquet")
    assert list(evals.columns) == [*EVAL_FIELDS, "accuracy", "grad_norm", "loss", "neg"]
    assert evals["step"].tolist() == [100, 200, 300] * 4
    assert evals["accuracy"].tolist()[:3] == [0.5, 0.8, 0.91]
    assert math.isnan(evals["loss"].iloc[1]) and evals["grad_norm"].iloc[1] == INF and evals["neg"].iloc[2] == -INF
    assert sorted(p.name for p in out.parent.iterdir()) == ["trials.parquet"]  # no temp file left


def test_export_cli_parquet_and_its_errors(bench_run, capsys, tmp_path, monkeypatch):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    store, _, _ = bench_run
    db = str(store.path)
    out = tmp_path / "evals.data"
    code, stdout, err = run_cli(capsys, "export", "--db", db, "--table", "evals", "--format", "parquet",
                                "--out", str(out))
    assert code == 0, err
    assert "wrote 15 evals rows" in stdout
    assert len(pd.read_parquet(out)) == 15
    # the suffix chooses Parquet when --format is not given; anything else stays CSV
    code, _, err = run_cli(capsys, "export", "--db", db, "--out", str(tmp_path / "t.parquet"))
    assert code == 0, err
    assert pd.read_parquet(tmp_path / "t.parquet")["trial_id"].tolist() == [1, 2, 3, 4, 5]
    code, _, err = run_cli(capsys, "export", "--db", db, "--out", str(tmp_path / "t.txt"))
    assert code == 0 and (tmp_path / "t.txt").read_text().startswith("trial_id,run_id,")
    # without pyarrow: one line, exit 2, no file
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    code, _, err = run_cli(capsys, "export", "--db", db, "--format", "parquet", "--out", str(tmp_path / "no.parquet"))
    assert code == 2
    assert err.strip().count("\n") == 0 and 'pip install "laptime[parquet]"' in err and "pyarrow" in err
    assert not (tmp_path / "no.parquet").exists()


# ---- scores as frames and tables ----------------------------------------------------------------


def rows():
    # adamw is fastest on a, sgd on b; lion misses b
    return [TimeRow("adamw", "a", 0, 0, 10.0), TimeRow("adamw", "b", 0, 0, 30.0),
            TimeRow("sgd", "a", 0, 0, 20.0), TimeRow("sgd", "b", 0, 0, 15.0),
            TimeRow("lion", "a", 0, 0, 10.0), TimeRow("lion", "b", 0, 0, INF)]


def test_score_report_to_pandas():
    pytest.importorskip("pandas")
    report = score_table(rows(), baseline="sgd")
    df = report.to_pandas()
    assert list(df.columns) == ["algorithm", "rank", "score", "geomean_speedup", "a", "b"]
    assert df["algorithm"].tolist() == report.algorithms  # best first
    for _, row in df.iterrows():
        assert row["score"] == report.scores[row["algorithm"]] and row["rank"] == report.ranks[row["algorithm"]]
    by = df.set_index("algorithm")
    assert by.loc["adamw", "a"] == 10.0 and by.loc["sgd", "b"] == 15.0 and by.loc["lion", "b"] == INF
    assert by.loc["sgd", "geomean_speedup"] == pytest.approx(1.0)
    ratios = report.to_pandas("ratios").set_index("algorithm")
    assert ratios.loc["sgd", "a"] == pytest.approx(2.0) and ratios.loc["adamw", "b"] == pytest.approx(2.0)
    assert report.to_pandas("speedups").set_index("algorithm").loc["adamw", "a"] == pytest.approx(2.0)
    with pytest.raises(ScoringError, match="times, ratios or speedups"):
        report.to_pandas("nope")
    with pytest.raises(ScoringError, match="baseline"):
        score_table(rows()).to_pandas("speedups")
    boot = score_table(rows(), n_bootstrap=20).to_pandas()
    assert list(boot.columns)[:7] == ["algorithm", "rank", "score", "score_ci_low", "score_ci_high",
                                      "rank_ci_low", "rank_ci_high"]
    assert (boot["score_ci_low"] <= boot["score_ci_high"]).all()


def test_score_report_html_table():
    report = score_table([*rows(), TimeRow("<b>x</b>", "a", 0, 0, 40.0), TimeRow("<b>x</b>", "b", 0, 0, 40.0)])
    html = report._repr_html_()
    assert html.startswith("<table") and html.endswith("</table>")
    body_rows = re.findall(r"<tr>(.*?)</tr>", html.split("<tbody>")[1])
    assert len(body_rows) == 4
    # one row per algorithm, best first, with its score and times; names are escaped
    names = [re.search(r"<b>(.*?)</b>", r).group(1) for r in body_rows]
    assert names == ["adamw", "sgd", "lion", "&lt;b&gt;x&lt;/b&gt;"] == [
        n.replace("<", "&lt;").replace(">", "&gt;") for n in report.algorithms]
    assert f"{report.scores['adamw']:.3f}" in body_rows[0] and "∞" in body_rows[2]
    assert "<th>a (s)</th>" in html and "raw submission time to target" in html


# ---- stored runs --------------------------------------------------------------------------------


def test_runs_frame(bench_run):
    pytest.importorskip("pandas")
    store, run_id, _ = bench_run
    df = store.runs_frame()
    assert list(df.columns) == ["run_id", "created_at", "command", "kind", "suite", "ruleset", "algorithms",
                                "n_trials", "trials", "meta"]
    assert df["run_id"].tolist() == [1, run_id]
    assert df["kind"].tolist() == ["run", "bench"]
    assert df["n_trials"].tolist() == [1, 4] and df["trials"].tolist() == [1, 4]
    assert df["algorithms"].iloc[1] == ["adamw", "sgd"]


def test_stored_run_tables_score_and_html(bench_run):
    pd = pytest.importorskip("pandas")
    store, run_id, ids = bench_run
    run = store.run()  # the latest benchmark
    assert isinstance(run, StoredRun) and run.run_id == run_id and len(run) == 4 and run.kind == "bench"
    assert store.run(1).trials[0].plan_key == "old"  # a plain run: its own trials
    with pytest.raises(StoreError, match="no run 99"):
        store.run(99)

    trials = run.to_pandas()
    assert list(trials.columns) == list(TRIAL_EXPORT_COLUMNS)
    assert trials["trial_id"].tolist() == ids
    assert trials["outcome"].tolist() == ["reached", "reached", "reached", "budget"]
    assert trials["hyperparameters"].iloc[0]["lr"] == 1e-3

    evals = run.to_pandas("evals")
    assert list(evals.columns)[:9] == ["trial_id", "workload", "variant", "config", "algorithm", "study",
                                       "trial_index", "seed", "idx"]
    assert len(evals) == 12 and evals["algorithm"].tolist() == ["adamw"] * 6 + ["sgd"] * 6
    assert evals.groupby("trial_id")["accuracy"].max().tolist() == [0.91] * 4

    summary = run.to_pandas("summary").set_index(["workload", "algorithm"])
    assert summary.loc[("mnist1d/base@default", "sgd"), "best_time_to_target"] == 25.0
    assert summary.loc[("mnist1d/base@default", "sgd"), "best_robust_time_to_target"] == 24.0
    assert summary.loc[("mnist1d/cnn@default", "sgd"), "reached"] == 0
    assert pd.isna(summary.loc[("mnist1d/cnn@default", "sgd"), "best_time_to_target"])
    with pytest.raises(StoreError, match="unknown table"):
        run.to_pandas("runs")

    score = run.score(variants=None)  # the benchmark's score column (raw time)
    assert score.column == "time_to_target"
    assert score.algorithms[0] == "adamw"
    assert score.times["sgd"]["mnist1d/cnn"] == INF
    assert score.scores == score_records(run.trials, column="time_to_target", variants=None).scores

    html = run._repr_html_()
    assert f"laptime bench {run_id}" in html and "<table" in html and "4 trials (1 budget, 3 reached)" in html
    body_rows = re.findall(r"<tr>(.*?)</tr>", html.split("<tbody>")[1])
    assert len(body_rows) == 4
    assert [re.search(r"<b>(.*?)</b>", r).group(1) for r in body_rows] == ["adamw", "sgd", "adamw", "sgd"]
    assert "25.00" in body_rows[1] and "—" in body_rows[3]


def test_stored_run_without_runs(store):
    with pytest.raises(StoreError, match="no runs"):
        store.run()


def test_stored_run_evals_with_metric_named_like_a_column(store):
    pytest.importorskip("pandas")
    run_id = store.start_run("laptime run")
    store.add_trial(run_id, make_trial(evals=[EvalRecord(step=1, submission_time=1.0, wall_time=1.0,
                                                         metrics={"seed": 3.0, "accuracy": 0.5})]))
    evals = store.run(run_id).to_pandas("evals")
    assert evals["seed"].tolist() == [7] and evals["metric.seed"].tolist() == [3.0]
