"""Tuning rulesets: which trials a benchmark runs, as a list of :class:`TrialPlan`.

A ruleset turns *workloads* × *algorithms* into trial plans; executors
(:mod:`laptime.execution.executors`) run them and scoring groups the stored trials back by
``(ruleset, study, trial_index)``.  Planning is pure and deterministic: the same inputs give an
identical list of plans, in the same order, in every process and on every machine.

External tuning (:class:`ExternalTuning`, AlgoPerf's "external tuning" ruleset)
    ``studies`` independent studies of ``trials`` trials each.  Scoring takes, per workload, the
    fastest trial of each study and the median over studies.

    * **Every study gets its own quasi-random points.**  Study ``s`` of algorithm ``a`` draws
      ``space.points(trials, seed=derive_seed(seed, "points", a, s))``.  (AlgoPerf's defect: its
      point generator is deterministic, so every study got the *same* points, and the studies
      were copies of each other rather than independent repeats.)
    * **A fixed list of points** (:attr:`SearchSpace.is_fixed_list`) is run in its order:
      ``min(trials, max_points)`` points, the same list in every study (only the seeds differ).
      A list shorter than ``trials`` simply gives shorter studies.
    * **The same point is used on every workload within a study**: trial ``t`` of study ``s`` of
      algorithm ``a`` has one hyperparameter point, shared by all workloads.  (AlgoPerf tunes each
      workload separately, but since its points are deterministic every workload got the same
      points there too; laptime makes that explicit.)  It also means that "trial ``t`` of study
      ``s``" names one configuration across the whole workload set.
    * An algorithm without a search space cannot be tuned externally: :class:`RulesetError`
      (use the self-tuning ruleset for it).

Self-tuning (:class:`SelfTuning`)
    No tuning: every trial uses the algorithm's ``self_tuning_defaults``, and the time budget is
    multiplied by ``budget_factor`` (AlgoPerf: 3 in v0.5, 1.5 in v0.6).  ``studies`` repeats the
    trial with different seeds (``trial_index`` is always 0).

Seeds
    A plan's ``seed`` (model initialisation, data order and the algorithm's RNG, see
    :func:`laptime.runner.trial.derive_seeds`) is ``derive_seed(seed, "trial", study, trial)``: it
    differs across studies and trials, and is shared by all algorithms and workloads at the same
    ``(study, trial)`` -- common random numbers, so that algorithms are compared on the same
    initialisations and data orders.  Seeds come from SHA-256 (never Python's ``hash()``, which is
    randomised per process) and are integers in ``[0, 2**31)``.

Order of the plans
    algorithm (as given) → study → trial → workload (as given).

This module is torch-free: :class:`TrialPlan` lives in :mod:`laptime.records`.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Union

from laptime.records import TrialPlan
from laptime.tuning.search_space import SearchSpace
from laptime.errors import LaptimeError

__all__ = [
    "RULESETS",
    "ExternalTuning",
    "Ruleset",
    "RulesetError",
    "SelfTuning",
    "algorithm_entry",
    "derive_seed",
    "make_ruleset",
    "plan_trials",
    "points_seed",
    "trial_seed",
]

#: Seeds are drawn from ``[0, SEED_LIMIT)``.
SEED_LIMIT = 2**31


class RulesetError(LaptimeError, ValueError):
    """A ruleset is misconfigured, or cannot be applied to the given workloads/algorithms."""


def _check_count(value: Any, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RulesetError(f"{what} must be an integer >= 1, got {value!r}")
    if value < 1:
        raise RulesetError(f"{what} must be an integer >= 1, got {value}")


@dataclasses.dataclass(frozen=True)
class ExternalTuning:
    """``studies`` studies × ``trials`` trials, points from the algorithm's search space.

    Defaults are AlgoPerf v0.6's (3 × 5; v0.5 used 5 × 5).
    """

    studies: int = 3
    trials: int = 5
    name: ClassVar[str] = "external"

    def __post_init__(self) -> None:
        _check_count(self.studies, "external tuning: studies")
        _check_count(self.trials, "external tuning: trials (per study)")


@dataclasses.dataclass(frozen=True)
class SelfTuning:
    """The algorithm's own defaults, a budget × ``budget_factor``, ``studies`` seeds.

    Default budget factor 1.5 as in AlgoPerf v0.6 (v0.5 used 3).
    """

    budget_factor: float = 1.5
    studies: int = 1
    name: ClassVar[str] = "self"

    def __post_init__(self) -> None:
        factor = self.budget_factor
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not math.isfinite(factor) \
                or factor <= 0:
            raise RulesetError(f"self-tuning: budget_factor must be a finite number > 0, got {factor!r}")
        _check_count(self.studies, "self-tuning: studies")


Ruleset = Union[ExternalTuning, SelfTuning]

#: Ruleset classes by name (``--ruleset external|self``).
RULESETS: dict[str, type] = {ExternalTuning.name: ExternalTuning, SelfTuning.name: SelfTuning}


def make_ruleset(name: str, **options: Any) -> Ruleset:
    """A ruleset by name (``"external"`` or ``"self"``) with its options (``studies=...``)."""
    cls = RULESETS.get(name)
    if cls is None:
        raise RulesetError(f"unknown ruleset {name!r}: expected one of {', '.join(RULESETS)}")
    try:
        return cls(**options)
    except TypeError as exc:
        fields = ", ".join(f.name for f in dataclasses.fields(cls))
        raise RulesetError(f"ruleset {name!r} takes {fields}: {exc}") from None


def derive_seed(*parts: Any) -> int:
    """A stable seed in ``[0, 2**31)`` from JSON-able ``parts`` (SHA-256; same in every process)."""
    payload = json.dumps(["laptime", *parts], sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(payload.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % SEED_LIMIT


def algorithm_entry(spec: str, algorithm: Any, with_space: bool = True) -> tuple[str, SearchSpace | None, dict[str, Any]]:
    """``(spec, algorithm.search_space(), algorithm.self_tuning_defaults)`` for :func:`plan_trials`.

    ``spec`` is what the plan will name (a registered name, a ``.py`` path or ``module:attr``:
    whatever the executor's algorithm registry resolves), ``algorithm`` the resolved object.
    ``with_space=False`` leaves the search space out (``None``) without reading it: the
    self-tuning ruleset never uses it, so an algorithm whose space file is missing still runs there.
    """
    space_fn = getattr(algorithm, "search_space", None)
    space = space_fn() if with_space and callable(space_fn) else None
    defaults = getattr(algorithm, "self_tuning_defaults", None) or {}
    return spec, space, dict(defaults)


WorkloadEntry = Union[str, tuple]
AlgorithmEntry = tuple


def _workloads(workloads: Iterable[WorkloadEntry]) -> list[tuple[str, str | None, str | None]]:
    out: list[tuple[str, str | None, str | None]] = []
    for entry in workloads:
        if isinstance(entry, str):
            entry = (entry, None, None)
        if not isinstance(entry, (tuple, list)) or len(entry) != 3 or not isinstance(entry[0], str) \
                or not entry[0] or not all(x is None or isinstance(x, str) for x in entry[1:]):
            raise RulesetError(
                f"bad workload entry {entry!r}: expected (name, variant or None, config or None)"
            )
        item = (entry[0], entry[1], entry[2])
        if item in out:
            raise RulesetError(f"workload {_workload_label(item)} is listed twice")
        out.append(item)
    if not out:
        raise RulesetError("no workloads to plan: give at least one (name, variant, config)")
    return out


def _workload_label(w: tuple[str, str | None, str | None]) -> str:
    name, variant, config = w
    return f"{name}{'/' + variant if variant else ''}{'@' + config if config else ''}"


def _algorithms(algorithms: Iterable[AlgorithmEntry]) -> list[tuple[str, SearchSpace | None, dict[str, Any]]]:
    out: list[tuple[str, SearchSpace | None, dict[str, Any]]] = []
    seen: set[str] = set()
    for entry in algorithms:
        if not isinstance(entry, (tuple, list)) or len(entry) != 3 or not isinstance(entry[0], str) or not entry[0]:
            raise RulesetError(
                f"bad algorithm entry {entry!r}: expected (name, SearchSpace or None, "
                "self-tuning defaults dict) -- see algorithm_entry()"
            )
        name, space, defaults = entry
        if space is not None and not isinstance(space, SearchSpace):
            raise RulesetError(
                f"algorithm {name!r}: the search space must be a laptime.tuning.SearchSpace or None, "
                f"got {type(space).__name__}"
            )
        if defaults is None:
            defaults = {}
        if not isinstance(defaults, Mapping):
            raise RulesetError(
                f"algorithm {name!r}: self-tuning defaults must be a mapping of hyperparameter names "
                f"to values, got {type(defaults).__name__}"
            )
        if name in seen:
            raise RulesetError(f"algorithm {name!r} is listed twice")
        seen.add(name)
        out.append((name, space, dict(defaults)))
    if not out:
        raise RulesetError("no algorithms to plan: give at least one (name, search space, defaults)")
    return out


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise RulesetError(f"seed must be an integer >= 0, got {seed!r}")
    return seed


def trial_seed(seed: int, study: int, trial: int) -> int:
    """The ``seed`` of trial ``trial`` of study ``study`` (shared by algorithms and workloads)."""
    return derive_seed(seed, "trial", study, trial)


def points_seed(seed: int, algorithm: str, study: int) -> int:
    """The seed of the quasi-random points of ``algorithm``'s study ``study``."""
    return derive_seed(seed, "points", algorithm, study)


def plan_trials(
    ruleset: Ruleset,
    workloads: Sequence[WorkloadEntry],
    algorithms: Sequence[AlgorithmEntry],
    seed: int = 0,
) -> list[TrialPlan]:
    """Every trial of ``ruleset`` for ``workloads`` × ``algorithms`` (see the module docstring).

    ``workloads``: ``(name, variant, config)`` tuples (``None`` = the workload's default; a bare
    name is accepted too). ``algorithms``: ``(name, search space or None, self-tuning defaults)``
    tuples (:func:`algorithm_entry` builds one from an Algorithm). Raises :class:`RulesetError`
    for a bad ruleset, empty or duplicate entries, or an algorithm without a search space under
    external tuning.
    """
    if not isinstance(ruleset, (ExternalTuning, SelfTuning)):
        raise RulesetError(
            f"unknown ruleset {ruleset!r}: expected ExternalTuning(...) or SelfTuning(...)"
        )
    seed = _check_seed(seed)
    wls = _workloads(workloads)
    algos = _algorithms(algorithms)
    plans: list[TrialPlan] = []

    if isinstance(ruleset, ExternalTuning):
        untunable = [name for name, space, _ in algos if space is None]
        if untunable:
            raise RulesetError(
                f"algorithm(s) {', '.join(map(repr, untunable))} have no search space, so they cannot be "
                "tuned under the external-tuning ruleset; give them a search space "
                "(Algorithm.search_space()) or use the self-tuning ruleset (--ruleset self), which "
                "runs their self_tuning_defaults"
            )
        for name, space, _ in algos:
            assert space is not None
            n = ruleset.trials if space.max_points is None else min(ruleset.trials, space.max_points)
            for study in range(ruleset.studies):
                points = space.points(n, seed=points_seed(seed, name, study))
                for trial, point in enumerate(points):
                    for w_name, variant, config in wls:
                        plans.append(TrialPlan(
                            workload=w_name, algorithm=name, hyperparameters=copy.deepcopy(point),
                            seed=trial_seed(seed, study, trial), variant=variant, config=config,
                            ruleset=ruleset.name, study=study, trial_index=trial, budget_factor=1.0,
                        ))
        return plans

    for name, _, defaults in algos:
        for study in range(ruleset.studies):
            for w_name, variant, config in wls:
                plans.append(TrialPlan(
                    workload=w_name, algorithm=name, hyperparameters=copy.deepcopy(defaults),
                    seed=trial_seed(seed, study, 0), variant=variant, config=config,
                    ruleset=ruleset.name, study=study, trial_index=0,
                    budget_factor=float(ruleset.budget_factor),
                ))
    return plans
