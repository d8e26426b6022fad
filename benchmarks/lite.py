"""The lite suite's speed figures and the cost of a score, on one machine (meant for one GPU).

Two parts, both printed as markdown tables for docs/benchmarks.md:

``speed``: for each workload entry of a suite (default ``lite``) — the bare PyTorch loop of
``benchmarks/overhead.py`` (the workload's model and batches, AdamW, the workload's precision)
against laptime's harness (``run_trial`` with the reference algorithm, no evals until the end):
ms per step, training examples per second, peak device memory (CUDA), and for every workload the
model FLOPs of one training step (``torch.utils.flop_counter``, forward + backward) and the
model-FLOPs utilisation against ``--peak-tflops`` (H100 SXM dense bf16: 989).

``suite``: one trial of the reference algorithm (self-tuning defaults) on every entry, with the
workload's real target and budget (× ``--budget-factor``): outcome, time to target, wall time
(evals and set-up included). From it, the projected cost of an external-tuning score of ONE
algorithm — 5 trials per workload × 1 study and × 3 studies — as GPU-minutes, assuming trials
cost what the reference's did (a trial that missed is charged its whole budget plus evals).

Run on the GPU machine::

    python benchmarks/lite.py speed --device cuda --steps 200 --repeats 3
    python benchmarks/lite.py suite --device cuda

and on a CPU, for a quick check of the script itself::

    python benchmarks/lite.py speed --suite cpu --steps 20 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from overhead import bare_loop, harness_loop  # noqa: E402

from laptime.algorithms import default_algorithms  # noqa: E402
from laptime.runner import TrialOptions, run_trial  # noqa: E402
from laptime.workloads import default_workloads  # noqa: E402
from laptime.workloads.suites import get_suite  # noqa: E402


def step_flops(workload, batch_size: int) -> float | None:
    """FLOPs of one forward + backward pass on a training batch (None if not countable)."""
    from torch.utils.flop_counter import FlopCounterMode

    try:
        model, _ = workload.init_model_fn(0)
        batch = next(iter(workload.train_batches(batch_size, 0)))
        counter = FlopCounterMode(display=False)
        with counter:
            with workload.autocast():
                logits = model(batch["inputs"])
            logits.float().mean().backward()
        return float(counter.get_total_flops())
    except Exception as exc:  # noqa: BLE001 - a figure we cannot count is reported as missing
        print(f"#   (FLOPs of {workload.spec.key} not counted: {exc!r})", file=sys.stderr)
        return None


def _peak_memory(device: torch.device, fn):
    if device.type != "cuda":
        return fn(), None
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    out = fn()
    return out, torch.cuda.max_memory_allocated(device) / 2**30


def speed_row(workload, algorithms, algorithm_name: str, steps: int, repeats: int, peak_tflops: float) -> dict:
    """One workload's figures: the bare loop against the harness (medians over ``repeats``)."""
    device = workload.device
    algorithm = algorithms.get(algorithm_name)
    hp = dict(algorithm.self_tuning_defaults)
    hp.setdefault("one_minus_beta1", 0.1)
    hp.setdefault("beta2", 0.999)
    hp.setdefault("weight_decay", 0.0)
    batch_size = int(algorithm.get_batch_size(workload.spec.key))
    workload.warm_up(batch_size)
    bare_loop(workload, hp, min(10, steps), 0, batch_size)  # warm-up of the bare loop's kernels
    bare, harness, peaks = [], [], []
    for r in range(repeats):
        bare.append(bare_loop(workload, hp, steps, r, batch_size))
        (sub, _wall), peak = _peak_memory(device, lambda: harness_loop(workload, algorithms.get(algorithm_name), hp,
                                                                        steps, r))
        harness.append(sub)
        peaks.append(peak)
    b, h = statistics.median(bare), statistics.median(harness)
    flops = step_flops(workload, batch_size)
    mfu = None if flops is None else flops / h / (peak_tflops * 1e12)
    peak = None if peaks[0] is None else max(peaks)
    return dict(workload=workload.spec.key, batch=batch_size, bare_ms=b * 1e3, harness_ms=h * 1e3,
                harness_vs_bare=h / b - 1, examples_per_sec=batch_size / h, peak_gib=peak,
                gflop_per_step=None if flops is None else flops / 1e9, mfu=mfu,
                bare_ms_all=[x * 1e3 for x in bare], harness_ms_all=[x * 1e3 for x in harness])


