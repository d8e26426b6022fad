"""The built-in workloads (cpu configurations) and the workload registry."""

from __future__ import annotations

import dataclasses
import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from laptime.api import ForwardPassMode, LossType, ParameterType, Workload
from laptime.data import DataError
from laptime.workloads import UnknownWorkloadError, WorkloadRegistry, default_workloads
from laptime.workloads import registry as registry_mod
from laptime.workloads.mnist1d import Mnist1DWorkload
from laptime.workloads.shakespeare import NUM_CHARS, ShakespeareWorkload
from algohelpers import best_metrics
from toys import train_briefly

CASES = [("mnist1d", "base"), ("mnist1d", "cnn"), ("shakespeare", "base"), ("shakespeare", "relu")]
IDS = [f"{n}-{v}" for n, v in CASES]


@pytest.fixture(scope="module")
def registry() -> WorkloadRegistry:
    return default_workloads()


@pytest.fixture(scope="module")
def workloads(registry, laptime_data_root):
    """One cpu instance per case, data loaded once for the module."""
    return {case: registry.create(*case, config="cpu") for case in CASES}


@pytest.fixture(params=CASES, ids=IDS)
def workload(request, workloads) -> Workload:
    return workloads[request.param]


def _num_classes(workload: Workload) -> int:
    return 10 if workload.name == "mnist1d" else 65


# --------------------------------------------------------------------------- models


def test_model_builds_and_every_parameter_is_tagged(workload):
    model, state = workload.init_model_fn(0)
    names = {name for name, _ in model.named_parameters()}
    tags = workload.model_params_types
    assert set(tags) == names
    assert all(isinstance(t, ParameterType) for t in tags.values())
    # same seed, same initial weights; another seed, others
    again, _ = workload.init_model_fn(0)
    other, _ = workload.init_model_fn(1)
    first = next(iter(model.parameters()))
    assert torch.equal(first, next(iter(again.parameters())))
    assert not torch.equal(first, next(iter(other.parameters())))


def test_mnist1d_tags(workloads):
    cnn = workloads[("mnist1d", "cnn")]
    cnn.init_model_fn(0)
    assert cnn.model_params_types["conv1.weight"] == ParameterType.CONV_WEIGHT
    assert cnn.model_params_types["conv1.bias"] == ParameterType.BIAS
    assert cnn.model_params_types["head.weight"] == ParameterType.WEIGHT


@pytest.mark.parametrize("config", ["cpu", "gpu"])
def test_gpt_tags(registry, config):
    workload = registry.create("shakespeare", "base", config)  # builds the model only; no data needed
    model, _ = workload.init_model_fn(0)
    tags = workload.model_params_types
    layers = workload.model_config.layers
    by_kind: dict[ParameterType, list[str]] = {}
    for name, kind in tags.items():
        by_kind.setdefault(kind, []).append(name)
    assert sorted(by_kind[ParameterType.ATTENTION_QKV]) == [f"blocks.{i}.attn.qkv.weight" for i in range(layers)]
    assert sorted(by_kind[ParameterType.ATTENTION_OUT]) == [f"blocks.{i}.attn.out.weight" for i in range(layers)]
    assert sorted(by_kind[ParameterType.EMBEDDING]) == ["pos_emb.weight", "tok_emb.weight"]
    assert len(by_kind[ParameterType.LAYER_NORM_SCALE]) == 2 * layers + 1
    assert len(by_kind[ParameterType.WEIGHT]) == 2 * layers  # the MLP's two matrices per block
    assert model.head.weight is model.tok_emb.weight  # tied head
    if config == "gpu":  # nanoGPT shakespeare-char: 10.65M parameters without position embeddings
        n = sum(p.numel() for p in model.parameters()) - model.pos_emb.weight.numel()
        assert n == 10_646_784


def test_gpt_is_causal(registry):
    workload = registry.create("shakespeare", "base", "cpu")
    model, _ = workload.init_model_fn(0)
    model.eval()
    idx = torch.randint(0, 65, (2, workload.context), generator=torch.Generator().manual_seed(0))
    changed = idx.clone()
    changed[:, 40:] = (changed[:, 40:] + 1) % 65  # change only the future of position 39
    with torch.no_grad():
        a, b = model(idx), model(changed)
    assert torch.allclose(a[:, :40], b[:, :40], atol=1e-6)
    assert not torch.allclose(a[:, 40:], b[:, 40:])


def test_relu_variant_changes_only_the_activation(registry):
    base = registry.create("shakespeare", "base").build_model()
    relu = registry.create("shakespeare", "relu").build_model()
    assert isinstance(base.blocks[0].mlp.act, torch.nn.GELU)
    assert isinstance(relu.blocks[0].mlp.act, torch.nn.ReLU)
    assert [n for n, _ in base.named_parameters()] == [n for n, _ in relu.named_parameters()]


