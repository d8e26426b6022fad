"""Pruning in real benchmarks (MNIST-1D, step budgets, scored by steps): exact pruning gives the
unpruned benchmark's scores with fewer steps, prunes the same trials under every executor, is what
`laptime replay` predicts, and stored pruned trials are reused only by a benchmark that prunes alike."""

from __future__ import annotations

import json

import pytest

import laptime
from laptime.cli.main import main
from laptime.records import Outcome
from laptime.tuning.pruning import PruningPolicy, replay

SUITE = [("mnist1d", "base", "cpu")]
COMMON = dict(algorithms=["adamw", "nadamw"], ruleset="external", studies=2, trials=3, budget="steps", by="steps",
              max_steps=400, bootstrap=200, quiet=True, checkpoint=False)


def outline(records):
    """What must be the same between two runs of one plan set: per plan, outcome, steps, eval steps."""
    return {r.plan_key: (r.outcome.value, r.steps, r.steps_to_target, tuple(e.step for e in r.evals))
            for r in records}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pruning")
    none = laptime.bench(SUITE, db=folder / "none.sqlite", prune="none", **COMMON)
    exact = laptime.bench(SUITE, db=folder / "exact.sqlite", prune="exact", **COMMON)
    return folder, none, exact


def test_exact_pruning_gives_the_unpruned_scores_with_fewer_steps(runs):
    _, none, exact = runs
    assert exact.scores == none.scores and exact.ranks == none.ranks and exact.intervals == none.intervals
    pruned = [r for r in exact.trials if r.outcome is Outcome.PRUNED]
    assert pruned, "nothing was pruned: the test shows nothing"
    assert sum(r.steps for r in exact.trials) < sum(r.steps for r in none.trials)
    assert all(r.measurement["prune"]["stopped_by"] == "exact" for r in pruned)
    assert exact.score.pruning["exact"] and none.score.pruning is None
    assert exact.pruning == {"mode": "exact", "by": "steps_to_target"} and none.pruning == {"mode": "none"}
    assert exact.tuning_cost["total"]["pruned"] == len(pruned)
    assert exact.to_dict()["tuning_cost"]["saved_steps_max"] > 0


def test_replay_of_the_unpruned_run_is_what_the_pruned_run_did(runs):
    _, none, exact = runs
    replayed = replay(none.trials, PruningPolicy("exact", "steps_to_target"))
    assert outline(replayed) == outline(exact.trials)


def test_the_default_under_external_tuning_is_exact_pruning(runs, tmp_path):
    benchmark = laptime.benchmark.prepare(SUITE, db=tmp_path / "d.sqlite", **{**COMMON, "algorithms": ["adamw"]})
    assert benchmark.pruning.mode == "exact" and benchmark.pruning.by == "steps_to_target"
    selftuned = laptime.benchmark.prepare(SUITE, db=tmp_path / "d.sqlite", algorithms=["adamw"], budget="steps")
    assert selftuned.pruning.mode == "none"


def test_worker_processes_prune_what_the_replay_of_an_unpruned_run_says(tmp_path):
    """Two workloads: the CNN variant's trials wait for the MLP's (the lead) and run its best points
    first. Two worker processes prune the same trials at the same steps as the replay of an unpruned
    inline run."""
    suite = [("mnist1d", "base", "cpu"), ("mnist1d", "cnn", "cpu")]
    options = {**COMMON, "algorithms": ["adamw"]}
    none = laptime.bench(suite, db=tmp_path / "none.sqlite", prune="none", **options)
    local = laptime.bench(suite, db=tmp_path / "local.sqlite", prune="exact", executor="local", workers=2, **options)
    assert outline(replay(none.trials, PruningPolicy("exact", "steps_to_target"))) == outline(local.trials)
    assert any(r.outcome is Outcome.PRUNED and r.variant == "cnn" for r in local.trials)
    assert local.scores == none.scores


def test_a_benchmark_reuses_pruned_trials_only_when_it_prunes_alike(runs, tmp_path):
    folder, none, exact = runs
    db = tmp_path / "mixed.sqlite"
    first = laptime.bench(SUITE, db=db, prune="exact", **COMMON)
    n_pruned = sum(r.outcome is Outcome.PRUNED for r in first.trials)
    again = laptime.bench(SUITE, db=db, prune="exact", **COMMON)  # everything reused
    assert [r.trial_id for r in again.trials] == [r.trial_id for r in first.trials]
    full = laptime.bench(SUITE, db=db, prune="none", **COMMON)  # the pruned plans run out now
    new = [r for r in full.trials if r.trial_id not in {t.trial_id for t in first.trials}]
    assert len(new) == n_pruned and not any(r.outcome is Outcome.PRUNED for r in full.trials)
    assert outline(full.trials) == outline(none.trials)


def test_rung_pruning_runs_and_is_what_its_replay_predicts(runs):
    folder, none, _ = runs
    rung = laptime.bench(SUITE, db=folder / "rung.sqlite", prune="predict", predictor="rung", **COMMON)
    policy = PruningPolicy("predict", "steps_to_target", predictor="rung")
    assert outline(replay(none.trials, policy)) == outline(rung.trials)
    assert sum(r.steps for r in rung.trials) <= sum(r.steps for r in none.trials)
    stored = [r.measurement["prune"] for r in rung.trials if r.trial_index]
    assert all("predictions" in p for p in stored)  # every rung decision is kept with its trial
    assert rung.score.pruning["policies"] == [{**policy.to_dict()}]


def test_cli_replay_prints_savings_and_identical_scores(runs, capsys):
    folder, _, _ = runs
    assert main(["replay", "--db", str(folder / "none.sqlite"), "--bootstrap", "100"]) == 0
    out = capsys.readouterr().out
    assert "exact pruning by steps" in out and "scores and ranks identical: yes" in out
    assert main(["replay", "--db", str(folder / "none.sqlite"), "--prune", "predict", "--predictor", "rung",
                 "--bootstrap", "100", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["prediction_quality"]["predictions"] > 0 and 0 <= data["steps_saved"] < 1


def test_cli_refuses_what_cannot_be_pruned(runs, capsys):
    folder, _, _ = runs
    assert main(["replay", "--db", str(folder / "exact.sqlite")]) == 2
    assert "--prune none" in capsys.readouterr().err
    assert main(["bench", "--suite", "mnist1d", "--prune", "exact", "--db", str(folder / "x.sqlite")]) == 2
    err = capsys.readouterr().err
    assert "--ruleset external" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_exact_pruning_by_the_robust_time_compares_work(tmp_path):
    """Scored on the robust time (the CPU default), trials are pruned once their measured work (reference
    passes, closed windows: a lower bound) reaches the best work to target of their study."""
    result = laptime.bench(SUITE, db=tmp_path / "robust.sqlite", prune="exact",
                           **{**COMMON, "by": "robust", "algorithms": ["nadamw"]})
    assert result.pruning == {"mode": "exact", "by": "robust_time_to_target"}
    pruned = [r for r in result.trials if r.outcome is Outcome.PRUNED]
    assert pruned
    for r in pruned:
        info = r.measurement["prune"]
        assert info["progress"] >= info["bound"] > 0
        earlier = [t for t in result.trials if t.study == r.study and t.trial_index < r.trial_index
                   and t.work_to_target is not None]
        assert info["bound"] == min(t.work_to_target for t in earlier)
    assert result.score.pruning["exact"]
