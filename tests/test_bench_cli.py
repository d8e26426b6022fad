"""`laptime bench`, `laptime report` and `laptime score` end to end (small and capped, for speed)."""

import json
import sqlite3

import pytest

from laptime.cli.main import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_bench_runs_scores_reports_and_resumes(capsys, tmp_path):
    db, out_dir = tmp_path / "r.sqlite", tmp_path / "report"
    argv = ["bench", "--suite", "mnist1d", "-a", "nadamw", "-a", "sgd_nesterov", "--ruleset", "external",
            "--studies", "2", "--trials", "2", "--max-steps", "60", "--bootstrap", "200",
            "--db", str(db), "--out", str(out_dir), "--json"]
    code, out, err = run_cli(capsys, *argv)
    assert code == 0, err
    result = json.loads(out)
    # 2 workloads (base + cnn variant) × 2 algorithms × 2 studies × 2 trials
    assert result["trials"] == 16
    assert set(result["algorithms"]) == {"nadamw", "sgd_nesterov"}
    for entry in result["algorithms"].values():
        assert 0.0 <= entry["score"] <= 1.0
    html = (out_dir / "report.html").read_text()
    assert "Leaderboard" in html and "nadamw" in html
    assert (out_dir / "report.md").read_text().startswith("|")
    with sqlite3.connect(db) as conn:
        n_trials = conn.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
        points = conn.execute("SELECT DISTINCT study, hyperparameters FROM trials WHERE algorithm = 'nadamw'"
                              ).fetchall()
    assert n_trials == 16
    # external tuning: each study drew its own points (2 studies × 2 trials = 4 distinct points)
    assert len({hp for _, hp in points}) == 4

    # the same command again reuses every stored trial and gives the same scores
    code, out2, err = run_cli(capsys, *argv)
    assert code == 0, err
    again = json.loads(out2)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM trials").fetchone()[0] == 16
    assert {a: v["score"] for a, v in again["algorithms"].items()} == \
        {a: v["score"] for a, v in result["algorithms"].items()}

    # `laptime report` rebuilds the report of the latest benchmark from the database
    code, out, err = run_cli(capsys, "report", "--db", str(db), "--out", str(tmp_path / "again"), "--bootstrap", "0")
    assert code == 0, err
    assert (tmp_path / "again" / "report.html").exists()
    assert "nadamw" in out


def test_bench_self_tuning_uses_defaults_and_budget_factor(capsys, tmp_path):
    code, out, err = run_cli(capsys, "bench", "--suite", "mnist1d", "-a", "adamw", "--max-steps", "20",
                             "--budget-factor", "2", "--db", str(tmp_path / "r.sqlite"), "--out", str(tmp_path / "o"),
                             "--json")
    assert code == 0, err
    with sqlite3.connect(tmp_path / "r.sqlite") as conn:
        rows = conn.execute("SELECT ruleset, budget_sec, hyperparameters FROM trials ORDER BY id").fetchall()
    assert [r[0] for r in rows] == ["self", "self"]
    assert rows[0][1] == 2 * 2.0  # mnist1d/base budget 2 s × 2
    assert json.loads(rows[0][2])["learning_rate"] == 2e-3


def test_bench_error_paths(capsys, tmp_path):
    db = str(tmp_path / "r.sqlite")
    code, _, err = run_cli(capsys, "bench", "--suite", "nope", "--db", db)
    assert code == 2 and "unknown suite" in err and "smoke" in err
    code, _, err = run_cli(capsys, "bench", "-a", "nadamx", "--db", db)
    assert code == 2 and "unknown algorithm" in err
    code, _, err = run_cli(capsys, "bench", "--studies", "0", "--db", db)
    assert code == 2 and "studies" in err
    code, _, err = run_cli(capsys, "bench", "--device", "cuda:3", "--db", db)
    assert code == 2 and "cuda" in err
    assert not (tmp_path / "r.sqlite").exists()  # every error came before anything was stored


def test_report_without_a_benchmark(capsys, tmp_path):
    code, _, err = run_cli(capsys, "report", "--db", str(tmp_path / "missing.sqlite"))
    assert code == 2 and "no results database" in err
    db = tmp_path / "r.sqlite"
    code, _, err = run_cli(capsys, "run", "-w", "mnist1d", "-a", "adamw", "--max-steps", "5", "--db", str(db),
                           "--quiet")
    assert code == 0, err
    code, _, err = run_cli(capsys, "report", "--db", str(db))
    assert code == 2 and "no finished benchmark" in err
    code, out, err = run_cli(capsys, "report", "--db", str(db), "--all", "--out", str(tmp_path / "o"),
                             "--bootstrap", "0")
    assert code == 0, err


