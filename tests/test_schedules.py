"""Literature learning-rate schedules, schedule refinement from gradient norms, and the NAdamW
compositions registered in the library. Expected values are worked out by hand in the comments."""

import itertools
import json
import math

import pytest
import torch

from laptime.algorithms import default_algorithms, schedules
from laptime.algorithms.refinement import (
    GradNormRecorder,
    load_grad_norms,
    nadamw_refined,
    refined_multipliers,
    refined_schedule,
)
from laptime.api import Algorithm, ForwardPassMode
from algohelpers import setup_algorithm
from laptime.workloads import default_workloads

COMPOSED = ["nadamw_constant", "nadamw_rex", "nadamw_wsd", "nadamw_power"]


def values(schedule, n):
    return [schedule(i) for i in range(n)]


def nonincreasing(xs):
    return all(b <= a + 1e-12 for a, b in itertools.pairwise(xs))


# ---------------------------------------------------------------------------- constant_with_warmup
def test_constant_with_warmup_values():
    s = schedules.constant_with_warmup(total_steps=10, warmup_steps=4)
    # warmup (step + 1) / 4 = 1/4, 2/4, 3/4, 4/4, then 1 -- also far past the "horizon": it never ends
    assert values(s, 6) == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert s(10) == 1.0 and s(10**6) == 1.0
    assert values(schedules.constant_with_warmup(5, 0), 3) == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError):
        schedules.constant_with_warmup(5, 6)


# ---------------------------------------------------------------------------- REX
def test_rex_values():
    s = schedules.rex(total_steps=10, warmup_steps=2)
    # warmup: 1/2, 2/2. Then z = (step - 2) / 8 and m = (1 - z) / (1 - z/2):
    #   step 2: z=0   -> 1
    #   step 6: z=1/2 -> (1/2) / (3/4) = 2/3        (linear decay would give 1/2)
    #   step 9: z=7/8 -> (1/8) / (9/16) = 2/9
    #   step 10: z=1  -> 0, and 0 after the horizon
    assert s(0) == 0.5 and s(1) == 1.0 and s(2) == 1.0
    assert s(6) == pytest.approx(2 / 3)
    assert s(9) == pytest.approx(2 / 9)
    assert s(10) == 0.0 and s(11) == 0.0 and s(10**6) == 0.0
    # no warmup, T = 4: z = 1/4 -> (3/4)/(7/8) = 6/7; z = 3/4 -> (1/4)/(5/8) = 2/5
    r = schedules.rex(4)
    assert values(r, 5) == pytest.approx([1.0, 6 / 7, 2 / 3, 2 / 5, 0.0])


