"""Scoring core: trial rows -> times table -> performance ratios, profiles and scores.

Pure functions on plain Python data and numpy (no torch, no ``laptime.api``).

Data shapes
-----------
*Rows.*  One row per finished trial.  The canonical form is :class:`TimeRow`; every function
that takes rows also accepts

- :class:`laptime.records.TrialRecord` objects (converted with :func:`rows_from_records`),
- mappings with keys ``algorithm``, ``workload``, ``study`` (default 0), ``trial`` (default 0) and
  the value column being used (``time_to_target`` or ``steps_to_target``; the other one defaults
  to a miss),
- plain tuples ``(algorithm, workload, study, trial, time_to_target[, steps_to_target])``.

A miss (target not reached) is ``math.inf`` (``None`` is read as a miss too).  Negative or NaN
values are rejected with :class:`ScoringError`.

*Times table.*  ``times[algorithm][workload] -> float`` (seconds, or steps when scoring
``steps_to_target``), ``inf`` for a miss.  Everywhere in this package an algorithm that has no
entry for a workload that appears for some other algorithm is treated as a miss (``inf``), not
as an error: a submission that did not run a workload cannot be credited for it.

*Workload keys.*  A base workload is keyed by its name (``"mnist"``); a non-base variant by
``"name/variant"`` (``"mnist/gelu"``).  :func:`variants_from_workloads` rebuilds the
base -> variants mapping from such keys for the variant gate.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Union

import numpy as np

from laptime.records import Outcome, TrialRecord
from laptime.errors import LaptimeError

__all__ = [
    "COLUMNS",
    "COLUMN_NAMES",
    "ScoringError",
    "TimeRow",
    "Times",
    "as_time_rows",
    "rows_from_records",
    "reference_costs",
    "workload_key",
    "median",
    "TRIAL_CHOICES",
    "eval_index_to_target",
    "study_bests",
    "aggregate",
    "algorithms_and_workloads",
    "performance_ratios",
    "tau_grid",
    "performance_profiles",
    "benchmark_scores",
    "rank_scores",
    "speedups",
    "geometric_mean",
    "geometric_mean_speedups",
    "variants_from_workloads",
    "apply_variant_gate",
    "check_comparable",
]

#: The value columns a times table can be built from: raw submission seconds (AlgoPerf's rule),
#: steps, and the contention-robust time (:mod:`laptime.runner.workmeter`).
COLUMNS = ("time_to_target", "steps_to_target", "robust_time_to_target")

#: Human-readable names of the value columns.
COLUMN_NAMES = {"time_to_target": "raw submission time to target",
                "steps_to_target": "steps to target",
                "robust_time_to_target": "robust submission time to target"}

#: ``times[algorithm][workload] -> float`` (``inf`` = missed the target).
Times = dict[str, dict[str, float]]

#: Absolute tolerance under which two scores count as tied when ranking.
RANK_TIE_TOL = 1e-12

#: How each study's trial is chosen: ``fastest`` (laptime: the smallest value of the scored column)
#: or ``algoperf`` (AlgoPerf's scoring code: the trial that met the target at the earliest *eval
#: index*, which is not the fastest one when trials evaluate at different times).
TRIAL_CHOICES = ("fastest", "algoperf")


class ScoringError(LaptimeError, ValueError):
    """Bad input to scoring (malformed rows or files, incomparable trials, bad parameters)."""


@dataclasses.dataclass(frozen=True)
class TimeRow:
    """One trial's result: who, where, which study/trial, and how long to the target.

    ``time_to_target`` (seconds of submission time) and ``steps_to_target`` are ``math.inf`` when
    the trial did not reach the target.
    """

    algorithm: str
    workload: str
    study: int = 0
    trial: int = 0
    time_to_target: float = math.inf
    steps_to_target: float = math.inf
    robust_time_to_target: float = math.inf
    #: Position (0-based) of the first eval that met the target, or ``None`` (a miss, or unknown).
    #: Only read by the ``algoperf`` trial choice (:func:`study_bests`).
    eval_index_to_target: int | None = None


RowLike = Union[TimeRow, TrialRecord, Mapping[str, Any], Sequence[Any]]


# --------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------


def workload_key(workload: str, variant: str | None) -> str:
    """``workload`` for the base variant (``None``, ``""`` or ``"base"``), else ``"workload/variant"``."""
    if variant in (None, "", "base"):
        return workload
    return f"{workload}/{variant}"


def _check_column(column: str) -> None:
    if column not in COLUMNS:
        raise ScoringError(f"unknown value column {column!r}; expected one of {', '.join(COLUMNS)}")


def _clean_value(value: Any, what: str, where: str) -> float:
    """``None`` -> inf; otherwise a non-negative, non-NaN float."""
    if value is None:
        return math.inf
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ScoringError(f"{where}: {what} {value!r} is not a number") from None
    if math.isnan(v):
        raise ScoringError(f"{where}: {what} is NaN")
    if v < 0:
        raise ScoringError(f"{where}: {what} {value!r} is negative")
    return v


def _clean_int(value: Any, what: str, where: str, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ScoringError(f"{where}: {what} {value!r} is not an integer") from None
    if not f.is_integer():
        raise ScoringError(f"{where}: {what} {value!r} is not an integer")
    return int(f)


def _clean_name(value: Any, what: str, where: str) -> str:
    if value is None or str(value).strip() == "":
        raise ScoringError(f"{where}: {what} is empty")
    return str(value).strip()


def reference_costs(records: Sequence[TrialRecord]) -> dict[str, float]:
    """Per workload key, the lowest reference cost (seconds of one reference pass of the speed
    probe) of the records that measured one: the common rate at which the robust times of trials
    scored together are expressed — the machine at its least disturbed. Scores do not depend on
    it (a common factor per workload leaves every ratio alone); the seconds shown do."""
    costs: dict[str, list[float]] = defaultdict(list)
    for r in records:
        if r.reference_cost is not None and math.isfinite(r.reference_cost) and r.reference_cost > 0:
            costs[workload_key(r.workload, r.variant)].append(float(r.reference_cost))
    return {w: float(min(c)) for w, c in costs.items()}


def rows_from_records(records: Iterable[TrialRecord], column: str = "time_to_target",
                      refs: Mapping[str, float] | None = None) -> list[TimeRow]:
    """Turn :class:`~laptime.records.TrialRecord` objects into :class:`TimeRow` rows.

    - workload key: ``record.workload`` for the ``"base"`` variant, else ``f"{workload}/{variant}"``;
    - ``study``: ``record.study``, ``None`` -> 0;
    - ``trial``: ``record.trial_index``, ``None`` -> the record's position in ``records``;
    - ``time_to_target``/``steps_to_target``: the record's values, ``inf`` when ``None`` or when
      the outcome is not :attr:`Outcome.REACHED`;
    - ``robust_time_to_target``: the record's work to target (reference passes) times the
      lowest reference cost of the records of its workload (:func:`reference_costs`), so that
      trials scored together share one conversion and their ratios are ratios of work; a record
      without work uses its own robust time. When ``column`` is this one, a reached trial without
      any robust time is an error (it was run with the robust time off, or by an older laptime).
    """
    records = list(records)
    if refs is None:
        refs = reference_costs(records) if any(r.work_to_target is not None for r in records) else {}
    rows = []
    for i, r in enumerate(records):
        reached = Outcome(r.outcome) is Outcome.REACHED
        where = f"record {i} ({r.algorithm} on {r.workload})"
        key = workload_key(r.workload, r.variant)
        t = _clean_value(r.time_to_target, "time_to_target", where) if reached else math.inf
        s = _clean_value(r.steps_to_target, "steps_to_target", where) if reached else math.inf
        robust = math.inf
        if reached:
            if r.work_to_target is not None and key in refs:
                robust = _clean_value(r.work_to_target * refs[key], "robust_time_to_target", where)
            elif r.robust_time_to_target is not None:
                robust = _clean_value(r.robust_time_to_target, "robust_time_to_target", where)
            elif column == "robust_time_to_target":
                raise ScoringError(f"{where}: reached its target but has no robust time (run with the robust "
                                   "time off, or by an older laptime); score it by raw time or by steps")
        rows.append(
            TimeRow(
                algorithm=r.algorithm,
                workload=key,
                study=0 if r.study is None else int(r.study),
                trial=i if r.trial_index is None else int(r.trial_index),
                time_to_target=t,
                steps_to_target=s,
                robust_time_to_target=robust,
                eval_index_to_target=eval_index_to_target(r),
            )
        )
    return rows


def eval_index_to_target(record: TrialRecord) -> int | None:
    """Position (0-based) in ``record.evals`` of the eval at which a reached trial met its target.

    ``record.measurement["eval_index_to_target"]`` when the record carries it (imported trials do);
    else the first eval at ``steps_to_target`` (the runner stops at the first eval that meets the
    target, so that is the one). ``None`` when the trial did not reach its target or its evals are
    not loaded.
    """
    if Outcome(record.outcome) is not Outcome.REACHED:
        return None
    stored = (record.measurement or {}).get("eval_index_to_target")
    if stored is not None:
        return int(stored)
    for i, ev in enumerate(record.evals):
        if record.steps_to_target is not None and ev.step == record.steps_to_target:
            return i
    return None


_TUPLE_FIELDS = ("algorithm", "workload", "study", "trial", "time_to_target", "steps_to_target",
                 "robust_time_to_target")


def as_time_rows(rows: Iterable[RowLike], column: str = "time_to_target") -> list[TimeRow]:
    """Normalise any accepted row form (see module docstring) to validated :class:`TimeRow` s.

    ``column`` is the value column that will be used: mappings must contain it and tuples must be
    long enough to hold it; the other value column defaults to a miss.
    """
    _check_column(column)
    rows = list(rows)
    records = [r for r in rows if isinstance(r, TrialRecord)]
    refs = reference_costs(records) if records else {}  # one conversion for all records scored together
    out: list[TimeRow] = []
    for i, row in enumerate(rows):
        where = f"row {i}"
        if isinstance(row, TimeRow):
            out.append(
                TimeRow(
                    _clean_name(row.algorithm, "algorithm", where),
                    _clean_name(row.workload, "workload", where),
                    _clean_int(row.study, "study", where, 0),
                    _clean_int(row.trial, "trial", where, 0),
                    _clean_value(row.time_to_target, "time_to_target", where),
                    _clean_value(row.steps_to_target, "steps_to_target", where),
                    _clean_value(row.robust_time_to_target, "robust_time_to_target", where),
                    _clean_index(row.eval_index_to_target, where),
                )
            )
            continue
        if isinstance(row, TrialRecord):
            converted = rows_from_records([row], column, refs)[0]
            out.append(dataclasses.replace(converted, trial=i if row.trial_index is None else int(row.trial_index)))
            continue
        if isinstance(row, Mapping):
            if column not in row:
                raise ScoringError(f"{where}: no {column!r} in {dict(row)!r}")
            fields = {k: row.get(k) for k in _TUPLE_FIELDS}
            fields["eval_index_to_target"] = row.get("eval_index_to_target")
        elif isinstance(row, Sequence) and not isinstance(row, (str, bytes)):
            if not 5 <= len(row) <= 7:
                raise ScoringError(
                    f"{where}: a tuple row must be (algorithm, workload, study, trial, "
                    f"time_to_target[, steps_to_target[, robust_time_to_target]]); got {len(row)} items"
                )
            if column == "steps_to_target" and len(row) < 6:
                raise ScoringError(f"{where}: tuple has no steps_to_target (6th item)")
            if column == "robust_time_to_target" and len(row) < 7:
                raise ScoringError(f"{where}: tuple has no robust_time_to_target (7th item)")
            fields = dict.fromkeys((*_TUPLE_FIELDS, "eval_index_to_target"))
            fields.update(zip(_TUPLE_FIELDS, row))
        else:
            raise ScoringError(f"{where}: cannot read a row from {type(row).__name__}")
        out.append(
            TimeRow(
                algorithm=_clean_name(fields["algorithm"], "algorithm", where),
                workload=_clean_name(fields["workload"], "workload", where),
                study=_clean_int(fields["study"], "study", where, 0),
                trial=_clean_int(fields["trial"], "trial", where, 0),
                time_to_target=_clean_value(fields["time_to_target"], "time_to_target", where),
                steps_to_target=_clean_value(fields["steps_to_target"], "steps_to_target", where),
                robust_time_to_target=_clean_value(fields["robust_time_to_target"], "robust_time_to_target", where),
                eval_index_to_target=_clean_index(fields["eval_index_to_target"], where),
            )
        )
    return out


def _clean_index(value: Any, where: str) -> int | None:
    """An eval index: ``None``, ``""`` or ``inf`` -> ``None`` (a miss, or unknown), else an integer >= 0."""
    if value is None or value == "":
        return None
    v = _clean_value(value, "eval_index_to_target", where)
    if math.isinf(v):
        return None
    if not v.is_integer():
        raise ScoringError(f"{where}: eval_index_to_target {value!r} is not an integer")
    return int(v)


# --------------------------------------------------------------------------------------------
# Aggregation
# --------------------------------------------------------------------------------------------


def median(values: Iterable[float]) -> float:
    """Median with misses as ``inf``.

    Odd ``n``: the middle value of the sorted values.  Even ``n``: the mean of the two middle
    values, ``(a + b) / 2`` — so ``inf`` if either is ``inf``.  Empty input -> :class:`ScoringError`.
    """
    v = sorted(float(x) for x in values)
    n = len(v)
    if n == 0:
        raise ScoringError("median of no values")
    if n % 2:
        return v[n // 2]
    return (v[n // 2 - 1] + v[n // 2]) / 2


def _median_last(a: np.ndarray) -> np.ndarray:
    """:func:`median` along the last axis of an array (same even-count rule)."""
    s = np.sort(a, axis=-1)
    n = s.shape[-1]
    if n % 2:
        return s[..., n // 2]
    return (s[..., n // 2 - 1] + s[..., n // 2]) / 2


def _check_trial_choice(trial_choice: str) -> None:
    if trial_choice not in TRIAL_CHOICES:
        raise ScoringError(f"unknown trial choice {trial_choice!r}; expected one of {', '.join(TRIAL_CHOICES)}")


def study_bests(
    rows: Iterable[RowLike], column: str = "time_to_target", trial_choice: str = "fastest"
) -> dict[str, dict[str, dict[int, float]]]:
    """The chosen trial's value per study: ``best[algorithm][workload][study]``.

    ``trial_choice="fastest"`` (laptime's rule): the smallest value of ``column`` among the
    study's trials — chosen by value, not by trial order or eval index.

    ``trial_choice="algoperf"`` (AlgoPerf's scoring code, to reproduce published numbers): the
    trial that met the target at the smallest eval index (``TimeRow.eval_index_to_target``; ties go
    to the smaller trial number), whatever its time — so a trial that evaluates more often, or
    whose first evals come later, can be chosen over a faster one. Every reached row must then know
    its eval index.

    A study where every trial missed has best ``inf``.
    """
    _check_trial_choice(trial_choice)
    best: dict[str, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    if trial_choice == "fastest":
        for row in as_time_rows(rows, column):
            v = getattr(row, column)
            cell = best[row.algorithm][row.workload]
            cell[row.study] = min(v, cell.get(row.study, math.inf))
        return {a: {w: dict(s) for w, s in ws.items()} for a, ws in best.items()}
    chosen: dict[tuple[str, str, int], tuple[float, int, float]] = {}
    for i, row in enumerate(as_time_rows(rows, column)):
        v = getattr(row, column)
        if math.isinf(v):
            key = (math.inf, row.trial, v)
        else:
            if row.eval_index_to_target is None:
                raise ScoringError(
                    f"row {i} ({row.algorithm} on {row.workload}, study {row.study}, trial {row.trial}) reached "
                    "the target but its eval index is unknown: AlgoPerf's trial choice needs it (load the "
                    "trials with their evals, or give an eval_index_to_target column)")
            key = (row.eval_index_to_target, row.trial, v)
        cell_key = (row.algorithm, row.workload, row.study)
        if cell_key not in chosen or key[:2] < chosen[cell_key][:2]:
            chosen[cell_key] = key
    for (a, w, s), (_, _, v) in chosen.items():
        best[a][w][s] = v
    return {a: {w: dict(s) for w, s in ws.items()} for a, ws in best.items()}


def algorithms_and_workloads(times: Mapping[str, Mapping[str, float]]) -> tuple[list[str], list[str]]:
    """Sorted algorithm names and the sorted union of all workloads in a times table."""
    algorithms = sorted(times)
    workloads = sorted({w for ws in times.values() for w in ws})
    return algorithms, workloads


def _fill(times: Mapping[str, Mapping[str, float]]) -> Times:
    algorithms, workloads = algorithms_and_workloads(times)
    return {a: {w: float(times[a].get(w, math.inf)) for w in workloads} for a in algorithms}


def aggregate(rows: Iterable[RowLike], column: str = "time_to_target", trial_choice: str = "fastest") -> Times:
    """Trial rows -> times table, generic over the value ``column``.

    ``t[a, w] = median over studies s of ( min over trials i in s of value[a, w, s, i] )``
    (``trial_choice="algoperf"``: of the trial AlgoPerf's code picks, see :func:`study_bests`)

    with misses as ``inf`` (see :func:`median` for the even-count rule).  The table is complete:
    an algorithm with no rows for a workload some other algorithm ran gets ``inf`` there.
    Use ``column="steps_to_target"`` for steps-to-target scoring.
    """
    best = study_bests(rows, column, trial_choice)
    times = {a: {w: median(s.values()) for w, s in ws.items()} for a, ws in best.items()}
    return _fill(times)


# --------------------------------------------------------------------------------------------
# Ratios, profiles, scores (array kernels shared with the bootstrap)
# --------------------------------------------------------------------------------------------


def _to_array(
    times: Mapping[str, Mapping[str, float]], algorithms: Sequence[str], workloads: Sequence[str]
) -> np.ndarray:
    arr = np.full((len(algorithms), len(workloads)), np.inf)
    for i, a in enumerate(algorithms):
        for j, w in enumerate(workloads):
            v = times.get(a, {}).get(w, math.inf)
            arr[i, j] = math.inf if v is None else float(v)
    if np.isnan(arr).any() or (arr < 0).any():
        raise ScoringError("times must be non-negative numbers or inf (no NaN)")
    return arr


def _ratios_array(t: np.ndarray) -> np.ndarray:
    """Ratios along the algorithm axis (-2): ``t / min_alg t``.

    ``min = inf`` (everyone missed) -> ``inf`` for all; ``min = 0`` -> 1 for the zero times and
    ``inf`` for the rest (``0/0`` counts as a tie for fastest).
    """
    best = t.min(axis=-2, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = t / best
    r = np.where(np.isinf(best), np.inf, r)
    r = np.where(best == 0, np.where(t == 0, 1.0, np.inf), r)
    return r


def _scores_from_ratios(r: np.ndarray, tau_max: float, tau_points: int | None = None) -> np.ndarray:
    """``B = 1/(tau_max-1) * integral_1^tau_max rho(tau) dtau`` along the workload axis (-1).

    Exact by default; with ``tau_points`` the trapezoid rule on that many evenly spaced taus, as
    AlgoPerf's scoring code integrates (with 100 points), to reproduce its published numbers."""
    n_workloads = r.shape[-1]
    if n_workloads == 0:
        return np.zeros(r.shape[:-1])
    if tau_points is not None:
        taus = np.linspace(1.0, tau_max, tau_points)
        rho = (r[..., None, :] <= taus[:, None]).sum(axis=-1) / n_workloads  # (..., points)
        return np.trapezoid(rho, taus, axis=-1) / (tau_max - 1.0)
    with np.errstate(invalid="ignore"):
        area = np.where(r <= tau_max, (tau_max - np.maximum(r, 1.0)) / (tau_max - 1.0), 0.0)
    return area.sum(axis=-1) / n_workloads


def _ranks_array(scores: np.ndarray) -> np.ndarray:
    """Competition ranks along the last axis: ``1 + #(others with a strictly higher score)``."""
    higher = scores[..., None, :] > scores[..., :, None] + RANK_TIE_TOL
    return 1 + higher.sum(axis=-1)


def _check_tau_points(tau_points: int | None) -> int | None:
    if tau_points is None:
        return None
    if isinstance(tau_points, bool) or not isinstance(tau_points, (int, np.integer)) or tau_points < 2:
        raise ScoringError(f"tau_points must be an integer >= 2 (or None for the exact integral), got {tau_points!r}")
    return int(tau_points)


def _check_tau_max(tau_max: float) -> float:
    tau_max = float(tau_max)
    if not tau_max > 1 or math.isinf(tau_max):
        raise ScoringError(f"tau_max must be a finite number > 1, got {tau_max!r}")
    return tau_max


def performance_ratios(times: Mapping[str, Mapping[str, float]]) -> Times:
    """Performance ratios ``r[s, w] = t[s, w] / min_s' t[s', w]``.

    - a workload every algorithm missed (``min = inf``) gives ``r = inf`` for all;
    - a miss (``t = inf``) gives ``r = inf``;
    - a single algorithm gets ``r = 1`` wherever it reached the target;
    - equal fastest times are tied at ``r = 1``; if the fastest time is 0, the zero times get
      ``r = 1`` and the others ``inf``;
    - missing entries are misses (``inf``).
    """
    algorithms, workloads = algorithms_and_workloads(times)
    r = _ratios_array(_to_array(times, algorithms, workloads))
    return {a: {w: float(r[i, j]) for j, w in enumerate(workloads)} for i, a in enumerate(algorithms)}


def tau_grid(tau_max: float = 4.0, num: int = 301) -> np.ndarray:
    """``num`` evenly spaced values of tau from 1 to ``tau_max`` inclusive (for plotting profiles)."""
    return np.linspace(1.0, _check_tau_max(tau_max), int(num))


def performance_profiles(
    times: Mapping[str, Mapping[str, float]], taus: Iterable[float] | None = None, tau_max: float = 4.0
) -> dict[str, np.ndarray]:
    """Performance profiles sampled on a grid: ``rho_s(tau) = |{w : r[s, w] <= tau}| / |W|``.

    The comparison is inclusive (``r <= tau``).  ``|W|`` counts every workload in the table.
    ``taus`` defaults to :func:`tau_grid` ``(tau_max)``.  Returns ``{algorithm: array like taus}``.
    """
    taus_arr = tau_grid(tau_max) if taus is None else np.asarray(list(taus), dtype=float)
    algorithms, workloads = algorithms_and_workloads(times)
    r = _ratios_array(_to_array(times, algorithms, workloads))
    if not workloads:
        return {a: np.zeros_like(taus_arr) for a in algorithms}
    counts = (r[:, None, :] <= taus_arr[None, :, None]).sum(axis=-1)
    return {a: counts[i] / len(workloads) for i, a in enumerate(algorithms)}


def benchmark_scores(times: Mapping[str, Mapping[str, float]], tau_max: float = 4.0,
                     tau_points: int | None = None) -> dict[str, float]:
    """Benchmark scores ``B_s = 1/(tau_max - 1) * integral_1^tau_max rho_s(tau) dtau``, computed exactly.

    ``rho_s`` is a step function, so the integral is a sum over workloads: a workload with ratio
    ``r`` adds ``(tau_max - max(r, 1)) / (tau_max - 1) / |W|`` if ``r <= tau_max`` and 0 otherwise
    (a miss, ``r = inf``, adds 0; ``r = tau_max`` adds 0 area though it counts in
    ``rho(tau_max)``).  ``|W|`` is every workload in the table.  Scores lie in ``[0, 1]``; 1 means
    fastest (or tied fastest) on every workload.  Scores are relative to the algorithms scored
    together.  ``tau_points`` swaps the exact integral for the trapezoid rule on that many evenly
    spaced taus (AlgoPerf's scoring code uses 100), which reproduces AlgoPerf's published scores.
    """
    tau_max = _check_tau_max(tau_max)
    tau_points = _check_tau_points(tau_points)
    algorithms, workloads = algorithms_and_workloads(times)
    s = _scores_from_ratios(_ratios_array(_to_array(times, algorithms, workloads)), tau_max, tau_points)
    return {a: float(s[i]) for i, a in enumerate(algorithms)}


def rank_scores(scores: Mapping[str, float]) -> dict[str, int]:
    """Ranks from scores: rank 1 = highest score.

    Ties share the better rank (competition ranking, "1 2 2 4"): ``rank = 1 + #(algorithms with
    a strictly higher score)``; scores within ``1e-12`` count as tied.
    """
    names = list(scores)
    r = _ranks_array(np.array([float(scores[n]) for n in names]))
    return {n: int(r[i]) for i, n in enumerate(names)}


# --------------------------------------------------------------------------------------------
# Speedups
# --------------------------------------------------------------------------------------------


def _speedup(t_base: float, t_alg: float) -> float:
    if math.isinf(t_base) and math.isinf(t_alg):
        return math.nan
    if math.isinf(t_alg):
        return 0.0
    if t_alg == 0:
        return 1.0 if t_base == 0 else math.inf
    return t_base / t_alg  # inf if only the baseline missed


def speedups(times: Mapping[str, Mapping[str, float]], baseline: str) -> Times:
    """Per-workload speedup over ``baseline``: ``speedup[a][w] = t[baseline, w] / t[a, w]``.

    - both reached: the plain ratio (> 1 means faster than the baseline);
    - only the baseline missed: ``inf``; only the algorithm missed: ``0.0``;
    - both missed: ``nan`` (undefined);
    - ``0/0`` counts as 1.
    The baseline's own row is 1 where it reached and ``nan`` where it missed.
    """
    table = _fill(times)
    if baseline not in table:
        raise ScoringError(f"baseline {baseline!r} is not among the algorithms: {', '.join(table) or '(none)'}")
    base = table[baseline]
    return {a: {w: _speedup(base[w], t) for w, t in ws.items()} for a, ws in table.items()}


def geometric_mean(values: Iterable[float]) -> float:
    """``exp(mean(log v))`` over the given positive finite values; ``nan`` if there are none."""
    v = [float(x) for x in values]
    if not v:
        return math.nan
    if any(not (x > 0 and math.isfinite(x)) for x in v):
        raise ScoringError(f"geometric mean needs positive finite values, got {v!r}")
    return math.exp(sum(math.log(x) for x in v) / len(v))


def geometric_mean_speedups(times: Mapping[str, Mapping[str, float]], baseline: str) -> dict[str, float]:
    """Geometric mean of :func:`speedups` over the workloads where both the algorithm and the
    baseline reached the target (and both times are > 0):

    ``G[a] = exp( mean_{w in Both(a)} log(t[baseline, w] / t[a, w]) )``, ``nan`` if ``Both(a)`` is empty.
    """
    table = _fill(times)
    sp = speedups(table, baseline)
    base = table[baseline]
    out = {}
    for a, ws in table.items():
        both = [sp[a][w] for w, t in ws.items() if 0 < t < math.inf and 0 < base[w] < math.inf]
        out[a] = geometric_mean(both)
    return out


# --------------------------------------------------------------------------------------------
# Variant gate
# --------------------------------------------------------------------------------------------


def variants_from_workloads(workloads: Iterable[str]) -> dict[str, list[str]]:
    """Base -> variant keys from ``"base/variant"`` workload keys.

    Only keys whose base is itself among ``workloads`` are paired; every base workload appears
    in the result (with ``[]`` if it has no variants).  Keys without ``"/"`` are base workloads.
    """
    keys = sorted(set(workloads))
    bases = [k for k in keys if "/" not in k]
    out: dict[str, list[str]] = {b: [] for b in bases}
    for k in keys:
        if "/" in k:
            base = k.split("/", 1)[0]
            if base in out:
                out[base].append(k)
    return out


def _gate_array(
    t_base: np.ndarray, t_var: np.ndarray, pairs: Sequence[tuple[int, Sequence[int]]], max_slowdown: float
) -> np.ndarray:
    """Gate along the last two axes (algorithm, workload); see :func:`apply_variant_gate`."""
    out = t_base.copy()
    for j_base, j_vars in pairs:
        for j in j_vars:
            tv = t_var[..., :, j]  # (..., A)
            fastest = tv.min(axis=-1, keepdims=True)
            bad = np.isinf(tv) | (tv > max_slowdown * fastest)
            out[..., :, j_base] = np.where(bad, np.inf, out[..., :, j_base])
    return out


def _gate_pairs(
    variants: Mapping[str, Sequence[str]], base_workloads: Sequence[str], variant_workloads: Sequence[str]
) -> list[tuple[int, list[int]]]:
    b_index = {w: j for j, w in enumerate(base_workloads)}
    v_index = {w: j for j, w in enumerate(variant_workloads)}
    pairs = []
    for base, vs in variants.items():
        if base not in b_index:
            raise ScoringError(f"variant gate: base workload {base!r} is not in the base times")
        missing = [v for v in vs if v not in v_index]
        if missing:
            raise ScoringError(
                f"variant gate: no times for variant(s) {', '.join(map(repr, missing))} of {base!r}"
            )
        pairs.append((b_index[base], [v_index[v] for v in vs]))
    return pairs


def apply_variant_gate(
    base_times: Mapping[str, Mapping[str, float]],
    variant_times: Mapping[str, Mapping[str, float]] | None,
    variants: Mapping[str, Sequence[str]],
    max_slowdown: float = 4.0,
    enabled: bool = True,
) -> Times:
    """AlgoPerf v0.5 variant gate.

    For a base workload ``w`` with variants ``V(w)`` the gated time is

    ``t'[a, w] = inf`` if some ``v in V(w)`` has ``t[a, v] = inf`` or
    ``t[a, v] > max_slowdown * min_a' t[a', v]``; else ``t'[a, w] = t[a, w]``.

    Exactly ``max_slowdown`` times slower is allowed.  ``variant_times`` may be ``None`` to take
    the variants from ``base_times`` (one table holding both).  The result has the workloads of
    ``base_times`` minus any that are listed as variants, and the union of algorithms of both
    tables (missing entries are misses).  ``enabled=False`` returns the base table ungated (same
    shape), which makes the gate easy to switch off.  A base or variant named in ``variants`` but
    absent from the tables is a :class:`ScoringError`.
    """
    max_slowdown = float(max_slowdown)
    if not max_slowdown >= 1:
        raise ScoringError(f"max_slowdown must be >= 1, got {max_slowdown!r}")
    if variant_times is None:
        variant_times = base_times
    listed = {v for vs in variants.values() for v in vs}
    algorithms = sorted(set(base_times) | set(variant_times))
    base_workloads = sorted({w for ws in base_times.values() for w in ws} - listed)
    _, variant_workloads = algorithms_and_workloads(variant_times)
    tb = _to_array(base_times, algorithms, base_workloads)
    if enabled:
        tv = _to_array(variant_times, algorithms, variant_workloads)
        tb = _gate_array(tb, tv, _gate_pairs(variants, base_workloads, variant_workloads), max_slowdown)
    return {a: {w: float(tb[i, j]) for j, w in enumerate(base_workloads)} for i, a in enumerate(algorithms)}


# --------------------------------------------------------------------------------------------
# Comparability
# --------------------------------------------------------------------------------------------


def _describe(groups: Mapping[str, list[TrialRecord]]) -> str:
    parts = []
    for value, recs in sorted(groups.items()):
        algs = ", ".join(sorted({r.algorithm for r in recs}))
        parts.append(f"{value!r} ({len(recs)} trial{'s' if len(recs) != 1 else ''}: {algs})")
    return "; ".join(parts)


def check_comparable(records: Iterable[TrialRecord], force: bool = False) -> list[str]:
    """Check that trials can be scored together.

    Problems: more than one ``hardware_fingerprint`` among all records, or more than one
    ``workload_version`` among the records of one workload key (``workload`` or
    ``workload/variant``).  Each message names the differing values, how many trials have each
    and which algorithms ran them.  Raises :class:`ScoringError` with all problems unless
    ``force=True``, in which case the problem messages are returned (empty list when comparable).
    """
    records = list(records)
    problems = []
    by_hw: dict[str, list[TrialRecord]] = defaultdict(list)
    for r in records:
        by_hw[r.hardware_fingerprint].append(r)
    if len(by_hw) > 1:
        problems.append(f"trials come from different hardware (hardware_fingerprint): {_describe(by_hw)}")
    by_wl: dict[str, dict[str, list[TrialRecord]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        by_wl[workload_key(r.workload, r.variant)][r.workload_version].append(r)
    for wl, versions in sorted(by_wl.items()):
        if len(versions) > 1:
            problems.append(f"workload {wl!r} has trials from different workload_version values: {_describe(versions)}")
    if problems and not force:
        raise ScoringError(
            "refusing to score incomparable trials (pass force=True to score them anyway):\n  - "
            + "\n  - ".join(problems)
        )
    return problems

