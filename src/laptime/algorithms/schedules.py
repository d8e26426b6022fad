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


# --------------------------------------------------------------------------------------------
# Schedules from the literature. Conventions shared by all of them (the same as warmup_decay):
# ``step`` counts from 0; linear warmup gives ``(step + 1) / warmup_steps`` for
# ``step < warmup_steps``; a schedule that ends at zero returns exactly 0.0 only for
# ``step >= total_steps`` (OptimizerAlgorithm stops training there) and a strictly positive value
# before; ``progress`` of a decay phase of ``D`` steps starting at step ``s0`` is
# ``(step - s0) / D``, so it is 0 at the first step of the phase and 1 at the horizon.
# --------------------------------------------------------------------------------------------


def _check_horizon(total_steps: int, warmup_steps: int) -> None:
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"warmup_steps must be in [0, total_steps={total_steps}], got {warmup_steps}")


def constant_with_warmup(total_steps: int, warmup_steps: int = 0) -> Schedule:
    """Linear warmup, then constant: ``(step + 1) / W`` for ``step < W``, else ``1``.

    The multiplier never reaches 0, so training runs until the runner's budget ends
    (``total_steps`` is only validated, it does not end anything). The usual "no schedule"
    control in schedule papers, e.g. the constant-LR phase of WSD (Hu et al. 2024).
    """
    _check_horizon(total_steps, warmup_steps)

    def schedule(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return 1.0

    return schedule


def rex(total_steps: int, warmup_steps: int = 0) -> Schedule:
    """REX (Chen, Wolfe & Kyrillidis 2022, "REX: Revisiting Budgeted Training with an Improved
    Schedule", MLSys 2022), after an optional linear warmup.

    With ``z = (step - W) / (T - W)`` the progress after warmup (``T = total_steps``,
    ``W = warmup_steps``), the paper's profile ``(1 - z) / (1/2 + 1/2 (1 - z))`` is::

        multiplier(z) = (1 - z) / (1 - z / 2)

    so 1 at ``z = 0``, 2/3 at ``z = 1/2`` and 0 at ``z = 1`` (the horizon) and after. It decays
    more slowly than linear early on and faster at the end (slope -2 at ``z = 1``).
    """
    _check_horizon(total_steps, warmup_steps)
    decay_steps = max(total_steps - warmup_steps, 1)

    def schedule(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        z = min((step - warmup_steps) / decay_steps, 1.0)
        return (1.0 - z) / (1.0 - z / 2.0)

    return schedule


def _decay_shape(shape: str, x: float) -> float:
    """A decay profile on progress ``x`` in [0, 1], 1 at 0 and exactly 0 at 1."""
    if shape == "linear":
        return 1.0 - x
    if shape == "1-sqrt":
        return 1.0 - math.sqrt(x)
    if shape == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * x))
    raise ValueError(f"unknown decay shape {shape!r}")


def _final_decay_window(total_steps: int, warmup_steps: int, decay_fraction: float) -> tuple[int, int]:
    """``(decay_steps, start)`` of a decay over the last ``decay_fraction`` of ``total_steps``,
    checking that the warmup ends before the decay starts."""
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if not 0.0 <= decay_fraction <= 1.0:
        raise ValueError(f"decay_fraction must be in [0, 1], got {decay_fraction}")
    decay_steps = max(int(round(decay_fraction * total_steps)), 1) if decay_fraction > 0 else 0
    start = total_steps - decay_steps
    if not 0 <= warmup_steps <= start:
        raise ValueError(
            f"warmup_steps must be in [0, total_steps - decay steps = {start}], got {warmup_steps}")
    return decay_steps, start