SCORE_CSV = """algorithm,workload,study,trial,time_to_target
a,w1,0,0,10
a,w1,0,1,8
a,w2,0,0,inf
b,w1,0,0,20
b,w2,0,0,30
"""


def test_score_times_csv(capsys, tmp_path):
    path = tmp_path / "times.csv"
    path.write_text(SCORE_CSV)
    code, out, err = run_cli(capsys, "score", "--times", str(path), "--json")
    assert code == 0, err
    result = json.loads(out)
    # a: w1 = min(10, 8) = 8 (fastest trial of the study), w2 missed. b: 20, 30.
    # ratios a: w1 1, w2 inf → area (4-1)/3/2 = 0.5; b: w1 20/8 = 2.5 → (4-2.5)/3/2 = 0.25, w2 1 → 0.5 → 0.75
    assert result["algorithms"]["a"]["score"] == 0.5
    assert result["algorithms"]["b"]["score"] == 0.75
    assert result["algorithms"]["a"]["times"]["w2"] == "inf"
    code, out, _ = run_cli(capsys, "score", "--times", str(path))
    assert code == 0 and "0.7500" in out

    bad = tmp_path / "bad.csv"
    bad.write_text("algorithm,workload,study,time_to_target\na,w1,0,1\n")
    code, _, err = run_cli(capsys, "score", "--times", str(bad))
    assert code == 2 and "trial" in err


def test_score_by_steps(capsys, tmp_path):
    path = tmp_path / "times.csv"
    path.write_text("algorithm,workload,study,trial,time_to_target,steps_to_target\n"
                    "a,w1,0,0,10,400\nb,w1,0,0,20,100\n")
    code, out, err = run_cli(capsys, "score", "--times", str(path), "--by", "steps", "--json")
    assert code == 0, err
    result = json.loads(out)
    # by steps b is fastest (100 vs 400: a's ratio 4 → area 0); by time a is (b's ratio 2 → 2/3)
    assert result["algorithms"]["b"]["score"] == 1.0 and result["algorithms"]["a"]["score"] == 0.0
    code, out, err = run_cli(capsys, "score", "--times", str(path), "--json")
    assert json.loads(out)["algorithms"]["b"]["score"] == 2 / 3


# Crafted examples for `laptime score --times`, with the arithmetic. Score of an algorithm =
# Σ_w (τmax − max(r_w, 1)) / (τmax − 1) / |W| over workloads with r_w ≤ τmax, r_w = t / fastest t.
CRAFTED = [
    (  # ties: both at 10 on w1 (ratio 1 each); on w2 a=5, b=20 → b's ratio is exactly τmax = 4
        "a,w1,0,0,10\nb,w1,0,0,10\na,w2,0,0,5\nb,w2,0,0,20\n", 4.0,
        {"a": 1.0,  # (3/3 + 3/3) / 2
         "b": 0.5},  # (3/3 + (4−4)/3) / 2: ratio 4 counts in ρ(4) but adds no area
    ),
    (  # ∞: a misses w2; everyone misses w2 → it still counts in |W| = 2
        "a,w1,0,0,10\na,w2,0,0,inf\nb,w1,0,0,inf\nb,w2,0,0,inf\n", 4.0,
        {"a": 0.5,  # (1 + 0) / 2
         "b": 0.0},
    ),
    (  # a single algorithm: ratio 1 wherever it reached
        "a,w1,0,0,3\na,w2,0,0,inf\na,w3,0,0,7\n", 4.0,
        {"a": 2 / 3},  # (1 + 0 + 1) / 3
    ),
    (  # τ at the boundaries, one workload: ratios a 1, b 4 (= τmax), c 2.5
        "a,w1,0,0,10\nb,w1,0,0,40\nc,w1,0,0,25\n", 4.0,
        {"a": 1.0, "b": 0.0, "c": 0.5},  # c: (4 − 2.5) / 3
    ),
    (  # the same with τmax = 2: c's ratio 2.5 > τmax adds nothing
        "a,w1,0,0,10\nb,w1,0,0,40\nc,w1,0,0,25\n", 2.0,
        {"a": 1.0, "b": 0.0, "c": 0.0},
    ),
    (  # studies: per study the fastest trial; per workload the median over studies (3 studies)
        # a: study0 min(9, 6) = 6, study1 8, study2 inf → median 8; b: 4, 4, 4 → 4. a's ratio 2 → (4 − 2)/3
        "a,w1,0,0,9\na,w1,0,1,6\na,w1,1,0,8\na,w1,2,0,inf\nb,w1,0,0,4\nb,w1,1,0,4\nb,w1,2,0,4\n", 4.0,
        {"a": 2 / 3, "b": 1.0},
    ),
]


