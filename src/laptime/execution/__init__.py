"""Execution: turn trial plans into stored trials.

A :class:`~laptime.records.TrialPlan` names everything that defines a trial (workload, variant,
configuration, algorithm, hyperparameter point, seed, ruleset/study/trial position, budget
factor). :func:`execute_plan` resolves the names, runs the timed trial (:mod:`laptime.runner`),
describes the environment, and writes one :class:`~laptime.records.TrialRecord` to the results
store in a single transaction. Executors (:mod:`laptime.execution.executors`) run many plans:
inline, one process per device, one Ray task (:mod:`laptime.execution.ray_executor`) or one Slurm
job through submitit (:mod:`laptime.execution.slurm_executor`) per trial; wherever trials run, the
calling process alone writes the store and claims each plan first (:mod:`laptime.execution.book`).
The Ray and Slurm executors are imported from their modules (they need ``laptime[ray]`` /
``laptime[slurm]``).
"""

from laptime.execution.executors import (
    EngineError,
    Executor,
    ExecutorError,
    InlineExecutor,
    LocalParallelExecutor,
    PlanError,
    PlanFailure,
    plan_key_for,
)
from laptime.execution.plan import DeviceError, TrialPlan, execute_plan, resolve_device

__all__ = [
    "DeviceError",
    "EngineError",
    "Executor",
    "ExecutorError",
    "InlineExecutor",
    "LocalParallelExecutor",
    "PlanError",
    "PlanFailure",
    "TrialPlan",
    "execute_plan",
    "plan_key_for",
    "resolve_device",
]