def test_rex_is_monotone_positive_before_the_horizon_and_above_linear():
    T, W = 200, 10
    s = schedules.rex(T, W)
    lin = schedules.warmup_decay(T, W, "linear")
    xs = values(s, T + 5)
    assert nonincreasing(xs[W:])
    assert all(x > 0 for x in xs[:T]) and all(x == 0.0 for x in xs[T:])
    assert all(s(i) >= lin(i) - 1e-12 for i in range(T + 1))
    assert s(W + (T - W) // 2) > lin(W + (T - W) // 2) + 0.1  # 2/3 vs 1/2 in the middle


# ---------------------------------------------------------------------------- WSD
def test_wsd_values():
    # T=10, W=2, D = round(0.2*10) = 2, decay starts at S = 8: x = (step - 8)/2
    s = schedules.wsd(10, warmup_steps=2, decay_fraction=0.2, decay="linear")
    assert values(s, 12) == [0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.0, 0.0]
    # 1-sqrt, T=10, no warmup, D = 4, S = 6: steps 6..9 -> x = 0, 1/4, 1/2, 3/4
    r = schedules.wsd(10, 0, 0.4, "1-sqrt")
    assert values(r, 11) == pytest.approx([1.0] * 7 + [0.5, 1 - math.sqrt(0.5), 1 - math.sqrt(0.75), 0.0])
    assert r(10**6) == 0.0


def test_wsd_shapes_and_validation():
    T = 100
    for decay in ("linear", "1-sqrt", "cosine"):
        xs = values(schedules.wsd(T, 5, 0.2, decay), T + 3)
        assert nonincreasing(xs[5:])
        assert all(x > 0 for x in xs[:T]) and xs[T:] == [0.0] * 3
        assert xs[79] == 1.0 and xs[80] == 1.0 and xs[81] < 1.0  # stable until S = 80
    # 1-sqrt decays faster at the start of the cooldown than linear
    assert schedules.wsd(T, 0, 0.2, "1-sqrt")(85) < schedules.wsd(T, 0, 0.2, "linear")(85)
    # decay_fraction 0: warmup then constant forever
    assert schedules.wsd(T, 5, 0.0)(10**6) == 1.0
    with pytest.raises(ValueError):
        schedules.wsd(10, 9, 0.2)  # warmup would overlap the cooldown (S = 8)
    with pytest.raises(ValueError):
        schedules.wsd(10, 0, 0.2, "exponential")


# ---------------------------------------------------------------------------- power scheduler
def test_power_values():
    # T=10, B=4, a=0.5, b=0.5: p(n) = min(1, 0.5*4 / sqrt(n)) = min(1, 2/sqrt(n)); W=2; D=2, S=8
    s = schedules.power(10, batch_size=4, a=0.5, b=0.5, warmup_steps=2, decay_fraction=0.2, decay="linear")
    p = lambda n: min(1.0, 2 / math.sqrt(n))
    # warmup: (step+1)/2 * p(W*B = 8) = (step+1)/2 * 0.70711
    assert s(0) == pytest.approx(0.5 * 2 / math.sqrt(8)) and s(1) == pytest.approx(2 / math.sqrt(8))
    # power phase: n = (step+1)*4 examples -> step 2: 2/sqrt(12) = 0.57735, step 3: 2/sqrt(16) = 0.5
    assert s(2) == pytest.approx(0.57735, abs=1e-5) and s(3) == 0.5
    assert s(7) == pytest.approx(p(32))
    # decay from S = 8: (1 - x) * p(S*B = 32), x = (step - 8)/2 -> step 8: 0.35355, step 9: 0.17678
    assert s(8) == pytest.approx(p(32)) and s(9) == pytest.approx(0.5 * p(32))
    assert s(10) == 0.0 and s(11) == 0.0
    # exponential decay, normalised to reach 0 at T: f(1/2) = (e^-2.5 - e^-5) / (1 - e^-5) = 0.075862
    e = schedules.power(10, 4, 0.5, 0.5, 2, 0.2, "exponential")
    assert e(8) == pytest.approx(p(32)) and e(9) == pytest.approx(0.075862 * p(32), rel=1e-4)
    assert e(10) == 0.0


def test_power_cap_batch_size_and_monotonicity():
    # the cap: with a large a the multiplier is exactly 1 until a*B*n^-b drops below 1
    s = schedules.power(1000, 128, a=1.0, b=0.51, warmup_steps=50, decay_fraction=0.1)
    xs = values(s, 1003)
    assert xs[49] == 1.0  # end of warmup: p(50*128 = 6400) = min(1, 128 * 6400^-0.51 = 1.46) = 1
    # crossover n* = 128^(1/0.51) = 13,534 examples -> step 105 (n = 13,568) is just below 1
    assert xs[104] == 1.0 and 0.99 < xs[105] < 1.0
    assert nonincreasing(xs[49:]) and all(x > 0 for x in xs[:1000]) and xs[1000:] == [0.0] * 3
    # β·a scaling: at the same number of examples (32), twice the batch gives twice the multiplier
    small = schedules.power(100, 4, 0.5, 0.5, decay_fraction=0.0)  # step 7 -> n = 32
    big = schedules.power(100, 8, 0.5, 0.5, decay_fraction=0.0)  # step 3 -> n = 32
    assert big(3) == pytest.approx(2 * small(7))
    with pytest.raises(ValueError):
        schedules.power(10, 0, 1.0)


# ---------------------------------------------------------------------------- refinement
def test_refinement_of_constant_norms_is_linear_decay():
    # T = 4: 5 grid points t = 0..4, all norms 2 -> w_t = 1/4, Σ_{p>t} w_p = (4 - t)/4,
    # η_t = (4 - t)/16 -> / max (4/16) = 1, 3/4, 1/2, 1/4, 0  == linear decay 1 - t/T
    s = refined_schedule([2.0] * 7, total_steps=4)  # 7 observed steps resampled onto 5 points
    assert values(s, 6) == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0, 0.0])
    assert s(4) == 0.0 and s(3) > 0
    lin = schedules.warmup_decay(300, 0, "linear")
    r = refined_schedule([0.7] * 300, 300, smoothing=9)
    assert all(abs(r(i) - lin(i)) < 1e-9 for i in range(305))
    # with warmup W=2: (step+1)/2 times the refined values
    w = refined_schedule([1.0] * 5, 4, warmup_steps=2)
    assert values(w, 5) == pytest.approx([0.5, 0.75, 0.5, 0.25, 0.0])


