"""The SQLite schema of the results store (version :data:`SCHEMA_VERSION`).

Five tables::

    meta(key TEXT PRIMARY KEY, value TEXT)           -- 'schema_version', 'created_by'
    runs(id, created_at, command, meta_json)         -- one row per CLI invocation
    trials(id, run_id -> runs.id, <one column per TrialRecord field>)
    evals(id, trial_id -> trials.id ON DELETE CASCADE, idx, step,
          submission_time, wall_time, eval_duration, metrics_json, robust_time, work)
    claims(plan_key PRIMARY KEY, owner, host, pid, claimed_at, heartbeat_at)
                                                     -- plans being run now, by which benchmark

``trials`` has one column per :class:`~laptime.records.TrialRecord` field (except ``evals``,
``trial_id`` and ``run_id``, which are the ``evals`` table, ``trials.id`` and ``trials.run_id``),
named like the field. ``hyperparameters``, ``hardware`` and ``versions`` hold JSON text;
``outcome`` holds the :class:`~laptime.records.Outcome` value (``'reached'``, ...).

SQLite stores a NaN ``REAL`` as ``NULL``, so the float columns that are never ``None`` in a record
(:data:`TRIAL_NAN_COLUMNS`, :data:`EVAL_NAN_COLUMNS`) are nullable and ``NULL`` reads back as NaN.
Infinities are stored as they are. Inside JSON text (hyperparameters, metrics, ...) non-finite
floats are written as Python's ``json`` writes them (``NaN``, ``Infinity``, ``-Infinity``) and read
back by Python's ``json`` unchanged.

Changing anything here means bumping :data:`SCHEMA_VERSION` and adding the statements that bring
the previous version up to date to :data:`MIGRATIONS` (the store runs them when it opens an older
file). Version 2 added step-budget mode, the robust time and the measurement conditions; version 3
the ``claims`` table (a plan a benchmark is running, so that another benchmark on the same file waits
for it instead of running it too; see :meth:`laptime.results.ResultsStore.claim`). ``claimed_at``
and ``heartbeat_at`` are Unix seconds (``time.time()``), compared across hosts: their clocks are
assumed to agree to well within a claim's lease (NTP).
"""

from __future__ import annotations

SCHEMA_VERSION = 3

#: ``(column, SQL type)`` of ``trials`` after ``id`` and ``run_id``, in TrialRecord field order.
TRIAL_COLUMNS: tuple[tuple[str, str], ...] = (
    ("workload", "TEXT NOT NULL"),
    ("variant", "TEXT NOT NULL"),
    ("config", "TEXT NOT NULL"),
    ("workload_version", "TEXT NOT NULL"),
    ("dataset", "TEXT NOT NULL"),
    ("algorithm", "TEXT NOT NULL"),
    ("algorithm_hash", "TEXT NOT NULL"),
    ("hyperparameters", "TEXT NOT NULL"),  # JSON
    ("seed", "INTEGER NOT NULL"),
    ("device", "TEXT NOT NULL"),
    ("hardware_fingerprint", "TEXT NOT NULL"),
    ("hardware", "TEXT NOT NULL"),  # JSON
    ("versions", "TEXT NOT NULL"),  # JSON
    ("target_metric", "TEXT NOT NULL"),
    ("target_direction", "TEXT NOT NULL"),
    ("target_value", "REAL"),  # NULL = NaN
    ("budget_sec", "REAL"),  # NULL = NaN
    ("outcome", "TEXT NOT NULL"),
    ("time_to_target", "REAL"),  # NULL = not reached (None)
    ("steps_to_target", "INTEGER"),  # NULL = not reached (None)
    ("submission_time", "REAL"),  # NULL = NaN
    ("steps", "INTEGER NOT NULL"),
    ("wall_time", "REAL"),  # NULL = NaN
    ("started_at", "TEXT NOT NULL"),
    ("finished_at", "TEXT NOT NULL"),
    ("error", "TEXT"),
    ("ruleset", "TEXT"),
    ("study", "INTEGER"),
    ("trial_index", "INTEGER"),
    ("plan_key", "TEXT"),
)

