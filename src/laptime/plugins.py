"""Objects contributed by other installed packages through entry points (stdlib only).

A package declares, in its ``pyproject.toml``::

    [project.entry-points."laptime.datasets"]
    mydata = "my_package.data:SOURCE"

    [project.entry-points."laptime.suites"]
    mysuite = "my_package.suites:SUITE"

Each entry point loads to an instance of the expected type, an iterable of instances, or a
zero-argument callable returning either. Workloads and algorithms have their own groups
(``laptime.workloads``, ``laptime.algorithms``), read by their registries.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from importlib.metadata import entry_points
from typing import TypeVar

T = TypeVar("T")


def _instances(obj: object, kind: type[T]) -> list[T]:
    if callable(obj) and not isinstance(obj, (kind, type)):
        obj = obj()
    if isinstance(obj, kind):
        return [obj]
    if isinstance(obj, Iterable) and not isinstance(obj, (str, bytes)):
        items = list(obj)
        if items and all(isinstance(item, kind) for item in items):
            return items
    raise TypeError(f"expected a {kind.__name__}, an iterable of them or a factory of either, got {obj!r:.80}")


def load_entry_points(group: str, kind: type[T], what: str) -> list[tuple[T, str]]:
    """The ``kind`` objects of every entry point in ``group``, each with where it came from
    (``'NAME' (module:attr)``). A plugin that fails to load or loads something else is skipped
    with a :class:`RuntimeWarning`: a broken plugin must not hide the built-ins."""
    found: list[tuple[T, str]] = []
    for ep in entry_points(group=group):
        where = f"{ep.name!r} ({ep.value})"
        try:
            items = _instances(ep.load(), kind)
        except Exception as exc:  # noqa: BLE001 - any failure of a plugin is reported, not raised
            warnings.warn(f"skipping {what} plugin {where}: {exc}", RuntimeWarning, stacklevel=3)
            continue
        found.extend((item, where) for item in items)
    return found


def skip_plugin(what: str, name: str, where: str, reason: str) -> None:
    """Warn that plugin object ``name`` from ``where`` is not used, and why."""
    warnings.warn(f"skipping {what} plugin {where}: {what} {name!r} {reason}", RuntimeWarning, stacklevel=3)
