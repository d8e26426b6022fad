"""AutoLRS (Jin et al. 2021, "AutoLRS: Automatic Learning-Rate Schedule by Bayesian Optimization on
the Fly", ICLR 2021) around the NAdamW update.

Training is a sequence of *stages*. At the start of a stage the model and optimizer state are
saved (a copy on the device). Then ``k`` candidate learning rates are tried one after the other,
each for ``τ'`` steps starting from the saved state, which is restored after every candidate. A
candidate's training losses over its ``τ'`` steps are fitted with ``loss(t) ≈ a·exp(−b·t) + c``
(:func:`fit_exponential`) and the fit is extrapolated to ``t = τ``: that forecast is the
objective of a Bayesian optimisation over ``log(lr)`` in ``[lr_min, lr_max]`` (a Gaussian process
with an RBF kernel and a lower-confidence-bound acquisition, :func:`gp_posterior`,
:func:`lcb_next`; a fresh GP every stage). After the ``k``-th candidate the model is back at the
saved state and trains for ``τ`` steps with the candidate of the lowest forecast; then the next
stage begins. A stage is therefore ``k·τ' + τ`` steps, of which ``k·τ'`` are exploration whose
progress is discarded (as we read the paper's Algorithm 1: restore, then train ``τ`` steps with the
best LR).

Mapping onto laptime's contract: ``update_params`` is one step on one batch, so a candidate's
``τ'`` steps span ``τ'`` calls and a small state machine (``warmup`` → ``explore`` candidate
``i`` → ``exploit``, kept in ``optimizer_state["autolrs"]``) decides each call's learning rate.
Every exploration step is a real optimizer step on a real batch inside ``update_params``, so the
runner counts it as a step and charges its time, saving and restoring included. The losses of a
candidate stay on the device until it ends (one synchronisation per candidate).

Self-tuning defaults scale with ``step_hint``: ``τ = stage_factor × step_hint`` (0.1), ``τ' =
explore_factor × τ`` (0.1, at least 3), ``k = 5`` candidates, bounds 1e-4…1e-2, and a linear
warmup to the log-midpoint of the bounds over the first ``warmup_factor × step_hint`` steps
(0.05) before the first stage. There is no end of schedule: it trains until the target or the
budget.

Limitations: an evaluation that falls inside an exploration phase evaluates the current
candidate's weights (a model the algorithm trained, so it is a fair result, but not the saved
one); a candidate whose loss becomes non-finite ends the trial as diverged, because the runner
checks every step's training loss, so the bounds must be stable ones; the paper's growth of ``τ``
over stages is not implemented; the GP's length scale and noise are fixed (``LENGTH_SCALE``,
``NOISE``) rather than fitted.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.linalg
import scipy.optimize
import torch

from laptime.algorithms import schedules
from laptime.algorithms.baselines import BATCH_SIZES, SPACES, _betas
from laptime.algorithms.nadamw import NAdamW
from laptime.algorithms.optimizer_algorithm import OptimizerAlgorithm

WARMUP, EXPLORE, EXPLOIT = "warmup", "explore", "exploit"
#: RBF length scale and observation noise (both in the GP's units: x in [0, 1], standardised y).
LENGTH_SCALE = 0.2
NOISE = 1e-2
#: Points of [0, 1] on which the acquisition is minimised.
GRID = np.linspace(0.0, 1.0, 201)


# ------------------------------------------------------------------------ the exponential forecast
@dataclass(frozen=True)
class ExponentialFit:
    """``loss(t) = a·exp(−b·t) + c``."""

    a: float
    b: float
    c: float

    def __call__(self, t):
        return self.c + self.a * np.exp(-self.b * np.asarray(t, dtype=np.float64))


def fit_exponential(losses: Sequence[float], grid_points: int = 64) -> ExponentialFit:
    """Least-squares fit of ``a·exp(−b·t) + c`` to ``losses`` at ``t = 0, 1, …, n−1`` (``b > 0``).

    For a fixed ``b`` the model is linear in ``(a, c)``, solved exactly; ``b`` is searched on a log
    grid of ``b·n`` in ``[0.01, 100]`` (a decay time from 1/100 to 100 windows) and refined by a
    bounded scalar minimisation between the grid neighbours of the best point. A flat or linear
    series ends at the small-``b`` end (a straight-line trend, extrapolated with a slow decay).
    """
    y = np.asarray(losses, dtype=np.float64)
    n = y.size
    if n < 3:
        raise ValueError(f"need at least 3 losses to fit a·exp(−b·t) + c, got {n}")
    t = np.arange(n, dtype=np.float64)

    def solve(log_b: float) -> tuple[float, np.ndarray]:
        design = np.stack([np.exp(-math.exp(log_b) * t), np.ones(n)], axis=1)
        coef = np.linalg.lstsq(design, y, rcond=None)[0]
        residual = design @ coef - y
        return float(residual @ residual), coef

    log_bs = np.linspace(math.log(0.01 / n), math.log(100.0 / n), grid_points)
    errors = [solve(lb)[0] for lb in log_bs]
    i = int(np.argmin(errors))
    refined = scipy.optimize.minimize_scalar(lambda lb: solve(lb)[0], method="bounded",
                                             bounds=(log_bs[max(i - 1, 0)], log_bs[min(i + 1, grid_points - 1)]),
                                             options={"xatol": 1e-9})
    log_b = float(refined.x) if refined.success and refined.fun <= errors[i] else float(log_bs[i])
    a, c = solve(log_b)[1]
    return ExponentialFit(float(a), math.exp(log_b), float(c))


def forecast_loss(losses: Sequence[float], horizon: int) -> float:
    """The fitted curve at ``t = horizon``; ``inf`` if a loss is not finite. Never below 0 when
    every observed loss is >= 0 (a cross-entropy cannot go negative, a straight-line fit can)."""
    y = np.asarray(losses, dtype=np.float64)
    if not np.isfinite(y).all():
        return math.inf
    value = float(fit_exponential(y)(horizon))
    return max(value, 0.0) if (y >= 0).all() else value


# ------------------------------------------------------------------------ Bayesian optimisation
def gp_posterior(x: Sequence[float], y: Sequence[float], query: np.ndarray, length_scale: float = LENGTH_SCALE,
                 noise: float = NOISE) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and standard deviation at ``query`` of a GP fitted to ``(x, y)``.

    The observations are standardised (mean 0, standard deviation 1; a single one gets scale 1),
    the prior is zero-mean with the unit-variance RBF kernel ``exp(−(x−x')²/(2ℓ²))`` plus
    ``noise`` on the diagonal; the results are in ``y``'s units.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    query = np.asarray(query, dtype=np.float64)
    mean = float(y.mean())
    scale = float(y.std()) or 1.0
    z = (y - mean) / scale

    def kernel(a, b):
        return np.exp(-0.5 * ((a[:, None] - b[None, :]) / length_scale) ** 2)

    chol = np.linalg.cholesky(kernel(x, x) + noise * np.eye(x.size))
    alpha = scipy.linalg.cho_solve((chol, True), z)
    cross = kernel(x, query)
    mu = cross.T @ alpha
    v = scipy.linalg.solve_triangular(chol, cross, lower=True)
    var = np.clip(1.0 - (v * v).sum(axis=0), 1e-12, None)
    return mean + scale * mu, scale * np.sqrt(var)


def lcb_next(x: Sequence[float], y: Sequence[float], kappa: float) -> float:
    """The next point in [0, 1]: the minimiser of ``μ − κσ`` on :data:`GRID` (the midpoint when
    nothing has been observed)."""
    if len(x) == 0:
        return 0.5
    mu, sigma = gp_posterior(x, y, GRID)
    return float(GRID[int(np.argmin(mu - kappa * sigma))])


def _with_penalty(values: Sequence[float]) -> list[float]:
    """Non-finite forecasts (a diverged candidate) replaced by a value worse than every finite one."""
    finite = [v for v in values if math.isfinite(v)]
    worst = (max(finite) + max(1.0, max(finite) - min(finite))) if finite else 1.0
    return [v if math.isfinite(v) else worst for v in values]


# ------------------------------------------------------------------------ the algorithm
def _nadamw(groups, hp):
    # the learning rate is set before every step (the base learning rates are 1, see init_optimizer_state)
    return NAdamW(groups, lr=float(hp.get("lr_min", 1e-4)), betas=_betas(hp), eps=float(hp.get("epsilon", 1e-8)))


def _snapshot(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    return {"model": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "optimizer": copy.deepcopy(optimizer.state_dict())}


def _restore(model: torch.nn.Module, optimizer: torch.optim.Optimizer, snapshot: dict) -> None:
    model.load_state_dict(snapshot["model"])
    optimizer.load_state_dict(copy.deepcopy(snapshot["optimizer"]))  # load_state_dict may alias its input


class AutoLRS(OptimizerAlgorithm):
    """NAdamW whose learning rate is chosen per stage by AutoLRS; see the module docstring."""

    def __init__(self):
        super().__init__(
            "nadamw_autolrs",
            _nadamw,
            None,
            BATCH_SIZES,
            summary="NAdamW with AutoLRS: per stage, Bayesian optimisation of the LR on exponential-fit loss "
                    "forecasts of short trial runs (Jin et al. 2021, ICLR); own implementation",
            search_space=SPACES / "nadamw_autolrs.json",
            self_tuning_defaults={"lr_min": 1e-4, "lr_max": 1e-2, "one_minus_beta1": 0.1, "beta2": 0.995,
                                  "weight_decay": 0.1, "warmup_factor": 0.05, "stage_factor": 0.1,
                                  "explore_factor": 0.1, "candidates": 5, "kappa": 2.0},
            extra_sources=[Path(__file__), SPACES.parent / "nadamw.py"],
            stop_when_schedule_ends=False,
        )

    def init_optimizer_state(self, workload, model_params, model_state, hyperparameters, rng):
        hp = hyperparameters
        state = super().init_optimizer_state(workload, model_params, model_state, hp, rng)
        lr_min, lr_max = float(hp.get("lr_min", 1e-4)), float(hp.get("lr_max", 1e-2))
        if not 0 < lr_min <= lr_max:
            raise ValueError(f"need 0 < lr_min <= lr_max, got {lr_min}, {lr_max}")
        step_hint = max(int(workload.step_hint), 1)
        tau = max(int(round(float(hp.get("stage_factor", 0.1)) * step_hint)), 1)
        warmup = min(int(round(float(hp.get("warmup_factor", 0.05)) * step_hint)), step_hint)
        state.update(
            base_lrs=[1.0] * len(state["base_lrs"]),  # the step's factor is the learning rate itself
            schedule=schedules.constant_with_warmup(step_hint, warmup),
            warmup_steps=warmup,
            lr_bounds=(lr_min, lr_max),
            tau=tau,
            tau_prime=max(int(round(float(hp.get("explore_factor", 0.1)) * tau)), 3),
            candidates=max(int(hp.get("candidates", 5)), 1),
            kappa=float(hp.get("kappa", 2.0)),
            autolrs={"phase": WARMUP, "stage": 0, "candidate": 0, "steps_in_phase": 0,
                     "lr": math.sqrt(lr_min * lr_max), "tried": [], "forecasts": [], "chosen": []},
            losses=[],  # the current candidate's training losses (tensors on the device)
            stage_checkpoint=None,
        )
        return state

    # ---------------------------------------------------------------- the learning rate of a point
    @staticmethod
    def lr_at(optimizer_state, x: float) -> float:
        """The learning rate at ``x`` in [0, 1] (log scale between the bounds)."""
        lo, hi = optimizer_state["lr_bounds"]
        return math.exp(math.log(lo) + x * (math.log(hi) - math.log(lo)))

    @staticmethod
    def x_of(optimizer_state, lr: float) -> float:
        lo, hi = optimizer_state["lr_bounds"]
        return 0.5 if hi == lo else (math.log(lr) - math.log(lo)) / (math.log(hi) - math.log(lo))

    # ---------------------------------------------------------------- one step
    def update_params(self, workload, current_param_container, current_params_types, model_state, hyperparameters,
                      batch, loss_type, optimizer_state, eval_results, global_step, rng, train_state=None):
        auto = optimizer_state["autolrs"]
        if auto["phase"] == WARMUP and global_step >= optimizer_state["warmup_steps"]:
            self._start_stage(optimizer_state, current_param_container)
        result = super().update_params(workload, current_param_container, current_params_types, model_state,
                                       hyperparameters, batch, loss_type, optimizer_state, eval_results, global_step,
                                       rng, train_state)
        self._after_step(optimizer_state, current_param_container)
        return result

    def _lr_factor(self, optimizer_state, global_step: int) -> float:
        # the warmup ramp (1 after it) times the state machine's learning rate; base learning rates are 1
        return super()._lr_factor(optimizer_state, global_step) * optimizer_state["autolrs"]["lr"]

    def _mean_loss(self, workload, model, model_state, batch, rng, optimizer_state, update_batch_norm=True):
        loss, new_model_state = super()._mean_loss(workload, model, model_state, batch, rng, optimizer_state,
                                                   update_batch_norm)
        optimizer_state["last_loss"] = loss.detach()
        return loss, new_model_state

    # ---------------------------------------------------------------- the state machine
    def _start_stage(self, state, model) -> None:
        auto = state["autolrs"]
        auto.update(phase=EXPLORE, candidate=0, steps_in_phase=0, tried=[], forecasts=[])
        auto["stage"] += 1
        state["stage_checkpoint"] = _snapshot(model, state["optimizer"])
        state["losses"] = []
        auto["lr"] = self._suggest(state)

    def _suggest(self, state) -> float:
        auto = state["autolrs"]
        x = lcb_next([self.x_of(state, lr) for lr in auto["tried"]], _with_penalty(auto["forecasts"]), state["kappa"])
        return self.lr_at(state, x)

    def _after_step(self, state, model) -> None:
        auto = state["autolrs"]
        loss = state.pop("last_loss")
        if auto["phase"] == WARMUP:
            return
        auto["steps_in_phase"] += 1
        if auto["phase"] == EXPLORE:
            state["losses"].append(loss)
            if auto["steps_in_phase"] == state["tau_prime"]:
                self._finish_candidate(state, model)
        elif auto["steps_in_phase"] >= state["tau"]:
            self._start_stage(state, model)

    def _finish_candidate(self, state, model) -> None:
        auto = state["autolrs"]
        losses = torch.stack(state["losses"]).double().cpu().numpy()  # the candidate's one synchronisation
        auto["tried"].append(auto["lr"])
        auto["forecasts"].append(forecast_loss(losses, state["tau"]))
        _restore(model, state["optimizer"], state["stage_checkpoint"])
        state["losses"] = []
        auto["candidate"] += 1
        auto["steps_in_phase"] = 0
        if auto["candidate"] < state["candidates"]:
            auto["lr"] = self._suggest(state)
            return
        forecasts = _with_penalty(auto["forecasts"])
        auto["lr"] = auto["tried"][int(np.argmin(forecasts))]
        auto["chosen"].append(auto["lr"])
        auto["phase"] = EXPLOIT
        state["stage_checkpoint"] = None

    # ---------------------------------------------------------------- checkpoints
    def optimizer_state_dict(self, optimizer_state):
        return {**super().optimizer_state_dict(optimizer_state),
                "autolrs": copy.deepcopy(optimizer_state["autolrs"]),
                "losses": list(optimizer_state["losses"]),
                "stage_checkpoint": optimizer_state["stage_checkpoint"]}

    def load_optimizer_state_dict(self, optimizer_state, state_dict):
        optimizer_state = super().load_optimizer_state_dict(optimizer_state, state_dict)
        device = optimizer_state["optimizer"].param_groups[0]["params"][0].device
        optimizer_state["autolrs"] = copy.deepcopy(state_dict["autolrs"])
        optimizer_state["losses"] = [t.to(device) for t in state_dict["losses"]]
        optimizer_state["stage_checkpoint"] = state_dict["stage_checkpoint"]  # restored by copying, never aliased
        return optimizer_state


def autolrs_algorithms() -> list[OptimizerAlgorithm]:
    return [AutoLRS()]


__all__ = ["AutoLRS", "ExponentialFit", "autolrs_algorithms", "fit_exponential", "forecast_loss", "gp_posterior",
           "lcb_next"]
