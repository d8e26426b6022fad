"""Stand-in for AlgoPerf's ``pytorch_utils``: :func:`pytorch_setup`, answered for laptime's one process.

AlgoPerf runs PyTorch submissions under ``torchrun`` (one process per GPU, DDP when ``LOCAL_RANK``
is set); submissions call ``pytorch_setup()`` at import time, mostly to learn whether to
all-reduce their loss. laptime runs a trial in one process on one device, so the answer is always
"no DDP, rank 0", with the trial's device: :func:`trial_device` sets it around loading and running
a submission (``laptime.execution`` does); outside it, AlgoPerf's rule (``cuda:0`` when CUDA is
available, else the CPU).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Tuple

import torch

__all__ = ["pytorch_setup", "trial_device"]

_DEVICE: contextvars.ContextVar[torch.device | None] = contextvars.ContextVar("laptime_algoperf_device",
                                                                              default=None)


@contextlib.contextmanager
def trial_device(device: str | torch.device) -> Iterator[torch.device]:
    """Within the block, :func:`pytorch_setup` answers with ``device``."""
    token = _DEVICE.set(torch.device(device))
    try:
        yield _DEVICE.get()
    finally:
        _DEVICE.reset(token)


def pytorch_setup() -> Tuple[bool, int, torch.device, int]:
    """``(use_pytorch_ddp, rank, device, n_gpus)`` for this process: ``(False, 0, device, n)`` with
    the trial's device and ``n`` = 1 on a CUDA device, else 0 (the GPUs this process trains on)."""
    device = _DEVICE.get()
    if device is None:
        device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    return False, 0, device, 1 if device.type == "cuda" else 0
