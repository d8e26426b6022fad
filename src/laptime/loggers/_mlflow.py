"""MLflow runs, written through ``MlflowClient`` (``laptime[mlflow]``).

The client is explicit (no global "active run"), so laptime's runs never mix with runs a notebook
or the algorithm itself has open. One run per trial in the experiment ``$MLFLOW_EXPERIMENT_NAME``
(default ``laptime``), created once before the trials so that parallel workers do not race to
create it: the hyperparameters are its params; workload, algorithm, seed, study, trial, budget mode,
device, plan key (and at the end outcome and trial id) its tags; every eval's metrics are logged at
the eval's step, with ``time/submission_time`` beside them (pick it as the x axis to plot against
submission time); ``final/*`` metrics hold the outcome's numbers. A trial that failed ends its run as
FAILED, an interrupted one as KILLED.

``--log mlflow:TARGET``: a tracking URI (``http://…``, ``sqlite:///…``, ``file:…``, ``databricks``),
a local ``.db``/``.sqlite`` file (an SQLite store there), or a local folder (a file store: MLflow 3
keeps those for existing data and wants ``MLFLOW_ALLOW_FILE_STORE=true``); without a target,
MLflow's own default (``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db`` in MLflow 3).
The extra installs ``mlflow-skinny`` (the client) with SQLAlchemy and Alembic for SQLite stores;
``pip install mlflow`` adds ``mlflow ui`` to browse a local store.
"""

from __future__ import annotations

import contextlib
import re
import sys
import time
from pathlib import Path
from typing import Any

from laptime.loggers import LoggerError, LoggerSpec, TrialContext, eval_values, final_values, missing_package, plain

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_STATUS = {"finished": "FINISHED", "failed": "FAILED", "killed": "KILLED"}


def tracking_uri(spec: LoggerSpec) -> str | None:
    """``spec.target`` as a tracking URI: URIs as they are, a folder as an absolute ``file:`` URI."""
    target = spec.target
    if target is None or target == "databricks" or _SCHEME.match(target):
        return target
    path = Path(target).expanduser().resolve()
    if path.suffix.lower() in (".db", ".sqlite", ".sqlite3"):
        return f"sqlite:///{path}"
    return path.as_uri()


def _client(spec: LoggerSpec):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri(spec))


def experiment_id(client, name: str) -> str:
    """The experiment's id, created if it does not exist (tolerating another process creating it)."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if getattr(experiment, "lifecycle_stage", "active") == "deleted":
            raise LoggerError(f"MLflow experiment {name!r} is deleted: restore it or set $MLFLOW_EXPERIMENT_NAME")
        return experiment.experiment_id
    try:
        return client.create_experiment(name)
    except Exception:  # noqa: BLE001 - created meanwhile by another process?
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def check(spec: LoggerSpec) -> None:
    try:
        import mlflow  # noqa: F401
        from mlflow.tracking import MlflowClient  # noqa: F401
    except ImportError as exc:
        raise missing_package("mlflow", exc) from None
    try:
        experiment_id(_client(spec), spec.experiment)
    except LoggerError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the store says, in one line
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "MLFLOW_ALLOW_FILE_STORE" in text:
            raise LoggerError(f"--log {spec}: this MLflow refuses new file stores: log to SQLite "
                              f"(--log mlflow:{spec.target or 'mlruns'}.db) or a tracking server, or set "
                              "MLFLOW_ALLOW_FILE_STORE=true") from None
        if isinstance(exc, ImportError):
            text = f"{text} (pip install \"laptime[mlflow]\" brings what SQLite stores need)"
        raise LoggerError(f"--log {spec}: cannot use the MLflow tracking store {tracking_uri(spec) or '(default)'}: "
                          f"{text}") from None


def _now_ms() -> int:
    return int(time.time() * 1000)


class TrialLogger:
    def __init__(self, spec: LoggerSpec, context: TrialContext):
        from mlflow.entities import Param

        self.client = _client(spec)
        tags = {f"laptime.{k}": str(v) for k, v in context.identity().items()}
        tags["mlflow.source.name"] = "laptime"
        run = self.client.create_run(experiment_id(self.client, spec.experiment), run_name=context.name, tags=tags)
        self.run_id = run.info.run_id
        params = [Param(str(k), str(plain(v))) for k, v in sorted(context.hyperparameters.items())]
        if params:
            self.client.log_batch(self.run_id, params=params)

    def _log(self, values: dict[str, float], step: int, timestamp: int | None = None) -> None:
        from mlflow.entities import Metric

        ts = timestamp or _now_ms()
        metrics = [Metric(key, float(value), ts, int(step)) for key, value in values.items()]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)

    def evaluated(self, record: Any, reached: bool) -> None:
        self._log({**eval_values(record), "target_reached": 1.0 if reached else 0.0}, record.step)

    def finish(self, result: Any) -> None:
        from mlflow.entities import Metric

        ts = _now_ms()
        robust = [Metric("time/robust_time", float(r.robust_time), ts, int(r.step))
                  for r in result.evals if r.robust_time is not None]
        if robust:
            self.client.log_batch(self.run_id, metrics=robust)
        self._log({f"final/{k}": v for k, v in final_values(result).items()}, result.steps, ts)
        self.client.set_tag(self.run_id, "laptime.outcome", getattr(result.outcome, "value", str(result.outcome)))

    def close(self, record: Any, status: str) -> None:
        if record is not None and getattr(record, "trial_id", None) is not None:
            self.client.set_tag(self.run_id, "laptime.trial_id", str(record.trial_id))
        # with a tracking server MLflow prints the run's URL to stdout: to stderr here, so that
        # `--json` output stays JSON
        with contextlib.redirect_stdout(sys.stderr):
            self.client.set_terminated(self.run_id, status=_STATUS.get(status, "FINISHED"))
