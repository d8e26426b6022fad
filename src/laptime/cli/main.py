"""The ``laptime`` command line.

Commands: ``list``, ``run``, ``refine``, ``calibrate``, ``bench``, ``score``, ``report``, ``export``, ``import``, ``data``. Every user error (unknown names, bad files, a
missing dataset, an unavailable device, hyperparameters of the wrong type) ends with one ``error: …``
line on stderr and exit code 2, never a traceback, before anything runs or is stored. A trial that
fails or diverges is a recorded outcome, not a CLI error: it is stored and printed, and ``laptime
run`` (and ``refine``) then exits with status 1 (0 when the trial reached its target, ran out of budget or
completed). A reader that goes away (``laptime list | head``) ends the command quietly, status 141.
With checkpoints (``--checkpoint-dir``; on by default for ``bench``), SIGTERM makes the running trial
checkpoint at its next step and the command exit with status 75; the same command run again resumes it.
"""

from __future__ import annotations

import argparse
import errno
import os
import json
import math
import shlex
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# the benchmark room (laptime.benchmark: no torch) holds what `laptime bench` does; these names stay
# here for the other commands and for callers of this module
from laptime.benchmark.core import BASELINES
from laptime.benchmark.core import COLUMNS as _COLUMNS
from laptime.benchmark.core import EXECUTORS as EXECUTOR_CHOICES
from laptime.benchmark.core import budget_mode_for as _budget_mode
from laptime.benchmark.core import contention_warning
from laptime.benchmark.core import score_column as _score_column
from laptime.benchmark.core import write_report as _write_report
from laptime.errors import LaptimeError

USAGE_ERROR = 2  # LaptimeError.exit_code of a usage error


class CLIError(LaptimeError):
    """A user-facing error of the command line itself: printed as one line, exit code 2."""


#: Exit status after SIGTERM made a trial checkpoint and stop (``laptime.runner.checkpoint``): run it again.
PREEMPTED = 75


def _preempted() -> tuple[type[BaseException], ...]:
    """:class:`~laptime.runner.checkpoint.TrialPreempted` once its module is loaded (it cannot be
    raised before), so that a failing ``laptime list`` imports no torch to find out."""
    module = sys.modules.get("laptime.runner.checkpoint")
    return (module.TrialPreempted,) if module is not None else ()


# --------------------------------------------------------------------------- formatting helpers

def _fmt_seconds(value: float | None) -> str:
    """Seconds as the report writes them (about 3-4 significant digits) with their unit; ``—`` for
    a target not reached."""
    from laptime.report.core import fmt_seconds

    if value is None or (isinstance(value, float) and math.isinf(value)):
        return "—"
    return f"{fmt_seconds(value)} s"


def _json_safe(value: Any) -> Any:
    """Replace non-finite floats by ``None`` so the output is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _console(**kwargs: Any):
    """A rich console whose closed pipe (``laptime report | head``) raises :class:`BrokenPipeError`,
    which :func:`main` ends quietly with status 141, instead of rich's own ``SystemExit(1)``."""
    return _pipe_console_class()(**kwargs)


_PIPE_CONSOLE: type | None = None


def _pipe_console_class() -> type:
    global _PIPE_CONSOLE
    if _PIPE_CONSOLE is None:
        from rich.console import Console

        class PipeConsole(Console):
            def on_broken_pipe(self) -> None:
                self.quiet = True  # drop what is still buffered
                raise BrokenPipeError(errno.EPIPE, "the reader of laptime's output went away")

        _PIPE_CONSOLE = PipeConsole
    return _PIPE_CONSOLE


# --------------------------------------------------------------------------- list

def cmd_list(args: argparse.Namespace) -> int:
    from laptime.cli import catalog as catalog_mod

    catalog = catalog_mod.load()  # cached: no torch import unless the sources changed
    if args.json:
        print(json.dumps(catalog, indent=2))
        return 0
    _print_list(_console(), catalog)
    return 0


_LIST_TITLE = ("Workloads (name/variant@config; target: validation / test, 'provisional' until calibrated on the "
               "configuration's reference hardware; budget, eval period: submission s; steps/eval: the step budget "
               "and eval period in steps of step-budget mode)")
_LIST_COLUMNS = ("workload", "target", "budget", "eval", "step_hint", "steps/eval")


def _list_rows(catalog: dict[str, Any]) -> tuple[list[list[str]], list[list[str]]]:
    workloads = []
    for w in catalog["workloads"]:
        arrow = "≥" if w["direction"] == "max" else "≤"
        mark = " (provisional)" if w["provisional"] else ""
        workloads.append([w["key"], f"{w['metric']} {arrow} {w['validation_target']:g} / {w['test_target']:g}{mark}",
                          f"{w['budget_sec']:g} s", f"{w['eval_period_sec']:g} s", str(w["step_hint"]),
                          f"{w['budget_steps']}/{w['eval_period_steps']}"])
    algorithms = [[a["name"], a["summary"]] for a in catalog["algorithms"]]
    return workloads, algorithms


def _print_list(console, catalog: dict[str, Any]) -> None:
    """Rich tables on a terminal (cells fold rather than being cut, at any width); plain aligned
    text, one line per workload and algorithm, when the output is piped or redirected."""
    workloads, algorithms = _list_rows(catalog)
    if not console.is_terminal:
        lines = [_LIST_TITLE, *_plain_table(_LIST_COLUMNS, workloads, right=(2, 3, 4, 5)), "", "Algorithms",
                 *_plain_table(("algorithm", "summary"), algorithms)]
        console.file.write("\n".join(lines) + "\n")
        console.file.flush()
        return
    from rich.table import Table

    table = Table(title=_LIST_TITLE, title_justify="left")
    for i, name in enumerate(_LIST_COLUMNS):
        # every cell may fold onto more lines, none is cut: the narrow number columns keep their
        # width while the workload and target columns wrap
        table.add_column(name, justify="right" if i >= 2 else "left", overflow="fold")
    for row in workloads:
        table.add_row(*row)
    console.print(table)
    table = Table(title="Algorithms", title_justify="left")
    table.add_column("algorithm", overflow="fold")
    table.add_column("summary", overflow="fold")
    for row in algorithms:
        table.add_row(*row)
    console.print(table)


def _plain_table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [line(header), *(line(r) for r in rows)]


# --------------------------------------------------------------------------- run

def _search_space(algorithm, path: str | None):
    """``--search-space FILE`` if given, else the algorithm's own (``None`` without one)."""
    if path:
        from laptime.tuning import SearchSpace

        return SearchSpace.load(path)
    return algorithm.search_space()


