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
import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
import types
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from pathlib import Path

from laptime.api import Algorithm
from laptime.errors import LaptimeError

ENTRY_POINT_GROUP = "laptime.algorithms"


class UnknownAlgorithmError(LaptimeError, KeyError):
    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0])


class AlgorithmLoadError(LaptimeError):
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
        """A registered name, a ``.py`` file (``NAME=FILE.py`` runs it under another name), or
        ``module:attribute``."""
        if spec in self._factories:
            return self.get(spec)
        if spec.endswith(".py") or Path(spec).is_file():
            if not Path(spec).is_file() and (named := split_named_file(spec)) is not None:
                return _from_file(named[1], name=named[0])
            return _from_file(Path(spec))
        if (named := split_named_file(spec)) is not None:
            return _from_file(named[1], name=named[0])
        if ":" in spec:
            module_name, _, attr = spec.partition(":")
            try:
                module = importlib.import_module(module_name)
            except Exception as exc:  # noqa: BLE001 - report any import failure clearly
                raise AlgorithmLoadError(f"cannot import module {module_name!r}: {exc}") from exc
            if not hasattr(module, attr):
                raise AlgorithmLoadError(f"module {module_name!r} has no attribute {attr!r}")
            algorithm = _as_algorithm(getattr(module, attr), spec)
            if getattr(module, "__file__", None):
                _resolve_paths(algorithm, Path(module.__file__).resolve().parent)
            return algorithm
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


#: Modules whose absence marks a JAX submission (laptime runs PyTorch submissions only).
_JAX_MODULES = ("jax", "jaxlib", "flax", "optax", "chex", "jraph")


def _inside(path: str | None, folder: Path) -> bool:
    if not path:
        return False
    try:
        Path(path).resolve().relative_to(folder)
        return True
    except (ValueError, OSError):
        return False


def _folder_package(folder: Path) -> str:
    """A package for ``folder`` (its ``__path__``), so ``from .helper import x`` works in files there."""
    name = "laptime_user_" + hashlib.sha1(str(folder).encode()).hexdigest()[:12]
    if name not in sys.modules:
        package = types.ModuleType(name, f"the folder {folder} (laptime: user algorithm files are loaded in it)")
        package.__path__ = [str(folder)]
        sys.modules[name] = package
    return name


