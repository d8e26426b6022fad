"""Checkpoints of running trials (laptime.runner.checkpoint): outside both clocks, atomic, one file per
trial; a trial killed at a step and started again continues with the same eval history (bitwise, in
another process) and its submission time continues; SIGTERM checkpoints and stops; the input
queue's position is restored for every workload; the algorithms' default checkpoint hooks."""

from __future__ import annotations

import io
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import laptime
from laptime.api import Algorithm
from laptime.data.loaders import epoch_index_batches, make_generator, random_window_starts
from laptime.runner import ManualClock, TrialOptions, run_trial
from laptime.runner import checkpoint as ckpt
from laptime.runner.workmeter import WorkMeter
from laptime.workloads import default_workloads
from laptime.workloads.vision import Augmentation, DeviceImages
from checkpoint_child import run_spec
from toys import ClockedAlgorithm, ToyWorkload

UNREACHABLE = 2.0
TESTS = Path(__file__).resolve().parent
SRC = Path(laptime.__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def no_pending_preemption():
    ckpt.clear_preemption()
    yield
    ckpt.clear_preemption()


def history(result):
    return [(e.step, e.metrics) for e in result.evals]


def same_batches(a, b):
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for key in x:
            assert torch.equal(x[key], y[key]), key


# --------------------------------------------------------------------------- the input queue's position


@pytest.mark.parametrize("start", [0, 3, 27, 28, 29, 100])
def test_epoch_batches_from_start_are_the_streams_tail(start):
    full = list(islice(epoch_index_batches(100, 7, make_generator(5)), start, start + 20))  # 14 batches/epoch
    generator = make_generator(5)
    tail = epoch_index_batches(100, 7, generator, start=start)
    if start >= 14:  # the skipped epochs' permutations are drawn at the call, not at the first (timed) next()
        assert not torch.equal(generator.get_state(), make_generator(5).get_state())
    assert all(torch.equal(a, b) for a, b in zip(full, islice(tail, 20), strict=True))


@pytest.mark.parametrize("start", [0, 1, 50])
def test_random_windows_from_start_are_the_streams_tail(start):
    full = list(islice(random_window_starts(1000, 9, 4, make_generator(2)), start, start + 10))
    generator = make_generator(2)
    tail = random_window_starts(1000, 9, 4, generator, start=start)
    assert torch.equal(generator.get_state(), make_generator(2).get_state()) == (start == 0)  # drawn at the call
    assert all(torch.equal(a, b) for a, b in zip(full, islice(tail, 10), strict=True))


@pytest.mark.parametrize("augmentation", [None, Augmentation(translate=1)])
def test_image_batches_from_start_replay_the_augmentation_draws(augmentation):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(30, 6, 6, 3), dtype=np.uint8)
    data = DeviceImages({"train": (images, np.arange(30) % 10)}, "cpu")
    full = list(islice(data.train_batches(4, 9, augmentation), 13, 23))  # 7 batches per epoch
    same_batches(full, islice(data.train_batches(4, 9, augmentation, start=13), 10))


def test_a_workload_without_start_is_replayed_by_skipping():
    workload = ToyWorkload()
    same_batches(islice(workload.train_batches(16, 1), 5, 10), islice(workload.train_batches_from(16, 1, 5), 5))
    with pytest.raises(ValueError, match="start"):
        workload.train_batches_from(16, 1, -1)


def test_every_builtin_workload_positions_its_stream_itself():
    import inspect

    from laptime.workloads.registry import builtin_workload_classes

    classes = builtin_workload_classes()
    assert len(classes) >= 6
    for workload_class in classes:
        assert "start" in inspect.signature(workload_class.train_batches).parameters, workload_class.name


@pytest.mark.parametrize("name,variant,batch", [("mnist1d", "base", 128), ("shakespeare", "base", 32)])
def test_real_workloads_resume_their_stream(name, variant, batch):
    workload = default_workloads().create(name, variant=variant, config="cpu")
    same_batches(islice(workload.train_batches(batch, 4), 30, 33), islice(workload.train_batches_from(batch, 4, 30), 3))