def _own_search_space(algorithm, needed: bool):
    """The algorithm's own search space for ``laptime run``/``calibrate``, where only external tuning
    truly needs one: a space that cannot be read is an error only when ``needed`` (no self-tuning
    defaults to start from); otherwise it is left out with a note."""
    from laptime.tuning import SearchSpaceError

    try:
        return algorithm.search_space()
    except SearchSpaceError as exc:
        if needed:
            raise
        print(f"note: {exc}; {algorithm.name!r} runs with its self-tuning defaults (a search space is needed "
              "only under --ruleset external)", file=sys.stderr)
        return None


def _hyperparameters(algorithm, text: str | None, space: Any = "own") -> dict[str, Any]:
    """Self-tuning defaults, overlaid with the user's point (file or inline JSON).

    An algorithm without self-tuning defaults (an AlgoPerf submission under external tuning) given
    no point gets the first point of its search space, as AlgoPerf's runner starts its tuning.
    """
    from laptime.tuning import check_point_types, load_point

    hp = dict(algorithm.self_tuning_defaults)
    if space == "own":
        space = _own_search_space(algorithm, needed=not text and not hp)
    if not text and not hp and space is not None:
        point = space.points(1, seed=0)[0]
        print(f"note: hyperparameters: the first point of {algorithm.name!r}'s search space "
              f"({json.dumps(point, sort_keys=True)}); --hparams chooses another", file=sys.stderr)
        return dict(point)
    if text:
        point = load_point(text)
        known = set(hp) | set(space.names if space is not None else ())
        unknown = sorted(set(point) - known)
        if known and unknown:
            raise CLIError(f"unknown hyperparameter(s) {', '.join(map(repr, unknown))} for algorithm "
                           f"{algorithm.name!r}; it knows: {', '.join(sorted(known))}")
        # a value of the wrong type is refused here, not stored as a failed trial
        check_point_types(point, space, hp, f"algorithm {algorithm.name!r}")
        hp.update(point)
    return hp


def cmd_run(args: argparse.Namespace) -> int:
    from laptime.algorithms import default_algorithms
    from laptime.execution import TrialPlan, execute_plan, resolve_device
    from laptime.execution.plan import thread_choice
    from laptime.results import ResultsStore
    from laptime.runner import TrialOptions
    from laptime.runner.progress import trial_progress
    from laptime.workloads import default_workloads

    workloads = default_workloads()
    algorithms = default_algorithms()
    # Validate every name and file before anything runs.
    device = resolve_device(args.device)
    workload = workloads.create(args.workload, variant=args.variant, config=args.config, device="cpu")
    algorithm = algorithms.resolve(args.algorithm)
    hp = _hyperparameters(algorithm, args.hparams, _search_space(algorithm, args.search_space)
                          if args.search_space else "own")
    if args.seed < 0:
        raise CLIError("--seed must be >= 0")
    _check_batch_size(args.batch_size)
    budget_mode = _budget_mode(args.budget, device)
    threads = thread_choice(device, args.threads)
    loggers = _loggers(args)
    options = TrialOptions(eval_every_steps=args.eval_every_steps, max_steps=args.max_steps, robust=not args.no_robust,
                           **_checkpoint_options(args, None))
    plan = TrialPlan(workload=args.workload, algorithm=args.algorithm, hyperparameters=hp, seed=args.seed,
                     variant=workload.variant, config=workload.config, budget_factor=args.budget_factor,
                     budget_mode=budget_mode, batch_size=args.batch_size)
    db_path = _db_path(args)
    _ensure_data([(args.workload, workload.variant, workload.config)], quiet=args.json)
    show_progress = not args.json and not args.quiet
    with ResultsStore(db_path) as store:
        run_id = store.start_run(args.command_line, {"device": str(device), "budget_mode": budget_mode})
        record = execute_plan(plan, device=device, store=store, run_id=run_id, workloads=workloads,
                              algorithms=algorithms, options=options, threads=threads, loggers=loggers,
                              progress=trial_progress() if show_progress else None)
    summary = _trial_summary(record, db_path)
    if args.json:
        print(json.dumps(_json_safe(summary), indent=2))
    else:
        _print_summary(summary)
    return trial_exit_code(record)


def _trial_summary(record, db_path: Path) -> dict[str, Any]:
    """What `laptime run` prints about a stored trial (JSON-ready but for non-finite floats)."""
    return {
        "trial_id": record.trial_id,
        "db": str(db_path),
        "workload": f"{record.workload}/{record.variant}@{record.config}",
        "algorithm": record.algorithm,
        "seed": record.seed,
        "device": record.device,
        "outcome": record.outcome.value,
        "time_to_target": record.time_to_target,
        "robust_time_to_target": record.robust_time_to_target,
        "steps_to_target": record.steps_to_target,
        "submission_time": record.submission_time,
        "robust_submission_time": record.robust_submission_time,
        "work_to_target": record.work_to_target,
        "reference_cost": record.reference_cost,
        "own_reference_cost": record.measurement.get("probes", {}).get("own_reference_sec", record.reference_cost),
        "wall_time": record.wall_time,
        "steps": record.steps,
        "budget_mode": record.budget_mode,
        "budget_sec": record.budget_sec,
        "budget_steps": record.budget_steps,
        "batch_size": record.measurement.get("batch_size"),
        "threads": record.measurement.get("threads", {}).get("threads"),
        "contention": record.contention,
        "target": {"metric": record.target_metric, "direction": record.target_direction,
                   "validation": record.target_value},
        "final_metrics": record.evals[-1].metrics if record.evals else {},
        "hyperparameters": record.hyperparameters,
        "error": record.error,
    }


#: ``laptime run``'s exit status when the trial itself failed (an exception in the algorithm) or diverged.
TRIAL_FAILED = 1


def trial_exit_code(*records) -> int:
    """0 when every trial finished (reached, budget, complete), :data:`TRIAL_FAILED` when one failed
    or diverged (its record is stored and printed all the same)."""
    from laptime.records import Outcome

    bad = {Outcome.FAILED.value, Outcome.DIVERGED.value}
    return TRIAL_FAILED if any(getattr(r.outcome, "value", r.outcome) in bad for r in records) else 0


