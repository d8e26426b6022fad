"""The CIFAR-10 speedrun recipe (airbench's Muon version, Keller Jordan 2024) as a laptime algorithm.

``speedrun_muon`` keeps the recipe within laptime's contract (it never asks which workload it
trains; only its batch size may depend on the workload's name, as AlgoPerf allows):

* batch 2,000 (250 on ``cifar10@cpu``, whose subset has only 10,000 images), the **summed** loss
  (not the mean) with label smoothing 0.2;
* Muon (:class:`~laptime.algorithms.library.muon.MuonWithAdamW`'s Muon groups: Nesterov momentum
  0.6, 3 Newton–Schulz steps, lr 0.24, no weight decay) on conv filters and hidden weight matrices
  (the parameters :meth:`MuonAlgorithm.is_muon_parameter` picks). As in airbench, each filter
  tensor is first rescaled to norm ``sqrt(out_channels)`` (``normalize_filters``), so the
  orthogonalised step keeps a constant relative size;
* Nesterov SGD (momentum 0.85) on everything else: biases and normalisation parameters at
  ``bias_learning_rate`` 0.053, the head and other matrices at ``head_learning_rate`` 0.67, each
  with coupled weight decay ``weight_decay × batch / lr`` (2e-6 per example);
* every learning rate decays linearly to 0 over ``epochs`` (8) epochs' worth of steps,
  ``ceil(epochs × num_train_examples / batch)`` (``workload.step_hint`` when ``epochs`` is 0);
  at 0 it raises TrainingComplete;
* the bias of a layer whose weight is frozen (the whitening stem of ``cifar10``) trains only
  during the first ``whiten_bias_epochs`` (3) epochs; afterwards it stops requiring a gradient,
  which also spares the backward pass through the stem.

Mixed precision is the workload's (``Workload.cuda_autocast_dtype``: bf16 in the cifar10 gpu
configurations); this algorithm adds none. Measured here only on ``cifar10/base@cpu`` (seed 0, one
thread, 2026-11-23, `laptime run ... --eval-every-steps 20`): validation accuracy 0.521 at step 140
(3.5 of its 8 epochs, 47 s), past that configuration's target 0.512 (NAdamW at lr 1e-2: 0.512 at
step 250, 29 s). The hyperparameters are airbench's, tuned for the gpu configurations.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from laptime.algorithms.baselines import SPACES
from laptime.algorithms.library import muon
from laptime.algorithms.library.muon import MuonAlgorithm, MuonWithAdamW
from laptime.algorithms.schedules import warmup_decay
from laptime.algorithms.optimizer_algorithm import OptimizerAlgorithm
from laptime.api import ForwardPassMode, ParameterType

BATCH_SIZES = {"cifar10@cpu": 250, "default": 2000}

DEFAULTS = {
    "learning_rate": 0.24,  # Muon
    "one_minus_momentum": 0.4,  # Muon momentum 0.6
    "ns_steps": 3,
    "normalize_filters": True,
    "bias_learning_rate": 0.053,
    "head_learning_rate": 0.67,
    "sgd_one_minus_momentum": 0.15,  # SGD momentum 0.85
    "weight_decay": 2e-6,  # per example: × batch size, then / lr in each SGD group
    "label_smoothing": 0.2,
    "epochs": 8,
    "whiten_bias_epochs": 3,
}


def frozen_layer_biases(model: torch.nn.Module, param_types) -> list[torch.nn.Parameter]:
    """Trainable biases (tag BIAS) of layers whose weight is frozen, e.g. a fixed whitening stem."""
    found = []
    for name, module in model.named_modules():
        weight, bias = getattr(module, "weight", None), getattr(module, "bias", None)
        if not (isinstance(weight, torch.nn.Parameter) and isinstance(bias, torch.nn.Parameter)):
            continue
        bias_name = f"{name}.bias" if name else "bias"
        if not weight.requires_grad and bias.requires_grad and param_types.get(bias_name) == ParameterType.BIAS:
            found.append(bias)
    return found


class SpeedrunMuon(OptimizerAlgorithm):
    def __init__(self):
        super().__init__(
            "speedrun_muon",
            self._unused_factory,
            None,
            BATCH_SIZES,
            summary="The CIFAR-10 speedrun recipe (airbench, Jordan 2024): Muon on filters + Nesterov SGD on "
                    "biases/head, summed loss, label smoothing 0.2, batch 2000, linear decay over 8 epochs; "
                    "reuses the library's Muon",
            search_space=SPACES / "speedrun_muon.json",
            self_tuning_defaults=DEFAULTS,
            extra_sources=[Path(__file__), Path(muon.__file__)],
        )

    @staticmethod
    def _unused_factory(groups, hp):  # pragma: no cover - init_optimizer_state builds the optimizers itself
        raise NotImplementedError

    def init_optimizer_state(self, workload, model_params, model_state, hyperparameters, rng):
        def hp(name: str):
            return hyperparameters.get(name, DEFAULTS[name])

        batch_size = self.get_batch_size(workload.spec.key)
        weight_decay = float(hp("weight_decay")) * batch_size
        bias_lr, head_lr = float(hp("bias_learning_rate")), float(hp("head_learning_rate"))
        types = workload.model_params_types
        trainable = [(name, p) for name, p in model_params.named_parameters() if p.requires_grad]
        is_muon = {name: MuonAlgorithm.is_muon_parameter(name, p, types.get(name, ParameterType.WEIGHT))
                   for name, p in trainable}
        muon = [p for name, p in trainable if is_muon[name]]
        biases = [p for name, p in trainable if not is_muon[name] and p.ndim <= 1]  # biases, normalisation
        matrices = [p for name, p in trainable if not is_muon[name] and p.ndim > 1]  # the head, embeddings
        muon_optimizer = None
        if muon:
            muon_optimizer = MuonWithAdamW([{"params": muon, "use_muon": True}], lr=float(hp("learning_rate")),
                                           momentum=1.0 - float(hp("one_minus_momentum")), nesterov=True,
                                           ns_steps=int(hp("ns_steps")), weight_decay=0.0)
        sgd_groups = [{"params": params, "lr": lr, "weight_decay": weight_decay / lr}
                      for params, lr in ((biases, bias_lr), (matrices, head_lr)) if params]
        sgd = torch.optim.SGD(sgd_groups, lr=bias_lr, momentum=1.0 - float(hp("sgd_one_minus_momentum")),
                              nesterov=True) if sgd_groups else None
        per_epoch = workload.num_train_examples / batch_size
        epochs = float(hp("epochs"))
        horizon = math.ceil(epochs * per_epoch) if epochs > 0 else int(workload.step_hint)
        optimizers = [o for o in (muon_optimizer, sgd) if o is not None]
        return {
            "optimizer": muon_optimizer,
            "sgd": sgd,
            "schedule": warmup_decay(max(horizon, 1), 0, "linear"),
            "base_lrs": [[group["lr"] for group in o.param_groups] for o in optimizers],
            "label_smoothing": float(hp("label_smoothing")),
            "grad_clip": hyperparameters.get("grad_clip"),
            "normalize_filters": bool(hp("normalize_filters")),
            "muon_params": muon,
            "stem_biases": frozen_layer_biases(model_params, workload.model_params_types),
            "stem_bias_steps": math.ceil(float(hp("whiten_bias_epochs")) * per_epoch),
        }

    @staticmethod
    def _optimizers(optimizer_state) -> list[torch.optim.Optimizer]:
        return [o for o in (optimizer_state["optimizer"], optimizer_state["sgd"]) if o is not None]

    def update_params(self, workload, current_param_container, current_params_types, model_state, hyperparameters,
                      batch, loss_type, optimizer_state, eval_results, global_step, rng, train_state=None):
        model = current_param_container
        factor = self._lr_factor(optimizer_state, global_step)
        train_stem = global_step < optimizer_state["stem_bias_steps"]
        for bias in optimizer_state["stem_biases"]:
            bias.requires_grad_(train_stem)
        optimizers = self._optimizers(optimizer_state)
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        logits, new_model_state = workload.model_fn(model, batch, model_state, ForwardPassMode.TRAIN, rng,
                                                    update_batch_norm=True)
        losses = workload.loss_fn(batch["targets"], logits, batch.get("weights"),
                                  label_smoothing=optimizer_state["label_smoothing"])
        losses["summed"].backward()
        self._clip_gradients(model, optimizer_state)
        if optimizer_state["normalize_filters"]:
            with torch.no_grad():
                for p in optimizer_state["muon_params"]:
                    p.mul_(math.sqrt(len(p)) / p.norm().clamp_min(1e-12))
        for optimizer, base_lrs in zip(optimizers, optimizer_state["base_lrs"]):
            for group, base_lr in zip(optimizer.param_groups, base_lrs):
                group["lr"] = base_lr * factor
            optimizer.step()
        return optimizer_state, model, new_model_state

    def optimizer_state_dict(self, optimizer_state):
        return {name: optimizer_state[name].state_dict() for name in ("optimizer", "sgd") if optimizer_state[name]}

    def load_optimizer_state_dict(self, optimizer_state, state_dict):
        for name in ("optimizer", "sgd"):
            if optimizer_state[name] is not None:
                optimizer_state[name].load_state_dict(state_dict[name])
        return optimizer_state


def speedrun_algorithms() -> list[SpeedrunMuon]:
    """Fresh instances of the speedrun algorithms."""
    return [SpeedrunMuon()]
