"""Device-resident batching: whole-dataset tensors indexed by batches of indices.

No DataLoader and no per-example Python: an epoch is one ``randperm`` drawn from the caller's
``torch.Generator`` (on the CPU, so the sequence is the same on every device), cut into batches.

Every stream takes ``start``: the same stream from its batch ``start`` on, for a trial resumed from a
checkpoint (:meth:`laptime.api.Workload.train_batches_from`). The skipped batches are not built: the
generator's draws for them are made again and dropped (one ``randperm`` per skipped epoch; one
``randint`` per skipped batch of random windows), so a skip costs microseconds per batch, not a
batch's indexing and transfer.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


def make_generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (independent of the global torch RNG)."""
    generator = torch.Generator(device="cpu")
    generator.manual_seed(int(seed))
    return generator


def _check_start(start: int) -> int:
    if isinstance(start, bool) or int(start) != start or start < 0:
        raise ValueError(f"start must be a batch index >= 0, got {start!r}")
    return int(start)


def epoch_index_batches(
    num_examples: int, batch_size: int, generator: torch.Generator, device: torch.device | str = "cpu",
    start: int = 0,
) -> Iterator[torch.Tensor]:
    """Endless batches of example indices: reshuffled every epoch, the last partial batch dropped.

    ``start``: begin at batch ``start`` of the stream. The permutations of the skipped epochs are
    drawn and dropped here, at the call (not at the first, timed ``next``), so that the generator
    then stands where the full stream would have it.
    """
    if batch_size <= 0:
        raise ValueError(f"batch size must be positive, got {batch_size}")
    if batch_size > num_examples:
        raise ValueError(f"batch size {batch_size} is larger than the {num_examples} training examples")
    per_epoch = num_examples // batch_size
    skip_epochs, first = divmod(_check_start(start), per_epoch)
    for _ in range(skip_epochs):
        torch.randperm(num_examples, generator=generator)
    return _epochs(num_examples, batch_size, per_epoch, generator, device, first)


def _epochs(num_examples: int, batch_size: int, per_epoch: int, generator: torch.Generator,
            device: torch.device | str, first: int) -> Iterator[torch.Tensor]:
    while True:
        order = torch.randperm(num_examples, generator=generator).to(device)
        for i in range(first, per_epoch):
            yield order[i * batch_size : (i + 1) * batch_size]
        first = 0


def random_window_starts(
    num_tokens: int, window: int, batch_size: int, generator: torch.Generator, device: torch.device | str = "cpu",
    start: int = 0,
) -> Iterator[torch.Tensor]:
    """Endless batches of start positions of ``window``-token windows (uniform, with replacement).

    ``start``: begin at batch ``start`` (the skipped batches' draws are made here, on the CPU, and dropped).
    """
    if num_tokens <= window:
        raise ValueError(f"sequence of {num_tokens} tokens is too short for windows of {window}")
    if batch_size <= 0:
        raise ValueError(f"batch size must be positive, got {batch_size}")
    for _ in range(_check_start(start)):
        torch.randint(0, num_tokens - window, (batch_size,), generator=generator)
    return _windows(num_tokens, window, batch_size, generator, device)


def _windows(num_tokens: int, window: int, batch_size: int, generator: torch.Generator,
             device: torch.device | str) -> Iterator[torch.Tensor]:
    while True:
        yield torch.randint(0, num_tokens - window, (batch_size,), generator=generator).to(device)


def evenly_spaced_starts(num_tokens: int, window: int, max_windows: int | None = None) -> torch.Tensor:
    """Start positions of non-overlapping ``window``-token windows covering ``num_tokens``.

    With ``max_windows``, that many windows spread evenly over the whole sequence (still
    non-overlapping). Deterministic.
    """
    count = num_tokens // window
    if count == 0:
        raise ValueError(f"sequence of {num_tokens} tokens is shorter than one window of {window}")
    starts = torch.arange(count, dtype=torch.long) * window
    if max_windows is not None and count > max_windows:
        pick = torch.linspace(0, count - 1, max_windows).round().long()
        starts = starts[pick]
    return starts
