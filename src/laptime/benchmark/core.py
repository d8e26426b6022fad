"""A benchmark from start to end: check, plan, prepare data, choose an executor, run, store, score.

:func:`prepare` checks every input and plans the trials before anything is run or stored (a bad
name, file, device, engine or option raises :class:`BenchmarkError` or another ``ValueError`` with a
one-line message); :meth:`Benchmark.run` runs the plans through the chosen executor, scores the
trials and returns a :class:`~laptime.benchmark.BenchmarkResult`. :func:`bench` does both.
``laptime bench`` is this, plus argument parsing and printing.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from laptime.benchmark.result import BenchmarkResult
from laptime.errors import UsageError

__all__ = [
    "BASELINES",
    "COLUMNS",
    "EXECUTORS",
    "Benchmark",
    "BenchmarkError",
    "bench",
    "budget_mode_for",
    "contention_warning",
    "ensure_data",
    "prepare",
    "pruning_policy",
    "score_column",
    "write_report",
]

#: The algorithms a benchmark compares when none are named.
BASELINES = ("sgd_nesterov", "adamw", "nadamw")
#: ``by`` choices: raw submission time to target (AlgoPerf's rule, for dedicated hardware), the
#: contention-robust time, or steps to target (exact in step-budget mode).
COLUMNS = {"time": "time_to_target", "robust": "robust_time_to_target", "steps": "steps_to_target"}
#: Where trials run: ``auto`` (inline for one device, else one local process per device),
#: ``inline``, ``local`` (worker processes), ``ray`` (one Ray task per trial), ``slurm`` (one Slurm
#: job per trial, through submitit), ``slurm-local`` (submitit's local executor: the Slurm path on
#: this machine).
EXECUTORS = ("auto", "inline", "local", "ray", "slurm", "slurm-local")


class BenchmarkError(UsageError):
    """A benchmark that cannot run as asked (one line; nothing was run or stored)."""


# ------------------------------------------------------------------------------------------ helpers

def budget_mode_for(choice: str, device: Any) -> str:
    """``auto``: a step budget on the CPU (the verdict does not depend on the machine's load), the
    time budget on CUDA (AlgoPerf's rule, for a dedicated GPU)."""
    if choice not in ("auto", "steps", "time"):
        raise BenchmarkError(f"budget must be auto, steps or time, got {choice!r}")
    if choice != "auto":
        return choice
    return "steps" if getattr(device, "type", str(device)) == "cpu" else "time"


def score_column(by: str, budget_mode: str) -> str:
    """``by="auto"``: the robust time in step-budget mode, the raw time in time-budget mode."""
    if by == "auto":
        return COLUMNS["robust" if budget_mode == "steps" else "time"]
    if by not in COLUMNS:
        raise BenchmarkError(f"by must be auto, {', '.join(COLUMNS)}, got {by!r}")
    return COLUMNS[by]


def pruning_policy(prune: str, ruleset: str, column: str, predictor: str = "curve", threshold: float = 0.05,
                   eta: int = 3):
    """The benchmark's :class:`~laptime.tuning.pruning.PruningPolicy`: ``auto`` is exact pruning by the
    scored column under external tuning (the scores are those without it, by construction) and none
    under self-tuning (one trial per study: nothing to prune). Pruning needs external tuning."""
    from laptime.tuning.pruning import MODES, PruningPolicy

    if prune not in MODES:
        raise BenchmarkError(f"prune must be one of {', '.join(MODES)}, got {prune!r}")
    if prune == "auto":
        prune = "exact" if ruleset == "external" else "none"
    if prune != "none" and ruleset != "external":
        raise BenchmarkError(f"--prune {prune} needs studies of several trials: use it with --ruleset external "
                             "(self-tuning runs one trial per study)")
    return PruningPolicy(mode=prune, by=column, predictor=predictor, threshold=threshold, eta=eta)


def ensure_data(entries, log: Callable[[str], None] | None = None, workloads: Any = None) -> None:
    """Make every dataset the (workload, variant, config) entries read ready before anything is
    timed or stored. Instances are asked, since a configuration may pick its data source."""
    from laptime.data.sources import ensure
    from laptime.workloads import default_workloads

    registry = workloads or default_workloads()
    datasets = {d for name, variant, config in entries for d in registry.create(name, variant, config).datasets}
    for dataset in sorted(datasets):
        ensure(dataset, log=log)


def contention_warning(records, column: str) -> str | None:
    """One line when some trials ran on a busy machine: how many, what was seen, what it means for
    the score's column. None when every trial ran undisturbed."""
    bad = [r for r in records if r.contaminated]
    if not bad:
        return None
    others = [r.contention["other_cores"] for r in bad if r.contention.get("other_cores") is not None]
    inflation = [r.contention["inflation"] for r in bad if r.contention.get("inflation") is not None]
    seen = []
    if others:
        seen.append(f"other processes kept up to {max(others):.1f} core(s) busy")
    if inflation:
        seen.append(f"raw submission times up to {max(inflation):+.0%} over the robust estimate")
    detail = "; ".join(seen) or "see the report's trial table"
    text = (f"{len(bad)} of {len(records)} trials ran on a busy machine ({detail}). ")
    if column == "time_to_target":
        text += ("This leaderboard scores RAW submission time, which that load inflates: rerun on a quiet "
                 "machine, or score the robust time (--by robust) or steps (--by steps).")
    elif column == "robust_time_to_target":
        text += "This leaderboard scores the robust time, which discounts that load"
        text += "; steps and outcomes are exact (step budgets)." if all(r.budget_mode == "steps" for r in records) \
            else "; with time budgets the load may still have cut trials short: prefer --budget steps."
    else:
        text += "This leaderboard scores steps, which the load does not change" + (
            "." if all(r.budget_mode == "steps" for r in records) else
            " (but with time budgets it may have cut trials short: prefer --budget steps).")
    return text


def write_report(records, score, out_dir: Path, title: str) -> tuple[Path, Path]:
    """The HTML report and its markdown table in ``out_dir`` (created); their paths."""
    from laptime.report import build_report

    report = build_report(records, score, title=title)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return report.write_html(out_dir / "report.html"), report.write_markdown(out_dir / "report.md")


def resolve_db(db: str | Path | None) -> Path:
    """The results file: ``db``, else the default (``$LAPTIME_DB`` or ``~/.local/share/laptime/``).
    A ``db`` in a folder that does not exist is refused: a typo must not create folders."""
    from laptime.results import default_store_path

    if db is None:
        return default_store_path()
    path = Path(db).expanduser()
    folder = path.parent
    if not folder.is_dir():
        why = "is not a folder" if folder.exists() else "does not exist"
        raise BenchmarkError(f"db {db}: {folder} {why}; create the folder first or choose another path")
    return path


def _installed(module: str) -> bool:
    """Whether an optional engine's package can be imported here (without importing it)."""
    return importlib.util.find_spec(module) is not None


def _count(value: Any, what: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BenchmarkError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return value


# ------------------------------------------------------------------------------------- checkpoints


def checkpoint_options(enabled: bool, folder: str | os.PathLike[str] | None, every: float | None,
                       every_steps: int | None, db_path: Path | None) -> dict[str, Any]:
    """``TrialOptions`` fields for checkpointing running trials (:mod:`laptime.runner.checkpoint`).

    ``db_path`` given (a benchmark): on by default, in the folder ``<database file name>.checkpoints``
    beside the database, where any executor's trials find them (``folder`` chooses another);
    ``db_path`` None (``laptime run``): only with a ``folder``. ``every``: submission seconds between
    checkpoints, ``every_steps``: steps (neither: every 60 s). The folder is made at the first
    checkpoint; its parent must exist. Raises :class:`BenchmarkError` for bad values."""
    if every is not None and not (isinstance(every, (int, float)) and math.isfinite(every) and every > 0):
        raise BenchmarkError(f"--checkpoint-every must be a number of seconds > 0, got {every!r}")
    if every_steps is not None and (isinstance(every_steps, bool) or not isinstance(every_steps, int)
                                    or every_steps < 1):
        raise BenchmarkError(f"--checkpoint-every-steps must be >= 1, got {every_steps!r}")
    if not enabled:
        if folder or every is not None or every_steps is not None:
            raise BenchmarkError("--no-checkpoint cannot be combined with --checkpoint-dir/--checkpoint-every/"
                                 "--checkpoint-every-steps")
        return {}
    if folder:
        path = Path(folder).expanduser()
        if path.exists() and not path.is_dir():
            raise BenchmarkError(f"--checkpoint-dir {folder}: not a folder")
        if not path.exists() and not path.parent.is_dir():
            raise BenchmarkError(f"--checkpoint-dir {folder}: its parent folder {path.parent} does not exist")
    elif db_path is not None and str(db_path) != ":memory:":
        path = db_path.parent / f"{db_path.name}.checkpoints"
    elif every is not None or every_steps is not None:
        raise BenchmarkError("--checkpoint-every and --checkpoint-every-steps need --checkpoint-dir DIR")
    else:
        return {}
    return {"checkpoint_dir": str(path), "checkpoint_every_sec": None if every is None else float(every),
            "checkpoint_every_steps": every_steps}


def checkpoint_summary(records: Sequence[Any], folder: str | None) -> dict[str, Any] | None:
    """What checkpointing the benchmark's trials cost (their ``measurement["checkpoint"]``): files
    written, wall seconds (outside the submission time), the largest file (disk use is one such file
    per running trial), resumes, and the files left in the folder (trials not stored). None without
    a folder."""
    if folder is None:
        return None
    from laptime.runner.checkpoint import SUFFIX

    parts = [r.measurement["checkpoint"] for r in records if "checkpoint" in r.measurement]
    left = len(list(Path(folder).glob(f"*{SUFFIX}"))) if Path(folder).is_dir() else 0
    return {"dir": folder, "trials": len(parts), "written": sum(p["written"] for p in parts),
            "write_sec": round(sum(p["write_sec"] for p in parts), 3),
            "max_bytes": max((p["max_bytes"] for p in parts), default=0),
            "resumes": sum(len(p["resumes"]) for p in parts), "left": left}


# ------------------------------------------------------------------------------------- the benchmark

@dataclasses.dataclass
class Benchmark:
    """A benchmark checked and planned by :func:`prepare`; :meth:`run` runs it."""

    suite: Any  # laptime.workloads.suites.Suite
    algorithms: list[str]
    ruleset: str
    studies: int
    trials: int
    seed: int
    devices: list[str]
    budget_mode: str
    column: str
    plans: list[Any]
    db: Path
    executor_kind: str
    executor: Any
    thread_choice: Any  # laptime.runner.threads.ThreadChoice
    loggers: tuple
    command: str
    scoring: dict[str, Any]
    out: Path | None = None
    bench_file: dict[str, Any] | None = None
    checkpoint_dir: str | None = None
    pruning: Any = None  # laptime.tuning.pruning.PruningPolicy

    @property
    def title(self) -> str:
        return f"laptime bench — suite {self.suite.name}, {self.ruleset} ruleset"

    def meta(self) -> dict[str, Any]:
        """What the run's row in the store says about the benchmark."""
        return {"kind": "bench", "suite": self.suite.name, "ruleset": self.ruleset, "algorithms": self.algorithms,
                "studies": self.studies, "trials": self.trials, "seed": self.seed, "devices": self.devices,
                "budget_mode": self.budget_mode, "score_column": self.column,
                "threads": self.thread_choice.as_dict(), "executor": self.executor_kind,
                "pruning": self.pruning.to_dict() if self.pruning is not None else {"mode": "none"}}

    def run(self, *, progress: bool = False, on_result: Callable[[Any, Any], None] | None = None,
            on_start: Callable[[Benchmark, int], None] | None = None) -> BenchmarkResult:
        """Run every plan (trials already stored are reused), score, write the report if ``out`` was
        given. ``progress``: a live display (or plain lines in a log) on stderr; ``on_result(plan,
        record)`` per trial as it is known; ``on_start(benchmark, run_id)`` once the run is stored,
        before the first trial. Raises :class:`~laptime.execution.ExecutorError` when some plans got
        no record (those that did are stored)."""
        from laptime.execution import InlineExecutor
        from laptime.results import ResultsStore
        from laptime.runner.progress import bench_progress
        from laptime.scoring import score_records

        with ResultsStore(self.db) as store:
            run_id = store.start_run(self.command, self.meta())
            if self.bench_file:
                store.update_run_meta(run_id, {"bench_file": self.bench_file})  # what the file set, for the record
            self.executor.store = store  # the single writer: this process, through this connection
            self.executor.run_id = run_id
            if on_start is not None:
                on_start(self, run_id)
            if progress:
                with bench_progress(len(self.plans), run_id=run_id) as display:
                    if isinstance(self.executor, InlineExecutor):
                        self.executor.progress_factory = display.trial_progress

                    def both(plan, record):
                        display.on_result(plan, record)
                        if on_result is not None:
                            on_result(plan, record)

                    records = self.executor.run(self.plans, on_result=both)
            else:
                records = self.executor.run(self.plans, on_result=on_result)
            store.update_run_meta(run_id, {"trial_ids": [r.trial_id for r in records]})
            if self.checkpoint_dir is not None:  # checkpoints of stored trials that a killed process left
                from laptime.runner.checkpoint import sweep

                sweep(self.checkpoint_dir, lambda key: store.find_by_plan_key(key) is not None)
            stored = store.run(run_id)  # the trials as stored, with their eval histories
        score = score_records(stored.trials, force=self.scoring["force"], baseline=self.scoring["baseline"],
                              n_bootstrap=self.scoring["bootstrap"], seed=0, column=self.column,
                              timing_noise=self.scoring["timing_noise"])
        result = BenchmarkResult(run=stored, score=score, db=self.db, budget_mode=self.budget_mode, column=self.column,
                                 executor=self.executor_kind, devices=list(self.devices),
                                 threads=self.thread_choice.as_dict(), title=self.title,
                                 warning=contention_warning(stored.trials, self.column),
                                 checkpoints=checkpoint_summary(stored.trials, self.checkpoint_dir),
                                 pruning=self.meta()["pruning"])
        if self.out is not None:
            result.report(self.out)
        return result


def _suite(suite: Any):
    from laptime.workloads.suites import Suite, get_suite

    if isinstance(suite, Suite):
        return suite
    if isinstance(suite, str):
        return get_suite(suite)
    try:
        entries = tuple(tuple(e) for e in suite)
        return Suite("custom", "workloads given to laptime.bench", entries)
    except (TypeError, ValueError) as exc:
        raise BenchmarkError(f"suite must be a suite name, a Suite or (workload, variant, config) triples: {exc}") from None


def _device_names(device: str | Sequence[str] | None, default: str) -> list[str]:
    if device is None:
        device = default
    names = device.split(",") if isinstance(device, str) else list(device)
    names = [str(d).strip() for d in names if str(d).strip()]
    if not names:
        raise BenchmarkError("--device needs at least one device")
    return names


def _command(**given: Any) -> str:
    shown = ", ".join(f"{k}={v!r}" for k, v in given.items() if v is not None)
    return f"laptime.bench({shown})"


def prepare(
    suite: Any = "smoke",
    algorithms: str | Sequence[str] | None = None,
    *,
    ruleset: str = "self",
    studies: int | None = None,
    trials: int = 5,
    budget_factor: float = 1.5,
    seed: int = 0,
    device: str | Sequence[str] | None = None,
    executor: str = "auto",
    workers: int | None = None,
    db: str | Path | None = None,
    out: str | Path | None = None,
    budget: str = "auto",
    threads: str | int | None = None,
    max_steps: int | None = None,
    robust: bool = True,
    batch_size: int | None = None,
    search_space: str | Path | None = None,
    resume: bool = True,
    retry_failed: bool = False,
    force: bool = False,
    by: str = "auto",
    baseline: str | None = None,
    bootstrap: int = 1000,
    timing_noise: float | None = None,
    log: Sequence[str] = (),
    claims: bool = True,
    claim_lease: float | None = None,
    ray_address: str | None = None,
    ray_init: dict[str, Any] | None = None,
    partition: str | None = None,
    gpus_per_trial: int | None = None,
    time_limit: float | None = None,
    jobs_folder: str | Path | None = None,
    slurm_parameters: dict[str, Any] | None = None,
    command: str | None = None,
    quiet: bool = False,
    bench_file: dict[str, Any] | None = None,
    checkpoint: bool = True,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: float | None = None,
    checkpoint_every_steps: int | None = None,
    prune: str = "auto",
    predictor: str = "curve",
    prune_threshold: float = 0.05,
    prune_eta: int = 3,
    workloads_factory: Callable[[], Any] | None = None,
    algorithms_factory: Callable[[], Any] | None = None,
) -> Benchmark:
    """Check and plan a benchmark (see :func:`bench` for the arguments); nothing runs or is stored."""
    from laptime.algorithms import default_algorithms
    from laptime.algorithms.registry import unique_names
    from laptime.execution import InlineExecutor, LocalParallelExecutor, resolve_device
    from laptime.execution.book import DEFAULT_LEASE_S
    from laptime.execution.plan import thread_choice
    from laptime.loggers import check_loggers, parse_loggers
    from laptime.runner import TrialOptions
    from laptime.runner.threads import parse_policy
    from laptime.tuning import SearchSpace
    from laptime.tuning.rulesets import ExternalTuning, SelfTuning, algorithm_entry, plan_trials

    suite_obj = _suite(suite)
    registry = (algorithms_factory or default_algorithms)()
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise BenchmarkError(f"--batch-size must be >= 1, got {batch_size}")
    if isinstance(algorithms, str):
        algorithms = [algorithms]
    # leaderboard rows are by name: files sharing one (every AlgoPerf submission.py) are told apart
    resolved = unique_names([(name, registry.resolve(name)) for name in (algorithms or list(BASELINES))])
    names = [name for name, _ in resolved]
    if search_space and len(resolved) != 1:
        raise BenchmarkError("--search-space sets one algorithm's search space: give a single --algorithm (or put a "
                             "tuning_search_space.json beside each submission)")
    if ruleset not in ("external", "self"):
        raise BenchmarkError(f"ruleset must be external or self, got {ruleset!r}")
    # only external tuning reads search spaces: under self-tuning a missing space file is no error
    entries = [algorithm_entry(name, algorithm, with_space=ruleset == "external") for name, algorithm in resolved]
    if search_space:
        space = SearchSpace.load(search_space)
        entries = [(name, space, defaults) for name, _, defaults in entries]
    if ruleset == "external":
        studies = studies if studies is not None else 3
        rules = ExternalTuning(studies=studies, trials=trials)
    else:
        studies = studies if studies is not None else 1
        rules = SelfTuning(budget_factor=budget_factor, studies=studies)

    if executor not in EXECUTORS:
        raise BenchmarkError(f"unknown executor {executor!r}: use one of {', '.join(EXECUTORS)}")
    if workers is not None:
        _count(workers, "--workers")
    devices = _device_names(device, suite_obj.device)
    on_jobs = executor in ("ray", "slurm", "slurm-local")
    if on_jobs:
        from laptime.execution.jobs import job_device

        if len(devices) != 1:
            raise BenchmarkError(f"--executor {executor} places each trial itself: give one device type (cpu or cuda), "
                                 f"not {', '.join(devices)}")
        first = job_device(devices[0], executor)
    else:
        resolved_devices = [resolve_device(d) for d in devices]
        first = resolved_devices[0]
    mode = budget_mode_for(budget, first)
    column = score_column(by, mode)
    pruning = pruning_policy(prune, ruleset, column, predictor, prune_threshold, prune_eta)
    policy = parse_policy(threads) if threads is not None else None
    plans = [dataclasses.replace(plan, budget_mode=mode, batch_size=batch_size)
             for plan in plan_trials(rules, list(suite_obj.entries), entries, seed=seed)]
    loggers = parse_loggers(log)
    check_loggers(loggers)
    db_path = resolve_db(db)
    checkpoints = checkpoint_options(checkpoint, checkpoint_dir, checkpoint_every, checkpoint_every_steps, db_path)
    options = TrialOptions(max_steps=max_steps, robust=robust, **checkpoints)

    lease = DEFAULT_LEASE_S if claim_lease is None else float(claim_lease)
    if lease <= 0:
        raise BenchmarkError(f"--claim-lease must be > 0 seconds, got {claim_lease}")
    common = dict(options=options, resume=resume, retry_failed=retry_failed, loggers=loggers, claims=claims,
                  claim_lease=lease, workloads_factory=workloads_factory, algorithms_factory=algorithms_factory)
    kind = executor
    if kind == "auto":
        kind = "inline" if len(devices) == 1 and (workers or 1) == 1 else "local"
    engine_options = {"ray_address": ray_address, "ray_init": ray_init, "partition": partition,
                      "gpus_per_trial": gpus_per_trial, "time_limit": time_limit, "jobs_folder": jobs_folder,
                      "slurm_parameters": slurm_parameters}
    wrong = [k for k, v in engine_options.items() if v is not None and not (
        (kind == "ray" and k in ("ray_address", "ray_init", "gpus_per_trial"))
        or (kind in ("slurm", "slurm-local") and k not in ("ray_address", "ray_init")))]
    if wrong:
        listed = ", ".join("--" + k.replace("_", "-") for k in wrong)
        raise BenchmarkError(f"{listed}: not an option of --executor {kind}")
    if kind == "inline":
        if len(devices) != 1 or (workers or 1) != 1:
            raise BenchmarkError("--executor inline runs one trial at a time on one device; use --executor local "
                                 "for several devices or workers")
        runner: Any = InlineExecutor(str(db_path), device=devices[0], threads=policy, **common)
        choice = thread_choice(first, policy)
    elif kind == "local":
        if workers is not None and len(devices) == 1:
            devices = devices * workers
        elif workers is not None and workers != len(devices):
            raise BenchmarkError(f"--workers {workers} does not match the {len(devices)} devices given: one worker "
                                 "process per device (or give one device and --workers N)")
        runner = LocalParallelExecutor(str(db_path), devices=devices, threads=policy, **common)
        choice = runner.thread_choice
    elif kind == "ray":
        if not _installed("ray"):
            raise BenchmarkError('--executor ray needs Ray: pip install "laptime[ray]"')
        from laptime.execution.ray_executor import RayExecutor

        runner = RayExecutor(str(db_path), device=devices[0], threads=policy, address=ray_address,
                             init_kwargs=ray_init, gpus_per_trial=gpus_per_trial, max_parallel=workers, **common)
        choice = runner.thread_choice
    else:
        if not _installed("submitit"):
            raise BenchmarkError(f'--executor {kind} needs submitit: pip install "laptime[slurm]"')
        from laptime.execution.slurm_executor import SlurmExecutor

        folder = Path(jobs_folder).expanduser() if jobs_folder else db_path.parent / "laptime-jobs"
        runner = SlurmExecutor(str(db_path), device=devices[0], threads=policy, folder=folder, partition=partition,
                               gpus_per_trial=gpus_per_trial, time_limit=60.0 if time_limit is None else time_limit,
                               local=kind == "slurm-local", slurm_parameters=slurm_parameters, max_parallel=workers,
                               **common)
        choice = runner.thread_choice
    runner.pruning = pruning

    log_line = None if quiet else (lambda message: print(message, file=sys.stderr))
    ensure_data(suite_obj.entries, log=log_line, workloads=workloads_factory() if workloads_factory else None)
    if command is None:
        command = _command(suite=suite_obj.name, algorithms=names, ruleset=ruleset, studies=studies,
                           executor=kind, device=",".join(devices), budget=mode, max_steps=max_steps)
    return Benchmark(suite=suite_obj, algorithms=names, ruleset=ruleset, studies=studies, trials=trials, seed=seed,
                     devices=devices, budget_mode=mode, column=column, plans=plans, db=db_path, executor_kind=kind,
                     executor=runner, thread_choice=choice, loggers=tuple(loggers), command=command,
                     scoring=dict(force=force, baseline=baseline, bootstrap=bootstrap, timing_noise=timing_noise),
                     out=Path(out) if out is not None else None, bench_file=bench_file,
                     checkpoint_dir=checkpoints.get("checkpoint_dir"), pruning=pruning)


def bench(
    suite: Any = "smoke",
    algorithms: str | Sequence[str] | None = None,
    *,
    progress: bool = False,
    on_result: Callable[[Any, Any], None] | None = None,
    **options: Any,
) -> BenchmarkResult:
    """Run a benchmark: ``suite`` × ``algorithms`` × ``ruleset``, stored, scored; returns a
    :class:`~laptime.benchmark.BenchmarkResult`.

    >>> import laptime
    >>> result = laptime.bench(suite="mnist1d", algorithms=["nadamw", "adamw"], budget="steps",
    ...                        max_steps=60, db="results.sqlite")          # doctest: +SKIP
    >>> result.scores, result.intervals                                    # doctest: +SKIP
    >>> result.to_pandas()                                                 # the leaderboard # doctest: +SKIP
    >>> result.report("report")                                            # HTML + markdown # doctest: +SKIP

    Arguments (those of ``laptime bench``): ``suite`` (a name, a Suite or (workload, variant,
    config) triples), ``algorithms`` (names, ``.py`` files, ``module:attr``; default the baselines),
    ``ruleset`` (``self`` or ``external``), ``studies``, ``trials``, ``budget_factor``, ``seed``,
    ``device`` (``cpu``, ``cuda``, ``cuda:0,cuda:1`` or a list; default the suite's), ``executor``
    (:data:`EXECUTORS`), ``workers`` (local: worker processes on one device; Ray/Slurm: at most this
    many trials at once), ``db`` (default ``$LAPTIME_DB`` or ``~/.local/share/laptime/results.sqlite``),
    ``out`` (a folder for the report; None: none written, see :meth:`BenchmarkResult.report`),
    ``budget`` (``auto``, ``steps``, ``time``), ``threads`` (per trial: a number or ``"auto"``),
    ``max_steps``, ``robust``, ``batch_size``, ``search_space``, ``resume``, ``retry_failed``,
    ``force``, ``by`` (``auto``, ``time``, ``robust``, ``steps``), ``baseline``, ``bootstrap``,
    ``timing_noise``, ``log`` (tracker specs), ``claims`` and ``claim_lease`` (seconds, default 60:
    see :mod:`laptime.execution.book`), ``ray_address``, ``ray_init`` (more ``ray.init`` arguments),
    ``partition``, ``gpus_per_trial``, ``time_limit`` (minutes per Slurm job), ``jobs_folder``
    (submitit's folder; default ``laptime-jobs`` beside the db), ``slurm_parameters``, ``command``
    (stored with the run), ``quiet`` (no data-preparation lines), ``checkpoint`` (default True:
    running trials are checkpointed outside the clock and a trial run again — by this or any
    executor, a requeued job — resumes with the same eval history), ``checkpoint_dir`` (default
    ``<db file name>.checkpoints`` beside the db), ``checkpoint_every`` (submission seconds, default
    60) / ``checkpoint_every_steps``, ``prune`` (``auto``: exact pruning under external tuning, none
    under self-tuning; ``none``, ``exact``, ``predict``: see :mod:`laptime.tuning.pruning`),
    ``predictor`` (``curve`` or ``rung``), ``prune_threshold``, ``prune_eta``,
    ``workloads_factory`` / ``algorithms_factory`` (registries,
    picklable for worker processes and jobs).
    ``progress`` shows a live display on stderr; ``on_result(plan, record)`` is called per trial.
    """
    return prepare(suite, algorithms, **options).run(progress=progress, on_result=on_result)
