"""Scoring: trial results -> times tables -> performance profiles, benchmark scores, speedups.

Pure functions (stdlib + numpy); no torch.  Typical use::

    from laptime.scoring import read_times_csv, score_table
    report = score_table(read_times_csv("times.csv"), tau_max=4)
    print(report.format_table())      # or report.to_json()

Modules: :mod:`.core` (rows, aggregation, ratios, profiles, scores, ranks, speedups, variant
gate, comparability check), :mod:`.bootstrap` (confidence intervals over studies),
:mod:`.report` (CSV input, :class:`ScoreReport`, :func:`score_table`, :func:`score_records`).
"""

from laptime.scoring.bootstrap import BootstrapResult, bootstrap_scores
from laptime.scoring.core import (
    COLUMN_NAMES,
    COLUMNS,
    TRIAL_CHOICES,
    ScoringError,
    TimeRow,
    Times,
    aggregate,
    algorithms_and_workloads,
    apply_variant_gate,
    as_time_rows,
    benchmark_scores,
    check_comparable,
    eval_index_to_target,
    geometric_mean,
    geometric_mean_speedups,
    median,
    performance_profiles,
    performance_ratios,
    rank_scores,
    reference_costs,
    rows_from_records,
    speedups,
    study_bests,
    tau_grid,
    variants_from_workloads,
    workload_key,
)
from laptime.scoring.leaderboard import REQUIRED_CSV_COLUMNS, ScoreReport, read_times_csv, score_records, score_table

__all__ = [
    "COLUMNS",
    "COLUMN_NAMES",
    "reference_costs",
    "REQUIRED_CSV_COLUMNS",
    "BootstrapResult",
    "ScoreReport",
    "ScoringError",
    "TRIAL_CHOICES",
    "TimeRow",
    "Times",
    "aggregate",
    "algorithms_and_workloads",
    "apply_variant_gate",
    "as_time_rows",
    "benchmark_scores",
    "bootstrap_scores",
    "check_comparable",
    "eval_index_to_target",
    "geometric_mean",
    "geometric_mean_speedups",
    "median",
    "performance_profiles",
    "performance_ratios",
    "rank_scores",
    "read_times_csv",
    "rows_from_records",
    "score_records",
    "score_table",
    "speedups",
    "study_bests",
    "tau_grid",
    "variants_from_workloads",
    "workload_key",
]
