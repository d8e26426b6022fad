"""Hyperparameter search spaces and single hyperparameter points.

A search space is read from JSON in AlgoPerf's ``tuning_search_space.json`` format, which comes in
two shapes.

1. **Dimensions** -- a JSON object mapping each hyperparameter name to a dimension::

       {
         "learning_rate": {"min": 1e-4, "max": 1e-2, "scaling": "log"},
         "beta1":         {"min": 0.8,  "max": 0.99, "scaling": "linear"},
         "warmup_factor": {"feasible_points": [0.05]},
         "schedule":      {"feasible_points": ["cosine", "linear"]}
       }

   A dimension is either a *range* -- exactly the keys ``min``, ``max`` and ``scaling`` (all
   required; ``min``/``max`` finite numbers with ``min <= max``; ``scaling`` is ``"linear"`` or
   ``"log"``; a log range needs ``min > 0``) -- or a *choice* -- exactly the key
   ``feasible_points``, a non-empty list of JSON values.  Ranges always yield floats (integer ranges
   are not supported: list the integers as ``feasible_points``).  ``min == max`` and a single
   feasible point are allowed and make the dimension a constant.

   :meth:`SearchSpace.points` turns this into quasi-random points drawn from a *scrambled* Halton
   sequence (:func:`halton_points`).  Every non-constant dimension gets one column of the
   sequence; columns are assigned in order of the dimensions' names, so the order of keys in the
   file does not matter.  A linear range maps ``u`` in ``[0, 1)`` to ``min + u * (max - min)``, a
   log range to ``exp(log(min) + u * (log(max) - log(min)))`` (log-uniform), and a choice picks
   ``feasible_points[floor(u * len)]``.  Values are clipped into ``[min, max]`` to guard against
   floating-point error at the ends.  The scrambling is seeded, so the same seed gives identical
   points and **different seeds give different points** (AlgoPerf gave every study the same
   points, which made the studies of a submission correlated rather than independent).

2. **Fixed points** -- a non-empty JSON list of objects, each one complete hyperparameter point::

       [{"learning_rate": 0.001, "beta1": 0.9}, {"learning_rate": 0.003, "beta1": 0.95}]

   :meth:`SearchSpace.points` returns the first ``n`` points in the file's order (the seed is
   ignored); asking for more points than the file has is an error, so a ruleset should ask for
   ``min(n, len(space))``.  Values may be any JSON value.  Points are *allowed* to name different
   hyperparameters (e.g. one point sets ``label_smoothing`` and another doesn't); ``names`` is then
   the union of all names.

Hyperparameter names must be Python identifiers and not keywords, because training algorithms read
them as attributes (``hyperparameters.learning_rate``).  JSON's non-standard ``NaN`` and
``Infinity`` and duplicate keys inside an object are rejected when reading text.

:func:`load_point` reads ONE hyperparameter point -- a JSON object of name to value -- for
``laptime run --hparams FILE|JSON``.

Every problem is reported as a :class:`SearchSpaceError` (a ``ValueError``) whose message says
which file (if any), which dimension or point, what is wrong and what was expected.
"""

from __future__ import annotations

import copy
import difflib
import json
import keyword
import math
import os
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
from laptime.errors import LaptimeError

__all__ = [
    "Choice",
    "Range",
    "SearchSpace",
    "SearchSpaceError",
    "check_point_types",
    "halton_points",
    "load_point",
]

_SCALINGS = ("linear", "log")
_RANGE_KEYS = ("min", "max", "scaling")
_CHOICE_KEYS = ("feasible_points",)
_ALL_KEYS = _RANGE_KEYS + _CHOICE_KEYS

_RANGE_EXAMPLE = '{"min": 1e-4, "max": 1e-2, "scaling": "log"}'
_CHOICE_EXAMPLE = '{"feasible_points": [0.1, 0.2]}'


class SearchSpaceError(LaptimeError, ValueError):
    """A search space or hyperparameter point is malformed.

    ``source`` is the file (or ``"inline JSON"``) the problem came from, or ``None``;
    ``detail`` is the message without the leading "search space file '...':" part.
    """

    def __init__(self, message: str, source: str | None = None, kind: str = "search space"):
        self.source = source
        self.detail = message
        super().__init__(f"{_where(source, kind)}: {message}")