# --------------------------------------------------------------------------- the work meter


def test_work_meter_state_carries_the_work_and_keeps_the_new_processes_probes():
    costs = iter([1.0] * 3 + [2.0] * 3)
    meter = WorkMeter(lambda: next(costs), initial_probes=2, min_window=0.0)
    meter.start()
    meter.add(4.0)
    with pytest.raises(RuntimeError):
        meter.state_dict()  # an open window is not saved
    meter.close()
    saved = meter.state_dict()
    assert saved["work"] == pytest.approx(4.0) and saved["windows"] == 1
    later = WorkMeter(lambda: next(costs), initial_probes=2, min_window=0.0)  # a slower machine now
    later.start()
    later.load_state_dict(saved)
    assert later.probes == [1.0, 1.0, 1.0, 2.0, 2.0]
    later.add(4.0)
    later.close()  # measured against this process's probes: 4 s at 2 s per pass
    assert later.work == pytest.approx(6.0) and later.windows == 2


# --------------------------------------------------------------------------- the runner (manual clocks)


class Killed(BaseException):
    """Stands for the process dying: nothing in the runner catches it."""


class Hook:
    """A progress hook that does ``action`` when step ``at`` is done."""

    def __init__(self, at, action):
        self.at, self.action = at, action

    def start(self, *args):
        pass

    def step(self, global_step, submission_time):
        if global_step == self.at:
            self.action()

    def evaluated(self, record, reached):
        pass

    def finish(self, result):
        pass


def kill():
    raise Killed


def toy_trial(clock=None, algorithm=None, seed=3, progress=None, **options):
    clock = clock or ManualClock()
    workload = ToyWorkload(target=UNREACHABLE, clock=clock, eval_cost=3.0, step_budget=40, eval_period_steps=10,
                           probe_cost=0.25)
    algorithm = algorithm or ClockedAlgorithm(clock, init=2.0, update=1.0, prepare=0.5)
    return run_trial(workload, algorithm, {}, seed=seed, clock=clock, work_clock=clock, progress=progress,
                     options=TrialOptions(budget="steps", **options))


def test_checkpoints_are_charged_to_neither_clock(tmp_path, monkeypatch):
    plain = toy_trial()
    clock = ManualClock()
    write = ckpt.write_atomically

    def slow_write(path, payload):
        clock.advance(100.0)  # a checkpoint that takes 100 s of wall time
        return write(path, payload)

    monkeypatch.setattr(ckpt, "write_atomically", slow_write)
    checked = toy_trial(clock, checkpoint_dir=tmp_path, checkpoint_every_steps=5)
    summary = checked.measurement["checkpoint"]
    assert summary["written"] == 7  # steps 5 ... 35; at step 40 the trial ends
    assert summary["bytes"] > 0 and summary["resumes"] == []
    assert checked.submission_time == plain.submission_time == 2.0 + 40 * 1.0 + 4 * 0.5
    assert checked.cpu_time == plain.cpu_time  # the work clock (here the same manual clock)
    assert checked.robust_submission_time == pytest.approx(plain.robust_submission_time)
    assert [(e.step, e.submission_time, e.metrics) for e in checked.evals] == \
        [(e.step, e.submission_time, e.metrics) for e in plain.evals]
    assert checked.wall_time >= plain.wall_time + 700  # the writes did happen, on the wall clock
    assert list(tmp_path.iterdir()) == []  # a finished trial leaves no checkpoint