def test_refinement_of_crafted_norms():
    # norms 1,1,2,2,2 on t = 0..4 (T = 4, no resampling)
    # ℓ2 / SGD (power 2): w = 1, 1, 1/4, 1/4, 1/4; tails Σ_{p>t} w = 7/4, 3/4, 1/2, 1/4, 0
    #   η = 7/4, 3/4, 1/8, 1/16, 0 -> / (7/4) = 1, 3/7, 1/14, 1/28, 0
    assert refined_multipliers([1, 1, 2, 2, 2], 4, power=2) == pytest.approx([1, 3 / 7, 1 / 14, 1 / 28, 0])
    # ℓ1 / Adam (power 1): w = 1, 1, 1/2, 1/2, 1/2; tails 5/2, 3/2, 1, 1/2, 0
    #   η = 5/2, 3/2, 1/2, 1/4, 0 -> / (5/2) = 1, 3/5, 1/5, 1/10, 0
    assert refined_multipliers([1, 1, 2, 2, 2], 4, power=1) == pytest.approx([1, 0.6, 0.2, 0.1, 0])
    # rising norms late in training -> the refined schedule drops faster than linear there
    assert refined_multipliers([1, 1, 2, 2, 2], 4)[2] < 0.5
    # the median filter removes a one-step spike: 1,1,100,1,1 with a window of 3 -> all ones -> linear
    assert refined_multipliers([1, 1, 100, 1, 1], 4, smoothing=3) == pytest.approx([1, 0.75, 0.5, 0.25, 0])
    assert refined_multipliers([1, 1, 100, 1, 1], 4, smoothing=1) != pytest.approx([1, 0.75, 0.5, 0.25, 0])
    with pytest.raises(ValueError):
        refined_multipliers([1.0, float("nan")], 4)
    with pytest.raises(ValueError):
        refined_multipliers([], 4)


def test_refined_schedule_is_positive_until_the_horizon():
    torch.manual_seed(0)
    norms = (torch.rand(500) * 10 + 0.01).tolist()
    s = refined_schedule(norms, 300, warmup_steps=15, smoothing=11)
    xs = values(s, 302)
    assert all(x > 0 for x in xs[:300]) and xs[300:] == [0.0, 0.0]
    assert max(xs) <= 1.0


# ---------------------------------------------------------------------------- training helpers
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def workload(cnn_workload):
    return cnn_workload


_setup = setup_algorithm


def _steps(workload, algorithm, hp, model, state, batches, rng, start, n, after_step=None):
    for step in range(start, start + n):
        batch = next(batches)
        state, model, _ = algorithm.update_params(workload, model, workload.model_params_types, None, hp, batch,
                                                  workload.loss_type, state, [], step, rng)
        if after_step is not None:
            after_step(model, batch)
    return state, model


