"""Pruning of tuning trials (laptime.tuning.pruning): the exact rule, chains, replay, cost, scoring.

Torch-free: synthetic trials with eval histories. The real runs are in test_pruning_bench.py."""

from __future__ import annotations

import dataclasses
import math
import random

import pytest

from laptime.execution.book import PlanBook
from laptime.records import EvalRecord, Outcome, TrialPlan, TrialRecord
from laptime.results import ResultsStore
from laptime.scoring import ScoringError, score_records
from laptime.tuning.prune_study import compare, kendall_tau, prediction_quality
from laptime.tuning.pruning import (
    ChainOrder,
    PruneSpec,
    Pruner,
    PruningPolicy,
    accepts,
    replay,
    spec_from_records,
    tuning_cost,
)

EVERY = 25


def trial(alg="A", workload="w", variant="base", study=0, index=0, reach=None, budget=1000, rate=1e-3,
          work_rate=None, curve=None, outcome=None, steps=None, key=None):
    """A finished, unpruned trial: evals every 25 steps; ``reach``: the step at which it met the target
    (None: it ran out its budget). Submission time = rate × steps, work = work_rate × steps."""
    work_rate = rate * 2 if work_rate is None else work_rate
    last = reach if reach is not None else (steps if steps is not None else budget)
    evals = []
    for s in list(range(EVERY, last + 1, EVERY)) + ([last] if last % EVERY else []):
        acc = curve(s) if curve is not None else (0.9 if reach is not None and s >= reach else 0.5 * s / budget)
        evals.append(EvalRecord(step=s, submission_time=s * rate, wall_time=s * rate * 1.2,
                                metrics={"validation/accuracy": acc}, work=s * work_rate))
    if outcome is None:
        outcome = Outcome.REACHED if reach is not None else Outcome.BUDGET
    reached = outcome is Outcome.REACHED
    return TrialRecord(
        workload=workload, variant=variant, config="cpu", workload_version="1", dataset="d", algorithm=alg,
        algorithm_hash="h", hyperparameters={"lr": index}, seed=index, device="cpu", hardware_fingerprint="hw",
        hardware={}, versions={}, target_metric="accuracy", target_direction="max", target_value=0.8,
        budget_sec=budget * rate, outcome=outcome, time_to_target=reach * rate if reached else None,
        steps_to_target=reach if reached else None, submission_time=last * rate, steps=last,
        wall_time=last * rate * 1.2, started_at="", finished_at="", ruleset="external", study=study,
        trial_index=index, plan_key=key or f"{alg}-{workload}-{variant}-{study}-{index}", budget_mode="steps",
        budget_steps=budget, work_to_target=reach * work_rate if reached else None,
        robust_time_to_target=reach * work_rate * 0.5 if reached else None, reference_cost=0.5, evals=evals)


def random_benchmark(seed: int, algorithms=("A", "B", "C"), studies=3, trials=5, variants=True):
    """Trials of an external-tuning benchmark with ties, misses, variants and per-trial speeds."""
    rng = random.Random(seed)
    out = []
    workloads = [("w", "base"), ("w", "v"), ("u", "base")] if variants else [("w", "base"), ("u", "base")]
    for alg in algorithms:
        for study in range(studies):
            for index in range(trials):
                for workload, variant in workloads:
                    reach = rng.choice([None, None] + [EVERY * k for k in range(4, 30)] + [300, 300])  # ties
                    rate = rng.choice([1e-3, 1.3e-3, 0.8e-3])
                    out.append(trial(alg, workload, variant, study, index, reach=reach, rate=rate,
                                     work_rate=rate * rng.uniform(1.5, 2.5)))
    return out


POLICY = {by: PruningPolicy("exact", by) for by in ("steps_to_target", "time_to_target", "robust_time_to_target")}


# ---------------------------------------------------------------------------------------------- the rule


@pytest.mark.parametrize("by, progress", [("steps_to_target", (100, 0.0, None)),
                                          ("time_to_target", (1, 2.5, None)),
                                          ("robust_time_to_target", (1, 0.0, 7.0))])