def test_a_killed_trial_resumes_with_the_same_evals_and_continues_its_submission_time(tmp_path):
    full = toy_trial()
    with pytest.raises(Killed):
        toy_trial(checkpoint_dir=tmp_path, checkpoint_every_steps=5, progress=Hook(17, kill))
    files = [p for p in tmp_path.iterdir()]
    assert len(files) == 1 and files[0].suffix == ".pt"  # only the latest checkpoint, no temporary file
    assert ckpt.read_checkpoint(files[0])["runner"]["step"] == 15
    resumed = toy_trial(checkpoint_dir=tmp_path, checkpoint_every_steps=5)
    assert history(resumed) == history(full)
    assert resumed.outcome == full.outcome and resumed.steps == full.steps == 40
    assert resumed.submission_time == full.submission_time  # steps 16-17 of the killed process are not counted
    assert [e.submission_time for e in resumed.evals] == [e.submission_time for e in full.evals]
    assert resumed.robust_submission_time == pytest.approx(full.robust_submission_time)
    assert resumed.measurement["checkpoint"]["resumes"] == [{"step": 15, "submission_time": 2.0 + 15 + 0.5}]
    assert resumed.measurement["checkpoint"]["written"] == 3 + 4  # 5, 10, 15 before the kill; 20 ... 35 after
    assert any("resumed from a checkpoint at step 15" in n for n in resumed.measurement["notes"])
    assert resumed.started_at and list(tmp_path.iterdir()) == []


class NoisyAdamW(ClockedAlgorithm):
    """AdamW (state) whose update adds noise from every RNG a submission might use."""

    def __init__(self, clock):
        super().__init__(clock)
        self._optimizer_factory = lambda groups, hp: torch.optim.AdamW(groups, lr=1e-2)

    def update_params(self, workload, params, types, model_state, hp, batch, loss_type, opt_state, eval_results,
                      global_step, rng, train_state=None):
        out = super().update_params(workload, params, types, model_state, hp, batch, loss_type, opt_state,
                                    eval_results, global_step, rng, train_state)
        noise = float(torch.rand(())) + float(torch.rand((), generator=rng)) + np.random.rand() + random.random()
        with torch.no_grad():
            next(params.parameters()).add_(1e-3 * noise)
        return out


def test_every_rng_and_the_optimizer_state_are_restored(tmp_path):
    torch.manual_seed(7), np.random.seed(7), random.seed(7)  # the runner seeds them all: no effect
    full = toy_trial(algorithm=NoisyAdamW(ManualClock()))
    with pytest.raises(Killed):
        toy_trial(algorithm=NoisyAdamW(ManualClock()), checkpoint_dir=tmp_path, checkpoint_every_steps=10,
                  progress=Hook(13, kill))
    torch.manual_seed(99), np.random.seed(99), random.seed(99)  # what else the new process did
    resumed = toy_trial(algorithm=NoisyAdamW(ManualClock()), checkpoint_dir=tmp_path, checkpoint_every_steps=10)
    assert history(resumed) == history(full)
    assert resumed.measurement["checkpoint"]["resumes"][0]["step"] == 10


def test_a_checkpoint_of_another_configuration_or_unreadable_is_not_used(tmp_path):
    with pytest.raises(Killed):
        toy_trial(checkpoint_dir=tmp_path, checkpoint_every_steps=5, checkpoint_name="same", progress=Hook(12, kill))
    other = toy_trial(seed=4, checkpoint_dir=tmp_path, checkpoint_every_steps=5, checkpoint_name="same")
    assert history(other) == history(toy_trial(seed=4))
    assert any("another configuration" in n for n in other.measurement["notes"])
    (tmp_path / "same.pt").write_bytes(b"not a checkpoint")
    garbled = toy_trial(checkpoint_dir=tmp_path, checkpoint_every_steps=5, checkpoint_name="same")
    assert any("could not be read" in n for n in garbled.measurement["notes"])
    assert garbled.measurement["checkpoint"]["resumes"] == []


