"""Hyperparameters and search spaces (AlgoPerf ``tuning_search_space.json`` format).

See :mod:`laptime.tuning.search_space` for the file format and the sampling rules. This package
needs only NumPy, SciPy and the standard library.
"""

from laptime.tuning.search_space import (
    Choice,
    Range,
    SearchSpace,
    SearchSpaceError,
    check_point_types,
    halton_points,
    load_point,
)

__all__ = [
    "Choice",
    "Range",
    "SearchSpace",
    "SearchSpaceError",
    "check_point_types",
    "halton_points",
    "load_point",
]

# Tuning rulesets (external tuning, self-tuning) -> trial plans. Torch-free at import time.
from laptime.tuning.rulesets import (  # noqa: E402
    RULESETS,
    ExternalTuning,
    RulesetError,
    SelfTuning,
    algorithm_entry,
    make_ruleset,
    plan_trials,
)

__all__ += [
    "RULESETS",
    "ExternalTuning",
    "RulesetError",
    "SelfTuning",
    "algorithm_entry",
    "make_ruleset",
    "plan_trials",
]
