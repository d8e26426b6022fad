"""The results store: finished trials and their evals in one SQLite file.

Schema
------
See :mod:`laptime.results.schema` for the full definition. In short::

    meta(key, value)                      -- schema_version (and created_by)
    runs(id, created_at, command, meta_json)
    trials(id, run_id -> runs, <one column per TrialRecord field>)
    evals(id, trial_id -> trials ON DELETE CASCADE, idx, step, submission_time,
          wall_time, eval_duration, metrics_json, robust_time, work)

A *run* is one CLI invocation (one ``laptime run``, one ``laptime bench``); every trial it
finishes points at it. ``hyperparameters``, ``hardware``, ``versions``, ``runs.meta_json`` and
``evals.metrics_json`` are JSON text written by Python's ``json`` module, so NaN and infinities
round-trip (as ``NaN``/``Infinity``, which Python reads back but strict JSON parsers may not).

Atomicity
---------
Trials are written only once they are finished, and :meth:`ResultsStore.add_trial` writes the
trial row and all its eval rows in a single ``BEGIN IMMEDIATE ... COMMIT`` transaction. Anything
that goes wrong in between (a metric that is not JSON-serialisable, a full disk, the process being
killed) rolls the whole trial back, so the store never holds a trial without its evals, and other
connections never see one half-written: they read the last committed snapshot.
:meth:`ResultsStore.transaction` groups several writes (a run, its trials and its meta, as
``laptime import`` stores them) into one such transaction.

Concurrency
-----------
The database runs in WAL mode with a generous busy timeout: readers never block, writers queue up.
Within a benchmark only the process that runs it writes (its executor's workers, local processes,
Ray tasks or Slurm jobs, hand their records back), so the file needs to be reachable from that one
machine only; WAL's shared memory is not safe on a network file system shared by several hosts.
Several benchmarks may still use one file at the same time (on one host): each claims a plan in a
write transaction before running it (:meth:`ResultsStore.claim`, the ``claims`` table), renews the
claim while it runs (:meth:`ResultsStore.heartbeat`) and releases it in the transaction that stores
the trial; a claim whose heartbeat is older than its lease, or whose process is gone on this host,
is taken over. One :class:`ResultsStore` (one connection) should be used by one thread.

Versioning
----------
``meta.schema_version`` records the layout. Opening a file written by a newer laptime, or a file
that is not a laptime results database, raises :class:`StoreError` rather than touching it. A file
of an older version is migrated in place when opened (``ALTER TABLE ... ADD COLUMN``, one
transaction per version; trials stored before get the new columns' defaults).

This module (and the whole :mod:`laptime.results` package) does not import torch.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime as _dt
import json
import math
import os
import pathlib
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator
from typing import Any

from laptime.atomic import atomic_write
from laptime.records import EvalRecord, Outcome, TrialRecord
from laptime.results.schema import (
    DDL,
    EVAL_FIELDS,
    EVAL_NAN_COLUMNS,
    MIGRATIONS,
    SCHEMA_VERSION,
    TRIAL_FIELDS,
    TRIAL_JSON_COLUMNS,
    TRIAL_NAN_COLUMNS,
)
from laptime.errors import LaptimeError

__all__ = ["SCHEMA_VERSION", "Claim", "ResultsStore", "StoreError", "default_store_path", "pid_alive"]

#: Seconds a connection waits for another process's write lock before giving up.
BUSY_TIMEOUT_S = 60.0

#: Columns of ``to_pandas('trials')`` / ``export_csv(table='trials')``.
TRIAL_EXPORT_COLUMNS: tuple[str, ...] = ("trial_id", "run_id", *TRIAL_FIELDS)

_TABLES = ("trials", "evals")
_FILTERS = ("workload", "variant", "algorithm", "run_id", "outcome", "plan_key")


class StoreError(LaptimeError):
    """A results-store problem worth showing to the user as is (bad file, version, missing id)."""


def default_store_path() -> pathlib.Path:
    """Where results go by default.

    ``$LAPTIME_DB`` if set, else ``$XDG_DATA_HOME/laptime/results.sqlite`` (with
    ``XDG_DATA_HOME`` defaulting to ``~/.local/share``).
    """
    env = os.environ.get("LAPTIME_DB")
    if env:
        return pathlib.Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    # The XDG spec says relative values are invalid and must be ignored.
    base = pathlib.Path(xdg) if xdg and os.path.isabs(xdg) else pathlib.Path.home() / ".local" / "share"
    return base / "laptime" / "results.sqlite"


# --------------------------------------------------------------------------------------------
# JSON and row conversion
# --------------------------------------------------------------------------------------------


def _json_default(obj: Any) -> Any:
    """Let numpy/torch scalars and arrays through ``json.dumps`` (duck-typed, no imports)."""
    item = getattr(obj, "item", None)
    if callable(item):
        try:
            return item()  # numpy scalar, 0-d array or tensor
        except (ValueError, RuntimeError):
            pass  # more than one element: fall through to tolist()
    tolist = getattr(obj, "tolist", None)
    if callable(tolist):
        return tolist()
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serializable")


def _dumps(obj: Any, what: str) -> str:
    try:
        return json.dumps(obj, allow_nan=True, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"cannot store {what}: {exc}") from exc


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _nan_if_null(value: Any) -> Any:
    return math.nan if value is None else value


def _trial_row(trial: TrialRecord) -> list[Any]:
    """The ``trials`` values for ``trial`` in :data:`TRIAL_FIELDS` order (``run_id`` excluded)."""
    row: list[Any] = []
    for name in TRIAL_FIELDS:
        value = getattr(trial, name)
        if name in TRIAL_JSON_COLUMNS:
            value = _dumps(value, f"trial {name}")
        elif name == "outcome":
            value = Outcome(value).value
        row.append(value)
    return row


def _eval_row(trial_id: int, idx: int, ev: EvalRecord) -> tuple[Any, ...]:
    """The ``evals`` values for the ``idx``-th eval of a trial (metrics serialised here)."""
    metrics = _dumps(ev.metrics, f"metrics of eval {idx} (step {ev.step})")
    return (trial_id, idx, ev.step, ev.submission_time, ev.wall_time, ev.eval_duration, metrics, ev.robust_time,
            ev.work)


def _record_from_row(row: sqlite3.Row, evals: list[EvalRecord] | None) -> TrialRecord:
    kwargs: dict[str, Any] = {}
    for name in TRIAL_FIELDS:
        value = row[name]
        if name in TRIAL_JSON_COLUMNS:
            value = _loads(value)
        elif name in TRIAL_NAN_COLUMNS:
            value = _nan_if_null(value)
        kwargs[name] = value
    try:
        return TrialRecord(**kwargs, evals=evals or [], trial_id=row["id"], run_id=row["run_id"])
    except ValueError as exc:  # e.g. an outcome this laptime does not know
        raise StoreError(f"trial {row['id']} cannot be read: {exc}") from exc


def _eval_from_row(row: sqlite3.Row) -> EvalRecord:
    return EvalRecord(
        step=row["step"],
        submission_time=_nan_if_null(row["submission_time"]),
        wall_time=_nan_if_null(row["wall_time"]),
        metrics=json.loads(row["metrics_json"]),
        eval_duration=_nan_if_null(row["eval_duration"]),
        robust_time=row["robust_time"],
        work=row["work"],
    )


def _where(filters: dict[str, Any], prefix: str = "") -> tuple[str, list[Any]]:
    """``WHERE`` clause for trial filters; a filter may be one value or a list/tuple/set of them."""
    clauses: list[str] = []
    params: list[Any] = []
    for name in _FILTERS:
        value = filters.get(name)
        if value is None:
            continue
        values = list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value]
        if name == "outcome":
            try:
                values = [Outcome(v).value for v in values]
            except ValueError as exc:
                known = ", ".join(o.value for o in Outcome)
                raise StoreError(f"unknown outcome filter {value!r} (known: {known})") from exc
        if not values:
            clauses.append("0")
            continue
        marks = ", ".join("?" * len(values))
        clauses.append(f"{prefix}{name} IN ({marks})")
        params.extend(values)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host (a zombie counts as gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    except OSError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) is gone for our purpose
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except OSError:
        return True  # no /proc: trust kill()


@dataclasses.dataclass(frozen=True)
class Claim:
    """A row of the ``claims`` table: ``owner`` (a benchmark) is running the plan ``plan_key``."""

    plan_key: str
    owner: str
    host: str
    pid: int
    claimed_at: float
    heartbeat_at: float

    def stale(self, now: float, lease: float, host: str | None = None,
              alive: Any = None) -> str | None:
        """Why the claim may be taken over, or None while its owner is alive: its heartbeat is older
        than ``lease`` seconds, or its process is gone on this host (``host``, default this one)."""
        if now - self.heartbeat_at > lease:
            return f"its heartbeat is {now - self.heartbeat_at:.0f} s old (lease {lease:g} s)"
        if self.host == (host or socket.gethostname()) and not (alive or pid_alive)(self.pid):
            return f"its process {self.pid} on {self.host} is gone"
        return None


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


# --------------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------------


class ResultsStore:
    """Finished trials, their evals and the runs that produced them, in one SQLite file.

    ``path`` may be ``':memory:'`` (a private, throw-away database). The parent directory is
    created if needed, and a new file gets the current schema. Use as a context manager or call
    :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.memory = str(path) == ":memory:"
        self.path: str = ":memory:" if self.memory else str(pathlib.Path(path).expanduser())
        self._conn: sqlite3.Connection | None = None
        self._grouped = False  # inside transaction(): writes join it
        if not self.memory:
            target = pathlib.Path(self.path)
            if target.is_dir():
                raise StoreError(f"results store {self.path} is a directory, not a file")
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"cannot create the directory for results store {self.path}: {exc}"
                ) from exc
        try:
            # isolation_level=None: no implicit transactions; we BEGIN/COMMIT explicitly.
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open results store {self.path}: {exc}") from exc
        conn.row_factory = sqlite3.Row
        self._conn = conn
        try:
            self._setup()
        except BaseException:
            self.close()
            raise

    # ---- opening ------------------------------------------------------------------------------

    def _setup(self) -> None:
        conn = self._conn
        assert conn is not None
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            tables = self._tables()  # reads the header: fails here on a non-SQLite file
            if not tables:  # a new (or empty) file: make it ours
                self._use_wal()
                self._create_schema()
                tables = self._tables()
            self._check_version(tables)  # never modify a file before knowing it is ours
            self._use_wal()
        except sqlite3.DatabaseError as exc:
            if "not a database" in str(exc) or "malformed" in str(exc):
                raise StoreError(
                    f"{self.path} is not a laptime results database (not a readable SQLite file: "
                    f"{exc}); point laptime at another file (--db or $LAPTIME_DB)"
                ) from exc
            raise StoreError(f"cannot open results store {self.path}: {exc}") from exc

    def _use_wal(self) -> None:
        """Switch to WAL (persistent in the file; a no-op when already on or for ':memory:')."""
        if self.memory:
            return
        conn = self.conn
        # Changing the journal mode needs a lock that SQLite may refuse at once (SQLITE_BUSY, without
        # calling the busy handler) while another process creates or switches the same file: retry.
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
                if str(mode).lower() != "wal":
                    conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _tables(self) -> set[str]:
        assert self._conn is not None
        rows = self._conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
        return {r[0] for r in rows}

    def _create_schema(self) -> None:
        from laptime import __version__

        with self._write():
            # Another process may have created it between our check and our lock.
            if self._tables():
                return
            for stmt in DDL:
                self._conn.execute(stmt)  # type: ignore[union-attr]
            self._conn.executemany(  # type: ignore[union-attr]
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [("schema_version", str(SCHEMA_VERSION)), ("created_by", f"laptime {__version__}")],
            )

    def _check_version(self, tables: set[str]) -> None:
        assert self._conn is not None
        not_ours = f"{self.path} is not a laptime results database"
        if "meta" not in tables:
            listed = ", ".join(sorted(tables))
            raise StoreError(f"{not_ours} (it is an SQLite file with tables {listed} but no laptime "
                             "'meta' table); point laptime at another file (--db or $LAPTIME_DB)")
        try:
            row = self._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.OperationalError as exc:  # a 'meta' table of some other shape
            raise StoreError(f"{not_ours} (its 'meta' table is not laptime's: {exc})") from exc
        try:
            version = int(row[0]) if row is not None else None
        except (TypeError, ValueError):
            version = None
        if version is None:
            raise StoreError(f"{not_ours} (no valid schema_version in its 'meta' table)")
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"results store {self.path} has schema version {version}, but this laptime only "
                f"knows versions up to {SCHEMA_VERSION}: upgrade laptime (pip install -U laptime) "
                "to read it"
            )
        if version < 1 or not {"runs", "trials", "evals"} <= tables:
            listed = ", ".join(sorted(tables))
            raise StoreError(f"{not_ours} (schema version {version}, tables {listed})")
        if version < SCHEMA_VERSION:
            version = self._migrate(version)
        self.schema_version = version

    def _migrate(self, version: int) -> int:
        """Bring an older file up to :data:`SCHEMA_VERSION`, one version per transaction."""
        while version < SCHEMA_VERSION:
            with self._write() as conn:
                # another process may have migrated it between our read and our lock
                current = int(conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
                if current == version:
                    for stmt in MIGRATIONS[version]:
                        conn.execute(stmt)
                    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version + 1),))
                    current = version + 1
            version = current
        return version

    # ---- plumbing -------------------------------------------------------------------------------

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"results store {self.path} is closed")
        return self._conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: takes the write lock up front, commits or rolls back as a whole.

        Inside :meth:`transaction` it joins the open transaction instead of starting its own."""
        conn = self.conn
        if self._grouped:
            yield conn
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreError(f"cannot write to results store {self.path}: {exc}") from exc
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        else:
            conn.commit()

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction, so several SELECTs see one consistent snapshot."""
        conn = self.conn
        if conn.in_transaction:  # already inside one of ours
            yield conn
            return
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.rollback()  # nothing was written; just ends the snapshot

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else "open"
        return f"ResultsStore({self.path!r}, {state})"

    # ---- writing --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[ResultsStore]:
        """Group several writes into one transaction: all of them are stored, or none.

        ``with store.transaction(): run = store.start_run(...); store.add_trial(run, t); ...``
        — an exception inside the block rolls every write of the block back (ids handed out inside
        it are then void). Other connections see nothing of it until it commits. Not re-entrant.
        """
        if self._grouped:
            raise StoreError("a transaction is already open on this results store")
        with self._write():
            self._grouped = True
            try:
                yield self
            finally:
                self._grouped = False

    def start_run(self, command: str, meta: dict[str, Any] | None = None) -> int:
        """Record one CLI invocation; returns its id (pass it to :meth:`add_trial`)."""
        meta_json = _dumps(meta or {}, "run meta")
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO runs (created_at, command, meta_json) VALUES (?, ?, ?)",
                (_utc_now(), command, meta_json),
            )
        return int(cur.lastrowid)

    def update_run_meta(self, run_id: int, meta: dict[str, Any]) -> None:
        """Merge ``meta`` into a run's meta (e.g. the trial ids a benchmark ended with)."""
        with self._write() as conn:
            row = conn.execute("SELECT meta_json FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise StoreError(f"there is no run {run_id} in {self.path}")
            merged = {**json.loads(row["meta_json"]), **meta}
            conn.execute("UPDATE runs SET meta_json = ? WHERE id = ?", (_dumps(merged, "run meta"), run_id))

    def add_trial(self, run_id: int | None, trial: TrialRecord) -> int:
        """Store a finished trial and all its evals atomically; returns the new trial id.

        Sets ``trial.trial_id`` and ``trial.run_id`` once committed (a ``trial_id`` the record
        already had, e.g. from another store, is ignored: the trial gets a new id here). If
        anything fails, nothing of the trial is stored and :class:`StoreError` (or the original
        exception) propagates.
        """
        row = _trial_row(trial)  # fails early on bad hyperparameters etc.
        cols = ", ".join(("run_id", *TRIAL_FIELDS))
        marks = ", ".join("?" * (len(TRIAL_FIELDS) + 1))
        try:
            with self._write() as conn:
                cur = conn.execute(f"INSERT INTO trials ({cols}) VALUES ({marks})", [run_id, *row])
                trial_id = int(cur.lastrowid)
                conn.executemany(
                    "INSERT INTO evals (trial_id, idx, step, submission_time, wall_time, "
                    "eval_duration, metrics_json, robust_time, work) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (_eval_row(trial_id, i, ev) for i, ev in enumerate(trial.evals)),
                )
        except sqlite3.IntegrityError as exc:
            if run_id is not None and "FOREIGN KEY" in str(exc):
                raise StoreError(f"cannot store trial: there is no run {run_id} in {self.path}") from exc
            raise StoreError(f"cannot store trial: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"cannot store trial in {self.path}: {exc}") from exc
        trial.trial_id = trial_id
        trial.run_id = run_id
        return trial_id

    # ---- claims: which benchmark runs which plan now ------------------------------------------------

    def claim(self, plan_key: str, owner: str, *, lease: float, host: str | None = None, pid: int | None = None,
              now: float | None = None, alive: Any = None) -> Claim | None:
        """Claim ``plan_key`` for ``owner``, in one write transaction. Returns None when the claim is
        ``owner``'s now (it was free, already ``owner``'s, or stale and taken over: its heartbeat is
        older than ``lease`` seconds, or its process is gone on this host), else the live
        :class:`Claim` of the benchmark that holds it. ``host``/``pid`` default to this process's;
        ``now`` to ``time.time()``; ``alive(pid)`` to :func:`pid_alive` (tests)."""
        host = host or socket.gethostname()
        pid = os.getpid() if pid is None else pid
        with self._write() as conn:
            now = time.time() if now is None else now
            row = conn.execute("SELECT * FROM claims WHERE plan_key = ?", (plan_key,)).fetchone()
            if row is not None:
                held = Claim(**{k: row[k] for k in row.keys()})
                if held.owner == owner:
                    conn.execute("UPDATE claims SET heartbeat_at = ? WHERE plan_key = ?", (now, plan_key))
                    return None
                if held.stale(now, lease, alive=alive) is None:
                    return held
            conn.execute("INSERT OR REPLACE INTO claims (plan_key, owner, host, pid, claimed_at, heartbeat_at) "
                         "VALUES (?, ?, ?, ?, ?, ?)", (plan_key, owner, host, pid, now, now))
        return None

    def release(self, plan_key: str, owner: str) -> bool:
        """Drop ``owner``'s claim on ``plan_key`` (another owner's is left alone); whether there was one."""
        with self._write() as conn:
            cur = conn.execute("DELETE FROM claims WHERE plan_key = ? AND owner = ?", (plan_key, owner))
        return cur.rowcount > 0

    def heartbeat(self, owner: str, plan_keys: Iterable[str] | None = None, now: float | None = None) -> int:
        """Renew ``owner``'s claims (all of them, or those on ``plan_keys``); returns how many it still
        holds of those (a claim taken over meanwhile is not renewed)."""
        keys = None if plan_keys is None else list(plan_keys)
        if keys == []:
            return 0
        with self._write() as conn:
            now = time.time() if now is None else now
            if keys is None:
                cur = conn.execute("UPDATE claims SET heartbeat_at = ? WHERE owner = ?", (now, owner))
            else:
                marks = ", ".join("?" * len(keys))
                cur = conn.execute(f"UPDATE claims SET heartbeat_at = ? WHERE owner = ? AND plan_key IN ({marks})",
                                   (now, owner, *keys))
        return cur.rowcount

    def claims(self) -> list[Claim]:
        """Every claim, by plan key."""
        rows = self.conn.execute("SELECT * FROM claims ORDER BY plan_key").fetchall()
        return [Claim(**{k: r[k] for k in r.keys()}) for r in rows]

    # ---- reading --------------------------------------------------------------------------------

    def get_trial(self, trial_id: int, with_evals: bool = True) -> TrialRecord:
        """The trial with this id; :class:`StoreError` if there is none."""
        with self._read() as conn:
            row = conn.execute("SELECT * FROM trials WHERE id = ?", (trial_id,)).fetchone()
            if row is None:
                raise StoreError(f"no trial with id {trial_id} in {self.path}")
            evals = self.evals(trial_id) if with_evals else None
        return _record_from_row(row, evals)

    def trials(
        self,
        *,
        workload: str | Iterable[str] | None = None,
        variant: str | Iterable[str] | None = None,
        algorithm: str | Iterable[str] | None = None,
        run_id: int | Iterable[int] | None = None,
        outcome: Outcome | str | Iterable[Outcome | str] | None = None,
        plan_key: str | Iterable[str] | None = None,
        with_evals: bool = False,
    ) -> list[TrialRecord]:
        """Trials matching every given filter (a value, or a list of accepted values), by id."""
        filters = dict(workload=workload, variant=variant, algorithm=algorithm, run_id=run_id,
                       outcome=outcome, plan_key=plan_key)
        where, params = _where(filters, prefix="t.")
        with self._read() as conn:
            rows = conn.execute(f"SELECT t.* FROM trials t{where} ORDER BY t.id", params).fetchall()
            by_trial: dict[int, list[EvalRecord]] = {}
            if with_evals and rows:
                eval_rows = conn.execute(
                    f"SELECT e.* FROM evals e JOIN trials t ON e.trial_id = t.id{where} "
                    "ORDER BY e.trial_id, e.idx",
                    params,
                )
                for er in eval_rows:
                    by_trial.setdefault(er["trial_id"], []).append(_eval_from_row(er))
        return [_record_from_row(r, by_trial.get(r["id"], [])) for r in rows]

    def best_reference_cost(self, *, workload: str, variant: str, config: str, workload_version: str,
                            hardware_fingerprint: str) -> float | None:
        """The lowest reference cost (seconds of one speed-probe pass) stored for this workload on
        this hardware: the machine at its least disturbed, as far as this store has seen it. None
        when no such trial has one."""
        row = self.conn.execute(
            "SELECT MIN(reference_cost) FROM trials WHERE workload = ? AND variant = ? AND config = ? "
            "AND workload_version = ? AND hardware_fingerprint = ? AND reference_cost > 0",
            (workload, variant, config, workload_version, hardware_fingerprint),
        ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def reference_costs(self, *, workload: str, variant: str, config: str,
                        workload_version: str) -> dict[str, float]:
        """:meth:`best_reference_cost` for every hardware fingerprint that has one: ``{fingerprint:
        lowest cost}``. A parent hands it to a trial that runs elsewhere (another process, a Ray
        task, a Slurm job), which picks its own hardware's entry without opening the store."""
        rows = self.conn.execute(
            "SELECT hardware_fingerprint, MIN(reference_cost) FROM trials WHERE workload = ? AND variant = ? "
            "AND config = ? AND workload_version = ? AND reference_cost > 0 GROUP BY hardware_fingerprint",
            (workload, variant, config, workload_version),
        ).fetchall()
        return {str(fp): float(cost) for fp, cost in rows if cost is not None}

    def find_by_plan_key(self, plan_key: str) -> TrialRecord | None:
        """The latest stored (hence finished) trial with this plan key, evals included, or None.

        Whatever its outcome: the caller decides whether e.g. a failed trial should be re-run.
        """
        with self._read() as conn:
            row = conn.execute(
                "SELECT * FROM trials WHERE plan_key = ? ORDER BY id DESC LIMIT 1", (plan_key,)
            ).fetchone()
            if row is None:
                return None
            return _record_from_row(row, self.evals(row["id"]))

    def evals(self, trial_id: int) -> list[EvalRecord]:
        """The evals of a trial in order (empty if the trial has none or does not exist)."""
        rows = self.conn.execute(
            "SELECT * FROM evals WHERE trial_id = ? ORDER BY idx", (trial_id,)
        ).fetchall()
        return [_eval_from_row(r) for r in rows]

    def runs(self) -> list[dict[str, Any]]:
        """Every run by id: ``{'id', 'created_at', 'command', 'meta', 'n_trials'}``."""
        rows = self.conn.execute(
            "SELECT r.id, r.created_at, r.command, r.meta_json, "
            "(SELECT COUNT(*) FROM trials t WHERE t.run_id = r.id) AS n_trials "
            "FROM runs r ORDER BY r.id"
        ).fetchall()
        return [
            {"id": r["id"], "created_at": r["created_at"], "command": r["command"],
             "meta": json.loads(r["meta_json"]), "n_trials": r["n_trials"]}
            for r in rows
        ]

    # ---- tabular export -------------------------------------------------------------------------

    def _table_rows(self, table: str, filters: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
        """Columns and rows of the flat ``trials``/``evals`` tables (JSON columns left as text)."""
        if table not in _TABLES:
            raise StoreError(f"unknown table {table!r}: expected one of {', '.join(_TABLES)}")
        where, params = _where(filters, prefix="t.")
        with self._read() as conn:
            if table == "trials":
                cursor = conn.execute(f"SELECT t.* FROM trials t{where} ORDER BY t.id", params)
                rows = []
                for r in cursor:
                    out: dict[str, Any] = {"trial_id": r["id"], "run_id": r["run_id"]}
                    for name in TRIAL_FIELDS:
                        out[name] = _nan_if_null(r[name]) if name in TRIAL_NAN_COLUMNS else r[name]
                    rows.append(out)
                return list(TRIAL_EXPORT_COLUMNS), rows
            cursor = conn.execute(
                f"SELECT e.* FROM evals e JOIN trials t ON e.trial_id = t.id{where} "
                "ORDER BY e.trial_id, e.idx",
                params,
            )
            rows = []
            metric_cols: dict[str, str] = {}  # metric name -> column name
            for r in cursor:
                out = {name: (_nan_if_null(r[name]) if name in EVAL_NAN_COLUMNS else r[name])
                       for name in EVAL_FIELDS}
                for metric, value in json.loads(r["metrics_json"]).items():
                    col = metric_cols.get(metric)
                    if col is None:
                        # A metric named like a fixed column ('step', ...) must not overwrite it.
                        col = f"metric.{metric}" if metric in EVAL_FIELDS else metric
                        metric_cols[metric] = col
                    out[col] = value
                rows.append(out)
            return [*EVAL_FIELDS, *sorted(metric_cols.values())], rows

    def to_pandas(self, table: str = "trials", **filters: Any):
        """``trials`` or ``evals`` as a DataFrame (same columns as :meth:`export_csv`).

        In ``trials``, ``hyperparameters``/``hardware``/``versions`` are decoded to dicts and
        ``outcome`` is the outcome string. In ``evals`` each metric is a column (NaN where an eval
        lacks it). Keyword filters are those of :meth:`trials` (evals: of their trial).
        """
        try:
            import pandas as pd
        except ImportError as exc:
            raise StoreError("pandas is needed for ResultsStore.to_pandas: pip install pandas") from exc
        columns, rows = self._table_rows(table, filters)
        if table == "trials":
            for row in rows:
                for name in TRIAL_JSON_COLUMNS:
                    row[name] = _loads(row[name])
        return pd.DataFrame.from_records(rows, columns=columns)

    def export_csv(self, path: str | os.PathLike[str], table: str = "trials", **filters: Any) -> int:
        """Write ``trials`` or ``evals`` to a CSV file atomically; returns the number of rows.

        ``trials``: ``trial_id, run_id`` and every TrialRecord field except ``evals``, JSON fields
        as JSON text. ``evals``: ``trial_id, idx, step, submission_time, wall_time,
        eval_duration`` and then one column per metric name (union over rows, sorted; empty where
        an eval lacks it). Non-finite floats are written as ``nan``/``inf``/``-inf``. The file is
        written next to ``path`` and moved into place, so readers never see half a file.
        """
        columns, rows = self._table_rows(table, filters)
        with atomic_write(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns, restval="", extrasaction="raise")
            writer.writeheader()
            writer.writerows(rows)
        return len(rows)

    def export_parquet(self, path: str | os.PathLike[str], table: str = "trials", **filters: Any) -> int:
        """Write ``trials`` or ``evals`` to a Parquet file atomically (pandas + pyarrow); returns the
        number of rows.

        The columns are those of :meth:`export_csv`, typed: integer columns as nullable integers,
        ``None`` (target not reached, not measured) as null, NaN as NaN; ``hyperparameters``,
        ``hardware``, ``versions`` and ``measurement`` as JSON text, as in the CSV (their keys differ
        from trial to trial). Readers never see half a file.
        """
        pd = _pandas_and_pyarrow()
        columns, rows = self._table_rows(table, filters)
        frame = _typed_frame(pd.DataFrame.from_records(rows, columns=columns), table)
        with atomic_write(path, "wb") as fh:
            frame.to_parquet(fh, engine="pyarrow", index=False)
        return len(frame)

    # ---- notebooks ------------------------------------------------------------------------------

    def runs_frame(self):
        """Every run as a DataFrame, one row per run: ``run_id, created_at, command, kind, suite,
        ruleset, algorithms, n_trials`` (trials stored by that run), ``trials`` (the trials it
        scored: stored and reused) and ``meta`` (the whole meta dict)."""
        pd = _pandas("ResultsStore.runs_frame")
        rows = []
        for run in self.runs():
            meta = run["meta"]
            rows.append({"run_id": run["id"], "created_at": run["created_at"], "command": run["command"],
                         "kind": meta.get("kind", "run"), "suite": meta.get("suite"),
                         "ruleset": meta.get("ruleset"), "algorithms": meta.get("algorithms"),
                         "n_trials": run["n_trials"],
                         "trials": len(meta["trial_ids"]) if "trial_ids" in meta else run["n_trials"],
                         "meta": meta})
        columns = ["run_id", "created_at", "command", "kind", "suite", "ruleset", "algorithms", "n_trials",
                   "trials", "meta"]
        return pd.DataFrame.from_records(rows, columns=columns)

    def run(self, run_id: int | None = None):
        """A stored run as a :class:`~laptime.results.runs.StoredRun` (trials, frames, score, and a
        table in a notebook). ``None``: the latest benchmark or import (the latest run if none)."""
        from laptime.results.runs import StoredRun

        runs = self.runs()
        if run_id is None:
            if not runs:
                raise StoreError(f"no runs in {self.path}")
            scored = [r for r in runs if "trial_ids" in r["meta"]]
            run = (scored or runs)[-1]
        else:
            found = [r for r in runs if r["id"] == run_id]
            if not found:
                raise StoreError(f"there is no run {run_id} in {self.path}")
            run = found[0]
        if "trial_ids" in run["meta"]:
            trials = [self.get_trial(int(i)) for i in run["meta"]["trial_ids"]]
        else:
            trials = self.trials(run_id=run["id"], with_evals=True)
        return StoredRun(run_id=run["id"], created_at=run["created_at"], command=run["command"], meta=run["meta"],
                         trials=trials, path=str(self.path))


#: Per table: integer columns (nullable in pandas: ``Int64``) and float columns where ``None`` means
#: "not reached / not measured" (null, ``Float64``), not NaN.
_INT_COLUMNS = {"trials": frozenset({"trial_id", "run_id", "seed", "steps_to_target", "steps", "study",
                                     "trial_index", "budget_steps"}),
                "evals": frozenset({"trial_id", "idx", "step"})}
_OPTIONAL_FLOAT_COLUMNS = {"trials": frozenset({"time_to_target", "robust_time_to_target", "robust_submission_time",
                                                "work_to_target", "reference_cost", "cpu_time"}),
                           "evals": frozenset({"robust_time", "work"})}
_NAN_COLUMNS = {"trials": TRIAL_NAN_COLUMNS | {"target_value"}, "evals": EVAL_NAN_COLUMNS}


def _pandas(what: str):
    try:
        import pandas as pd
    except ImportError as exc:
        raise StoreError(f'pandas is needed for {what}: pip install "laptime[pandas]"') from exc
    return pd


def _pandas_and_pyarrow():
    try:
        import pandas as pd
        import pyarrow  # noqa: F401
    except ImportError as exc:
        raise StoreError(f"Parquet export needs pandas and pyarrow ({exc.name or 'one of them'} is not installed): "
                         'pip install "laptime[parquet]"') from None
    return pd


def _typed_frame(frame, table: str):
    """The flat table with typed columns (see :meth:`ResultsStore.export_parquet`); metric
    columns (evals) stay as they are."""
    for name in frame.columns:
        if name in _INT_COLUMNS[table]:
            frame[name] = frame[name].astype("Int64")
        elif name in _OPTIONAL_FLOAT_COLUMNS[table]:
            frame[name] = frame[name].astype("Float64")
        elif name in _NAN_COLUMNS[table]:
            frame[name] = frame[name].astype("float64")
    return frame
