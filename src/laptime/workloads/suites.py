"""Suites: named lists of (workload, variant, configuration) that a benchmark runs together.

* ``smoke`` — real data, small models, about three minutes on two cores with the three
  baselines under the self-tuning ruleset; ``laptime bench`` runs it by default.
* ``cpu`` — every CPU configuration (the smoke suite and the Tiny Shakespeare ReLU variant).
* ``mnist1d`` — MNIST-1D alone: seconds per trial, for quick checks.
* ``lite`` — the lite suite for one GPU (gpu configurations; official CIFAR-10); ``lite_webp`` the
  same with the lossy CIFAR-10 copy; ``lite_cpu`` its workloads in their cpu configurations.

A variant listed next to its base workload is scored through the variant gate (see
:mod:`laptime.scoring`): the base counts as missed when the variant misses its target or is more
than 4× slower than the fastest algorithm on it.

Other packages add suites through the ``laptime.suites`` entry-point group: each entry point loads
to a :class:`Suite`, an iterable of them, or a zero-argument factory of either (see
:mod:`laptime.plugins`). A plugin suite may name plugin workloads; a plugin workload names the
datasets it reads (``Workload.datasets``), which may come from the ``laptime.datasets`` group.
"""

from __future__ import annotations

import dataclasses

from laptime.plugins import load_entry_points, skip_plugin
from laptime.errors import LaptimeError

ENTRY_POINT_GROUP = "laptime.suites"


class UnknownSuiteError(LaptimeError, KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


@dataclasses.dataclass(frozen=True)
class Suite:
    name: str
    description: str
    entries: tuple[tuple[str, str, str], ...]  # (workload, variant, config)
    device: str = "cpu"  # the device the suite's targets were calibrated on

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("a suite needs a name")
        entries = tuple(tuple(entry) for entry in self.entries)
        if not entries or any(len(e) != 3 or not all(isinstance(part, str) and part for part in e) for e in entries):
            raise ValueError(f"suite {self.name!r}: entries must be (workload, variant, config) name triples")
        object.__setattr__(self, "entries", entries)


#: The lite suite's (workload, variant) pairs: every workload with the variant that gates it.
LITE = (("cifar10", "base"), ("cifar10", "relu"), ("cifar10_vit", "base"), ("cifar10_vit", "postln"),
        ("shakespeare", "base"), ("shakespeare", "relu"), ("ptb", "base"), ("ptb", "glu"),
        ("molhiv", "base"), ("molhiv", "layernorm"), ("mnist1d", "base"), ("mnist1d", "cnn"))


def _lite_entries(cifar_config: str, config: str = "gpu") -> tuple[tuple[str, str, str], ...]:
    """LITE in one configuration; CIFAR-10 picks its data through ``cifar_config``; MNIST-1D has
    only its cpu configuration (seconds per trial on any device)."""
    def pick(name: str) -> str:
        if name == "mnist1d":
            return "cpu"
        return cifar_config if name.startswith("cifar10") else config

    return tuple((name, variant, pick(name)) for name, variant in LITE)


def builtin_suites() -> list[Suite]:
    return [
        Suite("smoke", "CPU smoke suite, the default of `laptime bench`: MNIST-1D (MLP, with its CNN variant) and a "
                       "small character-level GPT on Tiny Shakespeare",
              (("mnist1d", "base", "cpu"), ("mnist1d", "cnn", "cpu"), ("shakespeare", "base", "cpu"))),
        Suite("cpu", "every CPU configuration: the smoke suite plus the Tiny Shakespeare ReLU variant",
              (("mnist1d", "base", "cpu"), ("mnist1d", "cnn", "cpu"), ("shakespeare", "base", "cpu"),
               ("shakespeare", "relu", "cpu"))),
        Suite("mnist1d", "MNIST-1D only (MLP and its CNN variant): seconds per trial",
              (("mnist1d", "base", "cpu"), ("mnist1d", "cnn", "cpu"))),
        Suite("lite", "the lite suite for one GPU: CIFAR-10 CNN and ViT (official data), Tiny Shakespeare nanoGPT, "
                      "PTB word LM, molhiv GIN, each with one variant, and MNIST-1D; targets provisional until "
                      "calibrated on an H100",
              _lite_entries("gpu"), device="cuda"),
        Suite("lite_webp", "the lite suite with the lossy CIFAR-10 copy (cifar10_webp) instead of the official data",
              _lite_entries("gpu_webp"), device="cuda"),
        Suite("lite_cpu", "the lite suite's workloads in their CPU configurations (what the tests run)",
              _lite_entries("cpu", "cpu"), device="cpu"),
    ]


def default_suites(include_entry_points: bool = True) -> dict[str, Suite]:
    """The built-in suites and those of installed ``laptime.suites`` plugins, by name. A plugin
    suite whose name is taken, or a plugin that fails to load, is skipped with a warning."""
    suites = {s.name: s for s in builtin_suites()}
    if include_entry_points:
        for suite, where in load_entry_points(ENTRY_POINT_GROUP, Suite, "suite"):
            if suite.name in suites:
                skip_plugin("suite", suite.name, where, "is already defined")
                continue
            suites[suite.name] = suite
    return suites


def get_suite(name: str) -> Suite:
    suites = default_suites()
    if name not in suites:
        raise UnknownSuiteError(f"unknown suite {name!r}; suites: {', '.join(suites)}")
    return suites[name]