def test_exact_rule_stops_at_the_bound_and_not_before(by, progress):
    bound = {"steps_to_target": 100, "time_to_target": 2.5, "robust_time_to_target": 7.0}[by]
    pruner = Pruner(PruneSpec(POLICY[by], bound=bound), direction="max", target=0.8, budget_steps=1000, budget_sec=10)
    step, sub, work = progress
    below = {"steps_to_target": (99, 0.0, None), "time_to_target": (1, 2.49, None),
             "robust_time_to_target": (1, 0.0, 6.99)}[by]
    assert pruner.after_step(*below) is None
    why = pruner.after_step(step, sub, work)
    assert why is not None and "exact" in why
    summary = pruner.summary()
    assert summary["stopped_by"] == "exact" and summary["bound"] == bound and summary["by"] == by


def test_exact_rule_without_a_bound_or_without_work_never_stops():
    assert Pruner(PruneSpec(POLICY["steps_to_target"]), direction="max", target=0.8, budget_steps=10,
                  budget_sec=1).after_step(10**6, 1e6, 1e6) is None
    robust = Pruner(PruneSpec(POLICY["robust_time_to_target"], bound=1.0), direction="max", target=0.8,
                    budget_steps=10, budget_sec=1)
    assert robust.after_step(10**6, 1e6, None) is None  # the robust time off: nothing to compare


def test_policy_checks_its_arguments():
    with pytest.raises(ValueError, match="prune must be"):
        PruningPolicy("sometimes")
    with pytest.raises(ValueError, match="cannot bound"):
        PruningPolicy("exact", "accuracy")
    with pytest.raises(ValueError, match="threshold"):
        PruningPolicy("predict", threshold=1.5)
    with pytest.raises(ValueError, match="eta"):
        PruningPolicy("predict", predictor="rung", eta=1)
    assert PruningPolicy.from_dict(PruningPolicy("predict", predictor="rung", eta=4).to_dict()).eta == 4


# ---------------------------------------------------------------------------------------------- exactness


@pytest.mark.parametrize("by", sorted(POLICY))
@pytest.mark.parametrize("seed", range(6))
def test_exact_pruning_keeps_every_score_rank_and_interval(by, seed):
    """The promise: scores, ranks, the variant gate's outcome and the bootstrap intervals (with the
    robust time's noise too) of the pruned trials are those of the same trials unpruned."""
    full = random_benchmark(seed)
    pruned = replay(full, POLICY[by])
    assert sum(r.outcome is Outcome.PRUNED for r in pruned) > 10  # the test prunes something
    assert sum(r.steps for r in pruned) < 0.9 * sum(r.steps for r in full)
    for noise in (0.0, 0.03):
        a = score_records(full, column=by, n_bootstrap=200, seed=1, timing_noise=noise)
        b = score_records(pruned, column=by, n_bootstrap=200, seed=1, timing_noise=noise)
        assert a.scores == b.scores and a.ranks == b.ranks and a.times == b.times and a.raw_times == b.raw_times
        assert a.bootstrap.score_ci == b.bootstrap.score_ci and a.bootstrap.rank_ci == b.bootstrap.rank_ci
    assert a.variants  # the gate was on
    assert b.pruning["exact"] and b.pruning["pruned"] == sum(r.outcome is Outcome.PRUNED for r in pruned)


def test_the_exactness_check_sees_a_rule_that_prunes_too_early(monkeypatch):
    """Negative control: stopping trials one eval before the bound changes some score, and the test
    above would notice."""
    from laptime.tuning import pruning

    real = pruning.spec_from_records

    def early(policy, earlier, chain=""):
        spec = real(policy, earlier, chain)
        return spec if spec.bound is None else dataclasses.replace(spec, bound=spec.bound - 2 * EVERY)

    monkeypatch.setattr(pruning, "spec_from_records", early)
    changed = 0
    for seed in range(6):
        full = random_benchmark(seed)
        a = score_records(full, column="steps_to_target")
        b = score_records(replay(full, POLICY["steps_to_target"]), column="steps_to_target")
        changed += a.scores != b.scores
    assert changed >= 3


