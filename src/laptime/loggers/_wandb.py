"""Weights & Biases runs (``laptime[wandb]``).

One run per trial in the project ``--log wandb:PROJECT`` (default ``$WANDB_PROJECT`` or ``laptime``),
grouped by the laptime run (one ``laptime bench``), with the hyperparameters and the trial's identity
as its config. Every eval is logged at its step with ``time/submission_time`` beside the metrics
(choose it as the x axis to plot against submission time); the outcome and final times go to the
run's summary. ``WANDB_MODE=offline`` keeps the runs on disk (``$WANDB_DIR``/wandb) for a later
``wandb sync``. W&B's console capture and system-metrics sampling are switched off: its service
process should do as little as possible beside a timed trial.
"""

from __future__ import annotations

import os
from typing import Any

from laptime.loggers import LoggerSpec, TrialContext, eval_values, final_values, missing_package, plain


def project(spec: LoggerSpec) -> str:
    return spec.target or os.environ.get("WANDB_PROJECT") or "laptime"


def check(spec: LoggerSpec) -> None:
    try:
        import wandb  # noqa: F401
    except ImportError as exc:
        raise missing_package("wandb", exc) from None


def _settings(wandb):
    """Quiet settings: no console capture, no system metrics; whichever this wandb version knows."""
    for kwargs in ({"console": "off", "silent": True, "x_disable_stats": True},
                   {"console": "off", "silent": True},
                   {"console": "off"}):
        try:
            return wandb.Settings(**kwargs)
        except Exception:  # noqa: BLE001 - an older or newer wandb without one of them
            continue
    return None


class TrialLogger:
    def __init__(self, spec: LoggerSpec, context: TrialContext):
        import wandb

        config = {"hyperparameters": {k: plain(v) for k, v in context.hyperparameters.items()},
                  **{k: plain(v) for k, v in context.identity().items()}}
        group = f"laptime run {context.run_id}" if context.run_id is not None else None
        self.run = wandb.init(project=project(spec), name=context.name, group=group, job_type=context.workload,
                              config=config, tags=[context.algorithm, context.workload], settings=_settings(wandb))
        self.run.define_metric("time/submission_time")

    def evaluated(self, record: Any, reached: bool) -> None:
        self.run.log({**eval_values(record), "target_reached": 1.0 if reached else 0.0}, step=int(record.step))

    def finish(self, result: Any) -> None:
        outcome = getattr(result.outcome, "value", str(result.outcome))
        self.run.summary.update({"outcome": outcome, **{f"final/{k}": v for k, v in final_values(result).items()}})

    def close(self, record: Any, status: str) -> None:
        if record is not None and getattr(record, "trial_id", None) is not None:
            self.run.summary["trial_id"] = record.trial_id
        self.run.finish(exit_code={"finished": 0, "failed": 1}.get(status, 255))
