"""Uncertainty of scores and ranks: a bootstrap over studies, and over timing noise.

For each (algorithm, workload) the per-study best values ``b_1..b_k`` (see
:func:`~laptime.scoring.core.study_bests`) are resampled ``k`` times with replacement, the
workload time is the median of the resample, and the (optionally variant-gated) table is scored
and ranked exactly as the point estimate is.  Repeating this ``n_resamples`` times gives
percentile confidence intervals.  Everything is deterministic given ``seed``.

``timing_noise`` (a relative standard deviation, e.g. 0.03) adds the measurement noise of the
times themselves: in every resample each resampled value is multiplied by ``exp(σ·z)`` with an
independent standard normal ``z``. Use it for times that are measured, not exact — the robust
time, whose run-to-run spread on one machine is measured in docs/benchmarks.md — so that the
intervals cover what a re-run of the same benchmark could give, even with a single study.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from laptime.scoring.core import (
    RowLike,
    ScoringError,
    _check_column,
    _check_tau_max,
    _check_tau_points,
    _gate_array,
    _gate_pairs,
    _median_last,
    _ranks_array,
    _ratios_array,
    _scores_from_ratios,
    study_bests,
)

__all__ = ["BootstrapResult", "bootstrap_scores"]


@dataclasses.dataclass
class BootstrapResult:
    """Point estimates and percentile intervals for each algorithm's score and rank.

    ``score_ci[a] = (lo, hi)`` are the ``(1-confidence)/2`` and ``(1+confidence)/2`` quantiles of
    the resampled scores (linear interpolation).  ``rank_ci[a] = (lo, hi)`` are integer ranks:
    the lower quantile taken with ``method="lower"`` and the upper with ``method="higher"``, so
    both are ranks actually seen in some resample.  Rank 1 is the best; ties share the better rank.
    ``score_samples``/``rank_samples`` have shape ``(n_resamples, len(algorithms))``.
    """

    algorithms: list[str]
    workloads: list[str]
    scores: dict[str, float]
    ranks: dict[str, int]
    score_ci: dict[str, tuple[float, float]]
    rank_ci: dict[str, tuple[int, int]]
    n_resamples: int
    seed: int
    confidence: float
    score_samples: np.ndarray = dataclasses.field(repr=False)
    rank_samples: np.ndarray = dataclasses.field(repr=False)
    timing_noise: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no sample arrays)."""
        return {
            "n_resamples": self.n_resamples,
            "seed": self.seed,
            "confidence": self.confidence,
            "timing_noise": self.timing_noise,
            "algorithms": {
                a: {
                    "score": self.scores[a],
                    "score_ci": list(self.score_ci[a]),
                    "rank": self.ranks[a],
                    "rank_ci": list(self.rank_ci[a]),
                }
                for a in self.algorithms
            },
        }


def bootstrap_scores(
    rows: Iterable[RowLike],
    n_resamples: int = 1000,
    seed: int = 0,
    tau_max: float = 4.0,
    confidence: float = 0.95,
    column: str = "time_to_target",
    variants: Mapping[str, Sequence[str]] | None = None,
    max_slowdown: float = 4.0,
    timing_noise: float = 0.0,
    trial_choice: str = "fastest",
    tau_points: int | None = None,
) -> BootstrapResult:
    """Bootstrap confidence intervals for benchmark scores and ranks, resampling studies.

    ``rows`` are trial rows (any form :func:`~laptime.scoring.core.as_time_rows` accepts).
    ``variants`` (base workload -> its variant workload keys, all present in ``rows``) switches
    on the variant gate: it is applied in every resample and only the base workloads are scored.
    An (algorithm, workload) pair without rows is a miss in every resample.
    The point estimates (``scores``, ``ranks``) use the un-resampled medians, i.e. they equal
    :func:`~laptime.scoring.core.benchmark_scores` on the (gated) aggregate. ``trial_choice`` picks
    each study's trial (see :func:`~laptime.scoring.core.study_bests`); ``tau_points`` the
    integration (see :func:`~laptime.scoring.core.benchmark_scores`).
    """
    _check_column(column)
    tau_max = _check_tau_max(tau_max)
    tau_points = _check_tau_points(tau_points)
    n_resamples = int(n_resamples)
    if n_resamples < 1:
        raise ScoringError(f"n_resamples must be >= 1, got {n_resamples}")
    if variants is not None and not float(max_slowdown) >= 1:
        raise ScoringError(f"max_slowdown must be >= 1, got {max_slowdown!r}")
    if not 0 < confidence < 1:
        raise ScoringError(f"confidence must be in (0, 1), got {confidence!r}")
    if not 0 <= float(timing_noise) < 1:
        raise ScoringError(f"timing_noise must be in [0, 1), got {timing_noise!r}")

    best = study_bests(rows, column, trial_choice)
    algorithms = sorted(best)
    workloads = sorted({w for ws in best.values() for w in ws})
    rng = np.random.default_rng(seed)

    point = np.full((len(algorithms), len(workloads)), np.inf)
    samples = np.full((n_resamples, len(algorithms), len(workloads)), np.inf)
    for i, a in enumerate(algorithms):
        for j, w in enumerate(workloads):
            per_study = best[a].get(w)
            if not per_study:
                continue
            vals = np.array([per_study[s] for s in sorted(per_study)], dtype=float)
            point[i, j] = _median_last(vals)
            idx = rng.integers(0, len(vals), size=(n_resamples, len(vals)))
            drawn = vals[idx]
            if timing_noise:
                with np.errstate(invalid="ignore"):  # inf × a positive factor stays inf
                    drawn = drawn * np.exp(float(timing_noise) * rng.standard_normal(drawn.shape))
            samples[:, i, j] = _median_last(drawn)

    scored = workloads
    if variants is not None:
        listed = {v for vs in variants.values() for v in vs}
        scored = [w for w in workloads if w not in listed]
        base_idx = [workloads.index(w) for w in scored]
        pairs = _gate_pairs(variants, scored, workloads)
        point = _gate_array(point[:, base_idx], point, pairs, max_slowdown)
        samples = _gate_array(samples[:, :, base_idx], samples, pairs, max_slowdown)

    point_scores = _scores_from_ratios(_ratios_array(point), tau_max, tau_points)
    point_ranks = _ranks_array(point_scores)
    score_samples = _scores_from_ratios(_ratios_array(samples), tau_max, tau_points)
    rank_samples = _ranks_array(score_samples)

    alpha = (1 - confidence) / 2
    s_lo, s_hi = np.quantile(score_samples, [alpha, 1 - alpha], axis=0)
    r_lo = np.quantile(rank_samples, alpha, axis=0, method="lower")
    r_hi = np.quantile(rank_samples, 1 - alpha, axis=0, method="higher")
    return BootstrapResult(
        algorithms=algorithms,
        workloads=list(scored),
        scores={a: float(point_scores[i]) for i, a in enumerate(algorithms)},
        ranks={a: int(point_ranks[i]) for i, a in enumerate(algorithms)},
        score_ci={a: (float(s_lo[i]), float(s_hi[i])) for i, a in enumerate(algorithms)},
        rank_ci={a: (int(r_lo[i]), int(r_hi[i])) for i, a in enumerate(algorithms)},
        n_resamples=n_resamples,
        seed=int(seed),
        confidence=float(confidence),
        score_samples=score_samples,
        rank_samples=rank_samples,
        timing_noise=float(timing_noise),
    )

