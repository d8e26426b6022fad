"""Sophia (Liu et al. 2024) with Hutchinson Hessian-diagonal estimates, pytorch_optimizer.SophiaH.

Every ``hessian_update_period`` steps (and on the first), the backward pass keeps its graph and a
Hessian-vector product with a Gaussian probe ``z`` gives the estimate ``z ⊙ Hz``, handed to
``SophiaH.step(hessian=...)``. The probe is drawn from a generator seeded by a seed kept in the
optimizer state (drawn from ``rng`` at init) and the step number, not from torch's global RNG, so
training continues bit-identically after a checkpoint restore. The forward pass of an estimating
step uses the math attention kernel (fused kernels have no double backward). Update: ``lr · clip(m / max(h, eps), ±p)``,
with decoupled weight decay, warmup + cosine.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytorch_optimizer
import torch
from torch.nn.attention import SDPBackend

from laptime.algorithms.baselines import BATCH_SIZES, SPACES, warmup_then_decay
from laptime.algorithms.optimizer_algorithm import OptimizerAlgorithm

_NEVER = 1 << 40  # SophiaH's own (global-RNG) Hessian schedule is never used: estimates are passed in


def _sophia(groups, hp):
    return pytorch_optimizer.SophiaH(groups, lr=float(hp.learning_rate),
                                     betas=(1.0 - float(hp.one_minus_beta1), float(hp.beta2)),
                                     p=float(hp.get("clip", 0.01)), update_period=_NEVER, weight_decouple=True,
                                     eps=float(hp.get("epsilon", 1e-12)))


class SophiaAlgorithm(OptimizerAlgorithm):
    def __init__(self):
        super().__init__(
            "sophia",
            _sophia,
            warmup_then_decay,
            BATCH_SIZES,
            summary="Sophia, clipped diagonal-Hessian preconditioning with Hutchinson estimates (Liu et al. 2024), "
                    "warmup + cosine; pytorch_optimizer.SophiaH with own reproducible Hessian-vector products",
            search_space=SPACES / "sophia.json",
            self_tuning_defaults={"learning_rate": 0.1, "clip": 0.05, "one_minus_beta1": 0.04, "beta2": 0.99,
                                  "weight_decay": 0.01, "hessian_update_period": 10, "warmup_factor": 0.05,
                                  "decay": "cosine"},
            extra_sources=[Path(__file__)],
        )

    def init_optimizer_state(self, workload, model_params, model_state, hyperparameters, rng):
        state = super().init_optimizer_state(workload, model_params, model_state, hyperparameters, rng)
        state["hessian_update_period"] = int(hyperparameters.get("hessian_update_period", 10))
        state["hessian_seed"] = int(torch.randint(0, 2**62, (1,), generator=rng).item())
        return state

    def update_params(self, workload, current_param_container, current_params_types, model_state, hyperparameters,
                      batch, loss_type, optimizer_state, eval_results, global_step, rng, train_state=None):
        model = current_param_container
        optimizer = optimizer_state["optimizer"]
        factor = self._lr_factor(optimizer_state, global_step)
        first = optimizer.param_groups[0].get("step", 0) == 0
        estimate = first or global_step % optimizer_state["hessian_update_period"] == 0
        optimizer.zero_grad(set_to_none=True)
        # Hessian-vector products need a double backward; fused attention kernels have none, the math one does
        with torch.nn.attention.sdpa_kernel(SDPBackend.MATH) if estimate else contextlib.nullcontext():
            loss, new_model_state = self._mean_loss(workload, model, model_state, batch, rng, optimizer_state)
        params = [p for group in optimizer.param_groups for p in group["params"]]
        grads = torch.autograd.grad(loss, params, create_graph=estimate, allow_unused=True)
        hessian = None
        if estimate:
            gen = torch.Generator(device=params[0].device).manual_seed(
                (optimizer_state["hessian_seed"] + global_step) % (2**63))
            zs = [torch.randn(p.shape, generator=gen, device=p.device, dtype=p.dtype) for p in params]
            used = [i for i, g in enumerate(grads) if g is not None]
            hzs = torch.autograd.grad([grads[i] for i in used], [params[i] for i in used],
                                      grad_outputs=[zs[i] for i in used], allow_unused=True)
            hessian = [torch.zeros_like(p) for p in params]
            for i, hz in zip(used, hzs):
                if hz is not None:
                    hessian[i] = hz * zs[i]
        for p, g in zip(params, grads):
            p.grad = None if g is None else g.detach()
        self._clip_gradients(model, optimizer_state)
        self._set_learning_rates(optimizer_state, factor)
        optimizer.step(hessian=hessian)
        return optimizer_state, model, new_model_state

    def optimizer_state_dict(self, optimizer_state):
        return {**super().optimizer_state_dict(optimizer_state), "hessian_seed": optimizer_state["hessian_seed"]}

    def load_optimizer_state_dict(self, optimizer_state, state_dict):
        optimizer_state = super().load_optimizer_state_dict(optimizer_state, state_dict)
        optimizer_state["hessian_seed"] = int(state_dict["hessian_seed"])
        return optimizer_state
