"""The built-in baselines: they train, and their state round-trips through a checkpoint exactly."""

import copy

import pytest
import torch

from laptime.algorithms import default_algorithms, schedules
from algohelpers import setup_algorithm, train_steps

BASELINES = ["sgd_nesterov", "adamw", "nadamw"]
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def workload(cnn_workload):
    return cnn_workload


def _setup(workload, name, seed=0):
    algorithm = default_algorithms().get(name)
    return (algorithm, *setup_algorithm(workload, algorithm, seed))


_steps = train_steps


@pytest.mark.parametrize("name", BASELINES)
def test_baseline_trains(workload, name):
    algorithm, hp, model, state, batches, rng = _setup(workload, name)
    before = workload.evaluate_split(model, None, "validation")
    _steps(workload, algorithm, hp, model, state, batches, rng, 0, 150)
    after = workload.evaluate_split(model, None, "validation")
    assert after["loss"] < before["loss"] - 0.3
    assert after["accuracy"] > before["accuracy"] + 0.2


@pytest.mark.parametrize("name", BASELINES)
def test_baseline_state_round_trips_through_a_checkpoint(workload, name, tmp_path):
    algorithm, hp, model, state, batches, rng = _setup(workload, name)
    state, model = _steps(workload, algorithm, hp, model, state, batches, rng, 0, 20)
    path = tmp_path / "ckpt.pt"
    torch.save({"model": model.state_dict(), "optimizer": algorithm.optimizer_state_dict(state)}, path)
    rest = [next(batches) for _ in range(10)]

    # continue in place
    state_a, model_a = _steps(workload, algorithm, hp, model, state, iter(copy.copy(rest)), rng, 20, 10)

    # restore into a fresh model and state, continue on the same batches
    algorithm_b, hp_b, model_b, state_b, _, rng_b = _setup(workload, name, seed=1)  # other init, overwritten
    ckpt = torch.load(path, weights_only=False)
    model_b.load_state_dict(ckpt["model"])
    state_b = algorithm_b.load_optimizer_state_dict(state_b, ckpt["optimizer"])
    state_b, model_b = _steps(workload, algorithm_b, hp_b, model_b, state_b, iter(rest), rng_b, 20, 10)

    for (n, a), (_, b) in zip(model_a.state_dict().items(), model_b.state_dict().items()):
        assert torch.equal(a, b), n


def test_nadamw_matches_its_formula():
    from laptime.algorithms.nadamw import NAdamW

    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(5))
    ref = p.detach().clone()
    opt = NAdamW([p], lr=0.1, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.5)
    m = torch.zeros(5)
    v = torch.zeros(5)
    for t in range(1, 4):
        g = torch.randn(5)
        p.grad = g.clone()
        opt.step()
        m = 0.9 * m + 0.1 * g
        v = 0.99 * v + 0.01 * g * g
        ref = ref * (1 - 0.1 * 0.5)
        m_hat = (0.9 * m + 0.1 * g) / (1 - 0.9**t)
        v_hat = v / (1 - 0.99**t)
        ref = ref - 0.1 * m_hat / (v_hat.sqrt() + 1e-8)
        assert torch.allclose(p.detach(), ref, atol=1e-6), t


def test_warmup_decay_schedule_values():
    s = schedules.warmup_decay(total_steps=10, warmup_steps=2, decay="linear")
    assert [round(s(i), 4) for i in range(12)] == [0.5, 1.0, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125,
                                                     0.0, 0.0]
    c = schedules.warmup_decay(total_steps=4, warmup_steps=0, decay="cosine")
    assert [round(c(i), 4) for i in range(6)] == [1.0, 0.8536, 0.5, 0.1464, 0.0, 0.0]
