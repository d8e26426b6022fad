"""The robust time of a trial: a time-to-target that contention does not inflate.

AlgoPerf's submission time is wall-clock time on dedicated hardware. On a shared machine it
measures the machine as much as the algorithm: beside two busy processes a 2-core VM ran the same
MNIST-1D trial 2.7× slower, and the slowdown differs from trial to trial. laptime keeps the raw
submission time and records, beside it, an estimate of what it would have been on the machine
alone, in two stages:

1. **Work, not waiting.** On the CPU the timed regions are also measured in *CPU time* of the
   process (all its threads). Time the kernel gives to other processes is not counted, so
   time-sharing — the bulk of the slowdown — disappears. On CUDA the work clock is the same
   synchronised wall clock as the submission time.
2. **In units of a reference pass.** What remains (cache and memory contention, a busy host,
   frequency changes) slows *all* work on the machine alike. Between windows of the trial's timed
   work, outside the clock, the meter runs a *speed probe*: a forward and backward pass of a
   throwaway copy of the workload's model on a fixed batch, the same for every algorithm. Each
   window's cost is divided by the probe's cost around it (the mean of the probes before and
   after), which gives the window's work in *reference passes*; the trial's work is their sum. The
   robust time is that work times the *reference cost*: a low quantile of the probe's cost over
   the trial, i.e. the speed of the machine at its least disturbed. Under sustained load even the
   fastest probes run slower, so a trial is converted at the lowest reference cost the results
   store has seen for its workload on this hardware when that is lower than its own
   (``TrialOptions.reference_floor``, passed by ``execute_plan``), and scoring converts every trial
   of a workload at one cost: the verdict compares work.

Where it is exact, and where an estimate: a window's work is exact (the algorithm's own timed
work on this trial, steps of any cost — periodic preconditioner updates, a second forward pass for
SAM, exploration — included as they happened) when the machine's slowdown hits the algorithm's
work as it hits the probe's forward and backward pass. Work of another kind (large eigen
decompositions, memory-bound updates) may suffer more or less from contention than the probe; the
conversion is then an estimate. Windows are long enough that the probes cost at most
``max_overhead`` (5 %) of the trial's timed work, in wall time outside the clock; the probe runs
with the trial's RNG states saved and restored, so it never changes a trial's numbers.

How well it holds under load, measured: ``benchmarks/contention.py`` and docs/benchmarks.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


class CpuClock:
    """CPU time of this process (every thread), in seconds. Not advanced while other processes run."""

    def now(self) -> float:
        return time.process_time()


class WorkMeter:
    """Accumulates a trial's timed work and converts it to robust seconds (see the module docstring).

    ``probe()`` runs one reference pass and returns its cost in seconds *of the work clock*
    (the caller measures it, so a test can give it a fake clock). Call :meth:`start` once before
    the trial's clock starts, :meth:`add` with the work-clock cost of every timed region,
    :meth:`close` whenever a window should end (:attr:`due`, and before every eval), all outside
    the timed region.
    """

    def __init__(self, probe: Callable[[], float], *, max_overhead: float = 0.05, min_window: float = 0.02,
                 initial_probes: int = 5, reference_quantile: float = 0.1):
        if not 0 < max_overhead < 1:
            raise ValueError("max_overhead must be in (0, 1)")
        if initial_probes < 1:
            raise ValueError("initial_probes must be >= 1")
        self._probe = probe
        self.max_overhead = float(max_overhead)
        self.min_window = float(min_window)
        self.initial_probes = int(initial_probes)
        self.reference_quantile = float(reference_quantile)
        self.probes: list[float] = []
        self.work = 0.0  # reference passes in closed windows
        self.cost = 0.0  # work-clock seconds in all windows (closed or not)
        self.window_cost = 0.0
        self.windows = 0
        self._last_probe: float | None = None
        self._target = self.min_window

    def _run_probe(self) -> float:
        cost = float(self._probe())
        if not cost > 0:
            cost = 1e-9  # a clock too coarse to see the probe: count it as (almost) free
        self.probes.append(cost)
        self._target = max(self.min_window, float(np.median(self.probes)) / self.max_overhead)
        return cost

    def start(self) -> None:
        for _ in range(self.initial_probes):
            self._last_probe = self._run_probe()

    @property
    def window_target(self) -> float:
        """Work-clock seconds a window should last so the probes cost ``max_overhead`` of the work."""
        return self._target

    def add(self, cost: float) -> None:
        cost = max(0.0, float(cost))
        self.window_cost += cost
        self.cost += cost

    @property
    def due(self) -> bool:
        return self.window_cost >= self.window_target

    def close(self) -> None:
        """End the current window: probe, and add its work in reference passes."""
        if self._last_probe is None:
            self.start()
        if self.window_cost <= 0:
            return
        before = self._last_probe
        after = self._run_probe()
        self.work += self.window_cost / ((before + after) / 2)  # type: ignore[operator]
        self.window_cost = 0.0
        self.windows += 1
        self._last_probe = after

    @property
    def reference(self) -> float | None:
        """Seconds of one reference pass at the machine's least disturbed (a low quantile)."""
        if not self.probes:
            return None
        return float(np.quantile(self.probes, self.reference_quantile))

    @property
    def slowdown(self) -> float | None:
        """Median probe cost over the reference: how much slower than its best the machine ran."""
        ref = self.reference
        return None if not ref else float(np.median(self.probes)) / ref

    def estimate(self) -> float | None:
        """Robust seconds so far, the open window included at the last probe's speed."""
        ref = self.reference
        if ref is None or self._last_probe is None:
            return None
        return (self.work + self.window_cost / self._last_probe) * ref

    # ---- checkpoints (laptime.runner.checkpoint) -----------------------------------------------
    def state_dict(self) -> dict[str, float | int | list[float]]:
        """The meter's totals, for a trial's checkpoint. Call :meth:`close` first: a checkpoint holds
        closed windows only, so its work was measured against probes of the process that did it."""
        if self.window_cost > 0:
            raise RuntimeError("close the open window before taking the meter's state")
        return {"probes": list(self.probes), "work": self.work, "cost": self.cost, "windows": self.windows}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a checkpoint's totals in a new process, after :meth:`start`: the new
        process's initial probes are kept (appended to the saved ones) and the first of its windows
        is measured against them, since the machine may run at another speed now."""
        if self._last_probe is None:
            self.start()
        self.probes = [float(p) for p in state["probes"]] + self.probes
        self.work = float(state["work"])
        self.cost = float(state["cost"])
        self.windows = int(state["windows"])
        self.window_cost = 0.0
        self._target = max(self.min_window, float(np.median(self.probes)) / self.max_overhead)

    def seconds(self, work: float | None) -> float | None:
        """``work`` reference passes in robust seconds."""
        ref = self.reference
        return None if work is None or ref is None else work * ref
