"""Live progress displays (rich), updated outside the timed region.

* :class:`RichTrialProgress` — one trial: submission time against the budget, the step, and the
  last validation metric against the target. Updates are throttled to a few per second, so the
  display costs next to nothing per step.
* :class:`BenchProgress` — a whole benchmark: trials done / total, elapsed time and an estimate
  of the time left, with the current trial's line below it.

A live display redraws itself on a terminal only; in a log file or a pipe rich would print nothing
until the end. There :class:`PlainTrialProgress` and :class:`PlainBenchProgress` print plain lines
instead, rate-limited: a trial's start, its evals at most every ``min_interval`` seconds (the
first that meets the target at once), a line every ``min_interval`` seconds between rare evals, and
its end; a benchmark's line per finished trial (trials reused from the store are counted into one
line) with the time left. :func:`trial_progress` and :func:`bench_progress` pick the display for
the stream (stderr).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import IO, Any

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


# ------------------------------------------------------------------------------------- plain lines


def _is_terminal(stream: IO[str] | None = None) -> bool:
    """Whether ``stream`` (default stderr) is a terminal a live display can redraw: ``TTY_COMPATIBLE=1``/``0``
    decides (as for rich), else ``isatty()``. ``FORCE_COLOR`` (colour in CI logs) does not make a log
    file a terminal."""
    forced = os.environ.get("TTY_COMPATIBLE", "")
    if forced in ("0", "1"):
        return forced == "1"
    isatty = getattr(stream or sys.stderr, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (ValueError, OSError):  # a closed stream
        return False


def trial_progress(stream: IO[str] | None = None, **plain: Any):
    """One trial's display for ``stream`` (default stderr): rich on a terminal, plain lines otherwise."""
    if _is_terminal(stream):
        return RichTrialProgress(console=Console(file=stream) if stream is not None else None)
    return PlainTrialProgress(stream, **plain)


def bench_progress(total: int, run_id: int | None = None, stream: IO[str] | None = None):
    """A benchmark's display for ``stream`` (default stderr): rich on a terminal, plain lines otherwise."""
    if _is_terminal(stream):
        return BenchProgress(total, console=Console(file=stream) if stream is not None else None, run_id=run_id)
    return PlainBenchProgress(total, stream=stream, run_id=run_id)


def _describe_result(outcome: str, steps: int, submission_time: float, steps_to_target: int | None,
                     time_to_target: float | None) -> str:
    if outcome == "reached" and steps_to_target is not None:
        return (f"reached the target at step {steps_to_target}"
                + (f" ({time_to_target:.2f} s)" if time_to_target is not None else "")
                + f"; {steps} steps, {submission_time:.2f} s submission time")
    return f"{outcome} after {steps} steps, {submission_time:.2f} s submission time"


class PlainTrialProgress:
    """Progress of one trial as plain lines on ``stream`` (default stderr), for logs and pipes.

    ``min_interval`` seconds at least between two lines, except the trial's start, the first eval
    that meets the target, and its end (``start_line``/``finish_line`` turn those two off, as a
    benchmark does, which prints its own line per trial). ``clock`` is for tests.
    """

    def __init__(self, stream: IO[str] | None = None, min_interval: float = 5.0, label: str = "",
                 start_line: bool = True, finish_line: bool = True, clock: Callable[[], float] = time.monotonic):
        self.stream = stream
        self.min_interval = float(min_interval)
        self.label = label
        self.start_line = start_line
        self.finish_line = finish_line
        self.clock = clock
        self._last_line = 0.0
        self._budget_steps: int | None = None
        self._budget = 0.0
        self._eval_text = "no eval yet"
        self._reached = False

    def _print(self, text: str) -> None:
        stream = self.stream or sys.stderr
        stream.write(f"{self.label}: {text}\n")
        stream.flush()
        self._last_line = self.clock()

    def _due(self) -> bool:
        return self.clock() - self._last_line >= self.min_interval

    def _where(self, step: int, submission_time: float) -> str:
        if self._budget_steps is not None:
            return f"step {step}/{self._budget_steps}, {submission_time:.1f} s"
        return f"{submission_time:.1f}/{self._budget:.0f} s, step {step}"

    def start(self, workload, algorithm, budget_sec: float) -> None:
        target = workload.target
        arrow = "≥" if target.direction == "max" else "≤"
        self._metric = target.metric
        self._target_text = f"target {target.metric} {arrow} {target.validation:g}"
        self._budget = budget_sec
        self.label = self.label or f"{workload.spec.key} · {algorithm.name}"
        self._last_line = self.clock()
        self._start_pending = self.start_line  # said with the budget, once its mode is known

    def _say_start(self) -> None:
        if getattr(self, "_start_pending", False):
            self._start_pending = False
            budget = f"{self._budget_steps} steps" if self._budget_steps is not None else f"{self._budget:g} s"
            self._print(f"started ({self._target_text}, budget {budget})")

    def set_step_budget(self, steps: int) -> None:
        self._budget_steps = int(steps)
        self._say_start()

    def step(self, global_step: int, submission_time: float) -> None:
        self._say_start()
        if self._due():
            self._print(f"{self._where(global_step, submission_time)}; last eval: {self._eval_text}")

    def evaluated(self, record: EvalRecord, reached: bool) -> None:
        self._say_start()
        value = record.metrics.get(f"validation/{self._metric}", float("nan"))
        self._eval_text = f"val {self._metric} {value:.4f}" + (" (target met)" if reached else "")
        first_hit = reached and not self._reached
        self._reached = self._reached or reached
        if first_hit or self._due():
            self._print(f"eval at {self._where(record.step, record.submission_time)}: {self._eval_text} "
                        f"({self._target_text})")

    def finish(self, result) -> None:
        self._say_start()
        if self.finish_line:
            outcome = getattr(result.outcome, "value", str(result.outcome))
            last = f"; last eval: {self._eval_text}" if self._eval_text != "no eval yet" else ""
            self._print(_describe_result(outcome, result.steps, result.submission_time, result.steps_to_target,
                                         result.time_to_target) + last)


