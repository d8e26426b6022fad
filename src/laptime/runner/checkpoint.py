"""Checkpoints of a running trial: exact, atomic, outside the clock, preemption-safe.

A trial run with a checkpoint folder (``TrialOptions(checkpoint_dir=...)``; ``execute_plan`` and
``laptime run/bench --checkpoint-dir`` name the file after the plan key) writes, every
``checkpoint_every_sec`` seconds of *submission* time and/or every ``checkpoint_every_steps`` steps
(deterministic points, for step budgets), at a step boundary:

* the model (``state_dict``, gradients, train/eval flags), the model state, the algorithm's state
  (:meth:`laptime.api.Algorithm.optimizer_state_dict`);
* every RNG state: torch's CPU generator, the trial device's CUDA generator, the algorithm's
  ``torch.Generator``, numpy's and Python's global generators;
* the position of the input queue: the number of batches drawn from it. The stream depends only on
  the seed and the batch size, so it is made again at that position
  (:meth:`laptime.api.Workload.train_batches_from`; the built-in workloads redraw only the skipped
  batches' random numbers — one ``randperm`` per epoch, one small ``randint`` per batch — at the
  call, before any clock runs);
* the runner's clocks and counters (submission time, work-clock time, wall time so far, step,
  train state, the last eval step, time/steps/work to target), the eval history, the notes, and
  the robust time's work meter (its window closed first; :meth:`WorkMeter.state_dict`).

Writing happens between steps, where the runner re-reads both clocks afterwards, so neither the
submission time nor the work clock is charged (``tests/test_checkpoint.py`` proves it with a
:class:`~laptime.runner.clock.ManualClock`). The file is written to a temporary name beside it
(``.NAME.HOST.PID.*.part``), flushed to disk, renamed over the previous checkpoint
(``os.replace``) and the folder synced, so a reader sees the previous checkpoint or the new one,
never half of one; there is one checkpoint per running trial, and the temporary files of writers
that died are removed at the next write. A trial started again with the same options finds its
file, checks that it belongs to the same trial configuration (workload and version, algorithm,
hyperparameters, seed, batch size, budgets, eval cadence, device type, threads, compile options), restores all of
the above and continues: its eval history is the uninterrupted run's, bitwise on the CPU, and its
submission time continues from the checkpoint (work done after the checkpoint by the killed
process is lost and not counted). A finished trial's checkpoint is removed (by ``execute_plan``
once the trial is stored). What checkpointing cost is in the trial's ``measurement["checkpoint"]``.

**Preemption.** While such a trial runs (in the main thread), SIGTERM — what Slurm sends before it
preempts or cancels a job — does not kill the process: the runner writes a checkpoint at the next
step boundary and raises :class:`TrialPreempted`, and ``laptime`` then exits with status
:data:`PREEMPTED_EXIT_STATUS` (75, ``EX_TEMPFAIL``: try again), so a job script or a requeueing
executor can tell "checkpointed, run me again" from a failure. A second SIGTERM kills at once.

Checkpoints are pickles (``torch.load(weights_only=False)``: numpy's RNG state and an algorithm's
own state are not plain tensors): load only checkpoint folders you trust, as with any pickle.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import random
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

#: Version of the checkpoint's layout; a file of another version is ignored (the trial starts afresh).
FORMAT = 1
#: File suffix of a checkpoint (``<name>.pt``; ``execute_plan`` names it after the plan key).
SUFFIX = ".pt"
#: Exit status of ``laptime`` after SIGTERM made a trial write a checkpoint and stop (``EX_TEMPFAIL``).
PREEMPTED_EXIT_STATUS = 75
#: Submission seconds between checkpoints when a folder is given without an interval.
DEFAULT_EVERY_SEC = 60.0
#: A temporary file of another host is removed once it is this old (its writer cannot be asked).
STALE_FOREIGN_PART_SEC = 3600.0


class TrialPreempted(BaseException):
    """SIGTERM stopped a trial after it wrote a checkpoint (or before it started).

    A ``BaseException``, like ``KeyboardInterrupt``: it is not an outcome of the trial, nothing is
    stored, and running the same trial again resumes it.
    """

    def __init__(self, path: Path | None, step: int | None):
        self.path = path
        self.step = step
        if step is None:
            what = "before the trial started: nothing to save"
        else:
            what = f"checkpoint of step {step} written to {path}"
        super().__init__(f"preempted (SIGTERM): {what}; run the same command again to resume")


# --------------------------------------------------------------------------- SIGTERM

_PREEMPT = threading.Event()


def preemption_requested() -> bool:
    """Whether SIGTERM (or :func:`request_preemption`) asked the running trials to stop."""
    return _PREEMPT.is_set()


def request_preemption() -> None:
    """Ask the running trial to checkpoint at its next step boundary and stop (what SIGTERM does)."""
    _PREEMPT.set()


def clear_preemption() -> None:
    _PREEMPT.clear()


@contextlib.contextmanager
def sigterm_requests_checkpoint(enabled: bool = True) -> Iterator[None]:
    """While active (and in the main thread), SIGTERM sets the preemption flag instead of killing;
    a second SIGTERM kills the process as the default action would. The previous handler is put
    back at the end."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum: int, frame: Any) -> None:
        if _PREEMPT.is_set():
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        _PREEMPT.set()

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


