"""Learning-rate schedules from the literature composed with an update rule.

Each entry is the NAdamW update (AlgoPerf's baseline, :mod:`laptime.algorithms.nadamw`) with one
schedule from :mod:`laptime.algorithms.schedules`, built with
:class:`~laptime.algorithms.OptimizerAlgorithm`. Horizons follow the baselines: the schedule
ends at ``decay_steps_factor × step_hint`` (default 1.0) and warms up over ``warmup_factor`` of it.

* ``nadamw_constant`` — linear warmup, then constant (never ends on its own).
* ``nadamw_rex`` — REX (Chen, Wolfe & Kyrillidis 2022).
* ``nadamw_wsd`` — warmup-stable-decay (Hu et al. 2024; Hägele et al. 2024).
* ``nadamw_power`` — the power scheduler (Shen et al. 2024); the number of examples seen is
  ``step × batch size``, so this one builds its schedule knowing its own batch size.

Schedule refinement from gradient norms (Defazio et al. 2023) needs a first run's norms file and is
therefore not registered: see :mod:`laptime.algorithms.refinement`.
"""

from __future__ import annotations

from pathlib import Path

from laptime.algorithms import schedules
from laptime.algorithms.baselines import BATCH_SIZES, SPACES, _nadamw
from laptime.algorithms.optimizer_algorithm import OptimizerAlgorithm
from laptime.api import Algorithm

_HERE = Path(__file__)
_SOURCES = [_HERE, Path(schedules.__file__), SPACES.parent / "nadamw.py"]

_NADAMW = {"learning_rate": 2e-3, "one_minus_beta1": 0.1, "beta2": 0.995, "weight_decay": 0.1, "warmup_factor": 0.05}


def _horizon_and_warmup(hp, step_hint: int) -> tuple[int, int]:
    horizon = max(int(round(float(hp.get("decay_steps_factor", 1.0)) * step_hint)), 1)
    warmup = min(int(round(float(hp.get("warmup_factor", 0.05)) * horizon)), horizon)
    return horizon, warmup


def constant_schedule(hp, step_hint: int) -> schedules.Schedule:
    return schedules.constant_with_warmup(*_horizon_and_warmup(hp, step_hint))


def rex_schedule(hp, step_hint: int) -> schedules.Schedule:
    return schedules.rex(*_horizon_and_warmup(hp, step_hint))


def wsd_schedule(hp, step_hint: int) -> schedules.Schedule:
    horizon, warmup = _horizon_and_warmup(hp, step_hint)
    fraction = float(hp.get("decay_fraction", 0.2))
    start = horizon - (max(int(round(fraction * horizon)), 1) if fraction > 0 else 0)
    return schedules.wsd(horizon, min(warmup, start), fraction, str(hp.get("decay", "1-sqrt")))


def power_schedule(hp, step_hint: int, batch_size: int) -> schedules.Schedule:
    horizon, warmup = _horizon_and_warmup(hp, step_hint)
    fraction = float(hp.get("decay_fraction", 0.1))
    start = horizon - (max(int(round(fraction * horizon)), 1) if fraction > 0 else 0)
    return schedules.power(horizon, batch_size, float(hp.get("power_a", 1.0)), float(hp.get("power_b", 0.51)),
                           min(warmup, start), fraction, str(hp.get("decay", "exponential")))


class BatchSizeScheduleAlgorithm(OptimizerAlgorithm):
    """An OptimizerAlgorithm whose schedule factory also receives its own batch size:
    ``schedule(hp, step_hint, batch_size)`` (for schedules in examples seen, like the power scheduler)."""

    def __init__(self, *args, batch_schedule, **kwargs):
        super().__init__(*args, **kwargs)
        self._batch_schedule = batch_schedule

    def init_optimizer_state(self, workload, model_params, model_state, hyperparameters, rng):
        state = super().init_optimizer_state(workload, model_params, model_state, hyperparameters, rng)
        batch_size = self.get_batch_size(workload.spec.key)
        state["schedule"] = self._batch_schedule(hyperparameters, workload.step_hint, batch_size)
        return state


def scheduled_algorithms() -> list[Algorithm]:
    """Fresh instances of NAdamW composed with each literature schedule."""
    return [
        OptimizerAlgorithm(
            "nadamw_constant",
            _nadamw,
            constant_schedule,
            BATCH_SIZES,
            summary="NAdamW with linear warmup then a constant learning rate (the no-decay control)",
            search_space=SPACES / "nadamw_constant.json",
            self_tuning_defaults={**_NADAMW, "learning_rate": 1e-3},
            extra_sources=_SOURCES,
        ),
        OptimizerAlgorithm(
            "nadamw_rex",
            _nadamw,
            rex_schedule,
            BATCH_SIZES,
            summary="NAdamW with the REX schedule (1-z)/(1-z/2) (Chen, Wolfe & Kyrillidis 2022, MLSys)",
            search_space=SPACES / "nadamw_rex.json",
            self_tuning_defaults=dict(_NADAMW),
            extra_sources=_SOURCES,
        ),
        OptimizerAlgorithm(
            "nadamw_wsd",
            _nadamw,
            wsd_schedule,
            BATCH_SIZES,
            summary=("NAdamW with warmup-stable-decay, 1-sqrt cooldown over the last 20% "
                     "(Hu et al. 2024 MiniCPM; Hägele et al. 2024)"),
            search_space=SPACES / "nadamw_wsd.json",
            self_tuning_defaults={**_NADAMW, "decay_fraction": 0.2, "decay": "1-sqrt"},
            extra_sources=_SOURCES,
        ),
        BatchSizeScheduleAlgorithm(
            "nadamw_power",
            _nadamw,
            None,
            BATCH_SIZES,
            batch_schedule=power_schedule,
            summary=("NAdamW with the power scheduler min(1, a·B·n^-b), n = examples seen, exponential "
                     "final decay (Shen et al. 2024)"),
            search_space=SPACES / "nadamw_power.json",
            self_tuning_defaults={**_NADAMW, "power_a": 1.0, "power_b": 0.51, "decay_fraction": 0.1,
                                  "decay": "exponential"},
            extra_sources=_SOURCES,
        ),
    ]