def load_module(path: Path) -> tuple[types.ModuleType, list[Path]]:
    """Execute ``path`` as a fresh module; returns it and the helper modules' files it imported.

    As under AlgoPerf's runner, which imports a submission by its dotted path from the repository
    root: the file is a module of a package for its folder (relative imports work), and both its
    folder and the current directory are importable (``import helper`` beside it, or
    ``from submissions.x.helper import y`` from the root). Helper modules loaded from the folder
    are dropped from ``sys.modules`` afterwards (the module keeps them), so another submission with
    a helper of the same name gets its own and every load starts afresh. Raises
    :class:`AlgorithmLoadError` with one clear line.
    """
    from laptime.algorithms.algoperf import install_shim

    install_shim()  # AlgoPerf submissions import `from algoperf import spec`
    path = Path(path)
    folder = path.resolve().parent
    cwd = Path.cwd().resolve()
    package = _folder_package(folder)
    stem = path.stem if path.stem.isidentifier() else "module_" + hashlib.sha1(path.stem.encode()).hexdigest()[:8]
    module_name = f"{package}.{stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise AlgorithmLoadError(f"cannot load {str(path)!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    before = set(sys.modules)
    roots = [str(folder), str(cwd)]
    saved = list(sys.path)
    sys.path[:] = roots + [entry for entry in saved if entry not in roots]  # first while loading: its own helpers win
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - user code: any failure is reported, not dumped
        sys.modules.pop(module_name, None)
        raise AlgorithmLoadError(f"error while loading {str(path)!r}: {_load_error(exc)}") from exc
    finally:
        # the order before, plus what the module added, plus the two roots (last) for its later imports
        grown = [entry for entry in sys.path if entry not in saved and entry not in roots]
        sys.path[:] = saved + grown + [entry for entry in roots if entry not in saved]
        helpers: list[Path] = []
        for name in sorted(set(sys.modules) - before):
            file = getattr(sys.modules[name], "__file__", None)
            if name == module_name or not file:
                continue
            if _inside(file, folder):
                helpers.append(Path(file))
                del sys.modules[name]
            elif _inside(file, cwd) and name.split(".")[0] != "laptime" and (
                    (cwd / name.split(".")[0]).is_dir() or (cwd / f"{name.split('.')[0]}.py").is_file()):
                helpers.append(Path(file))  # a module of the repository it is run from
    return module, helpers


def _load_error(exc: BaseException) -> str:
    """One line saying why a file could not be loaded, and what would make it load."""
    if isinstance(exc, ImportError):
        name = exc.name or ""
        named = re.match(r"cannot import name '([\w.]+)' from '([\w.]+)'", str(exc))
        if named:  # `from package import missing`
            name = f"{named.group(2)}.{named.group(1)}".replace("laptime.algorithms.algoperf_shim", "algoperf")
        top = name.split(".")[0]
        if top in _JAX_MODULES:
            return (f"it imports {name!r}, part of JAX, which laptime does not install: laptime runs AlgoPerf's "
                    "PyTorch submissions (a PyTorch file that borrows from JAX needs JAX installed)")
        if top == "absl":
            return "it imports absl (absl-py), which is not installed: pip install 'laptime[algoperf]'"
        if top in ("algoperf", "algorithmic_efficiency") and "." in name and _is_shim(sys.modules.get(top)):
            return (f"it imports {name!r}, which laptime's stand-in for AlgoPerf does not provide (it has "
                    "spec and pytorch_utils, what PyTorch submissions use); install the real package to try it")
        if isinstance(exc, ModuleNotFoundError):
            return (f"ModuleNotFoundError: {exc} (imports are resolved from the file's folder and from the current "
                    "directory, as when AlgoPerf's runner starts from the repository root)")
    return f"{type(exc).__name__}: {exc}"


def _is_shim(module) -> bool:
    return getattr(module, "__laptime_shim__", False) is True


def _from_file(path: Path, name: str | None = None) -> Algorithm:
    if not path.is_file():
        raise AlgorithmLoadError(f"algorithm file {str(path)!r} does not exist")
    from laptime.algorithms.algoperf import AlgoPerfSubmission, looks_like_submission

    module, helpers = load_module(path)
    if hasattr(module, "algorithm"):
        algorithm = _as_algorithm(module.algorithm, f"{path}:algorithm")
    elif looks_like_submission(module):
        algorithm = AlgoPerfSubmission(module, name=name, source=path, helper_files=helpers)
    else:
        classes = [obj for obj in vars(module).values()
                   if inspect.isclass(obj) and issubclass(obj, Algorithm) and obj.__module__ == module.__name__]
        if len(classes) != 1:
            raise AlgorithmLoadError(
                f"{str(path)!r} must define an `algorithm` object, exactly one Algorithm subclass "
                f"(found {len(classes)}), or AlgoPerf's module-level submission functions"
            )
        algorithm = classes[0]()
    _resolve_paths(algorithm, path.resolve().parent)
    if name:
        algorithm.name = name
    if not algorithm.name:
        algorithm.name = path.stem
    return algorithm


def _resolve_paths(algorithm: Algorithm, folder: Path) -> None:
    """Relative paths an algorithm names (its ``search_space`` file) are read from ``folder``, the
    folder of the file that defines it, not from wherever laptime was started."""
    resolve = getattr(algorithm, "resolve_paths", None)
    if callable(resolve):
        resolve(folder)


def split_named_file(spec: str) -> tuple[str, Path] | None:
    """``NAME=PATH`` (a file run under another name) → ``(NAME, PATH)``; else ``None``."""
    name, sep, rest = spec.partition("=")
    if sep and name and (rest.endswith(".py") or Path(rest).is_file()) and not Path(spec).is_file():
        return name, Path(rest)
    return None


def unique_names(entries: list[tuple[str, Algorithm]]) -> list[tuple[str, Algorithm]]:
    """Make the algorithms' names unique within a benchmark (leaderboard rows are by name).

    Files sharing a name (every AlgoPerf submission is a ``submission.py``; two may share a folder
    name or a ``submission_name``) are renamed ``NAME (FOLDER)``, FOLDER being the nearest folder up
    their paths that tells them apart (``sgd (a)``, ``sgd (b)`` for ``a/sgd/`` and ``b/sgd/``; the
    trailing folders from there when one name is not enough), and their specs become
    ``NAME (FOLDER)=PATH`` so that a worker resolving the spec gets the same name.
    """
    by_name: dict[str, list[int]] = {}
    for i, (_, algorithm) in enumerate(entries):
        by_name.setdefault(algorithm.name, []).append(i)
    out = list(entries)
    taken = {algorithm.name for _, algorithm in entries}
    for name, indices in by_name.items():
        if len(indices) < 2:
            continue
        files = {i: _spec_file(entries[i][0]) for i in indices}
        folders = {i: f.resolve().parent.parts if f is not None else () for i, f in files.items()}
        depth = 1
        while depth < max(len(p) for p in folders.values()) and \
                len({folders[i][-depth:] for i in indices}) < len(indices):
            depth += 1
        at_depth = {i: folders[i][-depth] if len(folders[i]) >= depth else "" for i in indices}
        one_folder = len(set(at_depth.values())) == len(indices)  # one folder name tells them apart
        for i in indices:
            spec, algorithm = entries[i]
            if files[i] is None:
                continue  # a registered name keeps its name; the files around it are renamed
            label = (at_depth[i] if one_folder else "/".join(folders[i][-depth:])).replace("=", "-")
            new, n = f"{name} ({label})", 2
            while new in taken:
                new, n = f"{name} ({label}, {n})", n + 1
            taken.add(new)
            algorithm.name = new
            out[i] = (f"{new}={files[i]}", algorithm)
    return out


def _spec_file(spec: str) -> Path | None:
    named = split_named_file(spec)
    if named is not None:
        return named[1]
    if spec.endswith(".py") or Path(spec).is_file():
        return Path(spec)
    return None


def _entry_point_factories() -> Iterable[tuple[str, Callable[[], Algorithm]]]:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        yield ep.name, (lambda ep=ep: _as_algorithm(ep.load(), f"entry point {ep.name!r}"))


def _builtin_algorithms() -> list[Algorithm]:
    from laptime.algorithms.baselines import baseline_algorithms
    from laptime.algorithms.library import library_algorithms

    return [*baseline_algorithms(), *library_algorithms()]


def default_algorithms(include_entry_points: bool = True) -> AlgorithmRegistry:
    """A registry with the built-in baselines, the library and (unless told not to) every
    installed plugin."""
    registry = AlgorithmRegistry()
    for algorithm in _builtin_algorithms():
        registry.register(algorithm.name, _fresh(algorithm.name))
    for name, factory in (_entry_point_factories() if include_entry_points else ()):
        if name not in registry.names():
            registry.register(name, factory)
    return registry


def _fresh(name: str) -> Callable[[], Algorithm]:
    def factory() -> Algorithm:
        return next(a for a in _builtin_algorithms() if a.name == name)

    return factory