def test_ties_are_pruned_and_keep_the_minimum():
    full = [trial(index=0, reach=300), trial(index=1, reach=300), trial(index=2, reach=325), trial(index=3)]
    out = replay(full, POLICY["steps_to_target"])
    assert [r.outcome for r in out] == [Outcome.REACHED, Outcome.PRUNED, Outcome.PRUNED, Outcome.PRUNED]
    assert [r.steps for r in out] == [300, 300, 300, 300]
    assert out[1].measurement["prune"]["bound"] == 300
    assert score_records(out, column="steps_to_target").times == score_records(full, column="steps_to_target").times


def test_replay_keeps_the_evals_before_the_stop_and_prorates_costs():
    full = [trial(index=0, reach=200), trial(index=1, rate=2e-3)]
    out = replay(full, POLICY["steps_to_target"])[1]
    assert out.steps == 200 and [e.step for e in out.evals] == list(range(25, 200, 25))
    assert out.submission_time == pytest.approx(full[1].submission_time * 0.2)
    assert out.wall_time == pytest.approx(full[1].wall_time * 0.2)
    # by time, the bound is 0.2 s and this trial runs at 2 ms/step: stopped at step 100
    by_time = replay(full, POLICY["time_to_target"])[1]
    assert by_time.steps == 100


def test_replay_refuses_pruned_trials():
    pruned = replay([trial(index=0, reach=100), trial(index=1)], POLICY["steps_to_target"])
    with pytest.raises(ValueError, match="without pruning"):
        replay(pruned, POLICY["steps_to_target"])


def test_a_trial_that_ends_by_itself_before_the_bound_is_left_alone():
    full = [trial(index=0, reach=500), trial(index=1, steps=300, outcome=Outcome.DIVERGED)]
    assert replay(full, POLICY["steps_to_target"])[1].outcome is Outcome.DIVERGED


# ---------------------------------------------------------------------------------------------- chains


def plan(alg="A", study=0, index=0, workload="w", ruleset="external"):
    return TrialPlan(workload=workload, algorithm=alg, hyperparameters={"i": index}, study=study, trial_index=index,
                     ruleset=ruleset, variant="base", config="cpu")


def test_chain_order_blocks_on_earlier_trials_of_the_same_study_only():
    plans = [plan(index=0), plan(index=1), plan(study=1, index=0), plan(alg="B", index=0), plan(index=2),
             plan(ruleset="self")]
    order = ChainOrder(POLICY["steps_to_target"], plans)
    records = [None] * 6
    pending = {0, 1, 2, 3, 4, 5}
    assert [i for i in range(6) if not order.blocked(i, pending.__contains__, records)] == [0, 2, 3, 5]
    pending -= {0}
    assert not order.blocked(1, pending.__contains__, records) and order.blocked(4, pending.__contains__, records)
    records = [trial(index=0, reach=400), None, trial(study=1, index=0, reach=100), None, None, None]
    assert order.spec(1, records).bound == 400  # not study 1's 100
    records[1] = trial(index=1, reach=250)
    assert order.spec(4, records).bound == 250
    assert order.spec(5, records) is None  # self-tuning: no chain