def test_sigterm_checkpoints_at_the_next_step_and_stops(tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(ckpt.TrialPreempted) as stopped:
        toy_trial(checkpoint_dir=tmp_path, checkpoint_every_steps=100,
                  progress=Hook(12, lambda: os.kill(os.getpid(), signal.SIGTERM)))
    assert stopped.value.step == 12 and stopped.value.path.exists()
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is put back
    assert ckpt.read_checkpoint(stopped.value.path)["runner"]["step"] == 12
    # between two trials: the next one starts nothing
    with pytest.raises(ckpt.TrialPreempted) as again:
        toy_trial(checkpoint_dir=tmp_path, checkpoint_every_steps=100)
    assert again.value.step is None
    ckpt.clear_preemption()
    assert history(toy_trial(checkpoint_dir=tmp_path, checkpoint_every_steps=100)) == history(toy_trial())


def test_without_checkpoints_sigterm_is_left_alone():
    before = signal.getsignal(signal.SIGTERM)
    seen = []
    ckpt.request_preemption()  # no checkpoint folder: preemption is not the runner's business
    assert toy_trial(progress=Hook(5, lambda: seen.append(signal.getsignal(signal.SIGTERM)))).steps == 40
    assert seen == [before]


def test_an_algoperf_submissions_optimizer_survives_a_resume(tmp_path, one_thread):
    """The default hooks save the torch optimizer's state_dict and load it into the fresh optimizer
    (pickling the optimizer object itself would leave it updating copies of the parameters)."""
    from laptime.algorithms import AlgorithmRegistry

    submission = str(TESTS / "data" / "algoperf_sgd_submission.py")
    workload = default_workloads().create("mnist1d")

    def trial(progress=None, **options):
        algorithm = AlgorithmRegistry().resolve(submission)
        return run_trial(workload, algorithm, {"learning_rate": 0.05}, 0, TrialOptions(
            budget="steps", eval_every_steps=10, robust=False, **options), progress=progress)

    full = trial()
    with pytest.raises(Killed):
        trial(Hook(23, kill), checkpoint_dir=str(tmp_path), checkpoint_every_steps=10)
    resumed = trial(checkpoint_dir=str(tmp_path), checkpoint_every_steps=10)
    assert resumed.measurement["checkpoint"]["resumes"][0]["step"] == 20
    assert history(resumed) == history(full) and resumed.steps == full.steps
    assert [e.step for e in full.evals] == [10, 20, 30, 39]  # the submission ends training itself


def test_default_hooks_restore_optimizers_schedulers_and_generators_in_place():
    def make(seed):
        torch.manual_seed(seed)
        model = nn.Linear(4, 3)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        return model, {"optimizer": optimizer, "scheduler": torch.optim.lr_scheduler.StepLR(optimizer, 2, 0.5),
                       "rng": torch.Generator().manual_seed(seed), "count": seed, "params": list(model.parameters())}

    def step(model, state):
        state["optimizer"].zero_grad()
        x = torch.randn(8, 4, generator=state["rng"])
        model(x).square().mean().backward()
        state["optimizer"].step()
        state["scheduler"].step()
        state["count"] += 1

    model, state = make(0)
    for _ in range(3):
        step(model, state)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "state": Algorithm().optimizer_state_dict(state)}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=False)
    model_b, fresh = make(7)
    model_b.load_state_dict(saved["model"])
    optimizer_b = fresh["optimizer"]
    state_b = Algorithm().load_optimizer_state_dict(fresh, saved["state"])
    assert state_b["optimizer"] is optimizer_b and state_b["count"] == 3
    assert all(p is q for p, q in zip(state_b["params"], model_b.parameters()))
    for _ in range(3):
        step(model, state)
        step(model_b, state_b)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), model_b.parameters()))
    assert state_b["optimizer"].param_groups[0]["lr"] == state["optimizer"].param_groups[0]["lr"]


# --------------------------------------------------------------------------- files


