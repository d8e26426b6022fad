"""What each executor costs per trial: start, hand-over, transfer back, store.

Every executor runs the same short trials (MNIST-1D MLP, ``adamw``, ``--max-steps`` steps, no speed
probes, one thread) one at a time (one worker, at most one job), twice: one trial, then ``N``
trials, each into a fresh results file. With ``T`` the trials' own wall times (what the runner
measured from a trial's start to its end),

    elapsed(n) = start + n * (trial + overhead)
    overhead   = ((elapsed(N) - sum T_N) - (elapsed(1) - T_1)) / (N - 1)
    start      = elapsed(1) - T_1 - overhead

so ``start`` is what an executor pays once (worker processes, ``ray.init``, submitit's folder) and
``overhead`` what it pays per trial beyond the trial itself (building the workload and algorithm in
the worker, job submission and polling, pickling the record and sending it back, storing it). The
store's share is timed directly (``PlanBook.store_record``: the trial, its evals and the release of
its claim in one transaction), as are the pickled record's size and its pickling time. Run::

    python benchmarks/executors.py                      # inline, local, ray, slurm-local (those installed)
    python benchmarks/executors.py --trials 9 --steps 20 --executors inline local
"""

from __future__ import annotations

import argparse
import datetime
import os
import pickle
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path


def measure(executor: str, n: int, steps: int, folder: Path) -> dict[str, float]:
    """One benchmark of ``n`` trials on ``executor``; elapsed, the trials' wall times, store timings."""
    import laptime
    from laptime.execution import book

    store_times: list[float] = []
    original = book.PlanBook.store_record

    def timed(self, index, record):
        start = time.perf_counter()
        try:
            return original(self, index, record)
        finally:
            store_times.append(time.perf_counter() - start)

    book.PlanBook.store_record = timed
    extra: dict = {}
    if executor == "ray":
        extra["ray_init"] = {"num_cpus": 2, "include_dashboard": False}
    if executor.startswith("slurm"):
        extra["jobs_folder"] = folder / "jobs"
    try:
        start = time.perf_counter()
        result = laptime.bench("mnist1d", ["adamw"], ruleset="self", studies=n, budget="steps", max_steps=steps,
                               robust=False, threads=1, executor=executor, workers=1, db=folder / "r.sqlite",
                               bootstrap=0, quiet=True, **extra)
        elapsed = time.perf_counter() - start
    finally:
        book.PlanBook.store_record = original
    trials = [t for t in result.trials if t.workload == "mnist1d"]
    record = trials[0]
    t0 = time.perf_counter()
    blob = pickle.dumps(record)
    pickling = time.perf_counter() - t0
    return {"elapsed": elapsed, "trial_wall": sum(t.wall_time for t in result.trials), "n": len(result.trials),
            "store": statistics.median(store_times) if store_times else float("nan"), "record_bytes": len(blob),
            "pickle": pickling}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5, help="N, trials per study count (default 5)")
    parser.add_argument("--steps", type=int, default=10, help="steps per trial (default 10)")
    parser.add_argument("--executors", nargs="+", default=["inline", "local", "ray", "slurm-local"])
    args = parser.parse_args(argv)
    import importlib.util

    rows = []
    for executor in args.executors:
        engine = {"ray": "ray", "slurm-local": "submitit", "slurm": "submitit"}.get(executor)
        if engine and importlib.util.find_spec(engine) is None:
            print(f"{executor}: skipped ({engine} is not installed)", file=sys.stderr)
            continue
        with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as many:
            # the mnist1d suite has two workloads (MLP and CNN): studies=n gives 2n trials
            a = measure(executor, 1, args.steps, Path(one))
            b = measure(executor, args.trials, args.steps, Path(many))
        overhead = ((b["elapsed"] - b["trial_wall"]) - (a["elapsed"] - a["trial_wall"])) / (b["n"] - a["n"])
        start = a["elapsed"] - a["trial_wall"] - a["n"] * overhead
        rows.append((executor, b["n"], start, overhead, b["store"], b["record_bytes"], b["pickle"],
                     b["trial_wall"] / b["n"]))
        print(f"{executor}: done", file=sys.stderr)
    print(f"# laptime executors: {datetime.date.today()}, {platform.node()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}; "
          f"command: python benchmarks/executors.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    print("| executor | trials | start (s) | overhead per trial (s) | store per trial (ms) | record (KiB) | "
          "pickle (ms) | trial itself (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for executor, n, start, overhead, store, size, pickling, trial in rows:
        print(f"| {executor} | {n} | {start:.2f} | {overhead:.3f} | {store * 1000:.1f} | {size / 1024:.1f} | "
              f"{pickling * 1000:.2f} | {trial:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
