"""One GPU window: every GPU measurement laptime needs, time-boxed and resumable.

A GPU is lent for short windows (15 minutes, nothing reachable from it), so everything that needs
one runs through this one command, in priority order, as much as fits in ``--time-limit``::

    python benchmarks/gpu_window.py run --device cuda --time-limit 540 --state gpu_state --out $OUT \\
        --pack gpu_carry

Items, one result each, in this order:

a. ``smoke/env`` (CUDA clock, synchronize, bf16 autocast, the machine: GPU, driver, torch) and
   ``smoke/trial/<workload>``: a short trial of the reference algorithm on every workload of the suite;
b. ``speed/<workload>``: the bare PyTorch loop against the harness (``benchmarks/lite.py``'s
   :func:`speed_row`: ms/step, examples/s, peak memory, GFLOP/step, MFU), then
   ``speed_compiled/<workload>`` (base workloads): the same with the model under ``torch.compile`` (inductor;
   :meth:`laptime.api.Workload.set_compile`), compiled in the untimed warm-up;
c. ``speedrun/<workload>/<i>``: the CIFAR-10 speedrun recipe (``speedrun_muon`` on
   ``cifar10/base@gpu_webp``) through laptime's runner, the speedrun's whole schedule (step_hint
   steps, no stop at the target), 10 runs: submission time, accuracy plain and with test-time
   augmentation (level 2, computed after the trial on its final model, untimed);
d. ``calibrate/<workload>/seed<k>``: one calibration run (``laptime.tuning.calibrate``: the
   reference algorithm, ``step_hint`` steps, target off) per (workload, seed) — 3 seeds for every
   provisional base workload, then 2 for every provisional variant — and ``calibrate/<workload>/record`` once its seeds are
   in: the calibration record (:func:`laptime.tuning.calibrate.conclude`).

Every result is written as soon as it exists into ``STATE/state.json`` (atomically: a killed call
leaves the previous state whole) and mirrored into ``--out``. A later call with the same
``--state`` skips what is done (and what failed, unless ``--retry-failed``) and continues; an item
whose estimate (a static guess, then the measured time of its group) exceeds the time left is not
started. ``collect`` turns a state into calibration records (``docs/calibration/``) and the
markdown tables of ``docs/benchmarks.md``. ``pack`` puts the prepared datasets and the wheels the
GPU machine lacks into one folder of at most 64 MiB (what the device tool carries); ``run --pack``
unpacks it there before the clock starts. ``--tiny`` (MNIST-1D, a few steps) runs the whole
command on a CPU in seconds (``tests/test_gpu_window.py``). See ``docs/gpu.md``.
"""

from __future__ import annotations

import time

_START = time.monotonic()  # the time limit counts from here: imports included

import argparse  # noqa: E402
import contextlib  # noqa: E402
import dataclasses  # noqa: E402
import datetime as _dt  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shlex  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tarfile  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from laptime.errors import LaptimeError, UsageError  # noqa: E402 - no torch: bad input is one line, exit 2

STATE_NAME = "state.json"
LOG_NAME = "log.txt"
FORMAT = "laptime.gpu_window/1"
#: What the device tool carries in one call (the checkout included).
CARRY_LIMIT_MIB = 64.0
#: Pure-Python packages laptime needs that the GPU machine's image lacks (docs/gpu.md).
GPU_MISSING_PACKAGES = ("pytorch-optimizer", "mnist1d")

#: The reference recipe of each workload family's calibration: (algorithm, hyperparameters over its
#: self-tuning defaults) — those of the cpu calibrations (docs/calibration/*_cpu.json).
REFERENCE = {"cifar10": ("nadamw", {"learning_rate": 0.01})}
DEFAULT_REFERENCE = ("nadamw", {})


@dataclasses.dataclass(frozen=True)
class Mode:
    """What a window measures and how much (``--tiny``: the same items, scaled down for a CPU)."""

    name: str
    suite: str
    smoke_steps: int
    speed_steps: int
    speed_repeats: int
    speedrun_workload: tuple[str, str, str]
    speedrun_algorithm: str
    speedrun_runs: int
    speedrun_steps: int | None  # None: the workload's step_hint
    base_seeds: tuple[int, ...]
    variant_seeds: tuple[int, ...]
    calibration_steps: int | None  # None: the workload's step_hint
    eval_every_steps: int | None  # None: step_hint / 20
    peak_tflops: float
    compile_backend: str  # torch.compile's backend of the speed_compiled items
    provisional_only: bool  # calibrate only the workloads whose spec is provisional (not the cpu ones)
    #: static estimates (seconds) by part, before anything of the group was measured
    estimates: dict[str, float]


