"""``laptime calibrate WORKLOAD``: set a workload's target and budget the AlgoPerf way.

See :mod:`laptime.tuning.calibrate` for the procedure. Prints each run, a per-seed table and the
values to put into the workload's spec; ``--out FILE`` writes the whole record as JSON (every
run's evals, the machine, the versions, the command and the date).
"""

from __future__ import annotations

from laptime.errors import UsageError
import argparse
import json
import math
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("workload", help="workload name (see `laptime list`)")
    p.add_argument("--variant", help="variant (default: the base variant)")
    p.add_argument("--config", help="configuration, e.g. cpu or gpu (default: the workload's first)")
    p.add_argument("--algorithm", "-a", default="nadamw",
                   help="reference algorithm: name, .py file or module:attr (default: nadamw, AlgoPerf's reference)")
    p.add_argument("--hparams", help="base hyperparameters (JSON file or inline object) over the self-tuning defaults")
    p.add_argument("--tune", type=int, default=0, metavar="N",
                   help="tune over N quasi-random points of the algorithm's search space (default 0: its defaults)")
    p.add_argument("--tuning-seed", type=int, default=0, help="seed of the quasi-random tuning points")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the reruns (default: 0 1 2)")
    p.add_argument("--step-hint", type=int, help="train this many steps (default: the workload's step_hint)")
    p.add_argument("--eval-every-steps", type=int, help="eval cadence in steps (default: step_hint / 20)")
    p.add_argument("--budget-multiple", type=float, default=3.0, help="budget = this × median time to target (default 3)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--out", "-o", help="write the full calibration record as JSON")
    p.add_argument("--json", action="store_true", help="print the record as JSON instead of tables")


def run(args: argparse.Namespace, *, hyperparameters, ensure_data, command: str, json_safe) -> int:
    from rich.table import Table

    from laptime.algorithms import default_algorithms
    from laptime.execution import resolve_device
    from laptime.tuning.calibrate import calibrate, check_settings
    from laptime.workloads import default_workloads

    check_settings(args.seeds, args.tune, args.budget_multiple, args.step_hint, args.eval_every_steps)
    device = resolve_device(args.device)
    workloads = default_workloads()
    probe = workloads.create(args.workload, variant=args.variant, config=args.config, device="cpu")
    algorithm = default_algorithms().resolve(args.algorithm)
    base = hyperparameters(algorithm, args.hparams)
    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and out.is_dir():
        raise UsageError(f"--out {out} is a directory; give a file name")
    ensure_data([(args.workload, probe.variant, probe.config)], quiet=args.json)
    from laptime.cli.main import _console

    console = _console(stderr=args.json)
    console.print(f"calibrating [bold]{probe.spec.key}[/bold] with {algorithm.name} on {device}: "
                  f"{args.tune or 'no'} tuning point(s), seeds {' '.join(map(str, args.seeds))}")
    result = calibrate(
        lambda: workloads.create(args.workload, variant=probe.variant, config=probe.config, device=device),
        algorithm, seeds=args.seeds, tune_points=args.tune, tuning_seed=args.tuning_seed,
        step_hint=args.step_hint, eval_every_steps=args.eval_every_steps, budget_multiple=args.budget_multiple,
        base_hyperparameters=base, log=console.print, command=command,
    )
    record = json_safe(result.to_json())
    if out is not None:
        from laptime.atomic import atomic_write

        with atomic_write(out, "w", encoding="utf-8") as handle:
            json.dump(record, handle, indent=1, sort_keys=True)
    if args.json:
        print(json.dumps(record, indent=2, sort_keys=True))
        return 0

    def fmt(value, spec=".4f"):
        return "—" if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, spec)

    table = Table(title=f"{result.workload}: best point rerun with {len(result.seeds)} seed(s), "
                        f"{result.step_hint} steps, eval every {result.eval_every_steps}", title_justify="left")
    for column in ("seed", f"best validation {result.metric}", "at step", f"test {result.metric} there",
                   "time to target", "ms/step"):
        table.add_column(column, justify="right")
    for run_, seconds in zip(result.seeds, result.times_to_target):
        table.add_row(str(run_.seed), fmt(run_.best_validation), str(run_.best_step or "—"), fmt(run_.test_at_best),
                      fmt(seconds, ".2f") + (" s" if math.isfinite(seconds) else ""),
                      fmt(None if run_.median_step_time is None else 1000 * run_.median_step_time, ".2f"))
    console.print(table)
    suggested = result.suggested()
    arrow = "≥" if result.direction == "max" else "≤"
    console.print(f"best hyperparameters: {json.dumps(result.best_hyperparameters, sort_keys=True)}")
    console.print(f"validation target (median best): {result.metric} {arrow} {result.validation_target:.5f}"
                  f"  → spec: {suggested['validation']}")
    console.print(f"test target (median at those evals): {fmt(result.test_target, '.5f')}  → spec: {suggested['test']}")
    console.print(f"median time to target {fmt(result.median_time_to_target, '.2f')} s × {result.budget_multiple:g}"
                  f" = budget {fmt(result.budget, '.1f')} s  → spec: {suggested['budget']}")
    if out is not None:
        console.print(f"record written to {out}")
    return 0
