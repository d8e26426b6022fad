"""Import AlgoPerf's raw experiment logs as laptime trials (``laptime import algoperf``).

The tree
--------
AlgoPerf's runner writes one folder per trial::

    <ruleset>_tuning/<submission>/study_<K>/<workload>_<framework>/trial_<N>/
        eval_measurements.csv   one row per eval: global_step, accumulated_submission_time,
                                total_duration, accumulated_eval_time, train/…, validation/…, test/…
        meta_data_0.json        workload.max_allowed_runtime_sec, target, rng_seed, machine
        hparams.json            the trial's hyperparameters (external tuning)
        flags_0.json            the runner's flags (tuning_ruleset, framework, …)

:func:`read_tree` accepts the tree root (holding ``external_tuning``/``self_tuning``), one
ruleset folder or one submission folder, and reads every trial into a
:class:`~laptime.records.TrialRecord` with its whole eval history. Nothing is guessed silently:
a folder or file that cannot be read is a :class:`Skip` with its reason, and the
:class:`ImportResult` counts them.

The rules
---------
- algorithm = the submission folder's name; workload = AlgoPerf's base workload; a held-out
  workload (``imagenet_resnet_large_bn_init``, …) is the variant ``large_bn_init`` of its base
  ``imagenet_resnet``, so laptime's variant gate applies to it; study = K; trial_index = N.
- Targets come from one of AlgoPerf's ``workload_targets`` tables (v0.5 and v0.6 ship with
  laptime; another file of the same shape can be given). Only the workloads the table scores are
  imported by default: its base workloads and its held-out variants.
- Time to target, as AlgoPerf scores it: the first eval (in file order) whose validation metric
  meets the target, inclusively (``<=`` for metrics to minimise, ``>=`` to maximise); its
  ``accumulated_submission_time`` is the time and its ``global_step`` the steps to target. An eval
  after the budget (``workload.max_allowed_runtime_sec`` from meta_data × the ruleset's factor:
  1 for external tuning, 3 for v0.5 self-tuning, 1.5 from v0.6) does not count.

No torch here.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from laptime.records import EvalRecord, Outcome, TrialRecord
from laptime.errors import LaptimeError

__all__ = [
    "AlgoPerfImportError",
    "BUILTIN_TARGETS",
    "DEFAULT_TARGETS",
    "HARDWARE_FINGERPRINT",
    "ImportResult",
    "ImportedRun",
    "Skip",
    "TargetTable",
    "WorkloadTarget",
    "first_eval_meeting",
    "import_into_store",
    "load_targets",
    "metric_direction",
    "read_trial",
    "read_tree",
]

#: Ruleset folder names and laptime's ruleset names.
RULESET_FOLDERS = {"external_tuning": "external", "self_tuning": "self"}
STUDY_RE = re.compile(r"study_(\d+)")
TRIAL_RE = re.compile(r"trial_(\d+)")
WORKLOAD_FOLDER_RE = re.compile(r"(.+)_(jax|pytorch)")

EVALS_FILE = "eval_measurements.csv"
META_FILE = "meta_data_0.json"
HPARAMS_FILE = "hparams.json"
FLAGS_FILE = "flags_0.json"

#: The columns every eval file needs besides the target metric's.
REQUIRED_COLUMNS = ("global_step", "accumulated_submission_time")

#: AlgoPerf's validation metrics by direction (its scoring code's lists).
MINIMISE = frozenset({"loss", "ce_loss", "error_rate", "ctc_loss", "wer", "l1_loss", "ppl"})
MAXIMISE = frozenset({"accuracy", "mean_average_precision", "ssim", "bleu"})

#: The target tables that ship with laptime, by name.
BUILTIN_TARGETS = {"v0.5": "algoperf_v0.5.json", "v0.6": "algoperf_v0.6.json"}
#: The table used when none is named: the latest, as AlgoPerf's own scoring defaults to its latest.
DEFAULT_TARGETS = "v0.6"

#: Self-tuning budget as a multiple of ``max_allowed_runtime_sec``, by benchmark version
#: (AlgoPerf's runner: 3× up to v0.5, 1.5× from v0.6 on).
SELF_TUNING_BUDGET_FACTORS = {"0.5": 3.0}
SELF_TUNING_BUDGET_FACTOR_LATER = 1.5

#: Every imported trial gets this hardware fingerprint, so scoring does not refuse to compare them
#: (AlgoPerf ran every submission on its own reference machines).
HARDWARE_FINGERPRINT = "imported from AlgoPerf logs"


class AlgoPerfImportError(LaptimeError, ValueError):
    """Bad input to the importer (no such folder, no tree, a bad targets file): one line for the user."""


# --------------------------------------------------------------------------------------------
# Target tables
# --------------------------------------------------------------------------------------------


def metric_direction(metric: str) -> str:
    """``"min"`` or ``"max"`` for an AlgoPerf validation metric; :class:`AlgoPerfImportError` if unknown."""
    if metric in MINIMISE:
        return "min"
    if metric in MAXIMISE:
        return "max"
    raise AlgoPerfImportError(
        f"metric {metric!r}: not known whether to minimise or maximise it (minimised: "
        f"{', '.join(sorted(MINIMISE))}; maximised: {', '.join(sorted(MAXIMISE))}); give the workload a "
        '"direction": "min" or "max" in the targets file')


@dataclasses.dataclass(frozen=True)
class WorkloadTarget:
    """One workload's validation target: ``validation/<metric>`` must reach ``value``."""

    metric: str
    value: float
    direction: str  # "min" or "max"
    step_hint: int | None = None

    def met(self, value: float) -> bool:
        """Inclusive, and never for a non-finite value (NaN, a diverged run)."""
        if not math.isfinite(value):
            return False
        return value <= self.value if self.direction == "min" else value >= self.value