def _print_summary(s: dict[str, Any]) -> None:
    from rich.table import Table

    console = _console()
    colour = {"reached": "green", "budget": "yellow", "complete": "yellow"}.get(s["outcome"], "red")
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    arrow = "≥" if s["target"]["direction"] == "max" else "≤"
    metric_key = f"validation/{s['target']['metric']}"
    final = s["final_metrics"].get(metric_key)
    if s["budget_mode"] == "steps":
        budget = f"{s['steps']} of {s['budget_steps']} steps (step budget)"
    else:
        budget = f"{s['submission_time']:.2f} s of {s['budget_sec']:g} s budget, {s['steps']} steps"
    robust_sub = s["robust_submission_time"]
    rows = [
        ("trial", f"#{s['trial_id']} in {s['db']}"),
        ("workload", s["workload"]),
        ("algorithm", f"{s['algorithm']}  (seed {s['seed']}, {s['device']}, {s['threads']} thread(s), "
                      f"batch size {s['batch_size']})"),
        ("outcome", f"[{colour}]{s['outcome']}[/{colour}]"),
        ("time to target", f"{_fmt_seconds(s['time_to_target'])} raw, {_fmt_seconds(s['robust_time_to_target'])} robust"),
        ("steps to target", str(s["steps_to_target"]) if s["steps_to_target"] is not None else "—"),
        ("target", f"{metric_key} {arrow} {s['target']['validation']:g}"),
        ("last eval", f"{final:.4f}" if final is not None else "—"),
        ("budget", budget),
        ("submission time", f"{s['submission_time']:.2f} s raw"
                            + (f", {robust_sub:.2f} s robust" if robust_sub is not None else "")),
        ("wall time", f"{s['wall_time']:.2f} s"),
    ]
    for row in rows:
        table.add_row(*row)
    console.print(table)
    reasons = s["contention"].get("reasons") or []
    if reasons:
        console.print(f"[yellow]warning:[/yellow] the machine was busy during this trial ({'; '.join(reasons)}): "
                      "its raw time is inflated; the robust time discounts it"
                      + ("; steps and outcome are not affected (step budget)" if s["budget_mode"] == "steps" else ""))
    if s["error"]:
        console.print("[red]error from the trial:[/red]")
        console.print(s["error"].rstrip().splitlines()[-1])


def _db_path(args: argparse.Namespace) -> Path:
    """The results database a command writes to: ``--db``, else ``$LAPTIME_DB``, else the default
    location (``~/.local/share/laptime/results.sqlite``, whose folder the store creates). A ``--db`` or
    ``$LAPTIME_DB`` in a folder that does not exist is refused: a typo must not create folders."""
    from laptime.results import default_store_path

    if getattr(args, "db", None):
        path, what = Path(args.db).expanduser(), f"--db {args.db}"
    elif os.environ.get("LAPTIME_DB"):
        path, what = default_store_path(), f"$LAPTIME_DB={os.environ['LAPTIME_DB']}"
    else:
        return default_store_path()
    folder = path.parent
    if not folder.is_dir():
        why = "is not a folder" if folder.exists() else "does not exist"
        raise CLIError(f"{what}: {folder} {why}; create the folder first or choose another path (laptime creates "
                       "only its default location, ~/.local/share/laptime/)")
    return path


def _check_batch_size(value: int | None) -> None:
    if value is not None and value < 1:
        raise CLIError(f"--batch-size must be >= 1, got {value}")


def _ensure_data(entries, quiet: bool = False) -> None:
    """Make every dataset the (workload, variant, config) entries read ready before anything is
    timed or stored. Instances are asked, since a configuration may pick its data source."""
    from laptime.benchmark.core import ensure_data

    ensure_data(entries, log=None if quiet else (lambda message: print(message, file=sys.stderr)))


def _command_line(argv: Sequence[str]) -> str:
    return "laptime " + " ".join(shlex.quote(a) for a in argv)


def cmd_calibrate(args: argparse.Namespace) -> int:
    from laptime.cli import calibrate

    return calibrate.run(args, hyperparameters=_hyperparameters, ensure_data=_ensure_data,
                         command=args.command_line, json_safe=_json_safe)


def cmd_refine(args: argparse.Namespace) -> int:
    from laptime.cli import refine

    return refine.run(args)


# --------------------------------------------------------------------------- export

def cmd_export(args: argparse.Namespace) -> int:
    from laptime.results import ResultsStore, default_store_path

    db_path = Path(args.db) if args.db else default_store_path()
    if not db_path.exists():
        raise CLIError(f"no results database at {db_path} (run a trial first, or pass --db)")
    with ResultsStore(db_path) as store:
        n = _export_table(store, args)
    print(f"wrote {n} {args.table} rows to {args.out}")
    return 0


# --------------------------------------------------------------------------- score

def cmd_score(args: argparse.Namespace) -> int:
    from laptime.scoring import read_times_csv, score_records, score_table

    if (args.times is None) == (args.db is None):
        raise CLIError("give exactly one of --times FILE.csv and --db DB (the latest benchmark or import in it, "
                       "or --run ID)")
    if args.run is not None and args.db is None:
        raise CLIError("--run needs --db")
    common = dict(tau_max=args.tau_max, variants=None if args.no_variant_gate else "auto", baseline=args.baseline,
                  n_bootstrap=args.bootstrap, seed=args.seed, timing_noise=args.timing_noise,
                  trial_choice=args.trial_choice, tau_points=args.tau_points)
    if args.times is not None:
        rows = read_times_csv(args.times)
        report = score_table(rows, column=_COLUMNS["time" if args.by == "auto" else args.by], **common)
    else:
        records, meta, _ = _stored_run(Path(args.db), args.run, all_trials=False)
        report = score_records(records, force=args.force, column=_report_column(args.by, meta, records), **common)
    if args.json:
        print(report.to_json())
    else:
        print(report.format_table())
    return 0


# --------------------------------------------------------------------------- import

