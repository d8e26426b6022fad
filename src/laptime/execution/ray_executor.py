"""One Ray task per trial (``laptime bench --executor ray``; ``pip install "laptime[ray]"``).

Ray was chosen over writing a scheduler: it places each task where its resource request fits
(``num_cpus`` = the trial's intra-op threads, ``num_gpus`` for CUDA trials, one GPU unless asked
otherwise), restarts nothing behind our back (``max_retries=0``: a trial that kills its worker is
reported, as with the local worker processes) and returns each record as the task's result, so the
parent stays the only writer of the results store. Without an address, ``ray.init()`` joins the
cluster a ``ray start`` made on this machine, or starts a local one for this benchmark (and shuts
it down afterwards). Every node needs the same laptime, algorithm files and data (see
``docs/cluster.md``); a record computed with other code is refused (:mod:`laptime.execution.jobs`).
"""

from __future__ import annotations

from typing import Any

from laptime.execution.executors import EngineError
from laptime.execution.jobs import JobExecutor, TrialJob

__all__ = ["RayExecutor", "ray_available"]


def ray_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None


def _run_trial(job: TrialJob, plan, floors, prune=None):
    """The task: one trial, its record returned (never stored here)."""
    return job(plan, floors, prune)


class RayExecutor(JobExecutor):
    """One Ray task per trial (see the module docstring and :class:`~laptime.execution.jobs.JobExecutor`).

    ``address``: a Ray cluster (``ray://…`` or ``host:port``; None: ``$RAY_ADDRESS``, a cluster
    started on this machine, else a local one); ``init_kwargs``: more arguments of ``ray.init``
    (e.g. ``{"num_cpus": 2}`` for a local cluster); ``gpus_per_trial``: the GPUs each CUDA trial
    asks for (default 1; 0 on the CPU); ``max_retries``: Ray's retries of a task whose worker died.
    If Ray is already initialised in this process, that connection is used and left open.
    """

    engine = "Ray"

    def __init__(self, store_path: Any, *, address: str | None = None, init_kwargs: dict[str, Any] | None = None,
                 gpus_per_trial: float | None = None, max_retries: int = 0, **kwargs: Any):
        if not ray_available():
            raise EngineError('--executor ray needs Ray: pip install "laptime[ray]"')
        super().__init__(store_path, **kwargs)
        self.address = address
        self.init_kwargs = dict(init_kwargs or {})
        if gpus_per_trial is not None and gpus_per_trial < 0:
            raise EngineError(f"gpus per trial must be >= 0, got {gpus_per_trial}")
        if gpus_per_trial is None:
            gpus_per_trial = 1 if self.device.type == "cuda" else 0
        if self.device.type == "cuda" and gpus_per_trial == 0:
            raise EngineError("CUDA trials need a GPU each: --gpus-per-trial must be > 0 with --device cuda")
        self.gpus_per_trial = gpus_per_trial
        self.max_retries = max_retries
        self._owns = False
        self._task = None
        self._job: TrialJob | None = None
        self._job_ref = None

    def _start(self) -> None:
        import ray

        if not ray.is_initialized():
            kwargs = {"include_dashboard": False, **self.init_kwargs}
            try:
                ray.init(address=self.address, **kwargs)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                where = self.address or "a local Ray instance"
                raise EngineError(f"cannot start or join Ray ({where}): {exc}") from None
            self._owns = True
        self._task = ray.remote(max_retries=self.max_retries)(_run_trial)

    def _submit(self, job: TrialJob, batch):
        import ray

        if self._job_ref is None or self._job != job:
            self._job, self._job_ref = job, ray.put(job)  # shipped once, shared by every task
        options = {"num_cpus": self.thread_choice.threads, "num_gpus": self.gpus_per_trial}
        return [self._task.options(name=f"laptime-trial-{index}", **options).remote(self._job_ref, plan, floors,
                                                                                               prune)
                for index, plan, floors, prune in batch]

    def _wait(self, handles, timeout):
        import ray
        from ray import exceptions as rex

        ready, _ = ray.wait(handles, num_returns=1, timeout=timeout)
        if ready:  # and every other one that is done by now
            ready, _ = ray.wait(handles, num_returns=len(handles), timeout=0)
        finished = []
        for ref in ready:
            try:
                finished.append((ref, "done", ray.get(ref)))
            except rex.RayTaskError as exc:  # the trial's code raised (execute_plan: bad device, ...)
                finished.append((ref, "error", str(exc)))
            except rex.RayError as exc:  # the worker or its node died
                finished.append((ref, "crashed", f"{type(exc).__name__}: {exc}"))
        return finished

    def _cancel(self, handles) -> None:
        import ray

        for ref in handles:
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - finished meanwhile, or the cluster is gone
                pass

    def _stop(self) -> None:
        if self._owns:
            import ray

            ray.shutdown()
            self._owns = False
        self._job_ref = None
