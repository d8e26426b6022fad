"""The Algorithm contract: AlgoPerf's five submission functions as methods.

``get_batch_size``, ``init_optimizer_state``, ``update_params``, ``prepare_for_eval`` and
``data_selection`` keep AlgoPerf's names, argument names and meanings. A submission is a subclass
(or any object with these methods plus ``name``). ``laptime.algorithms.OptimizerAlgorithm`` builds
one from a torch optimizer factory and a learning-rate schedule.

Rules the runner enforces or relies on:

* ``update_params`` is one step. Its time, and that of ``data_selection`` and
  ``prepare_for_eval``, counts as submission time; evaluation does not.
* ``data_selection`` may only look at training data (the ``input_queue``); it must not change
  parameters, model state or the step.
* Raising :class:`laptime.api.TrainingComplete` from ``update_params`` ends training after one
  final evaluation.
* ``train_state`` is a read-only mapping with ``accumulated_submission_time``,
  ``last_eval_time`` (submission time of the last eval), ``is_time_remaining``,
  ``validation_goal_reached``, ``global_step`` and ``max_allowed_runtime_sec``.
* Algorithms must not identify the workload to pick hyperparameters. ``get_batch_size`` receives
  the workload name (as in AlgoPerf) only to pick a batch size that fits.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from laptime.api.types import Batch, Hyperparameters, LossType, ParameterType

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

    from laptime.api.workload import Workload

OptimizerState = Any
EvalResults = Sequence[tuple[int, Mapping[str, float]]]


class Algorithm:
    """Base class of training algorithms. Override at least the three abstract-ish methods."""

    #: Registry name, e.g. ``"nadamw"``.
    name: str = ""
    #: One line: what it is and the paper or source it comes from.
    summary: str = ""
    #: Hyperparameters used by the self-tuning ruleset (and when no point is given).
    self_tuning_defaults: Mapping[str, Any] = {}

    # --- the five AlgoPerf functions ------------------------------------------------------
    def get_batch_size(self, workload_name: str) -> int:
        raise NotImplementedError

    def init_optimizer_state(
        self,
        workload: "Workload",
        model_params: "nn.Module",
        model_state: Any,
        hyperparameters: Hyperparameters,
        rng: "torch.Generator",
    ) -> OptimizerState:
        raise NotImplementedError

    def update_params(
        self,
        workload: "Workload",
        current_param_container: "nn.Module",
        current_params_types: Mapping[str, ParameterType],
        model_state: Any,
        hyperparameters: Hyperparameters,
        batch: Batch,
        loss_type: LossType,
        optimizer_state: OptimizerState,
        eval_results: EvalResults,
        global_step: int,
        rng: "torch.Generator",
        train_state: Mapping[str, Any] | None = None,
    ) -> tuple[OptimizerState, "nn.Module", Any]:
        raise NotImplementedError

    def prepare_for_eval(
        self,
        workload: "Workload",
        current_param_container: "nn.Module",
        current_params_types: Mapping[str, ParameterType],
        model_state: Any,
        hyperparameters: Hyperparameters,
        loss_type: LossType,
        optimizer_state: OptimizerState,
        eval_results: EvalResults,
        global_step: int,
        rng: "torch.Generator",
    ) -> tuple[OptimizerState, "nn.Module", Any]:
        """Called (timed) before every eval, e.g. to swap in averaged weights. Default: no-op."""
        return optimizer_state, current_param_container, model_state

    def data_selection(
        self,
        workload: "Workload",
        input_queue: Iterator[Batch],
        optimizer_state: OptimizerState,
        current_param_container: "nn.Module",
        model_state: Any,
        hyperparameters: Hyperparameters,
        global_step: int,
        rng: "torch.Generator",
    ) -> Batch:
        """Pick the next batch (timed). Default: the next batch of the input queue."""
        return next(input_queue)

    # --- laptime extras -------------------------------------------------------------------
    def batch_size_for(self, workload: "Workload") -> int:
        """The batch size the runner uses on ``workload``: ``get_batch_size(workload.spec.key)``.

        The AlgoPerf adapter overrides it to ask a submission about the workload's nearest AlgoPerf
        workload (``workload.algoperf_workload``), the only names submissions know.
        """
        return self.get_batch_size(workload.spec.key)

    def optimizer_state_dict(self, optimizer_state: OptimizerState) -> dict[str, Any]:
        """A checkpointable form of ``optimizer_state`` (tensors, numbers, containers of them).

        Together with the model's ``state_dict`` it must be enough to continue training exactly
        (:meth:`load_optimizer_state_dict` on a freshly initialised state). The runner saves it in a
        trial's checkpoints (:mod:`laptime.runner.checkpoint`) at once, so it may hold references to
        live tensors. Default: the state walked through dicts, lists and tuples, with every object
        that has ``state_dict``/``load_state_dict`` (a torch optimizer, a learning-rate scheduler, a
        module) replaced by its ``state_dict()`` and every ``torch.Generator`` by its state; plain
        data stays as it is. That covers AlgoPerf submissions, whose state holds an optimizer and a
        scheduler.
        """
        return _state_of(optimizer_state)

    def load_optimizer_state_dict(self, optimizer_state: OptimizerState, state_dict: dict[str, Any]) -> OptimizerState:
        """Restore a state saved by :meth:`optimizer_state_dict` into a fresh ``optimizer_state``.

        Default: the fresh state walked beside the saved one: optimizers, schedulers and modules
        load their ``state_dict``, generators their state, tensors of the same shape and dtype are
        copied in place (so a state that holds the model's parameters keeps holding them), dicts and
        lists are updated in place, anything else is replaced by the saved value.
        """
        return _restore_state(optimizer_state, state_dict, "optimizer_state")

    def search_space(self) -> Any:
        """The external-tuning search space (a :class:`laptime.tuning.SearchSpace`) or ``None``."""
        return None

    def source_files(self) -> list[Path]:
        """Files whose content identifies this algorithm's code (hashed into every trial)."""
        files: list[Path] = []
        for cls in type(self).__mro__:
            if cls is object or cls is Algorithm:
                continue
            try:
                files.append(Path(inspect.getfile(cls)))
            except (TypeError, OSError):
                pass
        return files


# --------------------------------------------------------------------------- default checkpoint hooks

#: Markers of the default :meth:`Algorithm.optimizer_state_dict` (one-key dicts).
_STATE_DICT = "__laptime_state_dict__"
_GENERATOR = "__laptime_generator_state__"


def _has_state_dict(value: Any) -> bool:
    return callable(getattr(value, "state_dict", None)) and callable(getattr(value, "load_state_dict", None))


def _state_of(value: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, torch.Generator):
        return {_GENERATOR: value.get_state()}
    if _has_state_dict(value) and not isinstance(value, type):
        return {_STATE_DICT: value.state_dict()}
    if isinstance(value, dict):  # other mappings (e.g. Hyperparameters) are kept as they are
        return {key: _state_of(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_state_of(item) for item in value]
    if isinstance(value, tuple):
        items = [_state_of(item) for item in value]
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    return value


def _marker(saved: Any) -> str | None:
    if isinstance(saved, dict) and len(saved) == 1:
        key = next(iter(saved))
        if key in (_STATE_DICT, _GENERATOR):
            return key
    return None


def _restore_state(fresh: Any, saved: Any, where: str) -> Any:
    import torch

    marker = _marker(saved)
    if marker == _STATE_DICT:
        if not _has_state_dict(fresh):
            raise ValueError(f"{where}: the checkpoint holds the state_dict of an object the fresh state does not have")
        fresh.load_state_dict(saved[_STATE_DICT])
        return fresh
    if marker == _GENERATOR:
        if not isinstance(fresh, torch.Generator):
            raise ValueError(f"{where}: the checkpoint holds a generator state the fresh state has no generator for")
        fresh.set_state(saved[_GENERATOR])
        return fresh
    if isinstance(saved, torch.Tensor):
        if isinstance(fresh, torch.Tensor) and fresh.shape == saved.shape and fresh.dtype == saved.dtype:
            with torch.no_grad():
                fresh.copy_(saved)
            return fresh
        return saved.to(fresh.device) if isinstance(fresh, torch.Tensor) else saved
    if isinstance(saved, dict) and isinstance(fresh, dict):
        for key in [k for k in fresh if k not in saved]:
            del fresh[key]
        for key, item in saved.items():
            fresh[key] = _restore_state(fresh.get(key), item, f"{where}[{key!r}]")
        return fresh
    if isinstance(saved, list) and isinstance(fresh, list) and len(saved) == len(fresh):
        fresh[:] = [_restore_state(f, s, f"{where}[{i}]") for i, (f, s) in enumerate(zip(fresh, saved))]
        return fresh
    if isinstance(saved, tuple) and isinstance(fresh, tuple) and len(saved) == len(fresh):
        items = [_restore_state(f, s, f"{where}[{i}]") for i, (f, s) in enumerate(zip(fresh, saved))]
        return type(fresh)(*items) if hasattr(fresh, "_fields") else tuple(items)
    if _contains_marker(saved):
        raise ValueError(f"{where}: the fresh state has no object to load the checkpoint's state into")
    return saved


def _contains_marker(saved: Any) -> bool:
    if _marker(saved) is not None:
        return True
    if isinstance(saved, dict):
        return any(_contains_marker(v) for v in saved.values())
    if isinstance(saved, (list, tuple)):
        return any(_contains_marker(v) for v in saved)
    return False