# --------------------------------------------------------------------------- the input queue


class CountingQueue:
    """The input queue as the algorithm sees it, counting the batches drawn (the stream's position)."""

    __slots__ = ("_queue", "drawn")

    def __init__(self, queue: Iterator[Any], start: int = 0):
        self._queue = iter(queue)
        self.drawn = int(start)

    def __iter__(self) -> "CountingQueue":
        return self

    def __next__(self) -> Any:
        batch = next(self._queue)
        self.drawn += 1
        return batch


# --------------------------------------------------------------------------- RNG states


def capture_rng(device: torch.device, generator: torch.Generator) -> dict[str, Any]:
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "algorithm": generator.get_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict[str, Any], device: torch.device, generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["algorithm"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


# --------------------------------------------------------------------------- files


def identity_key(identity: dict[str, Any]) -> str:
    """A canonical text of a trial configuration (what a checkpoint must match to be resumed)."""
    return json.dumps(identity, sort_keys=True, default=str)


def checkpoint_path(folder: str | os.PathLike[str], name: str) -> Path:
    if not name or os.sep in name or name.startswith("."):
        raise ValueError(f"a checkpoint name must be a plain file name, got {name!r}")
    return Path(folder).expanduser() / f"{name}{SUFFIX}"


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_parts(path: Path) -> list[Path]:
    """Temporary files of ``path``'s writers that are gone: this host's whose process has ended,
    other hosts' older than :data:`STALE_FOREIGN_PART_SEC`."""
    host = socket.gethostname()
    out = []
    for part in glob.glob(os.path.join(glob.escape(str(path.parent)), f".{glob.escape(path.name)}.*.part")):
        fields = os.path.basename(part)[len(path.name) + 2:].split(".")
        try:
            part_host, pid = ".".join(fields[:-3]), int(fields[-3])
        except (ValueError, IndexError):
            continue
        if part_host == host:
            if pid != os.getpid() and not _pid_alive(pid):
                out.append(Path(part))
        else:
            with contextlib.suppress(OSError):
                if time.time() - os.path.getmtime(part) > STALE_FOREIGN_PART_SEC:
                    out.append(Path(part))
    return out


def write_atomically(path: Path, payload: Any) -> int:
    """``torch.save(payload)`` to ``path``: temporary file beside it, fsync, ``os.replace``, folder
    synced. Returns the file's size in bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{socket.gethostname()}.{os.getpid()}.",
                               suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
            size = handle.tell()
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return size


def read_checkpoint(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> dict[str, Any]:
    """Load a checkpoint file (tensors saved on a CUDA device go to ``device``'s; CPU ones stay)."""
    device = torch.device(device)
    map_location: Any = None
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        map_location = {f"cuda:{i}": f"cuda:{index}" for i in range(max(torch.cuda.device_count(), index + 1))}
    payload = torch.load(path, map_location=map_location, weights_only=False)
    if not isinstance(payload, dict) or payload.get("complete") is not True:
        raise ValueError(f"{path} is not a laptime trial checkpoint")
    return payload


def remove_checkpoint(folder: str | os.PathLike[str], name: str) -> bool:
    """Remove the checkpoint ``name`` in ``folder`` (and its writers' leftovers); True if it existed."""
    path = checkpoint_path(folder, name)
    for part in stale_parts(path):
        with contextlib.suppress(OSError):
            part.unlink()
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def sweep(folder: str | os.PathLike[str], finished: Callable[[str], bool]) -> list[str]:
    """Remove the checkpoints in ``folder`` of trials that ``finished(name)`` says are stored (a
    process killed between storing a trial and removing its checkpoint leaves one behind), then the
    folder itself if it is empty. Returns the names removed."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        return []
    removed = []
    for path in sorted(root.glob(f"*{SUFFIX}")):
        name = path.name[: -len(SUFFIX)]
        if finished(name) and remove_checkpoint(root, name):
            removed.append(name)
    with contextlib.suppress(OSError):
        root.rmdir()  # only when empty
    return removed


class Checkpointer:
    """One trial's checkpoint file: when one is due, writing it, reading it back, the accounting."""

    def __init__(self, folder: str | os.PathLike[str], name: str, *, every_sec: float | None = None,
                 every_steps: int | None = None):
        self.path = checkpoint_path(folder, name)
        if every_sec is None and every_steps is None:
            every_sec = DEFAULT_EVERY_SEC
        self.every_sec = None if every_sec is None else float(every_sec)
        self.every_steps = None if every_steps is None else int(every_steps)
        self.last_step = 0
        self.last_time = 0.0
        self.written = 0  # over the trial's whole life, resumed processes included
        self.bytes = 0  # the latest checkpoint's size
        self.max_bytes = 0
        self.write_sec = 0.0  # wall seconds spent writing (outside the clock)
        self.resumes: list[dict[str, Any]] = []
        self.notes: list[str] = []

    def due(self, step: int, submission_time: float) -> bool:
        if self.every_steps is not None and step - self.last_step >= self.every_steps:
            return True
        return self.every_sec is not None and submission_time - self.last_time >= self.every_sec

    def load(self, identity: dict[str, Any], device: torch.device) -> dict[str, Any] | None:
        """The saved checkpoint of this trial configuration, or None (no file, another
        configuration's, unreadable: a note says which, and the trial starts afresh)."""
        if not self.path.exists():
            return None
        try:
            payload = read_checkpoint(self.path, device)
        except Exception as exc:  # noqa: BLE001 - a checkpoint that cannot be read is not used
            self.notes.append(f"checkpoint {self.path} could not be read ({type(exc).__name__}: {exc}); "
                              "the trial started afresh")
            return None
        if payload.get("format") != FORMAT:
            self.notes.append(f"checkpoint {self.path} has layout {payload.get('format')!r}, not {FORMAT}; "
                              "the trial started afresh")
            return None
        if payload.get("identity") != identity_key(identity):
            self.notes.append(f"checkpoint {self.path} belongs to another configuration of this trial; "
                              "the trial started afresh")
            return None
        accounting = payload.get("accounting", {})
        self.written = int(accounting.get("written", 0))
        with contextlib.suppress(OSError):
            self.bytes = self.path.stat().st_size
        self.max_bytes = max(int(accounting.get("max_bytes", 0)), self.bytes)
        self.write_sec = float(accounting.get("write_sec", 0.0))
        self.resumes = list(accounting.get("resumes", []))
        self.last_step = int(payload["runner"]["step"])
        self.last_time = float(payload["runner"]["sub_time"])
        return payload

    def resumed(self, step: int, submission_time: float) -> None:
        self.resumes.append({"step": int(step), "submission_time": float(submission_time)})

    def save(self, identity: dict[str, Any], payload: dict[str, Any], step: int, submission_time: float) -> None:
        t0 = time.perf_counter()
        for part in stale_parts(self.path):
            with contextlib.suppress(OSError):
                part.unlink()
        payload = {"format": FORMAT, "complete": True, "identity": identity_key(identity), **payload,
                   "accounting": {"written": self.written + 1, "bytes": self.bytes, "max_bytes": self.max_bytes,
                                  "write_sec": self.write_sec, "resumes": self.resumes}}
        size = write_atomically(self.path, payload)
        self.written += 1
        self.bytes = size
        self.max_bytes = max(self.max_bytes, size)
        self.last_step, self.last_time = int(step), float(submission_time)
        self.write_sec += time.perf_counter() - t0

    def remove(self) -> None:
        remove_checkpoint(self.path.parent, self.path.name[: -len(SUFFIX)])

    def summary(self) -> dict[str, Any]:
        """``measurement["checkpoint"]``: where, how often, how many, how big, how long, resumes."""
        return {"file": str(self.path), "every_sec": self.every_sec, "every_steps": self.every_steps,
                "written": self.written, "bytes": self.bytes, "max_bytes": self.max_bytes,
                "write_sec": round(self.write_sec, 4),
                "mean_write_ms": round(1000 * self.write_sec / self.written, 3) if self.written else None,
                "resumes": list(self.resumes)}