def _where(source: str | None, kind: str) -> str:
    if source is None:
        return kind
    if source == "inline JSON":
        return f"{kind} (inline JSON)"
    return f"{kind} file '{source}'"


# --------------------------------------------------------------------------------------------
# Dimensions


@dataclass(frozen=True)
class Range:
    """A continuous dimension: ``min <= value <= max``, sampled uniformly in linear or log space."""

    name: str
    min: float
    max: float
    scaling: str  # 'log' | 'linear'

    @property
    def is_constant(self) -> bool:
        return self.min == self.max

    def value(self, u: float) -> float:
        """Map ``u`` in ``[0, 1)`` into the range (clipped to ``[min, max]``)."""
        if self.is_constant:
            return float(self.min)
        if self.scaling == "log":
            lo, hi = math.log(self.min), math.log(self.max)
            v = math.exp(lo + u * (hi - lo))
        else:
            v = self.min + u * (self.max - self.min)
        return float(min(max(v, self.min), self.max))

    def to_json(self) -> dict:
        return {"min": self.min, "max": self.max, "scaling": self.scaling}


@dataclass(frozen=True)
class Choice:
    """A discrete dimension: one of ``points`` (AlgoPerf's ``feasible_points``)."""

    name: str
    points: tuple

    @property
    def is_constant(self) -> bool:
        return len(self.points) == 1

    def value(self, u: float) -> Any:
        """Pick ``points[floor(u * len(points))]`` for ``u`` in ``[0, 1)``."""
        index = min(int(math.floor(u * len(self.points))), len(self.points) - 1)
        return copy.deepcopy(self.points[max(index, 0)])

    def to_json(self) -> dict:
        return {"feasible_points": copy.deepcopy(list(self.points))}


Dimension = Union[Range, Choice]


# --------------------------------------------------------------------------------------------
# Quasi-random numbers


