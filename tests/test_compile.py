"""torch.compile as a workload option: compiled in the untimed warm-up, the code reused by the trial."""

from __future__ import annotations

import pytest
import torch

from laptime.algorithms import default_algorithms
from laptime.runner import TrialOptions, run_trial
from laptime.workloads import default_workloads

pytestmark = pytest.mark.usefixtures("one_thread")


class CountingBackend:
    """A torch.compile backend that runs the captured graph eagerly and counts compilations and calls."""

    def __init__(self):
        self.compilations = 0
        self.calls = 0

    def __call__(self, graph_module, example_inputs):
        self.compilations += 1

        def run(*args):
            self.calls += 1
            return graph_module.forward(*args)

        return run


class StepCounts:
    """A progress hook (outside the clock) noting the backend's compilations at every step."""

    def __init__(self, backend):
        self.backend, self.at_steps = backend, []

    def start(self, *args):
        pass

    def step(self, global_step, submission_time):
        self.at_steps.append(self.backend.compilations)

    def evaluated(self, *args):
        pass

    def finish(self, result):
        pass


def _trial(workload, progress=None):
    algorithm = default_algorithms().get("nadamw")
    return run_trial(workload, algorithm, dict(algorithm.self_tuning_defaults), 0,
                     TrialOptions(max_steps=6, eval_period_sec=1e12, stop_at_target=False, robust=False),
                     progress=progress)


def test_compiled_in_the_warm_up_and_reused_by_the_trial():
    torch._dynamo.reset()
    backend = CountingBackend()
    workload = default_workloads().create("mnist1d", "base", "cpu")
    eager = _trial(workload)
    workload.set_compile(backend=backend)
    workload.warm_up(default_algorithms().get("nadamw").get_batch_size(workload.spec.key))
    assert backend.compilations >= 1  # the warm-up's throwaway model compiled it
    warmed = backend.compilations
    hook = StepCounts(backend)
    compiled = _trial(workload, hook)
    assert hook.at_steps == [warmed] * 6  # not one compilation inside the trial's steps
    assert backend.calls >= 6  # and the trial's model ran through the compiled code
    assert compiled.outcome == eager.outcome and compiled.steps == eager.steps == 6
    for key, value in eager.final_metrics.items():  # the same training (the eager backend: same numerics)
        assert compiled.final_metrics[key] == pytest.approx(value, rel=1e-5), key
    workload.set_compile(None)
    assert workload.compiled(torch.nn.Linear(1, 1)).__class__ is torch.nn.Linear


def test_compiled_wrappers_are_not_kept_beyond_two_models():
    workload = default_workloads().create("mnist1d", "base", "cpu")
    workload.set_compile(backend="eager")
    models = [torch.nn.Linear(2, 2) for _ in range(3)]
    wrappers = [workload.compiled(m) for m in models]
    assert workload.compiled(models[2]) is wrappers[2] and workload.compiled(models[1]) is wrappers[1]
    assert len(workload._compiled) == 2 and id(models[0]) not in workload._compiled
    workload.init_model_fn(0)  # a new trial releases them
    assert workload._compiled == {}
