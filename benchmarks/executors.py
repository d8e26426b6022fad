"""What each executor costs per trial: start, hand-over and transfer back, store.

Every executor runs the same short trials (the mnist1d suite's two workloads, ``adamw``, ``--steps``
steps, no speed probes, one thread) one at a time (one worker process, at most one Ray task or
submitit job at once) into a fresh results file. The parent's side is timed from inside
(:class:`~laptime.execution.book.PlanBook`): when a plan is handed out (``next``), when its record
arrives back (``store_record`` called) and when it is stored (``store_record`` returns). With
``T`` a trial's own wall time (the runner's, start to end of the timed trial):

* **overhead per trial** = arrival − hand-out − ``T``, the median over all trials but the first:
  building the workload and algorithm where the trial runs (inline too: that is the baseline),
  shipping the plan (pipe, Ray task, submitit pickle + a subprocess), and the record back;
* **start** = from ``laptime.bench`` to the first hand-out (checks, plan, data, worker processes)
  plus what the first trial took beyond the median overhead (``ray.init``, a cold worker);
* **store** = ``store_record``: the trial, its evals and the release of its claim, one transaction
  (median);
* **finish** = from the last record stored to ``laptime.bench`` returning (scoring, shutting the
  engine down).

The pickled record's size and its pickling time are measured on the first record. Run::

    python benchmarks/executors.py                      # inline, local, ray, slurm-local (those installed)
    python benchmarks/executors.py --studies 3 --steps 20 --executors inline local
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


def measure(executor: str, studies: int, steps: int, folder: Path) -> dict[str, float]:
    """One benchmark of ``studies`` × 2 trials on ``executor``, timed from the parent's side."""
    import laptime
    from laptime.execution import book

    handed: dict[int, float] = {}
    arrived: dict[int, float] = {}
    stored: dict[int, float] = {}
    originals = book.PlanBook.next, book.PlanBook.store_record

    def next_(self):
        index = originals[0](self)
        if index is not None:
            handed[index] = time.perf_counter()
        return index

    def store_record(self, index, record):
        arrived[index] = time.perf_counter()
        try:
            return originals[1](self, index, record)
        finally:
            stored[index] = time.perf_counter()

    book.PlanBook.next, book.PlanBook.store_record = next_, store_record
    extra: dict = {}
    if executor == "ray":
        extra["ray_init"] = {"num_cpus": 2, "include_dashboard": False}
    if executor.startswith("slurm"):
        extra["jobs_folder"] = folder / "jobs"
    try:
        begin = time.perf_counter()
        result = laptime.bench("mnist1d", ["adamw"], ruleset="self", studies=studies, budget="steps",
                               max_steps=steps, robust=False, threads=1, executor=executor, workers=1,
                               db=folder / "r.sqlite", bootstrap=0, quiet=True, **extra)
        end = time.perf_counter()
    finally:
        book.PlanBook.next, book.PlanBook.store_record = originals
    by_id = {t.trial_id: t for t in result.trials}
    records = result.run.meta["trial_ids"]
    assert len(handed) == len(arrived) == len(records), "every plan must have run here (a fresh file)"
    order = sorted(handed, key=handed.get)
    wall = {i: by_id[records[i]].wall_time for i in order}
    overhead = {i: arrived[i] - handed[i] - wall[i] for i in order}
    typical = statistics.median(overhead[i] for i in order[1:])
    blob_start = time.perf_counter()
    blob = pickle.dumps(by_id[records[order[0]]])
    pickling = time.perf_counter() - blob_start
    return {"n": len(order), "overhead": typical,
            "start": handed[order[0]] - begin + overhead[order[0]] - typical,
            "store": statistics.median(stored[i] - arrived[i] for i in order),
            "finish": end - max(stored.values()), "trial": statistics.median(wall.values()),
            "elapsed": end - begin, "record_bytes": len(blob), "pickle": pickling}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=5, help="studies (each: one trial per workload, 2 workloads)")
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
        with tempfile.TemporaryDirectory() as folder:
            rows.append((executor, measure(executor, args.studies, args.steps, Path(folder))))
        print(f"{executor}: done", file=sys.stderr)
    shown = " ".join(argv if argv is not None else sys.argv[1:])
    print(f"# laptime executors: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
          f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"command: python benchmarks/executors.py{' ' + shown if shown else ''}")
    print("| executor | trials | start (s) | overhead per trial (s) | store per trial (ms) | finish (s) | "
          "record (KiB) | pickle (ms) | trial itself (s) | elapsed (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for executor, m in rows:
        print(f"| {executor} | {m['n']} | {m['start']:.2f} | {m['overhead']:.3f} | {m['store'] * 1000:.1f} | "
              f"{m['finish']:.2f} | {m['record_bytes'] / 1024:.1f} | {m['pickle'] * 1000:.2f} | {m['trial']:.2f} | "
              f"{m['elapsed']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
