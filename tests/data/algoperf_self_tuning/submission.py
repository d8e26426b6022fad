"""Test data for laptime's AlgoPerf adapter: a self-tuning submission. AlgoPerf hands it
``hyperparameters=None``; it carries its own point. NAdam."""

import collections

import torch

from algoperf import spec

HPARAMS = collections.namedtuple("Hyperparameters", ["learning_rate", "beta2"])(learning_rate=2e-3, beta2=0.995)


def get_batch_size(workload_name):
    if workload_name == "mnist":
        return 32
    raise ValueError(f"Unsupported workload name: {workload_name}.")


def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
    if hyperparameters is not None:
        raise ValueError(f"self-tuning: expected hyperparameters=None, got {hyperparameters!r}")
    optimizer = torch.optim.NAdam(model_params.parameters(), lr=HPARAMS.learning_rate, betas=(0.9, HPARAMS.beta2))
    return {"optimizer": optimizer}


def update_params(workload, current_param_container, current_params_types, model_state, hyperparameters, batch,
                  loss_type, optimizer_state, eval_results, global_step, rng, train_state=None):
    assert hyperparameters is None
    optimizer = optimizer_state["optimizer"]
    optimizer.zero_grad()
    logits, new_model_state = workload.model_fn(
        params=current_param_container, augmented_and_preprocessed_input_batch=batch, model_state=model_state,
        mode=spec.ForwardPassMode.TRAIN, rng=rng, update_batch_norm=True)
    losses = workload.loss_fn(label_batch=batch["targets"], logits_batch=logits, mask_batch=batch.get("weights"))
    (losses["summed"] / losses["n_valid_examples"]).backward()
    optimizer.step()
    return optimizer_state, current_param_container, new_model_state


def prepare_for_eval(workload, current_param_container, current_params_types, model_state, hyperparameters,
                     loss_type, optimizer_state, eval_results, global_step, rng):
    return optimizer_state, current_param_container, model_state


def data_selection(workload, input_queue, optimizer_state, current_param_container, model_state, hyperparameters,
                   global_step, rng):
    return next(input_queue)
