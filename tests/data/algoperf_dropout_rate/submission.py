"""Test data for laptime's AlgoPerf adapter: the v0.6 ``model_fn`` call, passing ``dropout_rate``
(a self-tuning submission choosing its own, as AlgoPerf v0.6 lets it). SGD with Nesterov momentum."""

import torch

from algoperf import spec

HPARAMS = {"learning_rate": 0.05, "dropout_rate": 0.1}


def get_batch_size(workload_name):
    return {"mnist": 32, "imagenet_resnet": 1024}[workload_name]


def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
    optimizer = torch.optim.SGD(model_params.parameters(), lr=HPARAMS["learning_rate"], momentum=0.9, nesterov=True)
    return {"optimizer": optimizer}


def update_params(workload, current_param_container, current_params_types, model_state, hyperparameters, batch,
                  loss_type, optimizer_state, eval_results, global_step, rng, train_state=None):
    optimizer = optimizer_state["optimizer"]
    optimizer.zero_grad()
    logits, new_model_state = workload.model_fn(
        params=current_param_container, augmented_and_preprocessed_input_batch=batch, model_state=model_state,
        mode=spec.ForwardPassMode.TRAIN, rng=rng, update_batch_norm=True, dropout_rate=HPARAMS["dropout_rate"])
    losses = workload.loss_fn(label_batch=batch["targets"], logits_batch=logits, mask_batch=batch.get("weights"),
                              label_smoothing=0.1)
    (losses["summed"] / losses["n_valid_examples"]).backward()
    optimizer.step()
    return optimizer_state, current_param_container, new_model_state


def prepare_for_eval(workload, current_param_container, current_params_types, model_state, hyperparameters,
                     loss_type, optimizer_state, eval_results, global_step, rng):
    return optimizer_state, current_param_container, model_state


def data_selection(workload, input_queue, optimizer_state, current_param_container, model_state, hyperparameters,
                   global_step, rng):
    return next(input_queue)