class PlainBenchProgress:
    """A benchmark's progress as plain lines on ``stream`` (default stderr): one line per finished
    trial, with the count, elapsed time and time left; trials reused from the store are counted
    into one line (at most one per ``min_interval`` seconds). Each trial also reports, through
    :meth:`trial_progress`, a line every ``trial_interval`` seconds while it runs (long trials)."""

    def __init__(self, total: int, stream: IO[str] | None = None, run_id: int | None = None,
                 min_interval: float = 5.0, trial_interval: float = 60.0,
                 clock: Callable[[], float] = time.monotonic):
        self.total = total
        self.stream = stream
        self.run_id = run_id
        self.min_interval = min_interval
        self.trial_interval = trial_interval
        self.clock = clock
        self.done = 0
        self.reused = 0
        self._unreported = 0  # reused trials not yet in a line
        self._fresh_wall: list[float] = []
        self._start = clock()
        self._last_line = -float("inf")

    def _print(self, text: str) -> None:
        stream = self.stream or sys.stderr
        stream.write(text + "\n")
        stream.flush()
        self._last_line = self.clock()

    def _status(self) -> str:
        text = f"elapsed {_fmt_duration(self.clock() - self._start)}"
        remaining = self.total - self.done
        if remaining and self._fresh_wall:
            text += f", ~{_fmt_duration(sum(self._fresh_wall) / len(self._fresh_wall) * remaining)} left"
        return text

    def _flush_reused(self) -> None:
        if self._unreported:
            self._print(f"[{self.done}/{self.total}] reused {self._unreported} trial(s) already stored; {self._status()}")
            self._unreported = 0

    def __enter__(self) -> "PlainBenchProgress":
        self._start = self.clock()
        self._print(f"benchmark: {self.total} trial(s)")
        return self

    def __exit__(self, *exc) -> None:
        self._flush_reused()
        if exc[0] is None:
            self._print(f"benchmark: {self.done}/{self.total} trials done"
                        + (f" ({self.reused} reused)" if self.reused else "") + f" in {_fmt_duration(self.clock() - self._start)}")

    def trial_progress(self) -> PlainTrialProgress:
        return PlainTrialProgress(self.stream, min_interval=self.trial_interval, start_line=False,
                                  finish_line=False, clock=self.clock)

    def on_result(self, plan, record) -> None:
        if self.run_id is not None and record.run_id != self.run_id:
            self.done += 1
            self.reused += 1
            self._unreported += 1
            if self.done == self.total or self.clock() - self._last_line >= self.min_interval:
                self._flush_reused()
            return
        self._flush_reused()
        self.done += 1
        self._fresh_wall.append(record.wall_time)
        where = f"{record.workload}/{record.variant}@{record.config} · {record.algorithm}"
        if record.study is not None or record.trial_index is not None:
            where += f" (study {record.study or 0}, trial {record.trial_index or 0})"
        outcome = getattr(record.outcome, "value", str(record.outcome))
        self._print(f"[{self.done}/{self.total}] {where}: "
                    + _describe_result(outcome, record.steps, record.submission_time, record.steps_to_target,
                                       record.time_to_target) + f"; {self._status()}")
