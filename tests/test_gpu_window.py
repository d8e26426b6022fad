"""benchmarks/gpu_window.py: the time-boxed, resumable GPU window, run on the CPU (--tiny), its
speedrun measurement with test-time augmentation, and the data pack it carries to the GPU machine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_window.py"
sys.path.insert(0, str(REPO / "benchmarks"))

import gpu_window  # noqa: E402


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    return env


def _window(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=_env(),
                          timeout=300)
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


def _state(folder: Path) -> dict:
    return json.loads((folder / "state.json").read_text())


def _done(state: dict) -> set[str]:
    return {k for k, v in state["items"].items() if v["status"] == "done"}


@pytest.fixture()
def in_process(capsys, monkeypatch):
    """``gpu_window.main`` in this process (its CPU policy sets one torch thread: restored after). Each
    call stands for a process of its own: ``--time-limit`` counts from the call, not from the import
    of the module when the test session started (a suite slower than the limit left no time)."""
    import torch

    threads = torch.get_num_threads()

    def call(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(gpu_window, "_START", time.monotonic())
        status = gpu_window.main(list(args))
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    yield call
    torch.set_num_threads(threads)


def test_a_window_resumes_skips_what_is_done_and_survives_a_kill(tmp_path, in_process):
    state_dir, out = tmp_path / "state", tmp_path / "out"
    common = ["run", "--device", "cpu", "--tiny", "--state", str(state_dir), "--out", str(out)]
    everything = [item.id for item in gpu_window.Window(gpu_window.MODES["tiny"], "cpu").items()]
    assert len(everything) == 13 and everything[0] == "smoke/env" and everything[-1].endswith("/record")

    # 1. a partial window: three items, written to --state and mirrored to --out
    assert in_process(*common, "--time-limit", "600", "--max-items", "3")[0] == 0
    first = _state(state_dir)
    assert _done(first) == set(everything[:3])
    assert _state(out) == first
    assert "smoke/env: done" in (out / "log.txt").read_text()

    # 2. too little time for anything (the limit counts from the start of the process): nothing is
    # started, every item is deferred with its reason
    assert in_process(*common, "--time-limit", "0.01")[0] == 0
    second = _state(state_dir)
    assert second["items"] == first["items"] and second["calls"][-1]["ran"] == []
    assert len(second["calls"][-1]["deferred"]) == 10
    assert "left" in second["calls"][-1]["deferred"][0]["why"]

    # 3. killed mid-way: what it wrote is whole, finished items stay finished
    proc = subprocess.Popen([sys.executable, str(SCRIPT), *common, "--time-limit", "300"], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if len(_done(_state(state_dir))) >= 5:
                    break
            except ValueError:  # a half-written state.json would land here
                pytest.fail("state.json was seen half-written")
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the window finished before it could be killed"
    killed = _state(state_dir)
    assert _state(out)["items"].keys() <= killed["items"].keys()  # the mirror is whole too (one item behind at most)
    assert 5 <= len(_done(killed)) < 13
    assert all(killed["items"][k] == first["items"][k] for k in _done(first))

    # 4. the rest, in a process of its own: every item done once, none run twice
    _window(*common, "--time-limit", "300")
    final = _state(state_dir)
    assert _done(final) == set(everything)
    ran = [item for call in final["calls"] for item in call["ran"]]
    assert sorted(ran) == sorted(set(ran)) and set(ran) == set(everything)
    assert all(v["attempts"] == 1 for v in final["items"].values())
    assert all(final["items"][k] == first["items"][k] for k in _done(first))
    assert not list(state_dir.glob(".*.part")) and not list(out.glob(".*.part"))
    speedrun = final["items"]["speedrun/mnist1d/base@cpu/run0"]["result"]
    assert speedrun["steps"] == 10 and speedrun["tta"]["supported"] is False  # said so, not faked
    assert final["items"]["smoke/env"]["result"]["checks"]["autocast_ok"] is True

    # collect writes the calibration records and prints the tables
    records = tmp_path / "records"
    status, report, _ = in_process("collect", "--state", str(state_dir), "--records", str(records))
    assert status == 0 and "| mnist1d/cnn@cpu | 128 |" in report and "2 calibration record(s) written" in report
    assert "| mnist1d/base@cpu (compiled, eager) | 128 |" in report
    assert final["items"]["speed_compiled/mnist1d/base@cpu"]["result"]["compile_seconds"] > 0
    record = json.loads((records / "mnist1d_base_cpu.json").read_text())
    assert record["workload"] == "mnist1d/base@cpu" and [r["seed"] for r in record["seeds"]] == [0, 1]
    assert record["step_hint"] == 10 and "gpu_window.py" in record["command"]
    assert record["hardware"]["device_type"] == "cpu"


def test_bad_input_is_one_line_and_exit_2(tmp_path, in_process):
    state = tmp_path / "s"
    for args, message in (
        (["run", "--device", "cpu", "--tiny", "--state", str(state), "--time-limit", "0"], "--time-limit"),
        (["run", "--device", "cpu", "--tiny", "--state", str(state), "--time-limit", "9", "--only", "nothing/"],
         "matches no item"),
        (["collect", "--state", str(tmp_path / "none")], "no state.json"),
    ):
        status, _, err = in_process(*args)
        assert status == 2 and err.count("\n") == 1 and message in err, err
    state.mkdir(exist_ok=True)
    (state / "state.json").write_text(json.dumps({"format": gpu_window.FORMAT, "config": {"mode": "full",
                                                  "device_type": "cuda"}, "items": {}, "calls": []}))
    status, _, err = in_process("run", "--device", "cpu", "--tiny", "--state", str(state), "--time-limit", "9")
    assert status == 2 and "use another --state" in err


def test_speedrun_trial_measures_tta_on_device_images(one_thread):
    """The speedrun item on an image workload: its final model scored plain and with TTA level 2."""
    from laptime.algorithms import default_algorithms
    from laptime.workloads import default_workloads
    from laptime.workloads.vision import DeviceImages

    rng = np.random.default_rng(0)

    def split(n):
        return rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8), np.arange(n) % 10

    workload = default_workloads().create("cifar10", "base", "cpu")
    workload._data = DeviceImages({"train": split(300), "validation": split(40), "test": split(60)}, "cpu")
    result = gpu_window.speedrun_trial(workload, default_algorithms().get("speedrun_muon"), seed=0, steps=2)
    assert result["steps"] == 2 and result["outcome"] == "budget"
    tta = result["tta"]
    assert tta["supported"] and tta["level"] == 2
    for key, images in (("validation/accuracy", 40), ("test/accuracy", 60)):  # a share of the split's images
        assert 0 <= tta[key] <= 1 and round(tta[key] * images, 6).is_integer()
    assert "eval_model" not in vars(workload)  # the capture is undone


# --------------------------------------------------------------------------- the pack


@pytest.fixture()
def small_root(tmp_path, shared_data_dir):
    """A data root holding Tiny Shakespeare (source file only) and PTB (source files + token cache)."""
    from laptime.data import sources

    root = tmp_path / "root"
    sources.prepare("tinyshakespeare", source=shared_data_dir / "tinyshakespeare", root=root)
    sources.prepare("ptb", source=shared_data_dir / "ptb", root=root)
    return root


def test_pack_refuses_over_the_limit_and_unpacks_with_caches_rebuilt(small_root, tmp_path, monkeypatch):
    from laptime.data import sources

    carry = tmp_path / "carry"
    common = ["pack", "--root", str(small_root), "--datasets", "tinyshakespeare", "ptb"]
    done = _window(*common, "--out", str(carry), "--limit-mib", "1", check=False)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "over --limit-mib 1" in done.stderr
    assert not carry.exists()
    done = _window(*common, "--out", str(carry), "--max-cache-mib", "1")
    assert "MiB" in done.stdout
    manifest = json.loads((carry / "manifest.json").read_text())
    assert manifest["datasets"]["ptb"]["cache_rebuilt_there"] == ["tokens_test.npy", "tokens_train.npy",
                                                                  "tokens_validation.npy", "vocabulary.json"]
    assert manifest["datasets"]["tinyshakespeare"]["cache_rebuilt_there"] == []
    total = sum(p.stat().st_size for p in carry.rglob("*") if p.is_file())
    assert total < 4 * 2**20  # gzip: the 6.9 MB of PTB text and Tiny Shakespeare shrink
    assert _window(*common, "--out", str(carry), check=False).returncode == 2  # not empty: refused

    # there: a fresh data root gets both, PTB's token cache rebuilt from the packed text
    there = tmp_path / "there"
    monkeypatch.setenv("LAPTIME_DATA", str(there))
    monkeypatch.setenv("LAPTIME_DATA_SOURCES", "")
    logs: list[str] = []
    gpu_window.unpack(carry, log=logs.append)
    assert sources.check("ptb", there).state == "prepared" and sources.check("tinyshakespeare", there).state == "prepared"
    assert (there / "ptb" / "tokens_train.npy").read_bytes() == (small_root / "ptb" / "tokens_train.npy").read_bytes()
    assert any("cache rebuilt" in line for line in logs)


def test_pack_names_an_unprepared_dataset(tmp_path, in_process):
    status, _, err = in_process("pack", "--root", str(tmp_path / "empty"), "--datasets", "ptb", "--out",
                                str(tmp_path / "c"))
    assert status == 2 and "prepare it first" in err and err.count("\n") == 1


def test_pack_carries_wheels_from_pip(small_root, tmp_path, monkeypatch, in_process):
    """--wheels: pip downloads the pinned wheels (here from a local folder, no network)."""
    import zipfile

    links = tmp_path / "links"
    links.mkdir()
    with zipfile.ZipFile(links / "gwfake-1.0-py3-none-any.whl", "w") as wheel:
        wheel.writestr("gwfake/__init__.py", "")
        wheel.writestr("gwfake-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: gwfake\nVersion: 1.0\n")
        wheel.writestr("gwfake-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                                      "Tag: py3-none-any\n")
        wheel.writestr("gwfake-1.0.dist-info/RECORD", "")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    common = ["pack", "--root", str(small_root), "--datasets", "tinyshakespeare", "--wheels"]
    status, out, _ = in_process(*common, "--out", str(tmp_path / "carry"), "--wheel-packages", "gwfake==1.0")
    assert status == 0 and "gwfake-1.0-py3-none-any.whl" in out
    assert (tmp_path / "carry" / "wheels" / "gwfake-1.0-py3-none-any.whl").read_bytes() == \
        (links / "gwfake-1.0-py3-none-any.whl").read_bytes()
    assert json.loads((tmp_path / "carry" / "manifest.json").read_text())["wheels"] == ["gwfake-1.0-py3-none-any.whl"]
    status, _, err = in_process(*common, "--out", str(tmp_path / "c2"), "--wheel-packages", "gwfake==2.0")
    assert status == 2 and "pip download gwfake==2.0 failed" in err and not (tmp_path / "c2").exists()


def test_a_write_killed_half_way_leaves_nothing_behind_the_next_call(tmp_path, in_process):
    state_dir, out = tmp_path / "state", tmp_path / "out"
    for folder in (state_dir, out):
        folder.mkdir()
        (folder / ".state.json.x1y2.part").write_text('{"format": "laptime.gpu_w')  # as a kill mid-write leaves
    status, _, _ = in_process("run", "--device", "cpu", "--tiny", "--state", str(state_dir), "--out", str(out),
                              "--time-limit", "0.01")
    assert status == 0
    assert not list(state_dir.glob(".*.part")) and not list(out.glob(".*.part"))
    assert _state(state_dir) == _state(out) and _state(out)["items"] == {}
