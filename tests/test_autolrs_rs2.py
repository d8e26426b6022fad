"""AutoLRS (Jin et al. 2021) and RS2 (Okanovic et al. 2024): the exponential forecast, the
Bayesian optimisation, AutoLRS's explore/exploit state machine and its checkpoints, RS2's rounds
and its shortened schedule. (Both also go through the library's train and checkpoint tests in
tests/test_library.py.)"""

import copy
import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from algohelpers import setup_algorithm, train_steps
from laptime.algorithms import default_algorithms
from laptime.algorithms.baselines import SPACES
from laptime.algorithms.library import autolrs
from laptime.algorithms.library.autolrs import AutoLRS, fit_exponential, forecast_loss, gp_posterior, lcb_next
from laptime.algorithms.library.rs2 import RepeatedRandomSubsets
from laptime.api import LossType, TrainingComplete
from laptime.records import Outcome
from laptime.runner import TrialOptions, run_trial
from toys import ToyWorkload

pytestmark = pytest.mark.usefixtures("one_thread")

#: A small AutoLRS on the toy workload (step_hint 200): 10 warmup steps, then stages of 4 candidates
#: × τ' = 5 exploration steps + τ = 20 exploitation steps (steps 10-30 explore, 30-50 exploit, ...).
SMALL = {"warmup_factor": 0.05, "stage_factor": 0.1, "explore_factor": 0.25, "candidates": 4}


def test_registered_with_summaries_spaces_and_defaults():
    registry = default_algorithms()
    for name, cls in (("nadamw_autolrs", AutoLRS), ("nadamw_rs2", RepeatedRandomSubsets)):
        algorithm = registry.get(name)
        assert isinstance(algorithm, cls)
        assert "(" in algorithm.summary and "20" in algorithm.summary  # names the paper and its year
        space = json.loads((SPACES / f"{name}.json").read_text())
        assert algorithm.search_space() is not None
        assert set(space) <= set(algorithm.self_tuning_defaults)


# ------------------------------------------------------------------ the exponential forecast
def test_exponential_fit_recovers_a_known_curve_and_forecasts_it():
    t = np.arange(30)
    fit = fit_exponential(2.0 * np.exp(-0.1 * t) + 0.5)
    assert (fit.a, fit.b, fit.c) == pytest.approx((2.0, 0.1, 0.5), rel=1e-5)
    assert fit(300) == pytest.approx(0.5 + 2.0 * math.exp(-30.0), rel=1e-6)
    assert forecast_loss(2.0 * np.exp(-0.1 * t) + 0.5, 15) == pytest.approx(0.5 + 2.0 * math.exp(-1.5), rel=1e-5)

    # with noise on every point the forecast is still close (the fit uses all 30 points)
    noisy = 1.5 * np.exp(-0.05 * t) + 0.8 + np.random.default_rng(0).normal(0.0, 0.01, t.size)
    assert forecast_loss(noisy, 100) == pytest.approx(0.8 + 1.5 * math.exp(-5.0), abs=0.05)

    # a rising curve (too large a learning rate) forecasts higher than it started
    assert forecast_loss(1.0 - 0.5 * np.exp(-0.2 * t), 100) > 0.99
    assert forecast_loss([1.0, float("nan"), 0.5], 10) == math.inf
    assert forecast_loss(3.0 - 0.1 * t, 300) == 0.0  # a straight line would go below 0: clamped
    with pytest.raises(ValueError):
        fit_exponential([1.0, 0.9])


# ------------------------------------------------------------------ the Bayesian optimisation
def test_gp_posterior_interpolates_and_is_uncertain_far_from_data():
    x, y = [0.1, 0.5, 0.9], [3.0, 1.0, 2.0]
    mean, std = gp_posterior(x, y, np.array(x + [0.3]))
    assert mean[:3] == pytest.approx(y, abs=0.05)
    assert (std[:3] < 0.1 * np.std(y)).all() and std[3] > 5 * std[:3].max()


@pytest.mark.parametrize("minimiser", [0.12, 0.3, 0.77])
def test_bayesian_optimisation_finds_the_minimiser_of_a_1d_function(minimiser):
    def f(x):
        return (x - minimiser) ** 2 + 0.1 * math.sin(20 * x) * (x - minimiser) ** 2

    xs, ys = [], []
    for _ in range(7):
        xs.append(lcb_next(xs, ys, kappa=2.0))
        ys.append(f(xs[-1]))
    assert xs[0] == 0.5  # nothing observed: the midpoint
    assert abs(xs[int(np.argmin(ys))] - minimiser) < 0.05