@dataclasses.dataclass(frozen=True)
class TargetTable:
    """One AlgoPerf ``workload_targets`` table: which workloads it scores, and their targets."""

    version: str
    base_workloads: tuple[str, ...]
    held_out_workloads: tuple[str, ...]
    workloads: Mapping[str, WorkloadTarget]
    source: str  # "built-in v0.5" or the file's path

    @property
    def name(self) -> str:
        return f"AlgoPerf v{self.version} targets ({self.source})"

    @property
    def self_tuning_budget_factor(self) -> float:
        return SELF_TUNING_BUDGET_FACTORS.get(self.version, SELF_TUNING_BUDGET_FACTOR_LATER)

    def base_of(self, name: str) -> str | None:
        """The base workload ``name`` belongs to (itself, or the longest base it extends with ``_…``)."""
        matches = [b for b in self.base_workloads if name == b or name.startswith(b + "_")]
        return max(matches, key=len) if matches else None

    def classify(self, name: str, scope: str = "scored") -> tuple[str, str]:
        """``(workload, variant)`` for an AlgoPerf workload name, or :class:`_Skipped`.

        ``scope="scored"``: only the table's base workloads and held-out variants (what AlgoPerf
        scores); ``"all"``: every workload the table has a target for (a variant of no base is a
        workload of its own).
        """
        if name not in self.workloads:
            raise _Skipped("unknown workload", f"{name!r} has no target in {self.name}")
        base = self.base_of(name)
        if base == name:
            return name, "base"
        if scope == "all":
            return (base, name[len(base) + 1:]) if base else (name, "base")
        if base is not None and name in self.held_out_workloads:
            return base, name[len(base) + 1:]
        what = f"a variant of {base!r}" if base else "not a base workload"
        raise _Skipped(f"not scored in v{self.version}",
                       f"{name!r} is {what} but not one of v{self.version}'s held-out workloads "
                       "(--workloads all imports it)")


def _builtin_name(spec: str) -> str | None:
    text = spec.strip().lower().lstrip("v")
    if text in ("0.5", "05"):
        return "v0.5"
    if text in ("0.6", "06"):
        return "v0.6"
    return None


