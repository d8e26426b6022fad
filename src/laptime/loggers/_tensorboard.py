"""TensorBoard event files, written with torch's own ``SummaryWriter`` (``laptime[tensorboard]``).

One folder per trial: ``DIR/<workload>/<algorithm>/<study-trial-seed>`` (a suffix ``-2``, ``-3`` when
that folder exists, so a rerun never appends to an older trial's run). Scalars are logged against
the step; each event's wall time is the trial's start plus its *submission time*, so TensorBoard's
"Relative" horizontal axis reads submission seconds. ``time/submission_time`` and ``time/robust_time``
are scalars too. At the end: ``final/*`` scalars and the hparams plugin's record (hyperparameters,
identity, the final numbers as its metrics), and the outcome as text.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from laptime.loggers import LoggerError, LoggerSpec, TrialContext, eval_values, final_values, missing_package, plain

DEFAULT_DIR = "runs"


def _root(spec: LoggerSpec) -> Path:
    return Path(spec.target or DEFAULT_DIR).expanduser()


def check(spec: LoggerSpec) -> None:
    try:
        import torch.utils.tensorboard  # noqa: F401 - needs the tensorboard package
    except ImportError as exc:
        raise missing_package("tensorboard", exc) from None
    root = _root(spec)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LoggerError(f"--log {spec}: cannot create the folder {root}: {exc.strerror or exc}") from None
    if not os.access(root, os.W_OK):
        raise LoggerError(f"--log {spec}: the folder {root} is not writable")


def _claim(path: Path) -> Path:
    """Create ``path`` (or ``path-2``, ``path-3``, ...) and return it; atomic between processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 1
    while True:
        candidate = path if n == 1 else path.with_name(f"{path.name}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            n += 1


class TrialLogger:
    def __init__(self, spec: LoggerSpec, context: TrialContext):
        from torch.utils.tensorboard import SummaryWriter

        self.context = context
        self.logdir = _claim(_root(spec).joinpath(*context.path_parts))
        self.writer = SummaryWriter(log_dir=str(self.logdir))
        self.t0 = time.time()
        rows = [("hyperparameters", ", ".join(f"{k}={plain(v)}" for k, v in sorted(context.hyperparameters.items())))]
        rows += [(k, str(v)) for k, v in context.identity().items()]
        table = "| | |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
        self.writer.add_text("trial", table, 0, walltime=self.t0)

    def evaluated(self, record: Any, reached: bool) -> None:
        walltime = self.t0 + float(record.submission_time)
        for tag, value in eval_values(record).items():
            self.writer.add_scalar(tag, value, record.step, walltime=walltime)
        self.writer.add_scalar("target_reached", 1.0 if reached else 0.0, record.step, walltime=walltime)

    def finish(self, result: Any) -> None:
        from torch.utils.tensorboard.summary import hparams

        for record in result.evals:  # known once the trial's work is converted (see runner.workmeter)
            if record.robust_time is not None:
                self.writer.add_scalar("time/robust_time", record.robust_time, record.step,
                                       walltime=self.t0 + float(record.submission_time))
        end = self.t0 + float(result.submission_time)
        finals = {f"final/{k}": v for k, v in final_values(result).items()}
        for tag, value in finals.items():
            self.writer.add_scalar(tag, value, result.steps, walltime=end)
        outcome = getattr(result.outcome, "value", result.outcome)
        self.writer.add_text("outcome", f"**{outcome}** after {result.steps} steps", result.steps, walltime=end)
        hp = {k: plain(v) for k, v in self.context.hyperparameters.items()}
        for k, v in self.context.identity().items():
            hp.setdefault(k, plain(v))
        hp["outcome"] = str(outcome)
        # the hparams plugin: one session for this run, its metrics the final/* scalars above
        for summary in hparams(hp, finals):
            self.writer.file_writer.add_summary(summary, result.steps, end)
        self.writer.flush()

    def close(self, record: Any, status: str) -> None:
        if record is not None and getattr(record, "trial_id", None) is not None:
            self.writer.add_text("stored", f"trial {record.trial_id} (run {record.run_id}), plan key {record.plan_key}",
                                 record.steps)
        self.writer.close()