def test_forward_and_loss_shapes(workload):
    model, state = workload.init_model_fn(0)
    batch = next(workload.train_batches(8, seed=0))
    logits, state = workload.model_fn(model, batch, state, ForwardPassMode.TRAIN)
    classes = _num_classes(workload)
    if workload.name == "mnist1d":
        assert batch["inputs"].shape == (8, 40) and batch["inputs"].dtype == torch.float32
        assert batch["targets"].shape == (8,)
        assert logits.shape == (8, classes)
        per_example = 8
    else:
        context = workload.context
        assert batch["inputs"].shape == (8, context) and batch["targets"].shape == (8, context)
        assert logits.shape == (8, context, classes)
        per_example = 8 * context
        # a freshly initialised GPT predicts nearly uniformly
        assert abs(F.cross_entropy(logits.flatten(0, 1), batch["targets"].flatten()).item() - math.log(65)) < 0.1
    out = workload.loss_fn(batch["targets"], logits)
    assert out["per_example"].shape == (per_example,)
    assert float(out["n_valid_examples"]) == per_example
    assert torch.isfinite(out["summed"])
    out["summed"].backward()
    assert all(p.grad is not None for p in model.parameters())
    assert workload.loss_type == LossType.SOFTMAX_CROSS_ENTROPY


# --------------------------------------------------------------------------- data


def _batches(workload, batch_size, seed, n):
    iterator = workload.train_batches(batch_size, seed)
    return [next(iterator) for _ in range(n)]


def test_train_batches_deterministic_per_seed(workload):
    a = _batches(workload, 16, 7, 5)
    b = _batches(workload, 16, 7, 5)
    c = _batches(workload, 16, 8, 5)
    for x, y in zip(a, b):
        assert torch.equal(x["inputs"], y["inputs"]) and torch.equal(x["targets"], y["targets"])
    assert not all(torch.equal(x["inputs"], z["inputs"]) for x, z in zip(a, c))


def test_train_batches_do_not_touch_the_global_rng(workload):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    _batches(workload, 16, 0, 3)
    assert torch.equal(torch.rand(3), expected)


def test_mnist1d_epochs_are_permutations(workloads):
    workload = workloads[("mnist1d", "base")]
    inputs, _ = workload.split_tensors("train")
    assert len(inputs) == 3500
    batches = _batches(workload, 1000, 0, 6)  # 3 full batches per epoch; the last 500 are dropped
    assert all(b["inputs"].shape == (1000, 40) for b in batches)
    epoch1 = torch.cat([b["inputs"] for b in batches[:3]])
    epoch2 = torch.cat([b["inputs"] for b in batches[3:]])
    assert len(torch.unique(epoch1, dim=0)) == 3000  # no example twice within an epoch
    assert not torch.equal(epoch1, epoch2)  # reshuffled
    train_rows = {tuple(r) for r in inputs.tolist()}
    assert all(tuple(r) in train_rows for r in epoch1.tolist())


def test_mnist1d_splits(workloads):
    from laptime.data import mnist1d as mnist1d_data

    workload = workloads[("mnist1d", "base")]
    arrays = mnist1d_data.load()
    train_x, train_y = workload.split_tensors("train")
    val_x, val_y = workload.split_tensors("validation")
    test_x, test_y = workload.split_tensors("test")
    assert (len(train_x), len(val_x), len(test_x)) == (3500, 500, 1000)
    # validation = the last 500 training examples (by index), test = the package's test set
    assert torch.equal(val_x, torch.as_tensor(arrays["x"][3500:], dtype=torch.float32))
    assert torch.equal(train_x, torch.as_tensor(arrays["x"][:3500], dtype=torch.float32))
    assert torch.equal(test_y, torch.as_tensor(arrays["y_test"]))
    for held_out in (val_x, test_x):
        assert torch.cdist(held_out, train_x).min() > 0  # no held-out example appears in train
    spec = workload.spec
    assert (spec.num_train_examples, spec.num_validation_examples, spec.num_test_examples) == (3500, 500, 1000)


