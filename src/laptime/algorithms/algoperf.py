"""Run an AlgoPerf PyTorch submission (a module with the five submission functions) in laptime.

AlgoPerf submissions are modules with module-level ``get_batch_size``, ``init_optimizer_state``,
``update_params``, ``prepare_for_eval`` (optional) and ``data_selection``, importing
``from algoperf import spec``. laptime's contract keeps those names, arguments and meanings, so the
adapter only has to:

* make ``algoperf.spec`` importable when the real ``algoperf`` package is not installed: a small
  shim module maps ``spec.ForwardPassMode``/``LossType``/``ParameterType`` to laptime's enums and
  ``spec.TrainingCompleteError`` to :class:`laptime.api.TrainingComplete`;
* pass ``hyperparameters=None`` when the point is empty (what AlgoPerf does under self-tuning);
* look the batch size up by laptime's workload key, or in a ``batch_sizes`` mapping you give
  (AlgoPerf submissions key their batch sizes by AlgoPerf workload names, which laptime does not
  have);
* with the real ``algoperf`` installed, hand the submission parameter tags of AlgoPerf's own
  ``ParameterType`` (matched by name), so its comparisons against ``spec.ParameterType`` hold.

Usage: ``laptime run -w mnist1d -a submission.py --hparams '{"learning_rate": 1e-3, ...}'`` —
:class:`~laptime.algorithms.AlgorithmRegistry` recognises such a file by its functions — or
``AlgoPerfSubmission.from_file("submission.py", batch_sizes={"default": 128})``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from laptime.api import Algorithm, ForwardPassMode, LossType, ParameterType, TrainingComplete

REQUIRED = ("get_batch_size", "init_optimizer_state", "update_params")


def looks_like_submission(module: types.ModuleType) -> bool:
    """A module with AlgoPerf's module-level submission functions."""
    return all(callable(getattr(module, name, None)) for name in REQUIRED)


def install_spec_shim() -> None:
    """Make ``from algoperf import spec`` work without the algoperf package (no-op if it is installed)."""
    try:
        importlib.import_module("algoperf.spec")
        return
    except ImportError:
        pass
    package = types.ModuleType("algoperf")
    package.__path__ = []  # a namespace-like package
    spec = types.ModuleType("algoperf.spec")
    spec.ForwardPassMode = ForwardPassMode
    spec.LossType = LossType
    spec.ParameterType = ParameterType
    spec.TrainingCompleteError = TrainingComplete
    spec.__doc__ = "laptime's stand-in for algoperf.spec (the real package is not installed)"
    package.spec = spec
    sys.modules.setdefault("algoperf", package)
    sys.modules.setdefault("algoperf.spec", spec)


def _algoperf_param_types(types_: Mapping[str, ParameterType]) -> Mapping[str, Any]:
    """laptime tags → the installed algoperf's ParameterType (by name); unchanged under the shim."""
    spec = sys.modules.get("algoperf.spec")
    enum = getattr(spec, "ParameterType", ParameterType)
    if enum is ParameterType:
        return types_
    return {name: getattr(enum, kind.name, kind) for name, kind in types_.items()}


class AlgoPerfSubmission(Algorithm):
    """An Algorithm whose five functions are an AlgoPerf submission module's."""

    def __init__(self, module: types.ModuleType, name: str | None = None,
                 batch_sizes: Mapping[str, int] | None = None, source: Path | None = None):
        missing = [n for n in REQUIRED if not callable(getattr(module, n, None))]
        if missing:
            raise ValueError(f"{module.__name__} is not an AlgoPerf submission: it lacks {', '.join(missing)}")
        self.module = module
        self.name = name or module.__name__.rsplit(".", 1)[-1]
        self.summary = f"AlgoPerf submission {self.name} (run through laptime's adapter)"
        self.batch_sizes = dict(batch_sizes or {})
        self._source = source

    @classmethod
    def from_file(cls, path: str | Path, name: str | None = None,
                  batch_sizes: Mapping[str, int] | None = None) -> "AlgoPerfSubmission":
        install_spec_shim()
        path = Path(path)
        module_name = f"laptime_algoperf_{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ValueError(f"cannot load {str(path)!r} as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
        return cls(module, name=name or path.stem, batch_sizes=batch_sizes, source=path)

    # --- helpers ------------------------------------------------------------------------
    @staticmethod
    def _hp(hyperparameters):
        return None if hyperparameters is None or len(hyperparameters) == 0 else hyperparameters

    def _call(self, fn_name: str, *args, **kwargs):
        fn: Callable = getattr(self.module, fn_name)
        return fn(*args, **kwargs)

    # --- the contract -------------------------------------------------------------------
    def get_batch_size(self, workload_name: str) -> int:
        name, _, config = workload_name.partition("@")
        base = name.split("/")[0]
        for key in (workload_name, f"{base}@{config}", base, "default"):
            if key in self.batch_sizes:
                return int(self.batch_sizes[key])
        return int(self._call("get_batch_size", workload_name))

    def init_optimizer_state(self, workload, model_params, model_state, hyperparameters, rng):
        return self._call("init_optimizer_state", workload, model_params, model_state, self._hp(hyperparameters), rng)

    def update_params(self, workload, current_param_container, current_params_types, model_state, hyperparameters,
                      batch, loss_type, optimizer_state, eval_results, global_step, rng, train_state=None):
        return self._call("update_params", workload=workload, current_param_container=current_param_container,
                          current_params_types=_algoperf_param_types(current_params_types), model_state=model_state,
                          hyperparameters=self._hp(hyperparameters), batch=batch, loss_type=loss_type,
                          optimizer_state=optimizer_state, eval_results=eval_results, global_step=global_step,
                          rng=rng, train_state=train_state)

    def prepare_for_eval(self, workload, current_param_container, current_params_types, model_state,
                         hyperparameters, loss_type, optimizer_state, eval_results, global_step, rng):
        if not callable(getattr(self.module, "prepare_for_eval", None)):
            return optimizer_state, current_param_container, model_state
        return self._call("prepare_for_eval", workload=workload, current_param_container=current_param_container,
                          current_params_types=_algoperf_param_types(current_params_types), model_state=model_state,
                          hyperparameters=self._hp(hyperparameters), loss_type=loss_type,
                          optimizer_state=optimizer_state, eval_results=eval_results, global_step=global_step,
                          rng=rng)

    def data_selection(self, workload, input_queue, optimizer_state, current_param_container, model_state,
                       hyperparameters, global_step, rng):
        if not callable(getattr(self.module, "data_selection", None)):
            return next(input_queue)
        return self._call("data_selection", workload, input_queue, optimizer_state, current_param_container,
                          model_state, self._hp(hyperparameters), global_step, rng)

    def source_files(self) -> list[Path]:
        files = [Path(__file__)]
        if self._source is not None:
            files.append(self._source)
        elif getattr(self.module, "__file__", None):
            files.append(Path(self.module.__file__))
        return files
