"""An explicit registry of workload classes (no module-level mutable state).

``default_workloads()`` builds one with the built-in workloads plus those installed by other
packages through the ``laptime.workloads`` entry-point group; each entry point must load a
:class:`laptime.api.Workload` subclass.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Iterable
from importlib.metadata import entry_points

import torch

from laptime.api import Workload, WorkloadSpec
from laptime.errors import LaptimeError

ENTRY_POINT_GROUP = "laptime.workloads"


class UnknownWorkloadError(LaptimeError, KeyError):
    """No workload of that name. The message lists the known names and a close match."""

    def __init__(self, name: str, known: Iterable[str]):
        self.name = name
        self.known = sorted(known)
        close = difflib.get_close_matches(name, self.known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        self.message = f"unknown workload {name!r}.{hint} Known workloads: {', '.join(self.known) or 'none'}."
        super().__init__(self.message)

    def __str__(self) -> str:  # KeyError would show the message quoted
        return self.message


class WorkloadRegistry:
    """Workload classes by name."""

    def __init__(self, classes: Iterable[type[Workload]] = ()):
        self._classes: dict[str, type[Workload]] = {}
        for cls in classes:
            self.register(cls)

    def register(self, cls: type[Workload]) -> type[Workload]:
        """Add a workload class (usable as a decorator). Re-registering the same class is a no-op."""
        if not (isinstance(cls, type) and issubclass(cls, Workload)):
            raise TypeError(f"{cls!r} is not a subclass of laptime.api.Workload")
        if not cls.name:
            raise ValueError(f"{cls.__name__} has no name")
        existing = self._classes.get(cls.name)
        if existing is not None and existing is not cls:
            raise ValueError(
                f"workload name {cls.name!r} is already taken by {existing.__module__}.{existing.__qualname__}"
            )
        self._classes[cls.name] = cls
        return cls

    def names(self) -> list[str]:
        return sorted(self._classes)

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def __len__(self) -> int:
        return len(self._classes)

    def get_class(self, name: str) -> type[Workload]:
        try:
            return self._classes[name]
        except KeyError:
            raise UnknownWorkloadError(name, self._classes) from None

    def create(
        self, name: str, variant: str | None = None, config: str | None = None, device: str | torch.device = "cpu"
    ) -> Workload:
        """An instance (cheap: data loads on first use). Unknown variant/config raise ``ValueError``."""
        return self.get_class(name)(variant=variant, config=config, device=device)

    def specs(self, config: str | None = None) -> list[WorkloadSpec]:
        """Every (workload, variant, configuration) spec, optionally only one configuration."""
        result = []
        for name in self.names():
            cls = self._classes[name]
            for cfg in cls.configs:
                if config is not None and cfg != config:
                    continue
                for variant in cls.variants:
                    result.append(cls(variant=variant, config=cfg).spec)
        return result


#: Modules of ``laptime.workloads`` holding one built-in workload each (module attribute ``WORKLOAD``).
BUILTIN_MODULES = ("mnist1d", "shakespeare", "cifar10", "cifar10_vit", "ptb", "molhiv")


def builtin_workload_classes() -> list[type[Workload]]:
    import importlib

    return [importlib.import_module(f"laptime.workloads.{module_name}").WORKLOAD for module_name in BUILTIN_MODULES]


def default_workloads(include_entry_points: bool = True) -> WorkloadRegistry:
    """A new registry with the built-in workloads and any installed ``laptime.workloads`` plugins.

    A plugin that fails to load, or does not load a Workload subclass, is skipped with a warning.
    """
    registry = WorkloadRegistry(builtin_workload_classes())
    if include_entry_points:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                registry.register(ep.load())
            except Exception as exc:  # a broken plugin must not hide the built-ins
                warnings.warn(f"skipping workload plugin {ep.name!r} ({ep.value}): {exc}", RuntimeWarning, stacklevel=2)
    return registry
