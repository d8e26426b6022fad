"""Schedule refinement from observed gradient norms (Defazio, Cutkosky, Mehta & Mishchenko 2023,
"When, Why and How Much? Adaptive Learning Rate Scheduling by Refinement").

The paper's result for SGD-like methods: given the gradient norms ``‖g_t‖`` of a previous run,
the schedule minimising its last-iterate bound is ``η_t ∝ w_t Σ_{p>t} w_p`` with weights
``w_t = ‖g_t‖^(-2)``. With constant norms this is exactly linear decay to zero, which is why linear
decay is the default it refines. The two-run protocol:

1. **Record.** Train with the update rule and any reasonable schedule (e.g. ``nadamw`` with linear
   decay) wrapped in :class:`GradNormRecorder`; it records the global gradient norms of every step
   into its optimizer state, inside ``update_params`` (so the extra cost is timed like any other
   algorithm work) and writes them to JSON with :meth:`GradNormRecorder.save` (or automatically
   at every evaluation with ``autosave=PATH``)::

       # record_nadamw.py -- `laptime run -w mnist1d --variant cnn -a record_nadamw.py`
       from laptime.algorithms import default_algorithms
       from laptime.algorithms.refinement import GradNormRecorder
       algorithm = GradNormRecorder(default_algorithms().get("nadamw"), autosave="norms.json")

2. **Refine.** Build the next run's algorithm from that file with :func:`nadamw_refined` (or any
   optimizer + :func:`refined_schedule`)::

       # refined.py -- `laptime run -w mnist1d --variant cnn -a refined.py`
       from laptime.algorithms.refinement import nadamw_refined
       algorithm = nadamw_refined("norms.json")

The refined algorithm is not registered by default: it needs a norms file from a first run on the
same workload. ``laptime refine -w WORKLOAD -a ALGORITHM`` runs both steps for any optimizer +
schedule algorithm (:func:`refine`), stores both trials and prints them side by side.

What is implemented (:func:`refined_schedule`): the norm sequence ``G`` (``T_obs`` values) is
smoothed with a running median of ``smoothing`` steps (window shrinks at the ends), resampled by
linear interpolation onto the ``T + 1`` points ``t = 0 .. T`` of the new horizon ``T``, then::

    w_t = G_t^(-power)             (power = 2 for the ℓ2 norm: the paper's SGD result)
    η_t = w_t · Σ_{p=t+1}^{T} w_p   for t = 0 .. T-1, η_T = 0
    m_t = min(1, (t + 1) / W) · η_t / max_s η_s

so the multiplier is positive for every step before the horizon and exactly 0 at ``t >= T``
(the paper's last step, whose learning rate is 0, is the horizon here). For Adam-type methods the
paper replaces the ℓ2 norm by the ℓ1 norm of the gradient (the dual of the ℓ∞ geometry of
sign-like updates); following our reading of it we use ``w_t = 1/‖g_t‖_1`` (``power = 1``) there,
which :func:`nadamw_refined` does by default (``norm="l1"``). Both norms are recorded.
"""

from __future__ import annotations

from laptime.errors import UsageError
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from laptime.algorithms import schedules
from laptime.api import Algorithm

FORMAT = "laptime.grad_norms/1"

#: Exponent of the weights ``w_t = ‖g_t‖^(-power)`` for each recorded norm.
DEFAULT_POWER = {"l2": 2.0, "l1": 1.0}


def global_grad_norms(params: Sequence[torch.Tensor]) -> tuple[float, float]:
    """``(ℓ2, ℓ1)`` norms of the concatenation of all ``.grad`` of ``params`` (``None`` skipped).

    The ℓ2 norm is the one ``torch.nn.utils.clip_grad_norm_`` computes: the norm of the vector of
    per-tensor norms.
    """
    grads = [p.grad.detach() for p in params if p.grad is not None]
    if not grads:
        return 0.0, 0.0
    l2 = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g, 2.0) for g in grads]), 2.0)
    l1 = torch.stack([torch.linalg.vector_norm(g, 1.0) for g in grads]).sum()
    both = torch.stack([l2.float(), l1.float()]).tolist()  # one host sync per step, timed
    return float(both[0]), float(both[1])


