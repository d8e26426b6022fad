"""Schedule-free AdamW (Defazio et al. 2024) with pytorch_optimizer.ScheduleFreeAdamW.

No decay schedule: the optimizer warms up linearly over ``warmup_factor × step_hint`` steps by
itself and then keeps a constant learning rate; the model is evaluated at the averaged point ``x``
(``optimizer.eval()`` in :meth:`prepare_for_eval`), while gradients are taken at ``y``
(``optimizer.train()``, switched back at the start of the next :meth:`update_params`).

Known limitation: batch-norm running statistics are those collected at the training point ``y``;
the paper recomputes them at ``x`` before evaluating, which is not done here.
"""

from __future__ import annotations

from pathlib import Path

import pytorch_optimizer

from laptime.algorithms import schedules
from laptime.algorithms.baselines import BATCH_SIZES, SPACES
from laptime.algorithms.optimizer_algorithm import OptimizerAlgorithm


class ScheduleFreeAdamWAlgorithm(OptimizerAlgorithm):
    def __init__(self):
        super().__init__(
            "schedule_free_adamw",
            self._unused_factory,
            lambda hp, step_hint: schedules.constant(),
            BATCH_SIZES,
            summary="Schedule-free AdamW, iterate averaging instead of a decay schedule (Defazio et al. 2024), "
                    "built-in warmup, evaluates the averaged weights; pytorch_optimizer.ScheduleFreeAdamW",
            search_space=SPACES / "schedule_free_adamw.json",
            self_tuning_defaults={"learning_rate": 5e-3, "one_minus_beta1": 0.1, "beta2": 0.995,
                                  "weight_decay": 0.05, "warmup_factor": 0.05},
            extra_sources=[Path(__file__)],
            stop_when_schedule_ends=False,
        )

    @staticmethod
    def _unused_factory(groups, hp):  # pragma: no cover - replaced in init_optimizer_state
        raise NotImplementedError

    def init_optimizer_state(self, workload, model_params, model_state, hyperparameters, rng):
        hp = hyperparameters
        warmup = round(float(hp.get("warmup_factor", 0.05)) * workload.step_hint)
        self._optimizer_factory = lambda groups, hp: pytorch_optimizer.ScheduleFreeAdamW(
            groups, lr=float(hp.learning_rate), betas=(1.0 - float(hp.one_minus_beta1), float(hp.beta2)),
            weight_decay=float(hp.get("weight_decay", 0.0)), warmup_steps=warmup, eps=float(hp.get("epsilon", 1e-8)))
        state = super().init_optimizer_state(workload, model_params, model_state, hyperparameters, rng)
        state["optimizer"].train()
        return state

    @staticmethod
    def in_train_mode(optimizer_state) -> bool:
        return all(group["train_mode"] for group in optimizer_state["optimizer"].param_groups)

    def update_params(self, workload, current_param_container, current_params_types, model_state, hyperparameters,
                      batch, loss_type, optimizer_state, eval_results, global_step, rng, train_state=None):
        optimizer_state["optimizer"].train()  # back to the training point y after an eval (no-op otherwise)
        return super().update_params(workload, current_param_container, current_params_types, model_state,
                                     hyperparameters, batch, loss_type, optimizer_state, eval_results, global_step,
                                     rng, train_state)

    def prepare_for_eval(self, workload, current_param_container, current_params_types, model_state, hyperparameters,
                         loss_type, optimizer_state, eval_results, global_step, rng):
        optimizer_state["optimizer"].eval()  # swap in the averaged point x
        return optimizer_state, current_param_container, model_state
