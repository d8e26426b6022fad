"""Shared helpers for the algorithm tests: set an algorithm up on a workload, run steps by hand."""

from __future__ import annotations

import torch

from laptime.api import Hyperparameters
from laptime.runner import derive_seeds


def setup_algorithm(workload, algorithm, seed=0, **overrides):
    """Model, optimizer state, input queue and rng as the runner would make them.

    Returns ``(hp, model, state, batches, rng)``; ``overrides`` are laid over the self-tuning defaults.
    """
    hp = Hyperparameters({**algorithm.self_tuning_defaults, **overrides})
    seeds = derive_seeds(seed)
    model, model_state = workload.init_model_fn(seeds["model"])
    rng = torch.Generator().manual_seed(seeds["algorithm"])
    state = algorithm.init_optimizer_state(workload, model, model_state, hp, rng)
    batches = workload.train_batches(algorithm.get_batch_size(workload.spec.key), seeds["data"])
    return hp, model, state, batches, rng


def train_steps(workload, algorithm, hp, model, state, batches, rng, start, n, select=False):
    """``n`` update steps from global step ``start`` (batches via ``data_selection`` when ``select``)."""
    for step in range(start, start + n):
        if select:
            batch = algorithm.data_selection(workload, batches, state, model, None, hp, step, rng)
        else:
            batch = next(batches)
        state, model, _ = algorithm.update_params(workload, model, workload.model_params_types, None, hp, batch,
                                                  workload.loss_type, state, [], step, rng)
    return state, model


def assert_checkpoint_round_trip(workload, name, tmp_path, before=20, after=10):
    """Train ``before`` steps, checkpoint (model + ``optimizer_state_dict``), then check that
    ``after`` more steps in place and after restoring into a fresh model and state are bit-identical."""
    import copy

    from laptime.algorithms import default_algorithms

    algorithm = default_algorithms().get(name)
    hp, model, state, batches, rng = setup_algorithm(workload, algorithm)
    state, model = train_steps(workload, algorithm, hp, model, state, batches, rng, 0, before)
    path = tmp_path / "ckpt.pt"
    torch.save({"model": model.state_dict(), "optimizer": algorithm.optimizer_state_dict(state)}, path)
    rest = [next(batches) for _ in range(after)]
    _, model_a = train_steps(workload, algorithm, hp, model, state, iter(copy.copy(rest)), rng, before, after)

    algorithm_b = default_algorithms().get(name)
    hp_b, model_b, state_b, _, rng_b = setup_algorithm(workload, algorithm_b, seed=1)  # other init, overwritten
    ckpt = torch.load(path, weights_only=False)
    model_b.load_state_dict(ckpt["model"])
    state_b = algorithm_b.load_optimizer_state_dict(state_b, ckpt["optimizer"])
    torch.manual_seed(12345)  # nothing may depend on torch's global RNG
    _, model_b = train_steps(workload, algorithm_b, hp_b, model_b, state_b, iter(rest), rng_b, before, after)
    for (n, a), (_, b) in zip(model_a.state_dict().items(), model_b.state_dict().items()):
        assert torch.equal(a, b), n
