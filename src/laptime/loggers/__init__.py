"""Experiment trackers fed from the trial progress hook: TensorBoard, MLflow, Weights & Biases.

``laptime run`` and ``laptime bench`` take ``--log KIND[:TARGET]`` (repeatable)::

    --log tensorboard:DIR      # event files under DIR/<workload>/<algorithm>/<trial> (default DIR: runs)
    --log mlflow:URI           # a tracking URI (http://…, sqlite:///…), an SQLite .db file or a folder
                               # (default: MLflow's own, $MLFLOW_TRACKING_URI); experiment
                               # $MLFLOW_EXPERIMENT_NAME or "laptime"
    --log wandb[:PROJECT]      # Weights & Biases (default project: $WANDB_PROJECT or "laptime");
                               # WANDB_MODE=offline writes the runs locally for a later `wandb sync`

Every trial that runs becomes one run of each tracker: its hyperparameters and identity (workload,
algorithm, seed, study, trial, budget mode, device, threads, plan key), every eval's metrics against
the step (with the submission time, the wall time and the work so far as metrics of their own), and
at the end the outcome and the final times (time and steps to target, raw and robust submission
time). Trials a benchmark reuses from the store did not run and are not logged again.

How the pieces fit
------------------
* A :class:`LoggerSpec` (``kind``, ``target``) is a small frozen dataclass: it pickles, so the
  :class:`~laptime.execution.LocalParallelExecutor` hands it to its worker processes, where the
  trackers run beside the trials.
* :func:`check_loggers` runs before anything else: it imports the tracker's package (a missing
  extra is one :class:`LoggerError` naming the ``pip install "laptime[...]"`` to run) and prepares
  what all trials share (TensorBoard's folder, MLflow's experiment), so that parallel workers do
  not race to create them.
* :func:`~laptime.execution.execute_plan` opens a :class:`TrialLoggers` per trial with the plan's
  :class:`TrialContext`; it is the trial's progress hook (wrapping the live display, if any), so the
  runner calls it outside the timed region. After the trial is stored, ``close(record)`` adds the
  trial id and ends the runs.
* A tracker that fails while a trial runs (a full disk, a tracking server gone) is switched off for
  that trial with a warning; the trial goes on and is stored as usual.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any
from laptime.errors import LaptimeError

__all__ = [
    "KINDS",
    "LoggerError",
    "LoggerSpec",
    "LoggerWarning",
    "TrialContext",
    "TrialLoggers",
    "check_loggers",
    "final_values",
    "open_trial_loggers",
    "parse_loggers",
]

#: kind -> (the module to import, the extra that installs it, what TARGET means)
KINDS: dict[str, tuple[str, str, str]] = {
    "tensorboard": ("torch.utils.tensorboard", "tensorboard", "a folder (default: runs)"),
    "mlflow": ("mlflow", "mlflow", "a tracking URI, .db file or folder (default: MLflow's own)"),
    "wandb": ("wandb", "wandb", "a project (default: $WANDB_PROJECT or laptime)"),
}


class LoggerError(LaptimeError, ValueError):
    """A ``--log`` value that cannot be used (unknown kind, missing package, unusable target)."""


class LoggerWarning(UserWarning):
    """A tracker failed during a trial and was switched off for it; the trial went on."""


@dataclasses.dataclass(frozen=True)
class LoggerSpec:
    """One tracker: ``kind`` (tensorboard, mlflow, wandb) and its ``target`` (see :data:`KINDS`)."""

    kind: str
    target: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise LoggerError(f"unknown logger {self.kind!r} in --log: use tensorboard[:DIR], mlflow[:URI] "
                              "or wandb[:PROJECT]")

    @classmethod
    def parse(cls, text: str) -> "LoggerSpec":
        """``KIND`` or ``KIND:TARGET`` (split at the first colon, so URIs keep theirs)."""
        kind, sep, target = str(text).strip().partition(":")
        kind = kind.strip().lower()
        if not kind:
            raise LoggerError(f"--log {text!r}: expected KIND[:TARGET], e.g. tensorboard:runs")
        if sep and not target.strip():
            raise LoggerError(f"--log {text!r}: nothing after the colon (leave it out for the default)")
        return cls(kind, target.strip() or None)

    def __str__(self) -> str:
        return self.kind if self.target is None else f"{self.kind}:{self.target}"

    @property
    def experiment(self) -> str:
        """MLflow's experiment name: ``$MLFLOW_EXPERIMENT_NAME`` or ``laptime``."""
        return os.environ.get("MLFLOW_EXPERIMENT_NAME") or "laptime"

    def check(self) -> None:
        """Import the tracker's package and prepare what every trial shares; :class:`LoggerError`
        in one line when that is not possible."""
        _backend(self.kind).check(self)