def test_score_times_reproduces_hand_computed_scores(capsys, tmp_path):
    import pytest

    for i, (body, tau_max, expected) in enumerate(CRAFTED):
        path = tmp_path / f"crafted{i}.csv"
        path.write_text("algorithm,workload,study,trial,time_to_target\n" + body)
        code, out, err = run_cli(capsys, "score", "--times", str(path), "--tau-max", str(tau_max), "--json")
        assert code == 0, err
        scores = {a: v["score"] for a, v in json.loads(out)["algorithms"].items()}
        assert scores == pytest.approx(expected, abs=1e-12), (i, scores)


def _stored_benchmark(db):
    """A results database holding one benchmark of synthetic trials (nothing is run): two algorithms,
    a workload and its variant, two studies of two trials, misses, and a target met after the budget."""
    from laptime.records import Outcome, TrialRecord
    from laptime.results import ResultsStore

    records = []
    for a_i, algorithm in enumerate(("alpha", "beta")):
        for variant in ("base", "cnn"):
            for study in (0, 1):
                for trial in (0, 1):
                    k = len(records)
                    reached = (k % 5) != 3
                    late = (k % 7) == 6  # met the target after its budget: stored as a miss
                    ttt = 10.0 + 3 * a_i + 2 * trial - study + (variant == "cnn") if reached or late else None
                    records.append(TrialRecord(
                        workload="mnist1d", variant=variant, config="cpu", workload_version="1", dataset="mnist1d",
                        algorithm=algorithm, algorithm_hash="h", hyperparameters={"learning_rate": 0.001 * (trial + 1)},
                        seed=study * 10 + trial, device="cpu", hardware_fingerprint="fp", hardware={}, versions={},
                        target_metric="accuracy", target_direction="max", target_value=0.6, budget_sec=60.0,
                        outcome=Outcome.REACHED if reached and not late else Outcome.BUDGET,
                        time_to_target=ttt, steps_to_target=None if ttt is None else int(ttt * 10),
                        submission_time=30.0, steps=300, wall_time=40.0, started_at="2026-01-01T00:00:00+00:00",
                        finished_at="2026-01-01T00:01:00+00:00", ruleset="external", study=study, trial_index=trial,
                        budget_mode="steps", robust_time_to_target=None if ttt is None else ttt * 0.9,
                        work_to_target=None if ttt is None else ttt * 100, reference_cost=0.01 + 0.001 * (k % 3)))
    with ResultsStore(db) as store:
        run_id = store.start_run("laptime bench (synthetic)", {"kind": "bench", "score_column": "time_to_target"})
        for record in records:
            store.add_trial(run_id, record)
        store.update_run_meta(run_id, {"trial_ids": [r.trial_id for r in records]})
    return records


def test_laptime_export_is_accepted_by_laptime_score(capsys, tmp_path):
    db, csv_path = tmp_path / "r.sqlite", tmp_path / "t.csv"
    _stored_benchmark(db)
    code, _, err = run_cli(capsys, "export", "--db", str(db), "--table", "trials", "--out", str(csv_path))
    assert code == 0, err
    for by in ("time", "steps", "robust"):
        code, from_csv, err = run_cli(capsys, "score", "--times", str(csv_path), "--by", by, "--json")
        assert code == 0, err
        code, from_db, err = run_cli(capsys, "score", "--db", str(db), "--by", by, "--json")
        assert code == 0, err
        from_csv, from_db = json.loads(from_csv), json.loads(from_db)
        # the same trials give the same leaderboard: workload/variant keys, misses and robust times alike
        assert from_csv["workloads"] == from_db["workloads"] == ["mnist1d"]
        assert from_csv["variant_gate"] == from_db["variant_gate"]
        assert from_csv["column"] == from_db["column"]
        assert from_csv["algorithms"] == from_db["algorithms"], by
    code, out, err = run_cli(capsys, "score", "--times", str(csv_path))
    assert code == 0, err
    assert "alpha" in out and "beta" in out


