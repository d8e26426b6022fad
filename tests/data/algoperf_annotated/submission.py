"""Test data for laptime's AlgoPerf adapter: every function annotated with ``spec`` types, evaluated
when the module is imported (no ``from __future__ import annotations``), as AlgoPerf's template and
most submissions write them. AdamW."""

from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch

from algoperf import spec


def init_optimizer_state(workload: spec.Workload, model_params: spec.ParameterContainer,
                         model_state: spec.ModelAuxiliaryState, hyperparameters: spec.Hyperparameters,
                         rng: spec.RandomState) -> spec.OptimizerState:
    assert isinstance(workload, spec.Workload)
    return {"optimizer": torch.optim.AdamW(model_params.parameters(), lr=hyperparameters.learning_rate,
                                           weight_decay=hyperparameters.weight_decay)}


def update_params(workload: spec.Workload, current_param_container: spec.ParameterContainer,
                  current_params_types: spec.ParameterTypeTree, model_state: spec.ModelAuxiliaryState,
                  hyperparameters: spec.Hyperparameters, batch: Dict[str, spec.Tensor], loss_type: spec.LossType,
                  optimizer_state: spec.OptimizerState, eval_results: List[Tuple[int, float]], global_step: int,
                  rng: spec.RandomState, train_state: Optional[Dict[str, Any]] = None) -> spec.UpdateReturn:
    assert all(isinstance(kind, spec.ParameterType) for kind in current_params_types.values())
    optimizer = optimizer_state["optimizer"]
    optimizer.zero_grad()
    logits, new_model_state = workload.model_fn(
        params=current_param_container, augmented_and_preprocessed_input_batch=batch, model_state=model_state,
        mode=spec.ForwardPassMode.TRAIN, rng=rng, update_batch_norm=True)
    losses = workload.loss_fn(label_batch=batch["targets"], logits_batch=logits, mask_batch=batch.get("weights"))
    (losses["summed"] / losses["n_valid_examples"]).backward()
    optimizer.step()
    return optimizer_state, current_param_container, new_model_state


def prepare_for_eval(workload: spec.Workload, current_param_container: spec.ParameterContainer,
                     current_params_types: spec.ParameterTypeTree, model_state: spec.ModelAuxiliaryState,
                     hyperparameters: spec.Hyperparameters, loss_type: spec.LossType,
                     optimizer_state: spec.OptimizerState, eval_results: List[Tuple[int, float]], global_step: int,
                     rng: spec.RandomState) -> spec.UpdateReturn:
    return optimizer_state, current_param_container, model_state


def get_batch_size(workload_name: str) -> int:
    if workload_name == "mnist":
        return 64
    raise ValueError(f"Unsupported workload name: {workload_name}.")


def data_selection(workload: spec.Workload, input_queue: Iterator[Dict[str, spec.Tensor]],
                   optimizer_state: spec.OptimizerState, current_param_container: spec.ParameterContainer,
                   model_state: spec.ModelAuxiliaryState, hyperparameters: spec.Hyperparameters, global_step: int,
                   rng: spec.RandomState) -> Dict[str, spec.Tensor]:
    return next(input_queue)
