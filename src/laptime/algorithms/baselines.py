"""The first baselines: SGD with Nesterov momentum, AdamW and NAdamW.

Each is linear warmup (``warmup_factor`` of the horizon) then ``decay`` (``"cosine"`` or
``"linear"``) to zero at ``step_hint`` (times ``decay_steps_factor``), built with
:class:`OptimizerAlgorithm`. Hyperparameters follow AlgoPerf's baseline names
(``one_minus_beta1`` rather than ``beta1``, so a log scale makes sense near 1).
"""

from __future__ import annotations

from pathlib import Path

import torch

from laptime.algorithms import schedules
from laptime.algorithms.nadamw import NAdamW
from laptime.algorithms.optimizer_algorithm import OptimizerAlgorithm

SPACES = Path(__file__).parent / "spaces"

#: Batch sizes per workload (AlgoPerf baselines also pick a batch size per workload).
BATCH_SIZES = {"mnist1d": 128, "shakespeare@cpu": 32, "shakespeare@gpu": 64, "default": 128}


def warmup_then_decay(hp, step_hint: int) -> schedules.Schedule:
    return schedules.from_hyperparameters(hp, step_hint, decay=str(hp.get("decay", "cosine")))


def _betas(hp) -> tuple[float, float]:
    return 1.0 - float(hp.one_minus_beta1), float(hp.beta2)


def _adamw(groups, hp) -> torch.optim.Optimizer:
    return torch.optim.AdamW(groups, lr=float(hp.learning_rate), betas=_betas(hp), eps=float(hp.get("epsilon", 1e-8)),
                             foreach=True)


def _nadamw(groups, hp) -> torch.optim.Optimizer:
    return NAdamW(groups, lr=float(hp.learning_rate), betas=_betas(hp), eps=float(hp.get("epsilon", 1e-8)))


def _sgd_nesterov(groups, hp) -> torch.optim.Optimizer:
    return torch.optim.SGD(groups, lr=float(hp.learning_rate), momentum=1.0 - float(hp.one_minus_momentum),
                           nesterov=True, foreach=True)


_ADAM_DEFAULTS = {
    "learning_rate": 2e-3,
    "one_minus_beta1": 0.1,
    "beta2": 0.995,
    "weight_decay": 0.1,
    "warmup_factor": 0.05,
    "decay": "cosine",
}


def baseline_algorithms() -> list[OptimizerAlgorithm]:
    """Fresh instances of the built-in baselines."""
    return [
        OptimizerAlgorithm(
            "sgd_nesterov",
            _sgd_nesterov,
            warmup_then_decay,
            BATCH_SIZES,
            summary="SGD with Nesterov momentum (Sutskever et al. 2013), warmup + cosine/linear decay; torch.optim.SGD",
            search_space=SPACES / "sgd_nesterov.json",
            self_tuning_defaults={
                "learning_rate": 0.1,
                "one_minus_momentum": 0.1,
                "weight_decay": 5e-4,
                "warmup_factor": 0.05,
                "decay": "cosine",
            },
            decay_all_parameters=False,
        ),
        OptimizerAlgorithm(
            "adamw",
            _adamw,
            warmup_then_decay,
            BATCH_SIZES,
            summary="AdamW, Adam with decoupled weight decay (Loshchilov & Hutter 2019), warmup + cosine/linear decay; torch.optim.AdamW",
            search_space=SPACES / "adamw.json",
            self_tuning_defaults=_ADAM_DEFAULTS,
        ),
        OptimizerAlgorithm(
            "nadamw",
            _nadamw,
            warmup_then_decay,
            BATCH_SIZES,
            summary="NAdamW, Nesterov Adam (Dozat 2016) with decoupled weight decay, AlgoPerf's baseline; own foreach implementation",
            search_space=SPACES / "nadamw.json",
            self_tuning_defaults=_ADAM_DEFAULTS,
            extra_sources=[Path(__file__).parent / "nadamw.py"],
        ),
    ]
