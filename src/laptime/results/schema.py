"""The SQLite schema of the results store (version :data:`SCHEMA_VERSION`).

Four tables::

    meta(key TEXT PRIMARY KEY, value TEXT)           -- 'schema_version', 'created_by'
    runs(id, created_at, command, meta_json)         -- one row per CLI invocation
    trials(id, run_id -> runs.id, <one column per TrialRecord field>)
    evals(id, trial_id -> trials.id ON DELETE CASCADE, idx, step,
          submission_time, wall_time, eval_duration, metrics_json)

``trials`` has one column per :class:`~laptime.records.TrialRecord` field (except ``evals``,
``trial_id`` and ``run_id``, which are the ``evals`` table, ``trials.id`` and ``trials.run_id``),
named like the field. ``hyperparameters``, ``hardware`` and ``versions`` hold JSON text;
``outcome`` holds the :class:`~laptime.records.Outcome` value (``'reached'``, ...).

SQLite stores a NaN ``REAL`` as ``NULL``, so the float columns that are never ``None`` in a record
(:data:`TRIAL_NAN_COLUMNS`, :data:`EVAL_NAN_COLUMNS`) are nullable and ``NULL`` reads back as NaN.
Infinities are stored as they are. Inside JSON text (hyperparameters, metrics, ...) non-finite
floats are written as Python's ``json`` writes them (``NaN``, ``Infinity``, ``-Infinity``) and read
back by Python's ``json`` unchanged.

Changing anything here means bumping :data:`SCHEMA_VERSION` (and teaching the store to migrate).
"""

from __future__ import annotations

SCHEMA_VERSION = 1

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

TRIAL_FIELDS: tuple[str, ...] = tuple(name for name, _ in TRIAL_COLUMNS)
TRIAL_JSON_COLUMNS: frozenset[str] = frozenset({"hyperparameters", "hardware", "versions"})
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
)
EVAL_NAN_COLUMNS: frozenset[str] = frozenset({"submission_time", "wall_time", "eval_duration"})

_trial_cols_sql = ",\n    ".join(f"{name} {sqltype}" for name, sqltype in TRIAL_COLUMNS)

#: Statements that create an empty version-1 database (run inside one transaction).
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
    UNIQUE (trial_id, idx)
)""",
    # evals by trial_id: served by the UNIQUE (trial_id, idx) index.
    "CREATE INDEX IF NOT EXISTS trials_by_workload ON trials (workload, variant, algorithm)",
    "CREATE INDEX IF NOT EXISTS trials_by_algorithm ON trials (algorithm)",
    "CREATE INDEX IF NOT EXISTS trials_by_plan_key ON trials (plan_key)",
    "CREATE INDEX IF NOT EXISTS trials_by_run ON trials (run_id)",
)
