"""Workloads (data + model + loss + metric + target + budget) and their registry.

Built in: ``mnist1d`` (variants ``mlp``, ``cnn``; config ``cpu``) and ``shakespeare`` (variants
``base``, ``relu``; configs ``cpu``, ``gpu``). Use ``default_workloads().create(name, variant,
config, device)``.
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
