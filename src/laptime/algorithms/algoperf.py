"""Run an AlgoPerf PyTorch submission (a module with the five submission functions) in laptime.

AlgoPerf submissions are modules with module-level ``get_batch_size``, ``init_optimizer_state``,
``update_params``, ``prepare_for_eval`` (optional) and ``data_selection``, importing ``spec`` and
``pytorch_utils`` from ``algoperf`` (v0.6 on) or ``algorithmic_efficiency`` (v0.5). laptime's
contract keeps those names, arguments and meanings; this adapter supplies the rest of what
AlgoPerf's runner does around them (``docs/algoperf.md`` has the full table):

* **The package.** When the real package is not installed (its ``spec`` does not import),
  :func:`install_shim` registers laptime's stand-in (:mod:`laptime.algorithms.algoperf_shim`)
  under both names: every ``spec`` type and alias, ``pytorch_utils.pytorch_setup()`` answered for
  one process on the trial's device.
* **Call conventions.** ``train_state`` is passed only when ``update_params`` declares it (AlgoPerf's
  runner inspects the signature the same way); ``prepare_for_eval`` is optional; the point is
  handed over as a namedtuple called ``Hyperparameters`` (what AlgoPerf's tuning gives), or
  ``None`` when empty (self-tuning); ``workload.metrics_logger`` is a no-op logger.
* **Batch sizes.** Submissions know AlgoPerf's workload names only, so :meth:`batch_size_for` asks
  about the workload's nearest AlgoPerf workload (``Workload.algoperf_workload``); when the
  submission has no answer for it (raises, as AlgoPerf's submissions do for names they do not
  know), the workload's reference batch size is used, with a warning the runner keeps in the
  trial's notes. ``--batch-size N`` bypasses the question.
* **Names and search spaces.** :func:`submission_name`: ``submission_name`` in a
  ``submission_info.yml`` beside the file, else the folder of a ``submission.py`` (its parent for
  AlgoPerf's ``<algorithm>/pytorch/submission.py`` layout), else the file's stem. A
  ``tuning_search_space.json`` beside the file is its external-tuning search space.
* **What cannot run on one process** (CUDA hard-coded in a CPU trial, ``torch.distributed``) is
  reported as such (:class:`SubmissionUnsupported`) instead of a bare traceback.

Loading (imports relative to the submission's folder and to the current directory) is done by
:mod:`laptime.algorithms.registry`, which recognises such a file by its functions. Usage:
``laptime run -w mnist1d -a path/to/submission.py``, or
``AlgoPerfSubmission.from_file("submission.py", batch_sizes={"default": 128})``.
"""

from __future__ import annotations

import collections
import importlib
import inspect
import keyword
import re
import sys
import types
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from laptime.algorithms.algoperf_shim.pytorch_utils import trial_device
from laptime.api import Algorithm, Hyperparameters, ParameterType, TrainingComplete

__all__ = [
    "AlgoPerfBatchSizeWarning",
    "AlgoPerfSubmission",
    "NullMetricsLogger",
    "PACKAGE_NAMES",
    "SEARCH_SPACE_FILE",
    "SubmissionUnsupported",
    "install_shim",
    "looks_like_submission",
    "read_submission_name",
    "submission_name",
    "trial_device",
]

REQUIRED = ("get_batch_size", "init_optimizer_state", "update_params")
#: AlgoPerf's package names: v0.6 on, and v0.5.
PACKAGE_NAMES = ("algoperf", "algorithmic_efficiency")
#: The modules of the stand-in (the package's modules PyTorch submissions import).
SHIM_MODULES = ("spec", "pytorch_utils")
#: The search-space file AlgoPerf's submissions keep beside their code.
SEARCH_SPACE_FILE = "tuning_search_space.json"
INFO_FILE = "submission_info.yml"


class SubmissionUnsupported(RuntimeError):
    """The submission does something a one-process laptime trial cannot give it (CUDA on a CPU
    trial, several processes)."""


class AlgoPerfBatchSizeWarning(UserWarning):
    """A submission had no batch size for the workload's nearest AlgoPerf workload."""


def looks_like_submission(module: types.ModuleType) -> bool:
    """A module with AlgoPerf's module-level submission functions."""
    return all(callable(getattr(module, name, None)) for name in REQUIRED)


# ------------------------------------------------------------------------------------ the package

def _is_shim(module: Any) -> bool:
    return getattr(module, "__laptime_shim__", False) is True


