"""MNIST-1D classification (Greydanus 2020): a tiny, real dataset that trains in seconds on a CPU.

Data: the standard MNIST-1D (``make_dataset(get_dataset_args())`` of the ``mnist1d`` package):
40 features, 10 classes, 4,000 train / 1,000 test. The last 500 training examples are held out as
the validation split, so training uses the first 3,500; test is the package's 1,000 test examples.

Variants (sharing the data):

* ``base``: an MLP, 40 → 256 → 256 → 10, ReLU.
* ``cnn``: three 1-D convolutions (32 channels, kernel 5, ReLU; the last two with stride 2), then a
  linear head on the flattened 32 × 10 features.

Loss: softmax cross-entropy. Target metric: validation accuracy (higher is better).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from laptime.api import Batch, LossType, Target, Workload, WorkloadSpec
from laptime.data.loaders import epoch_index_batches, make_generator

NUM_FEATURES = 40
NUM_CLASSES = 10
NUM_TRAIN = 3500
NUM_VALIDATION = 500
NUM_TEST = 1000
DATASET = "mnist1d@package-0.0.2-standard"


class MLP(nn.Module):
    def __init__(self, width: int = 256):
        super().__init__()
        self.fc1 = nn.Linear(NUM_FEATURES, width)
        self.fc2 = nn.Linear(width, width)
        self.head = nn.Linear(width, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.head(x)


class CNN(nn.Module):
    def __init__(self, channels: int = 32, kernel: int = 5):
        super().__init__()
        pad = kernel // 2
        self.conv1 = nn.Conv1d(1, channels, kernel, padding=pad)  # 40 positions
        self.conv2 = nn.Conv1d(channels, channels, kernel, stride=2, padding=pad)  # 20
        self.conv3 = nn.Conv1d(channels, channels, kernel, stride=2, padding=pad)  # 10
        self.head = nn.Linear(channels * (NUM_FEATURES // 4), NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(1)  # [B, 40] -> [B, 1, 40]
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.relu(self.conv3(x))
        return self.head(x.flatten(1))


def _spec(variant: str, target: Target, budget: float, eval_period: float, step_hint: int, description: str,
          eval_period_steps: int | None = None) -> WorkloadSpec:
    return WorkloadSpec(
        eval_period_steps=eval_period_steps,
        name="mnist1d",
        variant=variant,
        config="cpu",
        version="1",
        dataset=DATASET,
        loss_type=LossType.SOFTMAX_CROSS_ENTROPY,
        target=target,
        max_allowed_runtime_sec=budget,
        eval_period_time_sec=eval_period,
        step_hint=step_hint,
        num_train_examples=NUM_TRAIN,
        num_validation_examples=NUM_VALIDATION,
        num_test_examples=NUM_TEST,
        description=description,
        calibration=("python benchmarks/calibrate_cpu_targets.py mnist1d " + variant + " (AdamW, 5 seeds; the command "
                     "and figures are in the comment at this spec and in docs/benchmarks.md); 2-core x86_64 VM, "
                     "torch 2.13.0+cpu, 2026-11-22"),
    )


# Targets and budgets, calibrated on this project's 2-core CPU (torch 2.13, 2 threads) with
# benchmarks/calibrate_cpu_targets.py: AdamW lr 3e-3 (betas 0.9/0.999, wd 0.01), batch 128, linear
# warmup over 5% of step_hint then cosine to 0 at step_hint, evaluating every 25 steps, seeds 0-4.
# The validation target sits a little below (easier than) the median best validation accuracy; the
# test target likewise below the median test accuracy at the best-validation eval. The budget is
# about 3x the median training time (eval excluded) to the validation target. (lr 1e-2 reaches
# ~0.94 on the CNN, but lr 3e-3 is the middle of the baselines' search spaces: the targets are
# meant to be reachable by a reasonably tuned baseline, not only by the best one.)
SPECS: dict[tuple[str, str], WorkloadSpec] = {
    # python benchmarks/calibrate_cpu_targets.py mnist1d mlp --steps 1000 --lr 3e-3 --eval-every 25 \
    #     --seeds 0 1 2 3 4 --target 0.64
    # best validation accuracy 0.658/0.662/0.666/0.654/0.688 (median 0.662, at steps 425-725; the MLP
    # overfits after that); test at the best-validation eval median 0.632; 1.4-1.5 ms/step; target
    # 0.64 reached by 5/5 seeds at steps 250-425, median 0.52 s -> budget 2 s (3x, rounded up for
    # runner overhead). Eval period 0.25 s: evals cost ~4 ms and a 1 s period would leave only two
    # evals in the budget.
    ("base", "cpu"): _spec(
        "base",
        Target("accuracy", "max", validation=0.64, test=0.61),
        budget=2.0,
        eval_period=0.25,
        step_hint=1000,
        description="MNIST-1D, MLP 40-256-256-10 (ReLU), CPU.",
        eval_period_steps=25,  # step-budget mode: the calibration's cadence
    ),
    # python benchmarks/calibrate_cpu_targets.py mnist1d cnn --steps 1500 --lr 3e-3 --eval-every 25 \
    #     --seeds 0 1 2 3 4 --target 0.88
    # best validation accuracy 0.906/0.896/0.896/0.894/0.880 (median 0.896, at steps 625-1225); test
    # at the best-validation eval median 0.901; 3.8-4.9 ms/step; 0.88 reached by 5/5 seeds at steps
    # 525-675 (median 3.06 s). But with the baselines' self-tuning defaults (--lr 2e-3 --wd 0.1
    # --beta2 0.995) 0.88 was reached by 1/5 seeds and 0.87 by 3/5 (median best 0.872), and with lr
    # 3e-3 / wd 0.1 / beta2 0.995 0.87 by 5/5 at steps 475-725 (median 2.8 s). With 500 validation
    # examples one standard error is ~1.4 points, so the target is 0.87 (2 SE below the median best)
    # and the test target 0.875 (same margin below 0.901). Budget 9 s (~3x). Check with the runner:
    # `laptime run -w mnist1d --variant cnn -a nadamw` reached 0.87 for seeds 0-2 at lr 2e-3 and 3e-3,
    # in 3-7 s (eval period 1 s).
    ("cnn", "cpu"): _spec(
        "cnn",
        Target("accuracy", "max", validation=0.87, test=0.875),
        budget=9.0,
        eval_period=1.0,
        step_hint=1500,
        description="MNIST-1D, 3-layer 1-D CNN (32 channels, kernel 5) + linear head, CPU.",
        eval_period_steps=25,  # step-budget mode: the calibration's cadence
    ),
}


class Mnist1DWorkload(Workload):
    """MNIST-1D classification; see the module docstring."""

    name = "mnist1d"
    variants = ("base", "cnn")
    datasets = ("mnist1d",)
    configs = ("cpu",)
    # AlgoPerf's MNIST: its small 10-class classification workload, known to every leaderboard submission
    algoperf_workload = "mnist"
    default_batch_sizes = {"cpu": 128}
    #: Examples per forward pass in evaluation.
    eval_batch_size = 1000

    def __init__(self, variant: str | None = None, config: str | None = None, device: str | torch.device = "cpu"):
        super().__init__(variant, config, device)
        self._splits: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None

    @property
    def spec(self) -> WorkloadSpec:
        return SPECS[(self.variant, self.config)]

    # ----------------------------------------------------------------- data
    def load_data(self) -> None:
        """Load (generate and cache on first use) the arrays onto ``self.device``. Idempotent."""
        if self._splits is not None:
            return
        from laptime.data import mnist1d as mnist1d_data

        arrays = mnist1d_data.load()

        def tensors(x, y):
            return (
                torch.as_tensor(x, dtype=torch.float32).to(self.device),
                torch.as_tensor(y, dtype=torch.long).to(self.device),
            )

        x, y = arrays["x"], arrays["y"]
        self._splits = {
            "train": tensors(x[:NUM_TRAIN], y[:NUM_TRAIN]),
            "validation": tensors(x[NUM_TRAIN : NUM_TRAIN + NUM_VALIDATION], y[NUM_TRAIN : NUM_TRAIN + NUM_VALIDATION]),
            "test": tensors(arrays["x_test"], arrays["y_test"]),
        }

    def split_tensors(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(inputs, labels)`` of ``split`` (``train``, ``validation`` or ``test``)."""
        self.load_data()
        assert self._splits is not None
        try:
            return self._splits[split]
        except KeyError:
            raise ValueError(f"unknown split {split!r}; splits: train, validation, test") from None

    def train_batches(self, global_batch_size: int, seed: int, start: int = 0) -> Iterator[Batch]:
        inputs, labels = self.split_tensors("train")  # loaded now, not at the first (timed) next()
        indices = epoch_index_batches(len(labels), int(global_batch_size), make_generator(seed), self.device, start)
        return ({"inputs": inputs[idx], "targets": labels[idx]} for idx in indices)

    # ----------------------------------------------------------------- model
    def build_model(self) -> nn.Module:
        return CNN() if self.variant == "cnn" else MLP()

    # ----------------------------------------------------------------- evaluation
    def evaluate_split(self, model: nn.Module, model_state: Any, split: str) -> dict[str, float]:
        inputs, labels = self.split_tensors(split)
        model.eval()
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        with torch.no_grad():
            for start in range(0, len(labels), self.eval_batch_size):
                x = inputs[start : start + self.eval_batch_size]
                y = labels[start : start + self.eval_batch_size]
                logits = model(x)
                loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").double()
                correct += (logits.argmax(-1) == y).sum()
        n = len(labels)
        return {"loss": float(loss_sum) / n, "accuracy": float(correct) / n}
WORKLOAD = Mnist1DWorkload