MODES = {
    "full": Mode("full", "lite_webp", smoke_steps=20, speed_steps=200, speed_repeats=3,
                 speedrun_workload=("cifar10", "base", "gpu_webp"), speedrun_algorithm="speedrun_muon",
                 speedrun_runs=10, speedrun_steps=None, base_seeds=(0, 1, 2), variant_seeds=(0, 1),
                 calibration_steps=None, eval_every_steps=None, peak_tflops=989.0, compile_backend="inductor", provisional_only=True,
                 estimates={"smoke/env": 20, "smoke/trial": 40, "speed": 60, "speed_compiled": 120, "speedrun": 20,
                            "record": 1}),
    "tiny": Mode("tiny", "mnist1d", smoke_steps=3, speed_steps=3, speed_repeats=1,
                 speedrun_workload=("mnist1d", "base", "cpu"), speedrun_algorithm="nadamw", speedrun_runs=2,
                 speedrun_steps=10, base_seeds=(0, 1), variant_seeds=(0,), calibration_steps=10,
                 eval_every_steps=5, peak_tflops=1.0, compile_backend="eager", provisional_only=False,
                 estimates={"smoke/env": 0.5, "smoke/trial": 0.5, "speed": 0.5, "speed_compiled": 0.5, "speedrun": 0.5,
                            "record": 0.1, "calibrate": 0.5}),
}


@dataclasses.dataclass
class Item:
    id: str
    group: str  # items of a group share measured durations (the estimate of the next one)
    part: str  # key of Mode.estimates
    run: Callable[[], dict[str, Any]]
    needs: tuple[str, ...] = ()  # items that must be done first
    estimate: float | None = None  # static estimate overriding the part's


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _json_safe(value: Any) -> Any:
    from laptime.cli.main import _json_safe as safe

    return safe(value)


# =========================================================================== the state


