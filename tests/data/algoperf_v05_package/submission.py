"""Test data for laptime's AlgoPerf adapter: a v0.5 submission, importing AlgoPerf under its old
package name ``algorithmic_efficiency``. SGD with momentum; no prepare_for_eval (v0.5 had none)."""

import torch

from algorithmic_efficiency import spec
from algorithmic_efficiency.pytorch_utils import pytorch_setup

USE_PYTORCH_DDP = pytorch_setup()[0]


def get_batch_size(workload_name):
    if workload_name == "mnist":
        return 16
    raise ValueError(f"Unsupported workload name: {workload_name}.")


def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
    del workload, model_state, rng
    lr = 0.05 if hyperparameters is None else hyperparameters.learning_rate
    return {"optimizer": torch.optim.SGD(model_params.parameters(), lr=lr, momentum=0.9)}


def update_params(workload, current_param_container, current_params_types, model_state, hyperparameters, batch,
                  loss_type, optimizer_state, eval_results, global_step, rng, train_state=None):
    assert loss_type == spec.LossType.SOFTMAX_CROSS_ENTROPY
    optimizer = optimizer_state["optimizer"]
    optimizer.zero_grad()
    logits, new_model_state = workload.model_fn(
        params=current_param_container, augmented_and_preprocessed_input_batch=batch, model_state=model_state,
        mode=spec.ForwardPassMode.TRAIN, rng=rng, update_batch_norm=True)
    losses = workload.loss_fn(label_batch=batch["targets"], logits_batch=logits, mask_batch=batch.get("weights"))
    (losses["summed"] / losses["n_valid_examples"]).backward()
    optimizer.step()
    return optimizer_state, current_param_container, new_model_state


def data_selection(workload, input_queue, optimizer_state, current_param_container, model_state, hyperparameters,
                   global_step, rng):
    return next(input_queue)
