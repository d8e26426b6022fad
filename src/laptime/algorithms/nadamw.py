"""NAdamW: Adam with Nesterov momentum (Dozat 2016) and decoupled weight decay (Loshchilov & Hutter 2019).

This is the update of AlgoPerf's NAdamW baseline. ``torch.optim.NAdam(decoupled_weight_decay=True)``
is *not* the same rule: it multiplies β1 by a momentum-decay schedule
(μ_t = β1·(1 − ½·0.96^(t·ψ))), which changes the effective momentum; so the rule is written here,
with ``torch._foreach`` kernels over all tensors of a group for speed.

Per parameter, with gradient g, step t, learning rate η and weight decay λ::

    m ← β1·m + (1−β1)·g
    v ← β2·v + (1−β2)·g²
    m̂ = (β1·m + (1−β1)·g) / (1−β1^t)        # Nesterov look-ahead, bias-corrected
    v̂ = v / (1−β2^t)
    θ ← θ·(1 − η·λ) − η · m̂ / (√v̂ + ε)
"""

from __future__ import annotations

import math

import torch


class NAdamW(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        if lr < 0:
            raise ValueError(f"invalid learning rate {lr}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"invalid betas {betas}")
        if eps < 0 or weight_decay < 0:
            raise ValueError(f"invalid eps {eps} or weight_decay {weight_decay}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads, exp_avgs, exp_avg_sqs = [], [], [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("NAdamW does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                params.append(p)
                grads.append(p.grad)
                exp_avgs.append(state["exp_avg"])
                exp_avg_sqs.append(state["exp_avg_sq"])
            if not params:
                continue
            beta1, beta2 = group["betas"]
            lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
            step = self.state[params[0]]["step"]
            bias1 = 1.0 - beta1**step
            bias2 = 1.0 - beta2**step

            if wd != 0:
                torch._foreach_mul_(params, 1.0 - lr * wd)
            torch._foreach_lerp_(exp_avgs, grads, 1.0 - beta1)
            torch._foreach_mul_(exp_avg_sqs, beta2)
            torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1.0 - beta2)
            # Nesterov numerator: β1·m + (1−β1)·g
            numer = torch._foreach_mul(exp_avgs, beta1)
            torch._foreach_add_(numer, grads, alpha=1.0 - beta1)
            denom = torch._foreach_sqrt(exp_avg_sqs)
            torch._foreach_div_(denom, math.sqrt(bias2))
            torch._foreach_add_(denom, eps)
            torch._foreach_addcdiv_(params, numer, denom, value=-lr / bias1)
        return loss
