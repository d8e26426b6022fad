"""AlgoPerf PyTorch submissions run in laptime unchanged, convention by convention.

Every submission under ``tests/data/algoperf_*`` is written here, in AlgoPerf's style, to carry one
convention that real submissions use (``docs/algoperf.md`` lists them with the real submissions
that need them). Trials use step budgets and a few steps, so nothing depends on the machine's speed.
"""

import json
import sqlite3
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from laptime.algorithms import AlgorithmLoadError, AlgorithmRegistry
from laptime.algorithms.algoperf import (
    AlgoPerfBatchSizeWarning,
    AlgoPerfSubmission,
    NullMetricsLogger,
    install_shim,
    read_submission_name,
    submission_name,
    trial_device,
)
from laptime.algorithms.registry import unique_names
from laptime.api import (ForwardPassMode, Hyperparameters, LossType, ParameterType, ShapeTuple, TrainingComplete,
                         Workload)
from laptime.cli.main import main
from laptime.execution import TrialPlan, execute_plan
from laptime.records import Outcome
from laptime.runner import TrialOptions, run_trial
from laptime.workloads import default_workloads

DATA = Path(__file__).parent / "data"
SUBMISSION = DATA / "algoperf_sgd_submission.py"


def sub(folder: str) -> Path:
    return DATA / folder / "submission.py"


def train(path, steps=6, hyperparameters=None, workload=None, **options):
    """Load ``path`` as `laptime run` does and train it ``steps`` steps on MNIST-1D (step budget)."""
    algorithm = AlgorithmRegistry().resolve(str(path))
    workload = workload or default_workloads().create("mnist1d")
    options = TrialOptions(budget="steps", max_steps=steps, eval_every_steps=steps, robust=False, **options)
    return algorithm, workload, run_trial(workload, algorithm, hyperparameters or {}, seed=0, options=options)


def assert_trained(result, steps):
    assert result.outcome != Outcome.FAILED, result.error
    assert result.steps == steps
    assert result.evals and "validation/accuracy" in result.evals[-1].metrics


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------------------------ the package

#: AlgoPerf's spec names (both package versions define the same ones).
SPEC_NAMES = [
    "DataSelectionFn", "ForwardPassMode", "Hyperparameters", "InitOptimizerFn", "LossType", "ModelAuxiliaryState",
    "ModelInitState", "OptimizerState", "ParameterContainer", "ParameterKey", "ParameterShapeTree", "ParameterType",
    "ParameterTypeTree", "PrepareForEvalFn", "RandomState", "Shape", "ShapeTuple", "Steps", "Tensor", "Timing",
    "TrainingCompleteError", "UpdateParamsFn", "UpdateReturn", "Workload", "data_selection", "get_batch_size",
    "init_optimizer_state", "prepare_for_eval", "update_params",
]
#: AlgoPerf's ParameterType members and values.
PARAMETER_TYPES = ["WEIGHT", "BIAS", "CONV_WEIGHT", "BATCH_NORM_SCALE", "BATCH_NORM_BIAS", "LAYER_NORM_SCALE",
                   "LAYER_NORM_BIAS", "EMBEDDING", "ATTENTION_Q", "ATTENTION_K", "ATTENTION_V", "ATTENTION_OUT",
                   "ATTENTION_QKV", "ATTENTION_KV", "ATTENTION_BIAS"]


@pytest.fixture
def stand_in():
    if install_shim() != {"algoperf": "laptime", "algorithmic_efficiency": "laptime"}:
        pytest.skip("a real AlgoPerf package is installed: its own spec is used")


