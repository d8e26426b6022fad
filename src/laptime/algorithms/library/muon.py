"""Muon (Jordan et al. 2024): orthogonalised Nesterov momentum for weight matrices, AdamW for the rest.

Own implementation (``torch.optim.Muon`` only takes 2-D parameters; conv filters need reshaping):
one optimizer with two kinds of parameter groups, so a single ``state_dict`` checkpoints both.

* Muon groups: parameters tagged WEIGHT, CONV_WEIGHT or ATTENTION_* (not the bias) with ndim >= 2,
  except the output head (a WEIGHT whose module is named ``head``, ``lm_head``, ``classifier``,
  ``output`` or ``fc_out``). The update is Nesterov momentum (0.95) flattened to
  ``(rows, fan_in)``, orthogonalised by 5 quintic Newton–Schulz iterations, scaled by
  ``max(1, rows/cols) ** 0.5``; decoupled weight decay ``lr × wd``.
* AdamW groups: embeddings, biases, normalisation parameters and the head, with their own
  learning rate (``adam_learning_rate``); biases/norms get no weight decay.

Both learning rates follow the warmup + cosine schedule.
"""

from __future__ import annotations

from pathlib import Path

import torch

from laptime.algorithms.baselines import BATCH_SIZES, SPACES, warmup_then_decay
from laptime.algorithms.optimizer_algorithm import _NO_DECAY, OptimizerAlgorithm
from laptime.api import ParameterType

_MUON_TYPES = {
    ParameterType.WEIGHT,
    ParameterType.CONV_WEIGHT,
    ParameterType.ATTENTION_Q,
    ParameterType.ATTENTION_K,
    ParameterType.ATTENTION_V,
    ParameterType.ATTENTION_OUT,
    ParameterType.ATTENTION_QKV,
    ParameterType.ATTENTION_KV,
}
_HEAD_NAMES = {"head", "lm_head", "classifier", "output", "fc_out"}


def zeropower_via_newtonschulz5(g: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """Approximately orthogonalise a 2-D matrix (U S V^T -> ~U V^T), Keller Jordan's quintic iteration."""
    a, b, c = (3.4445, -4.7750, 2.0315)
    x = g.float()
    transposed = x.size(0) > x.size(1)
    if transposed:
        x = x.T
    x = x / (x.norm() + 1e-7)
    for _ in range(steps):
        s = x @ x.T
        x = a * x + (b * s + c * s @ s) @ x
    if transposed:
        x = x.T
    return x.to(g.dtype)


class MuonWithAdamW(torch.optim.Optimizer):
    """Groups with ``use_muon=True`` get Muon, the others AdamW (``betas``, ``eps``)."""

    def __init__(self, groups, lr=0.02, momentum=0.95, nesterov=True, ns_steps=5, betas=(0.9, 0.95), eps=1e-8,
                 weight_decay=0.0):
        defaults = {"lr": lr, "momentum": momentum, "nesterov": nesterov, "ns_steps": ns_steps, "betas": betas,
                    "eps": eps, "weight_decay": weight_decay, "use_muon": False}
        super().__init__(groups, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, wd = group["lr"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad, state = p.grad, self.state[p]
                if group["use_muon"]:
                    if not state:
                        state["momentum_buffer"] = torch.zeros_like(p)
                    buf = state["momentum_buffer"]
                    buf.lerp_(grad, 1.0 - group["momentum"])
                    update = grad.lerp(buf, group["momentum"]) if group["nesterov"] else buf
                    matrix = update.reshape(update.size(0), -1)
                    ortho = zeropower_via_newtonschulz5(matrix, group["ns_steps"])
                    ortho *= max(1.0, matrix.size(0) / matrix.size(1)) ** 0.5
                    p.mul_(1.0 - lr * wd)
                    p.add_(ortho.view_as(p), alpha=-lr)
                else:
                    if not state:
                        state["step"] = torch.tensor(0.0)
                        state["exp_avg"] = torch.zeros_like(p)
                        state["exp_avg_sq"] = torch.zeros_like(p)
                    beta1, beta2 = group["betas"]
                    state["step"] += 1
                    t = float(state["step"])
                    state["exp_avg"].lerp_(grad, 1.0 - beta1)
                    state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
                    denom = (state["exp_avg_sq"] / (1.0 - beta2**t)).sqrt_().add_(group["eps"])
                    p.mul_(1.0 - lr * wd)
                    p.addcdiv_(state["exp_avg"], denom, value=-lr / (1.0 - beta1**t))
        return loss


class MuonAlgorithm(OptimizerAlgorithm):
    def __init__(self):
        super().__init__(
            "muon",
            self._unused_factory,
            warmup_then_decay,
            BATCH_SIZES,
            summary="Muon, Newton–Schulz-orthogonalised Nesterov momentum for weight matrices and conv filters "
                    "(Jordan et al. 2024) + AdamW for the rest, warmup + cosine; own implementation",
            search_space=SPACES / "muon.json",
            self_tuning_defaults={"learning_rate": 0.02, "adam_learning_rate": 3e-3, "one_minus_momentum": 0.05,
                                  "weight_decay": 0.01, "one_minus_beta1": 0.1, "beta2": 0.95,
                                  "warmup_factor": 0.05, "decay": "cosine"},
            extra_sources=[Path(__file__)],
        )

    @staticmethod
    def _unused_factory(groups, hp):  # pragma: no cover - init_optimizer_state builds the groups itself
        raise NotImplementedError

    @staticmethod
    def is_muon_parameter(name: str, param: torch.Tensor, kind: ParameterType) -> bool:
        module = name.rsplit(".", 1)[0].rsplit(".", 1)[-1] if "." in name else ""
        return kind in _MUON_TYPES and param.ndim >= 2 and module not in _HEAD_NAMES

    def init_optimizer_state(self, workload, model_params, model_state, hyperparameters, rng):
        hp = hyperparameters
        wd = float(hp.get("weight_decay", 0.0))
        adam_lr = float(hp.get("adam_learning_rate", 3e-3))
        muon, adam_decay, adam_no_decay = [], [], []
        for name, param in model_params.named_parameters():
            if not param.requires_grad:
                continue
            kind = workload.model_params_types.get(name, ParameterType.WEIGHT)
            if self.is_muon_parameter(name, param, kind):
                muon.append(param)
            elif kind in _NO_DECAY:
                adam_no_decay.append(param)
            else:
                adam_decay.append(param)
        groups = [
            {"params": muon, "use_muon": True, "lr": float(hp.learning_rate), "weight_decay": wd},
            {"params": adam_decay, "use_muon": False, "lr": adam_lr, "weight_decay": wd},
            {"params": adam_no_decay, "use_muon": False, "lr": adam_lr, "weight_decay": 0.0},
        ]
        optimizer = MuonWithAdamW([g for g in groups if g["params"]],
                                  momentum=1.0 - float(hp.get("one_minus_momentum", 0.05)),
                                  betas=(1.0 - float(hp.get("one_minus_beta1", 0.1)), float(hp.get("beta2", 0.95))),
                                  eps=float(hp.get("epsilon", 1e-8)))
        return {
            "optimizer": optimizer,
            "schedule": self._schedule_factory(hp, workload.step_hint),
            "base_lrs": [group["lr"] for group in optimizer.param_groups],
            "label_smoothing": float(hp.get("label_smoothing", 0.0)),
            "grad_clip": hp.get("grad_clip"),
        }
