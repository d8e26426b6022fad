"""Clocks. The runner is the only code that reads them.

``DeviceClock`` waits for the device (``torch.cuda.synchronize``) before reading
``time.perf_counter``, so queued GPU work is charged to the step that queued it.
``ManualClock`` is moved by hand; tests use it to prove exactly which work is timed.
"""

from __future__ import annotations

import time

import torch


class DeviceClock:
    def __init__(self, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self._cuda = self.device.type == "cuda"

    def synchronize(self) -> None:
        if self._cuda:
            torch.cuda.synchronize(self.device)

    def now(self) -> float:
        """Seconds on a monotonic clock, after all queued device work has finished."""
        if self._cuda:
            torch.cuda.synchronize(self.device)
        return time.perf_counter()


class ManualClock:
    """A clock that only moves when told to (``advance``)."""

    def __init__(self, start: float = 0.0):
        self.time = float(start)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        self.time += seconds

    def synchronize(self) -> None:
        pass

    def now(self) -> float:
        return self.time