def load_targets(spec: str | Path | None = None) -> TargetTable:
    """A target table: ``None`` (:data:`DEFAULT_TARGETS`), a built-in name (``v0.5``, ``v0.6``)
    or the path of a JSON file shaped like AlgoPerf's ``workload_targets*.json``::

        {"benchmark_version": "0.5", "base_workloads": [...], "held_out_workloads": [...],
         "workloads": {"<name>": {"target_metric_name": "...", "validation_target_value": 0.0,
                                  "step_hint": 0, ["direction": "min" | "max"]}}}
    """
    builtin = _builtin_name(str(spec)) if spec is not None else DEFAULT_TARGETS
    if builtin is not None:
        text = resources.files("laptime.importers").joinpath("algoperf_targets", BUILTIN_TARGETS[builtin]).read_text(
            encoding="utf-8")
        return _parse_targets(json.loads(text), f"built-in {builtin}")
    path = Path(spec)
    if not path.is_file():
        raise AlgoPerfImportError(f"targets file not found: {path} (or name a built-in table: "
                                  f"{', '.join(BUILTIN_TARGETS)})")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AlgoPerfImportError(f"cannot read targets file {path}: {exc}") from None
    return _parse_targets(raw, str(path))


def _parse_targets(raw: Any, source: str) -> TargetTable:
    def bad(message: str) -> AlgoPerfImportError:
        return AlgoPerfImportError(f"targets {source}: {message}")

    if not isinstance(raw, dict):
        raise bad("expected a JSON object")
    missing = [k for k in ("benchmark_version", "base_workloads", "held_out_workloads", "workloads") if k not in raw]
    if missing:
        raise bad(f"missing key(s) {', '.join(missing)}")
    names = {}
    for key in ("base_workloads", "held_out_workloads"):
        value = raw[key]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad(f"{key} must be a list of workload names")
        names[key] = tuple(value)
    if not isinstance(raw["workloads"], dict) or not raw["workloads"]:
        raise bad("workloads must be a non-empty object")
    workloads: dict[str, WorkloadTarget] = {}
    for name, entry in raw["workloads"].items():
        if not isinstance(entry, dict):
            raise bad(f"workload {name!r}: expected an object")
        metric = entry.get("target_metric_name")
        value = entry.get("validation_target_value")
        if not isinstance(metric, str) or not metric:
            raise bad(f"workload {name!r}: no target_metric_name")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad(f"workload {name!r}: validation_target_value must be a finite number, got {value!r}")
        direction = entry.get("direction")
        if direction is None:
            try:
                direction = metric_direction(metric)
            except AlgoPerfImportError as exc:
                raise bad(f"workload {name!r}: {exc}") from None
        elif direction not in ("min", "max"):
            raise bad(f"workload {name!r}: direction must be \"min\" or \"max\", got {direction!r}")
        hint = entry.get("step_hint")
        workloads[name] = WorkloadTarget(metric, float(value), direction, int(hint) if isinstance(hint, int) else None)
    unknown = [w for w in (*names["base_workloads"], *names["held_out_workloads"]) if w not in workloads]
    if unknown:
        raise bad(f"base/held-out workload(s) without a target: {', '.join(unknown)}")
    return TargetTable(str(raw["benchmark_version"]), names["base_workloads"], names["held_out_workloads"],
                       workloads, source)


# --------------------------------------------------------------------------------------------
# One trial
# --------------------------------------------------------------------------------------------