# ------------------------------------------------------------------ AutoLRS's state machine
class QuadraticWorkload(ToyWorkload):
    """``loss = (w − 10)²`` from ``w = 0`` (one weight, fixed inputs): far from the optimum, every
    Adam step moves ``w`` by about the learning rate, so within the bounds a larger learning rate
    is always better and the best candidate is the largest one tried."""

    name = "quadratic"

    @property
    def spec(self):
        return dataclasses.replace(super().spec, name=self.name, loss_type=LossType.MEAN_SQUARED_ERROR)

    def build_model(self):
        model = nn.Linear(1, 1, bias=False)
        nn.init.zeros_(model.weight)
        return model

    def train_batches(self, global_batch_size, seed):
        while True:
            yield {"inputs": torch.ones(global_batch_size, 1), "targets": torch.full((global_batch_size, 1), 10.0)}

    def evaluate_split(self, model, model_state, split):
        return {"loss": (model.weight.item() - 10.0) ** 2, "accuracy": 0.0}


def _autolrs(workload, **overrides):
    algorithm = default_algorithms().get("nadamw_autolrs")
    return (algorithm, *setup_algorithm(workload, algorithm, 0, **{**SMALL, **overrides}))


def test_autolrs_explores_k_candidates_per_stage_then_trains_with_the_best():
    workload = QuadraticWorkload()
    algorithm, hp, model, state, batches, rng = _autolrs(workload, weight_decay=0.0)
    auto = state["autolrs"]
    assert (state["warmup_steps"], state["tau_prime"], state["candidates"], state["tau"]) == (10, 5, 4, 20)
    state, model = train_steps(workload, algorithm, hp, model, state, batches, rng, 0, 10)
    assert auto["phase"] == "warmup"
    stage_start = model.weight.detach().clone()
    for i in range(4):
        state, model = train_steps(workload, algorithm, hp, model, state, batches, rng, 10 + 5 * i, 1)
        assert (auto["phase"], auto["candidate"], auto["steps_in_phase"]) == ("explore", i, 1)
        state, model = train_steps(workload, algorithm, hp, model, state, batches, rng, 11 + 5 * i, 4)
        assert len(auto["tried"]) == len(auto["forecasts"]) == i + 1
        assert torch.equal(model.weight, stage_start)  # restored after every candidate
    assert auto["phase"] == "exploit" and len(set(auto["tried"])) == 4
    tried, forecasts = np.array(auto["tried"]), np.array(auto["forecasts"])
    assert (np.diff(forecasts[np.argsort(tried)]) < 0).all()  # larger lr, lower forecast, as it should be here
    best = tried.max()
    assert auto["chosen"] == [best] and auto["lr"] == best
    state, model = train_steps(workload, algorithm, hp, model, state, batches, rng, 30, 1)
    assert all(g["lr"] == best for g in state["optimizer"].param_groups)  # the exploitation step used it
    assert 0.9 * best < model.weight.item() - stage_start.item() < 1.2 * best  # an Adam step moves w by about lr
    state, model = train_steps(workload, algorithm, hp, model, state, batches, rng, 31, 19)
    assert (auto["phase"], auto["stage"], auto["candidate"], auto["tried"]) == ("explore", 2, 0, [])  # next stage


def test_autolrs_uses_the_candidate_with_the_lowest_forecast(monkeypatch):
    # a known objective of the learning rate, minimal at lr = 10^-2.5 (x = 0.75 between 1e-4 and 1e-2)
    workload = ToyWorkload()
    algorithm, hp, model, state, batches, rng = _autolrs(workload, candidates=6)
    monkeypatch.setattr(autolrs, "forecast_loss",
                        lambda losses, horizon: (math.log10(state["autolrs"]["tried"][-1]) + 2.5) ** 2)
    state, model = train_steps(workload, algorithm, hp, model, state, batches, rng, 0, 10 + 6 * 5)
    auto = state["autolrs"]
    assert len(auto["tried"]) == 6 and len(auto["chosen"]) == 1 and auto["phase"] == "exploit"
    assert auto["chosen"][0] == auto["tried"][int(np.argmin(auto["forecasts"]))]
    assert abs(math.log10(auto["chosen"][0]) + 2.5) < 0.1