def speed_line(row: dict) -> str:
    """``row`` (:func:`speed_row`) as a line of the markdown table :func:`speed` prints."""
    peak, flops, mfu = row["peak_gib"], row["gflop_per_step"], row["mfu"]
    return (f"| {row['workload']} | {row['batch']} | {row['bare_ms']:.2f} | {row['harness_ms']:.2f} | "
            f"{row['harness_vs_bare'] * 100:+.1f}% | {row['examples_per_sec']:,.0f} | "
            f"{'—' if peak is None else f'{peak:.2f}'} | {'—' if flops is None else f'{flops:,.1f}'} | "
            f"{'—' if mfu is None else f'{100 * mfu:.1f}%'} |")


SPEED_HEADER = ("| workload | batch | bare ms/step | harness ms/step | harness vs bare | examples/s (harness) | "
                "peak memory GiB (harness) | GFLOP/step | MFU |\n|---|---|---|---|---|---|---|---|---|")


def speed(args) -> None:
    registry, algorithms = default_workloads(), default_algorithms()
    device = torch.device(args.device)
    print(f"# lite speed: suite {args.suite}, {args.steps} steps × {args.repeats} repeats, {args.algorithm}, "
          f"device {_device_name(device)}, torch {torch.__version__}")
    print(SPEED_HEADER)
    rows = []
    for name, variant, config in get_suite(args.suite).entries:
        workload = registry.create(name, variant=variant, config=config, device=device)
        try:
            row = speed_row(workload, algorithms, args.algorithm, args.steps, args.repeats, args.peak_tflops)
        except Exception as exc:  # noqa: BLE001 - one broken workload must not hide the others
            print(f"| {workload.spec.key} | — | failed: {exc!r} |||||||")
            continue
        rows.append(row)
        print(speed_line(row), flush=True)
    _dump(args, {"speed": rows})


def suite(args) -> None:
    registry, algorithms = default_workloads(), default_algorithms()
    device = torch.device(args.device)
    print(f"# lite suite: one trial of {args.algorithm} (self-tuning defaults) per entry of {args.suite}, "
          f"device {_device_name(device)}, torch {torch.__version__}, budget × {args.budget_factor:g}")
    print("| workload | outcome | time to target s | submission s | budget s | wall s (evals, set-up included) |")
    print("|---|---|---|---|---|---|")
    rows, total_wall, per_trial_cost = [], 0.0, []
    for name, variant, config in get_suite(args.suite).entries:
        workload = registry.create(name, variant=variant, config=config, device=device)
        algorithm = algorithms.get(args.algorithm)
        start = time.perf_counter()
        result = run_trial(workload, algorithm, dict(algorithm.self_tuning_defaults), args.seed,
                           TrialOptions(budget_factor=args.budget_factor))
        wall = time.perf_counter() - start
        total_wall += wall
        eval_time = sum(e.eval_duration for e in result.evals)
        # what a tuning trial of this workload costs: this one if it reached the target, else a whole budget
        cost = wall if result.time_to_target is not None else result.budget_sec + eval_time + (wall - result.wall_time)
        per_trial_cost.append(max(cost, wall))
        rows.append(dict(workload=workload.spec.key, outcome=result.outcome.value, time_to_target=result.time_to_target,
                         submission_time=result.submission_time, budget=result.budget_sec, wall=wall))
        ttt = "—" if result.time_to_target is None else f"{result.time_to_target:.1f}"
        print(f"| {workload.spec.key} | {result.outcome.value} | {ttt} | {result.submission_time:.1f} | "
              f"{result.budget_sec:g} | {wall:.1f} |", flush=True)
    one = sum(per_trial_cost)
    print(f"\nOne trial per workload: {total_wall / 60:.1f} min wall. Projected external-tuning score of one "
          f"algorithm (trials cost as above): 5 trials × 1 study = {5 * one / 60:.0f} GPU-minutes; "
          f"5 trials × 3 studies = {15 * one / 60:.0f} GPU-minutes.")
    _dump(args, {"suite": rows, "one_trial_per_workload_min": total_wall / 60,
                 "projected_min": {"5x1": 5 * one / 60, "5x3": 15 * one / 60}})


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def _dump(args, payload) -> None:
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), **payload}, indent=1, default=str))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=("speed", "suite"))
    parser.add_argument("--suite", default="lite")
    parser.add_argument("--algorithm", default="nadamw")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="device peak for MFU (H100 SXM bf16 dense: 989)")
    parser.add_argument("--budget-factor", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="also write the figures as JSON")
    args = parser.parse_args()
    if args.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True  # as in the speedruns; autotuning is paid in the untimed warm-up
    (speed if args.part == "speed" else suite)(args)


if __name__ == "__main__":
    main()
