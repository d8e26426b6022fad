"""The pruning study: external tuning with and without pruning, on one suite, in step-budget mode.

    PYTHONPATH=src python benchmarks/pruning_study.py --suite mnist1d --out study/
    PYTHONPATH=src python benchmarks/pruning_study.py --suite smoke --out study/ --modes none --replay

Runs ``laptime bench --ruleset external`` (3 studies x 5 trials, five algorithms, step budgets,
scored by steps so that every run is exactly reproducible) once per mode — ``none``, ``exact``,
``curve`` (predictive, learning-curve rule) and ``rung`` (predictive, rung rule) — each into its own
database ``<out>/<suite>_<mode>.sqlite`` (a stored database is reused: run it again to only
compare), then compares each pruned run with the unpruned one (:func:`laptime.tuning.prune_study.compare`):
compute spent and saved, scores, ranks, Kendall's tau, scores outside the unpruned run's bootstrap
interval, wrong stops; and checks that :func:`laptime.tuning.pruning.replay` of the unpruned
trials is what each pruned run did. ``--replay`` adds the pruned modes replayed from the unpruned
run alone (for a suite too long to run every mode of). Results: ``<out>/<suite>.json`` and a
markdown table on stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import laptime
from laptime.tuning.prune_study import compare, prediction_quality
from laptime.tuning.pruning import PruningPolicy, lead_rank, replay

ALGORITHMS = ["nadamw", "adamw", "sgd_nesterov", "adabelief", "lamb"]
MODES = {"none": dict(prune="none"), "exact": dict(prune="exact"),
         "curve": dict(prune="predict", predictor="curve"), "rung": dict(prune="predict", predictor="rung")}


def policy_of(mode: str, column: str) -> PruningPolicy:
    options = MODES[mode]
    return PruningPolicy(options["prune"], column, predictor=options.get("predictor", "curve"))


def outline(records):
    return {r.plan_key: (r.outcome.value, r.steps, r.steps_to_target) for r in records}


def oracle_order(records):
    """The unpruned trials with each chain's trial indices renumbered best first (by their own results):
    the order no rule can know, i.e. the most exact pruning can save on these trials."""
    chains: dict[tuple, list] = {}
    for r in records:
        chains.setdefault((r.algorithm, r.workload, r.variant, r.study), []).append(r)
    rank = {}
    for members in chains.values():
        for position, r in enumerate(sorted(members, key=lambda t: (lead_rank(t), t.trial_index))):
            rank[r.plan_key] = position
    return [dataclasses.replace(r, trial_index=rank[r.plan_key]) for r in records]


TRADEOFF = [("curve", 0.01, 3), ("curve", 0.05, 3), ("curve", 0.2, 3), ("curve", 0.5, 3), ("rung", 0.05, 2),
            ("rung", 0.05, 3), ("rung", 0.05, 4)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="mnist1d")
    parser.add_argument("--out", default="pruning-study")
    parser.add_argument("--modes", default="none,exact,curve,rung", help="comma-separated: none, exact, curve, rung")
    parser.add_argument("--algorithms", default=",".join(ALGORITHMS))
    parser.add_argument("--studies", type=int, default=3)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--by", default="steps", choices=("steps", "robust", "time"))
    parser.add_argument("--replay", action="store_true", help="also replay every pruned mode on the unpruned run")
    parser.add_argument("--tradeoff", action="store_true",
                        help="with --replay: the predictive rules at several thresholds (curve) and etas (rung)")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--none-db", help="the unpruned run's database (default <out>/<suite>_none.sqlite); its stored "
                                          "trials are reused, e.g. those of a larger suite holding the same plans")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if "none" not in modes:
        modes.insert(0, "none")
    column = {"steps": "steps_to_target", "robust": "robust_time_to_target", "time": "time_to_target"}[args.by]
    common = dict(algorithms=args.algorithms.split(","), ruleset="external", studies=args.studies,
                  trials=args.trials, budget="steps", by=args.by, threads=1, bootstrap=args.bootstrap, quiet=True)
    results: dict[str, dict] = {}
    runs = {}
    for mode in modes:
        started = time.perf_counter()
        load = os.getloadavg()[0]
        print(f"[{dt.datetime.now(dt.timezone.utc):%H:%M:%S}] {args.suite}: {mode} ...", file=sys.stderr, flush=True)
        db = Path(args.none_db) if mode == "none" and args.none_db else out / f"{args.suite}_{mode}.sqlite"
        runs[mode] = laptime.bench(args.suite, db=db, **common, **MODES[mode])
        results[mode] = {"wall_s": time.perf_counter() - started, "load_start": load, "load_end": os.getloadavg()[0],
                         "cost": runs[mode].tuning_cost["total"], "scores": runs[mode].scores,
                         "intervals": runs[mode].intervals}
    full = runs["none"].trials
    rows = []
    for mode in modes:
        if mode == "none":
            continue
        policy = policy_of(mode, column)
        real = compare(full, policy, pruned=runs[mode].trials, n_bootstrap=args.bootstrap)
        real["replay_matches_run"] = outline(replay(full, policy)) == outline(runs[mode].trials)
        results[mode]["comparison"] = real
        rows.append((mode, "run", real))
    if args.replay:
        for mode in ("exact", "curve", "rung"):
            policy = policy_of(mode, column)
            simulated = compare(full, policy, n_bootstrap=args.bootstrap)
            if policy.mode == "predict":
                simulated["prediction_quality"] = prediction_quality(full, policy)
            results[f"{mode} (replayed)"] = {"comparison": simulated}
            rows.append((mode, "replayed", simulated))
            if mode == "exact":  # what running the other workloads' trials in the lead's order gains
                plain = compare(full, policy, n_bootstrap=args.bootstrap, lead=False)
                results["exact (replayed, trial order)"] = {"comparison": plain}
                rows.append((mode, "replayed, trial order", plain))
                oracle = compare(full, policy, pruned=replay(oracle_order(full), policy, lead=False),
                                 n_bootstrap=args.bootstrap)
                results["exact (replayed, oracle order)"] = {"comparison": oracle}
                rows.append((mode, "replayed, oracle order", oracle))
        for predictor, threshold, eta in TRADEOFF if args.tradeoff else ():
            policy = PruningPolicy("predict", column, predictor=predictor, threshold=threshold, eta=eta)
            point = compare(full, policy, n_bootstrap=args.bootstrap)
            results[f"{predictor} {threshold if predictor == 'curve' else eta} (replayed)"] = {"comparison": point}
            rows.append((predictor, f"replayed, {'P < %g' % threshold if predictor == 'curve' else 'eta %d' % eta}",
                         point))
    meta = {"suite": args.suite, "algorithms": common["algorithms"], "studies": args.studies, "trials": args.trials,
            "by": column, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{platform.node()} {os.cpu_count()} cores", "laptime": laptime.__version__}
    (out / f"{args.suite}.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2, default=str))

    print(f"\nsuite {args.suite}: {len(full)} trials unpruned; {results['none']['cost']['steps']} steps, "
          f"{results['none']['cost']['seconds']:.0f} trial-seconds\n")
    print("| pruning | how | trials pruned | steps saved | trial-seconds saved | same scores and ranks | Kendall τ "
          "| outside the unpruned 95 % CI | stopped wrongly (would be study's best) | replay = run |")
    print("|---|---|---:|---:|---:|---|---:|---|---:|---|")
    for mode, how, r in rows:
        print(f"| {r['policy']} | {how} | {r['pruned']} of {r['trials']} | {r['steps_saved']:.1%} | "
              f"{r['seconds_saved']:.1%} | {'yes' if r['identical_scores'] else 'no'} | {r['kendall_tau']:.3f} | "
              f"{', '.join(r['outside_interval']) or 'none'} | {r['wrong_stops_would_reach']} "
              f"({r['wrong_stops_study_best']}) | {r.get('replay_matches_run', '—')} |")
    print("\n| algorithm | " + " | ".join(f"{m} score" for m in modes) + " |")
    print("|---|" + "---:|" * len(modes))
    for a in sorted(results["none"]["scores"], key=lambda n: -results["none"]["scores"][n]):
        print(f"| {a} | " + " | ".join(f"{results[m]['scores'][a]:.4f}" for m in modes) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