# ---------------------------------------------------------------------------- gradient-norm recorder
def test_recorder_records_the_global_gradient_norm_of_every_step(workload):
    recorder = GradNormRecorder(default_algorithms().get("nadamw"))
    hp, model, state, batches, rng = _setup(workload, recorder)
    expected_l2, expected_l1, clip_norms = [], [], []

    def check(model, batch):
        # the gradient the step used is still in .grad (NAdamW does not modify it); recompute
        grads = [p.grad.detach().double() for p in model.parameters() if p.grad is not None]
        expected_l2.append(math.sqrt(sum(float((g * g).sum()) for g in grads)))
        expected_l1.append(sum(float(g.abs().sum()) for g in grads))
        clip_norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"))))

    _steps(workload, recorder, hp, model, state, batches, rng, 0, 7, after_step=check)
    norms = recorder.grad_norms(state)
    assert len(norms["l2"]) == len(norms["l1"]) == 7
    assert norms["l2"] == pytest.approx(expected_l2, rel=1e-5)
    assert norms["l2"] == pytest.approx(clip_norms, rel=1e-5)
    assert norms["l1"] == pytest.approx(expected_l1, rel=1e-5)
    assert len(set(norms["l2"])) == 7 and all(n > 0 for n in norms["l2"])


def test_recorder_sees_the_clipped_gradient_and_round_trips(workload, tmp_path):
    recorder = GradNormRecorder(default_algorithms().get("nadamw"))
    hp, model, state, batches, rng = _setup(workload, recorder, grad_clip=1e-3)
    state, model = _steps(workload, recorder, hp, model, state, batches, rng, 0, 3)
    assert recorder.grad_norms(state)["l2"] == pytest.approx([1e-3] * 3, rel=1e-4)  # after hp.grad_clip
    saved = recorder.optimizer_state_dict(state)
    # a fresh state restored from the checkpoint keeps the record and keeps appending to it
    hp2, model2, state2, batches2, rng2 = _setup(workload, recorder, seed=1, grad_clip=1e-3)
    state2 = recorder.load_optimizer_state_dict(state2, saved)
    model2.load_state_dict(model.state_dict())
    state2, _ = _steps(workload, recorder, hp2, model2, state2, batches2, rng2, 3, 2)
    assert len(recorder.grad_norms(state2)["l2"]) == 5
    path = recorder.save(tmp_path / "norms.json", state2)
    data = json.loads(path.read_text())
    assert data["workload"] == workload.spec.key and data["batch_size"] == 128 and len(data["l1"]) == 5
    assert load_grad_norms(path, "l2") == recorder.grad_norms(state2)["l2"]


def test_recorder_without_a_torch_optimizer_reads_the_gradients():
    class PlainSGD(Algorithm):
        name = "plain_sgd"

        def get_batch_size(self, workload_name):
            return 128

        def init_optimizer_state(self, workload, model_params, model_state, hyperparameters, rng):
            return {}

        def update_params(self, workload, model, types, model_state, hp, batch, loss_type, state, eval_results,
                          global_step, rng, train_state=None):
            for p in model.parameters():
                p.grad = None
            logits, new_state = workload.model_fn(model, batch, model_state, ForwardPassMode.TRAIN, rng,
                                                  update_batch_norm=True)
            losses = workload.loss_fn(batch["targets"], logits, batch.get("weights"))
            (losses["summed"] / losses["n_valid_examples"]).backward()
            with torch.no_grad():
                for p in model.parameters():
                    p -= 0.01 * p.grad
            return state, model, new_state

    wl = default_workloads().create("mnist1d", variant="cnn")
    recorder = GradNormRecorder(PlainSGD())
    hp, model, state, batches, rng = _setup(wl, recorder)
    seen = []
    _steps(wl, recorder, hp, model, state, batches, rng, 0, 4,
           after_step=lambda m, b: seen.append(float(torch.nn.utils.clip_grad_norm_(m.parameters(), float("inf")))))
    assert state["hooked"] is False
    assert recorder.grad_norms(state)["l2"] == pytest.approx(seen, rel=1e-5)


# ---------------------------------------------------------------------------- composed algorithms
def test_composed_algorithms_are_registered_with_spaces_and_papers():
    registry = default_algorithms()
    papers = {"nadamw_rex": "Chen", "nadamw_wsd": "Hägele", "nadamw_power": "Shen", "nadamw_constant": "constant"}
    for name in COMPOSED:
        algorithm = registry.get(name)
        assert papers[name] in algorithm.summary
        space = algorithm.search_space()
        assert set(space.names) <= set(algorithm.self_tuning_defaults), name  # defaults cover the space
        assert "learning_rate" in space.names
    assert "nadamw_refined" not in registry.names()