def test_stand_in_spec_has_every_name_under_both_package_names(stand_in):
    import algoperf.spec
    import algorithmic_efficiency.spec
    from algorithmic_efficiency import pytorch_utils as old_utils
    from algoperf import pytorch_utils

    assert algoperf.spec is algorithmic_efficiency.spec and pytorch_utils is old_utils
    spec = algoperf.spec
    assert [n for n in SPEC_NAMES if not hasattr(spec, n)] == []
    assert spec.Workload is Workload and spec.TrainingCompleteError is TrainingComplete
    assert spec.ShapeTuple is ShapeTuple
    assert [(m.name, m.value) for m in spec.ParameterType] == [(n, i) for i, n in enumerate(PARAMETER_TYPES)]
    assert [m.name for m in spec.LossType] == ["SOFTMAX_CROSS_ENTROPY", "SIGMOID_CROSS_ENTROPY",
                                               "MEAN_SQUARED_ERROR", "CTC_LOSS", "MEAN_ABSOLUTE_ERROR"]
    assert [m.name for m in spec.ForwardPassMode] == ["TRAIN", "EVAL"]
    with pytest.raises(NotImplementedError):  # the spec's functions declare signatures only
        spec.get_batch_size("mnist")


def test_pytorch_setup_answers_for_one_process_on_the_trials_device(stand_in):
    from algoperf.pytorch_utils import pytorch_setup

    with trial_device("cuda:3"):
        assert pytorch_setup() == (False, 0, torch.device("cuda:3"), 1)
    with trial_device("cpu"):
        assert pytorch_setup() == (False, 0, torch.device("cpu"), 0)


