"""Cheaper tuning: stop trials that cannot change the score (exact), or that are predicted not to.

Under external tuning only each study's *fastest* trial counts: the score of an (algorithm,
workload) is the median over studies of ``min`` over the study's trials of the scored value (time,
robust time or steps to target). Most of a study's compute goes into trials that cannot lower that
minimum. Pruning stops them.

Exact pruning (``--prune exact``)
    A trial whose *progress* in the scored quantity — steps done, submission seconds so far, or timed
    work so far (the robust time is work × one reference cost per workload, so work orders trials
    exactly as the robust time does) — has reached the best value already stored for its study
    (its *bound*) cannot finish with a smaller value: its value to target is at least its progress
    at any earlier moment. It is stopped (outcome ``pruned``) with the bound it proved, and scored
    as a miss. Since the study's minimum is at most that bound, the minimum, the median over studies,
    the variant gate, the profiles, the scores, the ranks and the bootstrap intervals (which resample
    study minima) are the same as without pruning: **by construction**, whatever the order trials
    run in. A tie (a trial that would meet the target exactly at the bound) is pruned too: it could
    not change the minimum either.

Predictive pruning (``--prune predict``)
    Exact pruning, plus a rule that stops a trial predicted not to meet the target within its budget
    or before its study's best (not exact: a stopped trial might have been the fastest):

    * ``rung`` — a rung rule in the spirit of successive halving: at rungs of ``budget / eta**k``
      steps (``k = 3, 2, 1``) a trial continues only if its best metric so far is among the top
      ``ceil(n / eta)`` of the ``n`` trials of its study (itself and those before it) that got
      that far;
    * ``curve`` — learning-curve extrapolation with an uncertainty
      (:func:`laptime.tuning.curves.predict_reach`): from ``min_fraction`` of the budget on, stop
      when the probability of meeting the target before ``min(budget, the step where this trial's
      progress would pass the bound)`` is below ``threshold``.

    Every prediction is kept in the trial's ``measurement["prune"]["predictions"]``.

Order: chains, most promising first
    A *chain* is one study of one algorithm on one workload. A trial's bound (and, for the rung
    rule, its peers) comes only from the trials *before it in its chain*, and an executor starts it
    only once those are stored (:class:`ChainOrder`). Within an algorithm's study every workload uses
    the same hyperparameter point per trial index; the study's first workload (the suite's first:
    put a cheap one first) is its *lead*, run in trial order, and the other workloads' chains then
    run their trials in the order of their points' results on the lead (met the target soonest
    first): the best trial tends to come early, and bounds the rest sooner. So what is pruned, and
    where, does not depend on the executor, the number of workers or how fast they run: in
    step-budget mode scored by steps, a pruned benchmark is exactly reproducible. Chains are
    independent, so a benchmark still has up to ``algorithms × workloads × studies`` trials it can
    run at once. (A shared best across chains would prune more, but what was pruned would then
    depend on timing.)

:func:`replay` runs the same rules over the stored trials of an unpruned benchmark: what pruning
would have saved and scored, without running anything (exact for steps; interpolated between evals
for times). :func:`tuning_cost` sums what a benchmark's trials cost and what pruning saved.

Torch-free: the runner imports :class:`Pruner`; executors and the results store use the rest.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from laptime.errors import UsageError
from laptime.records import EvalRecord, Outcome, TrialPlan, TrialRecord

__all__ = [
    "MODES",
    "PREDICTORS",
    "ChainOrder",
    "PruneSpec",
    "Pruner",
    "PruningPolicy",
    "BY",
    "accepts",
    "chain_key",
    "lead_rank",
    "progress_of",
    "replay",
    "spec_from_records",
    "tuning_cost",
    "value_of",
    "walk_chains",
]

#: ``--prune`` choices. ``auto``: exact under external tuning, none under self-tuning.
MODES = ("auto", "none", "exact", "predict")
#: ``--predictor`` choices (predictive pruning).
PREDICTORS = ("curve", "rung")
#: Scored columns pruning can bound (those of :data:`laptime.scoring.COLUMNS`).
BY = ("time_to_target", "steps_to_target", "robust_time_to_target")


@dataclasses.dataclass(frozen=True)
class PruningPolicy:
    """How a benchmark prunes: ``mode`` (``none``, ``exact``, ``predict``), ``by`` (the scored column),
    and for ``predict`` the ``predictor`` and its settings."""

    mode: str = "exact"
    by: str = "robust_time_to_target"
    predictor: str = "curve"
    threshold: float = 0.05  # curve: stop when P(target before the limit) < threshold
    min_fraction: float = 0.2  # curve: no prediction before this fraction of the step budget
    eta: int = 3  # rung: keep the top 1/eta at each rung
    rungs: int = 3  # rung: rungs at budget/eta**k, k = rungs..1

    def __post_init__(self) -> None:
        if self.mode not in ("none", "exact", "predict"):
            raise UsageError(f"prune must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.by not in BY:
            raise UsageError(f"pruning cannot bound {self.by!r}: expected one of {', '.join(BY)}")
        if self.predictor not in PREDICTORS:
            raise UsageError(f"predictor must be one of {', '.join(PREDICTORS)}, got {self.predictor!r}")
        if not 0 < float(self.threshold) < 1:
            raise UsageError(f"--prune-threshold must be in (0, 1), got {self.threshold!r}")
        if not 0 <= float(self.min_fraction) < 1:
            raise UsageError(f"the curve rule's min_fraction must be in [0, 1), got {self.min_fraction!r}")
        if isinstance(self.eta, bool) or int(self.eta) < 2:
            raise UsageError(f"--prune-eta must be an integer >= 2, got {self.eta!r}")
        if isinstance(self.rungs, bool) or int(self.rungs) < 1:
            raise UsageError(f"rungs must be an integer >= 1, got {self.rungs!r}")

    @property
    def active(self) -> bool:
        return self.mode != "none"

    def describe(self) -> str:
        """One line for leaderboards and logs."""
        if self.mode == "none":
            return "no pruning"
        what = {"steps_to_target": "steps", "time_to_target": "raw time",
                "robust_time_to_target": "robust time (work)"}[self.by]
        if self.mode == "exact":
            return f"exact pruning by {what}"
        rule = (f"curve (P < {self.threshold:g} from {self.min_fraction:.0%} of the budget)"
                if self.predictor == "curve" else f"rung (eta {self.eta}, {self.rungs} rungs)")
        return f"predictive pruning by {what}, {rule} + exact"

    def to_dict(self) -> dict[str, Any]:
        if self.mode == "none":
            return {"mode": "none"}
        out: dict[str, Any] = {"mode": self.mode, "by": self.by}
        if self.mode == "predict":
            out["predictor"] = self.predictor
            if self.predictor == "curve":
                out.update(threshold=self.threshold, min_fraction=self.min_fraction)
            else:
                out.update(eta=self.eta, rungs=self.rungs)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PruningPolicy":
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in fields})


# ------------------------------------------------------------------------------------------ values


def value_of(record: TrialRecord, by: str) -> float | None:
    """The record's value to target in the units pruning compares (``None``: not reached): steps,
    submission seconds, or work (reference passes) for the robust time — the robust time is work
    × one reference cost per workload, so work orders trials as the robust time does."""
    if Outcome(record.outcome) is not Outcome.REACHED:
        return None
    if by == "steps_to_target":
        return None if record.steps_to_target is None else float(record.steps_to_target)
    if by == "time_to_target":
        return None if record.time_to_target is None else float(record.time_to_target)
    return None if record.work_to_target is None else float(record.work_to_target)


def progress_of(by: str, step: float, submission_time: float, work: float | None) -> float | None:
    """A running trial's progress in the units of ``by`` (``None``: not measured)."""
    if by == "steps_to_target":
        return float(step)
    if by == "time_to_target":
        return float(submission_time)
    return None if work is None else float(work)


