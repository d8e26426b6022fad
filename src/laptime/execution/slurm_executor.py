"""One Slurm job per trial, through submitit (``laptime bench --executor slurm``; ``pip install "laptime[slurm]"``).

submitit was chosen over writing sbatch scripts: it pickles the call, submits it (as a job array
when several plans are claimed at once), watches the jobs with ``sacct`` without flooding the
scheduler, returns each job's result (our :class:`~laptime.records.TrialRecord`) through its result
file, and handles Slurm's timeout/preemption signal by calling the callable's ``checkpoint`` and
requeueing the job. Its ``LocalExecutor`` runs the very same code path as subprocesses of this
machine (``--executor slurm-local``), which is how the tests run it.

Preemption and time limits (the hook)
-------------------------------------
The job's callable is a :class:`SlurmTrial`, a ``submitit.helpers.Checkpointable``. When Slurm
signals the job (``--signal USR2`` before the time limit, or a preemption), submitit calls
``SlurmTrial.checkpoint(plan, floors)`` and requeues what it returns: the same plan. The runner
checkpoints the running trial every N submission seconds (``TrialOptions.checkpoint_dir``, by
default beside the database, which the nodes must share; :mod:`laptime.runner.checkpoint`), named by
the plan key, so the requeued job resumes the trial from its last checkpoint with the same eval
history; nothing half-done is stored (the record only exists once the trial finished). A SIGTERM
that reaches the trial makes it checkpoint at the next step and stop (``TrialPreempted``); the job
then fails, its claim is released, and the plan resumes from that checkpoint when it runs again.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import submitit
from submitit.core.utils import FailedJobError

from laptime.execution.executors import EngineError
from laptime.execution.jobs import JobExecutor, TrialJob

__all__ = ["SlurmExecutor", "SlurmTrial"]


class SlurmTrial(submitit.helpers.Checkpointable):
    """The callable a Slurm job runs: one trial (a :class:`TrialJob`), its record returned."""

    def __init__(self, job: TrialJob):
        self.job = job

    def __call__(self, plan, floors=None, prune=None):
        return self.job(plan, floors, prune)

    def checkpoint(self, plan, floors=None, prune=None) -> submitit.helpers.DelayedSubmission:
        """Called by submitit when Slurm signals the job (time limit, preemption): what to requeue —
        the same plan, which resumes from the trial's last checkpoint (see the module docstring)."""
        return submitit.helpers.DelayedSubmission(SlurmTrial(self.job), plan, floors, prune)


class SlurmExecutor(JobExecutor):
    """One Slurm job per trial (see the module docstring and :class:`~laptime.execution.jobs.JobExecutor`).

    ``folder``: where submitit keeps each job's pickles and logs (``folder/<job id>/``), on a file
    system the nodes share; ``partition``: the Slurm partition (None: the cluster's default);
    ``gpus_per_trial``: GPUs per job (default 1 for CUDA trials, 0 on the CPU); ``time_limit``:
    minutes per job; ``local``: submitit's ``LocalExecutor`` (subprocesses of this machine) instead of
    Slurm; ``slurm_parameters``: more of submitit's ``slurm_*`` parameters (e.g.
    ``{"account": "proj"}``, ``{"additional_parameters": {...}}``). Without ``max_parallel``, Slurm
    queues every job (a job array per batch); locally at most one per ``threads`` usable cores run.
    """

    engine = "Slurm"

    def __init__(self, store_path: Any, *, folder: str | os.PathLike[str], partition: str | None = None,
                 gpus_per_trial: int | None = None, time_limit: float = 60.0, local: bool = False,
                 slurm_parameters: dict[str, Any] | None = None, **kwargs: Any):
        if local:
            self.engine = "slurm-local"
        kwargs.setdefault("poll", 0.5 if local else 5.0)
        super().__init__(store_path, **kwargs)
        if not local and shutil.which("sbatch") is None:
            raise EngineError("--executor slurm submits with Slurm's sbatch, which is not on this machine's PATH: "
                              "run laptime on the cluster's login node (or --executor slurm-local to try it here)")
        if gpus_per_trial is not None and (isinstance(gpus_per_trial, bool) or gpus_per_trial < 0):
            raise EngineError(f"--gpus-per-trial must be >= 0, got {gpus_per_trial}")
        if gpus_per_trial is None:
            gpus_per_trial = 1 if self.device.type == "cuda" else 0
        if self.device.type == "cuda" and gpus_per_trial == 0:
            raise EngineError("CUDA trials need a GPU each: --gpus-per-trial must be > 0 with --device cuda")
        if not time_limit or time_limit <= 0:
            raise EngineError(f"--time-limit must be > 0 minutes, got {time_limit}")
        self.folder = Path(folder).expanduser()
        self.partition = partition
        self.gpus_per_trial = int(gpus_per_trial)
        self.time_limit = float(time_limit)
        self.local = local
        self.slurm_parameters = dict(slurm_parameters or {})
        if local and self.max_parallel is None:
            from laptime.runner.threads import usable_cores

            self.max_parallel = max(1, int(usable_cores() // self.thread_choice.threads))
        self._executor = None

    def _start(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EngineError(f"cannot create the jobs folder {self.folder}: {exc}") from None
        executor = submitit.AutoExecutor(folder=self.folder / "%j", cluster="local" if self.local else "slurm")
        parameters: dict[str, Any] = dict(
            name="laptime", timeout_min=max(1, int(round(self.time_limit))), nodes=1, tasks_per_node=1,
            cpus_per_task=self.thread_choice.threads, gpus_per_node=self.gpus_per_trial)
        if not self.local:
            if self.partition:
                parameters["slurm_partition"] = self.partition
            if self.max_parallel is not None:
                parameters["slurm_array_parallelism"] = self.max_parallel
            parameters.update({f"slurm_{k}": v for k, v in self.slurm_parameters.items()})
        try:
            executor.update_parameters(**parameters)
        except (NameError, AssertionError, ValueError) as exc:
            raise EngineError(f"submitit refused the job parameters: {exc}") from None
        self._executor = executor

    def _submit(self, job: TrialJob, batch):
        trial = SlurmTrial(job)
        if len(batch) > 1:
            with self._executor.batch():  # one job array on Slurm
                jobs = [self._executor.submit(trial, plan, floors, prune) for _, plan, floors, prune in batch]
        else:
            jobs = [self._executor.submit(trial, plan, floors, prune) for _, plan, floors, prune in batch]
        return jobs

    def _wait(self, handles, timeout):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            done = [job for job in handles if job.done()]
            if done or (deadline is not None and time.monotonic() >= deadline):
                break
            time.sleep(self.poll if deadline is None else max(0.0, min(self.poll, deadline - time.monotonic())))
        finished = []
        for job in done:
            error = job.exception()  # read from the job's result file
            if error is None:
                finished.append((job, "done", job.result()))
            elif isinstance(error, FailedJobError):  # the trial's code raised
                finished.append((job, "error", str(error)))
            else:  # no result file: the job was killed, timed out for good, or never ran
                finished.append((job, "crashed", f"job {job.job_id}: {error}"))
        return finished

    def _cancel(self, handles) -> None:
        for job in handles:
            try:
                job.cancel(check=False)
            except Exception:  # noqa: BLE001 - already finished, or the scheduler is unreachable
                pass

    def _stop(self) -> None:
        self._executor = None
