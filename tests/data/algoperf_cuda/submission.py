"""Test data for laptime's AlgoPerf adapter: a submission that hard-codes CUDA (its state tensors are
made with ``device='cuda'``), which a CPU trial cannot give it. SGD."""

import torch

from algoperf import spec


def get_batch_size(workload_name):
    if workload_name == "mnist":
        return 32
    raise ValueError(f"Unsupported workload name: {workload_name}.")


def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
    return {"optimizer": torch.optim.SGD(model_params.parameters(), lr=0.05), "count": torch.zeros(1, device="cuda")}


def update_params(workload, current_param_container, current_params_types, model_state, hyperparameters, batch,
                  loss_type, optimizer_state, eval_results, global_step, rng, train_state=None):
    optimizer = optimizer_state["optimizer"]
    optimizer.zero_grad()
    logits, new_model_state = workload.model_fn(
        params=current_param_container, augmented_and_preprocessed_input_batch=batch, model_state=model_state,
        mode=spec.ForwardPassMode.TRAIN, rng=rng, update_batch_norm=True)
    losses = workload.loss_fn(label_batch=batch["targets"], logits_batch=logits, mask_batch=batch.get("weights"))
    (losses["summed"] / losses["n_valid_examples"]).backward()
    optimizer.step()
    optimizer_state["count"] += 1
    return optimizer_state, current_param_container, new_model_state


def data_selection(workload, input_queue, optimizer_state, current_param_container, model_state, hyperparameters,
                   global_step, rng):
    return next(input_queue)
