"""Workloads (data + model + loss + metric + target + budget) and their registry.

Built in (``laptime list`` shows every variant and configuration with its target and budgets):
``mnist1d`` (MLP; CNN variant), ``shakespeare`` (character GPT; ReLU variant), ``ptb`` (word-level
GPT; post-LN and GLU variants), ``cifar10`` (the speedrun CNN; ReLU variant), ``cifar10_vit`` (ViT;
post-LN variant) and ``molhiv`` (GIN; LayerNorm and deep-narrow variants), each in a ``cpu``
configuration and, but for MNIST-1D, ``gpu`` ones for the lite suite. More arrive through the
``laptime.workloads`` entry points. Use ``default_workloads().create(name, variant, config, device)``.
"""

from laptime.workloads.registry import (
    ENTRY_POINT_GROUP,
    UnknownWorkloadError,
    WorkloadRegistry,
    builtin_workload_classes,
    default_workloads,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "UnknownWorkloadError",
    "WorkloadRegistry",
    "builtin_workload_classes",
    "default_workloads",
]