def parse_loggers(texts: Sequence[str] | None) -> tuple[LoggerSpec, ...]:
    """``--log`` values -> specs (duplicates kept once, in order)."""
    specs: list[LoggerSpec] = []
    for text in texts or ():
        spec = text if isinstance(text, LoggerSpec) else LoggerSpec.parse(text)
        if spec not in specs:
            specs.append(spec)
    return tuple(specs)


def check_loggers(specs: Sequence[LoggerSpec]) -> None:
    """:meth:`LoggerSpec.check` each spec (before anything runs)."""
    for spec in specs:
        spec.check()


def _backend(kind: str):
    if kind == "tensorboard":
        from laptime.loggers import _tensorboard as backend
    elif kind == "mlflow":
        from laptime.loggers import _mlflow as backend
    elif kind == "wandb":
        from laptime.loggers import _wandb as backend
    else:  # pragma: no cover - LoggerSpec refuses other kinds
        raise LoggerError(f"unknown logger {kind!r}")
    return backend


def missing_package(kind: str, exc: BaseException) -> LoggerError:
    """The one-line error for a tracker whose package is not installed."""
    module, extra, _ = KINDS[kind]
    name = getattr(exc, "name", None) or module
    return LoggerError(f"--log {kind} needs the {name} package, which is not installed: "
                       f'pip install "laptime[{extra}]"')


# --------------------------------------------------------------------------------------------
# What a tracker is told


_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]+")


def slug(text: str) -> str:
    """``text`` made safe for a file name (``mnist1d/cnn@cpu`` -> ``mnist1d-cnn-cpu``)."""
    return _UNSAFE.sub("-", str(text)).strip("-.") or "x"


@dataclasses.dataclass(frozen=True)
class TrialContext:
    """What the trackers know of a trial before it runs."""

    workload: str  # the key, e.g. mnist1d/base@cpu
    algorithm: str
    hyperparameters: Mapping[str, Any]
    seed: int
    device: str
    budget_mode: str
    budget_factor: float = 1.0
    ruleset: str | None = None
    study: int | None = None
    trial_index: int | None = None
    batch_size: int | None = None
    threads: int | None = None
    plan_key: str | None = None
    run_id: int | None = None  # the store's run (one `laptime run` / `laptime bench`)
    target: str | None = None  # e.g. "validation/accuracy >= 0.9"

    @property
    def name(self) -> str:
        """A run name: ``mnist1d/base@cpu · nadamw · study 0 trial 1 · seed 7``."""
        parts = [self.workload, self.algorithm]
        if self.study is not None or self.trial_index is not None:
            parts.append(f"study {self.study if self.study is not None else 0} "
                         f"trial {self.trial_index if self.trial_index is not None else 0}")
        parts.append(f"seed {self.seed}")
        return " · ".join(parts)

    @property
    def path_parts(self) -> tuple[str, str, str]:
        """Folder names for file-based trackers: workload, algorithm, trial."""
        trial = f"seed{self.seed}"
        if self.study is not None or self.trial_index is not None:
            trial = f"study{self.study or 0}-trial{self.trial_index or 0}-" + trial
        return slug(self.workload), slug(self.algorithm), trial

    def identity(self) -> dict[str, Any]:
        """Everything but the hyperparameters, ``None`` left out."""
        out = {"workload": self.workload, "algorithm": self.algorithm, "seed": self.seed, "device": self.device,
               "budget_mode": self.budget_mode, "budget_factor": self.budget_factor, "ruleset": self.ruleset,
               "study": self.study, "trial": self.trial_index, "batch_size": self.batch_size,
               "threads": self.threads, "plan_key": self.plan_key, "laptime_run": self.run_id,
               "target": self.target}
        return {k: v for k, v in out.items() if v is not None}


