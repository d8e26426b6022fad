"""Fault injection: ``laptime bench`` killed with SIGKILL at random points, started again each time.

A reference run (no checkpoints) gives every plan's eval history. Then *campaigns*: a fresh results
database; the same benchmark (checkpoints on, beside the database) is started, killed with SIGKILL,
started again ... and, once ``--kills`` kills were made, left to finish; a campaign whose run gets to
its end before that is checked and followed by a fresh one. Where a kill lands is drawn at random,
half of the time

* after a random share (2-100 %) of the reference run's wall time (start-up, trials, the store's
  writes, scoring and the report), half of the time
* at a random moment up to ``--jitter`` seconds after the N-th change seen in the checkpoint folder
  (N random): in the middle of a trial, often in or right after a checkpoint write.

What another process could see is checked **while the benchmark runs** (every few ms: the stored
trials, each plan at most once and each with the reference's whole eval history; every checkpoint
file that appears loads whole and belongs to a plan) and after every kill (the same, plus ``PRAGMA
integrity_check``). At the end of each campaign every plan is stored exactly once with the
reference's eval history and the checkpoint folder is gone. Where the kill landed is told from what
it left: a temporary ``.part`` file (killed while writing a checkpoint), a checkpoint of a stored
plan (killed between storing a trial and removing its checkpoint), a checkpoint (in a trial),
nothing (start-up, between trials, scoring).

``--racers N`` runs N benchmarks at once on the same database (each killed and started again on
its own): their plan claims must still get every plan stored exactly once.

``--processes exec`` (default) starts ``python -m laptime bench ...`` each time; ``--processes fork``
forks each benchmark from this interpreter with laptime already imported (the same ``laptime``
command line, run by ``laptime.cli.main.main``), which saves the seconds of imports per start: what
``tests/test_fault_injection.py`` uses to afford 20 kills. Exit status 0 when every check passed,
1 (with the reason) when one failed. Run::

    python benchmarks/fault_injection.py                    # 20 kills, mnist1d x nadamw, adamw
    python benchmarks/fault_injection.py --kills 50 --max-steps 300 --seed 1
    python benchmarks/fault_injection.py --racers 2 --kills 40
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import platform
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from laptime.runner import checkpoint as ckpt


class CheckFailed(Exception):
    """Something half-written, duplicated or different was visible."""


def bench_args(args: argparse.Namespace, db: Path, out: Path, checkpoints: bool) -> list[str]:
    argv = ["bench", "--suite", args.suite, "--budget", "steps", "--max-steps", str(args.max_steps), "--threads", "1",
            "--bootstrap", "0", "--json", "--db", str(db), "--out", str(out)]
    for name in args.algorithm:
        argv += ["-a", name]
    if checkpoints:
        argv += ["--checkpoint-every-steps", str(args.checkpoint_every_steps)]
    else:
        argv += ["--no-checkpoint"]
    return argv


# --------------------------------------------------------------------------- processes


class Forked:
    """A benchmark forked from this interpreter (``laptime.cli.main.main(argv)`` in the child);
    ``poll``/``wait``/``kill``/``returncode`` as ``subprocess.Popen``'s."""

    def __init__(self, argv: list[str], log: Path):
        sys.stdout.flush()
        sys.stderr.flush()
        self.returncode: int | None = None
        self.pid = os.fork()
        if self.pid == 0:  # the child: never returns
            code = 70
            try:
                fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, 1)
                os.dup2(fd, 2)
                from laptime.cli.main import main

                code = main(argv)
            except BaseException:  # noqa: BLE001 - the child reports through its exit status
                import traceback

                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code if isinstance(code, int) else 70)

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout)
            time.sleep(0.002)
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            os.kill(self.pid, signal.SIGKILL)


def start(mode: str, argv: list[str], log: Path):
    if mode == "fork":
        return Forked(argv, log)
    with open(log, "ab") as err:
        return subprocess.Popen([sys.executable, "-m", "laptime", *argv], stdout=subprocess.DEVNULL, stderr=err)


def preload() -> None:
    """Import what a benchmark uses, before forking (a child then starts at once); no torch work."""
    import torch

    torch.set_num_threads(1)
    import torch._dynamo  # noqa: F401 - what the first torch optimizer imports

    import laptime.cli.main  # noqa: F401
    import laptime.execution  # noqa: F401
    import laptime.scoring  # noqa: F401
    import laptime.workloads  # noqa: F401
    from laptime.algorithms import default_algorithms

    default_algorithms()  # imports the library's update rules


# --------------------------------------------------------------------------- what is visible


