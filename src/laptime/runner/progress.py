"""Live progress displays (rich), updated outside the timed region.

* :class:`RichTrialProgress` — one trial: submission time against the budget, the step, and the
  last validation metric against the target. Updates are throttled to a few per second, so the
  display costs next to nothing per step.
* :class:`BenchProgress` — a whole benchmark: trials done / total, elapsed time and an estimate
  of the time left, with the current trial's line below it.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from laptime.records import EvalRecord


def _new_progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}[/bold]"),
        BarColumn(bar_width=30),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=False,
        auto_refresh=False,
    )


def _fmt_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"


class RichTrialProgress:
    """Progress of one trial; owns a rich display, or adds a line to a shared one."""

    def __init__(self, console: Console | None = None, refresh_sec: float = 0.2, label: str = "",
                 shared: Progress | None = None):
        self.console = console or Console(stderr=True)
        self.refresh_sec = refresh_sec
        self.label = label
        self._shared = shared
        self._progress: Progress | None = None
        self._task = None
        self._next_refresh = 0.0
        self._metric_text = "no eval yet"
        self._step = 0
        self._sub_time = 0.0
        self._budget_steps: int | None = None  # step-budget mode: the bar counts steps

    def start(self, workload, algorithm, budget_sec: float) -> None:
        target = workload.target
        arrow = "≥" if target.direction == "max" else "≤"
        self._metric_name = target.metric
        self._target_text = f"target {arrow} {target.validation:g}"
        self._budget = budget_sec
        if self._shared is not None:
            self._progress = self._shared
        else:
            self._progress = _new_progress(self.console)
            self._progress.start()
        title = self.label or f"{workload.spec.key} · {algorithm.name}"
        self._task = self._progress.add_task(title, total=budget_sec, info=self._info())
        self._progress.refresh()

    def set_step_budget(self, steps: int) -> None:
        """Step-budget mode: the bar shows steps against ``steps`` instead of seconds."""
        self._budget_steps = int(steps)
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, total=self._budget_steps, info=self._info())

    def _info(self) -> str:
        if self._budget_steps is not None:
            return (f"step {self._step}/{self._budget_steps}  {self._sub_time:6.1f} s  "
                    f"{self._metric_text} ({self._target_text})")
        return (f"{self._sub_time:6.1f}/{self._budget:.0f} s  step {self._step}  "
                f"{self._metric_text} ({self._target_text})")

    def _completed(self, step: int, submission_time: float) -> float:
        return min(step, self._budget_steps) if self._budget_steps is not None else min(submission_time, self._budget)

    def step(self, global_step: int, submission_time: float) -> None:
        now = time.monotonic()
        if now < self._next_refresh or self._progress is None:
            return
        self._next_refresh = now + self.refresh_sec
        self._step, self._sub_time = global_step, submission_time
        self._progress.update(self._task, completed=self._completed(global_step, submission_time), info=self._info())
        self._progress.refresh()

    def evaluated(self, record: EvalRecord, reached: bool) -> None:
        if self._progress is None:
            return
        value = record.metrics.get(f"validation/{self._metric_name}", float("nan"))
        self._metric_text = f"val {self._metric_name} {value:.4f}" + (" ✓" if reached else "")
        self._step, self._sub_time = record.step, record.submission_time
        self._progress.update(self._task, completed=self._completed(record.step, record.submission_time),
                              info=self._info())
        self._progress.refresh()

    def finish(self, result) -> None:
        if self._progress is None:
            return
        if self._shared is not None:
            self._progress.remove_task(self._task)
            self._progress.refresh()
        else:
            self._progress.refresh()
            self._progress.stop()
        self._progress = None


class BenchProgress:
    """Whole-benchmark progress; use as a context manager around the executor's ``run``."""

    def __init__(self, total: int, console: Console | None = None, run_id: int | None = None):
        self.console = console or Console(stderr=True)
        self.total = total
        self.run_id = run_id
        self.done = 0
        self.reused = 0
        self._fresh_wall: list[float] = []
        self._progress = _new_progress(self.console)
        self._task = None
        self._start = time.monotonic()

    def __enter__(self) -> "BenchProgress":
        self._start = time.monotonic()
        self._progress.start()
        self._task = self._progress.add_task("benchmark", total=self.total, info=self._info())
        self._progress.refresh()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.update(self._task, info=self._info())
        self._progress.refresh()
        self._progress.stop()

    def _info(self) -> str:
        elapsed = time.monotonic() - self._start
        text = f"{self.done}/{self.total} trials"
        if self.reused:
            text += f" ({self.reused} reused)"
        text += f"  elapsed {_fmt_duration(elapsed)}"
        remaining = self.total - self.done
        if remaining and self._fresh_wall:
            mean = sum(self._fresh_wall) / len(self._fresh_wall)
            text += f"  ~{_fmt_duration(mean * remaining)} left"
        elif remaining:
            text += "  estimating time left…"
        return text

    def trial_progress(self) -> RichTrialProgress:
        """A per-trial display that adds its line under the benchmark's."""
        return RichTrialProgress(console=self.console, shared=self._progress)

    def on_result(self, plan, record) -> None:
        self.done += 1
        if self.run_id is not None and record.run_id != self.run_id:
            self.reused += 1
        else:
            self._fresh_wall.append(record.wall_time)
        self._progress.update(self._task, completed=self.done, info=self._info())
        self._progress.refresh()