def chain_key(plan: TrialPlan | TrialRecord) -> tuple | None:
    """The chain a planned or stored trial belongs to: one study of one algorithm on one workload
    (variant and configuration) of an external-tuning benchmark; None for other trials."""
    ruleset = plan.ruleset
    if ruleset != "external" or plan.study is None or plan.trial_index is None:
        return None
    return (plan.algorithm, plan.workload, plan.variant or "base", plan.config or "", int(plan.study))


def accepts(policy: PruningPolicy | None, record: TrialRecord) -> bool:
    """Whether a stored ``record`` is a finished result for a benchmark pruning with ``policy``.

    A full trial always is. A pruned trial is not a result for a benchmark that does not prune (it
    runs again), nor for one that scores another column; an exactly pruned one is for exact and
    predictive pruning by the same column, a predictively pruned one only for the same rule."""
    if Outcome(record.outcome) is not Outcome.PRUNED:
        return True
    if policy is None or not policy.active:
        return False
    info = (record.measurement or {}).get("prune") or {}
    if info.get("by") != policy.by:
        return False
    if info.get("stopped_by") == "exact":
        return True
    return policy.mode == "predict" and info.get("policy") == policy.to_dict()


# ------------------------------------------------------------------------------------------ the trial's side


@dataclasses.dataclass(frozen=True)
class PruneSpec:
    """What a trial is told when it starts (picklable: it travels to worker processes and jobs).

    ``bound``: the best value of its chain so far in the units of :func:`value_of` (None: nothing
    reached yet). ``peers``: the chain's earlier trials' eval curves ``((steps...), (values...))``
    for the rung rule."""

    policy: PruningPolicy
    bound: float | None = None
    peers: tuple[tuple[tuple[float, ...], tuple[float, ...]], ...] = ()
    chain: str = ""