def stored(db: Path) -> dict[str, list]:
    """Eval history ``[(step, metrics)]`` by plan key, as any reader sees it (one read transaction);
    raises :class:`CheckFailed` when a plan is stored twice."""
    if not db.exists():
        return {}
    conn = sqlite3.connect(db, timeout=30, isolation_level=None)
    try:
        conn.execute("BEGIN")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "trials" not in tables:
            return {}
        trials = conn.execute("SELECT id, plan_key FROM trials ORDER BY id").fetchall()
        evals = conn.execute("SELECT trial_id, step, metrics_json FROM evals ORDER BY trial_id, idx").fetchall()
        conn.execute("ROLLBACK")
    finally:
        conn.close()
    keys = [key for _, key in trials]
    if len(keys) != len(set(keys)):
        raise CheckFailed(f"{db}: a plan is stored twice")
    by_id: dict[int, list] = {trial_id: [] for trial_id, _ in trials}
    for trial_id, step, metrics in evals:
        by_id[trial_id].append((step, json.loads(metrics)))
    return {key: by_id[trial_id] for trial_id, key in trials}


class Observer:
    """Checks what another process could see of a campaign's database and checkpoint folder."""

    def __init__(self, reference: dict[str, list], max_steps: int):
        self.reference = reference
        self.max_steps = max_steps
        self.looks = 0
        self.checkpoints_loaded = 0
        self._seen: set[tuple[str, int, int]] = set()

    def look(self, db: Path, folder: Path, integrity: bool = False) -> dict[str, list]:
        self.looks += 1
        if integrity and db.exists():
            with sqlite3.connect(db, timeout=30) as conn:
                verdict = conn.execute("PRAGMA integrity_check").fetchone()[0]
            if verdict != "ok":
                raise CheckFailed(f"{db}: integrity_check says {verdict}")
        got = stored(db)
        for key, evals in got.items():
            if key not in self.reference:
                raise CheckFailed(f"{db}: a trial of no plan of the benchmark ({key})")
            if evals != self.reference[key]:
                raise CheckFailed(f"{db}: trial {key}'s eval history differs from the uninterrupted run's "
                                  f"({len(evals)} evals stored, {len(self.reference[key])} expected)")
        for path in folder.glob(f"*{ckpt.SUFFIX}") if folder.exists() else ():
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue  # removed meanwhile
            mark = (path.name, stat.st_mtime_ns, stat.st_size)
            if mark in self._seen:
                continue
            try:
                payload = ckpt.read_checkpoint(path)
            except FileNotFoundError:
                continue
            except Exception as exc:  # noqa: BLE001 - any failure to load is what this looks for
                if path.exists() and path.stat().st_mtime_ns == stat.st_mtime_ns:
                    raise CheckFailed(f"{path}: a visible checkpoint does not load ({exc})") from exc
                continue  # replaced while being read: the new one is looked at next time
            step = payload["runner"]["step"]
            if path.stem not in self.reference or not 0 < step < self.max_steps:
                raise CheckFailed(f"{path}: unexpected checkpoint (step {step})")
            self._seen.add(mark)
            self.checkpoints_loaded += 1
        return got


def landed(stored_keys: set[str], folder: Path) -> str:
    if not folder.exists():
        return "no checkpoint (start-up, between trials, scoring)"
    if list(folder.glob(".*.part")):
        return "while writing a checkpoint (.part left)"
    names = {p.stem for p in folder.glob(f"*{ckpt.SUFFIX}")}
    if names & stored_keys:
        return "after storing a trial, before removing its checkpoint"
    if names:
        return "in a trial (a checkpoint to resume)"
    return "no checkpoint (start-up, between trials, scoring)"


def snapshot(folder: Path) -> list[tuple[str, int]]:
    """The checkpoints in ``folder`` with their modification times (files come and go meanwhile)."""
    out = []
    for path in folder.glob(f"*{ckpt.SUFFIX}") if folder.exists() else ():
        try:
            out.append((path.name, path.stat().st_mtime_ns))
        except FileNotFoundError:
            pass
    return sorted(out)


# --------------------------------------------------------------------------- the campaigns