def test_the_real_package_is_used_when_installed(tmp_path, monkeypatch):
    """With an ``algoperf`` on the path, its spec is the one submissions get: laptime translates its
    parameter types and its TrainingCompleteError."""
    package = tmp_path / "algoperf"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "spec.py").write_text(textwrap.dedent("""\
        import enum
        ParameterType = enum.Enum("ParameterType", ["WEIGHT", "BIAS", "CONV_WEIGHT"])
        LossType = enum.Enum("LossType", ["SOFTMAX_CROSS_ENTROPY"])
        class TrainingCompleteError(Exception):
            pass
    """))
    for name in [n for n in sys.modules if n.split(".")[0] in ("algoperf", "algorithmic_efficiency")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert install_shim()["algoperf"] == "real"
    import algoperf.spec as real

    seen = {}

    def update_params(workload, current_param_container, current_params_types, model_state, hyperparameters,
                      batch, loss_type, optimizer_state, eval_results, global_step, rng):
        seen.update(types=dict(current_params_types), loss_type=loss_type)
        raise real.TrainingCompleteError

    module = type(sys)("fake_submission")
    module.update_params = update_params
    module.get_batch_size = lambda name: 8
    module.init_optimizer_state = lambda *args: {}
    algorithm = AlgoPerfSubmission(module, name="fake")
    with pytest.raises(TrainingComplete):
        algorithm.update_params(None, None, {"w": ParameterType.WEIGHT}, None, {}, {}, LossType.SOFTMAX_CROSS_ENTROPY,
                                {}, [], 0, None)
    assert seen == {"types": {"w": real.ParameterType.WEIGHT}, "loss_type": real.LossType.SOFTMAX_CROSS_ENTROPY}


# ------------------------------------------------------------------------------- call conventions

def test_old_package_name_algorithmic_efficiency(one_thread):
    algorithm, _, result = train(sub("algoperf_v05_package"))
    assert isinstance(algorithm, AlgoPerfSubmission) and algorithm.name == "algoperf_v05_package"
    assert_trained(result, 6)
    assert result.measurement["batch_size"] == 16  # its answer for AlgoPerf's "mnist"


def test_update_params_without_train_state(one_thread):
    algorithm, _, result = train(sub("algoperf_no_train_state"))
    assert algorithm.wants_train_state is False
    assert_trained(result, 6)


def test_train_state_passed_when_declared_and_training_complete_error_ends_the_trial(one_thread):
    algorithm, _, result = train(SUBMISSION, steps=60)  # the submission asserts it receives train_state
    assert algorithm.wants_train_state is True
    assert result.outcome in (Outcome.COMPLETE, Outcome.REACHED), result.error
    assert result.steps == 39  # it raised spec.TrainingCompleteError at its 40th step
    assert result.evals[-1].metrics["validation/accuracy"] > 0.2  # chance is 0.1


def test_model_fn_accepts_dropout_rate(one_thread):
    _, workload, result = train(sub("algoperf_dropout_rate"))
    assert_trained(result, 6)
    model, state = workload.init_model_fn(0)
    batch = next(workload.train_batches(8, seed=0))
    plain, _ = workload.model_fn(model, batch, state, ForwardPassMode.EVAL)
    with_rate, _ = workload.model_fn(model, batch, state, ForwardPassMode.EVAL, None, True, dropout_rate=0.5)
    assert torch.equal(plain, with_rate)  # accepted and ignored: dropout is part of laptime's workload


def test_annotations_with_spec_types_evaluated_at_import(one_thread):
    _, _, result = train(sub("algoperf_annotated"), hyperparameters={"learning_rate": 2e-3, "weight_decay": 0.01})
    assert_trained(result, 6)


def test_metrics_logger_is_there_for_submissions_that_log(one_thread):
    _, workload, result = train(sub("algoperf_metrics_logger"), steps=15)
    assert_trained(result, 15)
    assert isinstance(workload.metrics_logger, NullMetricsLogger)
    assert workload.metrics_logger.calls == 11  # steps 0..10, as the submission logs


def test_import_of_a_helper_module_beside_the_submission(one_thread):
    algorithm, _, result = train(sub("algoperf_helper_import"))
    assert_trained(result, 6)
    assert DATA / "algoperf_helper_import" / "rmsprop_helper.py" in algorithm.source_files()  # hashed with it
    assert "rmsprop_helper" not in sys.modules  # another submission's helper of that name gets its own


def test_relative_import_of_a_helper_module(one_thread):
    _, _, result = train(sub("algoperf_relative_import"))
    assert_trained(result, 6)


def test_import_from_the_repository_root_it_is_run_from(capsys, tmp_path, monkeypatch, one_thread):
    """As AlgoPerf's runner, started from the repository root: run from there, the root's packages
    import; sys.path is stripped of the current directory, as under the `laptime` console script."""
    root = DATA / "algoperf_repo"
    monkeypatch.chdir(root)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(root))])
    code, out, err = run_cli(capsys, "run", "-w", "mnist1d", "-a", "laptime_test_repo/sgd/submission.py",
                             "--budget", "steps", "--max-steps", "4", "--db", tmp_path / "r.sqlite", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["algorithm"] == "sgd" and result["steps"] == 4 and result["error"] is None


def test_self_tuning_submission_gets_hyperparameters_none(one_thread):
    _, _, result = train(sub("algoperf_self_tuning"))  # it raises unless hyperparameters is None
    assert_trained(result, 6)


def test_external_point_is_handed_over_as_algoperfs_namedtuple():
    seen = []
    module = type(sys)("probe_submission")
    module.get_batch_size = lambda name: 8
    module.init_optimizer_state = lambda workload, params, state, hyperparameters, rng: seen.append(hyperparameters)
    module.update_params = lambda *args, **kwargs: None
    algorithm = AlgoPerfSubmission(module, name="probe")
    algorithm.init_optimizer_state(default_workloads().create("mnist1d"), nn.Linear(1, 1), None,
                                   Hyperparameters(learning_rate=0.1, beta2=0.99), None)
    point = seen[0]
    assert type(point).__name__ == "Hyperparameters" and point._asdict() == {"learning_rate": 0.1, "beta2": 0.99}
    assert point.learning_rate == 0.1 and not hasattr(point, "label_smoothing")


def test_pytorch_setup_at_import_gives_the_trials_device(one_thread, tmp_path):
    path = sub("algoperf_pytorch_setup")
    with trial_device("cuda:1"):  # any device: pytorch_setup only reports it
        assert AlgorithmRegistry().resolve(str(path)).module.DEVICE == torch.device("cuda:1")
    plan = TrialPlan(workload="mnist1d", algorithm=str(path), hyperparameters={}, budget_mode="steps")
    record = execute_plan(plan, device="cpu", options=TrialOptions(max_steps=5, eval_every_steps=5, robust=False))
    assert record.outcome != Outcome.FAILED, record.error
    assert record.steps == 5


# ----------------------------------------------------------------------------- names and spaces

def test_submission_is_named_by_its_folder_or_its_submission_info(tmp_path):
    assert AlgorithmRegistry().resolve(str(sub("algoperf_named"))).name == "Named Adagrad"
    assert AlgorithmRegistry().resolve(str(sub("algoperf_self_tuning"))).name == "algoperf_self_tuning"
    assert AlgorithmRegistry().resolve(str(SUBMISSION)).name == "algoperf_sgd_submission"  # not submission.py
    nested = tmp_path / "lamb" / "pytorch" / "submission.py"  # AlgoPerf's <algorithm>/pytorch/ layout
    nested.parent.mkdir(parents=True)
    nested.write_text("")
    assert submission_name(nested) == "lamb"


@pytest.mark.parametrize("text, name", [
    ('submission_name: "Schedule-Free AdamW"\nframework: PyTorch\n', "Schedule-Free AdamW"),
    ("submission_name: NadamW baseline  # a comment\n", "NadamW baseline"),
    ("authors: x\nsubmission_name: >-\n  Two\n  lines\nversion: '1'\n", "Two lines"),
    ("name: algoclean\nchannels:\n  - defaults\n", None),  # a conda environment file under that name
])
def test_submission_info_reader(tmp_path, text, name):
    (tmp_path / "submission_info.yml").write_text(text)
    assert read_submission_name(tmp_path / "submission_info.yml") == name


def test_search_space_beside_the_submission_drives_external_tuning(capsys, tmp_path, one_thread):
    points = json.loads((DATA / "algoperf_external" / "tuning_search_space.json").read_text())
    db = tmp_path / "r.sqlite"
    code, out, err = run_cli(capsys, "bench", "--suite", "mnist1d", "-a", sub("algoperf_external"),
                             "--ruleset", "external", "--studies", "1", "--trials", "2", "--max-steps", "3",
                             "--bootstrap", "0", "--db", db, "--out", tmp_path / "report", "--json")
    assert code == 0, err
    assert json.loads(out)["trials"] == 4  # 2 points x 2 workloads
    with sqlite3.connect(db) as conn:
        stored = [json.loads(hp) for (hp,) in conn.execute("SELECT DISTINCT hyperparameters FROM trials")]
    assert sorted(stored, key=lambda p: p["learning_rate"]) == sorted(points, key=lambda p: p["learning_rate"])


def test_laptime_run_takes_the_first_point_and_search_space_overrides(capsys, tmp_path, one_thread):
    first = json.loads((DATA / "algoperf_external" / "tuning_search_space.json").read_text())[0]
    common = ["run", "-w", "mnist1d", "-a", sub("algoperf_external"), "--budget", "steps", "--max-steps", "2",
              "--db", tmp_path / "r.sqlite", "--json"]
    code, out, err = run_cli(capsys, *common)
    assert code == 0, err
    assert json.loads(out)["hyperparameters"] == first and "first point" in err
    other = {"learning_rate": 0.01, "one_minus_beta1": 0.2, "beta2": 0.9, "weight_decay": 0.0}
    (tmp_path / "space.json").write_text(json.dumps([other]))
    code, out, err = run_cli(capsys, *common, "--search-space", tmp_path / "space.json")
    assert code == 0, err
    assert json.loads(out)["hyperparameters"] == other
    code, _, err = run_cli(capsys, "bench", "-a", sub("algoperf_external"), "-a", "adamw", "--search-space",
                           tmp_path / "space.json", "--db", tmp_path / "r.sqlite")
    assert code == 2 and err.startswith("error: --search-space sets one algorithm's") and len(err.splitlines()) == 1


def test_two_submission_files_in_one_bench_are_two_rows(capsys, tmp_path, one_thread):
    code, out, err = run_cli(capsys, "bench", "--suite", "mnist1d", "-a", sub("algoperf_self_tuning"),
                             "-a", sub("algoperf_pytorch_setup"), "--max-steps", "3", "--bootstrap", "0",
                             "--db", tmp_path / "r.sqlite", "--out", tmp_path / "report", "--json")
    assert code == 0, err
    assert set(json.loads(out)["algorithms"]) == {"algoperf_self_tuning", "algoperf_pytorch_setup"}


def test_submissions_sharing_a_name_are_told_apart_by_their_folders():
    registry = AlgorithmRegistry()
    specs = [str(DATA / "algoperf_twins" / twin / "sgd" / "submission.py") for twin in ("a", "b")]
    entries = unique_names([(spec, registry.resolve(spec)) for spec in specs])
    assert [algorithm.name for _, algorithm in entries] == ["sgd (a)", "sgd (b)"]
    # the spec carries the name, so a worker process resolving it names the algorithm the same
    assert [registry.resolve(spec).name for spec, _ in entries] == ["sgd (a)", "sgd (b)"]


# ---------------------------------------------------------------------------------- batch sizes

def test_every_workload_names_an_algoperf_workload_and_a_reference_batch_size():
    algoperf = {"mnist", "cifar", "criteo1tb", "fastmri", "imagenet_resnet", "imagenet_vit", "librispeech_conformer",
                "librispeech_deepspeech", "ogbg", "wmt", "finewebedu_lm"}
    registry = default_workloads()
    named = {name: registry.get_class(name).algoperf_workload for name in registry.names()}
    assert named == {"mnist1d": "mnist", "cifar10": "cifar", "cifar10_vit": "cifar", "shakespeare": "finewebedu_lm",
                     "ptb": "finewebedu_lm", "molhiv": "ogbg"}
    assert set(named.values()) <= algoperf
    assert registry.create("shakespeare", config="gpu").default_batch_size == 64


def test_batch_size_falls_back_to_the_workloads_reference_with_a_warning(one_thread):
    with pytest.warns(AlgoPerfBatchSizeWarning, match="no batch size for 'mnist'"):
        _, _, result = train(sub("algoperf_batch_sizes"), steps=2)
    assert_trained(result, 2)
    assert result.measurement["batch_size"] == 128  # mnist1d's reference batch size
    assert any("no batch size for 'mnist'" in note for note in result.measurement["notes"])


def test_batch_sizes_given_in_python_take_precedence():
    algorithm = AlgoPerfSubmission.from_file(sub("algoperf_batch_sizes"), batch_sizes={"mnist1d@cpu": 24})
    assert algorithm.batch_size_for(default_workloads().create("mnist1d")) == 24
    assert algorithm.get_batch_size("ogbg") == 512  # asked directly: the submission's answer
    with pytest.raises(ValueError, match="has no batch size for 'mnist'"):
        algorithm.get_batch_size("mnist")


def test_batch_size_option_overrides_and_is_recorded(capsys, tmp_path, one_thread):
    common = ["run", "-w", "mnist1d", "-a", sub("algoperf_v05_package"), "--budget", "steps", "--max-steps", "2",
              "--db", tmp_path / "r.sqlite", "--json"]
    code, out, err = run_cli(capsys, *common, "--batch-size", "24")
    assert code == 0, err
    assert json.loads(out)["batch_size"] == 24
    code, out, err = run_cli(capsys, *common)
    assert code == 0, err
    assert json.loads(out)["batch_size"] == 16  # the submission's own answer
    plan = TrialPlan(workload="mnist1d", algorithm="x.py", hyperparameters={})
    assert plan.key() != TrialPlan(workload="mnist1d", algorithm="x.py", hyperparameters={}, batch_size=24).key()
    code, _, err = run_cli(capsys, *common, "--batch-size", "0")
    assert code == 2 and err == "error: --batch-size must be >= 1, got 0\n"


# ------------------------------------------------------------------------------ refused, clearly

@pytest.mark.skipif(torch.cuda.is_available(), reason="with CUDA the submission runs")
def test_hard_coded_cuda_on_a_cpu_trial_fails_with_a_clear_reason(one_thread):
    _, _, result = train(sub("algoperf_cuda"), steps=2)
    assert result.outcome == Outcome.FAILED
    last = result.error.strip().splitlines()[-1]
    assert last.startswith("laptime.algorithms.algoperf.SubmissionUnsupported") and "--device cuda" in last


def test_several_processes_are_refused_with_a_clear_reason(one_thread):
    _, _, result = train(sub("algoperf_distributed"), steps=2)
    assert result.outcome == Outcome.FAILED
    last = result.error.strip().splitlines()[-1]
    assert last.startswith("laptime.algorithms.algoperf.SubmissionUnsupported")
    assert "needs torch.distributed with several processes" in last


@pytest.mark.parametrize("line, message", [
    ("import optax", "part of JAX, which laptime does not install"),
    ("from algoperf import jax_sharding_utils", "laptime's stand-in for AlgoPerf does not provide"),
])
def test_what_cannot_load_is_refused_in_one_line(capsys, tmp_path, line, message):
    if line == "import optax" and __import__("importlib").util.find_spec("optax") is not None:
        pytest.skip("optax is installed")
    (tmp_path / "submission.py").write_text(f"{line}\n\ndef get_batch_size(name):\n    return 1\n")
    with pytest.raises(AlgorithmLoadError, match=message):
        AlgorithmRegistry().resolve(str(tmp_path / "submission.py"))
    code, _, err = run_cli(capsys, "run", "-w", "mnist1d", "-a", tmp_path / "submission.py",
                           "--db", tmp_path / "r.sqlite")
    assert code == 2 and len(err.splitlines()) == 1 and message in err


# ------------------------------------------------------------------ the workload's AlgoPerf side

def test_workload_attributes_submissions_read():
    workload = default_workloads().create("mnist1d", variant="cnn")
    model, _ = workload.init_model_fn(0)
    names = [n for n, _ in model.named_parameters()]
    assert set(workload.param_shapes) == set(names)
    assert all(workload.param_shapes[n] == ShapeTuple(p.shape) for n, p in model.named_parameters())
    last_linear = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)][-1]
    assert [n for n in names if workload.is_output_params(n)] == [f"{last_linear}.weight", f"{last_linear}.bias"]
    assert workload.num_validation_examples == workload.spec.num_validation_examples
    assert workload.num_test_examples == workload.spec.num_test_examples
    assert workload.metrics_logger is None  # AlgoPerf's default; the adapter attaches a logger


