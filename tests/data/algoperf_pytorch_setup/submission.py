"""Test data for laptime's AlgoPerf adapter: ``pytorch_setup()`` called at import time, its device
used for the optimizer's own tensors, and the loss all-reduced only under DDP, as AlgoPerf's
PyTorch baselines do. SGD with a hand-written momentum buffer."""

import torch
import torch.distributed.nn as dist_nn

from algoperf import spec
from algoperf.pytorch_utils import pytorch_setup

USE_PYTORCH_DDP, RANK, DEVICE, N_GPUS = pytorch_setup()


def get_batch_size(workload_name):
    if workload_name == "mnist":
        return 32
    raise ValueError(f"Unsupported workload name: {workload_name}.")


def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
    buffers = [torch.zeros(p.shape, device=DEVICE) for p in model_params.parameters()]
    return {"momentum": buffers, "device": DEVICE, "ddp": USE_PYTORCH_DDP, "rank": RANK}


def update_params(workload, current_param_container, current_params_types, model_state, hyperparameters, batch,
                  loss_type, optimizer_state, eval_results, global_step, rng, train_state=None):
    current_param_container.zero_grad()
    logits, new_model_state = workload.model_fn(
        params=current_param_container, augmented_and_preprocessed_input_batch=batch, model_state=model_state,
        mode=spec.ForwardPassMode.TRAIN, rng=rng, update_batch_norm=True)
    losses = workload.loss_fn(label_batch=batch["targets"], logits_batch=logits, mask_batch=batch.get("weights"))
    summed, n_valid = losses["summed"], losses["n_valid_examples"]
    if USE_PYTORCH_DDP:
        summed, n_valid = dist_nn.all_reduce(summed), dist_nn.all_reduce(n_valid)
    (summed / n_valid).backward()
    with torch.no_grad():
        for p, m in zip(current_param_container.parameters(), optimizer_state["momentum"]):
            m.mul_(0.9).add_(p.grad)
            p.add_(m, alpha=-0.05)
    return optimizer_state, current_param_container, new_model_state


def prepare_for_eval(workload, current_param_container, current_params_types, model_state, hyperparameters,
                     loss_type, optimizer_state, eval_results, global_step, rng):
    return optimizer_state, current_param_container, model_state


def data_selection(workload, input_queue, optimizer_state, current_param_container, model_state, hyperparameters,
                   global_step, rng):
    return next(input_queue)
