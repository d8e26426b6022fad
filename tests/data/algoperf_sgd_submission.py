"""Test data for laptime's AlgoPerf adapter: a minimal submission that declares ``train_state`` (and
expects it) and ends training itself with ``spec.TrainingCompleteError`` after 40 steps. SGD."""

import torch
from algoperf import spec


def get_batch_size(workload_name):
    if workload_name == "mnist":
        return 128
    raise ValueError(f"Unsupported workload name: {workload_name}.")


def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
    del model_state, rng
    lr = 0.05 if hyperparameters is None else hyperparameters.learning_rate
    return {"optimizer": torch.optim.SGD(model_params.parameters(), lr=lr, momentum=0.9, nesterov=True),
            "saw_none_hparams": hyperparameters is None}


def update_params(workload, current_param_container, current_params_types, model_state, hyperparameters, batch,
                  loss_type, optimizer_state, eval_results, global_step, rng, train_state=None):
    del current_params_types, loss_type, eval_results
    assert train_state is not None and train_state["global_step"] == global_step
    current_param_container.train()
    optimizer = optimizer_state["optimizer"]
    optimizer.zero_grad()
    logits, new_model_state = workload.model_fn(params=current_param_container,
                                                augmented_and_preprocessed_input_batch=batch,
                                                model_state=model_state, mode=spec.ForwardPassMode.TRAIN, rng=rng,
                                                update_batch_norm=True)
    loss_dict = workload.loss_fn(label_batch=batch["targets"], logits_batch=logits, mask_batch=batch.get("weights"),
                                 label_smoothing=0.0)
    loss = loss_dict["summed"] / loss_dict["n_valid_examples"]
    loss.backward()
    optimizer.step()
    if global_step + 1 >= 40:
        raise spec.TrainingCompleteError
    return optimizer_state, current_param_container, new_model_state


def prepare_for_eval(workload, current_param_container, current_params_types, model_state, hyperparameters,
                     loss_type, optimizer_state, eval_results, global_step, rng):
    optimizer_state["prepared"] = optimizer_state.get("prepared", 0) + 1
    return optimizer_state, current_param_container, model_state


def data_selection(workload, input_queue, optimizer_state, current_param_container, model_state, hyperparameters,
                   global_step, rng):
    return next(input_queue)
