"""The algorithm registry: built-in baselines, installed plugins, and user files.

``AlgorithmRegistry.resolve(spec)`` accepts a registered name (``nadamw``), a path to a Python file
(``my_algo.py``) or ``module:attribute``. A file provides an attribute named ``algorithm`` (an
Algorithm instance), exactly one Algorithm subclass defined in it, or AlgoPerf's module-level
submission functions (run through :mod:`laptime.algorithms.algoperf`).
Plugins register through the ``laptime.algorithms`` entry-point group: each entry point loads to
an Algorithm instance, subclass or a zero-argument factory.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from pathlib import Path

from laptime.api import Algorithm

ENTRY_POINT_GROUP = "laptime.algorithms"


class UnknownAlgorithmError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0])


class AlgorithmLoadError(Exception):
    """A user algorithm file or module could not be loaded."""


class AlgorithmRegistry:
    def __init__(self) -> None:
        self._factories: dict[str, Callable[[], Algorithm]] = {}

    def register(self, name: str, factory: Callable[[], Algorithm]) -> None:
        if name in self._factories:
            raise ValueError(f"algorithm {name!r} is already registered")
        self._factories[name] = factory

    def names(self) -> list[str]:
        return sorted(self._factories)

    def get(self, name: str) -> Algorithm:
        if name not in self._factories:
            close = difflib.get_close_matches(name, self.names(), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UnknownAlgorithmError(
                f"unknown algorithm {name!r}.{hint} Known algorithms: {', '.join(self.names())}. "
                "You can also pass a path to a .py file or module:attribute."
            )
        algorithm = self._factories[name]()
        if not algorithm.name:
            algorithm.name = name
        return algorithm

    def resolve(self, spec: str) -> Algorithm:
        """A registered name, a ``.py`` file, or ``module:attribute``."""
        if spec in self._factories:
            return self.get(spec)
        if spec.endswith(".py") or Path(spec).is_file():
            return _from_file(Path(spec))
        if ":" in spec:
            module_name, _, attr = spec.partition(":")
            try:
                module = importlib.import_module(module_name)
            except Exception as exc:  # noqa: BLE001 - report any import failure clearly
                raise AlgorithmLoadError(f"cannot import module {module_name!r}: {exc}") from exc
            if not hasattr(module, attr):
                raise AlgorithmLoadError(f"module {module_name!r} has no attribute {attr!r}")
            return _as_algorithm(getattr(module, attr), spec)
        return self.get(spec)

    def all(self) -> list[Algorithm]:
        return [self.get(name) for name in self.names()]


def _as_algorithm(obj, where: str) -> Algorithm:
    if isinstance(obj, Algorithm):
        return obj
    if inspect.isclass(obj) and issubclass(obj, Algorithm):
        return obj()
    if callable(obj):
        made = obj()
        if isinstance(made, Algorithm):
            return made
    raise AlgorithmLoadError(f"{where} is not a laptime Algorithm (an instance, subclass or factory of one)")


def _from_file(path: Path) -> Algorithm:
    if not path.is_file():
        raise AlgorithmLoadError(f"algorithm file {str(path)!r} does not exist")
    from laptime.algorithms.algoperf import AlgoPerfSubmission, install_spec_shim, looks_like_submission

    install_spec_shim()  # AlgoPerf submissions import `from algoperf import spec`
    module_name = f"laptime_user_algorithm_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise AlgorithmLoadError(f"cannot load {str(path)!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - user code: any failure is reported, not dumped
        sys.modules.pop(module_name, None)
        raise AlgorithmLoadError(f"error while loading {str(path)!r}: {type(exc).__name__}: {exc}") from exc
    if hasattr(module, "algorithm"):
        algorithm = _as_algorithm(module.algorithm, f"{path}:algorithm")
    elif looks_like_submission(module):
        algorithm = AlgoPerfSubmission(module, name=path.stem, source=path)
    else:
        classes = [obj for obj in vars(module).values()
                   if inspect.isclass(obj) and issubclass(obj, Algorithm) and obj.__module__ == module_name]
        if len(classes) != 1:
            raise AlgorithmLoadError(
                f"{str(path)!r} must define an `algorithm` object, exactly one Algorithm subclass "
                f"(found {len(classes)}), or AlgoPerf's module-level submission functions"
            )
        algorithm = classes[0]()
    if not algorithm.name:
        algorithm.name = path.stem
    return algorithm


def _entry_point_factories() -> Iterable[tuple[str, Callable[[], Algorithm]]]:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        yield ep.name, (lambda ep=ep: _as_algorithm(ep.load(), f"entry point {ep.name!r}"))


def _builtin_algorithms() -> list[Algorithm]:
    from laptime.algorithms.baselines import baseline_algorithms
    from laptime.algorithms.library import library_algorithms

    return [*baseline_algorithms(), *library_algorithms()]


def default_algorithms() -> AlgorithmRegistry:
    """A registry with the built-in baselines, the library and every installed plugin."""
    registry = AlgorithmRegistry()
    for algorithm in _builtin_algorithms():
        registry.register(algorithm.name, _fresh(algorithm.name))
    for name, factory in _entry_point_factories():
        if name not in registry.names():
            registry.register(name, factory)
    return registry


def _fresh(name: str) -> Callable[[], Algorithm]:
    def factory() -> Algorithm:
        return next(a for a in _builtin_algorithms() if a.name == name)

    return factory
