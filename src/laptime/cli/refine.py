"""``laptime refine -w WORKLOAD -a ALGORITHM``: schedule refinement from gradient norms, both runs.

The two-run protocol of :mod:`laptime.algorithms.refinement` (Defazio, Cutkosky, Mehta & Mishchenko
2023) as one command:

1. **record** — the algorithm as it is, wrapped in a
   :class:`~laptime.algorithms.refinement.GradNormRecorder` (stored as ``ALG_gradnorms``: the norms
   are computed inside ``update_params``, so their cost is timed). It runs to its budget (or
   ``--max-steps``) even after reaching the target, so that the norms cover the whole schedule;
   its time and steps to target are still those of the first eval that met the target.
2. **refine** — the same optimizer, hyperparameters and seed with the schedule refined from those
   norms (:func:`~laptime.algorithms.refinement.refine`, stored as ``ALG_refined``), run as any
   trial (it stops at the target).

Both trials are stored in one run of the results database and printed side by side. The norms go
to ``--norms FILE`` (else to a temporary file, deleted afterwards; the refined trial's source hash
covers their content). The algorithm must be an optimizer + schedule
(:class:`~laptime.algorithms.OptimizerAlgorithm`: every built-in but the AlgoPerf submissions and
the batch-selection algorithms' own classes). Exit status as ``laptime run``: 1 when a trial failed
or diverged, 2 for a usage error (nothing run or stored).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import tempfile
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    from laptime.cli import main as cli

    p.add_argument("--workload", "-w", required=True, help="workload name (see `laptime list`)")
    p.add_argument("--algorithm", "-a", default="nadamw",
                   help="an optimizer + schedule algorithm: name, .py file or module:attr (default: nadamw)")
    p.add_argument("--variant", help="workload variant (default: the base variant)")
    p.add_argument("--config", help="workload configuration, e.g. cpu or gpu (default: the workload's first)")
    p.add_argument("--hparams", help="hyperparameters (JSON file or inline object) over the self-tuning defaults; "
                                     "both runs use them")
    p.add_argument("--seed", type=int, default=0, help="trial seed of both runs (default 0)")
    p.add_argument("--norm", choices=("l1", "l2"), default="l1",
                   help="the gradient norm whose inverse weights the schedule: l1 (default, the paper's choice for "
                        "Adam-type methods) or l2 (its result for SGD)")
    p.add_argument("--smoothing", type=int, metavar="N",
                   help="running-median window over the recorded norms (default: 5%% of the recorded steps)")
    p.add_argument("--norms", metavar="FILE", help="write the recorded gradient norms here (JSON; default: a "
                                                   "temporary file)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--db", help=cli._DB_HELP)
    p.add_argument("--budget-factor", type=float, default=1.0, help="multiply the budget (default 1)")
    cli._add_measurement_arguments(p)
    p.add_argument("--eval-every-steps", type=int, help="evaluate every N steps instead of every eval period")
    p.add_argument("--max-steps", type=int, help="stop each run after N steps (the recording run records N steps)")
    p.add_argument("--json", action="store_true", help="print both results as JSON (no progress display)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress display")


def run(args: argparse.Namespace) -> int:
    from laptime.algorithms import AlgorithmRegistry, OptimizerAlgorithm, default_algorithms
    from laptime.algorithms.refinement import GradNormRecorder, refine
    from laptime.cli import main as cli
    from laptime.execution import TrialPlan, execute_plan, resolve_device
    from laptime.execution.plan import thread_choice
    from laptime.results import ResultsStore
    from laptime.runner import TrialOptions
    from laptime.runner.progress import trial_progress
    from laptime.workloads import default_workloads

    # everything is checked before anything runs
    workloads = default_workloads()
    device = resolve_device(args.device)
    workload = workloads.create(args.workload, variant=args.variant, config=args.config, device="cpu")
    algorithm = default_algorithms().resolve(args.algorithm)
    if not isinstance(algorithm, OptimizerAlgorithm):
        raise cli.CLIError(f"cannot refine {algorithm.name!r}: refinement replaces the schedule of an optimizer + "
                           "schedule algorithm (laptime.algorithms.OptimizerAlgorithm), which it is not")
    hp = cli._hyperparameters(algorithm, args.hparams, cli._search_space(algorithm, args.search_space)
                              if args.search_space else "own")
    if args.seed < 0:
        raise cli.CLIError("--seed must be >= 0")
    if args.smoothing is not None and args.smoothing < 1:
        raise cli.CLIError(f"--smoothing must be >= 1, got {args.smoothing}")
    cli._check_batch_size(args.batch_size)
    norms_path = Path(args.norms).expanduser() if args.norms else None
    if norms_path is not None and not norms_path.parent.is_dir():
        raise cli.CLIError(f"--norms {args.norms}: the folder {norms_path.parent} does not exist")
    if norms_path is not None and norms_path.is_dir():
        raise cli.CLIError(f"--norms {args.norms} is a folder; give a file name")
    budget_mode = cli._budget_mode(args.budget, device)
    threads = thread_choice(device, args.threads)
    db_path = cli._db_path(args)
    cli._ensure_data([(args.workload, workload.variant, workload.config)], quiet=args.json)

    recorder = GradNormRecorder(algorithm)
    plan = TrialPlan(workload=args.workload, algorithm=recorder.name, hyperparameters=hp, seed=args.seed,
                     variant=workload.variant, config=workload.config, budget_factor=args.budget_factor,
                     budget_mode=budget_mode, batch_size=args.batch_size)
    options = TrialOptions(eval_every_steps=args.eval_every_steps, max_steps=args.max_steps,
                           robust=not args.no_robust)
    show_progress = not args.json and not args.quiet
    records = []
    with tempfile.TemporaryDirectory(prefix="laptime-refine-") as scratch, ResultsStore(db_path) as store:
        norms_file = norms_path or Path(scratch) / "grad_norms.json"
        run_id = store.start_run(args.command_line, {"kind": "refine", "device": str(device),
                                                     "budget_mode": budget_mode, "norm": args.norm,
                                                     "norms": str(norms_path) if norms_path else None})
        # 1. record: the whole schedule, past the target
        registry = AlgorithmRegistry()
        registry.register(recorder.name, lambda: recorder)
        records.append(execute_plan(plan, device=device, store=store, run_id=run_id, workloads=workloads,
                                    algorithms=registry, options=dataclasses.replace(options, stop_at_target=False),
                                    threads=threads, progress=trial_progress() if show_progress else None))
        problem = _recording_problem(records[0], recorder)
        if problem is None:
            recorder.save(norms_file)
            # 2. refine: the same optimizer, point and seed, the refined schedule; an ordinary trial
            refined = refine(algorithm, norms_file, norm=args.norm, smoothing=args.smoothing)
            registry.register(refined.name, lambda: refined)
            records.append(execute_plan(dataclasses.replace(plan, algorithm=refined.name), device=device,
                                        store=store, run_id=run_id, workloads=workloads, algorithms=registry,
                                        options=options, threads=threads,
                                        progress=trial_progress() if show_progress else None))
        store.update_run_meta(run_id, {"trial_ids": [r.trial_id for r in records]})
    summaries = [cli._trial_summary(r, db_path) for r in records]
    if args.json:
        print(json.dumps(cli._json_safe({"db": str(db_path), "run_id": run_id, "norm": args.norm,
                                         "norms": str(norms_path) if norms_path else None,
                                         "recorded": summaries[0],
                                         "refined": summaries[1] if len(summaries) > 1 else None,
                                         "error": problem}), indent=2))
    else:
        _print_results(records, db_path, norms_path, args.norm)
        if problem:
            print(f"no refined run: {problem}", file=sys.stderr)
    if problem:
        return cli.TRIAL_FAILED
    return cli.trial_exit_code(*records)


def _recording_problem(record, recorder) -> str | None:
    """Why the recording run gives no schedule to refine (it failed or diverged, or recorded no
    usable norm), or None."""
    if record.outcome.value in ("failed", "diverged"):
        return f"the recording run {record.outcome.value}"
    try:
        norms = recorder.grad_norms()
    except RuntimeError:
        return "the recording run recorded no gradient norms"
    values = norms["l1"] + norms["l2"]
    if not norms["l1"] or not all(math.isfinite(v) and v >= 0 for v in values) or max(values) <= 0:
        return "the recording run recorded no usable gradient norms (none, non-finite or all zero)"
    return None


def _print_results(records, db_path: Path, norms_path: Path | None, norm: str) -> None:
    from laptime.cli.main import _fmt_seconds, _plain_table

    rows = []
    for label, r in zip(("recorded", "refined"), records):
        metric = f"validation/{r.target_metric}"
        last = r.evals[-1].metrics.get(metric) if r.evals else None
        rows.append([label, r.algorithm, f"#{r.trial_id}", r.outcome.value,
                     "—" if r.steps_to_target is None else str(r.steps_to_target),
                     _fmt_seconds(r.time_to_target), _fmt_seconds(r.robust_time_to_target), str(r.steps),
                     "—" if last is None else f"{last:.4f}"])
    first = records[0]
    arrow = "≥" if first.target_direction == "max" else "≤"
    print(f"schedule refinement on {first.workload}/{first.variant}@{first.config}, seed {first.seed}: target "
          f"validation/{first.target_metric} {arrow} {first.target_value:g}; {norm} gradient norms")
    for line in _plain_table(("run", "algorithm", "trial", "outcome", "steps to target", "time to target",
                              "robust", "steps", "last eval"), rows, right=(4, 5, 6, 7, 8)):
        print(line)
    print("the recording run trains to its budget (norms of the whole schedule); its target figures are those of "
          "the first eval that met the target")
    print(f"stored in {db_path}" + (f"; norms in {norms_path}" if norms_path else ""))
    for r in records:
        if r.error:
            print(f"error from {r.algorithm}: {r.error.rstrip().splitlines()[-1]}")