def run(args: argparse.Namespace, work: Path) -> dict:
    rng = random.Random(args.seed)
    log = work / "benchmarks.log"
    started = time.monotonic()
    if args.processes == "fork":
        preload()

    t0 = time.monotonic()
    ref_db = work / "reference.sqlite"
    proc = start(args.processes, bench_args(args, ref_db, work / "reference-report", checkpoints=False), log)
    if proc.wait() != 0:
        raise CheckFailed(f"the reference run failed (exit status {proc.returncode}); see {log}")
    duration = time.monotonic() - t0
    reference = stored(ref_db)
    if not reference:
        raise CheckFailed("the reference run stored no trial")
    observer = Observer(reference, args.max_steps)

    kills, campaigns, starts, resumes = 0, 0, 0, 0
    places: collections.Counter[str] = collections.Counter()
    kill_delays: list[float] = []

    def launch(db: Path, racer: int) -> dict:
        """Start one benchmark and draw where it is to be killed (nowhere once the kills are made)."""
        nonlocal starts
        starts += 1
        slot = {"proc": start(args.processes, bench_args(args, db, work / f"report{racer}", checkpoints=True), log),
                "started": time.monotonic(), "deadline": None, "target": None, "changes": 0, "seen": None}
        if kills < args.kills:
            if rng.random() < 0.5:  # after a random share of an uninterrupted run's time
                slot["deadline"] = slot["started"] + rng.uniform(0.02, 1.0) * duration
            else:  # a moment after the N-th change seen in the checkpoint folder
                slot["target"] = rng.randint(1, 12)
        return slot

    while True:
        campaigns += 1
        db = work / f"campaign{campaigns}.sqlite"
        folder = work / f"{db.name}.checkpoints"  # the default: beside the database
        slots = [launch(db, racer) for racer in range(args.racers)]  # racers: benchmarks on one database
        while any(slot is not None for slot in slots):
            observer.look(db, folder)  # what a reader sees while the benchmarks run
            now = time.monotonic()
            for i, slot in enumerate(slots):
                if slot is None:
                    continue
                proc = slot["proc"]
                if proc.poll() is not None:
                    if proc.returncode != 0:
                        raise CheckFailed(f"a benchmark exited with status {proc.returncode}; see {log}")
                    slots[i] = None  # finished: this racer is done for the campaign
                    continue
                if slot["target"] is not None and slot["deadline"] is None:
                    state = snapshot(folder)
                    if state and state != slot["seen"]:
                        slot["changes"], slot["seen"] = slot["changes"] + 1, state
                    if slot["changes"] >= slot["target"]:
                        slot["deadline"] = now + rng.uniform(0.0, args.jitter)
                if slot["deadline"] is not None and now >= slot["deadline"] and kills < args.kills:
                    proc.kill()
                    proc.wait()
                    kills += 1
                    kill_delays.append(time.monotonic() - slot["started"])
                    got = observer.look(db, folder, integrity=True)
                    places[landed(set(got), folder)] += 1
                    slots[i] = launch(db, i)  # started again at once
            time.sleep(args.look_every)
        got = observer.look(db, folder, integrity=True)
        if got != reference:
            raise CheckFailed(f"campaign {campaigns}: {len(got)} of {len(reference)} plans stored at the end")
        if folder.exists():
            raise CheckFailed(f"{folder} left behind")
        with sqlite3.connect(db) as conn:
            for (measurement,) in conn.execute("SELECT measurement FROM trials"):
                resumes += len(json.loads(measurement or "{}").get("checkpoint", {}).get("resumes", []))
        if kills >= args.kills:
            break
    return {
        "kills": kills, "racers": args.racers, "campaigns": campaigns, "processes started": starts, "trial resumes": resumes,
        "where the kills landed": dict(places.most_common()), "plans per campaign": len(reference),
        "looks while running": observer.looks, "checkpoints loaded while running": observer.checkpoints_loaded,
        "reference wall sec": round(duration, 2),
        "kill after (sec): min, median, max": [round(min(kill_delays), 3),
                                               round(sorted(kill_delays)[len(kill_delays) // 2], 3),
                                               round(max(kill_delays), 3)] if kill_delays else None,
        "checks": "all passed: integrity_check ok after every kill, no plan stored twice or half at any look, "
                  "every visible checkpoint whole, every campaign ended with every plan once with the "
                  "uninterrupted eval history and no checkpoint left",
        "processes": args.processes, "workdir": str(work),
        "command": " ".join(["python", *sys.argv]),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.platform()}",
        "python": platform.python_version(), "date": datetime.date.today().isoformat(),
        "wall_sec": round(time.monotonic() - started, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--suite", default="mnist1d")
    parser.add_argument("-a", "--algorithm", action="append")
    parser.add_argument("--max-steps", type=int, default=200)
    parser.add_argument("--checkpoint-every-steps", type=int, default=4)
    parser.add_argument("--jitter", type=float, default=0.05, help="seconds after a checkpoint change (default 0.05)")
    parser.add_argument("--look-every", type=float, default=0.01, help="seconds between looks (default 0.01)")
    parser.add_argument("--processes", choices=("exec", "fork"), default="exec")
    parser.add_argument("--racers", type=int, default=1,
                        help="benchmarks run at once on one database, each killed and restarted (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None, help="kept when given (default: a temporary folder)")
    args = parser.parse_args()
    args.algorithm = args.algorithm or ["nadamw", "adamw"]
    if (args.kills < 1 or args.max_steps < 2 or args.checkpoint_every_steps < 1 or not args.look_every > 0
            or args.racers < 1):
        parser.error("--kills, --max-steps, --checkpoint-every-steps, --look-every and --racers must be positive "
                     "(--max-steps >= 2)")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="laptime-faults-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        summary = run(args, work)
    except CheckFailed as exc:
        print(f"fault injection FAILED: {exc} (files kept in {work})", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2))
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