class GradNormRecorder(Algorithm):
    """Wraps any Algorithm and records the global gradient norms (ℓ2 and ℓ1) of every step.

    When the wrapped algorithm keeps a ``torch.optim.Optimizer`` under ``optimizer_state["optimizer"]``
    (every :class:`~laptime.algorithms.OptimizerAlgorithm` does), the norms are taken by a step
    pre-hook, i.e. of exactly the gradient the optimizer steps with (after ``hp.grad_clip``, if
    set). Otherwise they are read from the parameters' ``.grad`` after the wrapped
    ``update_params`` returns. Either way the work happens inside :meth:`update_params` and is
    timed. The norms live in ``optimizer_state["grad_norms"]`` (``{"l2": [...], "l1": [...]}``,
    one entry per completed step), are checkpointed with the state, and :meth:`save` writes them.
    """

    def __init__(self, inner: Algorithm, name: str | None = None, autosave: str | os.PathLike | None = None):
        self.inner = inner
        self.name = name or f"{inner.name}_gradnorms"
        self.summary = f"{inner.name} recording per-step gradient norms for schedule refinement (Defazio et al. 2023)"
        self.self_tuning_defaults = dict(inner.self_tuning_defaults)
        self.autosave = Path(autosave) if autosave is not None else None
        self._last_state: dict[str, Any] | None = None
        self._meta: dict[str, Any] = {}

    # ------------------------------------------------------------------ contract
    def get_batch_size(self, workload_name: str) -> int:
        return self.inner.get_batch_size(workload_name)

    def init_optimizer_state(self, workload, model_params, model_state, hyperparameters, rng):
        inner_state = self.inner.init_optimizer_state(workload, model_params, model_state, hyperparameters, rng)
        norms: dict[str, list[float]] = {"l2": [], "l1": []}
        state = {"inner": inner_state, "grad_norms": norms, "hooked": False}
        optimizer = inner_state.get("optimizer") if isinstance(inner_state, Mapping) else None
        if isinstance(optimizer, torch.optim.Optimizer):
            def record(opt, args, kwargs):
                l2, l1 = global_grad_norms([p for g in opt.param_groups for p in g["params"]])
                norms["l2"].append(l2)
                norms["l1"].append(l1)

            optimizer.register_step_pre_hook(record)
            state["hooked"] = True
        self._last_state = state
        self._meta = {"algorithm": self.inner.name, "workload": workload.spec.key,
                      "step_hint": int(workload.step_hint),
                      "batch_size": int(self.get_batch_size(workload.spec.key))}
        return state

    def update_params(self, workload, current_param_container, current_params_types, model_state, hyperparameters,
                      batch, loss_type, optimizer_state, eval_results, global_step, rng, train_state=None):
        inner_state, model, new_model_state = self.inner.update_params(
            workload, current_param_container, current_params_types, model_state, hyperparameters, batch, loss_type,
            optimizer_state["inner"], eval_results, global_step, rng, train_state)
        optimizer_state["inner"] = inner_state
        if not optimizer_state["hooked"]:
            l2, l1 = global_grad_norms(list(model.parameters()))
            optimizer_state["grad_norms"]["l2"].append(l2)
            optimizer_state["grad_norms"]["l1"].append(l1)
        self._last_state = optimizer_state
        return optimizer_state, model, new_model_state

    def prepare_for_eval(self, workload, current_param_container, current_params_types, model_state, hyperparameters,
                         loss_type, optimizer_state, eval_results, global_step, rng):
        inner_state, model, new_model_state = self.inner.prepare_for_eval(
            workload, current_param_container, current_params_types, model_state, hyperparameters, loss_type,
            optimizer_state["inner"], eval_results, global_step, rng)
        optimizer_state["inner"] = inner_state
        if self.autosave is not None:
            self.save(self.autosave, optimizer_state)
        return optimizer_state, model, new_model_state

    def data_selection(self, workload, input_queue, optimizer_state, current_param_container, model_state,
                       hyperparameters, global_step, rng):
        return self.inner.data_selection(workload, input_queue, optimizer_state["inner"], current_param_container,
                                         model_state, hyperparameters, global_step, rng)

    # ------------------------------------------------------------------ extras
    def optimizer_state_dict(self, optimizer_state):
        return {"inner": self.inner.optimizer_state_dict(optimizer_state["inner"]),
                "grad_norms": {k: list(v) for k, v in optimizer_state["grad_norms"].items()}}

    def load_optimizer_state_dict(self, optimizer_state, state_dict):
        optimizer_state["inner"] = self.inner.load_optimizer_state_dict(optimizer_state["inner"], state_dict["inner"])
        for key, values in state_dict["grad_norms"].items():
            optimizer_state["grad_norms"][key][:] = [float(v) for v in values]  # in place: the hook holds the lists
        return optimizer_state

    def search_space(self):
        return self.inner.search_space()

    def resolve_paths(self, folder) -> None:
        resolve = getattr(self.inner, "resolve_paths", None)
        if callable(resolve):
            resolve(folder)

    def source_files(self) -> list[Path]:
        return sorted({Path(__file__), *self.inner.source_files()})

    def grad_norms(self, optimizer_state=None) -> dict[str, list[float]]:
        state = optimizer_state if optimizer_state is not None else self._last_state
        if state is None:
            raise RuntimeError("no run yet: call init_optimizer_state first")
        return {k: list(v) for k, v in state["grad_norms"].items()}

    def save(self, path: str | os.PathLike, optimizer_state=None) -> Path:
        """Write the recorded norms (of ``optimizer_state``, default: the latest run) as JSON."""
        path = Path(path)
        payload = {"format": FORMAT, **self._meta, **self.grad_norms(optimizer_state)}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(payload))
        os.replace(tmp, path)
        return path


