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
        (:meth:`load_optimizer_state_dict` on a freshly initialised state). Default: the state
        itself, for algorithms whose state is already plain data.
        """
        return optimizer_state

    def load_optimizer_state_dict(self, optimizer_state: OptimizerState, state_dict: dict[str, Any]) -> OptimizerState:
        """Restore a state saved by :meth:`optimizer_state_dict` into a fresh ``optimizer_state``."""
        return state_dict

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
