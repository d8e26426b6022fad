"""Stand-in for AlgoPerf's ``spec`` module: the types, aliases and signatures submissions annotate with.

Everything here is a name a submission can touch. The enums, the Workload base class and the
training-complete signal are laptime's own (see :mod:`laptime.algorithms.algoperf_shim`); the
aliases are typing aliases, evaluated when a submission's annotations are (at import).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Dict, List, Optional, Tuple, Union

from torch import nn

from laptime.api import ForwardPassMode, LossType, ParameterType, ShapeTuple, TrainingComplete, Workload

__all__ = [
    "DataSelectionFn", "ForwardPassMode", "Hyperparameters", "InitOptimizerFn", "LossType", "ModelAuxiliaryState",
    "ModelInitState", "OptimizerState", "ParameterContainer", "ParameterKey", "ParameterShapeTree", "ParameterType",
    "ParameterTypeTree", "PrepareForEvalFn", "RandomState", "Shape", "ShapeTuple", "Steps", "Tensor", "Timing",
    "TrainingCompleteError", "UpdateParamsFn", "UpdateReturn", "Workload", "data_selection", "get_batch_size",
    "init_optimizer_state", "prepare_for_eval", "update_params",
]

#: Raised by ``update_params`` to end training (one final eval follows): laptime's own signal.
TrainingCompleteError = TrainingComplete

# --- aliases (AlgoPerf's names; framework-neutral there, PyTorch's here) -------------------------
Tensor = Any
Shape = Union[Tuple[int, ...], ShapeTuple]
ParameterKey = str
ParameterShapeTree = Dict[ParameterKey, Dict[ParameterKey, Shape]]
ParameterContainer = Union[Dict[ParameterKey, Dict[ParameterKey, Tensor]], nn.Module]
ParameterTypeTree = Dict[ParameterKey, Dict[ParameterKey, ParameterType]]
RandomState = Any
OptimizerState = Union[Dict[str, Any], Tuple[Any, Any]]
Hyperparameters = Any
Timing = int
Steps = int
ModelAuxiliaryState = Any
ModelInitState = Tuple[ParameterContainer, ModelAuxiliaryState]
UpdateReturn = Tuple[OptimizerState, ParameterContainer, ModelAuxiliaryState]

# --- the submission functions' types ------------------------------------------------------------
InitOptimizerFn = Callable[[Workload, ParameterContainer, ModelAuxiliaryState, Hyperparameters, RandomState],
                           OptimizerState]
UpdateParamsFn = Callable[[Workload, ParameterContainer, ParameterTypeTree, ModelAuxiliaryState, Hyperparameters,
                           Dict[str, Tensor], LossType, OptimizerState, List[Tuple[int, float]], int, RandomState,
                           Optional[Dict[str, Any]]], UpdateReturn]
PrepareForEvalFn = Callable[[Workload, ParameterContainer, ParameterTypeTree, ModelAuxiliaryState, Hyperparameters,
                             LossType, OptimizerState, List[Tuple[int, float]], int, RandomState], UpdateReturn]
DataSelectionFn = Callable[[Workload, Iterator[Dict[str, Any]], OptimizerState, ParameterContainer,
                            ModelAuxiliaryState, Hyperparameters, int, RandomState], Dict[str, Tensor]]


# --- the five functions a submission defines (signatures only) -----------------------------------
def _to_be_written(name: str):
    raise NotImplementedError(f"spec.{name} only declares the signature; a submission defines its own {name}")


def init_optimizer_state(workload: Workload, model_params: ParameterContainer, model_state: ModelAuxiliaryState,
                         hyperparameters: Hyperparameters, rng: RandomState) -> OptimizerState:
    _to_be_written("init_optimizer_state")


def update_params(workload: Workload, current_param_container: ParameterContainer,
                  current_params_types: ParameterTypeTree, model_state: ModelAuxiliaryState,
                  hyperparameters: Hyperparameters, batch: Dict[str, Tensor], loss_type: LossType,
                  optimizer_state: OptimizerState, eval_results: List[Tuple[int, float]], global_step: int,
                  rng: RandomState, train_state: Optional[Dict[str, Any]] = None) -> UpdateReturn:
    _to_be_written("update_params")


def prepare_for_eval(workload: Workload, current_param_container: ParameterContainer,
                     current_params_types: ParameterTypeTree, model_state: ModelAuxiliaryState,
                     hyperparameters: Hyperparameters, loss_type: LossType, optimizer_state: OptimizerState,
                     eval_results: List[Tuple[int, float]], global_step: int, rng: RandomState) -> UpdateReturn:
    _to_be_written("prepare_for_eval")


def data_selection(workload: Workload, input_queue: Iterator[Dict[str, Any]], optimizer_state: OptimizerState,
                   current_param_container: ParameterContainer, model_state: ModelAuxiliaryState,
                   hyperparameters: Hyperparameters, global_step: int, rng: RandomState) -> Dict[str, Tensor]:
    _to_be_written("data_selection")


def get_batch_size(workload_name: str) -> int:
    _to_be_written("get_batch_size")