def cmd_import(args: argparse.Namespace) -> int:
    from laptime.importers.algoperf import import_into_store, read_tree
    from laptime.results import ResultsStore

    _db_path(args)  # a bad --db before reading the logs
    result = read_tree(args.logdir, targets=args.targets, ruleset=args.ruleset, budget_factor=args.budget_factor,
                       scope=args.workloads, name_from=args.name_from)
    skipped = result.skip_counts()
    if result.n_trials == 0:
        why = "; ".join(f"{n} {reason} (e.g. {example})" for reason, n, example in skipped[:3])
        raise CLIError(f"no trial to import in {args.logdir}" + (f": skipped {why}" if why else ""))
    if args.strict and result.skips:
        reason, n, example = skipped[0]
        raise CLIError(f"--strict: {len(result.skips)} folder(s) could not be imported, e.g. {n} {reason}: {example}; "
                       "nothing was stored")
    db_path = _db_path(args)
    with ResultsStore(db_path) as store:
        run_ids = import_into_store(store, result, args.command_line)
    runs = [(run_id, run) for run_id, run in zip(run_ids, [r for r in result.runs if r.records])]
    if args.json:
        print(json.dumps({
            "db": str(db_path), "layout": result.layout,
            "targets": {"version": result.table.version, "source": result.table.source},
            "runs": [{"run_id": run_id, "ruleset": run.ruleset, "trials": len(run.records),
                      "submissions": run.submissions, "budget_factor": run.budget_factor,
                      "outcomes": dict(sorted(Counter(r.outcome.value for r in run.records).items()))}
                     for run_id, run in runs],
            "imported": result.n_trials, "skipped": len(result.skips),
            "skips": [{"reason": reason, "count": n, "example": example} for reason, n, example in skipped],
            "notes": dict(result.notes), "hints": result.hints,
        }, indent=2))
        return 0
    print(f"AlgoPerf logs in {result.logdir} ({result.layout}); {result.table.name}")
    for run_id, run in runs:
        outcomes = Counter(r.outcome.value for r in run.records)
        factor = f"{run.budget_factor:g} × max_allowed_runtime_sec"
        print(f"imported {len(run.records)} trials ({', '.join(f'{n} {o}' for o, n in sorted(outcomes.items()))}) of "
              f"{run.ruleset} tuning, {len(run.submissions)} submission(s): {', '.join(run.submissions)}; "
              f"budget {factor} -> run {run_id} in {db_path}")
    if skipped:
        print(f"skipped {len(result.skips)} folder(s):")
        for reason, n, example in skipped:
            print(f"  {n:5d}  {reason}  (e.g. {example})")
    else:
        print("skipped nothing")
    for note, n in sorted(result.notes.items()):
        print(f"note: {n} trial(s): {note}")
    for hint in result.hints:
        print(f"hint: {hint}")
    for run_id, _ in runs:
        print(f"next: laptime score --db {shlex.quote(str(db_path))} --run {run_id} [--trial-choice algoperf]; "
              f"laptime report --db {shlex.quote(str(db_path))} --run {run_id}")
    return 0


# --------------------------------------------------------------------------- bench

def _bench_options(args: argparse.Namespace) -> dict[str, Any]:
    """``laptime bench``'s options as :func:`laptime.benchmark.prepare`'s arguments."""
    explicit_db = getattr(args, "db", None) or os.environ.get("LAPTIME_DB")
    return dict(
        ruleset=args.ruleset, studies=args.studies, trials=args.trials, budget_factor=args.budget_factor,
        seed=args.seed, device=args.device, executor=args.executor, workers=args.workers,
        db=_db_path(args) if explicit_db else None, out=args.out, budget=args.budget, threads=args.threads,
        max_steps=args.max_steps, robust=not args.no_robust, batch_size=args.batch_size,
        search_space=args.search_space, resume=not args.no_resume, retry_failed=args.retry_failed,
        force=args.force, by=args.by, baseline=args.baseline, bootstrap=args.bootstrap,
        timing_noise=args.timing_noise, log=getattr(args, "log", None) or (), claim_lease=args.claim_lease,
        ray_address=args.ray_address, partition=args.partition, gpus_per_trial=args.gpus_per_trial,
        time_limit=args.time_limit, jobs_folder=args.jobs_folder, command=args.command_line, quiet=args.json,
        bench_file=getattr(args, "bench_file", None), checkpoint=not args.no_checkpoint,
        checkpoint_dir=args.checkpoint_dir, checkpoint_every=args.checkpoint_every,
        checkpoint_every_steps=args.checkpoint_every_steps, prune=args.prune, predictor=args.predictor,
        prune_threshold=args.prune_threshold, prune_eta=args.prune_eta)


def _checkpoint_options(args: argparse.Namespace, db_path: Path | None) -> dict[str, Any]:
    """``TrialOptions`` fields from ``--checkpoint-dir/--checkpoint-every/--checkpoint-every-steps``
    (:func:`laptime.benchmark.core.checkpoint_options`; ``laptime run``: only with a folder)."""
    from laptime.benchmark.core import checkpoint_options

    return checkpoint_options(not getattr(args, "no_checkpoint", False), args.checkpoint_dir, args.checkpoint_every,
                              args.checkpoint_every_steps, db_path)


def cmd_bench(args: argparse.Namespace) -> int:
    """Argument parsing and printing around :func:`laptime.benchmark.prepare` / ``Benchmark.run``."""
    from laptime.benchmark import prepare

    if getattr(args, "config", None):
        _apply_bench_file(args)  # the file's options, under those given on the command line
    benchmark = prepare(args.suite, args.algorithm, **_bench_options(args))
    console = _console()

    def announce(b, run_id: int) -> None:
        if args.json:
            return
        budget_text = "step budgets" if b.budget_mode == "steps" else "time budgets"
        where = ", ".join(b.devices) + ("" if b.executor_kind in ("inline", "local") else f" via {b.executor_kind}")
        console.print(f"[bold]laptime bench[/bold]: suite [cyan]{b.suite.name}[/cyan] "
                      f"({len(b.suite.entries)} workloads) × {len(b.algorithms)} algorithms, ruleset {b.ruleset} "
                      f"→ {len(b.plans)} trials on {where} ({budget_text}, {b.thread_choice.threads} "
                      f"thread(s) per trial); results in {b.db}")
        if b.loggers:
            console.print("logging each trial to " + ", ".join(str(spec) for spec in b.loggers))

    result = benchmark.run(progress=not args.json, on_start=announce)
    html_path, md_path = result.report_paths
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    _print_leaderboard(console, result.score, result.trials)
    if result.warning:
        console.print(f"[yellow]warning:[/yellow] {result.warning}")
    _print_tuning_cost(console, result.tuning_cost)
    checkpoints = result.checkpoints
    if checkpoints is not None and checkpoints["written"]:
        console.print(f"checkpoints: {checkpoints['written']} written by {checkpoints['trials']} trials "
                      f"({checkpoints['write_sec']:.1f} s of wall time, outside the submission time), largest "
                      f"{checkpoints['max_bytes'] / 1e6:.1f} MB (one file per running trial), "
                      f"{checkpoints['resumes']} resumes; {checkpoints['left']} left in {checkpoints['dir']}")
    console.print(f"report: [bold]{html_path}[/bold]  (markdown: {md_path})")
    return 0


def _print_tuning_cost(console, cost: dict[str, Any]) -> None:
    """One line: what the trials cost, and (with pruned trials) at most what pruning saved."""
    total = cost["total"]
    line = (f"tuning cost: {total['seconds']:.0f} trial-seconds, {total['steps']} steps in {total['trials']} trials")
    if total["pruned"]:
        line += (f"; {total['pruned']} pruned, saving at most {total['saved_seconds_max']:.0f} trial-seconds "
                 f"({total['saved_steps_max']:.0f} steps: the rest of their budgets)")
    console.print(line)


