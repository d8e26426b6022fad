"""Sharpness-aware minimisation (Foret et al. 2021) around AdamW, with pytorch_optimizer.SAM.

One ``update_params`` call is two forward/backward passes on the same batch: the gradient at ``w``
gives the ascent step ``e = rho · g / ||g||`` (``SAM.first_step``), the gradient at ``w + e`` is
then applied to ``w`` by AdamW (``SAM.second_step``). The second pass does not update batch-norm
statistics. ``SAM`` shares its state and parameter groups with the base AdamW, so its
``state_dict`` is the AdamW state.
"""

from __future__ import annotations

from pathlib import Path

import pytorch_optimizer
import torch

from laptime.algorithms.baselines import BATCH_SIZES, SPACES, warmup_then_decay
from laptime.algorithms.optimizer_algorithm import OptimizerAlgorithm


def _sam_adamw(groups, hp):
    return pytorch_optimizer.SAM(groups, base_optimizer=torch.optim.AdamW, rho=float(hp.get("rho", 0.05)),
                                 adaptive=bool(hp.get("adaptive", False)), lr=float(hp.learning_rate),
                                 betas=(1.0 - float(hp.one_minus_beta1), float(hp.beta2)),
                                 eps=float(hp.get("epsilon", 1e-8)))


class SAMAlgorithm(OptimizerAlgorithm):
    def __init__(self):
        super().__init__(
            "sam",
            _sam_adamw,
            warmup_then_decay,
            BATCH_SIZES,
            summary="SAM, sharpness-aware minimisation (Foret et al. 2021) around AdamW, 2 forward/backward passes "
                    "per step, warmup + cosine; pytorch_optimizer.SAM + torch.optim.AdamW",
            search_space=SPACES / "sam.json",
            self_tuning_defaults={"learning_rate": 2e-3, "one_minus_beta1": 0.1, "beta2": 0.995, "weight_decay": 0.1,
                                  "rho": 0.05, "warmup_factor": 0.05, "decay": "cosine"},
            extra_sources=[Path(__file__)],
        )

    def update_params(self, workload, current_param_container, current_params_types, model_state, hyperparameters,
                      batch, loss_type, optimizer_state, eval_results, global_step, rng, train_state=None):
        model = current_param_container
        optimizer = optimizer_state["optimizer"]
        factor = self._lr_factor(optimizer_state, global_step)
        optimizer.zero_grad(set_to_none=True)
        loss, new_model_state = self._mean_loss(workload, model, model_state, batch, rng, optimizer_state)
        loss.backward()
        optimizer.first_step(zero_grad=True)  # w -> w + e
        loss, _ = self._mean_loss(workload, model, new_model_state, batch, rng, optimizer_state,
                                  update_batch_norm=False)
        loss.backward()
        self._clip_gradients(model, optimizer_state)
        self._set_learning_rates(optimizer_state, factor)
        optimizer.second_step()  # back to w, AdamW step with the gradient at w + e
        return optimizer_state, model, new_model_state