def _better(a: float, b: float, maximise: bool) -> bool:
    return a > b if maximise else a < b


def _best_so_far(steps: Sequence[float], values: Sequence[float], upto: float, maximise: bool) -> float | None:
    seen = [v for s, v in zip(steps, values) if s <= upto and math.isfinite(v)]
    if not seen:
        return None
    return max(seen) if maximise else min(seen)


class Pruner:
    """The runner's pruning state for one trial (see the module docstring).

    :meth:`after_step` is the exact check (every step, outside the clock: a comparison);
    :meth:`after_eval` the predictive one. Each returns a reason to stop, or None. :meth:`summary`
    is what the trial stores in ``measurement["prune"]``."""

    def __init__(self, spec: PruneSpec, *, direction: str, target: float, budget_steps: int | None,
                 budget_sec: float, shadow: bool = False):
        self.spec = spec
        self.shadow = shadow  # predict and record, never stop (how good predictions are, on unpruned trials)
        self.policy = spec.policy
        self.maximise = direction == "max"
        self.target = float(target)
        self.budget_steps = budget_steps
        self.budget_sec = float(budget_sec)
        self.predictions: list[dict[str, Any]] = []
        self.stopped: dict[str, Any] | None = None
        self.steps: list[float] = []
        self.values: list[float] = []

    # -- exact
    def after_step(self, step: int, submission_time: float, work: float | None) -> str | None:
        bound = self.spec.bound
        if bound is None or self.stopped is not None:
            return None
        progress = progress_of(self.policy.by, step, submission_time, work)
        if progress is None or progress < bound:
            return None
        self.stopped = {"stopped_by": "exact", "step": step, "progress": progress}
        return (f"pruned (exact): {_unit_text(self.policy.by, progress)} spent, the study's best reached the "
                f"target at {_unit_text(self.policy.by, bound)}")

    # -- predictive
    def _limit_step(self, step: int, submission_time: float, work: float | None) -> float:
        """The last step at which meeting the target would still count: the budget, and the step at
        which this trial's progress would pass the bound (at its rate so far)."""
        budget = self._budget_steps_estimate(step, submission_time)
        limits = [] if budget is None else [budget]
        bound = self.spec.bound
        progress = progress_of(self.policy.by, step, submission_time, work)
        if bound is not None and progress is not None and progress > 0 and step > 0:
            limits.append(step * bound / progress)
        return min(limits) if limits else math.inf

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps, so that a resumed trial decides as it would have."""
        return {"steps": list(self.steps), "values": list(self.values), "predictions": list(self.predictions)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.steps = [float(s) for s in state.get("steps", [])]
        self.values = [float(v) for v in state.get("values", [])]
        self.predictions = [dict(p) for p in state.get("predictions", [])]

    def after_eval(self, step: int, value: float, submission_time: float, work: float | None) -> str | None:
        if self.steps and step <= self.steps[-1]:
            return None  # an eval already seen (the history only moves forward)
        self.steps.append(float(step))
        self.values.append(float(value))
        if self.policy.mode != "predict" or self.stopped is not None:
            return None
        why = self._rung(step, submission_time) if self.policy.predictor == "rung" else \
            self._curve(step, submission_time, work)
        if self.shadow and why is not None:
            self.predictions[-1]["would_stop"] = True
            self.stopped = None
            return None
        return why

    def _budget_steps_estimate(self, step: int, submission_time: float) -> float | None:
        """The step budget (in time-budget mode: the steps the time budget allows at this trial's pace)."""
        if self.budget_steps is not None:
            return float(self.budget_steps)
        if submission_time > 0 and step > 0:
            return step * self.budget_sec / submission_time
        return None

    def _curve(self, step: int, submission_time: float, work: float | None) -> str | None:
        from laptime.tuning.curves import predict_reach

        budget = self._budget_steps_estimate(step, submission_time)
        if budget is None or step < self.policy.min_fraction * budget:
            return None
        limit = self._limit_step(step, submission_time, work)
        prediction = predict_reach(self.steps, self.values, target=self.target,
                                   direction="max" if self.maximise else "min", limit_step=limit)
        if prediction is None:
            return None
        entry = {"step": step, "limit_step": round(limit, 1), **prediction.to_dict()}
        self.predictions.append(entry)
        if prediction.p_reach < self.policy.threshold:
            self.stopped = {"stopped_by": "curve", "step": step, "p_reach": entry["p_reach"]}
            return (f"pruned (curve): P(target by step {limit:.0f}) = {prediction.p_reach:.3f} < "
                    f"{self.policy.threshold:g}")
        return None

    def rung_steps(self, budget: float | None) -> list[float]:
        """The rungs' steps for a step budget (estimated from the time so far in time-budget mode)."""
        if budget is None:
            return []
        eta = int(self.policy.eta)
        return [budget / eta ** k for k in range(int(self.policy.rungs), 0, -1)]

    def _rung(self, step: int, submission_time: float) -> str | None:
        budget = self._budget_steps_estimate(step, submission_time)
        done = {p["rung_index"] for p in self.predictions}
        rungs = [(k, r) for k, r in enumerate(self.rung_steps(budget)) if r <= step and k not in done]
        for k, rung in rungs:
            mine = _best_so_far(self.steps, self.values, rung, self.maximise)
            if mine is None:
                continue
            others = []
            for peer_steps, peer_values in self.spec.peers:
                if peer_steps and max(peer_steps) >= rung:
                    v = _best_so_far(peer_steps, peer_values, rung, self.maximise)
                    if v is not None:
                        others.append(v)
            n = len(others) + 1
            keep = math.ceil(n / int(self.policy.eta))
            place = 1 + sum(1 for v in others if _better(v, mine, self.maximise))
            entry = {"step": step, "rung_index": k, "rung": round(rung, 1), "value": mine, "place": place, "of": n,
                     "keep": keep}
            self.predictions.append(entry)
            if place > keep:
                self.stopped = {"stopped_by": "rung", "step": step, "rung": rung}
                return f"pruned (rung): at step {rung:.0f} place {place} of {n}; the top {keep} continue"
        return None

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {**self.policy.to_dict(), "policy": self.policy.to_dict(), "bound": self.spec.bound,
                               "chain": self.spec.chain}
        if self.stopped is not None:
            out.update(self.stopped)
        if self.predictions:
            out["predictions"] = self.predictions
        return out


def _unit_text(by: str, value: float) -> str:
    if by == "steps_to_target":
        return f"{value:.0f} steps"
    if by == "time_to_target":
        return f"{value:.2f} s of submission time"
    return f"{value:.1f} reference passes of work"


# ------------------------------------------------------------------------------------------ the executors' side


def _workload_of(item: TrialPlan | TrialRecord) -> tuple[str, str, str]:
    return (item.workload, item.variant or "base", item.config or "")


def lead_rank(record: TrialRecord | None) -> tuple:
    """How promising a hyperparameter point looks from its trial on the lead workload: trials that met
    the target first, by steps to target; then the others by their best validation metric; then
    points without a record. Steps and eval histories only, so the order is exactly reproducible with
    step budgets."""
    if record is None:
        return (2, 0.0)
    if Outcome(record.outcome) is Outcome.REACHED and record.steps_to_target is not None:
        return (0, float(record.steps_to_target))
    key = f"validation/{record.target_metric}"
    values = [float(e.metrics[key]) for e in record.evals if key in e.metrics and math.isfinite(e.metrics[key])]
    if not values:
        return (1, math.inf)
    best = max(values) if record.target_direction == "max" else min(values)
    return (1, -best if record.target_direction == "max" else best)


class ChainOrder:
    """Which plans may start, and what each is told (used by :class:`laptime.execution.book.PlanBook`
    and by :func:`replay`).

    A *chain* is one study of one algorithm on one workload. Within a study (an algorithm's study:
    one hyperparameter point per trial index, shared by every workload) the *lead* workload is the
    first one in plan order (the suite's first). Its chain runs in trial order; every other chain of
    the study waits until the lead chain is done and then runs its trials *most promising first*:
    in the order of their points' results on the lead workload (:func:`lead_rank`), since a point
    that reached the target early there tends to do well elsewhere too, and an early best trial
    bounds — and so prunes — the rest of its chain sooner. A plan waits until every plan before it in
    its chain's order has a record (or was lost: a crashed trial does not block its chain); its
    :class:`PruneSpec` carries their best value and, for the rung rule, their eval curves. Which
    plans run, in which order within a chain, and what each is told depend only on the records of
    earlier plans: the same under every executor."""

    def __init__(self, policy: PruningPolicy, plans: Sequence[TrialPlan | TrialRecord], lead: bool = True):
        self.policy = policy
        self.chain_of: list[tuple | None] = [chain_key(p) for p in plans]
        self.trial_of = [p.trial_index if p.trial_index is not None else 0 for p in plans]
        self.members: dict[tuple, list[int]] = defaultdict(list)
        lead_order = lead  # False: every chain in trial order (for comparisons)
        lead: dict[tuple, tuple] = {}  # (algorithm, study) -> the lead workload
        for index, chain in enumerate(self.chain_of):
            if chain is None:
                continue
            self.members[chain].append(index)
            lead.setdefault((chain[0], chain[4]) if lead_order else chain, chain[1:4])
        self.lead_chain: dict[tuple, tuple] = {}  # chain -> its study's lead chain
        self.before: dict[int, list[int]] = {}
        for chain, indices in self.members.items():
            head = lead[(chain[0], chain[4]) if lead_order else chain]
            self.lead_chain[chain] = (chain[0], *head, chain[4])
            if chain[1:4] == head:  # the lead chain: trial order
                ordered = sorted(indices, key=lambda i: (self.trial_of[i], i))
                for pos, index in enumerate(ordered):
                    self.before[index] = ordered[:pos]

    def _ordered(self, chain: tuple, records: Sequence[TrialRecord | None]) -> None:
        """Order a chain that follows its lead by the lead's results (once the lead chain is done)."""
        by_trial = {self.trial_of[i]: records[i] for i in self.members.get(self.lead_chain[chain], [])}
        ordered = sorted(self.members[chain], key=lambda i: (lead_rank(by_trial.get(self.trial_of[i])),
                                                             self.trial_of[i], i))
        for pos, index in enumerate(ordered):
            self.before[index] = ordered[:pos]

    def blocked(self, index: int, unfinished: Callable[[int], bool],
                records: Sequence[TrialRecord | None]) -> bool:
        """Whether plan ``index`` must wait: its study's lead chain is not done yet, or a plan before it
        in its chain's order is still to run or running."""
        chain = self.chain_of[index]
        if chain is None:
            return False
        if index not in self.before:
            if any(unfinished(i) for i in self.members.get(self.lead_chain[chain], ())):
                return True
            self._ordered(chain, records)
        return any(unfinished(i) for i in self.before[index])

    def spec(self, index: int, records: Sequence[TrialRecord | None]) -> PruneSpec | None:
        """What plan ``index`` is told, from the records of the plans before it in its chain."""
        chain = self.chain_of[index]
        if not self.policy.active or chain is None:
            return None
        if index not in self.before:
            self._ordered(chain, records)
        return spec_from_records(self.policy, [records[i] for i in self.before[index]],
                                 chain="/".join(map(str, chain)))


def spec_from_records(policy: PruningPolicy, earlier: Iterable[TrialRecord | None], chain: str = "") -> PruneSpec:
    """The :class:`PruneSpec` of a trial whose chain's earlier trials left ``earlier``."""
    values = [value_of(r, policy.by) for r in earlier if r is not None]
    reached = [v for v in values if v is not None]
    peers = []
    if policy.mode == "predict" and policy.predictor == "rung":
        for r in earlier:
            if r is None or not r.evals:
                continue
            key = f"validation/{r.target_metric}"
            pts = [(float(e.step), float(e.metrics[key])) for e in r.evals if key in e.metrics]
            peers.append((tuple(s for s, _ in pts), tuple(v for _, v in pts)))
    return PruneSpec(policy=policy, bound=min(reached) if reached else None, peers=tuple(peers), chain=chain)


# ------------------------------------------------------------------------------------------ replay


def _interpolate(points: Sequence[tuple[float, float]], step: float) -> float | None:
    """The value at ``step`` of the polyline through ``points`` (``(step, value)``, from ``(0, 0)``)."""
    for (s0, v0), (s1, v1) in zip(points, points[1:]):
        if s0 <= step <= s1:
            return v0 if s1 == s0 else v0 + (v1 - v0) * (step - s0) / (s1 - s0)
    return None


def _prune_step_exact(record: TrialRecord, by: str, bound: float) -> int | None:
    """The step at which the runner's exact check stops ``record`` (its full, unpruned history)
    given ``bound``; None when it is not stopped. Steps: exact. Times: interpolated between evals."""
    if by == "steps_to_target":
        stop = max(1, math.ceil(bound))
    else:
        attr = "submission_time" if by == "time_to_target" else "work"
        points = [(0.0, 0.0)] + [(float(e.step), float(getattr(e, attr))) for e in record.evals
                                 if getattr(e, attr) is not None]  # an eval attribute, linear between evals
        stop = None
        for step in range(1, record.steps + 1):
            v = _interpolate(points, step)
            if v is None:
                if attr == "submission_time" and record.submission_time and record.steps:
                    v = record.submission_time * step / record.steps
                elif attr == "work" and record.work_to_target is None and record.evals and \
                        record.evals[-1].work is not None:
                    v = record.evals[-1].work * step / max(1, record.evals[-1].step)
            if v is not None and v >= bound:
                stop = step
                break
        if stop is None:
            return None
    if record.steps < stop:
        return None
    own = value_of(record, by)
    if own is not None and record.steps_to_target is not None and record.steps_to_target < stop:
        return None
    return stop


def replay(records: Sequence[TrialRecord], policy: PruningPolicy, lead: bool = True) -> list[TrialRecord]:
    """What a benchmark pruned by ``policy`` would have stored, from the full trials of an unpruned
    one, given in plan order (a stored run's order; the first workload of each study is its lead,
    see :class:`ChainOrder`). Runs the chains as an executor would: each trial, once the trials
    before it in its chain are done, is told their best, and is either kept (not stopped) or cut
    where the runner would have stopped it: outcome ``pruned``, steps and evals up to that point,
    costs prorated by steps, ``measurement["prune"]["replayed"] = True``. Exact for steps; for times
    the exact check's step is interpolated between evals. ``lead=False`` runs every chain in trial
    order instead (what the lead order gains)."""
    records = list(records)
    if any(Outcome(r.outcome) is Outcome.PRUNED for r in records):
        raise UsageError("replay needs the trials of a benchmark run without pruning (--prune none); these include "
                         "pruned trials")
    if not policy.active:
        return records
    return walk_chains(records, policy, _replay_one, lead=lead)


def walk_chains(records: Sequence[TrialRecord], policy: PruningPolicy,
                visit: Callable[[TrialRecord, PruneSpec], TrialRecord], lead: bool = True) -> list[TrialRecord]:
    """Go through the chained trials of ``records`` (in plan order) as an executor would
    (:class:`ChainOrder`): each, once the trials before it in its chain are done, is given its
    :class:`PruneSpec`, and ``visit(record, spec)`` returns what it leaves for the trials after it
    (and for the result). Trials outside any chain are returned as they are."""
    order = ChainOrder(policy, records, lead=lead)
    out: list[TrialRecord | None] = [None if order.chain_of[i] is not None else r for i, r in enumerate(records)]
    todo = [i for i in range(len(records)) if out[i] is None]
    while todo:
        pending = set(todo)
        index = next(i for i in todo if not order.blocked(i, pending.__contains__, out))
        todo.remove(index)
        out[index] = visit(records[index], order.spec(index, out))  # type: ignore[arg-type]
    return out  # type: ignore[return-value]


def _replay_one(record: TrialRecord, spec: PruneSpec) -> TrialRecord:
    policy = spec.policy
    pruner = Pruner(spec, direction=record.target_direction, target=record.target_value,
                    budget_steps=record.budget_steps, budget_sec=record.budget_sec)
    exact_stop = _prune_step_exact(record, policy.by, spec.bound) if spec.bound is not None else None
    key = f"validation/{record.target_metric}"
    stop_step: int | None = None
    reason = None
    kept: list[EvalRecord] = []
    for ev in record.evals:
        if exact_stop is not None and ev.step >= exact_stop:
            break
        kept.append(ev)
        reached = record.steps_to_target is not None and ev.step >= record.steps_to_target
        if reached:
            break
        value = ev.metrics.get(key)
        if value is None or not math.isfinite(value):
            continue
        reason = pruner.after_eval(ev.step, value, ev.submission_time, ev.work)
        if reason is not None:
            stop_step = ev.step
            break
    if stop_step is None and exact_stop is not None:
        stop_step = exact_stop
        pruner.stopped = {"stopped_by": "exact", "step": exact_stop,
                          "progress": float(spec.bound)}  # type: ignore[arg-type]
        reason = "pruned (exact), replayed"
    if stop_step is None:
        return record
    share = stop_step / record.steps if record.steps else 1.0
    measurement = dict(record.measurement or {})
    measurement["prune"] = {**pruner.summary(), "replayed": True, "reason": reason}
    return dataclasses.replace(
        record, outcome=Outcome.PRUNED, time_to_target=None, steps_to_target=None, robust_time_to_target=None,
        work_to_target=None, steps=stop_step, evals=kept, submission_time=record.submission_time * share,
        wall_time=record.wall_time * share,
        robust_submission_time=None if record.robust_submission_time is None else record.robust_submission_time * share,
        cpu_time=None if record.cpu_time is None else record.cpu_time * share, measurement=measurement)


# ------------------------------------------------------------------------------------------ cost


def _budget_steps(record: TrialRecord) -> float | None:
    if record.budget_steps is not None:
        return float(record.budget_steps)
    if record.submission_time and record.steps:
        return record.steps * record.budget_sec / record.submission_time
    return None


def tuning_cost(records: Iterable[TrialRecord]) -> dict[str, Any]:
    """What a benchmark's trials cost, and what pruning saved, per algorithm and workload and in all.

    ``steps`` and ``seconds`` (trial wall time: training, evals, probes) spent; for pruned trials
    ``saved_steps_max`` / ``saved_seconds_max``: the rest of their budget, at their own seconds per
    step — an upper bound on what they would have cost (a pruned trial might have stopped earlier by
    itself; compare with an unpruned run for the exact figure)."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for r in records:
        key = (r.algorithm, r.workload if r.variant in (None, "", "base") else f"{r.workload}/{r.variant}")
        row = rows.setdefault(key, {"algorithm": key[0], "workload": key[1], "trials": 0, "pruned": 0, "steps": 0,
                                    "seconds": 0.0, "saved_steps_max": 0.0, "saved_seconds_max": 0.0})
        row["trials"] += 1
        row["steps"] += int(r.steps)
        row["seconds"] += float(r.wall_time)
        if Outcome(r.outcome) is Outcome.PRUNED:
            row["pruned"] += 1
            budget = _budget_steps(r)
            if budget is not None:
                left = max(0.0, budget - r.steps)
                row["saved_steps_max"] += left
                row["saved_seconds_max"] += left * (r.wall_time / r.steps if r.steps else 0.0)
    table = sorted(rows.values(), key=lambda x: (x["algorithm"], x["workload"]))
    total = {k: sum(row[k] for row in table) for k in ("trials", "pruned", "steps", "seconds", "saved_steps_max",
                                                         "saved_seconds_max")}
    policies = sorted({str(((r.measurement or {}).get("prune") or {}).get("policy")) for r in records
                       if (r.measurement or {}).get("prune")})
    return {"rows": table, "total": total, "policies": policies}