class State:
    """``STATE/state.json``: the window's configuration, every item's result, every call."""

    def __init__(self, directory: Path, out: Path | None):
        self.directory, self.out = directory, out
        self.path = directory / STATE_NAME
        for folder in (directory, out):  # a write killed half-way leaves atomic_write's temporary file
            for leftover in (folder.glob(f".{STATE_NAME}.*.part") if folder is not None else ()):
                leftover.unlink(missing_ok=True)
        if self.path.exists():
            try:
                self.data = json.loads(self.path.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise UsageError(f"{self.path} is not a gpu_window state ({exc}); use another --state") from None
            if self.data.get("format") != FORMAT:
                raise UsageError(f"{self.path} is not a gpu_window state (format {self.data.get('format')!r})")
        else:
            self.data = {"format": FORMAT, "config": None, "items": {}, "calls": []}

    @property
    def items(self) -> dict[str, dict[str, Any]]:
        return self.data["items"]

    def save(self) -> None:
        from laptime.atomic import atomic_write

        text = json.dumps(_json_safe(self.data), indent=1, sort_keys=True)
        for folder in (self.directory, self.out):
            if folder is not None:
                with atomic_write(folder / STATE_NAME, "w", encoding="utf-8") as handle:
                    handle.write(text)

    def log(self, message: str) -> None:
        line = f"{_now()} {message}"
        print(line, flush=True)
        for folder in (self.directory, self.out):
            if folder is not None:
                with open(folder / LOG_NAME, "a", encoding="utf-8") as handle:
                    handle.write(line + "\n")


# =========================================================================== the items


class Window:
    """Builds the items of a mode on a device; workloads are created once per process and reused."""

    def __init__(self, mode: Mode, device: str):
        import torch

        from laptime.algorithms import default_algorithms
        from laptime.workloads import default_workloads
        from laptime.workloads.suites import get_suite

        self.mode, self.device = mode, torch.device(device)
        self.registry, self.algorithms = default_workloads(), default_algorithms()
        self.entries = get_suite(mode.suite).entries
        self._workloads: dict[tuple[str, str, str], Any] = {}

    def workload(self, entry: tuple[str, str, str]):
        if entry not in self._workloads:
            name, variant, config = entry
            self._workloads[entry] = self.registry.create(name, variant=variant, config=config, device=self.device)
        return self._workloads[entry]

    def datasets(self) -> list[str]:
        """Every dataset the window's workloads read."""
        names: list[str] = []
        for entry in (*self.entries, self.mode.speedrun_workload):
            for name in self.registry.create(*entry, device="cpu").datasets:
                if name not in names:
                    names.append(name)
        return names

    def items(self) -> list[Item]:
        mode, items = self.mode, [Item("smoke/env", "smoke/env", "smoke/env", self.smoke_env)]
        keys = {entry: "{}/{}@{}".format(*entry) for entry in (*self.entries, mode.speedrun_workload)}
        for entry in self.entries:
            items.append(Item(f"smoke/trial/{keys[entry]}", f"smoke/trial/{keys[entry]}", "smoke/trial",
                              lambda e=entry: self.smoke_trial(e)))
        for entry in self.entries:
            items.append(Item(f"speed/{keys[entry]}", f"speed/{keys[entry]}", "speed", lambda e=entry: self.speed(e)))
        bases = [e for e in self.entries if e[1] == self.registry.create(*e, device="cpu").variants[0]]
        for entry in bases:  # compiled: the base workloads (a variant changes little of the graph)
            items.append(Item(f"speed_compiled/{keys[entry]}", f"speed_compiled/{keys[entry]}", "speed_compiled",
                              lambda e=entry: self.speed(e, compiled=True)))
        run = mode.speedrun_workload
        for i in range(mode.speedrun_runs):
            items.append(Item(f"speedrun/{keys[run]}/run{i}", f"speedrun/{keys[run]}", "speedrun",
                              lambda i=i: self.speedrun(run, i)))
        calibrated = [e for e in self.entries
                      if not mode.provisional_only or self.registry.create(*e, device="cpu").spec.provisional]
        variants = [e for e in calibrated if e not in bases]
        bases = [e for e in calibrated if e in bases]
        for entry, seeds in [*((e, mode.base_seeds) for e in bases), *((e, mode.variant_seeds) for e in variants)]:
            group = f"calibrate/{keys[entry]}"
            seed_ids = []
            for seed in seeds:
                seed_ids.append(f"{group}/seed{seed}")
                items.append(Item(seed_ids[-1], group, "calibrate", lambda e=entry, s=seed: self.calibrate_seed(e, s),
                                  estimate=self._calibration_estimate(entry)))
            items.append(Item(f"{group}/record", f"{group}/record", "record",
                              lambda state, e=entry, ids=tuple(seed_ids): self.calibration_record(e, ids, state),
                              needs=tuple(seed_ids)))
        return items

    def _calibration_estimate(self, entry) -> float:
        """Before a run of the group is measured: ``mode.estimates['calibrate']`` if set, else half the
        spec's time budget (3× a guessed time to target: step_hint steps take about that, evals
        included) + 30 s (data, warm-up)."""
        if "calibrate" in self.mode.estimates:
            return self.mode.estimates["calibrate"]
        spec = self.registry.create(*entry, device="cpu").spec
        return float(spec.max_allowed_runtime_sec) / 2 + 30.0

    # ----------------------------------------------------------------- a: smoke
    def smoke_env(self) -> dict[str, Any]:
        import torch

        from laptime.runner.clock import DeviceClock
        from laptime.runner.environment import hardware_info, library_versions

        device, clock = self.device, DeviceClock(self.device)
        a = torch.randn(512, 512, device=device)
        clock.synchronize()
        t0 = clock.now()
        for _ in range(10):
            a = torch.tanh(a @ a)
        clock.synchronize()
        elapsed = clock.now() - t0
        with torch.autocast(device.type, dtype=torch.bfloat16):
            product = a @ a
        checks = {"clock_advances": elapsed > 0, "clock_seconds_10_matmuls": elapsed,
                  "autocast_bf16_matmul_dtype": str(product.dtype), "autocast_ok": product.dtype == torch.bfloat16,
                  "cuda_available": torch.cuda.is_available()}
        if not (checks["clock_advances"] and checks["autocast_ok"]):
            raise RuntimeError(f"smoke checks failed: {checks}")
        return {"checks": checks, "hardware": hardware_info(device), "versions": library_versions()}

    def smoke_trial(self, entry) -> dict[str, Any]:
        from laptime.runner import TrialOptions, run_trial

        workload = self.workload(entry)
        algorithm = self.algorithms.get(DEFAULT_REFERENCE[0])
        result = run_trial(workload, algorithm, dict(algorithm.self_tuning_defaults), 0,
                           TrialOptions(max_steps=self.mode.smoke_steps, eval_period_sec=1e12, robust=False))
        out = {"outcome": result.outcome.value, "steps": result.steps, "submission_time": result.submission_time,
               "ms_per_step": 1e3 * result.submission_time / max(result.steps, 1), "wall_time": result.wall_time,
               "final_metrics": result.final_metrics}
        if result.outcome.value == "failed":
            raise RuntimeError(f"the trial failed: {(result.error or '').strip()}")
        return out

    # ----------------------------------------------------------------- b: speed
    def speed(self, entry, compiled: bool = False) -> dict[str, Any]:
        """lite.py's speed figures; ``compiled``: both loops through torch.compile (Workload.set_compile),
        compiled in the untimed warm-up (its seconds are in ``compile_seconds``)."""
        from lite import speed_row

        workload = self.workload(entry)
        if not compiled:
            return speed_row(workload, self.algorithms, DEFAULT_REFERENCE[0], self.mode.speed_steps,
                             self.mode.speed_repeats, self.mode.peak_tflops)
        workload.set_compile(self.mode.compile_backend)
        try:
            started = time.monotonic()
            workload.warm_up(int(self.algorithms.get(DEFAULT_REFERENCE[0]).get_batch_size(workload.spec.key)))
            seconds = time.monotonic() - started
            row = speed_row(workload, self.algorithms, DEFAULT_REFERENCE[0], self.mode.speed_steps,
                            self.mode.speed_repeats, self.mode.peak_tflops)
        finally:
            workload.set_compile(None)  # the instance is shared with the other items
        return {**row, "compile_backend": self.mode.compile_backend, "compile_seconds": seconds}

    # ----------------------------------------------------------------- c: the speedrun
    def speedrun(self, entry, seed: int) -> dict[str, Any]:
        return speedrun_trial(self.workload(entry), self.algorithms.get(self.mode.speedrun_algorithm), seed,
                              self.mode.speedrun_steps)

    # ----------------------------------------------------------------- d: calibration
    def _reference(self, entry):
        name, hp = REFERENCE.get(entry[0], DEFAULT_REFERENCE)
        algorithm = self.algorithms.get(name)
        return algorithm, {**algorithm.self_tuning_defaults, **hp}

    def calibrate_seed(self, entry, seed: int) -> dict[str, Any]:
        from laptime.tuning.calibrate import calibrate

        workload = self.workload(entry)
        algorithm, hp = self._reference(entry)
        try:
            result = calibrate(lambda: workload, algorithm, seeds=[seed], step_hint=self.mode.calibration_steps,
                               eval_every_steps=self.mode.eval_every_steps, base_hyperparameters=hp)
        finally:
            workload.override_step_hint(None)  # the instance is shared with the other items
        return {"run": dataclasses.asdict(result.seeds[0]), "step_hint": result.step_hint,
                "eval_every_steps": result.eval_every_steps, "algorithm": algorithm.name}

    def calibration_record(self, entry, seed_ids: tuple[str, ...], state: State) -> dict[str, Any]:
        return calibration_record(self.workload(entry), [state.items[i]["result"] for i in seed_ids], self.device,
                                  command=f"{_command_line()} (items {', '.join(seed_ids)})")


def speedrun_trial(workload, algorithm, seed: int, steps: int | None) -> dict[str, Any]:
    """One run of ``algorithm`` over the whole schedule (``steps``, default step_hint; the target
    does not stop it, one eval at the end), then the final model's accuracy with test-time
    augmentation (level 2) when the workload evaluates images on the device; else says it has none."""
    from laptime.runner import TrialOptions, run_trial

    captured: dict[str, Any] = {}
    original = workload.eval_model

    def eval_model(params, model_state, splits=None):  # untimed: the runner's eval
        captured["model"] = params
        return original(params, model_state, splits)

    workload.eval_model = eval_model  # the instance attribute shadows the method
    try:
        result = run_trial(workload, algorithm, dict(algorithm.self_tuning_defaults), seed,
                           TrialOptions(max_steps=steps or workload.step_hint, stop_at_target=False,
                                        eval_period_sec=1e12, budget_factor=1e9, robust=False))
    finally:
        del workload.eval_model
    if result.outcome.value == "failed":
        raise RuntimeError(f"the trial failed: {(result.error or '').strip()}")
    out = {"algorithm": algorithm.name, "seed": seed, "outcome": result.outcome.value, "steps": result.steps,
           "submission_time": result.submission_time, "wall_time": result.wall_time,
           "final_metrics": result.final_metrics}
    out["tta"] = tta_accuracy(workload, captured.get("model"))
    return out


def tta_accuracy(workload, model, level: int = 2) -> dict[str, Any]:
    """Validation and test accuracy of ``model`` with test-time augmentation ``level`` (see
    :mod:`laptime.workloads.vision`), or ``{"supported": False, "why": ...}``."""
    from laptime.workloads.vision import DeviceImages

    data = getattr(workload, "data", None) if hasattr(workload, "_forward") else None
    if not isinstance(data, DeviceImages) or model is None:
        return {"supported": False,
                "why": f"{workload.spec.key} has no test-time augmentation (not a device-image workload)"}
    model.eval()
    out: dict[str, Any] = {"supported": True, "level": level}
    for split in ("validation", "test"):
        out[f"{split}/accuracy"] = data.evaluate(workload._forward(model), split, workload.eval_batch_size,
                                                 level)["accuracy"]
    return out


def calibration_record(workload, seed_results: list[dict[str, Any]], device, command: str) -> dict[str, Any]:
    """The calibration record of the runs of ``seed_results`` (calibrate_seed's results)."""
    from laptime.tuning.calibrate import RunSummary, conclude

    runs = [RunSummary(**r["run"]) for r in seed_results]
    first = seed_results[0]
    spec = workload.spec
    result = conclude(spec.key, spec.target.metric, spec.target.direction, first["algorithm"], first["step_hint"],
                      first["eval_every_steps"], runs[:1], runs, device=device, command=command)
    return _json_safe(result.to_json())


def _command_line() -> str:
    return "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0])] + sys.argv[1:])


# =========================================================================== run


def _estimate(item: Item, state: State, mode: Mode) -> float:
    measured = [v["seconds"] for v in state.items.values() if v.get("group") == item.group and "seconds" in v]
    if measured:
        return max(measured)
    return item.estimate if item.estimate is not None else mode.estimates[item.part]


def run(args: argparse.Namespace) -> int:
    if args.time_limit <= 0:
        raise UsageError("--time-limit must be > 0 seconds")
    if args.max_items is not None and args.max_items < 0:
        raise UsageError("--max-items must be >= 0")
    mode = MODES["tiny" if args.tiny else "full"]
    state_dir = Path(args.state)
    if state_dir.exists() and not state_dir.is_dir():
        raise UsageError(f"--state {state_dir} is a file; give a folder")
    state_dir.mkdir(parents=True, exist_ok=True)
    out = Path(args.out) if args.out else None
    if out is not None:
        if out.exists() and not out.is_dir():
            raise UsageError(f"--out {out} is a file; give a folder")
        out.mkdir(parents=True, exist_ok=True)
    state = State(state_dir, out)
    config = {"mode": mode.name, "device_type": args.device.split(":")[0]}
    if state.data["config"] not in (None, config):
        raise UsageError(f"--state {state_dir} holds a window of {state.data['config']}, not {config}: "
                         "use another --state")
    state.data["config"] = config
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UsageError("--device cuda: torch sees no CUDA device here")
        torch.backends.cudnn.benchmark = True  # as in lite.py; autotuning is paid in the untimed warm-ups
    if not args.device.startswith("cuda"):
        import torch

        torch.set_num_threads(args.threads)  # laptime's CPU policy (docs/architecture.md, Threads)
    if args.pack:
        unpack(Path(args.pack), log=state.log)

    window = Window(mode, args.device)
    items = window.items()
    if args.only:
        items = [i for i in items if any(i.id.startswith(prefix) for prefix in args.only)]
        if not items:
            raise UsageError(f"--only {' '.join(args.only)} matches no item; `gpu_window.py plan` lists them")
    call = {"started": _now(), "time_limit": args.time_limit, "argv": sys.argv[1:], "ran": [], "deferred": []}
    state.data["calls"].append(call)
    state.save()
    started = 0
    for item in items:
        previous = state.items.get(item.id, {})
        if previous.get("status") == "done" or (previous.get("status") == "failed" and not args.retry_failed):
            continue
        if args.max_items is not None and started >= args.max_items:
            call["deferred"].append({"id": item.id, "why": "--max-items"})
            continue
        missing = [n for n in item.needs if state.items.get(n, {}).get("status") != "done"]
        if missing:
            call["deferred"].append({"id": item.id, "why": f"waits for {', '.join(missing)}"})
            continue
        left = args.time_limit - (time.monotonic() - _START)
        estimate = _estimate(item, state, mode)
        if estimate > left:
            why = f"needs ~{estimate:.0f} s, {max(left, 0):.0f} s left"
            if estimate > args.time_limit:
                why += f"; never fits a window of {args.time_limit:g} s: run it alone with a larger --time-limit"
            call["deferred"].append({"id": item.id, "why": why})
            continue
        started += 1
        state.log(f"{item.id}: start (estimate {estimate:.1f} s, {left:.0f} s left)")
        t0 = time.monotonic()
        record: dict[str, Any] = {"group": item.group, "started": _now(), "attempts": previous.get("attempts", 0) + 1}
        try:
            result = item.run(state=state) if item.part == "record" else item.run()
            record.update(status="done", result=result)
        except Exception as exc:  # noqa: BLE001 - one broken item must not cost the window
            record.update(status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
        record["seconds"] = time.monotonic() - t0
        state.items[item.id] = record
        call["ran"].append(item.id)
        state.save()
        state.log(f"{item.id}: {record['status']} in {record['seconds']:.1f} s"
                  + (f" ({record['error'].splitlines()[0][:200]})" if record["status"] == "failed" else ""))
    call["finished"] = _now()
    state.save()
    done = sum(1 for i in items if state.items.get(i.id, {}).get("status") == "done")
    failed = sum(1 for i in items if state.items.get(i.id, {}).get("status") == "failed")
    state.log(f"window: {len(call['ran'])} item(s) run now; {done}/{len(items)} done, {failed} failed, "
              f"{len(items) - done - failed} to do; {time.monotonic() - _START:.0f} s of {args.time_limit:g} s")
    return 0


# =========================================================================== plan, collect


def plan(args: argparse.Namespace) -> int:
    mode = MODES["tiny" if args.tiny else "full"]
    window = Window(mode, "cpu")
    state = State(Path(args.state), None) if args.state and Path(args.state, STATE_NAME).exists() else None
    total = 0.0
    for item in window.items():
        status = state.items.get(item.id, {}).get("status", "to do") if state else "to do"
        estimate = _estimate(item, state, mode) if state else (item.estimate or mode.estimates[item.part])
        if status != "done":
            total += estimate
        print(f"{item.id:<60} {status:<6} ~{estimate:.0f} s")
    print(f"still to do: ~{total / 60:.1f} min of device time")
    return 0


def collect(args: argparse.Namespace) -> int:
    """Calibration records into ``--records``; the figures as markdown tables on stdout."""
    from lite import SPEED_HEADER, speed_line

    from laptime.atomic import atomic_write

    path = Path(args.state) / STATE_NAME
    if not path.is_file():
        raise UsageError(f"no {STATE_NAME} in {args.state}")
    state = State(Path(args.state), None)
    items = state.items
    smoke = [(k, v) for k, v in items.items() if k.startswith("smoke/")]
    print(f"# gpu window: {state.data['config']}, {len(state.data['calls'])} call(s)\n")
    print("| smoke item | status | figures |\n|---|---|---|")
    for key, value in smoke:
        result = value.get("result", {})
        figures = result.get("checks") or {k: result.get(k) for k in ("outcome", "steps", "ms_per_step")}
        print(f"| {key} | {value['status']} | {json.dumps(figures) if value['status'] == 'done' else value['error']} |")
    print("\n" + SPEED_HEADER)
    for key, value in items.items():
        if key.startswith(("speed/", "speed_compiled/")) and value["status"] == "done":
            line = speed_line(value["result"])
            if key.startswith("speed_compiled/"):  # the workload column says it
                backend = value["result"]["compile_backend"]
                line = line.replace(f"| {value['result']['workload']} |",
                                    f"| {value['result']['workload']} (compiled, {backend}) |", 1)
            print(line)
    runs = [v for k, v in items.items() if k.startswith("speedrun/") and v["status"] == "done"]
    if runs:
        print("\n| speedrun run | seed | submission s | validation acc | test acc | validation acc (TTA) | test acc (TTA) |"
              "\n|---|---|---|---|---|---|---|")
        for i, value in enumerate(runs):
            r, tta = value["result"], value["result"]["tta"]
            metric = r["final_metrics"]

            def pct(x):
                return "—" if x is None else f"{100 * x:.2f}%"
            print(f"| {i} | {r['seed']} | {r['submission_time']:.3f} | {pct(metric.get('validation/accuracy'))} | "
                  f"{pct(metric.get('test/accuracy'))} | "
                  + (f"{pct(tta['validation/accuracy'])} | {pct(tta['test/accuracy'])} |" if tta["supported"]
                     else f"{tta['why']} | — |"))
    written = []
    for key, value in items.items():
        if key.startswith("calibrate/") and key.endswith("/record") and value["status"] == "done":
            record = value["result"]
            name, rest = record["workload"].split("/", 1)
            variant, config = rest.split("@", 1)
            target = Path(args.records) / f"{name}_{variant}_{config}.json"
            if target.exists() and not args.force:
                print(f"# {target} exists: kept (--force replaces it)")
                continue
            with atomic_write(target, "w", encoding="utf-8") as handle:
                json.dump(record, handle, indent=1, sort_keys=True)
                handle.write("\n")
            written.append(target)
            s = record["suggested"]
            print(f"# {record['workload']}: validation {s['validation']}, test {s['test']}, budget {s['budget']} s "
                  f"-> {target}")
    print(f"\n{len(written)} calibration record(s) written")
    return 0


# =========================================================================== pack, unpack


def pack(args: argparse.Namespace) -> int:
    """The datasets a window reads (and wheels) into ``--out``, refused when over ``--limit-mib``."""
    from laptime.data import sources

    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"--out {out} is not empty; give a new or empty folder")
    root = Path(args.root) if args.root else sources.data_root()
    names = args.datasets or Window(MODES["tiny" if args.tiny else "full"], "cpu").datasets()
    blobs: dict[str, bytes] = {}
    manifest: dict[str, Any] = {"format": FORMAT, "datasets": {}, "wheels": []}
    for name in names:
        source = sources.get_source(name)
        state = sources.check(name, root)
        if state.state != "prepared":
            raise UsageError(f"dataset {name!r} is {state.state} in {root}: prepare it first "
                             f"(laptime data prepare {name} --root {root} --source ...)")
        folder = sources.dataset_dir(name, root)
        files = sorted(p for p in folder.iterdir() if p.is_file())
        source_files = {f.filename for f in source.files}
        cache = [p for p in files if p.name not in source_files and p.name != sources.STAMP_NAME]
        cache_mib = sum(p.stat().st_size for p in cache) / 2**20
        dropped = []
        if source_files and cache_mib > args.max_cache_mib:  # rebuilt there from the verified source files
            dropped = [p.name for p in cache]
            files = [p for p in files if p.name not in dropped]
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as tar:
            for p in files:
                tar.add(p, arcname=f"{name}/{p.name}")
        blobs[f"{name}.tar.gz"] = buffer.getvalue()
        manifest["datasets"][name] = {"file": f"{name}.tar.gz", "bytes": len(blobs[f"{name}.tar.gz"]),
                                      "cache_rebuilt_there": dropped}
    wheels: dict[str, bytes] = {}
    if args.wheels:
        wheels = _download_wheels(args.wheel_packages or list(GPU_MISSING_PACKAGES))
        manifest["wheels"] = sorted(wheels)
    total = sum(map(len, blobs.values())) + sum(map(len, wheels.values()))
    size_mib = total / 2**20
    if size_mib > args.limit_mib:
        sizes = ", ".join(f"{k} {len(v) / 2**20:.1f}" for k, v in {**blobs, **wheels}.items())
        raise UsageError(f"the pack would be {size_mib:.1f} MiB, over --limit-mib {args.limit_mib:g} ({sizes} MiB); "
                         "pack fewer --datasets or lower --max-cache-mib")
    out.mkdir(parents=True, exist_ok=True)
    for name, blob in {**blobs, **{f"wheels/{k}": v for k, v in wheels.items()}}.items():
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(blob)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    print(f"packed {', '.join(names)}{' + ' + ', '.join(wheels) if wheels else ''} into {out}: {size_mib:.1f} MiB "
          f"(limit {args.limit_mib:g} MiB; the checkout travels too)")
    return 0


def _download_wheels(requirements: list[str]) -> dict[str, bytes]:
    """pip-download pure-Python wheels of ``requirements`` (pinned to the installed versions)."""
    import tempfile
    from importlib import metadata

    pinned = []
    for name in requirements:
        if "==" not in name:
            try:
                name = f"{name}=={metadata.version(name)}"
            except metadata.PackageNotFoundError:
                raise UsageError(f"package {name!r} is not installed here; name a version: {name}==X") from None
        pinned.append(name)
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                               "--python-version", "3.12", "-d", tmp, *pinned], capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["pip failed"])[-1]
            raise UsageError(f"pip download {' '.join(pinned)} failed: {last}")
        return {p.name: p.read_bytes() for p in sorted(Path(tmp).glob("*.whl"))}