def test_shakespeare_splits_by_position(workloads):
    workload = workloads[("shakespeare", "base")]
    train, val, test = (workload.split_tokens(s) for s in ("train", "validation", "test"))
    assert len(train) + len(val) + len(test) == NUM_CHARS
    assert len(train) == int(0.9 * NUM_CHARS) and len(val) == int(0.05 * NUM_CHARS)
    assert len(workload.vocabulary) == 65
    text = workload.decode(torch.cat([train, val, test]))
    assert text.startswith("First Citizen:")
    train_text = workload.decode(train)
    assert text[: len(train_text)] == train_text
    # training windows come from the train split only, targets are the next characters
    for batch in _batches(workload, 32, 0, 4):
        assert torch.equal(batch["inputs"][:, 1:], batch["targets"][:, :-1])
        for row_in, row_t in zip(batch["inputs"], batch["targets"]):
            window = workload.decode(torch.cat([row_in, row_t[-1:]]))
            assert window in train_text
    # evaluation windows lie inside their split and do not overlap
    for split, tokens in (("validation", val), ("test", test)):
        starts = workload.eval_window_starts(split)
        span = workload.context + 1
        assert int(starts.max()) + span <= len(tokens)
        assert bool((starts[1:] - starts[:-1] >= span).all())
        assert len(starts) == getattr(workload.spec, f"num_{split}_examples")


def test_eval_is_deterministic_and_complete(workload):
    model, state = workload.init_model_fn(0)
    first = workload.eval_model(model, state)
    model.train()  # evaluate_split must put the model in eval mode itself
    second = workload.eval_model(model, state)
    assert first == second
    metric = workload.target_metric_name
    for split in ("validation", "test"):
        assert isinstance(first[f"{split}/loss"], float)
        assert f"{split}/{metric}" in first
    if workload.name == "mnist1d":
        assert 0.0 <= first["validation/accuracy"] <= 1.0
        assert first["validation/loss"] == pytest.approx(math.log(10), abs=0.3)
    else:
        assert first["validation/loss"] == pytest.approx(math.log(65), abs=0.1)


def test_eval_ignores_dropout(registry, laptime_data_root):
    workload = registry.create("shakespeare", "base", "cpu")
    workload.model_config = dataclasses.replace(workload.model_config, dropout=0.5)
    model, _ = workload.init_model_fn(0)
    assert workload.evaluate_split(model, None, "validation") == workload.evaluate_split(model, None, "validation")