def test_other_workloads_wait_for_the_lead_and_run_its_best_points_first():
    """The study's first workload leads; on the others a study's trials run in the order of their
    points' results there (reached soonest first, then the misses by their best metric)."""
    plans = [plan(index=i, workload=w) for i in range(4) for w in ("lead", "other")]
    order = ChainOrder(POLICY["steps_to_target"], plans)
    lead = [i for i, p in enumerate(plans) if p.workload == "lead"]
    other = [i for i, p in enumerate(plans) if p.workload == "other"]
    records = [None] * len(plans)
    pending = set(range(len(plans)))
    assert [i for i in range(len(plans)) if not order.blocked(i, pending.__contains__, records)] == [lead[0]]
    results = [trial(workload="lead", index=0, curve=lambda s: 0.4), trial(workload="lead", index=1, reach=500),
               trial(workload="lead", index=2, reach=200), trial(workload="lead", index=3, curve=lambda s: 0.6)]
    for i, r in zip(lead, results):
        records[i] = r
        pending.discard(i)
    free = [i for i in other if not order.blocked(i, pending.__contains__, records)]
    assert [plans[i].trial_index for i in free] == [2]  # the lead's fastest point first
    sequence = [plans[i].trial_index for i in sorted(other, key=lambda i: len(order.before[i]))]
    assert sequence == [2, 1, 3, 0]  # reached by steps, then misses by their best accuracy
    records[other[2]] = trial(workload="other", index=2, reach=300)
    assert order.spec(other[1], records).bound == 300


def test_replay_follows_the_lead_order():
    full = []
    for i, (lead_reach, other_reach) in enumerate([(None, 700), (600, 650), (200, 300)]):
        full += [trial(workload="lead", index=i, reach=lead_reach), trial(workload="other", index=i, reach=other_reach)]
    out = {(r.workload, r.trial_index): r for r in replay(full, POLICY["steps_to_target"])}
    # on "other", point 2 runs first (reached 300), then 1 and 0 are pruned at 300 steps
    assert out[("other", 2)].outcome is Outcome.REACHED
    assert [out[("other", i)].steps for i in (1, 0)] == [300, 300]
    assert out[("lead", 1)].outcome is Outcome.REACHED and out[("lead", 2)].outcome is Outcome.REACHED


def test_spec_bound_is_the_best_reached_value_in_the_pruned_units():
    earlier = [trial(index=0), trial(index=1, reach=400, rate=1e-3, work_rate=3e-3), None,
               trial(index=2, reach=600, rate=0.5e-3, work_rate=1e-3)]
    assert spec_from_records(POLICY["steps_to_target"], earlier).bound == 400
    assert spec_from_records(POLICY["time_to_target"], earlier).bound == pytest.approx(0.3)
    assert spec_from_records(POLICY["robust_time_to_target"], earlier).bound == pytest.approx(0.6)
    assert spec_from_records(POLICY["steps_to_target"], [trial(index=0)]).bound is None


def test_accepts_a_pruned_record_only_for_a_benchmark_that_prunes_alike():
    full = [trial(index=0, reach=100), trial(index=1)]
    exact = replay(full, POLICY["steps_to_target"])[1]
    rung = PruningPolicy("predict", "steps_to_target", predictor="rung")
    assert accepts(None, full[1]) and accepts(PruningPolicy("none"), full[1])
    assert not accepts(None, exact) and not accepts(PruningPolicy("none"), exact)
    assert accepts(POLICY["steps_to_target"], exact) and accepts(rung, exact)
    assert not accepts(POLICY["time_to_target"], exact)
    predicted = dataclasses.replace(exact, measurement={"prune": {**rung.to_dict(), "policy": rung.to_dict(),
                                                                  "stopped_by": "rung"}})
    assert accepts(rung, predicted)
    assert not accepts(POLICY["steps_to_target"], predicted)
    assert not accepts(PruningPolicy("predict", "steps_to_target", predictor="rung", eta=4), predicted)


def test_plan_book_hands_out_chains_in_order_and_tells_each_its_bound(tmp_path):
    plans = [plan(index=i) for i in range(3)] + [plan(study=1, index=i) for i in range(2)]
    prepared = [(p, f"key{i}") for i, p in enumerate(plans)]
    with ResultsStore(tmp_path / "r.sqlite") as store:
        run = store.start_run("test", {})
        book = PlanBook(store, plans, prepared, run_id=run, pruning=POLICY["steps_to_target"], claims=False)
        first = book.next()
        second = book.next()
        assert (first, second) == (0, 3)  # study 0's trial 0, then study 1's: trial 1 waits for trial 0
        assert book.next() is None and book.held and book.pending
        assert book.prune_spec(0).bound is None
        book.resolve(0, book.store_record(0, trial(index=0, reach=300, key="key0")))
        assert book.next() == 1 and book.prune_spec(1).bound == 300
        book.close()


