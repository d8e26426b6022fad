"""Suites: named lists of (workload, variant, configuration) that a benchmark runs together.

* ``smoke`` — the CPU suite: real data, small models, minutes on two cores. ``laptime bench``
  runs it by default.
* ``smoke-base`` — the smoke suite without its held-out variants (quicker).

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
    smoke = (
        ("mnist1d", "base", "cpu"),
        ("mnist1d", "cnn", "cpu"),
        ("shakespeare", "base", "cpu"),
        ("shakespeare", "relu", "cpu"),
    )
    suites = [
        Suite("smoke", "CPU smoke suite: MNIST-1D (MLP, CNN variant) and a small character-level GPT on "
                       "Tiny Shakespeare (GELU, ReLU variant)", smoke),
        Suite("smoke-base", "the smoke suite without held-out variants", tuple(e for e in smoke if e[1] == "base")),
    ]
    return {s.name: s for s in suites}


def get_suite(name: str) -> Suite:
    suites = default_suites()
    if name not in suites:
        raise UnknownSuiteError(f"unknown suite {name!r}; suites: {', '.join(suites)}")
    return suites[name]
