"""Calibrate the CPU targets of laptime's workloads with a plain PyTorch training loop.

For each (workload, variant) in the ``cpu`` configuration and each seed: AdamW (betas 0.9/``--beta2``,
weight decay ``--wd``), linear warmup over the first 5% of ``--steps`` then cosine decay to 0 at
``--steps`` (the step hint), evaluating validation and test every ``--eval-every`` steps. Reports,
per seed, the best validation metric and the test metric at the same eval, and the training time
(evaluation excluded) to first reach a candidate target; then the median over seeds.

The targets in ``laptime/workloads/*.py`` are set a little below (easier than) the median best
validation metric so a reasonable baseline reaches them reliably, with a budget of about 3x the
time the runs needed to reach them.

    python benchmarks/calibrate_cpu_targets.py mnist1d cnn --steps 1500 --lr 3e-3 --batch 128
    python benchmarks/calibrate_cpu_targets.py shakespeare base --steps 2000 --lr 3e-3 --batch 32
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
import torch.nn.functional as F

from laptime.api import Target
from laptime.workloads import default_workloads


def lr_at(step: int, base_lr: float, step_hint: int, warmup_fraction: float = 0.05) -> float:
    warmup = max(1, int(warmup_fraction * step_hint))
    if step < warmup:
        return base_lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, step_hint - warmup))
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def train_once(workload, seed: int, steps: int, lr: float, batch: int, wd: float, eval_every: int, beta2: float = 0.999):
    model, _ = workload.init_model_fn(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, beta2), weight_decay=wd)
    batches = workload.train_batches(batch, seed)
    history = []  # (step, train_seconds, validation metrics, test metrics)
    train_seconds = 0.0
    durations = []
    for step in range(steps):
        start = time.perf_counter()
        model.train()
        b = next(batches)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, lr, steps)
        logits = model(b["inputs"])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), b["targets"].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        durations.append(time.perf_counter() - start)
        train_seconds += durations[-1]
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            val = workload.evaluate_split(model, None, "validation")
            test = workload.evaluate_split(model, None, "test")
            history.append((step + 1, train_seconds, val, test))
    # The median step time is robust to stalls when other processes share the CPU; "estimated"
    # times below are steps x median step time.
    return history, statistics.median(durations)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workload")
    parser.add_argument("variant")
    parser.add_argument("--steps", type=int, required=True, help="step hint: the schedule ends here")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--wd", type=float, default=0.01)
    parser.add_argument("--beta2", type=float, default=0.999)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--target", type=float, nargs="*", default=[], help="candidate validation targets: report the time to reach them")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()

    workload = default_workloads().create(args.workload, args.variant, "cpu")
    metric, direction = workload.target.metric, workload.target.direction
    better = max if direction == "max" else min
    print(f"{workload.spec.key}: metric {metric} ({direction}), torch threads {torch.get_num_threads()}")
    print(f"AdamW lr {args.lr} wd {args.wd} beta2 {args.beta2}, batch {args.batch}, steps {args.steps}, eval every {args.eval_every}")

    best_vals, best_tests, tests_at_best, step_times = [], [], [], []
    reach: dict[float, list[tuple[float, float, float]]] = {}
    for seed in args.seeds:
        history, step_time = train_once(workload, seed, args.steps, args.lr, args.batch, args.wd, args.eval_every, args.beta2)
        best = better(history, key=lambda h: h[2][metric])
        best_test = better(h[3][metric] for h in history)
        best_vals.append(best[2][metric])
        best_tests.append(best_test)
        tests_at_best.append(best[3][metric])
        step_times.append(step_time)
        line = (
            f"seed {seed}: best validation {metric} {best[2][metric]:.4f} at step {best[0]} "
            f"(test there {best[3][metric]:.4f}; best test {best_test:.4f}); final validation "
            f"{history[-1][2][metric]:.4f}; median step {1000 * step_time:.2f} ms; {history[-1][1]:.1f} s training"
        )
        for target in args.target:
            goal = Target(metric, direction, target, target)
            hit = next((h for h in history if goal.reached(h[2][metric])), None)
            if hit is None:
                line += f"; target {target} NOT reached"
                reach.setdefault(target, []).append((math.inf, math.inf, math.inf))
            else:
                line += f"; target {target} at step {hit[0]} ({hit[1]:.2f} s measured, {hit[0] * step_time:.2f} s estimated)"
                reach.setdefault(target, []).append((hit[0], hit[1], hit[0] * step_time))
        print(line, flush=True)
        if args.verbose:
            for step, seconds, val, test in history:
                print(f"    step {step:5d} {seconds:7.2f} s  validation {val[metric]:.4f}  test {test[metric]:.4f}")

    print(
        f"median best validation {metric}: {statistics.median(best_vals):.4f}  (all: {', '.join(f'{v:.4f}' for v in best_vals)})"
    )
    print(f"median test {metric} at the best validation eval: {statistics.median(tests_at_best):.4f}  (all: {', '.join(f'{v:.4f}' for v in tests_at_best)})")
    print(f"median best test {metric}: {statistics.median(best_tests):.4f}  (all: {', '.join(f'{v:.4f}' for v in best_tests)})")
    print(f"median step time: {1000 * statistics.median(step_times):.2f} ms")
    for target, hits in reach.items():
        steps = [h[0] for h in hits]
        print(
            f"target {target}: reached by {sum(math.isfinite(s) for s in steps)}/{len(steps)} seeds at steps {steps}; "
            f"median time {statistics.median(h[1] for h in hits):.2f} s measured, "
            f"{statistics.median(h[2] for h in hits):.2f} s estimated"
        )

if __name__ == "__main__":
    main()