def test_plan_book_runs_a_stored_pruned_trial_again_for_a_benchmark_that_does_not_prune(tmp_path):
    full = [trial(index=0, reach=100, key="key0"), trial(index=1, key="key1")]
    stored = replay(full, POLICY["steps_to_target"])
    plans = [plan(index=0), plan(index=1)]
    prepared = [(p, f"key{i}") for i, p in enumerate(plans)]
    with ResultsStore(tmp_path / "r.sqlite") as store:
        run = store.start_run("test", {})
        for r in stored:
            store.add_trial(run, r)
        unpruned = PlanBook(store, plans, prepared, run_id=run, claims=False)
        assert list(unpruned.todo) == [1]  # the pruned one runs again; the full one is reused
        pruned = PlanBook(store, plans, prepared, run_id=run, claims=False, pruning=POLICY["steps_to_target"])
        assert not pruned.todo
        other = PlanBook(store, plans, prepared, run_id=run, claims=False, pruning=POLICY["time_to_target"])
        assert list(other.todo) == [1]


# ---------------------------------------------------------------------------------------------- predictions


def test_rung_rule_keeps_the_top_of_its_study_at_each_rung():
    policy = PruningPolicy("predict", "steps_to_target", predictor="rung", eta=3, rungs=2)
    good = trial(index=0, curve=lambda s: 0.3 + 0.5 * s / 1000)
    worse = trial(index=1, curve=lambda s: 0.2 + 0.5 * s / 1000)
    spec = spec_from_records(policy, [good])
    assert len(spec.peers) == 1
    pruner = Pruner(spec, direction="max", target=0.9, budget_steps=1000, budget_sec=1.0)
    assert pruner.rung_steps(1000) == pytest.approx([1000 / 9, 1000 / 3])
    stop = None
    for ev in worse.evals:
        stop = pruner.after_eval(ev.step, ev.metrics["validation/accuracy"], ev.submission_time, ev.work)
        if stop:
            break
    assert stop is not None and "rung" in stop and ev.step == 125  # the first eval past budget/9
    first = pruner.predictions[0]
    assert (first["place"], first["of"], first["keep"]) == (2, 2, 1)
    # the better trial, told of the worse one, is kept at both rungs
    again = Pruner(spec_from_records(policy, [worse]), direction="max", target=0.9, budget_steps=1000, budget_sec=1)
    assert all(again.after_eval(e.step, e.metrics["validation/accuracy"], 0, None) is None for e in good.evals)
    assert [p["place"] for p in again.predictions] == [1, 1]


def test_predictive_replay_reports_wrong_stops_and_shadow_quality():
    # trial 1 starts slow and then overtakes: the rung rule stops it wrongly
    policy = PruningPolicy("predict", "steps_to_target", predictor="rung", eta=2, rungs=1)
    full = [trial(index=0, reach=900, curve=lambda s: 0.5 + 0.3 * s / 900 if s < 900 else 0.85),
            trial(index=1, reach=700, curve=lambda s: 0.3 if s < 600 else 0.85), trial(alg="B", index=0, reach=800)]
    result = compare(full, policy, n_bootstrap=50)
    assert result["stopped_by_prediction"] == 1 and result["wrong_stops_would_reach"] == 1
    assert result["wrong_stops_study_best"] == 1 and not result["identical_scores"]
    quality = prediction_quality(full, policy)
    assert quality["trials_stopped"] == 1 and quality["trials_stopped_wrongly"] == 1


def test_compare_of_exact_pruning_is_identical_and_saves_steps():
    full = random_benchmark(3, variants=False)
    result = compare(full, POLICY["steps_to_target"], n_bootstrap=100)
    assert result["identical_scores"] and result["kendall_tau"] == 1.0 and not result["outside_interval"]
    assert result["steps_saved"] > 0.1 and result["changed_times"] == 0


