"""Suites: named lists of (workload, variant, configuration) that a benchmark runs together.

* ``smoke`` — real data, small models, about three minutes on two cores with the three
  baselines under the self-tuning ruleset; ``laptime bench`` runs it by default.
* ``cpu`` — every CPU configuration (the smoke suite and the Tiny Shakespeare ReLU variant).
* ``mnist1d`` — MNIST-1D alone: seconds per trial, for quick checks.

A variant listed next to its base workload is scored through the variant gate (see
:mod:`laptime.scoring`): the base counts as missed when the variant misses its target or is more
than 4× slower than the fastest algorithm on it.
"""

from __future__ import annotations

import dataclasses


class UnknownSuiteError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


@dataclasses.dataclass(frozen=True)
class Suite:
    name: str
    description: str
    entries: tuple[tuple[str, str, str], ...]  # (workload, variant, config)
    device: str = "cpu"  # the device the suite's targets were calibrated on


def default_suites() -> dict[str, Suite]:
    suites = [
        Suite("smoke", "CPU smoke suite, the default of `laptime bench`: MNIST-1D (MLP, with its CNN variant) and a "
                       "small character-level GPT on Tiny Shakespeare",
              (("mnist1d", "base", "cpu"), ("mnist1d", "cnn", "cpu"), ("shakespeare", "base", "cpu"))),
        Suite("cpu", "every CPU configuration: the smoke suite plus the Tiny Shakespeare ReLU variant",
              (("mnist1d", "base", "cpu"), ("mnist1d", "cnn", "cpu"), ("shakespeare", "base", "cpu"),
               ("shakespeare", "relu", "cpu"))),
        Suite("mnist1d", "MNIST-1D only (MLP and its CNN variant): seconds per trial",
              (("mnist1d", "base", "cpu"), ("mnist1d", "cnn", "cpu"))),
    ]
    return {s.name: s for s in suites}


def get_suite(name: str) -> Suite:
    suites = default_suites()
    if name not in suites:
        raise UnknownSuiteError(f"unknown suite {name!r}; suites: {', '.join(suites)}")
    return suites[name]
