"""A helper module imported relatively by its submission (test data for laptime's AlgoPerf adapter)."""

import torch


class SignSGD(torch.optim.Optimizer):
    """Sign of the momentum-averaged gradient (Lion without its interpolation)."""

    def __init__(self, params, lr=1e-3, beta=0.9):
        super().__init__(params, {"lr": lr, "beta": beta})

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                m = self.state[p].setdefault("m", torch.zeros_like(p))
                m.mul_(group["beta"]).add_(p.grad, alpha=1 - group["beta"])
                p.add_(m.sign(), alpha=-group["lr"])