def _check_int(value: Any, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise SearchSpaceError(f"{what} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise SearchSpaceError(f"{what} must be an integer >= {minimum}, got {value}")
    return int(value)


def halton_points(n: int, dims: int, seed: int) -> np.ndarray:
    """``n`` points of a scrambled Halton sequence in ``[0, 1)^dims``, shape ``(n, dims)``.

    The scrambling is drawn from ``seed`` (an integer >= 0): the same seed gives identical points,
    different seeds give different points.
    """
    n = _check_int(n, "the number of points", 1)
    dims = _check_int(dims, "the number of dimensions", 0)
    seed = _check_int(seed, "the seed", 0)
    if dims == 0:
        return np.zeros((n, 0), dtype=np.float64)
    from scipy.stats import qmc

    rng = np.random.default_rng(seed)
    try:
        sampler = qmc.Halton(dims, scramble=True, rng=rng)
    except TypeError:  # scipy < 1.15 spells it `seed`
        sampler = qmc.Halton(dims, scramble=True, seed=rng)
    u = np.asarray(sampler.random(n), dtype=np.float64)
    return np.clip(u, 0.0, np.nextafter(1.0, 0.0))


# --------------------------------------------------------------------------------------------
# Validation helpers


def _check_name(name: Any, what: str, source: str | None) -> str:
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        reason = "is a Python keyword" if isinstance(name, str) and keyword.iskeyword(name) else (
            "is not a Python identifier"
        )
        raise SearchSpaceError(
            f"{what} name {name!r} {reason}; hyperparameter names must be identifiers "
            "(letters, digits and underscores, not starting with a digit, not a keyword) "
            "because algorithms read them as attributes",
            source,
        )
    return name


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    if _is_number(value):
        return f"a number ({value!r})"
    return f"{type(value).__name__} {value!r}"


def _check_json_value(value: Any, what: str, source: str | None) -> None:
    """Reject values that JSON cannot represent (NaN, infinities, non-JSON types)."""
    if value is None or isinstance(value, (bool, str)):
        return
    if _is_number(value):
        if not math.isfinite(float(value)):
            raise SearchSpaceError(f"{what} is {value!r}; expected a finite number", source)
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_json_value(item, f"{what}[{i}]", source)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise SearchSpaceError(f"{what} has a non-string key {key!r}", source)
            _check_json_value(item, f"{what}[{key!r}]", source)
        return
    raise SearchSpaceError(f"{what} is {_describe(value)}, which is not a JSON value", source)


def _plain(value: Any) -> Any:
    """Deep copy with NumPy scalars turned into Python ones."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _parse_dimension(name: str, spec: Any, source: str | None) -> Dimension:
    where = f"dimension '{name}'"
    if not isinstance(spec, dict):
        raise SearchSpaceError(
            f"{where} is {_describe(spec)}; expected an object, either a range like "
            f"{_RANGE_EXAMPLE} or a choice like {_CHOICE_EXAMPLE} (for a constant use "
            '{"feasible_points": [value]}; for a list of fixed points make the whole file a '
            "JSON list of objects)",
            source,
        )
    unknown = [k for k in spec if k not in _ALL_KEYS]
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(str(key), _ALL_KEYS, n=1, cutoff=0.6)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise SearchSpaceError(
            f"{where} has unknown key(s) {', '.join(hints)}; a range takes exactly "
            "'min', 'max' and 'scaling', a choice takes exactly 'feasible_points'",
            source,
        )
    has_range_keys = [k for k in _RANGE_KEYS if k in spec]
    if "feasible_points" in spec:
        if has_range_keys:
            raise SearchSpaceError(
                f"{where} mixes 'feasible_points' with {', '.join(map(repr, has_range_keys))}; "
                "a dimension is either a range (min, max, scaling) or a choice (feasible_points)",
                source,
            )
        points = spec["feasible_points"]
        if not isinstance(points, list):
            raise SearchSpaceError(
                f"{where}: 'feasible_points' is {_describe(points)}; expected a non-empty list "
                f"like {_CHOICE_EXAMPLE}",
                source,
            )
        if not points:
            raise SearchSpaceError(
                f"{where}: 'feasible_points' is empty; expected at least one value", source
            )
        for i, point in enumerate(points):
            _check_json_value(point, f"{where}: feasible_points[{i}]", source)
        return Choice(name=name, points=tuple(_plain(p) for p in points))

    if not has_range_keys:
        raise SearchSpaceError(
            f"{where} is an empty object; expected a range like {_RANGE_EXAMPLE} "
            f"or a choice like {_CHOICE_EXAMPLE}",
            source,
        )
    missing = [k for k in _RANGE_KEYS if k not in spec]
    if missing:
        raise SearchSpaceError(
            f"{where} is missing {', '.join(map(repr, missing))}; a range needs 'min', 'max' "
            f"and 'scaling' ('linear' or 'log'), e.g. {_RANGE_EXAMPLE}",
            source,
        )
    bounds = {}
    for key in ("min", "max"):
        value = spec[key]
        if not _is_number(value):
            raise SearchSpaceError(
                f"{where}: '{key}' is {_describe(value)}; expected a finite number", source
            )
        if not math.isfinite(float(value)):
            raise SearchSpaceError(
                f"{where}: '{key}' is {value!r}; expected a finite number", source
            )
        bounds[key] = float(value)
    scaling = spec["scaling"]
    if scaling not in _SCALINGS:
        raise SearchSpaceError(
            f"{where}: 'scaling' is {scaling!r}; expected 'linear' or 'log'", source
        )
    lo, hi = bounds["min"], bounds["max"]
    if lo > hi:
        raise SearchSpaceError(
            f"{where}: 'min' ({lo!r}) is greater than 'max' ({hi!r}); expected min <= max",
            source,
        )
    if scaling == "log" and lo <= 0:
        raise SearchSpaceError(
            f"{where}: a log-scaled range needs min > 0, got min = {lo!r} "
            "(use 'linear' scaling or a positive min)",
            source,
        )
    return Range(name=name, min=lo, max=hi, scaling=scaling)


def _parse_point(point: Any, what: str | None, source: str | None) -> dict[str, Any]:
    prefix = f"{what}: " if what else ""
    if not isinstance(point, dict):
        raise SearchSpaceError(
            f"{what or 'the JSON'} is {_describe(point)}; expected an object mapping hyperparameter names to "
            'values, like {"learning_rate": 0.001, "beta1": 0.9}',
            source,
        )
    out = {}
    for name, value in point.items():
        _check_name(name, f"{prefix}hyperparameter", source)
        _check_json_value(value, f"{prefix}hyperparameter '{name}'", source)
        out[name] = _plain(value)
    return out


# --------------------------------------------------------------------------------------------
# Reading JSON text


def _reject_constant(token: str) -> Any:
    raise _BadConstant(token)


class _BadConstant(Exception):
    def __init__(self, token: str):
        self.token = token


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


class _DuplicateKey(Exception):
    def __init__(self, key: str):
        self.key = key


def _loads(text: str, source: str, location: str) -> Any:
    """Parse JSON text strictly; ``location`` prefixes line/column (a file path or '')."""
    try:
        return json.loads(
            text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates
        )
    except json.JSONDecodeError as e:
        at = f"{location}:{e.lineno}:{e.colno}" if location else (
            f"line {e.lineno} column {e.colno}"
        )
        raise SearchSpaceError(f"invalid JSON at {at}: {e.msg}", source) from None
    except _BadConstant as e:
        raise SearchSpaceError(
            f"invalid JSON: {e.token} is not allowed; expected finite numbers", source
        ) from None
    except _DuplicateKey as e:
        raise SearchSpaceError(
            f"invalid JSON: key {e.key!r} appears twice in the same object", source
        ) from None


def _read_file(path: str | os.PathLike) -> tuple[Any, str]:
    source = os.fspath(path)
    if not os.path.exists(source):
        raise SearchSpaceError("file not found", source)
    if os.path.isdir(source):
        raise SearchSpaceError("is a directory; expected a JSON file", source)
    try:
        with open(source, encoding="utf-8-sig") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise SearchSpaceError(f"is not UTF-8 text ({e.reason} at byte {e.start})", source) from None
    except OSError as e:
        raise SearchSpaceError(f"cannot be read: {e.strerror or e}", source) from None
    if not text.strip():
        raise SearchSpaceError("file is empty; expected JSON", source)
    return _loads(text, source, source), source


def _read_path_or_text(text_or_path: Any) -> tuple[Any, str]:
    """(parsed JSON, source) from a path to an existing file or from inline JSON text."""
    if isinstance(text_or_path, os.PathLike):
        return _read_file(text_or_path)
    if not isinstance(text_or_path, str):
        raise SearchSpaceError(
            f"expected a file path or JSON text, got {type(text_or_path).__name__}"
        )
    if os.path.isfile(text_or_path):
        return _read_file(text_or_path)
    stripped = text_or_path.strip()
    if not stripped:
        raise SearchSpaceError("got an empty string; expected a file path or JSON text")
    if stripped[0] not in "{[":
        if os.path.isdir(text_or_path):
            raise SearchSpaceError("is a directory; expected a JSON file", text_or_path)
        # Looks like a path rather than JSON (JSON spaces and points start with { or [).
        raise SearchSpaceError(
            "file not found (and it is not inline JSON either: that must start with '{' or '[')",
            text_or_path,
        )
    return _loads(text_or_path, "inline JSON", ""), "inline JSON"


# --------------------------------------------------------------------------------------------
# The search space


class SearchSpace:
    """A parsed search space: either named dimensions or a list of fixed points.

    Build one with :meth:`from_json`, :meth:`load` or :meth:`parse`.

    ``len(space)`` is the number of fixed points for a fixed list; a dimensions space has no
    natural length (it yields as many points as asked), so ``len()`` raises ``TypeError`` --
    use :attr:`max_points` (``None`` there) to handle both forms.
    """

    def __init__(
        self,
        *,
        dimensions: dict[str, Dimension] | None = None,
        fixed_points: list[dict[str, Any]] | None = None,
        source: str | None = None,
    ):
        if (dimensions is None) == (fixed_points is None):
            raise TypeError("give exactly one of dimensions= or fixed_points=")
        self.source = source
        if dimensions is not None:
            if not dimensions:
                raise SearchSpaceError("has no dimensions; expected at least one", source)
            for key, dim in dimensions.items():
                if not isinstance(dim, (Range, Choice)) or dim.name != key:
                    raise TypeError(f"dimension {key!r} must be a Range or Choice named {key!r}")
            self._dimensions: dict[str, Dimension] | None = {
                k: dimensions[k] for k in sorted(dimensions)
            }
            self._fixed: list[dict[str, Any]] | None = None
        else:
            if not fixed_points:
                raise SearchSpaceError("the list of fixed points is empty; expected at least one", source)
            self._dimensions = None
            self._fixed = [
                {k: p[k] for k in sorted(p)} for p in (copy.deepcopy(q) for q in fixed_points)
            ]

    # ---- constructors ----------------------------------------------------------------------

    @classmethod
    def from_json(cls, obj: Any, source: str | None = None) -> "SearchSpace":
        """Build from parsed JSON: a dict of dimensions or a list of fixed-point objects."""
        if isinstance(obj, dict):
            if not obj:
                raise SearchSpaceError(
                    "is an empty object; expected at least one dimension, e.g. "
                    f'{{"learning_rate": {_RANGE_EXAMPLE}}}',
                    source,
                )
            dims: dict[str, Dimension] = {}
            for name, spec in obj.items():
                _check_name(name, "dimension", source)
                dims[name] = _parse_dimension(name, spec, source)
            return cls(dimensions=dims, source=source)
        if isinstance(obj, (list, tuple)):
            if not obj:
                raise SearchSpaceError(
                    "is an empty list; expected at least one fixed point (an object of "
                    "hyperparameter names to values)",
                    source,
                )
            points = [_parse_point(p, f"fixed point at index {i}", source) for i, p in enumerate(obj)]
            return cls(fixed_points=points, source=source)
        raise SearchSpaceError(
            f"top-level JSON is {_describe(obj)}; expected an object of dimensions "
            f'(e.g. {{"learning_rate": {_RANGE_EXAMPLE}}}) or a list of fixed points '
            '(e.g. [{"learning_rate": 0.001}])',
            source,
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SearchSpace":
        """Read a JSON file; syntax errors are reported as ``file:line:column``."""
        obj, source = _read_file(path)
        return cls.from_json(obj, source)

    @classmethod
    def parse(cls, text_or_path: str | os.PathLike) -> "SearchSpace":
        """A path to an existing file, else inline JSON text."""
        obj, source = _read_path_or_text(text_or_path)
        return cls.from_json(obj, source)

    # ---- properties ------------------------------------------------------------------------

    @property
    def is_fixed_list(self) -> bool:
        return self._fixed is not None

    @property
    def names(self) -> list[str]:
        """Sorted hyperparameter names (for a fixed list, the union over all points)."""
        if self._dimensions is not None:
            return list(self._dimensions)
        return sorted({name for p in self._fixed for name in p})

    @property
    def dimensions(self) -> dict[str, Dimension]:
        """Name -> :class:`Range` | :class:`Choice`, sorted by name; ``{}`` for a fixed list."""
        return dict(self._dimensions or {})

    @property
    def fixed_points(self) -> list[dict[str, Any]]:
        """A copy of the fixed points in file order; ``[]`` for a dimensions space."""
        return copy.deepcopy(self._fixed or [])

    @property
    def max_points(self) -> int | None:
        """How many points :meth:`points` can give: the list length, or ``None`` (unlimited)."""
        return None if self._fixed is None else len(self._fixed)

    def __len__(self) -> int:
        if self._fixed is None:
            raise TypeError(
                "a search space of dimensions has no length (it yields as many quasi-random "
                "points as asked); use SearchSpace.max_points, which is None here"
            )
        return len(self._fixed)

    def __bool__(self) -> bool:
        return True

    # ---- points ----------------------------------------------------------------------------

    def points(self, n: int, seed: int = 0) -> list[dict[str, Any]]:
        """The first ``n`` points (fixed list) or ``n`` quasi-random points for ``seed``."""
        n = _check_int(n, "the number of points", 1)
        if self._fixed is not None:
            if n > len(self._fixed):
                raise SearchSpaceError(
                    f"asked for {n} points but the list has only {len(self._fixed)} fixed "
                    f"point(s); ask for at most {len(self._fixed)}",
                    self.source,
                )
            return copy.deepcopy(self._fixed[:n])
        seed = _check_int(seed, "the seed", 0)
        varying = [d for d in self._dimensions.values() if not d.is_constant]
        u = halton_points(n, len(varying), seed)
        column = {d.name: j for j, d in enumerate(varying)}
        out = []
        for i in range(n):
            point = {}
            for name, dim in self._dimensions.items():
                point[name] = dim.value(float(u[i, column[name]]) if name in column else 0.0)
            out.append(point)
        return out

    # ---- output ----------------------------------------------------------------------------

    def to_json(self) -> dict | list:
        """The JSON form (dimensions sorted by name); ``from_json(to_json())`` round-trips."""
        if self._fixed is not None:
            return copy.deepcopy(self._fixed)
        return {name: dim.to_json() for name, dim in self._dimensions.items()}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SearchSpace):
            return NotImplemented
        return self.to_json() == other.to_json()

    __hash__ = None  # mutable-looking container semantics; compare by content only

    def __repr__(self) -> str:
        kind = f"{len(self._fixed)} fixed points" if self._fixed is not None else (
            f"{len(self._dimensions)} dimensions"
        )
        src = f", source={self.source!r}" if self.source else ""
        return f"SearchSpace({kind}: {', '.join(self.names)}{src})"


# --------------------------------------------------------------------------------------------
# One point


def load_point(text_or_path: str | os.PathLike) -> dict[str, Any]:
    """ONE hyperparameter point (``laptime run --hparams FILE|JSON``): name -> value.

    ``text_or_path`` is a path to an existing JSON file, else inline JSON text.  The JSON must be
    an object whose keys are identifiers; ``{}`` (no hyperparameters) is allowed.
    """
    try:
        return _load_point(text_or_path)
    except SearchSpaceError as e:
        raise SearchSpaceError(e.detail, e.source, kind="hyperparameter point") from None


def _load_point(text_or_path: str | os.PathLike) -> dict[str, Any]:
    obj, source = _read_path_or_text(text_or_path)
    if isinstance(obj, list):
        raise SearchSpaceError(
            f"is a list ({len(obj)} item(s)); --hparams takes ONE point, a JSON object like "
            '{"learning_rate": 0.001} (a list of points is a search space)',
            source,
        )
    point = _parse_point(obj, None, source)
    for name, value in point.items():
        if isinstance(value, dict) and any(k in value for k in _ALL_KEYS):
            raise SearchSpaceError(
                f"hyperparameter '{name}' looks like a search-space dimension ({value}); "
                "--hparams takes ONE point with concrete values, e.g. "
                f'{{"{name}": 0.001}}',
                source,
            )
    return point


# --------------------------------------------------------------------------------------------
# Types of a point's values


_KIND_NAMES = {"number": "a number", "boolean": "a boolean", "string": "a string", "null": "null",
               "list": "a list", "object": "an object"}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if _is_number(value):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def check_point_types(point: dict[str, Any], space: "SearchSpace | None" = None,
                      defaults: dict[str, Any] | None = None, algorithm: str = "the algorithm") -> None:
    """Refuse a hyperparameter whose value is of another JSON kind (number, string, boolean, null,
    list, object) than the algorithm expects, before anything runs: ``{"learning_rate": "fast"}``.

    What a name expects comes from the search space (a range: a number; a choice or fixed points:
    the kinds of their values) and the self-tuning default (its kind). A name known from neither,
    or only with ``null`` (e.g. an optional ``grad_clip`` off by default), is not checked; values
    are not range-checked (``--hparams`` may explore outside the space). Raises
    :class:`SearchSpaceError` naming the value, what was expected and where that comes from.
    """
    defaults = defaults or {}
    for name, value in point.items():
        expected: dict[str, str] = {}  # kind -> where it comes from
        if space is not None:
            dim = space.dimensions.get(name)
            if isinstance(dim, Range):
                expected.setdefault("number", f"its search space's range [{dim.min:g}, {dim.max:g}]")
            elif isinstance(dim, Choice):
                for v in dim.points:
                    expected.setdefault(_kind(v), f"its search space's feasible points {list(dim.points)!r}")
            for fixed in space.fixed_points:
                if name in fixed:
                    expected.setdefault(_kind(fixed[name]), f"its search space's fixed points (e.g. {fixed[name]!r})")
        if name in defaults:
            expected.setdefault(_kind(defaults[name]), f"its self-tuning default {defaults[name]!r}")
        if not expected or set(expected) == {"null"} or _kind(value) in expected:
            continue
        wanted = " or ".join(_KIND_NAMES.get(k, k) for k in expected if k != "null")
        if "null" in expected:
            wanted += " or null"
        source = "; ".join(dict.fromkeys(expected.values()))
        raise SearchSpaceError(f"hyperparameter {name!r} is {_describe(value)}, but {algorithm} expects {wanted} "
                               f"({source})", kind="hyperparameter point")