class _Skipped(Exception):
    """Why one trial folder (or a folder of them) is not imported."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclasses.dataclass(frozen=True)
class Skip:
    """A folder that was not imported: its path (relative to the imported folder) and why."""

    path: str
    reason: str
    detail: str = ""


def first_eval_meeting(values: Iterable[float], times: Iterable[float], target: WorkloadTarget,
                       budget_sec: float | None = None) -> int | None:
    """Index of the first eval (in order) whose value meets ``target`` at a submission time within
    ``budget_sec`` (``None`` or NaN: no budget); ``None`` if there is none. AlgoPerf's rule: the
    first eval, not the best one; inclusive comparison; NaN never meets a target."""
    no_budget = budget_sec is None or math.isnan(budget_sec)
    for i, (v, t) in enumerate(zip(values, times)):
        if target.met(v) and (no_budget or t <= budget_sec):
            return i
    return None


def _number(cell: str, column: str, line: int) -> float:
    text = cell.strip()
    if text == "":
        return math.nan  # an empty cell is a missing value (AlgoPerf writes NaN losses so)
    try:
        return float(text)
    except ValueError:
        raise _Skipped(f"malformed {EVALS_FILE}", f"line {line}, column {column}: {cell!r} is not a number") from None


def _read_evals(path: Path, metric_key: str) -> list[tuple[int, dict[str, float]]]:
    """``(line, {column: value})`` per eval row, every cell a number (empty = NaN)."""
    try:
        handle = open(path, newline="", encoding="utf-8-sig")  # tolerate a byte-order mark
    except FileNotFoundError:
        raise _Skipped(f"no {EVALS_FILE}") from None
    except OSError as exc:
        raise _Skipped(f"unreadable {EVALS_FILE}", str(exc)) from None
    rows: list[tuple[int, dict[str, float]]] = []
    try:
        with handle:
            reader = csv.reader(handle)
            header: list[str] | None = None
            for raw in reader:
                if not any(cell.strip() for cell in raw):
                    continue
                if header is None:
                    header = [cell.strip() for cell in raw]
                    dupes = sorted({c for c in header if header.count(c) > 1})
                    if dupes:
                        raise _Skipped(f"malformed {EVALS_FILE}", f"column(s) {', '.join(dupes)} appear twice")
                    missing = [c for c in (*REQUIRED_COLUMNS, metric_key) if c not in header]
                    if missing:
                        raise _Skipped("missing column", f"no {', '.join(missing)} in {EVALS_FILE} "
                                                         f"(it has {', '.join(header)})")
                    continue
                line = reader.line_num
                if len(raw) != len(header):
                    raise _Skipped(f"malformed {EVALS_FILE}",
                                   f"line {line} has {len(raw)} fields, the header {len(header)}")
                values = {c: _number(cell, c, line) for c, cell in zip(header, raw)}
                step = values["global_step"]
                if not (math.isfinite(step) and step >= 0 and step.is_integer()):
                    raise _Skipped(f"malformed {EVALS_FILE}", f"line {line}: global_step is not a whole number "
                                                              f"({raw[header.index('global_step')]!r})")
                t = values["accumulated_submission_time"]
                if not (math.isfinite(t) and t >= 0):
                    raise _Skipped(f"malformed {EVALS_FILE}", f"line {line}: accumulated_submission_time is not a "
                                   f"time ({raw[header.index('accumulated_submission_time')]!r})")
                rows.append((line, values))
    except (csv.Error, UnicodeDecodeError) as exc:
        raise _Skipped(f"malformed {EVALS_FILE}", str(exc)) from None
    if header is None:
        raise _Skipped(f"empty {EVALS_FILE}", "no header")
    if not rows:
        raise _Skipped(f"empty {EVALS_FILE}", "a header but no evals")
    return rows


def _read_json(path: Path, what: str) -> dict[str, Any] | None:
    """A JSON object, ``None`` if the file does not exist; :class:`_Skipped` if it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise _Skipped(f"unreadable {what}", str(exc)) from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Skipped(f"unreadable {what}", f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise _Skipped(f"unreadable {what}", f"expected a JSON object, got {type(value).__name__}")
    return value


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _machine(meta: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(device, hardware)`` from meta_data: the GPUs and CPU AlgoPerf logged, where present."""
    hardware: dict[str, Any] = {"source": "AlgoPerf logs (the machine AlgoPerf logged, not measured here)"}
    gpu, n_gpu = meta.get("gpu_model_name"), meta.get("gpu_count")
    if gpu:
        hardware["gpu"] = f"{n_gpu} × {gpu}" if n_gpu else str(gpu)
    cpu, n_cpu = meta.get("cpu_model_name"), meta.get("cpu_count")
    if cpu:
        hardware["cpu"] = f"{cpu} ({n_cpu} cores)" if n_cpu else str(cpu)
    device = "cuda" if gpu else "unknown"
    return device, hardware


def read_trial(trial_dir: Path, *, algorithm: str, workload_name: str, framework: str, study: int, trial: int,
               ruleset: str, table: TargetTable, budget_factor: float, scope: str = "scored",
               rel_path: str = "", notes: Counter | None = None) -> TrialRecord:
    """One AlgoPerf trial folder as a :class:`TrialRecord`; :class:`_Skipped` when it cannot be read.

    ``notes`` (if given) counts what was imported but is worth saying (no meta_data, no hparams,
    NaN metrics, targets met only after the budget, …).
    """
    notes = notes if notes is not None else Counter()
    workload, variant = table.classify(workload_name, scope)
    target = table.workloads[workload_name]
    metric_key = f"validation/{target.metric}"
    rows = _read_evals(trial_dir / EVALS_FILE, metric_key)
    meta = _read_json(trial_dir / META_FILE, META_FILE)
    hparams = _read_json(trial_dir / HPARAMS_FILE, HPARAMS_FILE)
    try:
        flags = _read_json(trial_dir / FLAGS_FILE, FLAGS_FILE) or {}
    except _Skipped:
        flags = {}
        notes[f"unreadable {FLAGS_FILE} (ignored)"] += 1

    if meta is None:
        meta = {}
        notes[f"no {META_FILE}: budget unknown, every logged eval counts"] += 1
    if hparams is None:
        hparams = {}
        if ruleset == "external":
            notes[f"no {HPARAMS_FILE} (external tuning): hyperparameters unknown"] += 1
    if flags.get("tuning_ruleset") not in (None, ruleset):
        notes[f"{FLAGS_FILE} names another ruleset than the folder (folder used)"] += 1
    meta_metric, meta_value = meta.get("workload.target_metric_name"), _finite(meta.get("workload.validation_target_value"))
    if (meta_metric is not None and meta_metric != target.metric) or (meta_value is not None and meta_value != target.value):
        notes[f"{META_FILE} logged another target than the table's (table used)"] += 1

    runtime = _finite(meta.get("workload.max_allowed_runtime_sec"))
    budget = runtime * budget_factor if runtime is not None else math.nan

    evals: list[EvalRecord] = []
    last_eval_time = 0.0
    for _, values in rows:
        acc_eval = values.get("accumulated_eval_time", math.nan)
        duration = acc_eval - last_eval_time if math.isfinite(acc_eval) else math.nan
        if math.isfinite(acc_eval):
            last_eval_time = acc_eval
        metrics = {c: v for c, v in values.items()
                   if c not in ("global_step", "accumulated_submission_time", "total_duration")}
        evals.append(EvalRecord(step=int(values["global_step"]), submission_time=values["accumulated_submission_time"],
                                wall_time=values.get("total_duration", math.nan), metrics=metrics,
                                eval_duration=duration))
    metric_values = [ev.metrics[metric_key] for ev in evals]
    times = [ev.submission_time for ev in evals]
    hit = first_eval_meeting(metric_values, times, target, budget)
    error = None
    if hit is not None:
        outcome = Outcome.REACHED
    elif not math.isfinite(metric_values[-1]):
        outcome = Outcome.DIVERGED
        error = f"{metric_key} is {metric_values[-1]} at the last eval (step {evals[-1].step})"
        notes[f"diverged: {metric_key} not finite at the last eval"] += 1
    else:
        outcome = Outcome.BUDGET
    if hit is None and first_eval_meeting(metric_values, times, target) is not None:
        notes["target met only after the budget (not counted)"] += 1
    if any(math.isnan(v) for v in metric_values) and outcome is not Outcome.DIVERGED:
        notes[f"some evals without a {metric_key} value (NaN or empty)"] += 1

    seed = meta.get("rng_seed", flags.get("rng_seed"))
    device, hardware = _machine(meta)
    versions: dict[str, Any] = {"framework": flags.get("framework") or framework}
    if meta.get("python_version"):
        versions["python"] = meta["python_version"]
    last = evals[-1]
    return TrialRecord(
        workload=workload, variant=variant, config=framework, workload_version=f"algoperf-v{table.version}",
        dataset=f"algoperf:{table.base_of(workload_name) or workload_name}", algorithm=algorithm,
        algorithm_hash="", hyperparameters=hparams, seed=int(seed) if isinstance(seed, int) else 0,
        device=device, hardware_fingerprint=HARDWARE_FINGERPRINT, hardware=hardware, versions=versions,
        target_metric=target.metric, target_direction=target.direction, target_value=target.value,
        budget_sec=budget, outcome=outcome,
        time_to_target=evals[hit].submission_time if hit is not None else None,
        steps_to_target=evals[hit].step if hit is not None else None,
        submission_time=last.submission_time, steps=last.step, wall_time=last.wall_time,
        started_at="", finished_at="", error=error, ruleset=ruleset, study=study, trial_index=trial,
        budget_mode="time",
        measurement={"eval_index_to_target": hit,
                     "algoperf": {"path": rel_path, "workload": workload_name, "framework": framework,
                                  "max_allowed_runtime_sec": runtime, "budget_factor": budget_factor}},
        evals=evals,
    )


# --------------------------------------------------------------------------------------------
# The tree
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class ImportedRun:
    """The trials of one ruleset: they become one laptime run."""

    ruleset: str
    budget_factor: float
    submissions: list[str]
    records: list[TrialRecord]


@dataclasses.dataclass
class ImportResult:
    """What :func:`read_tree` found: one :class:`ImportedRun` per ruleset, the skips, the notes."""

    logdir: Path
    layout: str  # "tree", "ruleset" or "submission"
    table: TargetTable
    scope: str
    runs: list[ImportedRun]
    skips: list[Skip]
    notes: Counter
    hints: list[str]

    @property
    def n_trials(self) -> int:
        return sum(len(r.records) for r in self.runs)

    def skip_counts(self) -> list[tuple[str, int, str]]:
        """``(reason, count, example path)``, most frequent first."""
        counts = Counter(s.reason for s in self.skips)
        example = {}
        for s in self.skips:
            example.setdefault(s.reason, s)
        return [(reason, n, example[reason].path + (f" ({example[reason].detail})" if example[reason].detail else ""))
                for reason, n in counts.most_common()]


def _dirs(path: Path) -> list[Path]:
    try:
        return sorted((p for p in path.iterdir() if p.is_dir()), key=lambda p: _natural(p.name))
    except OSError as exc:
        raise AlgoPerfImportError(f"cannot list {path}: {exc}") from None


def _natural(name: str) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def _has_studies(path: Path) -> bool:
    return any(STUDY_RE.fullmatch(p.name) for p in _dirs(path))


def _layout(logdir: Path) -> tuple[str, list[tuple[str | None, Path]], list[Skip]]:
    """What ``logdir`` is and its submission folders, each with the ruleset its folder names."""
    skips: list[Skip] = []
    if _has_studies(logdir):
        return "submission", [(RULESET_FOLDERS.get(logdir.parent.name), logdir)], skips
    children = _dirs(logdir)
    if any(_has_studies(c) for c in children):
        subs = []
        for c in children:
            if _has_studies(c):
                subs.append((RULESET_FOLDERS.get(logdir.name), c))
            else:
                skips.append(Skip(c.name, "no study_K folders"))
        return "ruleset", subs, skips
    rulesets = [c for c in children if c.name in RULESET_FOLDERS]
    if rulesets:
        subs = []
        for r in rulesets:
            for c in _dirs(r):
                if _has_studies(c):
                    subs.append((RULESET_FOLDERS[r.name], c))
                else:
                    skips.append(Skip(f"{r.name}/{c.name}", "no study_K folders"))
        skips += [Skip(c.name, "not a ruleset folder (external_tuning, self_tuning)") for c in children
                  if c.name not in RULESET_FOLDERS]
        return "tree", subs, skips
    deeper = [str(c.relative_to(logdir)) for c in children for g in _dirs(c) if g.name in RULESET_FOLDERS]
    hint = f"; the tree may be under {', '.join(deeper[:3])}" if deeper else ""
    raise AlgoPerfImportError(
        f"{logdir} is not an AlgoPerf experiment tree: expected <ruleset>_tuning/<submission>/study_K/"
        f"<workload>_<framework>/trial_N/{EVALS_FILE}, a ruleset folder or a submission folder{hint}")


def _flags_ruleset(submission: Path) -> str | None:
    for flags in sorted(submission.glob(f"study_*/*/trial_*/{FLAGS_FILE}")):
        try:
            value = json.loads(flags.read_text(encoding="utf-8")).get("tuning_ruleset")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            continue
        if value in ("external", "self"):
            return value
    return None


def read_tree(logdir: str | Path, *, targets: TargetTable | str | Path | None = None, ruleset: str | None = None,
              budget_factor: float | None = None, scope: str = "scored", name_from: str = "folder") -> ImportResult:
    """Read every trial under ``logdir`` (tree root, ruleset folder or submission folder).

    - ``targets``: a :class:`TargetTable` or what :func:`load_targets` takes;
    - ``ruleset``: ``"external"``/``"self"``: keep only that ruleset (tree root), or say which one a
      folder holds when its name does not (else the trials' flags_0.json tells);
    - ``budget_factor``: multiple of ``max_allowed_runtime_sec`` a trial may use (default: 1 for
      external tuning, the table version's self-tuning factor);
    - ``scope``: ``"scored"`` (the table's base and held-out workloads) or ``"all"``;
    - ``name_from``: ``"folder"`` (the submission folder's name) or ``"path"`` (its path below
      ``logdir``, e.g. ``self_tuning/baseline``).
    """
    logdir = Path(logdir).expanduser()
    if not logdir.exists():
        raise AlgoPerfImportError(f"no such folder: {logdir}")
    if not logdir.is_dir():
        raise AlgoPerfImportError(f"{logdir} is not a folder (give the folder that holds the AlgoPerf logs)")
    if ruleset not in (None, "external", "self"):
        raise AlgoPerfImportError(f"unknown ruleset {ruleset!r}: expected external or self")
    if scope not in ("scored", "all"):
        raise AlgoPerfImportError(f"unknown workload scope {scope!r}: expected scored or all")
    if name_from not in ("folder", "path"):
        raise AlgoPerfImportError(f"unknown --name-from {name_from!r}: expected folder or path")
    if budget_factor is not None and not budget_factor > 0:
        raise AlgoPerfImportError(f"budget factor must be > 0, got {budget_factor!r}")
    table = targets if isinstance(targets, TargetTable) else load_targets(targets)
    layout, submissions, skips = _layout(logdir)
    notes: Counter = Counter()
    by_ruleset: dict[str, ImportedRun] = {}
    for folder_ruleset, sub in submissions:
        rel_sub = sub.relative_to(logdir).as_posix() if sub != logdir else ""
        if layout == "tree" and ruleset is not None and folder_ruleset != ruleset:
            continue
        if folder_ruleset is not None and ruleset is not None and folder_ruleset != ruleset:
            raise AlgoPerfImportError(f"{sub} is in a {folder_ruleset}-tuning folder but --ruleset {ruleset} was given")
        this_ruleset = folder_ruleset or ruleset or _flags_ruleset(sub)
        if this_ruleset is None:
            raise AlgoPerfImportError(f"cannot tell the ruleset of {sub} (its folder is not named external_tuning or "
                                      "self_tuning and no flags_0.json says): pass --ruleset external or self")
        factor = budget_factor if budget_factor is not None else (
            1.0 if this_ruleset == "external" else table.self_tuning_budget_factor)
        run = by_ruleset.setdefault(this_ruleset, ImportedRun(this_ruleset, factor, [], []))
        algorithm = (rel_sub or sub.name) if name_from == "path" else sub.name
        run.submissions.append(algorithm)

        def rel(path: Path) -> str:
            return path.relative_to(logdir).as_posix()

        for study_dir in _dirs(sub):
            m = STUDY_RE.fullmatch(study_dir.name)
            if not m:
                skips.append(Skip(rel(study_dir), "not a study_K folder"))
                continue
            for wl_dir in _dirs(study_dir):
                wm = WORKLOAD_FOLDER_RE.fullmatch(wl_dir.name)
                trial_dirs = [d for d in _dirs(wl_dir) if TRIAL_RE.fullmatch(d.name)]
                skips += [Skip(rel(d), "not a trial_N folder") for d in _dirs(wl_dir) if not TRIAL_RE.fullmatch(d.name)]
                if not wm:
                    skips.append(Skip(rel(wl_dir), "not a <workload>_<framework> folder"))
                    continue
                try:
                    table.classify(wm.group(1), scope)
                except _Skipped as exc:  # one skip per trial folder, so the counts are trials
                    skips += [Skip(rel(d), exc.reason, exc.detail) for d in trial_dirs or [wl_dir]]
                    continue
                if not trial_dirs:
                    skips.append(Skip(rel(wl_dir), "no trial_N folders"))
                for trial_dir in trial_dirs:
                    try:
                        record = read_trial(trial_dir, algorithm=algorithm, workload_name=wm.group(1),
                                            framework=wm.group(2), study=int(m.group(1)),
                                            trial=int(TRIAL_RE.fullmatch(trial_dir.name).group(1)),
                                            ruleset=this_ruleset, table=table, budget_factor=factor, scope=scope,
                                            rel_path=rel(trial_dir), notes=notes)
                    except _Skipped as exc:
                        skips.append(Skip(rel(trial_dir), exc.reason, exc.detail))
                        continue
                    run.records.append(record)
    hints = _hints(table, skips)
    return ImportResult(logdir, layout, table, scope, list(by_ruleset.values()), skips, notes, hints)


def _hints(table: TargetTable, skips: list[Skip]) -> list[str]:
    """Say which built-in table scores the held-out workloads this one skipped."""
    skipped = {s.path.split("/")[-2].rsplit("_", 1)[0] for s in skips
               if s.reason.startswith("not scored in") and "/" in s.path}
    hints = []
    for name in BUILTIN_TARGETS:
        other = load_targets(name)
        if other.version != table.version and skipped & set(other.held_out_workloads):
            found = sorted(skipped & set(other.held_out_workloads))
            hints.append(f"{', '.join(found)} {'is a' if len(found) == 1 else 'are'} held-out workload"
                         f"{'' if len(found) == 1 else 's'} of AlgoPerf v{other.version}: import with "
                         f"--targets {name} to score {'it' if len(found) == 1 else 'them'} as v{other.version} did")
    return hints


def import_into_store(store, result: ImportResult, command: str) -> list[int]:
    """Store each :class:`ImportedRun` of ``result`` as one run, each in one transaction (a run and
    all its trials, or nothing of it). Returns the new run ids. The run's meta says where the
    trials came from and holds their ``trial_ids``, so ``laptime report``/``score`` find it."""
    run_ids = []
    for run in result.runs:
        if not run.records:
            continue
        meta = {
            "kind": "import", "source": "algoperf", "path": str(result.logdir.resolve()), "layout": result.layout,
            "ruleset": run.ruleset, "submissions": run.submissions,
            "targets": {"version": result.table.version, "source": result.table.source},
            "budget_factor": run.budget_factor, "workloads": result.scope, "score_column": "time_to_target",
            "budget_mode": "time", "skipped": len(result.skips),
        }
        with store.transaction():
            run_id = store.start_run(command, meta)
            ids = [store.add_trial(run_id, record) for record in run.records]
            store.update_run_meta(run_id, {"trial_ids": ids})
        run_ids.append(run_id)
    return run_ids