def load_grad_norms(path: str | os.PathLike, norm: str = "l2") -> list[float]:
    """The ``norm`` (``"l2"`` or ``"l1"``) sequence of a file written by :meth:`GradNormRecorder.save`."""
    data = json.loads(Path(path).read_text())
    if data.get("format") != FORMAT:
        raise UsageError(f"{path}: not a laptime gradient-norm file (format {data.get('format')!r})")
    if norm not in data:
        raise UsageError(f"{path}: no {norm!r} norms (have {sorted(k for k in data if k in DEFAULT_POWER)})")
    return [float(v) for v in data[norm]]


def _running_median(values: Sequence[float], window: int) -> list[float]:
    if window <= 1:
        return list(values)
    half = window // 2
    out = []
    for i in range(len(values)):
        chunk = sorted(values[max(0, i - half): i + half + 1])
        n = len(chunk)
        out.append(chunk[n // 2] if n % 2 else 0.5 * (chunk[n // 2 - 1] + chunk[n // 2]))
    return out


def _resample(values: Sequence[float], n: int) -> list[float]:
    """``n`` values linearly interpolated over the same relative time span as ``values``."""
    m = len(values)
    if m == n:
        return list(values)
    if m == 1:
        return [values[0]] * n
    out = []
    for i in range(n):
        x = i * (m - 1) / (n - 1) if n > 1 else 0.0
        j = min(int(math.floor(x)), m - 2)
        frac = x - j
        out.append(values[j] * (1.0 - frac) + values[j + 1] * frac)
    return out


def refined_multipliers(norms: Sequence[float], total_steps: int, smoothing: int = 1,
                        power: float = 2.0) -> list[float]:
    """The refined multipliers ``η_t / max η`` for ``t = 0 .. total_steps`` (the last is 0), no warmup.

    See the module docstring for the formula. ``norms`` must be finite and positive (zeros are
    floored at ``1e-12 × max``).
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if len(norms) == 0:
        raise ValueError("need at least one gradient norm")
    values = [float(v) for v in norms]
    if not all(math.isfinite(v) and v >= 0 for v in values) or max(values) <= 0:
        raise ValueError("gradient norms must be finite, non-negative and not all zero")
    floor = 1e-12 * max(values)
    smoothed = _resample(_running_median(values, int(smoothing)), total_steps + 1)
    weights = [max(g, floor) ** (-power) for g in smoothed]
    etas = [0.0] * (total_steps + 1)
    tail = 0.0
    for t in range(total_steps, -1, -1):  # tail = Σ_{p>t} w_p
        etas[t] = weights[t] * tail
        tail += weights[t]
    top = max(etas)
    tiny = 1e-12
    return [max(e / top, tiny) for e in etas[:-1]] + [0.0]


def refined_schedule(norms: Sequence[float], total_steps: int, warmup_steps: int = 0, smoothing: int = 1,
                     power: float = 2.0) -> schedules.Schedule:
    """A schedule refined from a previous run's gradient norms (Defazio et al. 2023).

    ``m(step) = min(1, (step + 1) / warmup_steps) · η_step / max η`` for ``step < total_steps``
    with ``η_t = w_t Σ_{p=t+1}^{T} w_p``, ``w_t = G_t^(-power)``, ``G`` the norms smoothed by a
    running median of ``smoothing`` steps and resampled onto ``t = 0 .. T``; 0 from ``total_steps``
    on. Constant norms give exactly linear decay ``1 - step / T``.
    """
    if not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"warmup_steps must be in [0, total_steps={total_steps}], got {warmup_steps}")
    multipliers = refined_multipliers(norms, total_steps, smoothing, power)

    def schedule(step: int) -> float:
        if step >= total_steps:
            return 0.0
        warm = (step + 1) / warmup_steps if step < warmup_steps else 1.0
        return warm * multipliers[step]

    return schedule


def _refined_factory(norms: Sequence[float], power: float, smoothing: int | None):
    """``schedule(hp, step_hint)`` refined from ``norms``: horizon ``decay_steps_factor × step_hint``,
    warmup ``warmup_factor × horizon`` as for the baselines, running-median window ``smoothing``
    (default ``hp.refine_smoothing`` or 5% of the recorded steps, odd)."""
    def schedule(hp, step_hint: int) -> schedules.Schedule:
        horizon = max(int(round(float(hp.get("decay_steps_factor", 1.0)) * step_hint)), 1)
        warmup = min(int(round(float(hp.get("warmup_factor", 0.05)) * horizon)), horizon)
        window = smoothing if smoothing is not None else hp.get("refine_smoothing")
        if window is None:
            window = max(1, int(0.05 * len(norms))) | 1
        return refined_schedule(norms, horizon, warmup, int(window), power)

    return schedule


def refine(algorithm, path: str | os.PathLike, norm: str = "l1", smoothing: int | None = None,
           name: str | None = None):
    """Step 2 of the protocol for any optimizer + schedule: ``algorithm`` (an
    :class:`~laptime.algorithms.OptimizerAlgorithm`) with its schedule replaced by the one refined
    from the gradient norms in ``path`` (a file :meth:`GradNormRecorder.save` wrote), named
    ``NAME_refined``. ``norm="l1"`` (the paper's choice for Adam-type methods) or ``"l2"`` (its SGD
    result). Horizon, warmup and smoothing as :func:`nadamw_refined`. ``laptime refine`` runs both steps.
    """
    from laptime.algorithms.optimizer_algorithm import OptimizerAlgorithm

    if not isinstance(algorithm, OptimizerAlgorithm):
        raise TypeError(f"{algorithm.name!r} is not an optimizer + schedule algorithm (OptimizerAlgorithm), whose "
                        "schedule refinement could replace")
    if norm not in DEFAULT_POWER:
        raise UsageError(f"norm must be one of {', '.join(DEFAULT_POWER)}, got {norm!r}")
    norms = load_grad_norms(path, norm)
    return algorithm.with_schedule(
        _refined_factory(norms, DEFAULT_POWER[norm], smoothing), name or f"{algorithm.name}_refined",
        summary=(f"{algorithm.name} with a schedule refined from a previous run's {norm} gradient norms "
                 "(Defazio, Cutkosky, Mehta & Mishchenko 2023)"),
        extra_sources=[Path(__file__), Path(path)])


def nadamw_refined(path: str | os.PathLike, norm: str = "l1", smoothing: int | None = None,
                   name: str = "nadamw_refined"):
    """NAdamW with the schedule refined from the gradient norms in ``path`` (see the module docstring).

    ``norm="l1"`` (default, the paper's choice for Adam-type methods, weights ``1/‖g‖_1``) or
    ``"l2"`` (weights ``1/‖g‖_2²``). The horizon is ``decay_steps_factor × step_hint`` and the
    warmup ``warmup_factor × horizon`` as for the baselines; ``smoothing`` (running-median window,
    default ``hp.refine_smoothing`` or 5% of the recorded steps, odd) smooths the norms.
    """
    from laptime.algorithms.baselines import BATCH_SIZES, SPACES, _nadamw
    from laptime.algorithms.optimizer_algorithm import OptimizerAlgorithm

    norms = load_grad_norms(path, norm)
    power = DEFAULT_POWER[norm]
    return OptimizerAlgorithm(
        name,
        _nadamw,
        _refined_factory(norms, power, smoothing),
        BATCH_SIZES,
        summary=("NAdamW with a schedule refined from a previous run's gradient norms "
                 "(Defazio, Cutkosky, Mehta & Mishchenko 2023)"),
        search_space=SPACES / "nadamw_refined.json",
        self_tuning_defaults={"learning_rate": 2e-3, "one_minus_beta1": 0.1, "beta2": 0.995, "weight_decay": 0.1,
                              "warmup_factor": 0.05},
        extra_sources=[Path(__file__), Path(path)],
    )
