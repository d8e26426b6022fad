"""An AlgoPerf-style submission module runs in laptime through the adapter."""

import json
from pathlib import Path

from laptime.algorithms import AlgorithmRegistry
from laptime.algorithms.algoperf import AlgoPerfSubmission
from laptime.cli.main import main
from laptime.records import Outcome
from laptime.runner import TrialOptions, run_trial
from laptime.workloads import default_workloads

SUBMISSION = Path(__file__).parent / "data" / "algoperf_sgd_submission.py"


def test_submission_file_resolves_to_the_adapter_and_trains():
    algorithm = AlgorithmRegistry().resolve(str(SUBMISSION))  # a file needs no registered names
    assert isinstance(algorithm, AlgoPerfSubmission)
    assert algorithm.name == "algoperf_sgd_submission"
    workload = default_workloads().create("mnist1d", variant="cnn")
    result = run_trial(workload, algorithm, {}, seed=0, options=TrialOptions(eval_every_steps=20))
    # the submission raised spec.TrainingCompleteError after 40 steps: the runner ended the trial there
    assert result.outcome in (Outcome.COMPLETE, Outcome.REACHED)
    assert result.steps == 39
    first, last = result.evals[0].metrics, result.evals[-1].metrics
    assert last["validation/loss"] < first["validation/loss"]
    assert last["validation/accuracy"] > 0.2  # chance is 0.1


def test_empty_point_is_passed_as_none_and_batch_size_override():
    import torch

    algorithm = AlgoPerfSubmission.from_file(SUBMISSION, batch_sizes={"mnist1d@cpu": 32})
    assert algorithm.get_batch_size("mnist1d/base@cpu") == 32
    assert AlgoPerfSubmission.from_file(SUBMISSION).get_batch_size("mnist1d/base@cpu") == 128
    workload = default_workloads().create("mnist1d")
    model, state = workload.init_model_fn(0)
    from laptime.api import Hyperparameters

    opt_state = algorithm.init_optimizer_state(workload, model, state, Hyperparameters({}), torch.Generator())
    assert opt_state["saw_none_hparams"] is True
    opt_state = algorithm.init_optimizer_state(workload, model, state, Hyperparameters(learning_rate=0.1),
                                               torch.Generator())
    assert opt_state["saw_none_hparams"] is False


def test_cli_runs_a_submission_file(capsys, tmp_path):
    code = main(["run", "-w", "mnist1d", "-a", str(SUBMISSION), "--hparams", '{"learning_rate": 0.05}',
                 "--db", str(tmp_path / "r.sqlite"), "--budget-factor", "20", "--json"])  # behaviour, not speed
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    assert result["algorithm"] == "algoperf_sgd_submission"
    assert result["outcome"] in ("complete", "reached")
