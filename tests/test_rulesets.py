"""Tuning rulesets: which trials a benchmark runs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from laptime.execution import TrialPlan
from laptime.tuning import SearchSpace
from laptime.tuning.rulesets import (
    ExternalTuning,
    RulesetError,
    SelfTuning,
    algorithm_entry,
    derive_seed,
    make_ruleset,
    plan_trials,
)

SPACE = SearchSpace.from_json({
    "learning_rate": {"min": 1e-4, "max": 1e-1, "scaling": "log"},
    "beta1": {"min": 0.8, "max": 0.99, "scaling": "linear"},
    "warmup": {"feasible_points": [0.05]},
})
FIXED = SearchSpace.from_json([{"learning_rate": 0.1}, {"learning_rate": 0.2}, {"learning_rate": 0.3}])
DEFAULTS = {"learning_rate": 0.01, "beta1": 0.9}
WORKLOADS = [("toy", None, None), ("mnist1d", "cnn", "cpu")]


def by(plans, **fields):
    return [p for p in plans if all(getattr(p, k) == v for k, v in fields.items())]


def points_of_study(plans, algorithm, study, workload="toy"):
    chosen = sorted(by(plans, algorithm=algorithm, study=study, workload=workload), key=lambda p: p.trial_index)
    return [p.hyperparameters for p in chosen]


# ---- external tuning -------------------------------------------------------------------------


def test_external_counts_fields_and_order():
    plans = plan_trials(ExternalTuning(studies=3, trials=5), WORKLOADS, [("adam", SPACE, DEFAULTS)], seed=7)
    assert len(plans) == 3 * 5 * 2
    assert all(isinstance(p, TrialPlan) for p in plans)
    assert {p.ruleset for p in plans} == {"external"}
    assert {p.budget_factor for p in plans} == {1.0}
    # algorithm -> study -> trial -> workload
    assert [(p.study, p.trial_index, p.workload) for p in plans[:4]] == [
        (0, 0, "toy"), (0, 0, "mnist1d"), (0, 1, "toy"), (0, 1, "mnist1d")]
    assert [(p.variant, p.config) for p in plans[:2]] == [(None, None), ("cnn", "cpu")]
    assert sorted({(p.study, p.trial_index) for p in plans}) == [(s, t) for s in range(3) for t in range(5)]


def test_every_study_gets_different_points():
    plans = plan_trials(ExternalTuning(studies=3, trials=5), WORKLOADS, [("adam", SPACE, DEFAULTS)])
    studies = [points_of_study(plans, "adam", s) for s in range(3)]
    lrs = [[p["learning_rate"] for p in study] for study in studies]
    # no point is shared between any two studies (AlgoPerf's defect: all studies identical)
    for a in range(3):
        for b in range(a + 1, 3):
            assert not set(lrs[a]) & set(lrs[b]), (a, b, lrs)
    # within a study the points differ from each other and lie in the space
    for study in studies:
        assert len({p["learning_rate"] for p in study}) == 5
        for p in study:
            assert 1e-4 <= p["learning_rate"] <= 1e-1 and 0.8 <= p["beta1"] <= 0.99 and p["warmup"] == 0.05


def test_same_point_on_every_workload_within_a_study():
    plans = plan_trials(ExternalTuning(studies=2, trials=4), WORKLOADS, [("adam", SPACE, DEFAULTS)])
    for s in range(2):
        assert points_of_study(plans, "adam", s, "toy") == points_of_study(plans, "adam", s, "mnist1d")
        for t in range(4):
            assert len({p.seed for p in by(plans, study=s, trial_index=t)}) == 1


def test_points_come_from_the_space_with_a_derived_seed():
    plans = plan_trials(ExternalTuning(studies=2, trials=3), ["toy"], [("adam", SPACE, {})], seed=11)
    from laptime.tuning.rulesets import points_seed

    for s in range(2):
        assert points_of_study(plans, "adam", s) == SPACE.points(3, seed=points_seed(11, "adam", s))


def test_fixed_list_runs_in_order_in_every_study():
    plans = plan_trials(ExternalTuning(studies=2, trials=2), ["toy"], [("fixed", FIXED, {})])
    for s in range(2):
        assert points_of_study(plans, "fixed", s) == [{"learning_rate": 0.1}, {"learning_rate": 0.2}]
    # seeds still differ across studies
    assert by(plans, study=0, trial_index=0)[0].seed != by(plans, study=1, trial_index=0)[0].seed


def test_fixed_list_shorter_than_trials_gives_shorter_studies():
    plans = plan_trials(ExternalTuning(studies=2, trials=5), ["toy"], [("fixed", FIXED, {})])
    assert len(plans) == 2 * 3
    assert points_of_study(plans, "fixed", 1) == FIXED.fixed_points


def test_seeds_differ_across_studies_and_trials():
    plans = plan_trials(ExternalTuning(studies=5, trials=5), ["toy"], [("adam", SPACE, {})], seed=0)
    seeds = [p.seed for p in plans]
    assert len(set(seeds)) == 25
    assert all(isinstance(s, int) and 0 <= s < 2**31 for s in seeds)
    # the base seed changes every seed and every point
    other = plan_trials(ExternalTuning(studies=5, trials=5), ["toy"], [("adam", SPACE, {})], seed=1)
    assert not {p.seed for p in other} & set(seeds)
    assert [p.hyperparameters for p in other] != [p.hyperparameters for p in plans]


def test_seeds_shared_by_algorithms_points_not():
    plans = plan_trials(ExternalTuning(studies=2, trials=3), ["toy"], [("a", SPACE, {}), ("b", SPACE, {})])
    a, b = by(plans, algorithm="a"), by(plans, algorithm="b")
    assert [p.seed for p in a] == [p.seed for p in b]  # common random numbers
    assert [p.hyperparameters for p in a] != [p.hyperparameters for p in b]


def test_external_needs_a_search_space():
    with pytest.raises(RulesetError, match=r"'plain'.*no search space.*self-tuning"):
        plan_trials(ExternalTuning(), ["toy"], [("adam", SPACE, {}), ("plain", None, DEFAULTS)])


# ---- self-tuning -----------------------------------------------------------------------------


def test_self_tuning_uses_defaults_and_budget_factor():
    plans = plan_trials(SelfTuning(budget_factor=3.0, studies=2), WORKLOADS,
                        [("adam", SPACE, DEFAULTS), ("plain", None, {"lr": 1})], seed=5)
    assert len(plans) == 2 * 2 * 2
    assert {p.ruleset for p in plans} == {"self"}
    assert {p.budget_factor for p in plans} == {3.0}
    assert {p.trial_index for p in plans} == {0}
    assert all(p.hyperparameters == DEFAULTS for p in by(plans, algorithm="adam"))
    assert all(p.hyperparameters == {"lr": 1} for p in by(plans, algorithm="plain"))
    seeds = {s: {p.seed for p in by(plans, study=s)} for s in range(2)}
    assert len(seeds[0]) == len(seeds[1]) == 1 and seeds[0] != seeds[1]


def test_self_tuning_default_factor_and_no_shared_mutables():
    defaults = {"betas": [0.9, 0.99]}
    plans = plan_trials(SelfTuning(), ["toy", "other"], [("x", None, defaults)])
    assert [p.budget_factor for p in plans] == [1.5, 1.5]
    plans[0].hyperparameters["betas"].append(1)
    assert plans[1].hyperparameters == {"betas": [0.9, 0.99]} and defaults == {"betas": [0.9, 0.99]}


# ---- determinism, validation ------------------------------------------------------------------


def test_deterministic_including_across_processes():
    def make():
        return plan_trials(ExternalTuning(studies=2, trials=3), WORKLOADS, [("adam", SPACE, {})], seed=3)

    assert make() == make()
    code = (
        "from laptime.tuning import SearchSpace\n"
        "from laptime.tuning.rulesets import ExternalTuning, plan_trials\n"
        f"space = SearchSpace.from_json({SPACE.to_json()!r})\n"
        f"plans = plan_trials(ExternalTuning(studies=2, trials=3), {WORKLOADS!r}, [('adam', space, {{}})], seed=3)\n"
        "print([(p.seed, p.hyperparameters) for p in plans])\n"
    )
    # a fresh interpreter with another PYTHONHASHSEED: the seeds must not depend on hash()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "PYTHONHASHSEED": "12345"}).stdout
    assert out.strip() == str([(p.seed, p.hyperparameters) for p in make()])


def test_derive_seed_is_stable():
    assert derive_seed(0, "trial", 0, 0) == derive_seed(0, "trial", 0, 0)
    assert derive_seed(0, "trial", 0, 1) != derive_seed(0, "trial", 1, 0)
    assert derive_seed(1, "x") == 2104076350  # pinned (sha256 of ["laptime",1,"x"]): changing the derivation changes every plan


@pytest.mark.parametrize("make, message", [
    (lambda: ExternalTuning(studies=0), "studies must be an integer >= 1"),
    (lambda: ExternalTuning(trials=0), "trials .* must be an integer >= 1"),
    (lambda: ExternalTuning(studies=1.5), "studies must be an integer"),
    (lambda: ExternalTuning(studies=True), "studies must be an integer"),
    (lambda: SelfTuning(budget_factor=0), "budget_factor must be a finite number > 0"),
    (lambda: SelfTuning(budget_factor=-1.0), "budget_factor must be a finite number > 0"),
    (lambda: SelfTuning(budget_factor=float("inf")), "budget_factor must be a finite number > 0"),
    (lambda: SelfTuning(studies=0), "studies must be an integer >= 1"),
    (lambda: make_ruleset("grid"), "unknown ruleset 'grid'"),
    (lambda: make_ruleset("self", trials=3), "ruleset 'self' takes budget_factor, studies"),
])
def test_bad_rulesets(make, message):
    with pytest.raises(RulesetError, match=message):
        make()
    assert issubclass(RulesetError, ValueError)


@pytest.mark.parametrize("workloads, algorithms, kwargs, message", [
    ([], [("a", SPACE, {})], {}, "no workloads"),
    (["toy"], [], {}, "no algorithms"),
    (["toy", ("toy", None, None)], [("a", SPACE, {})], {}, "workload toy is listed twice"),
    (["toy"], [("a", SPACE, {}), ("a", SPACE, {})], {}, "algorithm 'a' is listed twice"),
    ([("toy", "base")], [("a", SPACE, {})], {}, "bad workload entry"),
    (["toy"], [("a", {"lr": {}}, {})], {}, "must be a laptime.tuning.SearchSpace"),
    (["toy"], [("a", SPACE, [1])], {}, "self-tuning defaults must be a mapping"),
    (["toy"], [("a", SPACE, {})], {"seed": -1}, "seed must be an integer >= 0"),
])
def test_bad_inputs(workloads, algorithms, kwargs, message):
    with pytest.raises(RulesetError, match=message):
        plan_trials(ExternalTuning(), workloads, algorithms, **kwargs)


def test_unknown_ruleset_object():
    with pytest.raises(RulesetError, match="unknown ruleset"):
        plan_trials("external", ["toy"], [("a", SPACE, {})])


def test_make_ruleset_and_algorithm_entry():
    assert make_ruleset("external", studies=5) == ExternalTuning(studies=5, trials=5)
    assert make_ruleset("self") == SelfTuning()
    from laptime.algorithms import default_algorithms

    algorithm = default_algorithms().get("adamw")
    name, space, defaults = algorithm_entry("adamw", algorithm)
    assert name == "adamw" and isinstance(space, SearchSpace) and defaults == dict(algorithm.self_tuning_defaults)
    plans = plan_trials(ExternalTuning(studies=1, trials=2), ["mnist1d"], [algorithm_entry("adamw", algorithm)])
    assert [set(p.hyperparameters) for p in plans] == [set(space.names)] * 2


def test_module_import_does_not_need_torch():
    code = "import sys, laptime.tuning.rulesets; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
