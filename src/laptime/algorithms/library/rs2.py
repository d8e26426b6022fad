"""RS2, repeated random sampling of subsets (Okanovic et al. 2024, "Repeated Random Sampling for
Minimizing the Time-to-Accuracy of Learning", ICLR 2024), without replacement, around NAdamW.
See :class:`RepeatedRandomSubsets`."""

from __future__ import annotations

from pathlib import Path

from laptime.algorithms.baselines import _ADAM_DEFAULTS, BATCH_SIZES, SPACES, _nadamw, warmup_then_decay
from laptime.algorithms.optimizer_algorithm import OptimizerAlgorithm


def subset_fraction(hp) -> float:
    """RS2's ``r``, the fraction of the training set sampled per round (``subset_fraction``)."""
    r = float(hp.get("subset_fraction", 0.3))
    if not 0.0 < r <= 1.0:
        raise ValueError(f"subset_fraction must be in (0, 1], got {r}")
    return r


def rs2_schedule(hp, step_hint: int):
    """The baselines' warmup + decay with the horizon ``r × step_hint`` (× ``decay_steps_factor``):
    the schedule of the reduced budget, reaching 0 (and so TrainingComplete) there."""
    return warmup_then_decay(hp, max(int(round(subset_fraction(hp) * step_hint)), 1))


class RepeatedRandomSubsets(OptimizerAlgorithm):
    """RS2 without replacement: NAdamW over ``r × step_hint`` steps, each round a fresh random subset.

    The paper: every round trains one epoch on a random subset of ``r·N`` of the ``N`` training
    examples, drawn without replacement across rounds (the whole set is used before any example is
    drawn again), for as many rounds as full-data training has epochs; the learning-rate schedule
    is that of the reduced number of steps, ``r ×`` the usual budget, which is where the time goes.

    How it maps onto laptime's contract: the algorithm only sees the workload's input queue. An
    epoch-shuffled queue (MNIST-1D's: each pass a fresh random permutation cut into ``P = N // B``
    batches of ``B``, the last ``N mod B`` examples of each permutation dropped) already *is* RS2's
    sampling without replacement: a round is the next ``m = round(r·N / B)`` batches of a pass,
    consecutive rounds of a pass are disjoint random subsets, and the rounds of a pass cover it
    before any example repeats; when ``P`` is not a multiple of ``m`` the last round of a pass is
    short (``P mod m`` batches). So ``data_selection`` is the queue's order, nothing is skipped and
    no extra work is done; what RS2 changes is the horizon: warmup + cosine to 0 at ``r ×
    step_hint`` steps, then :class:`~laptime.api.TrainingComplete`. On such a queue RS2 is
    therefore the same training as ``nadamw`` with ``decay_steps_factor = r``; it is registered to
    make the RS2 point explicit, with its own ``r`` and tests of the subset structure.

    Limits: taking the first ``m`` batches of every pass and skipping the rest would be RS2 *with*
    replacement across rounds (cheap on an on-device queue, but not the variant wanted here). A
    queue that samples with replacement (Tiny Shakespeare's random windows) has no passes, so the
    subsets are not without replacement there; only the shortened schedule carries over. The
    round boundaries are not aligned to ``N`` exactly: the queue's dropped remainder differs each
    pass, so a cycle covers ``P·B`` of the ``N`` examples.
    """

    @staticmethod
    def round_batches(hp, num_examples: int, batch_size: int) -> int:
        """``m``, the batches of one round: ``round(r·N / B)``, at least 1."""
        return max(int(round(subset_fraction(hp) * num_examples / batch_size)), 1)


def rs2_algorithms() -> list[OptimizerAlgorithm]:
    return [
        RepeatedRandomSubsets(
            "nadamw_rs2", _nadamw, rs2_schedule, BATCH_SIZES,
            summary="NAdamW with RS2, a random subset of r·N examples per round, without replacement across "
                    "rounds, schedule over r × step_hint (Okanovic et al. 2024, ICLR); own implementation",
            search_space=SPACES / "nadamw_rs2.json",
            self_tuning_defaults={**_ADAM_DEFAULTS, "subset_fraction": 0.3},
            extra_sources=[Path(__file__), SPACES.parent / "nadamw.py"],
        ),
    ]


__all__ = ["RepeatedRandomSubsets", "rs2_algorithms", "rs2_schedule", "subset_fraction"]
