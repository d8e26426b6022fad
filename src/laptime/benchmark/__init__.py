"""The benchmark room: ``laptime.bench(...)`` and what ``laptime bench`` runs.

>>> import laptime
>>> result = laptime.bench(suite="mnist1d", algorithms=["nadamw", "adamw"], budget="steps",
...                        max_steps=60, executor="local", workers=2)      # doctest: +SKIP
>>> result                        # in Jupyter: the leaderboard and the trials per workload × algorithm
>>> result.scores, result.intervals, result.times
>>> result.to_pandas()            # the leaderboard; to_pandas("trials" | "evals" | "summary")
>>> result.report("report")       # report.html and report.md

:func:`prepare` checks and plans (nothing runs or is stored; errors are one-line ``ValueError`` s),
:meth:`Benchmark.run` runs the plans through an executor (:data:`EXECUTORS`), stores the trials
(this process is the only writer), scores them and returns a :class:`BenchmarkResult`. This module
imports nothing heavy; torch is imported when a benchmark is prepared.
"""

from laptime.benchmark import core
from laptime.benchmark.core import *  # noqa: F403 - the room's functions, listed in core.__all__
from laptime.benchmark.result import BenchmarkResult

__all__ = [*core.__all__, "BenchmarkResult"]