def test_stale_temporary_files_are_removed_and_live_ones_kept(tmp_path):
    path = ckpt.checkpoint_path(tmp_path, "k")
    host = socket.gethostname()
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(done.stdout)
    parts = {
        "dead": tmp_path / f".k.pt.{host}.{dead}.abc.part",
        "alive": tmp_path / f".k.pt.{host}.{os.getppid()}.abd.part",
        "foreign_old": tmp_path / ".k.pt.other.host.12.abe.part",
        "foreign_new": tmp_path / ".k.pt.other.host.13.abf.part",
    }
    for part in parts.values():
        part.write_bytes(b"half")
    old = time.time() - 2 * ckpt.STALE_FOREIGN_PART_SEC
    os.utime(parts["foreign_old"], (old, old))
    checkpointer = ckpt.Checkpointer(tmp_path, "k", every_steps=1)
    checkpointer.save({"id": 1}, {"runner": {"step": 1, "sub_time": 0.0}}, 1, 0.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, parts["alive"].name,
                                                                  parts["foreign_new"].name])
    assert checkpointer.load({"id": 1}, torch.device("cpu"))["runner"]["step"] == 1
    assert checkpointer.load({"id": 2}, torch.device("cpu")) is None


def test_sweep_removes_checkpoints_of_stored_trials_and_an_empty_folder(tmp_path):
    folder = tmp_path / "ckpts"
    folder.mkdir()
    for name in "abc":
        (folder / f"{name}.pt").write_bytes(b"x")
    assert ckpt.sweep(folder, lambda key: key in "ac") == ["a", "c"]
    assert [p.name for p in folder.iterdir()] == ["b.pt"]
    assert ckpt.sweep(folder, lambda key: True) == ["b"] and not folder.exists()
    assert ckpt.sweep(folder, lambda key: True) == []


def test_options_are_checked():
    with pytest.raises(ValueError, match="checkpoint_every_sec"):
        TrialOptions(checkpoint_every_sec=0)
    with pytest.raises(ValueError, match="checkpoint_every_steps"):
        TrialOptions(checkpoint_every_steps=0)
    with pytest.raises(ValueError, match="plain file name"):
        ckpt.checkpoint_path("x", "../y")


# --------------------------------------------------------------------------- kill -9 in another process


CASES = {
    "mnist1d-mlp-nadamw": dict(workload="mnist1d", variant="base", config="cpu", algorithm="nadamw", steps=40,
                               eval_every=10, checkpoint_every=10, kill_at=27),
    "mnist1d-cnn-adamw": dict(workload="mnist1d", variant="cnn", config="cpu", algorithm="adamw", steps=40,
                              eval_every=10, checkpoint_every=10, kill_at=27),
    "shakespeare-nadamw": dict(workload="shakespeare", variant="base", config="cpu", algorithm="nadamw", steps=20,
                               eval_every=5, checkpoint_every=5, kill_at=13),
    # eval weights swapped in at the checkpoint (its state says so)
    "mnist1d-schedule-free": dict(workload="mnist1d", variant="base", config="cpu", algorithm="schedule_free_adamw",
                                  steps=40, eval_every=10, checkpoint_every=10, kill_at=27),
    # two batches drawn per step, and the algorithm's generator picks among them
    "mnist1d-high-loss-selection": dict(workload="mnist1d", variant="base", config="cpu",
                                        algorithm="nadamw_high_loss", steps=40, eval_every=10, checkpoint_every=10,
                                        kill_at=27),
}


def child_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(TESTS), env.get("PYTHONPATH", "")])
    return env


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("case", list(CASES))
def test_a_trial_killed_in_another_process_resumes_bitwise(case, tmp_path):
    spec = {**CASES[case], "seed": 0, "dir": str(tmp_path)}
    done = subprocess.run([sys.executable, str(TESTS / "checkpoint_child.py"), json.dumps(spec)], env=child_env(),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    (file,) = tmp_path.iterdir()
    saved_step = ckpt.read_checkpoint(file)["runner"]["step"]
    assert saved_step == spec["kill_at"] // spec["checkpoint_every"] * spec["checkpoint_every"]
    resumed = run_spec({**spec, "kill_at": None})
    reference = run_spec({**spec, "kill_at": None, "dir": None})
    assert resumed.measurement["checkpoint"]["resumes"][0]["step"] == saved_step
    assert [e.step for e in reference.evals] == list(range(spec["eval_every"], spec["steps"] + 1, spec["eval_every"]))
    assert history(resumed) == history(reference)  # exact float equality: bitwise
    assert list(tmp_path.iterdir()) == []
