"""The contract between workloads, training algorithms and the runner.

Shaped after AlgoPerf's submission API (PyTorch flavour) so that a submission written for AlgoPerf
can be brought over with a thin adapter: the five algorithm functions keep their names, arguments
and meanings. This package imports nothing else of laptime.
"""

from laptime.api.types import (
    Batch,
    ForwardPassMode,
    Hyperparameters,
    LossType,
    ParameterType,
    ShapeTuple,
    TrainingComplete,
)
from laptime.api.workload import Target, Workload, WorkloadSpec
from laptime.api.algorithm import Algorithm

__all__ = [
    "Algorithm",
    "Batch",
    "ForwardPassMode",
    "Hyperparameters",
    "LossType",
    "ParameterType",
    "ShapeTuple",
    "Target",
    "TrainingComplete",
    "Workload",
    "WorkloadSpec",
]