def unpack(pack_dir: Path, log: Callable[[str], None] = print) -> None:
    """Extract a pack's datasets into the data root (a prepared one is left alone), then open each
    (:func:`laptime.data.locate`), which rebuilds a cache that travelled without its files."""
    from laptime.data import sources

    manifest_path = pack_dir / "manifest.json"
    if not manifest_path.is_file():
        raise UsageError(f"--pack {pack_dir}: no manifest.json (make it with `gpu_window.py pack`)")
    manifest = json.loads(manifest_path.read_text())
    root = sources.data_root()
    for name, entry in manifest["datasets"].items():
        if sources.check(name, root).state == "prepared":
            continue
        with tarfile.open(pack_dir / entry["file"]) as tar:
            members = tar.getmembers()
            if any(not m.isfile() or Path(m.name).parts[:1] != (name,) or ".." in Path(m.name).parts for m in members):
                raise UsageError(f"{entry['file']}: unexpected members; refusing to extract")
            root.mkdir(parents=True, exist_ok=True)
            tar.extractall(root, members=members)
        started = time.monotonic()
        sources.locate(name, root, log=log)
        log(f"dataset {name}: unpacked into {root} ({time.monotonic() - started:.1f} s to open"
            + (", cache rebuilt)" if entry["cache_rebuilt_there"] else ")"))


