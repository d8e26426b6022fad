"""Harness overhead per step: laptime's timed runner against a bare PyTorch loop.

Both loops train the same model (same init), on the same batches (taken from the workload's input
queue), with the same update (torch.optim.AdamW with a warmup-cosine learning rate set every
step). The bare loop is what a person would write by hand: forward, cross-entropy, backward,
set lr, step. The harness loop is ``laptime.runner.run_trial`` with the ``adamw`` baseline, no
evals until the end, so the difference is the harness's per-step cost: the algorithm contract's
indirection, the clock reads, the loss probe and its finiteness check, the train-state updates and
the (throttled) progress hook. The harness runs twice per repeat: without and with the robust
time (its CPU-time reads and its speed probes, which run outside the clock and so cost wall time).

A third loop calls the algorithm's own ``data_selection``/``update_params`` in a plain ``for`` loop
(no runner), which splits the overhead into the contract's part (the helper algorithm's
indirection and the workload's AlgoPerf-shaped loss) and the runner's part (clock, checks,
bookkeeping).

Repeats alternate bare / contract / harness and the medians are reported, to cancel drift on a
shared CPU. Run::

    python benchmarks/overhead.py                       # mnist1d mlp + cnn, shakespeare cpu
    python benchmarks/overhead.py --steps 400 --repeats 5 --workload mnist1d:cnn
"""

from __future__ import annotations

import argparse
import itertools
import platform
import statistics
import time

import torch

from laptime.algorithms import default_algorithms
from laptime.algorithms.schedules import warmup_decay
from laptime.runner import TrialOptions, derive_seeds, run_trial
from laptime.workloads import default_workloads


def plain_loss(workload):
    """The mean loss a hand-written loop would use for the workload's loss type."""
    from laptime.api import LossType

    F = torch.nn.functional
    if workload.loss_type == LossType.SOFTMAX_CROSS_ENTROPY:
        return lambda logits, y: F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))
    if workload.loss_type == LossType.SIGMOID_CROSS_ENTROPY:
        return lambda logits, y: F.binary_cross_entropy_with_logits(logits.float().reshape(y.shape), y.float())
    raise NotImplementedError(f"no plain loss for {workload.loss_type}")


def bare_loop(workload, hp, steps: int, seed: int, batch_size: int) -> float:
    """Seconds per step of a hand-written loop on the workload's model and batches."""
    seeds = derive_seeds(seed)
    model, _ = workload.init_model_fn(seeds["model"])
    batches = list(itertools.islice(workload.train_batches(batch_size, seeds["data"]), steps))
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": hp["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=hp["learning_rate"],
                                  betas=(1 - hp["one_minus_beta1"], hp["beta2"]), foreach=True)
    schedule = warmup_decay(workload.step_hint, int(0.05 * workload.step_hint))
    model.train()
    forward = workload.compiled(model)  # the model itself, unless the workload compiles (Workload.set_compile)
    loss_of = plain_loss(workload)
    start = time.perf_counter()
    for step, batch in enumerate(batches):
        optimizer.zero_grad(set_to_none=True)
        with workload.autocast():  # the workload's precision (bf16 autocast in gpu configurations)
            logits = forward(batch["inputs"])
        loss = loss_of(logits, batch["targets"])
        loss.backward()
        for group in optimizer.param_groups:
            group["lr"] = hp["learning_rate"] * schedule(step)
        optimizer.step()
    if workload.device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def contract_loop(workload, algorithm, hp, steps: int, seed: int) -> float:
    """Seconds per step of the algorithm's own functions called in a plain loop (no runner)."""
    from laptime.api import Hyperparameters

    hp = Hyperparameters(hp)
    seeds = derive_seeds(seed)
    model, model_state = workload.init_model_fn(seeds["model"])
    batch_size = algorithm.get_batch_size(workload.spec.key)
    batches = iter(list(itertools.islice(workload.train_batches(batch_size, seeds["data"]), steps)))
    rng = torch.Generator().manual_seed(seeds["algorithm"])
    state = algorithm.init_optimizer_state(workload, model, model_state, hp, rng)
    types = workload.model_params_types
    start = time.perf_counter()
    for step in range(steps):
        batch = algorithm.data_selection(workload, batches, state, model, model_state, hp, step, rng)
        state, model, model_state = algorithm.update_params(workload, model, types, model_state, hp, batch,
                                                            workload.loss_type, state, [], step, rng)
    if workload.device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def harness_loop(workload, algorithm, hp, steps: int, seed: int, robust: bool = False) -> tuple[float, float]:
    """(submission seconds per step, wall seconds per step excluding the final eval).

    ``robust``: with the robust time's CPU-time reads and speed probes (outside the clock, so they
    show in the wall time only)."""
    batch_size = algorithm.get_batch_size(workload.spec.key)
    seeds = derive_seeds(seed)
    batches = list(itertools.islice(workload.train_batches(batch_size, seeds["data"]), steps))
    original = workload.train_batches
    workload.train_batches = lambda size, s: iter(batches)
    try:
        result = run_trial(workload, algorithm, hp, seed,
                           TrialOptions(max_steps=steps, eval_period_sec=1e12, eval_splits=("validation",),
                                        robust=robust, budget_factor=1e9))  # never stopped by the time budget
    finally:
        workload.train_batches = original
    assert result.steps == steps, result
    eval_time = sum(e.eval_duration for e in result.evals)
    return result.submission_time / steps, (result.wall_time - eval_time) / steps