def test_kendall_tau():
    assert kendall_tau({"a": 1, "b": 0.5, "c": 0}, {"a": 1, "b": 0.5, "c": 0}) == 1.0
    assert kendall_tau({"a": 1, "b": 0.5, "c": 0}, {"a": 0, "b": 0.5, "c": 1}) == pytest.approx(-1.0)
    assert kendall_tau({"a": 0.5, "b": 0.5}, {"a": 0.5, "b": 0.5}) == 1.0


# ---------------------------------------------------------------------------------------------- cost, scoring


def test_tuning_cost_sums_spent_and_bounds_saved():
    full = [trial(index=0, reach=200), trial(index=1), trial(alg="B", index=0)]
    out = replay(full, POLICY["steps_to_target"])
    cost = tuning_cost(out)
    a = next(r for r in cost["rows"] if r["algorithm"] == "A")
    assert (a["trials"], a["pruned"], a["steps"]) == (2, 1, 400)
    assert a["saved_steps_max"] == 800  # the pruned trial's budget left
    assert a["saved_seconds_max"] == pytest.approx(800 * 1.2e-3)
    assert cost["total"]["trials"] == 3 and cost["total"]["steps"] == 1400


def test_scoring_says_when_scores_are_not_those_of_the_unpruned_trials():
    full = [trial(index=0, reach=200), trial(index=1)]
    by_steps = replay(full, POLICY["steps_to_target"])
    note = score_records(by_steps, column="steps_to_target").pruning
    assert note["exact"] and note["pruned"] == 1 and "exact" in note["text"]
    other = score_records(by_steps, column="time_to_target").pruning
    assert not other["exact"] and "NOT" in other["text"]
    assert score_records(full, column="steps_to_target").pruning is None
    with pytest.raises(ScoringError, match="trial choice"):
        score_records(by_steps, column="steps_to_target", trial_choice="algoperf")
    assert "pruning: " in score_records(by_steps, column="steps_to_target").format_table()
    assert math.isinf(score_records(by_steps, column="steps_to_target", variants=None).raw_times["A"]["w"]) is False


def test_report_shows_the_tuning_cost_and_how_trials_were_pruned():
    from laptime.report import build_report

    full = [trial(index=0, reach=200), trial(index=1), trial(alg="B", index=0, reach=300)]
    pruned = replay(full, POLICY["steps_to_target"])
    report = build_report(pruned, score_records(pruned, column="steps_to_target"))
    html = report.to_html()
    assert 'id="cost"' in html and "saved at most" in html and "1 of 3 trials pruned" in html
    assert "Pruning: exact pruning" in report.to_markdown()
    plain = build_report(full, score_records(full, column="steps_to_target")).to_html()
    assert "No trial was pruned" in plain and "saved at most" not in plain


def test_a_resumed_pruner_decides_as_the_uninterrupted_one():
    policy = PruningPolicy("predict", "steps_to_target", predictor="rung", eta=3, rungs=2)
    peer = trial(index=0, curve=lambda s: 0.3 + 0.5 * s / 1000)
    me = trial(index=1, curve=lambda s: 0.25 + 0.5 * s / 1000)

    def feed(pruner, evals):
        for e in evals:
            why = pruner.after_eval(e.step, e.metrics["validation/accuracy"], e.submission_time, e.work)
            if why:
                return e.step
        return None

    def fresh():
        return Pruner(spec_from_records(policy, [peer]), direction="max", target=0.9, budget_steps=1000, budget_sec=1)

    whole = fresh()
    stop = feed(whole, me.evals)
    first = fresh()
    assert feed(first, me.evals[:3]) is None
    resumed = fresh()
    resumed.load_state_dict(first.state_dict())
    assert feed(resumed, me.evals[2:]) == stop  # an eval seen twice is ignored
    assert resumed.summary()["predictions"] == whole.summary()["predictions"]
