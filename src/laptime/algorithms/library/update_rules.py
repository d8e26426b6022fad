"""Update rules from the literature, as laptime Algorithms.

Most are a library optimizer (``torch.optim`` or ``pytorch_optimizer``) inside
:class:`~laptime.algorithms.OptimizerAlgorithm` with the baselines' schedule (linear warmup, then
cosine decay to zero at ``step_hint``). Those that need more than one optimizer step per
``update_params`` call, an eval-time weight swap or their own code live in ``ur_*.py``:

* ``muon.py`` — Muon (own Newton–Schulz implementation) + AdamW for the rest;
* ``schedule_free.py`` — schedule-free AdamW, switching weights in ``prepare_for_eval``;
* ``sam.py`` — sharpness-aware minimisation (two forward/backward passes per step);
* ``sophia.py`` — Sophia with Hutchinson Hessian estimates, reproducible across checkpoints.

Each has a search space in ``spaces/<name>.json`` and self-tuning defaults (checked on
``mnist1d/cnn`` by ``tests/test_library.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytorch_optimizer
import torch

from laptime.algorithms.baselines import BATCH_SIZES, SPACES, warmup_then_decay
from laptime.algorithms.optimizer_algorithm import OptimizerAlgorithm
from laptime.api import Algorithm


def _lr(hp) -> float:
    return float(hp.learning_rate)


def _b1(hp, default: float = 0.1) -> float:
    return 1.0 - float(hp.get("one_minus_beta1", default))


def _lamb(groups, hp):
    return pytorch_optimizer.Lamb(groups, lr=_lr(hp), betas=(_b1(hp), float(hp.get("beta2", 0.999))),
                                  eps=float(hp.get("epsilon", 1e-6)), weight_decouple=True, max_grad_norm=0.0)


def _lars(groups, hp):
    return pytorch_optimizer.LARS(groups, lr=_lr(hp), momentum=1.0 - float(hp.get("one_minus_momentum", 0.1)),
                                  trust_coefficient=float(hp.get("trust_coefficient", 0.001)), nesterov=False)


def _adafactor(groups, hp):
    return torch.optim.Adafactor(groups, lr=_lr(hp), beta2_decay=float(hp.get("beta2_decay", -0.8)),
                                 eps=(None, float(hp.get("epsilon2", 1e-3))), foreach=False)


def _lion(groups, hp):
    return pytorch_optimizer.Lion(groups, lr=_lr(hp), betas=(_b1(hp), float(hp.get("beta2", 0.99))),
                                  weight_decouple=True)


def _adan(groups, hp):
    betas = (_b1(hp, 0.02), 1.0 - float(hp.get("one_minus_beta2", 0.08)), float(hp.get("beta3", 0.99)))
    return pytorch_optimizer.Adan(groups, lr=_lr(hp), betas=betas, eps=float(hp.get("epsilon", 1e-8)),
                                  weight_decouple=False)


def _adabelief(groups, hp):
    return pytorch_optimizer.AdaBelief(groups, lr=_lr(hp), betas=(_b1(hp), float(hp.get("beta2", 0.999))),
                                       eps=float(hp.get("epsilon", 1e-16)), weight_decouple=True, rectify=False)


def _prodigy(groups, hp):
    return pytorch_optimizer.Prodigy(groups, lr=float(hp.get("learning_rate", 1.0)),
                                     betas=(_b1(hp), float(hp.get("beta2", 0.999))),
                                     d_coef=float(hp.get("d_coef", 1.0)), weight_decouple=True,
                                     bias_correction=False, safeguard_warmup=True)


def _soap(groups, hp):
    return pytorch_optimizer.SOAP(groups, lr=_lr(hp), betas=(_b1(hp, 0.05), float(hp.get("beta2", 0.95))),
                                  precondition_frequency=int(hp.get("precondition_frequency", 10)),
                                  eps=float(hp.get("epsilon", 1e-8)))


def _alg(name, factory, summary, defaults) -> OptimizerAlgorithm:
    return OptimizerAlgorithm(name, factory, warmup_then_decay, BATCH_SIZES, summary=summary,
                              search_space=SPACES / f"{name}.json", self_tuning_defaults=defaults,
                              extra_sources=[Path(__file__)])


_SCHED = {"warmup_factor": 0.05, "decay": "cosine"}


def update_rule_algorithms() -> list[Algorithm]:
    """Fresh instances of the library's update rules."""
    from laptime.algorithms.library.muon import MuonAlgorithm
    from laptime.algorithms.library.sam import SAMAlgorithm
    from laptime.algorithms.library.schedule_free import ScheduleFreeAdamWAlgorithm
    from laptime.algorithms.library.sophia import SophiaAlgorithm

    return [
        _alg("lamb", _lamb,
             "LAMB, layer-wise adaptive moments (You et al. 2020), warmup + cosine; pytorch_optimizer.Lamb",
             {"learning_rate": 2e-2, "one_minus_beta1": 0.1, "beta2": 0.999, "weight_decay": 0.01, **_SCHED}),
        _alg("lars", _lars,
             "LARS, layer-wise adaptive rate scaling for SGD momentum (You et al. 2017), warmup + cosine; "
             "pytorch_optimizer.LARS",
             {"learning_rate": 5.0, "one_minus_momentum": 0.1, "trust_coefficient": 0.001, "weight_decay": 1e-4,
              **_SCHED}),
        _alg("adafactor", _adafactor,
             "Adafactor, factored second moments (Shazeer & Stern 2018), lr caps the relative step, warmup + cosine; "
             "torch.optim.Adafactor",
             {"learning_rate": 5e-2, "beta2_decay": -0.8, "weight_decay": 0.01, **_SCHED}),
        _alg("lion", _lion,
             "Lion, sign momentum found by program search (Chen et al. 2023), warmup + cosine; pytorch_optimizer.Lion",
             {"learning_rate": 1e-3, "one_minus_beta1": 0.1, "beta2": 0.99, "weight_decay": 0.3, **_SCHED}),
        _alg("adan", _adan,
             "Adan, adaptive Nesterov momentum (Xie et al. 2022), warmup + cosine; pytorch_optimizer.Adan",
             {"learning_rate": 5e-3, "one_minus_beta1": 0.02, "one_minus_beta2": 0.08, "beta3": 0.99,
              "weight_decay": 0.02, **_SCHED}),
        _alg("adabelief", _adabelief,
             "AdaBelief, Adam scaled by the belief in the gradient (Zhuang et al. 2020), warmup + cosine; "
             "pytorch_optimizer.AdaBelief",
             {"learning_rate": 3e-3, "one_minus_beta1": 0.1, "beta2": 0.999, "weight_decay": 0.1, **_SCHED}),
        MuonAlgorithm(),
        ScheduleFreeAdamWAlgorithm(),
        _alg("prodigy", _prodigy,
             "Prodigy, learning-rate-free Adam with a D-adaptation step size (Mishchenko & Defazio 2024), lr=1 "
             "× warmup + cosine; pytorch_optimizer.Prodigy",
             {"learning_rate": 1.0, "d_coef": 1.0, "one_minus_beta1": 0.1, "beta2": 0.999, "weight_decay": 0.01,
              **_SCHED}),
        SAMAlgorithm(),
        _alg("soap", _soap,
             "SOAP, Adam in Shampoo's eigenbasis (Vyas et al. 2024), warmup + cosine; pytorch_optimizer.SOAP",
             {"learning_rate": 3e-3, "one_minus_beta1": 0.05, "beta2": 0.95, "weight_decay": 0.01,
              "precondition_frequency": 10, **_SCHED}),
        SophiaAlgorithm(),
    ]
