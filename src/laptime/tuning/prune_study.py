"""How much a pruning policy saves, and what it does to the verdict: one benchmark against another.

:func:`compare` puts the trials of a benchmark run without pruning beside those of the same
benchmark pruned — run for real, or replayed from the unpruned trials (:func:`laptime.tuning.pruning.replay`)
— and measures: compute spent (steps, trial-seconds) and saved, scores and ranks, Kendall's τ
between the two rankings, scores that fall outside the unpruned run's bootstrap interval, and, for
trials stopped by a prediction, whether the prediction was wrong (the trial would have met its
target in its budget; it would have been its study's fastest). :func:`prediction_quality` scores
the predictions themselves on unpruned trials (predictions made in shadow: recorded, never acted
on). ``laptime replay`` and ``benchmarks/pruning_study.py`` print these.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from laptime.records import Outcome, TrialRecord
from laptime.tuning.pruning import (
    PruneSpec,
    Pruner,
    PruningPolicy,
    chain_key,
    replay,
    tuning_cost,
    value_of,
    walk_chains,
)

__all__ = ["compare", "kendall_tau", "prediction_quality", "format_comparison"]


def kendall_tau(a: dict[str, float], b: dict[str, float]) -> float:
    """Kendall's τ-b between two score tables over their common algorithms (ties handled; 1.0 when
    both rank every algorithm the same, including when all are tied in both)."""
    from scipy.stats import kendalltau

    names = sorted(set(a) & set(b))
    x = [round(a[n], 12) for n in names]
    y = [round(b[n], 12) for n in names]
    if len(names) < 2 or x == y or (len(set(x)) == 1 and len(set(y)) == 1):
        return 1.0
    tau = kendalltau(x, y).statistic
    return float(tau) if tau == tau else 0.0  # nan when one side is all ties: no agreement to speak of


def _study_best(records: Sequence[TrialRecord], by: str) -> dict[tuple, float]:
    best: dict[tuple, float] = {}
    for r in records:
        chain = chain_key(r)
        v = value_of(r, by)
        if chain is not None and v is not None:
            best[chain] = min(v, best.get(chain, math.inf))
    return best


def compare(full: Sequence[TrialRecord], policy: PruningPolicy, *, pruned: Sequence[TrialRecord] | None = None,
            column: str | None = None, n_bootstrap: int = 1000, force: bool = False, lead: bool = True) -> dict[str, Any]:
    """The unpruned trials ``full`` against ``pruned`` (default: :func:`replay` of ``full`` under
    ``policy``), scored on ``column`` (default ``policy.by``). See the module docstring."""
    from laptime.scoring import score_records

    column = column or policy.by
    replayed = pruned is None
    pruned = replay(full, policy, lead=lead) if replayed else list(pruned)
    kw = dict(column=column, n_bootstrap=n_bootstrap, seed=0, force=force)
    s_full = score_records(full, **kw)
    s_pruned = score_records(pruned, **kw)
    cost_full, cost_pruned = tuning_cost(full)["total"], tuning_cost(pruned)["total"]
    boot = s_full.bootstrap
    outside = []
    if boot is not None:
        for a in s_full.algorithms:
            lo, hi = boot.score_ci[a]
            if not lo - 1e-9 <= s_pruned.scores.get(a, math.nan) <= hi + 1e-9:
                outside.append(a)
    best = _study_best(full, policy.by)
    by_plan = {(r.plan_key or id(r)): r for r in full}
    wrong_reach = wrong_best = 0
    stopped_by_prediction = 0
    for r in pruned:
        info = (r.measurement or {}).get("prune") or {}
        if Outcome(r.outcome) is not Outcome.PRUNED or info.get("stopped_by") == "exact":
            continue
        stopped_by_prediction += 1
        original = by_plan.get(r.plan_key or id(r))
        if original is None:
            continue
        v = value_of(original, policy.by)
        bound = info.get("bound")
        if v is not None and (bound is None or v < bound):  # it would have beaten its study's best so far
            wrong_reach += 1
            if v <= best.get(chain_key(original), math.inf):
                wrong_best += 1
    changed_times = sum(1 for a in s_full.algorithms for w in s_full.workloads
                        if s_full.times[a][w] != s_pruned.times.get(a, {}).get(w))
    return {
        "policy": policy.describe(),
        "replayed": replayed,
        "column": column,
        "trials": cost_full["trials"],
        "pruned": cost_pruned["pruned"],
        "stopped_by_prediction": stopped_by_prediction,
        "steps_full": cost_full["steps"],
        "steps_pruned": cost_pruned["steps"],
        "steps_saved": 1 - cost_pruned["steps"] / cost_full["steps"] if cost_full["steps"] else 0.0,
        "seconds_full": cost_full["seconds"],
        "seconds_pruned": cost_pruned["seconds"],
        "seconds_saved": 1 - cost_pruned["seconds"] / cost_full["seconds"] if cost_full["seconds"] else 0.0,
        "scores_full": dict(s_full.scores),
        "scores_pruned": dict(s_pruned.scores),
        "ranks_full": dict(s_full.ranks),
        "ranks_pruned": dict(s_pruned.ranks),
        "score_ci_full": None if boot is None else {a: list(boot.score_ci[a]) for a in s_full.algorithms},
        "identical_scores": s_full.scores == s_pruned.scores and s_full.ranks == s_pruned.ranks,
        "changed_times": changed_times,
        "kendall_tau": kendall_tau(s_full.scores, s_pruned.scores),
        "outside_interval": outside,
        "max_score_change": max((abs(s_full.scores[a] - s_pruned.scores.get(a, 0.0)) for a in s_full.scores),
                                default=0.0),
        "wrong_stops_would_reach": wrong_reach,
        "wrong_stops_study_best": wrong_best,
    }


def prediction_quality(full: Sequence[TrialRecord], policy: PruningPolicy) -> dict[str, Any]:
    """The predictor's calls on unpruned trials (in plan order), made in shadow at every eval: the
    chains are walked as a pruned run walks them (:func:`~laptime.tuning.pruning.walk_chains`), each
    trial told the best of the full trials before it in its chain. How often it would have stopped a
    trial, how often wrongly (the trial met its target in its budget and before the bound), and for
    the curve model the Brier score of its probabilities against what happened."""
    if policy.mode != "predict":
        raise ValueError("prediction_quality needs a predictive policy")
    counts = {"calls": 0, "stops": 0, "wrong": 0, "trials_stopped": 0, "trials_wrong": 0}
    brier: list[float] = []

    def shadow(r: TrialRecord, spec: PruneSpec) -> TrialRecord:
        pruner = Pruner(spec, direction=r.target_direction, target=r.target_value, budget_steps=r.budget_steps,
                        budget_sec=r.budget_sec, shadow=True)
        key = f"validation/{r.target_metric}"
        v = value_of(r, policy.by)
        made_it = v is not None and (spec.bound is None or v < spec.bound)
        for ev in r.evals:
            if r.steps_to_target is not None and ev.step >= r.steps_to_target:
                break
            value = ev.metrics.get(key)
            if value is None or not math.isfinite(value):
                continue
            pruner.after_eval(ev.step, value, ev.submission_time, ev.work)
        if pruner.predictions:
            would = [p for p in pruner.predictions if p.get("would_stop")]
            counts["calls"] += len(pruner.predictions)
            counts["stops"] += len(would)
            counts["wrong"] += len(would) if made_it else 0
            counts["trials_stopped"] += bool(would)
            counts["trials_wrong"] += bool(would) and made_it
            brier.extend((float(p["p_reach"]) - float(made_it)) ** 2 for p in pruner.predictions if "p_reach" in p)
        return r  # the trials after it are told of the full trial

    walk_chains(full, policy, shadow)
    return {"policy": policy.describe(), "predictions": counts["calls"], "would_stop": counts["stops"],
            "wrong_stops": counts["wrong"], "trials_stopped": counts["trials_stopped"],
            "trials_stopped_wrongly": counts["trials_wrong"], "brier": sum(brier) / len(brier) if brier else None}


def format_comparison(result: dict[str, Any]) -> str:
    """A few plain lines for ``laptime replay``."""
    lines = [f"{result['policy']} ({'replayed from the unpruned trials' if result['replayed'] else 'run'}), "
             f"scored on {result['column']}:",
             f"  trials pruned: {result['pruned']} of {result['trials']} ({result['stopped_by_prediction']} by a "
             f"prediction)",
             f"  steps: {result['steps_pruned']} of {result['steps_full']} ({result['steps_saved']:.1%} saved); "
             f"trial-seconds: {result['seconds_pruned']:.0f} of {result['seconds_full']:.0f} "
             f"({result['seconds_saved']:.1%} saved)",
             f"  scores and ranks identical: {'yes' if result['identical_scores'] else 'no'}; Kendall tau "
             f"{result['kendall_tau']:.3f}; largest score change {result['max_score_change']:.4f}; outside the "
             f"unpruned 95% interval: {', '.join(result['outside_interval']) or 'none'}"]
    if result["stopped_by_prediction"]:
        lines.append(f"  stopped by a prediction but would have met the target before its study's best so far: "
                     f"{result['wrong_stops_would_reach']}; "
                     f"would have been its study's fastest: {result['wrong_stops_study_best']}")
    lines.append("  algorithm: score unpruned -> pruned (rank)")
    for a in sorted(result["scores_full"], key=lambda n: (result["ranks_full"][n], n)):
        lines.append(f"    {a}: {result['scores_full'][a]:.4f} -> {result['scores_pruned'].get(a, math.nan):.4f} "
                     f"({result['ranks_full'][a]} -> {result['ranks_pruned'].get(a, '-')})")
    return "\n".join(lines)
