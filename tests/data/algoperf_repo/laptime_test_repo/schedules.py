"""A module at the root of a submissions repository, shared by its submissions (test data for
laptime's AlgoPerf adapter)."""


def linear_warmup(step, warmup_steps):
    return min(1.0, (step + 1) / max(warmup_steps, 1))
