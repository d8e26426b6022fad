"""Batch-size and data-selection algorithms, built on the NAdamW baseline through the contract's
``data_selection`` and ``update_params`` (training data only; no validation data is touched).

* ``nadamw_high_loss`` — online batch selection by loss rank (Loshchilov & Hutter 2015, "Online
  Batch Selection for Faster Training of Neural Networks"): draw ``selection_factor`` batches
  from the input queue, score every example's loss with a no-grad forward pass (eval mode,
  batch-norm statistics untouched), and sample one batch without replacement with probabilities
  decaying exponentially in the loss rank, so the highest-loss example is ``selection_pressure``
  times as likely as the lowest (1 = uniform). The scoring pass is part of ``data_selection``
  and so counts as submission time.
* ``nadamw_growing_batch`` — a batch that grows when the gradient-noise ("norm") test says so
  (Byrd et al. 2012; the adaptive-batch rule of AdAdaGrad, Lau et al. 2024): each step uses
  ``k`` batches of the queue; ``update_params`` takes the gradient of each of the ``k``
  micro-batches, and when the variance of the micro-batch gradients is large against the squared
  norm of their mean — ``Σ_j ‖g_j − ḡ‖² / (k − 1) / k > η² ‖ḡ‖²`` — doubles ``k`` (up to
  ``max_batches``). The step uses ḡ, the gradient of the whole (k-fold) batch.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from laptime.algorithms.baselines import _ADAM_DEFAULTS, BATCH_SIZES, SPACES, _nadamw, warmup_then_decay
from laptime.algorithms.optimizer_algorithm import OptimizerAlgorithm
from laptime.api import ForwardPassMode



def _concat(batches: list[dict[str, Any]]) -> dict[str, Any]:
    return {key: torch.cat([b[key] for b in batches]) for key in batches[0]}


def _take(batch: dict[str, Any], index: torch.Tensor) -> dict[str, Any]:
    return {key: value[index] for key, value in batch.items()}


def rank_probabilities(scores: torch.Tensor, pressure: float) -> torch.Tensor:
    """Selection probabilities by rank: the highest score gets ``pressure`` times the weight of the
    lowest, decaying exponentially in between (``pressure = 1``: uniform)."""
    n = scores.numel()
    ranks = torch.empty(n, dtype=torch.float64)
    ranks[torch.argsort(scores.detach().double().cpu(), descending=True)] = torch.arange(n, dtype=torch.float64)
    weights = torch.exp(-math.log(pressure) * ranks / max(n - 1, 1))
    return weights / weights.sum()


class HighLossSelection(OptimizerAlgorithm):
    def data_selection(self, workload, input_queue, optimizer_state, current_param_container, model_state,
                       hyperparameters, global_step, rng):
        factor = int(hyperparameters.get("selection_factor", 2))
        first = next(input_queue)
        if factor <= 1:
            return first
        candidates = _concat([first, *(next(input_queue) for _ in range(factor - 1))])
        with torch.no_grad():
            logits, _ = workload.model_fn(current_param_container, candidates, model_state, ForwardPassMode.EVAL,
                                          rng, update_batch_norm=False)
            per_example = workload.loss_fn(candidates["targets"], logits, candidates.get("weights"))["per_example"]
        n_candidates = candidates["targets"].shape[0]
        scores = per_example.reshape(n_candidates, -1).mean(1)  # per-token losses → one score per example
        probs = rank_probabilities(scores, float(hyperparameters.get("selection_pressure", 10.0)))
        chosen = torch.multinomial(probs, first["targets"].shape[0], replacement=False, generator=rng)
        return _take(candidates, chosen.to(candidates["targets"].device))


class GrowingBatch(OptimizerAlgorithm):
    def init_optimizer_state(self, workload, model_params, model_state, hyperparameters, rng):
        state = super().init_optimizer_state(workload, model_params, model_state, hyperparameters, rng)
        state["chunks"] = max(2, int(hyperparameters.get("initial_batches", 2)))
        state["noise_test"] = float(hyperparameters.get("noise_test", 0.5))
        state["max_batches"] = int(hyperparameters.get("max_batches", 16))
        return state

    def data_selection(self, workload, input_queue, optimizer_state, current_param_container, model_state,
                       hyperparameters, global_step, rng):
        return _concat([next(input_queue) for _ in range(optimizer_state["chunks"])])

    def update_params(self, workload, current_param_container, current_params_types, model_state, hyperparameters,
                      batch, loss_type, optimizer_state, eval_results, global_step, rng, train_state=None):
        model = current_param_container
        optimizer: torch.optim.Optimizer = optimizer_state["optimizer"]
        factor = self._lr_factor(optimizer_state, global_step)
        params = [p for p in model.parameters() if p.requires_grad]
        k = optimizer_state["chunks"]
        chunk_grads = []
        for index in torch.arange(batch["targets"].shape[0], device=batch["targets"].device).chunk(k):
            micro = _take(batch, index)
            optimizer.zero_grad(set_to_none=True)
            loss, model_state = self._mean_loss(workload, model, model_state, micro, rng, optimizer_state)
            loss.backward()
            chunk_grads.append([p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)
                                for p in params])
        mean = [torch.stack(gs).mean(0) for gs in zip(*chunk_grads)]
        spread = sum(float(sum(((g - m) ** 2).sum() for g, m in zip(gs, mean))) for gs in chunk_grads) / (k - 1)
        mean_sq = float(sum((m**2).sum() for m in mean))
        if spread / k > optimizer_state["noise_test"] ** 2 * mean_sq:
            optimizer_state["chunks"] = min(2 * k, optimizer_state["max_batches"])
        for p, m in zip(params, mean):
            p.grad = m
        self._set_learning_rates(optimizer_state, factor)
        optimizer.step()
        return optimizer_state, model, model_state

    def optimizer_state_dict(self, optimizer_state):
        return {**super().optimizer_state_dict(optimizer_state), "chunks": optimizer_state["chunks"]}

    def load_optimizer_state_dict(self, optimizer_state, state_dict):
        optimizer_state = super().load_optimizer_state_dict(optimizer_state, state_dict)
        optimizer_state["chunks"] = int(state_dict["chunks"])
        return optimizer_state


def data_selection_algorithms() -> list[OptimizerAlgorithm]:
    sources = [__file__, SPACES.parent / "nadamw.py"]
    return [
        HighLossSelection(
            "nadamw_high_loss", _nadamw, warmup_then_decay, BATCH_SIZES,
            summary="NAdamW with online batch selection by loss rank (Loshchilov & Hutter 2015); own implementation",
            search_space=SPACES / "nadamw_high_loss.json",
            self_tuning_defaults={**_ADAM_DEFAULTS, "selection_factor": 2, "selection_pressure": 10.0},
            extra_sources=sources,
        ),
        GrowingBatch(
            "nadamw_growing_batch", _nadamw, warmup_then_decay, BATCH_SIZES,
            summary="NAdamW whose batch doubles when the gradient-noise norm test fails (Byrd et al. 2012; "
                    "AdAdaGrad, Lau et al. 2024); own implementation",
            search_space=SPACES / "nadamw_growing_batch.json",
            self_tuning_defaults={**_ADAM_DEFAULTS, "initial_batches": 2, "noise_test": 0.5, "max_batches": 16},
            extra_sources=sources,
        ),
    ]


__all__ = ["GrowingBatch", "HighLossSelection", "data_selection_algorithms", "rank_probabilities"]