def plain(value: Any) -> Any:
    """A hyperparameter value as a number, bool or string (lists, dicts: compact JSON)."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        try:
            return item()
        except (TypeError, ValueError):
            pass
    import json

    return json.dumps(value, sort_keys=True, default=str)


def eval_values(record: Any) -> dict[str, float]:
    """One eval's numbers: every metric, plus ``time/submission_time``, ``time/wall_time``,
    ``time/eval_duration`` and ``time/work`` (reference passes, when measured)."""
    out = {k: float(v) for k, v in record.metrics.items() if isinstance(v, (int, float))}
    out["time/submission_time"] = float(record.submission_time)
    out["time/wall_time"] = float(record.wall_time)
    out["time/eval_duration"] = float(record.eval_duration)
    if record.work is not None:
        out["time/work"] = float(record.work)
    return out


#: The final numbers of a trial, in this order.
FINAL_FIELDS = ("reached", "time_to_target", "robust_time_to_target", "steps_to_target", "submission_time",
                "robust_submission_time", "steps", "wall_time", "budget_sec", "budget_steps")


def final_values(result: Any) -> dict[str, float]:
    """A finished trial's numbers (``reached`` is 1 or 0); values it does not have are left out."""
    outcome = getattr(result.outcome, "value", result.outcome)
    out: dict[str, float] = {"reached": 1.0 if outcome == "reached" else 0.0}
    for name in FINAL_FIELDS[1:]:
        value = getattr(result, name, None)
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            out[name] = float(value)
    return out


# --------------------------------------------------------------------------------------------
# The progress hook that feeds the trackers


class TrialLoggers:
    """The trial's progress hook: forwards to ``inner`` (a live display, or ``None``) and feeds
    every tracker. A tracker that raises is warned about once and switched off for this trial."""

    def __init__(self, loggers: Sequence[tuple[LoggerSpec, Any]], inner: Any = None):
        self._loggers = list(loggers)
        self.inner = inner
        self._result = None

    @property
    def loggers(self) -> list[Any]:
        return [logger for _, logger in self._loggers]

    def _each(self, method: str, *args: Any) -> None:
        for entry in list(self._loggers):
            spec, logger = entry
            try:
                getattr(logger, method)(*args)
            except Exception as exc:  # noqa: BLE001 - a tracker must never break a trial
                self._loggers.remove(entry)
                warnings.warn(f"--log {spec}: {type(exc).__name__}: {exc}; switched off for this trial",
                              LoggerWarning, stacklevel=2)
                try:
                    logger.close(None, "failed")
                except Exception:  # noqa: BLE001
                    pass

    # ---- TrialProgress ----
    def start(self, workload: Any, algorithm: Any, budget_sec: float) -> None:
        if self.inner is not None:
            self.inner.start(workload, algorithm, budget_sec)

    def set_step_budget(self, steps: int) -> None:
        if self.inner is not None and hasattr(self.inner, "set_step_budget"):
            self.inner.set_step_budget(steps)

    def step(self, global_step: int, submission_time: float) -> None:
        if self.inner is not None:
            self.inner.step(global_step, submission_time)

    def evaluated(self, record: Any, reached: bool) -> None:
        if self.inner is not None:
            self.inner.evaluated(record, reached)
        self._each("evaluated", record, reached)

    def finish(self, result: Any) -> None:
        if self.inner is not None:
            self.inner.finish(result)
        self._result = result
        self._each("finish", result)

    # ---- after the trial ----
    def close(self, record: Any = None) -> None:
        """The trial is stored (``record`` has its id): end every tracker's run."""
        outcome = getattr(getattr(record, "outcome", None), "value", None)
        self._each("close", record, "failed" if outcome == "failed" else "finished")
        self._loggers = []

    def abort(self) -> None:
        """The trial was interrupted or could not be stored: end the runs as killed."""
        self._each("close", None, "killed")
        self._loggers = []


def open_trial_loggers(specs: Sequence[LoggerSpec], context: TrialContext, inner: Any = None) -> TrialLoggers:
    """Open one run per tracker for the trial (before its clock starts). A tracker that cannot
    open is warned about and left out; the trial runs anyway."""
    opened: list[tuple[LoggerSpec, Any]] = []
    for spec in specs:
        try:
            opened.append((spec, _backend(spec.kind).TrialLogger(spec, context)))
        except Exception as exc:  # noqa: BLE001 - a tracker must never stop a trial
            warnings.warn(f"--log {spec}: could not start a run for {context.name}: {type(exc).__name__}: {exc}",
                          LoggerWarning, stacklevel=2)
    return TrialLoggers(opened, inner)
