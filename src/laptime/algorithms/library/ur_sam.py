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
from laptime.algorithms.simple import OptimizerAlgorithm
from laptime.api import ForwardPassMode, TrainingComplete


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

    def _loss(self, workload, model, model_state, batch, rng, optimizer_state, update_batch_norm):
        logits, new_model_state = workload.model_fn(model, batch, model_state, ForwardPassMode.TRAIN, rng,
                                                    update_batch_norm=update_batch_norm)
        losses = workload.loss_fn(batch["targets"], logits, batch.get("weights"),
                                  label_smoothing=optimizer_state["label_smoothing"])
        return losses["summed"] / losses["n_valid_examples"], new_model_state

    def update_params(self, workload, current_param_container, current_params_types, model_state, hyperparameters,
                      batch, loss_type, optimizer_state, eval_results, global_step, rng, train_state=None):
        model = current_param_container
        optimizer = optimizer_state["optimizer"]
        factor = optimizer_state["schedule"](global_step)
        if factor == 0.0 and self.stop_when_schedule_ends:
            raise TrainingComplete()
        optimizer.zero_grad(set_to_none=True)
        loss, new_model_state = self._loss(workload, model, model_state, batch, rng, optimizer_state, True)
        loss.backward()
        optimizer.first_step(zero_grad=True)  # w -> w + e
        loss, _ = self._loss(workload, model, new_model_state, batch, rng, optimizer_state, False)
        loss.backward()
        if optimizer_state["grad_clip"]:
            torch.nn.utils.clip_grad_norm_(model.parameters(), float(optimizer_state["grad_clip"]))
        for group, base_lr in zip(optimizer.param_groups, optimizer_state["base_lrs"]):
            group["lr"] = base_lr * factor
        optimizer.second_step()  # back to w, AdamW step with the gradient at w + e
        return optimizer_state, model, new_model_state