def _print_leaderboard(console, score, records) -> None:
    from rich.table import Table

    from laptime.scoring import COLUMN_NAMES

    table = Table(title="Leaderboard (benchmark score: area under the performance profile, τmax = "
                        f"{score.tau_max:g}; scored on {COLUMN_NAMES[score.column]})", title_justify="left")
    table.add_column("rank", justify="right")
    table.add_column("algorithm")
    table.add_column("score", justify="right")
    boot = score.bootstrap
    if boot is not None:
        label = f"{int(boot.confidence * 100)}% CI" + (" ¹" if boot.timing_noise else "")
        table.add_column(label, justify="right")
    unit = "steps" if score.column == "steps_to_target" else "s"
    for w in score.workloads:
        table.add_column(f"{w} ({unit})", justify="right")
    for name in score.algorithms:
        row = [str(score.ranks[name]), name, f"{score.scores[name]:.3f}"]
        if boot is not None:
            lo, hi = boot.score_ci[name]
            row.append(f"[{lo:.3f}, {hi:.3f}]")
        row += ["∞" if math.isinf(score.times[name][w]) else f"{score.times[name][w]:.{2 if unit == 's' else 0}f}"
                for w in score.workloads]
        table.add_row(*row)
    console.print(table)
    if boot is not None and boot.timing_noise:
        console.print(f"¹ bootstrap over studies and over the robust time's measurement noise "
                      f"(σ = {boot.timing_noise:.0%} per time)")
    counts: dict[str, int] = {}
    for r in records:
        counts[r.outcome.value] = counts.get(r.outcome.value, 0) + 1
    console.print("trials: " + ", ".join(f"{n} {o}" for o, n in sorted(counts.items())))
    if score.pruning is not None:
        colour = "" if score.pruning["exact"] else "[yellow]"
        console.print(f"{colour}pruning: {score.pruning['text']}", markup=bool(colour))


# --------------------------------------------------------------------------- report

def _stored_run(db_path: Path, run_id: int | None, all_trials: bool):
    """The trials (with their evals) of the latest stored benchmark or import, of run ``run_id``, or
    every trial (``all_trials``); with the run's meta and a description."""
    from laptime.results import ResultsStore

    if not db_path.exists():
        raise CLIError(f"no results database at {db_path} (run `laptime bench` or `laptime import` first, or pass --db)")
    with ResultsStore(db_path) as store:
        meta: dict[str, Any] = {}
        if all_trials:
            records = store.trials(with_evals=True)
            what = "all trials"
        else:
            runs = [r for r in store.runs() if r["meta"].get("trial_ids")]
            if run_id is not None:
                runs = [r for r in runs if r["id"] == run_id]
                if not runs:
                    raise CLIError(f"run {run_id} is not a finished benchmark or import in {db_path}")
            if not runs:
                raise CLIError(f"no finished benchmark in {db_path}: run `laptime bench` (or `laptime import`), "
                               "or pass --all")
            run = runs[-1]
            meta = run["meta"]
            records = [store.get_trial(i) for i in run["meta"]["trial_ids"]]
            kind = "import" if meta.get("kind") == "import" else "benchmark run"
            what = f"{kind} {run['id']} ({run['command']})"
    if not records:
        raise CLIError(f"no trials in {db_path}")
    return records, meta, what


def _report_column(by: str, meta: dict[str, Any], records) -> str:
    if by == "auto":  # what the benchmark scored, else by the trials' budget mode
        return meta.get("score_column") or _score_column("auto", "steps" if records and all(
            r.budget_mode == "steps" for r in records) else "time")
    return _COLUMNS[by]


def cmd_replay(args: argparse.Namespace) -> int:
    """``laptime replay``: what pruning would have saved and scored on a stored unpruned benchmark."""
    from laptime.tuning.prune_study import compare, format_comparison, prediction_quality
    from laptime.tuning.pruning import PruningPolicy

    records, meta, what = _stored_run(Path(args.db) if args.db else _default_db(), args.run, False)
    if any(r.outcome.value == "pruned" for r in records):
        raise CLIError(f"{what} has pruned trials: replay needs a benchmark run with --prune none")
    if not any(r.ruleset == "external" for r in records):
        raise CLIError(f"{what} has no external-tuning trials: only studies of several trials can be pruned")
    column = _report_column(args.by, meta, records)
    policy = PruningPolicy(mode=args.prune, by=column, predictor=args.predictor, threshold=args.prune_threshold,
                           eta=args.prune_eta)
    result = compare(records, policy, n_bootstrap=args.bootstrap, force=args.force)
    quality = prediction_quality(records, policy) if policy.mode == "predict" else None
    if args.json:
        print(json.dumps({"run": what, **result, "prediction_quality": quality}, indent=2, default=str))
        return 0
    print(f"{what}: {len(records)} trials")
    print(format_comparison(result))
    if quality is not None:
        brier = "" if quality["brier"] is None else f"; Brier score of P(reach) {quality['brier']:.3f}"
        print(f"  predictions in shadow on every unpruned trial: {quality['predictions']} made, would stop "
              f"{quality['trials_stopped']} trials, {quality['trials_stopped_wrongly']} of them wrongly (they met "
              f"the target in budget and before their study's best so far){brier}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from laptime.scoring import score_records

    records, meta, what = _stored_run(Path(args.db) if args.db else _default_db(), args.run, args.all)
    column = _report_column(args.by, meta, records)
    score = score_records(records, force=args.force, baseline=args.baseline, n_bootstrap=args.bootstrap, seed=0,
                          column=column, timing_noise=args.timing_noise, trial_choice=args.trial_choice,
                          tau_points=args.tau_points)
    html_path, md_path = _write_report(records, score, Path(args.out), f"laptime report — {what}")
    _print_leaderboard(_console(), score, records)
    warning = contention_warning(records, column)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"report: {html_path}  (markdown: {md_path})")
    return 0


def _default_db() -> Path:
    from laptime.results import default_store_path

    return default_store_path()


# --------------------------------------------------------------------------- results where you work

_LOG_HELP = ("log every trial to an experiment tracker (repeatable): tensorboard[:DIR] (event files; default DIR "
             "runs), mlflow[:URI] (a tracking URI, an SQLite .db file or a folder; experiment "
             "$MLFLOW_EXPERIMENT_NAME or laptime), "
             "wandb[:PROJECT] (WANDB_MODE=offline keeps it local); each needs its extra, e.g. "
             'pip install "laptime[tensorboard]"')


def _add_log_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log", action="append", metavar="KIND[:TARGET]", help=_LOG_HELP)


def _loggers(args: argparse.Namespace):
    """``--log`` values as checked logger specs (package installed, folder or experiment ready),
    before anything runs; a bad one is a one-line error."""
    from laptime.loggers import check_loggers, parse_loggers

    specs = parse_loggers(getattr(args, "log", None))
    check_loggers(specs)
    return specs