def test_autolrs_exploration_steps_are_runner_steps():
    class Counting(QuadraticWorkload):
        losses = 0

        def loss_fn(self, *args, **kwargs):
            Counting.losses += 1
            return super().loss_fn(*args, **kwargs)

    class Recording(AutoLRS):
        def update_params(self, *args, **kwargs):
            out = super().update_params(*args, **kwargs)
            self.state = out[0]
            return out

    algorithm = Recording()
    hp = {**algorithm.self_tuning_defaults, **SMALL}
    result = run_trial(Counting(), algorithm, hp, seed=0, options=TrialOptions(max_steps=53, eval_every_steps=1000))
    assert result.outcome == Outcome.BUDGET and result.steps == 53
    assert Counting.losses == 53  # one training loss per step: exploration is no hidden extra work
    auto = algorithm.state["autolrs"]
    # 10 warmup + stage 1 (20 exploration + 20 exploitation) + 3 exploration steps of stage 2
    assert (auto["stage"], auto["phase"], auto["candidate"], auto["steps_in_phase"]) == (2, "explore", 0, 3)
    assert len(auto["chosen"]) == 1 and len(algorithm.state["losses"]) == 3  # the candidate's losses so far


@pytest.mark.parametrize("at", [12, 15, 29, 30, 37, 50])
def test_autolrs_continues_bit_identically_after_a_checkpoint(at, tmp_path):
    workload = ToyWorkload()
    algorithm, hp, model, state, batches, rng = _autolrs(workload)
    state, model = train_steps(workload, algorithm, hp, model, state, batches, rng, 0, at)
    torch.save({"model": model.state_dict(), "optimizer": algorithm.optimizer_state_dict(state)}, tmp_path / "c.pt")
    rest = [next(batches) for _ in range(35)]  # crosses a candidate, a stage or a phase boundary
    state, model = train_steps(workload, algorithm, hp, model, state, iter(copy.copy(rest)), rng, at, 35)

    algorithm_b, hp_b, model_b, state_b, _, rng_b = _autolrs(workload)
    saved = torch.load(tmp_path / "c.pt", weights_only=False)
    model_b.load_state_dict(saved["model"])
    state_b = algorithm_b.load_optimizer_state_dict(state_b, saved["optimizer"])
    torch.manual_seed(12345)
    state_b, model_b = train_steps(workload, algorithm_b, hp_b, model_b, state_b, iter(rest), rng_b, at, 35)
    assert state_b["autolrs"] == state["autolrs"]
    for (name, a), (_, b) in zip(model.state_dict().items(), model_b.state_dict().items()):
        assert torch.equal(a, b), name


# ------------------------------------------------------------------ RS2
def test_rs2_rounds_are_disjoint_random_subsets_covering_the_set(cnn_workload):
    algorithm = default_algorithms().get("nadamw_rs2")
    hp, model, state, queue, rng = setup_algorithm(cnn_workload, algorithm, 0)
    batch_size, n = algorithm.get_batch_size(cnn_workload.spec.key), cnn_workload.num_train_examples
    m = algorithm.round_batches(hp, n, batch_size)
    per_pass = n // batch_size
    assert (m, per_pass) == (round(0.3 * 3500 / 128), 27) == (8, 27)

    def ids(batch):
        return [row.numpy().tobytes() for row in batch["inputs"]]

    seen = [ids(algorithm.data_selection(cnn_workload, queue, state, model, None, hp, step, rng))
            for step in range(2 * per_pass)]
    first_pass = seen[:per_pass]
    rounds = [sum(first_pass[i:i + m], []) for i in range(0, per_pass, m)]
    assert [len(set(r)) for r in rounds] == [m * batch_size] * 3 + [(per_pass % m) * batch_size]  # distinct
    union = set().union(*rounds)
    assert len(union) == sum(len(r) for r in rounds) == per_pass * batch_size  # disjoint: no repeat in a pass
    assert len(union) > n - batch_size  # the pass covers the set but the dropped remainder (N mod B)
    second = set(sum(seen[per_pass:], []))
    assert len(second) == per_pass * batch_size and second != union  # the next cycle: a fresh permutation


def test_rs2_schedule_ends_at_r_times_the_horizon(cnn_workload):
    algorithm = default_algorithms().get("nadamw_rs2")
    hp, model, state, batches, rng = setup_algorithm(cnn_workload, algorithm, 0, subset_fraction=0.1)
    schedule = state["schedule"]
    assert schedule(149) > 0 and schedule(150) == 0.0  # 0.1 × step_hint 1500
    assert schedule(7) == pytest.approx(1.0)  # warmup: 5% of the reduced horizon (8 steps)
    with pytest.raises(TrainingComplete):
        train_steps(cnn_workload, algorithm, hp, model, state, batches, rng, 150, 1)
    # through the runner: it stops with TrainingComplete after r × step_hint steps (toy: 0.3 × 200)
    result = run_trial(ToyWorkload(), algorithm, dict(algorithm.self_tuning_defaults), seed=0,
                       options=TrialOptions(eval_every_steps=1000, stop_at_target=False))
    assert result.steps == 60 and result.outcome in (Outcome.COMPLETE, Outcome.REACHED)