#: Columns version 2 added to ``trials``: step-budget mode, the robust time, the measurement conditions.
TRIAL_COLUMNS_V2: tuple[tuple[str, str], ...] = (
    ("budget_mode", "TEXT NOT NULL DEFAULT 'time'"),
    ("budget_steps", "INTEGER"),
    ("robust_time_to_target", "REAL"),  # NULL = not reached or not measured
    ("robust_submission_time", "REAL"),
    ("work_to_target", "REAL"),
    ("reference_cost", "REAL"),
    ("cpu_time", "REAL"),
    ("measurement", "TEXT NOT NULL DEFAULT '{}'"),  # JSON: contention, probes, threads, notes
)
TRIAL_COLUMNS = TRIAL_COLUMNS + TRIAL_COLUMNS_V2

TRIAL_FIELDS: tuple[str, ...] = tuple(name for name, _ in TRIAL_COLUMNS)
TRIAL_JSON_COLUMNS: frozenset[str] = frozenset({"hyperparameters", "hardware", "versions", "measurement"})
TRIAL_NAN_COLUMNS: frozenset[str] = frozenset(
    {"target_value", "budget_sec", "submission_time", "wall_time"}
)

#: Scalar columns of ``evals`` (besides ``id`` and ``metrics_json``), in export order.
EVAL_FIELDS: tuple[str, ...] = (
    "trial_id",
    "idx",
    "step",
    "submission_time",
    "wall_time",
    "eval_duration",
    "robust_time",
    "work",
)
EVAL_NAN_COLUMNS: frozenset[str] = frozenset({"submission_time", "wall_time", "eval_duration"})

#: The ``claims`` table (version 3): one row per plan a benchmark is running now. ``owner`` names the
#: benchmark (host, pid and a random part), ``host``/``pid`` its process, so that a claim whose process
#: is gone can be taken over at once on the same host; ``heartbeat_at`` is renewed while the plan runs.
CLAIMS_DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS claims (
    plan_key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    claimed_at REAL NOT NULL,
    heartbeat_at REAL NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS claims_by_owner ON claims (owner)",
)

_trial_cols_sql = ",\n    ".join(f"{name} {sqltype}" for name, sqltype in TRIAL_COLUMNS)

#: Statements that create an empty database of the current version (run inside one transaction).
DDL: tuple[str, ...] = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    created_at TEXT NOT NULL,
    command TEXT NOT NULL,
    meta_json TEXT NOT NULL DEFAULT '{}'
)""",
    f"""CREATE TABLE IF NOT EXISTS trials (
    id INTEGER PRIMARY KEY,
    run_id INTEGER REFERENCES runs(id),
    {_trial_cols_sql}
)""",
    """CREATE TABLE IF NOT EXISTS evals (
    id INTEGER PRIMARY KEY,
    trial_id INTEGER NOT NULL REFERENCES trials(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    step INTEGER NOT NULL,
    submission_time REAL,
    wall_time REAL,
    eval_duration REAL,
    metrics_json TEXT NOT NULL,
    robust_time REAL,
    work REAL,
    UNIQUE (trial_id, idx)
)""",
    # evals by trial_id: served by the UNIQUE (trial_id, idx) index.
    "CREATE INDEX IF NOT EXISTS trials_by_workload ON trials (workload, variant, algorithm)",
    "CREATE INDEX IF NOT EXISTS trials_by_algorithm ON trials (algorithm)",
    "CREATE INDEX IF NOT EXISTS trials_by_plan_key ON trials (plan_key)",
    "CREATE INDEX IF NOT EXISTS trials_by_run ON trials (run_id)",
    *CLAIMS_DDL,
)

#: ``MIGRATIONS[v]``: the statements that turn a version-``v`` database into version ``v + 1``
#: (run inside one transaction, with ``meta.schema_version`` updated in the same transaction).
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: tuple(f"ALTER TABLE trials ADD COLUMN {name} {sqltype}" for name, sqltype in TRIAL_COLUMNS_V2)
    + ("ALTER TABLE evals ADD COLUMN robust_time REAL", "ALTER TABLE evals ADD COLUMN work REAL"),
    2: CLAIMS_DDL,
}
