"""Learning-rate schedules: step → multiplier of the base learning rate.

A schedule is any callable ``f(step) -> float`` (step counts from 0). They compose with every
update rule through :class:`laptime.algorithms.OptimizerAlgorithm`, which multiplies each
parameter group's base learning rate by ``f(step)`` before every optimizer step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

Schedule = Callable[[int], float]


def constant() -> Schedule:
    return lambda step: 1.0


def warmup_decay(
    total_steps: int,
    warmup_steps: int = 0,
    decay: str = "cosine",
    end_factor: float = 0.0,
) -> Schedule:
    """Linear warmup from 0 to 1 over ``warmup_steps``, then decay to ``end_factor`` at ``total_steps``.

    ``decay`` is ``"cosine"``, ``"linear"`` or ``"constant"``. After ``total_steps`` the multiplier
    stays at ``end_factor`` (unlike a periodic cosine, it never climbs back up).
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"warmup_steps must be in [0, total_steps={total_steps}], got {warmup_steps}")
    if decay not in ("cosine", "linear", "constant"):
        raise ValueError(f"decay must be 'cosine', 'linear' or 'constant', got {decay!r}")
    decay_steps = max(total_steps - warmup_steps, 1)

    def schedule(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if decay == "constant":
            return 1.0
        progress = min((step - warmup_steps) / decay_steps, 1.0)
        if decay == "cosine":
            shape = 0.5 * (1.0 + math.cos(math.pi * progress))
        else:
            shape = 1.0 - progress
        return end_factor + (1.0 - end_factor) * shape

    return schedule


def from_hyperparameters(hp: Mapping[str, Any], step_hint: int, decay: str = "cosine") -> Schedule:
    """The baselines' schedule: warmup for ``warmup_factor × horizon`` steps, then ``decay`` to 0.

    The horizon is ``decay_steps_factor × step_hint`` (default 1.0). Hyperparameters read:
    ``warmup_factor`` (default 0.05), ``decay_steps_factor`` (default 1.0), ``end_factor`` (default 0).
    """
    horizon = max(int(round(float(hp.get("decay_steps_factor", 1.0)) * step_hint)), 1)
    warmup = int(round(float(hp.get("warmup_factor", 0.05)) * horizon))
    return warmup_decay(horizon, min(warmup, horizon), decay, float(hp.get("end_factor", 0.0)))