def wsd(total_steps: int, warmup_steps: int = 0, decay_fraction: float = 0.2, decay: str = "linear") -> Schedule:
    """Warmup-stable-decay (Hu et al. 2024, "MiniCPM"; Hägele et al. 2024, "Scaling Laws and
    Compute-Optimal Training Beyond Fixed Training Durations").

    ``T = total_steps``, ``W = warmup_steps``, ``D = round(decay_fraction × T)`` decay steps
    (at least 1 when ``decay_fraction > 0``), decay starting at ``S = T - D``::

        step < W          : (step + 1) / W                     (linear warmup)
        W <= step < S     : 1                                   (stable)
        S <= step         : f(x), x = min((step - S) / D, 1)    (cooldown to 0 at T)

    ``decay`` picks ``f``: ``"linear"`` ``1 - x`` or ``"1-sqrt"`` ``1 - sqrt(x)`` (the shape
    Hägele et al. found best), or ``"cosine"``. ``decay_fraction = 0`` gives a constant schedule
    that never ends. Requires ``W <= S``.
    """
    if decay not in ("linear", "1-sqrt", "cosine"):
        raise ValueError(f"decay must be 'linear', '1-sqrt' or 'cosine', got {decay!r}")
    decay_steps, start = _final_decay_window(total_steps, warmup_steps, decay_fraction)

    def schedule(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if decay_steps == 0 or step < start:
            return 1.0
        return _decay_shape(decay, min((step - start) / decay_steps, 1.0))

    return schedule


def power(
    total_steps: int,
    batch_size: int,
    a: float,
    b: float = 0.51,
    warmup_steps: int = 0,
    decay_fraction: float = 0.1,
    decay: str = "exponential",
) -> Schedule:
    """The power scheduler (Shen et al. 2024, "Power Scheduler: A Batch Size and Token Number
    Agnostic Learning Rate Scheduler"), as a multiplier of the base learning rate ``lr_max``.

    The paper sets ``lr(n) = min(lr_max, β · a · n^(-b))`` with ``n`` the number of tokens seen
    and ``β`` the batch size (PowerLM used ``a = 4``, ``b = 0.51``, ``lr_max = 0.02``), plus
    warmup and a final decay. Here ``n`` counts *examples* (``n = (step + 1) · B`` after the
    step, ``B = batch_size``) and ``a`` is relative to ``lr_max`` (the base learning rate the
    multiplier scales), so with ``p(n) = min(1, a · B · n^(-b))``, ``T = total_steps``,
    ``W = warmup_steps``, ``D = round(decay_fraction × T)`` and ``S = T - D``::

        step < W        : (step + 1) / W · p(W · B)          (linear warmup to the power curve)
        W <= step < S   : p((step + 1) · B)                  (power law, capped at 1)
        S <= step       : f(x) · p(S · B), x = min((step - S) / D, 1)

    ``decay`` picks ``f``: ``"exponential"`` (the paper's choice; normalised here so that it
    reaches exactly 0 at the horizon: ``f(x) = (exp(-5x) - exp(-5)) / (1 - exp(-5))``) or
    ``"linear"`` (``1 - x``). ``f`` is continuous with the power phase (``f(0) = 1``) and the
    schedule is exactly 0 from step ``T`` on. The constants ``a`` and ``b`` are NOT the paper's
    (those are for tokens and absolute learning rates); pick them per benchmark.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if a <= 0 or b < 0:
        raise ValueError(f"need a > 0 and b >= 0, got a={a}, b={b}")
    if decay not in ("exponential", "linear"):
        raise ValueError(f"decay must be 'exponential' or 'linear', got {decay!r}")
    decay_steps, start = _final_decay_window(total_steps, warmup_steps, decay_fraction)
    scale = a * batch_size

    def p(examples: int) -> float:
        return min(1.0, scale * float(examples) ** (-b))

    def f(x: float) -> float:
        if decay == "linear":
            return 1.0 - x
        return (math.exp(-5.0 * x) - math.exp(-5.0)) / (1.0 - math.exp(-5.0))

    def schedule(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps * p(warmup_steps * batch_size)
        if decay_steps == 0 or step < start:
            return p((step + 1) * batch_size)
        x = min((step - start) / decay_steps, 1.0)
        return 0.0 if x >= 1.0 else max(f(x), 0.0) * p(max(start, 1) * batch_size)

    return schedule