def test_score_text_shows_intervals_ranks_and_speedups(capsys, tmp_path):
    path = tmp_path / "times.csv"
    path.write_text("algorithm,workload,study,trial,time_to_target\n"
                    + "".join(f"{a},{w},{s},0,{t * (1 + 0.1 * s)}\n" for a, ts in (("a", (10, 40, 30)), ("b", (20, 10, 30)))
                              for w, t in zip(("w1", "w2", "w3"), ts) for s in range(4)))
    argv = ["score", "--times", str(path), "--bootstrap", "200", "--baseline", "a"]
    code, as_json, err = run_cli(capsys, *argv, "--json")
    assert code == 0, err
    result = json.loads(as_json)
    code, text, err = run_cli(capsys, *argv)
    assert code == 0, err
    lines = text.splitlines()
    assert "rank" in lines[0] and "score 95% CI" in lines[0] and "rank 95% CI" in lines[0] and "speedup vs a" in lines[0]
    for name, entry in result["algorithms"].items():
        row = next(line for line in lines[2:] if line.split()[1:2] == [name])
        lo, hi = entry["score_ci"]
        rank_lo, rank_hi = entry["rank_ci"]
        assert row.split()[0] == str(entry["rank"])
        assert f"[{lo:.4f}, {hi:.4f}]" in row and f"[{rank_lo}, {rank_hi}]" in row
        assert f"{entry['geomean_speedup']:.2f}x" in row
    # per-workload speedups: b over a on w2 is 40/10 = 4
    b_row = [line for line in lines if line.startswith("b ")][-1]
    assert b_row.split()[1:] == [f"{result['algorithms']['b']['speedups'][w]:.2f}x" for w in ("w1", "w2", "w3")]
    assert "4.00x" in b_row


def test_bench_prints_a_plain_line_per_trial_when_not_a_terminal(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    argv = ["bench", "--suite", "mnist1d", "-a", "adamw", "--max-steps", "10", "--bootstrap", "0",
            "--db", str(tmp_path / "r.sqlite"), "--out", str(tmp_path / "o")]
    code, out, err = run_cli(capsys, *argv)
    assert code == 0, err
    lines = err.splitlines()
    assert "benchmark: 2 trial(s)" in lines
    assert any(line.startswith("[1/2] mnist1d/base@cpu · adamw") for line in lines), err
    assert any(line.startswith("[2/2] mnist1d/cnn@cpu · adamw") for line in lines), err
    assert any(line.startswith("benchmark: 2/2 trials done in ") for line in lines), err
    assert "\x1b[" not in err
    code, out, err = run_cli(capsys, *argv)  # again: both trials reused, said in one line
    assert code == 0, err
    assert any(line.startswith("[2/2] reused 2 trial(s) already stored") for line in err.splitlines()), err


@pytest.mark.parametrize("argv", [
    ["--help"],
    ["list"],
    ["list", "--json"],
    ["data", "list"],
    ["score", "--times", "{csv}", "--bootstrap", "50"],
    ["score", "--times", "{csv}", "--json"],
    ["export", "--db", "{db}", "--out", "{tmp}/t2.csv"],
    ["report", "--db", "{db}", "--out", "{tmp}/report", "--bootstrap", "0"],
    ["run", "-w", "mnist1d", "-a", "adamw", "--max-steps", "2", "--quiet", "--db", "{db}"],
], ids=lambda argv: " ".join(argv[:2]))
def test_output_into_a_closed_pipe_ends_quietly(tmp_path, argv):
    """`laptime ... | head`: the reader is gone before laptime writes; no traceback, status 141."""
    import os
    import subprocess
    import sys

    db, csv_path = tmp_path / "r.sqlite", tmp_path / "t.csv"
    _stored_benchmark(db)
    csv_path.write_text(SCORE_CSV)
    argv = [a.format(csv=csv_path, db=db, tmp=tmp_path) for a in argv]
    if argv[0] == "list":  # the listing's cache ready, as after a first `laptime list`
        assert main(["list", "--json"]) == 0
    read, write = os.pipe()
    os.close(read)  # the reader went away before the first byte
    # stdout block-buffered as usual (PYTHONUNBUFFERED would write, and fail, earlier)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    proc = subprocess.run([sys.executable, "-m", "laptime", *argv], stdout=write, stderr=subprocess.PIPE, text=True,
                          timeout=300, env=env)
    os.close(write)
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr
    assert "BrokenPipe" not in proc.stderr, proc.stderr
    # 141 = 128 + SIGPIPE; --help's text may fit argparse's own write, which ignores the closed pipe
    assert proc.returncode == 141 or (argv == ["--help"] and proc.returncode == 0), proc.stderr
