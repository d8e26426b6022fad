"""What one checkpoint of a running trial costs, for every workload of the smoke and lite_cpu suites.

Each workload trains a few steps with NAdamW (the runner, step budget, one intra-op thread, no
robust time), checkpointing after every step (``checkpoint_every_steps=1``). Reported per workload:

* ``write ms``: median wall time of one checkpoint write: gathering the state (model, gradients,
  optimizer, RNGs, eval history, counters), ``torch.save`` into a temporary file, ``fsync``,
  ``os.replace`` and the folder's ``fsync`` (outside the clock: it costs wall time only);
* ``bytes``: the checkpoint's size on disk (one per running trial);
* ``step ms``: the median timed step, to compare with (the checkpoint's cost in steps);
* ``read ms``: loading the checkpoint back (``torch.load``), what a resume pays once;
* ``skip ms/1k``: positioning the input queue 1,000 batches further on resume
  (``Workload.train_batches_from``: the skipped batches' random draws, no data touched).

Datasets are made ready first (``laptime.data.ensure``; ``$LAPTIME_DATA`` decides where). Run::

    python benchmarks/checkpoint_cost.py                       # smoke + lite_cpu workloads
    python benchmarks/checkpoint_cost.py --steps 12 --workload mnist1d:base
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from laptime.algorithms import default_algorithms
from laptime.data.sources import ensure
from laptime.runner import TrialOptions, derive_seeds, run_trial
from laptime.runner import checkpoint as ckpt
from laptime.workloads import default_workloads
from laptime.workloads.suites import get_suite


class StepTimes:
    """Progress hook: the submission time of every step."""

    def __init__(self):
        self.times: list[float] = []

    def start(self, *args):
        pass

    def step(self, global_step, submission_time):
        self.times.append(submission_time)

    def evaluated(self, record, reached):
        pass

    def finish(self, result):
        pass


def measure(name: str, variant: str, config: str, steps: int, algorithm_name: str) -> dict:
    registry = default_workloads()
    workload = registry.create(name, variant=variant, config=config)
    for dataset in workload.datasets:
        ensure(dataset)
    algorithm = default_algorithms().get(algorithm_name)
    writes: list[float] = []
    save = ckpt.Checkpointer.save

    def timed_save(self, *args, **kwargs):
        t0 = time.perf_counter()
        save(self, *args, **kwargs)
        writes.append(time.perf_counter() - t0)

    ckpt.Checkpointer.save = timed_save
    folder = tempfile.mkdtemp(prefix="laptime-ckpt-cost-")
    progress = StepTimes()
    try:
        result = run_trial(workload, algorithm, dict(algorithm.self_tuning_defaults), 0, TrialOptions(
            budget="steps", max_steps=steps + 1, eval_every_steps=steps + 1, eval_splits=("validation",),
            robust=False, stop_at_target=False, checkpoint_dir=folder, checkpoint_every_steps=1,
            checkpoint_keep=True), progress=progress)
    finally:
        ckpt.Checkpointer.save = save
    summary = result.measurement["checkpoint"]
    path = Path(summary["file"])
    t0 = time.perf_counter()
    ckpt.read_checkpoint(path)
    read = time.perf_counter() - t0
    path.unlink()
    os.rmdir(folder)
    step_times = [b - a for a, b in zip(progress.times, progress.times[1:])]
    batch_size = result.measurement["batch_size"]
    seed = derive_seeds(0)["data"]
    t0 = time.perf_counter()
    workload.train_batches_from(batch_size, seed, 1000)
    skip = time.perf_counter() - t0
    return {"workload": f"{name}/{variant}@{config}", "write_ms": 1000 * statistics.median(writes),
            "bytes": summary["bytes"], "step_ms": 1000 * statistics.median(step_times), "read_ms": 1000 * read,
            "skip_ms": 1000 * skip, "params": sum(p.numel() for p in workload.build_model().parameters()),
            "error": result.error.strip().splitlines()[-1] if result.error else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=8, help="checkpoints per workload (default 8)")
    parser.add_argument("--algorithm", default="nadamw")
    parser.add_argument("--workload", action="append", metavar="NAME:VARIANT[:CONFIG]",
                        help="only these (default: every entry of the smoke and lite_cpu suites)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.workload:
        entries = [tuple((w.split(":") + ["base", "cpu"])[:3]) for w in args.workload]
    else:
        entries = list(dict.fromkeys([*get_suite("smoke").entries, *get_suite("lite_cpu").entries]))
    rows = []
    for name, variant, config in entries:
        try:
            rows.append(measure(name, variant, config, args.steps, args.algorithm))
        except Exception as exc:  # noqa: BLE001 - a workload whose data cannot be made ready is reported
            rows.append({"workload": f"{name}/{variant}@{config}", "error": f"{type(exc).__name__}: {exc}"})
    print(f"# python benchmarks/checkpoint_cost.py --steps {args.steps}; {args.algorithm}, 1 thread; "
          f"{platform.machine()} {os.cpu_count()} cores, {platform.platform()}, torch {torch.__version__}, "
          f"{datetime.date.today().isoformat()}")
    print(f"{'workload':28s} {'params':>9s} {'bytes':>10s} {'write ms':>9s} {'step ms':>8s} {'read ms':>8s} "
          f"{'skip ms/1k':>10s}")
    for r in rows:
        if "write_ms" not in r:
            print(f"{r['workload']:28s} not measured: {r['error']}")
            continue
        print(f"{r['workload']:28s} {r['params']:9d} {r['bytes']:10d} {r['write_ms']:9.1f} {r['step_ms']:8.1f} "
              f"{r['read_ms']:8.1f} {r['skip_ms']:10.1f}" + (f"  (trial: {r['error']})" if r["error"] else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