#: ``laptime export --format``: the file suffixes that choose a format when it is not given.
_EXPORT_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def _export_table(store, args: argparse.Namespace) -> int:
    """Write ``args.table`` to ``args.out`` as CSV or Parquet (``--format``, else by the suffix)."""
    fmt = getattr(args, "format", None) or _EXPORT_SUFFIXES.get(Path(args.out).suffix.lower(), "csv")
    if fmt == "parquet":
        return store.export_parquet(args.out, table=args.table)
    return store.export_csv(args.out, table=args.table)


def _explicit_options(args: argparse.Namespace) -> set[str]:
    """The options of ``args.command`` given on its command line (as opposed to defaults)."""
    if not getattr(args, "command_line", None):  # called without main(): no command line to look at
        return set()
    parser = build_parser()
    for action in parser._actions:  # noqa: SLF001 - argparse has no public walk over subparsers
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for sub in action.choices.values():
                for option in sub._actions:  # noqa: SLF001
                    option.default = argparse.SUPPRESS
    namespace, _ = parser.parse_known_args(shlex.split(args.command_line)[1:])
    return set(vars(namespace)) - {"command", "func"}


def _apply_bench_file(args: argparse.Namespace) -> None:
    """``laptime bench --config FILE``: options from a TOML file; the command line wins."""
    from laptime.cli import benchfile

    applied = benchfile.apply(args, args.config, _explicit_options(args))
    args.bench_file = {"path": str(Path(args.config).expanduser().resolve()), "options": applied}


# --------------------------------------------------------------------------- parser

_DB_HELP = ("results database (default: $LAPTIME_DB, else ~/.local/share/laptime/results.sqlite); the folder of "
            "a --db or $LAPTIME_DB must exist")

_EXECUTOR_HELP = ("where trials run: auto (default: inline for one device, else one worker process per device), "
                  "inline, local (worker processes), ray (one Ray task per trial; pip install \"laptime[ray]\"), "
                  "slurm (one Slurm job per trial through submitit; pip install \"laptime[slurm]\"), slurm-local "
                  "(submitit's local executor: the Slurm path on this machine). Whatever runs the trials, this "
                  "process alone writes the database; see docs/cluster.md")

_BY_HELP = ("what the leaderboard scores: raw submission time to target (time; AlgoPerf's rule, for a dedicated "
            "machine), the contention-robust time (robust) or steps (steps); default auto: robust with step "
            "budgets, raw time with time budgets")


_TRIAL_CHOICE_HELP = ("which trial of a study counts: fastest (default: the one with the smallest time or "
                      "steps to target) or algoperf (AlgoPerf's scoring code: the one that met the target at the "
                      "earliest eval index, even if slower; reproduces published AlgoPerf scores)")

_TAU_POINTS_HELP = ("integrate the performance profile by the trapezoid rule on N evenly spaced taus, as AlgoPerf's "
                    "scoring code does with N = 100 (default: the exact integral)")

_NOISE_HELP = ("relative measurement noise of each time, added to the bootstrap (default: 0.03 for the robust time, "
               "as measured for it, and 0 for raw times and steps)")


def _add_measurement_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--budget", choices=("auto", "steps", "time"), default="auto",
                   help="budget mode: steps (the workload's step budget; outcomes and steps to target do not depend "
                        "on the machine's load) or time (submission seconds, AlgoPerf's rule for dedicated "
                        "hardware); default auto: steps on the CPU, time on CUDA")
    p.add_argument("--threads", default=None, metavar="N|auto",
                   help="torch intra-op threads per trial (default: 1 on the CPU, so the numbers do not depend on "
                        "the core count or the load; auto: the free cores this process may use)")
    p.add_argument("--no-robust", action="store_true",
                   help="do not measure the robust time (no speed probes between windows of work)")
    p.add_argument("--batch-size", type=int, metavar="N",
                   help="train with batch size N instead of asking the algorithm's get_batch_size (recorded with "
                        "the trial; part of its plan key)")
    p.add_argument("--search-space", metavar="FILE",
                   help="the algorithm's search space (AlgoPerf's tuning_search_space.json format), instead of "
                        "its own or the tuning_search_space.json beside a submission")


def _add_checkpoint_arguments(p: argparse.ArgumentParser, bench: bool) -> None:
    where = ("default: <database file name>.checkpoints beside the database" if bench
             else "default: no checkpoints")
    p.add_argument("--checkpoint-dir", metavar="DIR",
                   help=f"checkpoint each running trial in DIR (one file per trial, named by its plan key, "
                        f"removed once the trial is stored); the same command run again resumes it with the "
                        f"same eval history; SIGTERM checkpoints and exits with status 75 ({where})")
    p.add_argument("--checkpoint-every", type=float, metavar="SECONDS",
                   help="checkpoint every SECONDS of submission time (default 60 when no interval is given; "
                        "checkpoints are not charged to the submission time)")
    p.add_argument("--checkpoint-every-steps", type=int, metavar="N",
                   help="checkpoint every N steps (deterministic points, for step budgets)")
    if bench:
        p.add_argument("--no-checkpoint", action="store_true", help="do not checkpoint running trials")