class _BatchNormToy(Workload):
    """A workload whose model has batch norm, to check update_batch_norm's meaning."""

    name = "bn_toy"

    @property
    def spec(self):  # not needed here
        raise NotImplementedError

    def build_model(self):
        return nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Linear(6, 2))

    def train_batches(self, global_batch_size, seed):
        raise NotImplementedError

    def evaluate_split(self, model, model_state, split):
        raise NotImplementedError


def test_update_batch_norm_false_normalises_with_the_batch_and_freezes_running_statistics():
    workload = _BatchNormToy()
    model, _ = workload.init_model_fn(0)
    bn = model[1]
    bn.running_mean.fill_(3.0)  # far from the batch's statistics
    batch = {"inputs": torch.randn(16, 4, generator=torch.Generator().manual_seed(0))}
    before = (bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone())
    frozen, _ = workload.model_fn(model, batch, None, ForwardPassMode.TRAIN, update_batch_norm=False)
    assert all(torch.equal(a, b) for a, b in zip(before, (bn.running_mean, bn.running_var, bn.num_batches_tracked)))
    assert bn.track_running_stats and model.training
    eval_out, _ = workload.model_fn(model, batch, None, ForwardPassMode.EVAL)
    train_out, _ = workload.model_fn(model, batch, None, ForwardPassMode.TRAIN, update_batch_norm=True)
    assert torch.allclose(frozen, train_out)  # the batch's statistics, as in training (AlgoPerf's meaning)
    assert not torch.allclose(frozen, eval_out)
    assert not torch.equal(bn.running_mean, before[0])  # update_batch_norm=True does update them
