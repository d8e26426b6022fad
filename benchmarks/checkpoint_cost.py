"""What one checkpoint of a running trial costs, for every workload of the smoke and lite_cpu suites,
and that it stays out of the submission time.

Each workload trains ``--steps`` steps with NAdamW (the runner, step budget, one intra-op thread, no
robust time, no eval until the end) twice: without checkpoints, and checkpointing after every step
(``checkpoint_every_steps=1``). Reported per workload:

* ``bytes``: the checkpoint's size on disk (one file per running trial);
* ``write ms``: mean wall time of one checkpoint write as the runner accounts it
  (``measurement["checkpoint"]["mean_write_ms"]``: ``torch.save`` into a temporary file, ``fsync``,
  ``os.replace``, the folder's ``fsync``);
* ``sub ms/step``: median submission time of a step without / with checkpoints: the same but for
  noise, since the checkpoint is written between steps, outside the clock (the checkpointed trial
  runs first; ``--repeats N`` interleaves N pairs and takes the medians);
* ``wall ms/step``: median wall time from one step's end to the next's, without / with checkpoints:
  the difference is what a checkpoint costs in wall time (gathering the state and writing it);
* ``outside ms/step``: median of a step's wall minus submission time, without / with checkpoints:
  where the checkpoint's cost lands (a measure that the load on the machine disturbs far less than
  the step times themselves);
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
import shutil
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
    """Progress hook: the submission time and the wall time at the end of every step."""

    def __init__(self):
        self.submission: list[float] = []
        self.wall: list[float] = []

    def start(self, *args):
        pass

    def step(self, global_step, submission_time):
        self.submission.append(submission_time)
        self.wall.append(time.perf_counter())

    def evaluated(self, record, reached):
        pass

    def finish(self, result):
        pass

    def per_step_ms(self) -> tuple[float, float, float]:
        """Medians over steps of: submission time, wall time, and wall minus submission time (what
        the step cost outside the clock: bookkeeping and, when on, the checkpoint)."""
        sub = [b - a for a, b in zip(self.submission, self.submission[1:])]
        wall = [b - a for a, b in zip(self.wall, self.wall[1:])]
        return (1000 * statistics.median(sub), 1000 * statistics.median(wall),
                1000 * statistics.median([w - s for s, w in zip(sub, wall)]))


def trial(workload, algorithm, steps: int, folder: str | None):
    progress = StepTimes()
    result = run_trial(workload, algorithm, dict(algorithm.self_tuning_defaults), 0, TrialOptions(
        budget="steps", max_steps=steps, eval_every_steps=steps, eval_splits=("validation",), robust=False,
        stop_at_target=False, checkpoint_dir=folder, checkpoint_every_steps=1 if folder else None,
        checkpoint_keep=True), progress=progress)
    if result.error:
        raise RuntimeError(result.error.strip().splitlines()[-1])
    return result, progress.per_step_ms()


def measure(name: str, variant: str, config: str, steps: int, algorithm_name: str, repeats: int = 1) -> dict:
    workload = default_workloads().create(name, variant=variant, config=config)
    for dataset in workload.datasets:
        ensure(dataset)
    algorithm = default_algorithms().get(algorithm_name)
    with_ckpt, without = [], []
    for _ in range(repeats):  # interleaved; with checkpoints first: a first trial's one-off costs count against them
        folder = tempfile.mkdtemp(prefix="laptime-ckpt-cost-")
        try:
            result, per_step = trial(workload, algorithm, steps, folder)
            with_ckpt.append(per_step)
            summary = result.measurement["checkpoint"]
            path = Path(summary["file"])
            t0 = time.perf_counter()
            ckpt.read_checkpoint(path)
            read = time.perf_counter() - t0
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        without.append(trial(workload, algorithm, steps, None)[1])
    (sub_ckpt, wall_ckpt, out_ckpt), (sub_plain, wall_plain, out_plain) = (
        [statistics.median(column) for column in zip(*runs)] for runs in (with_ckpt, without))
    seed = derive_seeds(0)["data"]
    t0 = time.perf_counter()
    workload.train_batches_from(result.measurement["batch_size"], seed, 1000)
    skip = time.perf_counter() - t0
    return {"workload": f"{name}/{variant}@{config}", "bytes": summary["bytes"], "write_ms": summary["mean_write_ms"],
            "written": summary["written"], "sub_plain": sub_plain, "sub_ckpt": sub_ckpt, "wall_plain": wall_plain,
            "wall_ckpt": wall_ckpt, "out_plain": out_plain, "out_ckpt": out_ckpt, "read_ms": 1000 * read,
            "skip_ms": 1000 * skip, "params": sum(p.numel() for p in workload.build_model().parameters())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=12, help="steps per trial (default 12)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="trials with and without checkpoints, interleaved; medians (default 1)")
    parser.add_argument("--algorithm", default="nadamw")
    parser.add_argument("--workload", action="append", metavar="NAME:VARIANT[:CONFIG]",
                        help="only these (default: every entry of the smoke and lite_cpu suites)")
    args = parser.parse_args()
    if args.steps < 3 or args.repeats < 1:
        parser.error("--steps must be >= 3 and --repeats >= 1")
    torch.set_num_threads(1)
    if args.workload:
        entries = [tuple((w.split(":") + ["base", "cpu"])[:3]) for w in args.workload]
    else:
        entries = list(dict.fromkeys([*get_suite("smoke").entries, *get_suite("lite_cpu").entries]))
    rows = []
    for name, variant, config in entries:
        try:
            rows.append(measure(name, variant, config, args.steps, args.algorithm, args.repeats))
        except Exception as exc:  # noqa: BLE001 - a workload whose data cannot be made ready is reported
            rows.append({"workload": f"{name}/{variant}@{config}", "error": f"{type(exc).__name__}: {exc}"})
    print(f"# python benchmarks/checkpoint_cost.py --steps {args.steps} --repeats {args.repeats}; {args.algorithm}, "
          f"1 thread; "
          f"{platform.machine()} {os.cpu_count()} cores, {platform.platform()}, torch {torch.__version__}, "
          f"{datetime.date.today().isoformat()}")
    print("| workload | params | bytes | write ms | sub ms/step without / with | wall ms/step without / with "
          "| outside ms/step without / with | read ms | skip ms/1k |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if "write_ms" not in r:
            print(f"| {r['workload']} | not measured: {r['error']} ||||||||")
            continue
        print(f"| {r['workload']} | {r['params']:,} | {r['bytes']:,} | {r['write_ms']:.1f} | "
              f"{r['sub_plain']:.1f} / {r['sub_ckpt']:.1f} | {r['wall_plain']:.1f} / {r['wall_ckpt']:.1f} | "
              f"{r['out_plain']:.2f} / {r['out_ckpt']:.1f} | {r['read_ms']:.1f} | {r['skip_ms']:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
