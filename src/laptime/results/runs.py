"""A stored run (one ``laptime run``, ``bench`` or ``import``) as an object for notebooks.

>>> from laptime.results import ResultsStore
>>> with ResultsStore("results.sqlite") as store:          # doctest: +SKIP
...     run = store.run()                                   # the latest benchmark
>>> run                                                     # in Jupyter: a table per workload × algorithm
>>> run.to_pandas("evals")                                  # eval histories, one row per eval
>>> run.score()                                             # the leaderboard (a ScoreReport, also a table)

No torch here; frames need pandas.
"""

from __future__ import annotations

import dataclasses
import math
from html import escape
from typing import Any

from laptime.records import Outcome, TrialRecord
from laptime.results.schema import EVAL_FIELDS, TRIAL_FIELDS

__all__ = ["StoredRun"]

#: Columns of ``StoredRun.to_pandas("summary")``.
SUMMARY_COLUMNS = ("workload", "algorithm", "trials", "reached", "best_time_to_target",
                   "best_robust_time_to_target", "best_steps_to_target")

#: The trial's identity copied onto each row of ``StoredRun.to_pandas("evals")``.
_EVAL_IDENTITY = ("workload", "variant", "config", "algorithm", "study", "trial_index", "seed")


def _workload_key(record: TrialRecord) -> str:
    return f"{record.workload}/{record.variant}@{record.config}"


def _best(values: list[float | int | None]) -> float | None:
    found = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return min(found) if found else None


@dataclasses.dataclass
class StoredRun:
    """One run of the results store with its trials (evals included); see :meth:`ResultsStore.run`.

    ``trials``: for a benchmark or an import, the trials it scored (those it reused from earlier
    runs included), else the trials the run stored.
    """

    run_id: int
    created_at: str
    command: str
    meta: dict[str, Any]
    trials: list[TrialRecord]
    path: str = ""

    @property
    def kind(self) -> str:
        return str(self.meta.get("kind", "run"))

    def __len__(self) -> int:
        return len(self.trials)

    def __repr__(self) -> str:
        return (f"<StoredRun {self.run_id} ({self.kind}, {len(self.trials)} trials, {self.created_at}): "
                f"{self.command}>")

    # ---- tables ---------------------------------------------------------------------------------

    def summary(self) -> list[dict[str, Any]]:
        """One row per (workload, algorithm): trials, how many reached the target, and the best raw
        time, robust time and steps to target among those that did (``None`` if none did)."""
        groups: dict[tuple[str, str], list[TrialRecord]] = {}
        for r in self.trials:
            groups.setdefault((_workload_key(r), r.algorithm), []).append(r)
        rows = []
        for (workload, algorithm), records in sorted(groups.items()):
            reached = [r for r in records if Outcome(r.outcome) is Outcome.REACHED]
            rows.append({
                "workload": workload, "algorithm": algorithm, "trials": len(records), "reached": len(reached),
                "best_time_to_target": _best([r.time_to_target for r in reached]),
                "best_robust_time_to_target": _best([r.robust_time_to_target for r in reached]),
                "best_steps_to_target": _best([r.steps_to_target for r in reached]),
            })
        return rows

    def to_pandas(self, table: str = "trials"):
        """A DataFrame of the run's ``trials`` (the columns of :meth:`ResultsStore.to_pandas`:
        ``trial_id, run_id`` and every stored field, JSON fields as dicts), ``evals`` (the store's eval
        columns, the trial's workload, variant, config, algorithm, study, trial_index and seed, then one
        column per metric) or ``summary`` (:meth:`summary`)."""
        try:
            import pandas as pd
        except ImportError as exc:
            from laptime.results.store import StoreError

            raise StoreError('pandas is needed for StoredRun.to_pandas: pip install "laptime[pandas]"') from exc
        if table == "trials":
            rows = []
            for r in self.trials:
                row: dict[str, Any] = {"trial_id": r.trial_id, "run_id": r.run_id}
                for name in TRIAL_FIELDS:
                    value = getattr(r, name)
                    row[name] = value.value if isinstance(value, Outcome) else value
                rows.append(row)
            return pd.DataFrame.from_records(rows, columns=["trial_id", "run_id", *TRIAL_FIELDS])
        if table == "evals":
            fixed = [*EVAL_FIELDS[:1], *_EVAL_IDENTITY, *EVAL_FIELDS[1:]]
            metric_cols: dict[str, str] = {}
            rows = []
            for r in self.trials:
                for idx, ev in enumerate(r.evals):
                    row = {"trial_id": r.trial_id, "idx": idx, "step": ev.step,
                           "submission_time": ev.submission_time, "wall_time": ev.wall_time,
                           "eval_duration": ev.eval_duration, "robust_time": ev.robust_time, "work": ev.work}
                    row.update({name: getattr(r, name) for name in _EVAL_IDENTITY})
                    for metric, value in ev.metrics.items():
                        col = metric_cols.setdefault(metric, f"metric.{metric}" if metric in fixed else metric)
                        row[col] = value
                    rows.append(row)
            return pd.DataFrame.from_records(rows, columns=[*fixed, *sorted(metric_cols.values())])
        if table == "summary":
            return pd.DataFrame.from_records(self.summary(), columns=list(SUMMARY_COLUMNS))
        from laptime.results.store import StoreError

        raise StoreError(f"unknown table {table!r}: expected trials, evals or summary")

    # ---- scoring --------------------------------------------------------------------------------

    def score(self, column: str | None = None, **kwargs: Any):
        """Score the run's trials (:func:`laptime.scoring.score_records`); ``column`` defaults to
        what the benchmark scored (else the robust time with step budgets, the raw time with time
        budgets). Returns a :class:`~laptime.scoring.ScoreReport`."""
        from laptime.scoring import score_records

        if column is None:
            column = self.meta.get("score_column") or (
                "robust_time_to_target" if self.trials and all(r.budget_mode == "steps" for r in self.trials)
                else "time_to_target")
        return score_records(self.trials, column=column, **kwargs)

    # ---- notebooks ------------------------------------------------------------------------------

    def _repr_html_(self) -> str:
        """A header line and one table row per (workload, algorithm) (Jupyter shows it)."""
        outcomes: dict[str, int] = {}
        for r in self.trials:
            outcomes[Outcome(r.outcome).value] = outcomes.get(Outcome(r.outcome).value, 0) + 1
        counts = ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items())) or "no trials"
        head = (f"<p><b>laptime {escape(self.kind)} {self.run_id}</b> · {escape(self.created_at)} · "
                f"{len(self.trials)} trials ({escape(counts)})<br><code>{escape(self.command)}</code></p>")

        def fmt(value: Any, unit: str) -> str:
            if value is None:
                return "—"
            return f"{value:.0f}" if unit == "steps" else f"{value:.2f}"

        names = ["workload", "algorithm", "trials", "reached", "best time to target (s)",
                 "best robust time (s)", "best steps to target"]
        body = "".join(
            "<tr>" + "".join(f"<td>{c}</td>" for c in (
                escape(row["workload"]), f"<b>{escape(row['algorithm'])}</b>", row["trials"], row["reached"],
                fmt(row["best_time_to_target"], "s"), fmt(row["best_robust_time_to_target"], "s"),
                fmt(row["best_steps_to_target"], "steps"))) + "</tr>"
            for row in self.summary())
        return (head + '<table class="laptime-run"><thead><tr>' + "".join(f"<th>{escape(n)}</th>" for n in names)
                + "</tr></thead><tbody>" + body + "</tbody></table>")
