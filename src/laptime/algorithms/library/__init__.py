"""The baseline library beyond the first three: update rules from the literature, learning-rate
schedules composed with them, and batch-size / data-selection algorithms. Each entry is a laptime Algorithm with a search space, self-tuning
defaults and a one-line summary naming its source."""

from __future__ import annotations

from laptime.api import Algorithm


def library_algorithms() -> list[Algorithm]:
    """Fresh instances of every library algorithm."""
    from laptime.algorithms.library.autolrs import autolrs_algorithms
    from laptime.algorithms.library.data_selection import data_selection_algorithms
    from laptime.algorithms.library.rs2 import rs2_algorithms
    from laptime.algorithms.library.scheduled import scheduled_algorithms
    from laptime.algorithms.library.speedrun import speedrun_algorithms
    from laptime.algorithms.library.update_rules import update_rule_algorithms

    return [*update_rule_algorithms(), *scheduled_algorithms(), *data_selection_algorithms(), *autolrs_algorithms(),
            *rs2_algorithms(), *speedrun_algorithms()]
