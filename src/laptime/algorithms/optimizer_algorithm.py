"""From "a torch optimizer + a schedule" to a laptime Algorithm.

:class:`OptimizerAlgorithm` implements the five contract functions around two factories:

* ``optimizer(param_groups, hp) -> torch.optim.Optimizer`` — ``param_groups`` is a list of dicts
  (``params``, ``weight_decay``, ``lr``) built from the parameter tags: biases and normalisation
  parameters get no weight decay unless ``decay_all_parameters=True``.
* ``schedule(hp, step_hint) -> (step -> multiplier)`` — the multiplier scales each group's base
  learning rate before every optimizer step.

One ``update_params`` call: forward with ``workload.model_fn``, loss from ``workload.loss_fn``
(mean over valid examples, label smoothing from ``hp.label_smoothing``), backward, optional
gradient clipping (``hp.grad_clip``), set the learning rates, ``optimizer.step()``. When the
schedule's multiplier has reached exactly 0 (e.g. cosine or linear decay past its horizon), no
further step can change the model, so it raises :class:`~laptime.api.TrainingComplete` instead
(``stop_when_schedule_ends=False`` turns this off).

A baseline is then a few lines::

    adamw = OptimizerAlgorithm(
        name="adamw",
        optimizer=lambda groups, hp: torch.optim.AdamW(groups, lr=hp.learning_rate,
                                                       betas=(1 - hp.one_minus_beta1, hp.beta2)),
        schedule=lambda hp, step_hint: schedules.from_hyperparameters(hp, step_hint),
        batch_size=128,
    )
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from laptime.api import Algorithm, ForwardPassMode, Hyperparameters, ParameterType, TrainingComplete
from laptime.algorithms import schedules

OptimizerFactory = Callable[[list[dict[str, Any]], Hyperparameters], torch.optim.Optimizer]
ScheduleFactory = Callable[[Hyperparameters, int], schedules.Schedule]
BatchSize = int | Mapping[str, int] | Callable[[str], int]

_NO_DECAY = {
    ParameterType.BIAS,
    ParameterType.ATTENTION_BIAS,
    ParameterType.BATCH_NORM_SCALE,
    ParameterType.BATCH_NORM_BIAS,
    ParameterType.LAYER_NORM_SCALE,
    ParameterType.LAYER_NORM_BIAS,
}


def parameter_groups(model: torch.nn.Module, param_types: Mapping[str, ParameterType], weight_decay: float,
                     decay_all_parameters: bool = False) -> list[dict[str, Any]]:
    """Split parameters into a decayed and a non-decayed group by their tags."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        kind = param_types.get(name, ParameterType.WEIGHT)
        (decay if decay_all_parameters or kind not in _NO_DECAY else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return [g for g in groups if g["params"]]


class OptimizerAlgorithm(Algorithm):
    """An Algorithm made of an optimizer factory, a schedule factory and a batch size."""

    def __init__(
        self,
        name: str,
        optimizer: OptimizerFactory,
        schedule: ScheduleFactory | None = None,
        batch_size: BatchSize = 128,
        *,
        summary: str = "",
        search_space: str | Path | Any | None = None,
        self_tuning_defaults: Mapping[str, Any] | None = None,
        decay_all_parameters: bool = False,
        extra_sources: list[str | Path] = (),
        stop_when_schedule_ends: bool = True,
    ):
        self.name = name
        self.summary = summary
        self._optimizer_factory = optimizer
        self._schedule_factory = schedule or (lambda hp, step_hint: schedules.constant())
        self._batch_size = batch_size
        self._search_space = search_space
        self.self_tuning_defaults = dict(self_tuning_defaults or {})
        self.decay_all_parameters = decay_all_parameters
        self._extra_sources = [Path(p) for p in extra_sources]
        self.stop_when_schedule_ends = stop_when_schedule_ends

    # ------------------------------------------------------------------ contract
    def get_batch_size(self, workload_name: str) -> int:
        """``batch_size`` as an int, a callable, or a mapping tried with the full key
        (``name/variant@config``), then ``name@config``, then ``name``, then ``"default"``."""
        size = self._batch_size
        if callable(size):
            return int(size(workload_name))
        if isinstance(size, Mapping):
            name, _, config = workload_name.partition("@")
            base = name.split("/")[0]
            for key in (workload_name, f"{base}@{config}", base, "default"):
                if key in size:
                    return int(size[key])
            raise KeyError(f"algorithm {self.name!r} has no batch size for workload {workload_name!r}")
        return int(size)

    def init_optimizer_state(self, workload, model_params, model_state, hyperparameters, rng):
        hp = hyperparameters
        groups = parameter_groups(model_params, workload.model_params_types, float(hp.get("weight_decay", 0.0)),
                                  self.decay_all_parameters)
        optimizer = self._optimizer_factory(groups, hp)
        base_lrs = [group["lr"] for group in optimizer.param_groups]
        return {
            "optimizer": optimizer,
            "schedule": self._schedule_factory(hp, workload.step_hint),
            "base_lrs": base_lrs,
            "label_smoothing": float(hp.get("label_smoothing", 0.0)),
            "grad_clip": hp.get("grad_clip"),
        }

    def update_params(self, workload, current_param_container, current_params_types, model_state, hyperparameters,
                      batch, loss_type, optimizer_state, eval_results, global_step, rng, train_state=None):
        model = current_param_container
        optimizer: torch.optim.Optimizer = optimizer_state["optimizer"]
        factor = self._lr_factor(optimizer_state, global_step)
        optimizer.zero_grad(set_to_none=True)
        loss, new_model_state = self._mean_loss(workload, model, model_state, batch, rng, optimizer_state)
        loss.backward()
        self._clip_gradients(model, optimizer_state)
        self._set_learning_rates(optimizer_state, factor)
        optimizer.step()
        return optimizer_state, model, new_model_state

    # ------------------------------------------------------------------ pieces of a step (for subclasses)
    def _lr_factor(self, optimizer_state, global_step: int) -> float:
        """The schedule's multiplier; raises TrainingComplete once it has decayed to exactly 0."""
        factor = optimizer_state["schedule"](global_step)
        if factor == 0.0 and self.stop_when_schedule_ends:
            raise TrainingComplete()  # the schedule has decayed to zero: no step can change the model
        return factor

    @staticmethod
    def _mean_loss(workload, model, model_state, batch, rng, optimizer_state, update_batch_norm: bool = True):
        """Forward in train mode; the mean loss over valid examples and the new model state."""
        logits, new_model_state = workload.model_fn(model, batch, model_state, ForwardPassMode.TRAIN, rng,
                                                    update_batch_norm=update_batch_norm)
        losses = workload.loss_fn(batch["targets"], logits, batch.get("weights"),
                                  label_smoothing=optimizer_state["label_smoothing"])
        return losses["summed"] / losses["n_valid_examples"], new_model_state

    @staticmethod
    def _clip_gradients(model, optimizer_state) -> None:
        if optimizer_state["grad_clip"]:
            torch.nn.utils.clip_grad_norm_(model.parameters(), float(optimizer_state["grad_clip"]))

    @staticmethod
    def _set_learning_rates(optimizer_state, factor: float) -> None:
        for group, base_lr in zip(optimizer_state["optimizer"].param_groups, optimizer_state["base_lrs"]):
            group["lr"] = base_lr * factor

    # ------------------------------------------------------------------ extras
    def optimizer_state_dict(self, optimizer_state):
        return {"optimizer": optimizer_state["optimizer"].state_dict()}

    def load_optimizer_state_dict(self, optimizer_state, state_dict):
        optimizer_state["optimizer"].load_state_dict(state_dict["optimizer"])
        return optimizer_state

    def with_schedule(self, schedule: ScheduleFactory, name: str, summary: str = "",
                      extra_sources: list[str | Path] = ()) -> "OptimizerAlgorithm":
        """A copy with another schedule factory (same optimizer, batch size, search space and
        defaults), e.g. a schedule refined from a previous run's gradient norms."""
        clone = copy.copy(self)
        clone.name = name
        clone.summary = summary or self.summary
        clone._schedule_factory = schedule
        clone.self_tuning_defaults = dict(self.self_tuning_defaults)
        clone._extra_sources = [*self._extra_sources, *(Path(p) for p in extra_sources)]
        return clone

    def resolve_paths(self, folder: str | Path) -> None:
        """Read a relative ``search_space`` path against ``folder`` (the folder of the file that defines
        the algorithm) instead of the current directory. The registry calls this when it loads an
        algorithm from a ``.py`` file or a module, so ``search_space="my_space.json"`` means the file
        beside ``my_algorithm.py`` wherever laptime is started from."""
        if isinstance(self._search_space, (str, Path)) and not Path(self._search_space).expanduser().is_absolute():
            self._search_space = Path(folder) / self._search_space

    def search_space(self):
        if self._search_space is None or not isinstance(self._search_space, (str, Path)):
            return self._search_space
        from laptime.tuning import SearchSpace

        return SearchSpace.load(self._search_space)

    def source_files(self) -> list[Path]:
        files = [Path(__file__), *self._extra_sources]
        for factory in (self._optimizer_factory, self._schedule_factory):
            try:
                files.append(Path(inspect.getfile(factory)))
            except (TypeError, OSError):
                pass
        if isinstance(self._search_space, (str, Path)):
            files.append(Path(self._search_space))
        return sorted(set(files))
