"""Training algorithms: the optimizer+schedule helper, schedules, baselines and their registry."""

from laptime.algorithms.registry import (
    AlgorithmLoadError,
    AlgorithmRegistry,
    UnknownAlgorithmError,
    default_algorithms,
)
from laptime.algorithms.optimizer_algorithm import OptimizerAlgorithm, parameter_groups

__all__ = [
    "AlgorithmLoadError",
    "AlgorithmRegistry",
    "OptimizerAlgorithm",
    "UnknownAlgorithmError",
    "default_algorithms",
    "parameter_groups",
]
