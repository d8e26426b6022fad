"""One checkpointed trial, for ``tests/test_checkpoint.py``: imported by the test (the reference and
the resumed run, in the test's process) and run as a script in a child process that kills itself
with SIGKILL at a given step (``python checkpoint_child.py '<spec as JSON>'``).

A spec: ``{"workload", "variant", "config", "algorithm", "steps", "eval_every", "seed",
"checkpoint_every" (steps), "kill_at" (a step, or null), "dir" (checkpoint folder, or null)}``.
"""

from __future__ import annotations

import json
import os
import signal
import sys

import torch


class KillAt:
    """A progress hook that SIGKILLs its own process when step ``at`` is done (no cleanup at all)."""

    def __init__(self, at: int):
        self.at = at

    def start(self, workload, algorithm, budget_sec):
        pass

    def step(self, global_step, submission_time):
        if global_step == self.at:
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    def evaluated(self, record, reached):
        pass

    def finish(self, result):
        pass


def run_spec(spec: dict):
    from laptime.algorithms import default_algorithms
    from laptime.runner import TrialOptions, run_trial
    from laptime.workloads import default_workloads

    torch.set_num_threads(1)
    workload = default_workloads().create(spec["workload"], variant=spec["variant"], config=spec["config"])
    algorithm = default_algorithms().resolve(spec["algorithm"])
    options = TrialOptions(budget="steps", max_steps=spec["steps"], eval_every_steps=spec["eval_every"],
                           eval_splits=("validation",), stop_at_target=False,
                           checkpoint_dir=spec.get("dir"), checkpoint_every_steps=spec.get("checkpoint_every"))
    progress = KillAt(spec["kill_at"]) if spec.get("kill_at") else None
    return run_trial(workload, algorithm, dict(algorithm.self_tuning_defaults), spec.get("seed", 0), options,
                     progress=progress)


if __name__ == "__main__":
    result = run_spec(json.loads(sys.argv[1]))
    print(json.dumps({"steps": result.steps, "outcome": result.outcome.value}))  # only when not killed