def test_data_is_loaded_on_demand_and_never_downloaded(registry, tmp_path, monkeypatch):
    monkeypatch.setenv("LAPTIME_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("LAPTIME_DATA_SOURCES", "")  # empty: no local copies (not even the default dirs)
    workload = registry.create("shakespeare", "base", "cpu")  # cheap: no data yet
    assert workload.spec.step_hint > 0
    with pytest.raises(DataError, match="laptime data prepare tinyshakespeare"):
        workload.train_batches(4, 0)
    assert not (tmp_path / "empty" / "tinyshakespeare" / "input.txt").exists()


# --------------------------------------------------------------------------- learning


@pytest.mark.usefixtures("one_thread")  # 8 s alone, 79 s beside a busy process with two threads
def test_mnist1d_cnn_learns(workloads):
    before, evals = train_briefly(workloads[("mnist1d", "cnn")], steps=300, lr=3e-3, batch_size=128, eval_every=50)
    # best of 6 evals (algohelpers.best_metrics); measured, avx2 and default alike (one or two threads):
    # accuracy 0.81, loss 0.54 from 2.307 (thresholds 0.6 and 1.307)
    best = best_metrics(evals)
    assert before["accuracy"] < 0.25
    assert best["accuracy"] > 0.6, evals
    assert best["loss"] < before["loss"] - 1.0, evals


@pytest.mark.usefixtures("one_thread")  # faster, alone and under load
def test_shakespeare_learns(workloads):
    # 90 steps, not 60: validation loss from 4.187 (uniform over 65 characters), one thread, avx2 / default:
    # step 60 3.103 / 3.067, step 90 2.954 / 2.946 (3.08 / 3.10 at step 60 with two threads). The threshold
    # before - 1.0 = 3.187 left 0.08 at step 60; at step 90 it leaves 0.23.
    before, evals = train_briefly(workloads[("shakespeare", "base")], steps=90, lr=1e-2, batch_size=32, eval_every=30)
    best = best_metrics(evals)
    assert best["loss"] < before["loss"] - 1.0, (before, evals)


# --------------------------------------------------------------------------- specs and registry


def test_specs(registry):
    specs = [s for s in registry.specs() if s.name in ("mnist1d", "shakespeare")]  # the others: their own tests
    keys = [s.key for s in specs]
    assert len(keys) == len(set(keys))
    assert set(keys) == {
        "mnist1d/base@cpu",
        "mnist1d/cnn@cpu",
        "shakespeare/base@cpu",
        "shakespeare/relu@cpu",
        "shakespeare/base@gpu",
        "shakespeare/relu@gpu",
    }
    assert {s.key for s in registry.specs(config="cpu") if s.name in ("mnist1d", "shakespeare")} == {
        k for k in keys if k.endswith("@cpu")}
    for spec in specs:
        assert spec.version and spec.dataset
        assert spec.max_allowed_runtime_sec > 0 and spec.eval_period_time_sec > 0 and spec.step_hint > 0
        assert spec.eval_period_time_sec < spec.max_allowed_runtime_sec
        assert spec.num_train_examples > 0 and spec.num_validation_examples > 0 and spec.num_test_examples > 0
        if spec.name == "mnist1d":
            assert spec.target.metric == "accuracy" and spec.target.direction == "max"
            assert 0.1 < spec.target.validation < 1 and 0.1 < spec.target.test < 1
            assert spec.dataset.startswith("mnist1d@")
        else:
            assert spec.target.metric == "loss" and spec.target.direction == "min"
            assert 1.0 < spec.target.validation < math.log(65)
            assert spec.dataset == "tinyshakespeare@md5:6fb458f1232090904fb40fe944165e91"
    gpu = registry.create("shakespeare", "base", "gpu").spec
    assert (gpu.target.validation, gpu.step_hint, gpu.max_allowed_runtime_sec) == (1.47, 1750, 65.0)


def test_unknown_workload_error(registry):
    with pytest.raises(UnknownWorkloadError) as info:
        registry.create("mnist1dd")
    error = info.value
    assert isinstance(error, KeyError)
    message = str(error)
    assert message.startswith("unknown workload 'mnist1dd'")
    assert "Did you mean 'mnist1d'?" in message
    assert "cifar10, cifar10_vit, mnist1d, molhiv, ptb, shakespeare" in message
    with pytest.raises(UnknownWorkloadError, match="Known workloads") as info:
        registry.get_class("imagenet")
    assert "Did you mean" not in str(info.value)


def test_unknown_variant_and_config(registry):
    with pytest.raises(ValueError, match="variants: base, cnn"):
        registry.create("mnist1d", "transformer")
    with pytest.raises(ValueError, match="configurations: cpu"):
        registry.create("mnist1d", config="gpu")
    assert registry.create("mnist1d").variant == "base"  # the first variant is the base


def test_register_rules():
    registry = WorkloadRegistry()
    assert registry.names() == []
    registry.register(Mnist1DWorkload)
    registry.register(Mnist1DWorkload)  # idempotent
    assert registry.names() == ["mnist1d"] and "mnist1d" in registry

    class Impostor(ShakespeareWorkload):
        name = "mnist1d"

    with pytest.raises(ValueError, match="already taken"):
        registry.register(Impostor)
    with pytest.raises(TypeError):
        registry.register(dict)  # type: ignore[arg-type]


def test_entry_point_plugins(monkeypatch):
    class Plugin(Mnist1DWorkload):
        name = "plugin"

    class GoodEP:
        name, value = "plugin", "pkg:Plugin"

        def load(self):
            return Plugin

    class BrokenEP:
        name, value = "broken", "pkg:missing"

        def load(self):
            raise ImportError("no module named pkg")

    seen = {}

    def fake_entry_points(group):
        seen["group"] = group
        return [GoodEP(), BrokenEP()]

    monkeypatch.setattr(registry_mod, "entry_points", fake_entry_points)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        registry = default_workloads()
    assert seen["group"] == "laptime.workloads"
    builtin = ["cifar10", "cifar10_vit", "mnist1d", "molhiv", "ptb", "shakespeare"]
    assert registry.names() == sorted(builtin + ["plugin"])
    assert any("broken" in str(w.message) for w in caught)
    assert default_workloads(include_entry_points=False).names() == builtin
    assert default_workloads(False) is not default_workloads(False)  # a fresh registry each time


def test_every_spec_is_complete_and_gpu_targets_are_provisional(registry):
    """Across all workloads: keys unique, rules sane, provenance written, gpu placeholders marked."""
    specs = registry.specs()
    keys = [s.key for s in specs]
    assert len(keys) == len(set(keys)) and len(keys) >= 20
    for spec in specs:
        assert spec.version and spec.dataset and spec.description
        assert 0 < spec.eval_period_time_sec < spec.max_allowed_runtime_sec and spec.step_hint > 0
        assert spec.calibration and "TODO" not in spec.calibration, spec.key
        if spec.config.startswith("gpu"):
            assert spec.provisional, spec.key  # no GPU calibration in the repo yet
        else:
            assert not spec.provisional, spec.key


def test_suites_name_existing_entries(registry):
    from laptime.workloads.suites import default_suites

    for suite in default_suites().values():
        for name, variant, config in suite.entries:
            assert registry.create(name, variant, config).spec.key == f"{name}/{variant}@{config}"
    lite = default_suites()["lite"]
    assert {e[0] for e in lite.entries} == {"cifar10", "cifar10_vit", "shakespeare", "ptb", "molhiv", "mnist1d"}
    assert lite.device == "cuda"
