"""What else was using the machine while a trial ran.

A :class:`ContentionMonitor` reads, at the start and the end of a trial and now and then in between
(outside the timed region):

* the load average (``/proc/loadavg``; its maximum over the trial),
* the machine's busy and stolen CPU time (``/proc/stat``), from which the cores *other* processes
  kept busy are the machine's busy time minus this process's own CPU time,
* this process's involuntary context switches (``getrusage``),
* on CUDA, the other processes holding the GPU (NVML, else ``nvidia-smi``),

and, from the runner, how much CPU the trial's timed work got against its wall time and how much
its raw submission time exceeds its robust estimate (:mod:`laptime.runner.workmeter`). The summary
is stored with the trial; :func:`laptime.records.assess_contention` turns it into a verdict
(``contaminated`` and its reasons) that ``laptime bench`` warns about and the report marks. The
verdict rests on what was seen on this machine (other processes, steal, the CPU share of the timed
work, other GPU processes); the inflation of the raw time over the robust one is recorded but not
part of it: on a virtual machine whose host is busy it is 7-35 % with nothing else running here
(measured on the development VM), which is noise a user cannot act on, not contention.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import time
from typing import Any

from laptime.records import CONTENTION_THRESHOLDS as THRESHOLDS
from laptime.records import assess_contention as assess


def _read_loadavg() -> float | None:
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        try:
            return os.getloadavg()[0]
        except (AttributeError, OSError):
            return None


def _read_stat() -> tuple[int, int, int] | None:
    """(busy, steal, total) jiffies of the whole machine."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])
    steal = fields[7] if len(fields) > 7 else 0
    return total - idle, steal, total


def other_gpu_processes(device: Any) -> list[int] | None:
    """PIDs of other processes with a context on this CUDA device; None when it cannot be told."""
    import torch

    index = device.index if getattr(device, "index", None) is not None else torch.cuda.current_device()
    me = os.getpid()
    try:
        import pynvml  # type: ignore[import-not-found]

        pynvml.nvmlInit()
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            procs = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
            return sorted({p.pid for p in procs} - {me})
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 - NVML missing or refusing: try the command line
        pass
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run([smi, f"--id={index}", "--query-compute-apps=pid", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=5, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    pids = {int(line) for line in out.split() if line.strip().isdigit()}
    return sorted(pids - {me})


class ContentionMonitor:
    """Samples the machine around one trial; :meth:`summary` gives the stored dictionary."""

    #: Seconds between load-average reads in :meth:`sample` (reading is cheap, but not free).
    SAMPLE_EVERY = 1.0

    def __init__(self, device: Any = "cpu", threads: int = 1):
        import torch

        self.device = torch.device(device)
        self.threads = max(1, int(threads))
        self._t0 = time.monotonic()
        self._cpu0 = time.process_time()
        self._stat0 = _read_stat()
        self._ru0 = resource.getrusage(resource.RUSAGE_SELF)
        self._load0 = _read_loadavg()
        self._load_max = self._load0
        self._next_sample = self._t0 + self.SAMPLE_EVERY
        self._gpu_others: set[int] | None = None
        if self.device.type == "cuda":
            self._note_gpu()

    def _note_gpu(self) -> None:
        pids = other_gpu_processes(self.device)
        if pids is not None:
            self._gpu_others = (self._gpu_others or set()) | set(pids)

    def sample(self) -> None:
        """Note the load now (cheap; rate-limited). Call it outside the timed region."""
        now = time.monotonic()
        if now < self._next_sample:
            return
        self._next_sample = now + self.SAMPLE_EVERY
        load = _read_loadavg()
        if load is not None:
            self._load_max = load if self._load_max is None else max(self._load_max, load)

    def summary(self, *, timed_wall: float, timed_cpu: float | None, raw_time: float,
                robust_time: float | None, slowdown: float | None) -> dict[str, Any]:
        """The trial's contention record (plain JSON types), with its verdict."""
        self.sample()
        wall = max(time.monotonic() - self._t0, 1e-9)
        own_cpu = time.process_time() - self._cpu0
        ru = resource.getrusage(resource.RUSAGE_SELF)
        load1 = _read_loadavg()
        out: dict[str, Any] = {
            "wall_sec": round(wall, 3),
            "loadavg_start": self._load0,
            "loadavg_end": load1,
            "loadavg_max": max(x for x in (self._load_max, load1) if x is not None)
            if (self._load_max is not None or load1 is not None) else None,
            "involuntary_switches_per_sec": round((ru.ru_nivcsw - self._ru0.ru_nivcsw) / wall, 2),
            "threads": self.threads,
        }
        stat1 = _read_stat()
        if self._stat0 is not None and stat1 is not None:
            ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
            busy, steal, total = (b - a for a, b in zip(self._stat0, stat1))
            out["other_cores"] = round(max(0.0, busy / ticks / wall - own_cpu / wall), 3)
            out["steal_fraction"] = round(steal / total, 4) if total > 0 else 0.0
        if timed_cpu is not None and timed_wall > 0:
            out["cpu_share"] = round(timed_cpu / (timed_wall * self.threads), 3)
        if robust_time is not None and robust_time > 0:
            out["inflation"] = round(raw_time / robust_time - 1.0, 4)
        if slowdown is not None:
            out["slowdown"] = round(slowdown, 4)
        if self.device.type == "cuda":
            self._note_gpu()
            out["other_gpu_processes"] = None if self._gpu_others is None else sorted(self._gpu_others)
        out.update(assess(out))
        return out

