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