def build_parser() -> argparse.ArgumentParser:
    from laptime import __version__

    parser = argparse.ArgumentParser(
        prog="laptime",
        description="Benchmark neural-network training algorithms by time to a fixed validation target.",
    )
    parser.add_argument("--version", action="version", version=f"laptime {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="list workloads (targets, budgets) and algorithms")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("run", help="run one trial, store it and print a summary",
                       epilog="exit status: 0 when the trial reached its target, ran out of budget or completed; "
                              "1 when it failed or diverged (stored and printed all the same); 2 for a usage "
                              "error (bad names, files or hyperparameters: nothing is run or stored); 75 when "
                              "SIGTERM stopped it after a checkpoint (with --checkpoint-dir: run it again to resume)")
    p.add_argument("--workload", "-w", required=True, help="workload name (see `laptime list`)")
    p.add_argument("--algorithm", "-a", required=True,
                   help="algorithm name, a path to a .py file, or module:attribute")
    p.add_argument("--variant", help="workload variant (default: the base variant)")
    p.add_argument("--config", help="workload configuration, e.g. cpu or gpu (default: the workload's first)")
    p.add_argument("--hparams", help="hyperparameters: a JSON file or inline JSON object, laid over the "
                                     "algorithm's self-tuning defaults")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--db", help=_DB_HELP)
    p.add_argument("--budget-factor", type=float, default=1.0, help="multiply the budget (self-tuning: 1.5)")
    _add_measurement_arguments(p)
    p.add_argument("--eval-every-steps", type=int, help="evaluate every N steps instead of every eval period "
                                                        "of submission time")
    p.add_argument("--max-steps", type=int, help="stop after N steps")
    _add_checkpoint_arguments(p, bench=False)
    p.add_argument("--json", action="store_true", help="print the result as JSON (no progress display)")
    p.add_argument("--quiet", "-q", action="store_true",
                   help="no progress display (else a live display on a terminal, and plain progress lines on "
                        "stderr, at most one every 5 s, in a log file or a pipe)")
    _add_log_argument(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("calibrate", help="set a workload's targets and budget: tune the reference algorithm, "
                                         "rerun the best point with several seeds, take medians")
    from laptime.cli import calibrate as calibrate_cli

    calibrate_cli.add_arguments(p)
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("refine", help="schedule refinement from gradient norms (Defazio et al. 2023): a run that "
                                      "records them, then the same run with the refined schedule; both stored",
                       epilog="exit status as for run: 1 when a trial failed or diverged (or the recording gave no "
                              "usable norms), 2 for a usage error")
    from laptime.cli import refine as refine_cli

    refine_cli.add_arguments(p)
    p.set_defaults(func=cmd_refine)

    p = sub.add_parser("export", help="export stored trials or eval rows as CSV or Parquet")
    p.add_argument("--out", "-o", required=True, help="file to write (CSV, or Parquet: see --format)")
    p.add_argument("--table", choices=("trials", "evals"), default="trials")
    p.add_argument("--db", help="results database (default: $LAPTIME_DB or the user data dir)")
    p.add_argument("--format", choices=("csv", "parquet"), default=None,
                   help="file format (default: by the --out suffix, .parquet/.pq for Parquet, else csv); "
                        'Parquet needs pip install "laptime[parquet]"')
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("bench", help="run a benchmark (suite × algorithms × ruleset), score it and write the report")
    p.add_argument("--suite", default="smoke", help="suite name (default: smoke, the CPU suite)")
    p.add_argument("--algorithm", "-a", action="append",
                   help="algorithm (repeatable; name, .py file or module:attr); default: the baselines "
                        + ", ".join(BASELINES))
    p.add_argument("--ruleset", choices=("external", "self"), default="self",
                   help="self-tuning (default: each algorithm's defaults, budget × --budget-factor) or external "
                        "tuning (quasi-random points from the algorithm's search space, studies × trials)")
    p.add_argument("--studies", type=int, help="studies (default: 3 for external tuning, 1 for self-tuning)")
    p.add_argument("--trials", type=int, default=5, help="trials per study, external tuning (default 5)")
    p.add_argument("--budget-factor", type=float, default=1.5, help="self-tuning budget factor (default 1.5)")
    p.add_argument("--seed", type=int, default=0, help="benchmark seed: points and trial seeds derive from it")
    p.add_argument("--device", default=None,
                   help="device, or a comma-separated list for one worker process per device (cuda:0,cuda:1); "
                        "default: the suite's (cpu for smoke/cpu/mnist1d/lite_cpu, cuda for lite/lite_webp)")
    p.add_argument("--executor", choices=EXECUTOR_CHOICES, default="auto", help=_EXECUTOR_HELP)
    p.add_argument("--workers", type=int, metavar="N",
                   help="local: N worker processes on the one device given; ray, slurm: at most N trials at once "
                        "(default: as many as the cluster schedules; slurm-local: one per core)")
    p.add_argument("--ray-address", metavar="ADDR",
                   help="--executor ray: the cluster to join (ray://HOST:10001 or HOST:6379; default $RAY_ADDRESS, a "
                        "cluster started on this machine, else a local one for this benchmark)")
    p.add_argument("--partition", metavar="P", help="--executor slurm: the Slurm partition")
    p.add_argument("--gpus-per-trial", type=int, metavar="N",
                   help="--executor ray/slurm: GPUs each trial asks for (default 1 with --device cuda, else 0)")
    p.add_argument("--time-limit", type=float, metavar="MIN",
                   help="--executor slurm: minutes per job (default 60)")
    p.add_argument("--jobs-folder", metavar="DIR",
                   help="--executor slurm: submitit's folder for job pickles and logs, on a file system the nodes "
                        "share (default: laptime-jobs beside the database)")
    p.add_argument("--claim-lease", type=float, metavar="SECONDS",
                   help="another benchmark on the same database takes over a plan whose claim was not renewed for "
                        "this long (default 60; the claim is renewed every SECONDS/4 while the plan runs)")
    p.add_argument("--db", help=_DB_HELP)
    p.add_argument("--out", default="laptime-report", help="folder for report.html and report.md")
    p.add_argument("--baseline", default=None, help="algorithm to report speedups against")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples (default 1000)")
    p.add_argument("--timing-noise", type=float, default=None, metavar="SIGMA", help=_NOISE_HELP)
    p.add_argument("--max-steps", type=int, help="cap every trial at N steps (quick checks)")
    _add_measurement_arguments(p)
    _add_checkpoint_arguments(p, bench=True)
    p.add_argument("--no-resume", action="store_true", help="run every trial again even if already stored")
    p.add_argument("--retry-failed", action="store_true", help="run again trials stored as failed")
    p.add_argument("--force", action="store_true", help="score trials from different hardware/workload versions")
    p.add_argument("--json", action="store_true", help="machine-readable output (no progress display)")
    p.add_argument("--by", choices=("auto", "time", "robust", "steps"), default="auto", help=_BY_HELP)
    p.add_argument("--prune", choices=("auto", "none", "exact", "predict"), default="auto",
                   help="stop tuning trials early (external tuning): exact (the default there) stops a trial once "
                        "it has spent what its study's best needed to reach the target, so the scores are those "
                        "without pruning; predict also stops trials a rule predicts will not reach the target in "
                        "their budget or before the study's best (not exact); none runs every trial out")
    p.add_argument("--predictor", choices=("curve", "rung"), default="curve",
                   help="--prune predict: curve (learning-curve extrapolation with an uncertainty) or rung "
                        "(successive-halving rungs: keep the top 1/eta of the study's trials)")
    p.add_argument("--prune-threshold", type=float, default=0.05, metavar="P",
                   help="--predictor curve: stop when the probability of reaching the target in time is below P "
                        "(default 0.05)")
    p.add_argument("--prune-eta", type=int, default=3, metavar="ETA",
                   help="--predictor rung: keep the top 1/ETA at each rung (default 3)")
    _add_log_argument(p)
    p.add_argument("--config", metavar="FILE.toml",
                   help="take the benchmark's options from a TOML file (keys: the long options with _ for -, "
                        "algorithms/devices/log as lists; paths relative to the file); options given here win")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("report", help="write the HTML/markdown report of a stored benchmark")
    p.add_argument("--db", help="results database (default: $LAPTIME_DB or the user data dir)")
    p.add_argument("--run", type=int, help="benchmark run id (default: the latest)")
    p.add_argument("--all", action="store_true", help="report every trial in the database")
    p.add_argument("--out", default="laptime-report", help="folder for report.html and report.md")
    p.add_argument("--baseline", default=None, help="algorithm to report speedups against")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples (default 1000)")
    p.add_argument("--timing-noise", type=float, default=None, metavar="SIGMA", help=_NOISE_HELP)
    p.add_argument("--force", action="store_true", help="score trials from different hardware/workload versions")
    p.add_argument("--by", choices=("auto", "time", "robust", "steps"), default="auto",
                   help=_BY_HELP + "; auto: what the benchmark scored")
    p.add_argument("--trial-choice", choices=("fastest", "algoperf"), default="fastest", help=_TRIAL_CHOICE_HELP)
    p.add_argument("--tau-points", type=int, default=None, metavar="N", help=_TAU_POINTS_HELP)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("replay", help="what pruning would have saved and scored: replay a pruning rule over a "
                                      "stored benchmark run without pruning")
    p.add_argument("--db", help="results database (default: $LAPTIME_DB or the user data dir)")
    p.add_argument("--run", type=int, help="benchmark run id (default: the latest)")
    p.add_argument("--prune", choices=("exact", "predict"), default="exact", help="the pruning to replay")
    p.add_argument("--predictor", choices=("curve", "rung"), default="curve", help="--prune predict: the rule")
    p.add_argument("--prune-threshold", type=float, default=0.05, metavar="P",
                   help="--predictor curve: stop below this probability of reaching the target in time")
    p.add_argument("--prune-eta", type=int, default=3, metavar="ETA", help="--predictor rung: keep the top 1/ETA")
    p.add_argument("--by", choices=("auto", "time", "robust", "steps"), default="auto",
                   help=_BY_HELP + "; auto: what the benchmark scored")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples (default 1000)")
    p.add_argument("--force", action="store_true", help="score trials from different hardware/workload versions")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("score", help="score time-to-target results: a CSV from laptime or elsewhere, or a stored "
                                     "benchmark or import")
    p.add_argument("--times",
                   help="CSV with columns algorithm, workload, study, trial, time_to_target (inf = missed); optional "
                        "steps_to_target, robust_time_to_target, eval_index_to_target; `laptime export --table "
                        "trials` output is read as the stored trials are scored (trial_index, variant, outcome)")
    p.add_argument("--db", help="results database: score its latest benchmark or import (or --run ID)")
    p.add_argument("--run", type=int, help="with --db: the run id to score (default: the latest)")
    p.add_argument("--force", action="store_true", help="with --db: score trials from different hardware/workload "
                                                        "versions")
    p.add_argument("--trial-choice", choices=("fastest", "algoperf"), default="fastest", help=_TRIAL_CHOICE_HELP)
    p.add_argument("--tau-points", type=int, default=None, metavar="N", help=_TAU_POINTS_HELP)
    p.add_argument("--tau-max", type=float, default=4.0, help="upper end of the performance profile (default 4)")
    p.add_argument("--baseline", help="algorithm to report speedups against")
    p.add_argument("--bootstrap", type=int, default=0, metavar="N",
                   help="N bootstrap resamples over studies for confidence intervals (default: none)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--timing-noise", type=float, default=None, metavar="SIGMA", help=_NOISE_HELP)
    p.add_argument("--no-variant-gate", action="store_true",
                   help="score workload/variant keys as workloads of their own instead of gating their base")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--by", choices=("auto", "time", "robust", "steps"), default="auto",
                   help="score the raw time_to_target column (auto, time), robust_time_to_target (robust) or "
                        "steps_to_target (steps)")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("import", help="import results from another benchmark's logs")
    isub = p.add_subparsers(dest="source", required=True, metavar="SOURCE")
    q = isub.add_parser("algoperf", help="AlgoPerf's experiment logs (eval_measurements.csv per trial) -> one run "
                                         "per ruleset, scored and reported like a benchmark")
    q.add_argument("logdir", metavar="LOGDIR",
                   help="the tree root (holding external_tuning/, self_tuning/), one ruleset folder or one "
                        "submission folder (holding study_K/)")
    q.add_argument("--targets", default=None, metavar="v0.5|v0.6|FILE",
                   help="AlgoPerf target table: built-in v0.5 or v0.6 (default v0.6, the latest), or a "
                        "workload_targets JSON file")
    q.add_argument("--db", help=_DB_HELP)
    q.add_argument("--ruleset", choices=("external", "self"),
                   help="import only this ruleset (tree root), or name the ruleset of a folder whose name does not")
    q.add_argument("--budget-factor", type=float, default=None, metavar="F",
                   help="a trial's budget is F × its max_allowed_runtime_sec (default: 1 for external tuning; "
                        "self-tuning: 3 with v0.5 targets, 1.5 from v0.6); a target met later does not count")
    q.add_argument("--workloads", choices=("scored", "all"), default="scored",
                   help="scored (default): the target table's base workloads and held-out variants, as AlgoPerf "
                        "scores them; all: every workload the table knows (other variants are gated too)")
    q.add_argument("--name-from", choices=("folder", "path"), default="folder",
                   help="algorithm name: the submission folder's name (default) or its path below LOGDIR "
                        "(e.g. self_tuning/baseline)")
    q.add_argument("--strict", action="store_true", help="store nothing if any folder cannot be imported")
    q.add_argument("--json", action="store_true", help="machine-readable summary")
    q.set_defaults(func=cmd_import)

    from laptime.data import cli as data_cli

    p = sub.add_parser("data", help="prepare, list and verify datasets")
    data_cli.add_arguments(p)
    p.set_defaults(func=lambda a: data_cli.run(a))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # the reader went away (`laptime list | head`): not an error; say nothing more, and point the
        # standard streams at /dev/null so that the interpreter's last flush does not complain either
        _silence_standard_streams()
        return 141  # 128 + SIGPIPE, as a shell reports a command killed by a closed pipe


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit:
        sys.stdout.flush()  # --help or --version into a closed pipe: BrokenPipeError here, not at exit
        raise
    args.command_line = _command_line(argv)  # stored with runs and calibration records
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # what is still buffered fails here, where a closed pipe is caught, not at exit
        return code
    except BrokenPipeError:
        raise  # main() ends it quietly
    except LaptimeError as exc:  # bad input or an unusable environment: one line, no traceback
        message = str(exc).strip() or type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        return exc.exit_code
    except _preempted() as exc:
        print(f"laptime: {exc}", file=sys.stderr)
        return PREEMPTED
    except KeyboardInterrupt:
        print("interrupted; nothing half-written was stored", file=sys.stderr)
        return 130


def _silence_standard_streams() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            os.dup2(devnull, stream.fileno())
        except (OSError, ValueError, AttributeError):  # no real file descriptor (e.g. captured in tests)
            pass
    os.close(devnull)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