class _NullAlgorithm:
    """Does nothing: isolates the runner's own per-step cost."""

    name = "null"

    def get_batch_size(self, workload_name):
        return 1

    def init_optimizer_state(self, *args):
        return None

    def data_selection(self, *args):
        return None

    def update_params(self, workload, params, types, model_state, *args, **kwargs):
        return None, params, model_state

    def prepare_for_eval(self, workload, params, types, model_state, *args):
        return None, params, model_state


def runner_fixed_cost(workload, steps: int = 20000) -> float:
    """Microseconds per step the runner adds around an algorithm that does nothing."""
    algorithm = _NullAlgorithm()
    result = run_trial(workload, algorithm, {}, 0,
                       TrialOptions(max_steps=steps, eval_period_sec=1e12, eval_splits=("validation",), robust=False))
    eval_time = sum(e.eval_duration for e in result.evals)
    runner = (result.wall_time - eval_time) / steps
    start = time.perf_counter()  # the same calls in a bare loop
    for step in range(steps):
        algorithm.data_selection(workload, None, None, None, None, None, step, None)
        algorithm.update_params(workload, None, None, None, None, None, None, None, [], step, None)
    plain = (time.perf_counter() - start) / steps
    return (runner - plain) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", action="append",
                        help="name[:variant] (repeatable; default: mnist1d:base, mnist1d:cnn, shakespeare:base)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (laptime's CPU default: 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    targets = args.workload or ["mnist1d:base", "mnist1d:cnn", "shakespeare:base"]
    registry = default_workloads()
    print(f"# harness overhead, {args.steps} steps × {args.repeats} repeats, device {args.device}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    fixed = [runner_fixed_cost(registry.create("mnist1d", device=args.device)) for _ in range(3)]
    fixed_us = statistics.median(fixed)
    print(f"# runner's fixed cost per step (null algorithm, 20,000 steps, median of 3): {fixed_us:.1f} µs")
    print("| workload | bare loop ms/step | contract loop ms/step | harness submission ms/step | "
          "harness wall ms/step | harness vs bare (submission) | harness vs bare (wall) | runner alone (wall vs contract) "
          "| runner fixed cost / bare step | harness wall with robust time ms/step | robust time's wall cost |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for target in targets:
        name, _, variant = target.partition(":")
        workload = registry.create(name, variant=variant or None, device=args.device)
        algorithm = default_algorithms().get("adamw")
        hp = dict(algorithm.self_tuning_defaults)
        batch_size = algorithm.get_batch_size(workload.spec.key)
        bare, contract, sub, wall, robust_wall = [], [], [], [], []
        bare_loop(workload, hp, 20, 0, batch_size)  # warm-up (allocator, kernels)
        for r in range(args.repeats):
            bare.append(bare_loop(workload, hp, args.steps, r, batch_size))
            contract.append(contract_loop(workload, default_algorithms().get("adamw"), hp, args.steps, r))
            s, w = harness_loop(workload, default_algorithms().get("adamw"), hp, args.steps, r)
            sub.append(s)
            wall.append(w)
            robust_wall.append(harness_loop(workload, default_algorithms().get("adamw"), hp, args.steps, r,
                                            robust=True)[1])
        b, c = statistics.median(bare), statistics.median(contract)
        s, w = statistics.median(sub), statistics.median(wall)
        rw = statistics.median(robust_wall)
        print(f"| {workload.spec.key} | {b * 1e3:.3f} | {c * 1e3:.3f} | {s * 1e3:.3f} | {w * 1e3:.3f} | "
              f"{(s / b - 1) * 100:+.1f}% | {(w / b - 1) * 100:+.1f}% | {(w / c - 1) * 100:+.1f}% | "
              f"{fixed_us / (b * 1e6) * 100:.2f}% | {rw * 1e3:.3f} | {(rw / w - 1) * 100:+.1f}% |")


if __name__ == "__main__":
    main()
