"""Benchmark files: ``laptime bench --config bench.toml``.

A study is a file in a repository::

    # bench.toml
    suite = "mnist1d"
    algorithms = ["nadamw", "my_algorithm.py"]
    ruleset = "external"
    studies = 3
    trials = 5
    seed = 0
    budget = "steps"
    threads = 1
    db = "results.sqlite"
    out = "report"
    log = ["tensorboard:runs"]
    executor = "local"              # or inline, ray, slurm, slurm-local
    workers = 2

Every key is the long option of ``laptime bench`` with ``_`` for ``-`` (:data:`KEYS`), except
``algorithms`` (``--algorithm``, a list), ``devices`` (``--device``, a list or a comma-separated
string), ``log`` (``--log``, a list) and the booleans ``robust``, ``resume`` and ``checkpoint``
(``--no-robust``, ``--no-resume``, ``--no-checkpoint``). Options given on the command line override
the file. Relative paths in the file (``db``, ``out``, ``checkpoint_dir``, ``search_space``,
``jobs_folder``, ``.py`` algorithm files, a ``tensorboard:`` or ``mlflow:`` folder) are relative to
the file's folder, so the file means the same from wherever it is run. An unknown
key, a value of the wrong type or a file that is not TOML is one :class:`BenchFileError` naming the
file and the key.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from laptime.errors import LaptimeError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10: the tomli backport (a dependency there)
    import tomli as tomllib

__all__ = ["KEYS", "BenchFileError", "apply", "load"]


class BenchFileError(LaptimeError, ValueError):
    """A benchmark file that cannot be used; the message names the file and the key."""


#: The type checks: a name for the message and a predicate.
_INT = ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool))
_NUMBER = ("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool))
_STR = ("a string", lambda v: isinstance(v, str) and v.strip() != "")
_BOOL = ("true or false", lambda v: isinstance(v, bool))
_STRS = ("a list of strings", lambda v: isinstance(v, list) and bool(v)
         and all(isinstance(x, str) and x.strip() for x in v))
_STR_OR_STRS = ("a string or a list of strings", lambda v: _STR[1](v) or _STRS[1](v))
_THREADS = ('an integer or "auto"', lambda v: _INT[1](v) or v == "auto")


def _choice(*values: str):
    return ("one of " + ", ".join(repr(v) for v in values), lambda v: v in values)


#: key -> (the ``laptime bench`` option's dest, the type check, how the value is turned into the
#: option's value: "path" relative to the file, "algorithms", "devices", "logs", "not" (negated
#: boolean), "str" or None (as it is))
KEYS: dict[str, tuple[str, tuple[str, Any], str | None]] = {
    "suite": ("suite", _STR, None),
    "algorithms": ("algorithm", _STR_OR_STRS, "algorithms"),
    "ruleset": ("ruleset", _choice("external", "self"), None),
    "studies": ("studies", _INT, None),
    "trials": ("trials", _INT, None),
    "budget_factor": ("budget_factor", _NUMBER, "float"),
    "seed": ("seed", _INT, None),
    "devices": ("device", _STR_OR_STRS, "devices"),
    "db": ("db", _STR, "path"),
    "out": ("out", _STR, "path"),
    "baseline": ("baseline", _STR, None),
    "bootstrap": ("bootstrap", _INT, None),
    "timing_noise": ("timing_noise", _NUMBER, "float"),
    "max_steps": ("max_steps", _INT, None),
    "budget": ("budget", _choice("auto", "steps", "time"), None),
    "threads": ("threads", _THREADS, "str"),
    "robust": ("no_robust", _BOOL, "not"),
    "batch_size": ("batch_size", _INT, None),
    "search_space": ("search_space", _STR, "path"),
    "resume": ("no_resume", _BOOL, "not"),
    "retry_failed": ("retry_failed", _BOOL, None),
    "force": ("force", _BOOL, None),
    "by": ("by", _choice("auto", "time", "robust", "steps"), None),
    "log": ("log", _STR_OR_STRS, "logs"),
    "executor": ("executor", _choice("auto", "inline", "local", "ray", "slurm", "slurm-local"), None),
    "workers": ("workers", _INT, None),
    "ray_address": ("ray_address", _STR, None),
    "partition": ("partition", _STR, None),
    "gpus_per_trial": ("gpus_per_trial", _INT, None),
    "time_limit": ("time_limit", _NUMBER, "float"),
    "jobs_folder": ("jobs_folder", _STR, "path"),
    "claim_lease": ("claim_lease", _NUMBER, "float"),
    "checkpoint": ("no_checkpoint", _BOOL, "not"),
    "checkpoint_dir": ("checkpoint_dir", _STR, "path"),
    "checkpoint_every": ("checkpoint_every", _NUMBER, "float"),
    "checkpoint_every_steps": ("checkpoint_every_steps", _INT, None),
    "prune": ("prune", _choice("auto", "none", "exact", "predict"), None),
    "predictor": ("predictor", _choice("curve", "rung"), None),
    "prune_threshold": ("prune_threshold", _NUMBER, "float"),
    "prune_eta": ("prune_eta", _INT, None),
}

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def _relative_to(base: Path, text: str) -> str:
    path = Path(text).expanduser()
    return str(path if path.is_absolute() else base / path)


def _algorithm(base: Path, text: str) -> str:
    """A ``.py`` file (or ``NAME=FILE.py``) relative to the file's folder; names as they are."""
    name, sep, target = text.rpartition("=")
    if target.endswith(".py"):
        return f"{name}{sep}{_relative_to(base, target)}"
    return text


def _log(base: Path, text: str) -> str:
    kind, sep, target = text.partition(":")
    if sep and kind.strip().lower() in ("tensorboard", "mlflow") and target and not _URI.match(target) \
            and target != "databricks":
        return f"{kind}:{_relative_to(base, target)}"
    return text


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def load(path: str | Path) -> dict[str, Any]:
    """Read and check a benchmark file; returns ``{dest: value}`` for ``laptime bench``'s options."""
    p = Path(path).expanduser()
    try:
        text = p.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise BenchFileError(f"benchmark file not found: {p}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchFileError(f"cannot read benchmark file {p}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BenchFileError(f"{p}: not valid TOML: {exc}") from None
    base = p.resolve().parent
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key not in KEYS:
            close = difflib.get_close_matches(key, KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; known keys: {', '.join(KEYS)}"
            raise BenchFileError(f"{p}: unknown key {key!r}{hint}")
        dest, (expected, ok), convert = KEYS[key]
        if not ok(value):
            shown = "a table" if isinstance(value, dict) else repr(value)
            raise BenchFileError(f"{p}: {key} must be {expected}, got {shown}")
        if convert == "path":
            value = _relative_to(base, value)
        elif convert == "algorithms":
            value = [_algorithm(base, v) for v in _as_list(value)]
        elif convert == "devices":
            value = ",".join(d.strip() for v in _as_list(value) for d in v.split(",") if d.strip())
        elif convert == "logs":
            value = [_log(base, v) for v in _as_list(value)]
        elif convert == "not":
            value = not value
        elif convert == "float":
            value = float(value)
        elif convert == "str":
            value = str(value)
        out[dest] = value
    return out


def apply(args: Any, path: str | Path, explicit: Iterable[str]) -> dict[str, Any]:
    """Set ``args``' options from the file, except those in ``explicit`` (given on the command
    line, which win). Returns what the file set."""
    explicit = set(explicit)
    values = load(path)
    applied = {dest: value for dest, value in values.items() if dest not in explicit}
    for dest, value in applied.items():
        setattr(args, dest, value)
    return applied