def test_composed_schedules_use_the_horizon_and_batch_size(workload):
    registry = default_algorithms()
    # mnist1d cnn: step_hint 1500, batch size 128, warmup round(0.05 * 1500) = 75
    expected = {
        "nadamw_constant": schedules.constant_with_warmup(1500, 75),
        "nadamw_rex": schedules.rex(1500, 75),
        "nadamw_wsd": schedules.wsd(1500, 75, 0.2, "1-sqrt"),
        "nadamw_power": schedules.power(1500, 128, 1.0, 0.51, 75, 0.1, "exponential"),
    }
    assert workload.step_hint == 1500
    for name, reference in expected.items():
        algorithm = registry.get(name)
        _, _, state, _, _ = _setup(workload, algorithm)
        for step in (0, 74, 75, 200, 1199, 1200, 1350, 1499, 1500, 4000):
            assert state["schedule"](step) == reference(step), (name, step)


@pytest.mark.parametrize("name", COMPOSED)
def test_composed_algorithm_trains(workload, name):
    algorithm = default_algorithms().get(name)
    hp, model, state, batches, rng = _setup(workload, algorithm)
    before = workload.evaluate_split(model, None, "validation")
    _steps(workload, algorithm, hp, model, state, batches, rng, 0, 100)
    after = workload.evaluate_split(model, None, "validation")
    assert after["loss"] < before["loss"] - 0.3
    assert after["accuracy"] > before["accuracy"] + 0.15


def test_two_run_refinement_protocol(workload, tmp_path):
    # run 1: NAdamW recording gradient norms; run 2: NAdamW with the schedule refined from them
    recorder = GradNormRecorder(default_algorithms().get("nadamw"), autosave=tmp_path / "norms.json")
    hp, model, state, batches, rng = _setup(workload, recorder)
    state, model = _steps(workload, recorder, hp, model, state, batches, rng, 0, 20)
    recorder.prepare_for_eval(workload, model, workload.model_params_types, None, hp, workload.loss_type, state, [],
                              20, rng)  # autosave
    assert len(load_grad_norms(tmp_path / "norms.json", "l1")) == 20

    refined = nadamw_refined(tmp_path / "norms.json")
    hp2, model2, state2, batches2, rng2 = _setup(workload, refined)
    sched = state2["schedule"]
    assert sched(1500) == 0.0 and sched(1499) > 0 and 0 < sched(0) < sched(74) <= 1.0  # warmup, ends at 1500
    before = workload.evaluate_split(model2, None, "validation")
    _steps(workload, refined, hp2, model2, state2, batches2, rng2, 0, 60)
    after = workload.evaluate_split(model2, None, "validation")
    assert after["loss"] < before["loss"] - 0.3  # about 0.6 with seed 0
    assert tmp_path / "norms.json" in refined.source_files()


def test_refine_gives_any_optimizer_schedule_algorithm_the_refined_schedule(tmp_path):
    from laptime.algorithms.refinement import refine

    path = tmp_path / "norms.json"
    path.write_text(json.dumps({"format": "laptime.grad_norms/1", "l1": [2.0] * 50, "l2": [1.0] * 50}))
    base = default_algorithms().get("adamw")
    refined = refine(base, path, norm="l2", smoothing=1)
    assert refined.name == "adamw_refined" and "adamw" in refined.summary
    assert refined.self_tuning_defaults == base.self_tuning_defaults
    assert refined.get_batch_size("mnist1d/base@cpu") == base.get_batch_size("mnist1d/base@cpu")
    hp = {"warmup_factor": 0.0, "decay_steps_factor": 1.0}
    schedule = refined._schedule_factory(hp, 100)
    # constant norms: exactly linear decay to 0 at the horizon (step_hint 100)
    assert [schedule(s) for s in (0, 25, 50, 99, 100)] == pytest.approx([1.0, 0.75, 0.5, 0.01, 0.0])
    assert base._schedule_factory(hp, 100)(25) != pytest.approx(0.75)  # the original keeps its cosine
    assert path in refined.source_files() and path not in base.source_files()
    with pytest.raises(TypeError, match="not an optimizer"):
        refine(GradNormRecorder(base), path)
    with pytest.raises(ValueError, match="norm"):
        refine(base, path, norm="l3")
