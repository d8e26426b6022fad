"""Raw and robust time to target beside 0, 1, 2 and 4 busy processes.

    python benchmarks/contention.py [--suite smoke] [--workloads NAME ...] [--loads 0 1 2 4]
                                    [--algorithms sgd_nesterov adamw nadamw] [--out contention.json]

Every (workload, algorithm) trial of the suite runs once per load level, the load levels
interleaved trial by trial (so a slow drift of the machine hits every level alike), each trial in
its own ``laptime run --json`` process with the budget in steps (the outcome and steps to target are
then the same at every load) and the CLI's defaults otherwise (one intra-op thread). A load level of
*n* is *n* ``python3 -c "while True: pass"`` processes started before the trial and killed after it.

It prints, per trial and load: steps to target, raw submission time to target, robust time to
target and the work to target in reference passes, each against its quiet value, the trial's own
reference cost (the speed probe's 10 % quantile; the robust time is converted at the lowest one
the results store has seen for the workload) and the contention the trial recorded; then the
largest deviation from quiet of each figure. All trials share one results database, as a user's
runs on one machine do.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_trial(workload: str, variant: str, config: str, algorithm: str, db: str, load: int) -> dict:
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(load)]
    try:
        time.sleep(0.5 if load else 0.0)
        cmd = [sys.executable, "-m", "laptime", "run", "-w", workload, "--variant", variant, "--config", config,
               "-a", algorithm, "--budget", "steps", "--budget-factor", "1.5", "--db", db, "--json"]
        started = time.monotonic()
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        wall = time.monotonic() - started
    finally:
        for p in spinners:
            p.kill()
        for p in spinners:
            p.wait()
    result = json.loads(out.stdout)
    result["process_wall"] = wall
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", default="smoke")
    parser.add_argument("--loads", type=int, nargs="+", default=[0, 1, 2, 4])
    parser.add_argument("--algorithms", nargs="+", default=["sgd_nesterov", "adamw", "nadamw"])
    parser.add_argument("--workloads", nargs="+", default=None, metavar="NAME",
                        help="only these entries of the suite (workload name, or name/variant@config)")
    parser.add_argument("--out", default=None, help="write every result as JSON here")
    parser.add_argument("--from-json", default=None, metavar="FILE",
                        help="print the table of a JSON file written by --out instead of running the trials")
    args = parser.parse_args()
    if args.from_json:
        results = json.loads(Path(args.from_json).read_text())
        print_table(results, sorted({r["load"] for r in results}), source=args.from_json)
        return 0

    from laptime.workloads.suites import get_suite

    suite = get_suite(args.suite)
    entries = [e for e in suite.entries
               if args.workloads is None or e[0] in args.workloads or f"{e[0]}/{e[1]}@{e[2]}" in args.workloads]
    if not entries:
        parser.error(f"no entry of suite {args.suite!r} matches --workloads {' '.join(args.workloads)}")
    results: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "contention.sqlite")
        # one untimed trial first, so that dataset preparation and file caches are out of the way
        first = entries[0]
        run_trial(*first, args.algorithms[0], db, 0)
        for workload, variant, config in entries:
            for algorithm in args.algorithms:
                for load in args.loads:
                    r = run_trial(workload, variant, config, algorithm, db, load)
                    c = r.get("contention", {})
                    row = {"workload": f"{workload}/{variant}@{config}", "algorithm": algorithm, "load": load,
                           "outcome": r["outcome"], "steps_to_target": r["steps_to_target"],
                           "raw": r["time_to_target"], "robust": r["robust_time_to_target"],
                           "raw_total": r["submission_time"], "robust_total": r["robust_submission_time"],
                           "work": r.get("work_to_target"), "reference_cost": r.get("reference_cost"),
                           "own_reference_cost": r.get("own_reference_cost"),
                           "wall": r["process_wall"], "other_cores": c.get("other_cores"),
                           "inflation": c.get("inflation"), "contaminated": c.get("contaminated")}
                    results.append(row)
                    print(json.dumps(row), flush=True)
                    if args.out:  # after every trial: a run cut short keeps what it measured
                        Path(args.out).write_text(json.dumps(results, indent=1))
    print_table(results, args.loads)
    return 0


def print_table(results: list[dict], loads: list[int], source: str | None = None) -> None:
    """Per trial, each figure against its quiet (lowest load) value.

    "robust" is the robust time as laptime scores it: the work to target times the lowest reference
    cost among all the trials of that workload in the database (a trial stored early is converted
    at the best cost known *then*; scoring converts every trial at one cost). "robust stored" is
    the value stored with the trial when it ran."""
    best = {}
    for r in results:
        if r.get("reference_cost"):
            best[r["workload"]] = min(best.get(r["workload"], r["reference_cost"]), r["reference_cost"])
    for r in results:
        r["robust_stored"] = r["robust"]
        if r.get("work") is not None and r["workload"] in best:
            r["robust"] = r["work"] * best[r["workload"]]
    quiet = {(r["workload"], r["algorithm"]): r for r in results if r["load"] == min(loads)}
    print()
    print("| workload | algorithm | load | steps to target | raw s (vs quiet) | robust s (vs quiet) | "
          "robust stored s (vs quiet) | work to target (vs quiet) | own reference ms | other cores | contaminated |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    worst = {"raw": 0.0, "robust": 0.0, "robust_stored": 0.0, "work": 0.0}

    def rel(row, key):
        base = quiet[(row["workload"], row["algorithm"])][key]
        if row[key] is None or base is None:
            return "—", None
        change = row[key] / base - 1
        return f"{row[key]:.3f} ({change:+.1%})", change

    for r in results:
        cells = {}
        for key in worst:
            text, change = rel(r, key)
            cells[key] = text
            if change is not None:
                worst[key] = max(worst[key], abs(change))
        print(f"| {r['workload']} | {r['algorithm']} | {r['load']} | {r['steps_to_target'] or '—'} | "
              f"{cells['raw']} | {cells['robust']} | {cells['robust_stored']} | "
              f"{cells['work']} | {r['own_reference_cost'] * 1e3:.2f} | "
              f"{r['other_cores'] if r['other_cores'] is not None else '—'} | {r['contaminated']} |")
    same = all(r["steps_to_target"] == quiet[(r["workload"], r["algorithm"])]["steps_to_target"]
               and r["outcome"] == quiet[(r["workload"], r["algorithm"])]["outcome"] for r in results)
    print()
    print(f"outcomes and steps to target identical at every load: {same}")
    print("largest deviation from quiet: " + ", ".join(f"{k} {v:.1%}" for k, v in worst.items()))
    if source:  # a reprint: the trials ran when the file was written, maybe on another machine
        print(f"reprinted from {source}; loads {loads}")
    else:
        print(f"machine: {os.cpu_count()} CPUs; loads {loads}; {time.strftime('%Y-%m-%d %H:%M')}")


if __name__ == "__main__":
    sys.exit(main())
