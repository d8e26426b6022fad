"""Small workloads and algorithms for tests of the runner and the CLI (not shipped)."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from laptime.api import Algorithm, ForwardPassMode, LossType, Target, Workload, WorkloadSpec
from laptime.algorithms.optimizer_algorithm import OptimizerAlgorithm


class ToyWorkload(Workload):
    """A 4-class problem from a random linear teacher; 512 train / 256 validation / 256 test."""

    name = "toy"
    variants = ("base",)
    configs = ("cpu",)

    def __init__(self, *args, target: float = 0.9, direction: str = "max", metric: str = "accuracy",
                 budget: float = 1e9, eval_period: float = 1e9, scripted: list[float] | None = None,
                 clock=None, eval_cost: float = 0.0, step_budget: int | None = None,
                 eval_period_steps: int | None = None, probe_cost: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self._step_budget = step_budget
        self._eval_period_steps = eval_period_steps
        self.probe_cost = probe_cost  # manual-clock seconds each speed-probe pass costs
        self._target = Target(metric, direction, target, target)
        self._budget = budget
        self._eval_period = eval_period
        self.scripted = list(scripted) if scripted is not None else None
        self.clock = clock
        self.eval_cost = eval_cost
        g = torch.Generator().manual_seed(1234)
        teacher = torch.randn(8, 4, generator=g)
        x = torch.randn(1024, 8, generator=g)
        y = (x @ teacher).argmax(-1)
        self.splits = {"train": (x[:512], y[:512]), "validation": (x[512:768], y[512:768]),
                       "test": (x[768:], y[768:])}

    @property
    def spec(self) -> WorkloadSpec:
        return WorkloadSpec(
            name=self.name, variant=self.variant, config=self.config, version="test", dataset="toy",
            loss_type=LossType.SOFTMAX_CROSS_ENTROPY, target=self._target,
            max_allowed_runtime_sec=self._budget, eval_period_time_sec=self._eval_period, step_hint=200,
            num_train_examples=512, num_validation_examples=256, num_test_examples=256,
            step_budget=self._step_budget, eval_period_steps=self._eval_period_steps,
        )

    def speed_probe(self):
        """The real reference pass, plus ``probe_cost`` on the manual clock (when there is one)."""
        reference_pass = super().speed_probe()

        def probe():
            reference_pass()
            if self.clock is not None:
                self.clock.advance(self.probe_cost)

        return probe

    def build_model(self) -> nn.Module:
        return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))

    def train_batches(self, global_batch_size, seed):
        g = torch.Generator().manual_seed(seed)
        x, y = self.splits["train"]
        while True:
            idx = torch.randint(0, len(x), (global_batch_size,), generator=g)
            yield {"inputs": x[idx], "targets": y[idx]}

    def evaluate_split(self, model, model_state, split):
        if self.clock is not None:
            self.clock.advance(self.eval_cost)
        x, y = self.splits[split]
        model.eval()
        with torch.no_grad():
            logits = model(x)
            loss = nn.functional.cross_entropy(logits, y).item()
            acc = (logits.argmax(-1) == y).float().mean().item()
        model.train()
        metrics = {"loss": loss, "accuracy": acc}
        if self.scripted is not None and split == "validation":
            metrics[self._target.metric] = self.scripted.pop(0) if self.scripted else metrics[self._target.metric]
        return metrics


class ClockedAlgorithm(OptimizerAlgorithm):
    """Plain SGD whose functions advance a ManualClock by fixed amounts."""

    def __init__(self, clock, *, init=0.0, select=0.0, update=1.0, prepare=0.0, fail_at=None, complete_at=None,
                 poison_at=None, poison_loss_at=None):
        super().__init__("clocked", lambda groups, hp: torch.optim.SGD(groups, lr=0.1), batch_size=32)
        self.clock = clock
        self.costs = dict(init=init, select=select, update=update, prepare=prepare)
        self.fail_at, self.complete_at = fail_at, complete_at
        self.poison_at, self.poison_loss_at = poison_at, poison_loss_at
        self.prepare_calls = 0

    def init_optimizer_state(self, *args, **kwargs):
        self.clock.advance(self.costs["init"])
        return super().init_optimizer_state(*args, **kwargs)

    def data_selection(self, *args, **kwargs):
        self.clock.advance(self.costs["select"])
        return super().data_selection(*args, **kwargs)

    def update_params(self, workload, params, types, model_state, hp, batch, loss_type, opt_state, eval_results,
                      global_step, rng, train_state=None):
        from laptime.api import TrainingComplete

        self.clock.advance(self.costs["update"])
        if self.fail_at is not None and global_step == self.fail_at:
            raise ValueError("boom at step %d" % global_step)
        if self.complete_at is not None and global_step == self.complete_at:
            raise TrainingComplete()
        if self.poison_loss_at is not None and global_step == self.poison_loss_at:
            workload.loss_fn(batch["targets"], torch.full((len(batch["targets"]), 4), float("nan")))
            return opt_state, params, model_state
        out = super().update_params(workload, params, types, model_state, hp, batch, loss_type, opt_state,
                                    eval_results, global_step, rng, train_state)
        if self.poison_at is not None and global_step == self.poison_at:
            with torch.no_grad():
                next(params.parameters()).fill_(float("nan"))
        return out

    def prepare_for_eval(self, *args, **kwargs):
        self.prepare_calls += 1
        self.clock.advance(self.costs["prepare"])
        return super().prepare_for_eval(*args, **kwargs)


@dataclasses.dataclass
class ClockedProgress:
    """A progress sink that costs clock time, to prove logging is not charged."""

    clock: object
    cost: float = 50.0
    steps: int = 0

    def start(self, workload, algorithm, budget_sec):
        self.clock.advance(self.cost)

    def step(self, global_step, submission_time):
        self.steps += 1
        self.clock.advance(self.cost)

    def evaluated(self, record, reached):
        self.clock.advance(self.cost)

    def finish(self, result):
        self.clock.advance(self.cost)


class RaisingBatchSize(Algorithm):
    name = "bad_batch"

    def get_batch_size(self, workload_name):
        return 0


# --- For the executor tests: module-level, so that spawned worker processes can import them. ---


class CrashingWorkload(ToyWorkload):
    """Kills its whole process (``os._exit(3)``) when training starts: a worker crash, not a trial failure."""

    name = "toy_crash"

    def train_batches(self, global_batch_size, seed):
        import os

        os._exit(3)


def toy_workloads():
    """A workload registry with ``toy`` and ``toy_crash`` (a picklable ``workloads_factory``)."""
    from laptime.workloads import WorkloadRegistry

    return WorkloadRegistry([ToyWorkload, CrashingWorkload])


def workloads_failing_in_workers():
    """A ``workloads_factory`` that works in the main process but raises in a child process."""
    import multiprocessing

    if multiprocessing.parent_process() is not None:
        raise RuntimeError("no workloads for you")
    return toy_workloads()


def train_briefly(workload, steps, lr, batch_size, seed=0, eval_every=None):
    """A few AdamW steps through the workload's own model_fn and loss_fn; (validation before, after).

    With ``eval_every``, "after" is the list of validation metrics after every ``eval_every`` steps (judge it
    with ``algohelpers.best_metrics``: a single point can land on a loss spike on some CPU kernel path).
    """
    model, _ = workload.init_model_fn(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    batches = workload.train_batches(batch_size, seed)
    before = workload.evaluate_split(model, None, "validation")
    evals = []
    for step in range(1, steps + 1):
        batch = next(batches)
        logits, _ = workload.model_fn(model, batch, None, ForwardPassMode.TRAIN)
        loss = workload.loss_fn(batch["targets"], logits)
        optimizer.zero_grad()
        (loss["summed"] / loss["n_valid_examples"]).backward()
        optimizer.step()
        if eval_every is not None and (step % eval_every == 0 or step == steps):
            evals.append(workload.evaluate_split(model, None, "validation"))
    if eval_every is not None:
        return before, evals
    return before, workload.evaluate_split(model, None, "validation")


class MeetingWorkload(ToyWorkload):
    """Holds its process's first trial until ``$LAPTIME_TEST_MEET`` (a folder) holds a mark from
    ``$LAPTIME_TEST_MEET_COUNT`` processes (default 2), so that trials of several benchmarks surely
    run at the same time (at most 120 s)."""

    name = "toy_meet"

    def train_batches(self, global_batch_size, seed):
        import os
        import time
        from pathlib import Path

        folder = os.environ.get("LAPTIME_TEST_MEET")
        mark = Path(folder) / f"{os.getpid()}" if folder else None
        if mark is not None and not mark.exists():
            mark.write_text(str(seed))
            deadline = time.monotonic() + 120
            while len(list(Path(folder).iterdir())) < int(os.environ.get("LAPTIME_TEST_MEET_COUNT", "2")) \
                    and time.monotonic() < deadline:
                time.sleep(0.05)
        yield from super().train_batches(global_batch_size, seed)


def meeting_workloads():
    """``toy``, ``toy_crash`` and ``toy_meet`` (a picklable ``workloads_factory``)."""
    from laptime.workloads import WorkloadRegistry

    return WorkloadRegistry([ToyWorkload, CrashingWorkload, MeetingWorkload])


def workloads_without_store():
    """``toy`` workloads; in any process but ``$LAPTIME_TEST_PARENT_PID`` (a worker process, a Ray task,
    a Slurm job) SQLite cannot be opened any more, so a worker that opens the results store fails."""
    import os

    parent = os.environ.get("LAPTIME_TEST_PARENT_PID")
    if parent and int(parent) != os.getpid():
        import sqlite3

        def refuse(*args, **kwargs):
            raise RuntimeError("a worker opened an SQLite database (the results store is the parent's)")

        sqlite3.connect = refuse
    return toy_workloads()
