"""`laptime.bench(...)`: the Python API of a benchmark, and `laptime bench` as a thin wrapper over it."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

import laptime
from laptime.benchmark import BenchmarkError, BenchmarkResult, prepare
from laptime.cli.main import main

QUICK = dict(suite="mnist1d", algorithms=["nadamw", "adamw"], budget="steps", max_steps=60, bootstrap=200,
             quiet=True)


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> BenchmarkResult:
    folder = tmp_path_factory.mktemp("api")
    return laptime.bench(db=folder / "r.sqlite", **QUICK)


def test_import_laptime_stays_light():
    code = "import sys, laptime; laptime.bench; assert 'torch' not in sys.modules, 'torch'; print('ok')"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
    assert "bench" in dir(laptime)
    with pytest.raises(AttributeError):
        laptime.no_such_thing  # noqa: B018


def test_the_result_object(result, tmp_path):
    assert isinstance(result, BenchmarkResult)
    assert result.algorithms and set(result.algorithms) == {"nadamw", "adamw"}
    assert len(result.trials) == 4 and all(r.trial_id is not None and r.evals for r in result.trials)
    assert result.budget_mode == "steps" and result.column == "robust_time_to_target"
    assert result.executor == "inline" and result.devices == ["cpu"] and result.threads["threads"] == 1
    assert set(result.scores) == {"nadamw", "adamw"} and all(0 <= v <= 1 for v in result.scores.values())
    assert sorted(result.ranks.values())[0] == 1
    for name, (lo, hi) in result.intervals.items():  # bootstrap intervals around each score
        assert lo <= result.scores[name] + 1e-12 and result.scores[name] <= hi + 1e-12
    assert set(result.times["nadamw"]) == set(result.score.workloads)
    assert all(v > 0 or math.isinf(v) for v in result.times["adamw"].values())
    assert sum(result.outcomes.values()) == 4
    # the stored run is the same
    assert result.run.meta["kind"] == "bench" and result.run.meta["executor"] == "inline"
    assert result.run.meta["trial_ids"] == [r.trial_id for r in result.trials]
    # tables
    board = result.to_pandas()
    assert list(board["algorithm"]) == result.algorithms and {"score", "score_ci_low", "score_ci_high"} <= set(board)
    assert len(result.to_pandas("trials")) == 4 and len(result.to_pandas("summary")) == 4
    assert set(result.to_pandas("evals")["algorithm"]) == {"nadamw", "adamw"}
    # the report, written on demand
    html, md = result.report(tmp_path / "report")
    assert html.read_text().count("nadamw") > 0 and md.read_text().startswith("|")
    assert result.report_paths == (html, md)
    # in a notebook: the leaderboard, the facts and the per-workload table
    page = result._repr_html_()
    assert "laptime-score" in page and "laptime-run" in page and "inline executor" in page
    assert repr(result).startswith(f"<BenchmarkResult run {result.run_id}: 4 trials")
    as_dict = result.to_dict()
    assert json.loads(json.dumps(as_dict, allow_nan=False))["trials"] == 4 and as_dict["executor"] == "inline"


def test_a_second_benchmark_reuses_the_stored_trials(result):
    again = laptime.bench(db=result.db, **QUICK)
    assert again.run_id != result.run_id
    assert [r.trial_id for r in again.trials] == [r.trial_id for r in result.trials]
    assert again.scores == pytest.approx(result.scores)


def test_the_cli_prints_what_the_api_returns(result, capsys, tmp_path):
    code, out, err = run_cli(capsys, "bench", "--suite", "mnist1d", "-a", "nadamw", "-a", "adamw", "--budget", "steps",
                             "--max-steps", "60", "--bootstrap", "200", "--db", str(result.db), "--out",
                             str(tmp_path / "o"), "--json")
    assert code == 0, err
    printed = json.loads(out)
    assert printed["trials"] == 4 and printed["executor"] == "inline" and printed["db"] == str(result.db)
    assert {a: v["score"] for a, v in printed["algorithms"].items()} == pytest.approx(result.scores)
    assert printed["report"] == str(tmp_path / "o" / "report.html")


@pytest.mark.parametrize("kwargs, message", [
    (dict(executor="cluster"), "unknown executor 'cluster'"),
    (dict(executor="inline", device="cpu,cpu"), "one trial at a time"),
    (dict(executor="local", device="cpu,cpu", workers=3), "does not match the 2 devices"),
    (dict(partition="gpu"), "--partition: not an option of --executor inline"),
    (dict(executor="ray", partition="gpu"), "--partition: not an option of --executor ray"),
    (dict(ruleset="both"), "ruleset must be external or self"),
    (dict(by="speed"), "by must be auto"),
    (dict(workers=0), "--workers must be an integer >= 1"),
    (dict(claim_lease=0), "--claim-lease must be > 0"),
])
def test_bad_arguments_are_one_line_errors_before_anything_is_stored(tmp_path, kwargs, message):
    db = tmp_path / "r.sqlite"
    with pytest.raises(ValueError) as info:
        prepare("mnist1d", ["adamw"], db=db, quiet=True, **kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not db.exists()


def test_a_db_in_a_missing_folder_is_refused(tmp_path):
    with pytest.raises(BenchmarkError, match="does not exist"):
        laptime.bench("mnist1d", "adamw", db=tmp_path / "no" / "r.sqlite", quiet=True)
    assert not (tmp_path / "no").exists()