def install_shim() -> dict[str, str]:
    """Make ``algoperf`` and ``algorithmic_efficiency`` importable; returns, per name, ``"real"``
    (the installed package is used: its ``spec`` imports) or ``"laptime"`` (the stand-in)."""
    from laptime.algorithms import algoperf_shim
    from laptime.algorithms.algoperf_shim import pytorch_utils, spec

    modules = {"spec": spec, "pytorch_utils": pytorch_utils}
    used: dict[str, str] = {}
    for package in PACKAGE_NAMES:
        if _is_shim(sys.modules.get(package)):
            used[package] = "laptime"
            continue
        try:
            importlib.import_module(f"{package}.spec")
            used[package] = "real"
            continue
        except ImportError:
            pass
        for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
            del sys.modules[name]  # a half-imported real package (its spec failed) gives way
        stand_in = types.ModuleType(package, algoperf_shim.__doc__)
        stand_in.__path__ = []  # a package, whose only modules are those registered here
        stand_in.__laptime_shim__ = True
        for name, module in modules.items():
            setattr(stand_in, name, module)
            sys.modules[f"{package}.{name}"] = module
        sys.modules[package] = stand_in
        used[package] = "laptime"
    return used


install_spec_shim = install_shim  # the earlier name


def _installed_specs() -> list[types.ModuleType]:
    return [m for m in (sys.modules.get(f"{p}.spec") for p in PACKAGE_NAMES) if m is not None]


def _submission_spec(module: types.ModuleType) -> types.ModuleType | None:
    """The ``spec`` module a submission imported (by either package name), else the first installed."""
    specs = _installed_specs()
    candidate = getattr(module, "spec", None)
    return candidate if any(candidate is s for s in specs) else (specs[0] if specs else None)


def _translate_enum(value: Any, enum_name: str, spec: types.ModuleType | None) -> Any:
    """laptime's enum member → the submission's package's (by name); unchanged under the stand-in."""
    enum = getattr(spec, enum_name, None)
    if enum is None or enum is type(value) or not hasattr(enum, getattr(value, "name", "")):
        return value
    return getattr(enum, value.name)


def _param_types(types_: Mapping[str, ParameterType], spec: types.ModuleType | None) -> Mapping[str, Any]:
    if getattr(spec, "ParameterType", ParameterType) is ParameterType:
        return types_
    return {name: _translate_enum(kind, "ParameterType", spec) for name, kind in types_.items()}


def _training_complete_types() -> tuple[type[BaseException], ...]:
    found = {getattr(s, "TrainingCompleteError", TrainingComplete) for s in _installed_specs()}
    return tuple(t for t in found if t is not TrainingComplete and isinstance(t, type))


# ------------------------------------------------------------------------------- names and files

def read_submission_name(path: str | Path) -> str | None:
    """``submission_name`` from a ``submission_info.yml`` (top-level scalar, plain, quoted or a
    folded/literal block), or ``None``. A small reader: these files are flat ``key: value`` YAML."""
    lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    for i, line in enumerate(lines):
        match = re.match(r"^submission_name\s*:(.*)$", line)
        if not match:
            continue
        value = match.group(1).strip()
        if value[:1] in ("'", '"'):
            quote = value[0]
            end = value.find(quote, 1)
            value = value[1:end] if end > 0 else value[1:]
        elif value[:1] in (">", "|"):
            block = []
            for more in lines[i + 1:]:
                if more.strip() and not more[:1].isspace():
                    break
                block.append(more.strip())
            value = " ".join(b for b in block if b)
        else:
            value = re.split(r"\s+#", value, maxsplit=1)[0].strip()
        return value or None
    return None


def submission_name(path: str | Path) -> str:
    """A submission's name: ``submission_name`` in ``submission_info.yml`` beside it, else its
    folder when the file is ``submission.py`` (the folder above for AlgoPerf's
    ``<algorithm>/pytorch/submission.py``), else the file's stem."""
    path = Path(path)
    folder = path.absolute().parent
    info = folder / INFO_FILE
    if info.is_file():
        name = read_submission_name(info)
        if name:
            return name.replace("=", "-")  # "NAME=PATH" names a file in an algorithm spec
    if path.name == "submission.py":
        if folder.name in ("pytorch", "torch") and folder.parent.name:
            return folder.parent.name
        return folder.name or path.stem
    return path.stem


# ----------------------------------------------------------------------------------- the logger

class NullMetricsLogger:
    """AlgoPerf's metrics-logger interface (``append_scalar_metrics``, ``finish``), discarding what it
    is given: laptime records its own measurements. It counts calls, for tests."""

    def __init__(self) -> None:
        self.calls = 0

    def append_scalar_metrics(self, metrics: Mapping[str, Any], global_step: int,
                              preemption_count: int | None = None, is_eval: bool = False) -> None:
        self.calls += 1

    def finish(self) -> None:
        pass


# ------------------------------------------------------------------------------- the submission

