"""How many intra-op threads a CPU trial gets, and why.

Torch's default is one thread per core of the machine. On a machine shared with other work that
oversubscribes the cores: each parallel region waits for its slowest thread, and a thread that the
kernel has descheduled holds up all the others (measured on this project's 2-core VM beside two
busy processes: 128 MNIST-1D steps/s with 2 threads against 268 with 1). The thread count also
changes the numbers: a matrix product split over two threads sums in another order, so a trial's
eval history (and its steps to target) differs between 1 and 2 threads.

So the policy is explicit and recorded with every trial:

* an integer *n* — exactly *n* threads (the default for CPU trials is 1: the numbers are then the
  same on every machine with the same CPU kernel path, whatever its core count or load, and a trial
  can never oversubscribe; a benchmark gets its parallelism from running trials side by side);
* ``"auto"`` — the cores this process may use (CPU affinity, capped by a cgroup CPU quota), shared
  among the benchmark's worker processes, minus the cores other processes keep busy right now,
  and at least 1. The choice depends on the load of the moment, so trials run this way are only
  reproducible on an equally loaded machine; the chosen count is part of the hardware fingerprint.
"""

from __future__ import annotations

from laptime.errors import UsageError
import dataclasses
import math
import os
import time
from pathlib import Path
from typing import Any

#: The default policy for CPU trials.
DEFAULT_CPU_THREADS = 1


@dataclasses.dataclass(frozen=True)
class ThreadChoice:
    """The thread count chosen for a trial and what it was chosen from."""

    threads: int
    policy: str  # "auto" or the integer asked for, as text
    usable_cores: float  # affinity, capped by the cgroup quota
    busy_cores: float | None  # cores other processes used while choosing ("auto" only)
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _cgroup_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs allowed by a cgroup CPU quota (v2 ``cpu.max`` or v1 ``cfs_quota_us``), or None."""
    try:
        text = (root / "cpu.max").read_text().split()
        if text and text[0] != "max":
            return int(text[0]) / int(text[1])
        return None
    except (OSError, ValueError, IndexError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def usable_cores(cgroup_root: Path = Path("/sys/fs/cgroup")) -> float:
    """CPUs this process may run on: its affinity mask, capped by a cgroup quota (may be fractional)."""
    try:
        cores: float = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    quota = _cgroup_quota(cgroup_root)
    if quota is not None:
        cores = min(cores, quota)
    return max(cores, 1e-3)


def _busy_jiffies(stat: str) -> tuple[int, int]:
    """(busy, total) jiffies of the machine from the first line of /proc/stat."""
    fields = [int(x) for x in stat.split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    # guest time is already counted in user/nice; leave the guest columns out of the total
    total = sum(fields[:8])
    return total - idle, total


def busy_other_cores(interval: float = 0.25, stat_path: str = "/proc/stat") -> float | None:
    """How many cores other processes kept busy over ``interval`` seconds (None where /proc is absent).

    The machine's busy time from ``/proc/stat`` minus this process's own CPU time, over the wall
    time; the calling process should be idle meanwhile (it sleeps).
    """
    try:
        with open(stat_path) as f:
            busy0, total0 = _busy_jiffies(f.readline())
        cpu0, wall0 = time.process_time(), time.monotonic()
        time.sleep(interval)
        with open(stat_path) as f:
            busy1, total1 = _busy_jiffies(f.readline())
        cpu1, wall1 = time.process_time(), time.monotonic()
    except (OSError, ValueError, IndexError):
        return None
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    wall = max(wall1 - wall0, 1e-6)
    machine_busy = (busy1 - busy0) / ticks / wall
    return max(0.0, machine_busy - (cpu1 - cpu0) / wall)


def parse_policy(value: str | int | None) -> str | int:
    """``"auto"`` or a positive integer (also given as text); ValueError with a one-line message."""
    if value is None:
        return DEFAULT_CPU_THREADS
    if isinstance(value, int):
        n = value
    else:
        text = str(value).strip().lower()
        if text == "auto":
            return "auto"
        try:
            n = int(text)
        except ValueError:
            raise UsageError(f"threads must be 'auto' or a positive integer, got {value!r}") from None
    if n < 1:
        raise UsageError(f"threads must be 'auto' or a positive integer, got {value!r}")
    return n


def choose_threads(policy: str | int | None = None, workers: int = 1, *, cores: float | None = None,
                   busy: float | None = None, measure_busy: bool = True) -> ThreadChoice:
    """The intra-op thread count for each of ``workers`` processes under ``policy``.

    ``cores`` and ``busy`` override what is read from the machine (tests). An explicit count is
    honoured even where it oversubscribes (the reason says so); ``"auto"`` never oversubscribes.
    """
    policy = parse_policy(policy)
    workers = max(1, int(workers))
    cores = usable_cores() if cores is None else float(cores)
    share = cores / workers
    if policy == "auto":
        if busy is None and measure_busy:
            busy = busy_other_cores()
        free = share - (busy or 0.0) / workers
        threads = max(1, math.floor(free + 1e-9))
        reason = (f"auto: {cores:g} usable core(s) / {workers} worker(s)"
                  + (f" - {busy:.2f} busy with other processes" if busy is not None else "")
                  + f" -> {threads}")
        return ThreadChoice(threads, "auto", cores, busy, reason)
    threads = int(policy)
    reason = f"fixed: {threads} thread(s) asked for"
    if threads > share + 1e-9:
        reason += f" (more than the {share:g} core(s) per worker: oversubscribed)"
    return ThreadChoice(threads, str(threads), cores, busy, reason)


def apply_threads(choice: ThreadChoice) -> None:
    """Set torch's intra-op thread count to the choice."""
    import torch

    if torch.get_num_threads() != choice.threads:
        torch.set_num_threads(choice.threads)
