"""Test data for laptime's AlgoPerf adapter: an external-tuning submission whose search space is the
``tuning_search_space.json`` beside it (a fixed list of points, as the leaderboard entries have).
AdamW; every hyperparameter comes from the point."""

import torch

from algoperf import spec


def get_batch_size(workload_name):
    if workload_name == "mnist":
        return 32
    raise ValueError(f"Unsupported workload name: {workload_name}.")


def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
    betas = (1.0 - hyperparameters.one_minus_beta1, hyperparameters.beta2)
    optimizer = torch.optim.AdamW(model_params.parameters(), lr=hyperparameters.learning_rate, betas=betas,
                                  weight_decay=hyperparameters.weight_decay)
    return {"optimizer": optimizer, "learning_rate": hyperparameters.learning_rate}


def update_params(workload, current_param_container, current_params_types, model_state, hyperparameters, batch,
                  loss_type, optimizer_state, eval_results, global_step, rng, train_state=None):
    optimizer = optimizer_state["optimizer"]
    optimizer.zero_grad()
    logits, new_model_state = workload.model_fn(
        params=current_param_container, augmented_and_preprocessed_input_batch=batch, model_state=model_state,
        mode=spec.ForwardPassMode.TRAIN, rng=rng, update_batch_norm=True)
    label_smoothing = hyperparameters.label_smoothing if hasattr(hyperparameters, "label_smoothing") else 0.0
    losses = workload.loss_fn(label_batch=batch["targets"], logits_batch=logits, mask_batch=batch.get("weights"),
                              label_smoothing=label_smoothing)
    (losses["summed"] / losses["n_valid_examples"]).backward()
    optimizer.step()
    return optimizer_state, current_param_container, new_model_state


def prepare_for_eval(workload, current_param_container, current_params_types, model_state, hyperparameters,
                     loss_type, optimizer_state, eval_results, global_step, rng):
    return optimizer_state, current_param_container, model_state


def data_selection(workload, input_queue, optimizer_state, current_param_container, model_state, hyperparameters,
                   global_step, rng):
    return next(input_queue)