_CUDA_MESSAGES = re.compile(r"CUDA|NVIDIA driver|cuda", re.ASCII)
_DISTRIBUTED_MESSAGES = re.compile(r"process group|init_process_group|torch\.distributed", re.IGNORECASE)


def _unsupported_reason(exc: BaseException, device_type: str) -> str | None:
    message = f"{type(exc).__name__}: {exc}"
    if device_type != "cuda" and _CUDA_MESSAGES.search(message):
        return (f"it uses CUDA ({message.strip()}), but this trial runs on {device_type}; "
                "run it on a GPU (--device cuda)")
    if _DISTRIBUTED_MESSAGES.search(message):
        return (f"it needs torch.distributed with several processes ({message.strip()}); laptime runs a "
                "trial in one process, and tells submissions so (pytorch_setup() says no DDP)")
    return None


def _as_namedtuple(values: Mapping[str, Any]) -> Any:
    names = list(values)
    if all(n.isidentifier() and not keyword.iskeyword(n) and not n.startswith("_") for n in names):
        return collections.namedtuple("Hyperparameters", names)(**values)
    return types.SimpleNamespace(**values)  # names a namedtuple refuses (leading underscore)


class AlgoPerfSubmission(Algorithm):
    """An Algorithm whose five functions are an AlgoPerf submission module's."""

    def __init__(self, module: types.ModuleType, name: str | None = None,
                 batch_sizes: Mapping[str, int] | None = None, source: Path | None = None,
                 helper_files: list[Path] | None = None):
        missing = [n for n in REQUIRED if not callable(getattr(module, n, None))]
        if missing:
            raise ValueError(f"{module.__name__} is not an AlgoPerf submission: it lacks {', '.join(missing)}")
        self.module = module
        self._source = Path(source) if source is not None else None
        self.name = name or (submission_name(self._source) if self._source is not None
                             else module.__name__.rsplit(".", 1)[-1])
        self.summary = f"AlgoPerf submission {self.name} (run through laptime's adapter)"
        self.batch_sizes = dict(batch_sizes or {})
        self.helper_files = list(helper_files or [])
        self._search_space: Any = None
        self._search_space_read = False
        self._hp_cache: tuple[Any, Any] | None = None
        self._spec = _submission_spec(module)  # its package's enums are what it compares against
        # AlgoPerf's runner passes train_state only to an update_params that declares it
        try:
            self.wants_train_state = "train_state" in inspect.signature(module.update_params).parameters
        except (TypeError, ValueError):  # a builtin or C callable: no signature to read
            self.wants_train_state = False

    @classmethod
    def from_file(cls, path: str | Path, name: str | None = None,
                  batch_sizes: Mapping[str, int] | None = None) -> "AlgoPerfSubmission":
        """Load ``path`` as the registry does (its folder and the current directory importable)."""
        from laptime.algorithms.registry import load_module

        module, helpers = load_module(Path(path))
        return cls(module, name=name, batch_sizes=batch_sizes, source=Path(path), helper_files=helpers)

    # --- helpers ------------------------------------------------------------------------
    def _hp(self, hyperparameters: Any) -> Any:
        """``None`` for an empty point (AlgoPerf's self-tuning), else the point as a namedtuple."""
        if hyperparameters is None or (isinstance(hyperparameters, Mapping) and len(hyperparameters) == 0):
            return None
        if not isinstance(hyperparameters, Mapping):
            return hyperparameters
        if self._hp_cache is None or self._hp_cache[0] is not hyperparameters:
            values = hyperparameters.to_dict() if isinstance(hyperparameters, Hyperparameters) \
                else dict(hyperparameters)
            self._hp_cache = (hyperparameters, _as_namedtuple(values))
        return self._hp_cache[1]

    def _call(self, fn_name: str, workload: Any, /, *args: Any, **kwargs: Any) -> Any:
        fn: Callable = getattr(self.module, fn_name)
        try:
            return fn(*args, **kwargs)
        except TrainingComplete:
            raise
        except _training_complete_types() as exc:  # the installed package's own class
            raise TrainingComplete(str(exc)) from exc
        except Exception as exc:
            device = getattr(getattr(workload, "device", None), "type", "cpu")
            reason = _unsupported_reason(exc, device)
            if reason is not None:
                raise SubmissionUnsupported(f"AlgoPerf submission {self.name!r} cannot run here: {reason}") from exc
            raise

    # --- batch size ---------------------------------------------------------------------
    def _override(self, workload_name: str) -> int | None:
        name, _, config = workload_name.partition("@")
        base = name.split("/")[0]
        for key in (workload_name, f"{base}@{config}", base, "default"):
            if key in self.batch_sizes:
                return int(self.batch_sizes[key])
        return None

    def _ask_batch_size(self, asked: str) -> tuple[int | None, str]:
        """The submission's answer for ``asked``, or ``(None, why it gave none)``."""
        try:
            size = self.module.get_batch_size(asked)
        except (ValueError, LookupError, NotImplementedError) as exc:
            return None, f"raised {type(exc).__name__}: {exc}"
        if size is None:
            return None, "returned None"
        return int(size), ""

    def get_batch_size(self, workload_name: str) -> int:
        """The submission's batch size for ``workload_name`` (an AlgoPerf name, or laptime's key
        when called directly), unless ``batch_sizes`` names one."""
        override = self._override(workload_name)
        if override is not None:
            return override
        size, why = self._ask_batch_size(workload_name)
        if size is None:
            raise ValueError(f"AlgoPerf submission {self.name!r} has no batch size for {workload_name!r}: "
                             f"its get_batch_size {why}")
        return size

    def batch_size_for(self, workload: Any) -> int:
        """Ask about ``workload.algoperf_workload`` (the nearest AlgoPerf workload); when the
        submission has no answer, use ``workload.default_batch_size`` with a warning."""
        key = workload.spec.key
        override = self._override(key)
        if override is not None:
            return override
        asked = getattr(workload, "algoperf_workload", None) or key
        size, why = self._ask_batch_size(asked)
        if size is not None:
            return size
        default = int(getattr(workload, "default_batch_size", 128))
        nearest = f" (the AlgoPerf workload nearest to {key})" if asked != key else ""
        warnings.warn(f"AlgoPerf submission {self.name!r} has no batch size for {asked!r}{nearest}: its "
                      f"get_batch_size {why}; using {key}'s reference batch size {default} "
                      "(--batch-size N sets another)", AlgoPerfBatchSizeWarning, stacklevel=2)
        return default

    # --- the contract -------------------------------------------------------------------
    def init_optimizer_state(self, workload, model_params, model_state, hyperparameters, rng):
        if getattr(workload, "metrics_logger", None) is None:
            workload.metrics_logger = NullMetricsLogger()
        return self._call("init_optimizer_state", workload, workload, model_params, model_state,
                          self._hp(hyperparameters), rng)

    def update_params(self, workload, current_param_container, current_params_types, model_state, hyperparameters,
                      batch, loss_type, optimizer_state, eval_results, global_step, rng, train_state=None):
        extra = {"train_state": train_state} if self.wants_train_state else {}
        return self._call("update_params", workload, workload=workload,
                          current_param_container=current_param_container,
                          current_params_types=_param_types(current_params_types, self._spec),
                          model_state=model_state, hyperparameters=self._hp(hyperparameters), batch=batch,
                          loss_type=_translate_enum(loss_type, "LossType", self._spec),
                          optimizer_state=optimizer_state, eval_results=eval_results, global_step=global_step,
                          rng=rng, **extra)

    def prepare_for_eval(self, workload, current_param_container, current_params_types, model_state,
                         hyperparameters, loss_type, optimizer_state, eval_results, global_step, rng):
        if not callable(getattr(self.module, "prepare_for_eval", None)):
            return optimizer_state, current_param_container, model_state
        return self._call("prepare_for_eval", workload, workload=workload,
                          current_param_container=current_param_container,
                          current_params_types=_param_types(current_params_types, self._spec),
                          model_state=model_state, hyperparameters=self._hp(hyperparameters),
                          loss_type=_translate_enum(loss_type, "LossType", self._spec),
                          optimizer_state=optimizer_state, eval_results=eval_results, global_step=global_step,
                          rng=rng)

    def data_selection(self, workload, input_queue: Iterator, optimizer_state, current_param_container, model_state,
                       hyperparameters, global_step, rng):
        if not callable(getattr(self.module, "data_selection", None)):
            return next(input_queue)
        return self._call("data_selection", workload, workload, input_queue, optimizer_state,
                          current_param_container, model_state, self._hp(hyperparameters), global_step, rng)

    # --- laptime extras -----------------------------------------------------------------
    def search_space(self) -> Any:
        """The ``tuning_search_space.json`` beside the submission, if there is one."""
        if not self._search_space_read:
            self._search_space_read = True
            if self._source is not None and (self._source.absolute().parent / SEARCH_SPACE_FILE).is_file():
                from laptime.tuning import SearchSpace

                self._search_space = SearchSpace.load(self._source.absolute().parent / SEARCH_SPACE_FILE)
        return self._search_space

    def source_files(self) -> list[Path]:
        from laptime.algorithms import algoperf_shim

        shim = Path(algoperf_shim.__file__).parent
        files = [Path(__file__), *sorted(shim.glob("*.py"))]
        if self._source is not None:
            files.append(self._source)
        elif getattr(self.module, "__file__", None):
            files.append(Path(self.module.__file__))
        return files + [f for f in self.helper_files if f not in files]