# =========================================================================== main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="run what fits in --time-limit, resuming --state")
    p_run.add_argument("--time-limit", type=float, required=True, help="seconds, counted from the start of the process")
    p_run.add_argument("--state", required=True, help="folder of state.json (read, then written after every item)")
    p_run.add_argument("--out", help="also write state.json and log.txt here (the device tool's $OUT)")
    p_run.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    p_run.add_argument("--tiny", action="store_true", help="MNIST-1D and a few steps: the whole command in seconds on a CPU")
    p_run.add_argument("--pack", help="a folder made by `pack`: its datasets are unpacked first (untimed by the items)")
    p_run.add_argument("--only", nargs="+", metavar="PREFIX", help="only the items whose id starts with one of these")
    p_run.add_argument("--retry-failed", action="store_true", help="run failed items again")
    p_run.add_argument("--threads", type=int, default=1, help="torch threads on the CPU (default 1, as laptime's)")
    p_run.add_argument("--max-items", type=int, help="start at most this many items in this call")
    p_plan = sub.add_parser("plan", help="list the items, their status in --state and their estimates")
    p_plan.add_argument("--state")
    p_plan.add_argument("--tiny", action="store_true")
    p_collect = sub.add_parser("collect", help="calibration records and markdown tables from a state")
    p_collect.add_argument("--state", required=True)
    p_collect.add_argument("--records", default=str(Path(__file__).resolve().parents[1] / "docs" / "calibration"),
                           help="where calibration records go (default: docs/calibration)")
    p_collect.add_argument("--force", action="store_true", help="replace existing records")
    p_pack = sub.add_parser("pack", help="the prepared datasets a window reads (+ wheels) into one folder")
    p_pack.add_argument("--out", required=True, help="a new or empty folder, git-ignored (e.g. gpu_carry)")
    p_pack.add_argument("--root", help="data root (default: $LAPTIME_DATA or ~/.cache/laptime/data)")
    p_pack.add_argument("--datasets", nargs="+", help="default: every dataset the window's workloads read")
    p_pack.add_argument("--tiny", action="store_true", help="the datasets of the --tiny window")
    p_pack.add_argument("--limit-mib", type=float, default=CARRY_LIMIT_MIB - 8,
                        help=f"refuse a larger pack (default {CARRY_LIMIT_MIB - 8:g}: the checkout travels too)")
    p_pack.add_argument("--max-cache-mib", type=float, default=32.0,
                        help="a larger cache travels without its files, rebuilt there from its source files")
    p_pack.add_argument("--wheels", action="store_true",
                        help=f"also pip-download wheels the GPU machine lacks ({', '.join(GPU_MISSING_PACKAGES)})")
    p_pack.add_argument("--wheel-packages", nargs="+", metavar="NAME[==VERSION]", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # lite.py, overhead.py
    try:
        return {"run": run, "plan": plan, "collect": collect, "pack": pack}[args.command](args)
    except LaptimeError as exc:  # bad input, a dataset not ready, an unknown name: one line
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
