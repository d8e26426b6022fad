"""What a benchmark returns: its stored run, its leaderboard, and the ways to look at them. No torch."""

from __future__ import annotations

import dataclasses
from html import escape
from pathlib import Path
from typing import Any

from laptime.records import TrialRecord
from laptime.results.runs import StoredRun

__all__ = ["BenchmarkResult"]


@dataclasses.dataclass
class BenchmarkResult:
    """One benchmark's outcome (:func:`laptime.bench`).

    ``run``: the stored run (:class:`~laptime.results.StoredRun`: its trials with their evals,
    ``to_pandas``, ``summary``); ``score``: the leaderboard (:class:`~laptime.scoring.ScoreReport`:
    scores, ranks, times per workload, bootstrap intervals); ``db``: the results file;
    ``budget_mode``, ``column`` (what the leaderboard scores), ``executor``, ``devices``,
    ``threads`` (the thread choice, as stored in the run's meta); ``warning``: one line when trials
    ran on a busy machine (:func:`~laptime.benchmark.contention_warning`); ``report_paths``: the
    HTML and markdown files when the benchmark wrote its report (``out=``), else None;
    ``checkpoints``: files written, their wall seconds, the largest, resumes, files left (None when
    the benchmark did not checkpoint its trials); ``pruning``: the benchmark's pruning policy
    (``{"mode": "none"}`` when it did not prune); :attr:`tuning_cost`: what the trials cost and what
    pruning saved.
    """

    run: StoredRun
    score: Any  # laptime.scoring.ScoreReport
    db: Path
    budget_mode: str
    column: str
    executor: str
    devices: list[str]
    threads: dict[str, Any]
    title: str
    warning: str | None = None
    report_paths: tuple[Path, Path] | None = None
    #: What checkpointing the trials cost (:func:`laptime.benchmark.core.checkpoint_summary`), None without.
    checkpoints: dict[str, Any] | None = None
    pruning: dict[str, Any] | None = None

    # ---- the numbers ------------------------------------------------------------------------------

    @property
    def run_id(self) -> int:
        return self.run.run_id

    @property
    def trials(self) -> list[TrialRecord]:
        """Every trial the leaderboard scores (those reused from earlier runs included), evals included."""
        return self.run.trials

    @property
    def algorithms(self) -> list[str]:
        """The algorithms, best first."""
        return list(self.score.algorithms)

    @property
    def scores(self) -> dict[str, float]:
        """Benchmark score per algorithm (area under its performance profile, 0…1)."""
        return dict(self.score.scores)

    @property
    def ranks(self) -> dict[str, int]:
        return dict(self.score.ranks)

    @property
    def intervals(self) -> dict[str, tuple[float, float]] | None:
        """The score's bootstrap confidence interval per algorithm (None without a bootstrap)."""
        boot = self.score.bootstrap
        return None if boot is None else {a: tuple(boot.score_ci[a]) for a in self.score.algorithms}

    @property
    def times(self) -> dict[str, dict[str, float]]:
        """``times[algorithm][workload]``: the scored time (seconds, or steps when scored on steps;
        ``inf`` = the target was missed)."""
        return {a: dict(self.score.times[a]) for a in self.score.algorithms}

    @property
    def outcomes(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.trials:
            counts[r.outcome.value] = counts.get(r.outcome.value, 0) + 1
        return dict(sorted(counts.items()))

    @property
    def tuning_cost(self) -> dict[str, Any]:
        """Steps and trial-seconds spent per algorithm and workload, and for pruned trials the rest of
        their budget (an upper bound on what pruning saved): :func:`laptime.tuning.pruning.tuning_cost`."""
        from laptime.tuning.pruning import tuning_cost

        return tuning_cost(self.trials)

    @property
    def contaminated(self) -> int:
        """How many trials ran on a busy machine."""
        return sum(r.contaminated for r in self.trials)

    # ---- tables -----------------------------------------------------------------------------------

    def to_pandas(self, table: str = "leaderboard", values: str = "times"):
        """A DataFrame: ``leaderboard`` (one row per algorithm: rank, score, its interval, one column
        per workload holding ``values``: times, ratios or speedups; :meth:`ScoreReport.to_pandas`),
        or the run's ``trials``, ``evals`` or ``summary`` (:meth:`StoredRun.to_pandas`). Needs pandas."""
        if table == "leaderboard":
            return self.score.to_pandas(values)
        return self.run.to_pandas(table)

    def to_dict(self) -> dict[str, Any]:
        """The leaderboard (:meth:`ScoreReport.to_dict`) with the run's facts: JSON-ready."""
        out = self.score.to_dict()
        out.update(db=str(self.db), run_id=self.run_id, trials=len(self.trials), budget_mode=self.budget_mode,
                   executor=self.executor, contaminated=self.contaminated, warning=self.warning,
                   outcomes=self.outcomes, checkpoints=self.checkpoints, pruning_policy=self.pruning,
                   tuning_cost=self.tuning_cost["total"])
        if self.report_paths is not None:
            out.update(report=str(self.report_paths[0]), markdown=str(self.report_paths[1]))
        return out

    def report(self, path: str | Path = "laptime-report") -> tuple[Path, Path]:
        """Write the HTML report and its markdown table into the folder ``path``; their paths."""
        from laptime.benchmark.core import write_report

        self.report_paths = write_report(self.trials, self.score, Path(path), self.title)
        return self.report_paths

    # ---- notebooks ----------------------------------------------------------------------------------

    def __repr__(self) -> str:
        best = ", ".join(f"{a} {self.score.scores[a]:.3f}" for a in self.score.algorithms[:3])
        return (f"<BenchmarkResult run {self.run_id}: {len(self.trials)} trials, {self.executor} executor, "
                f"scored on {self.column}: {best}>")

    def _repr_html_(self) -> str:
        """The leaderboard, then the run's table per workload × algorithm (Jupyter shows both)."""
        note = f"<p>{escape(self.warning)}</p>" if self.warning else ""
        facts = (f"<p>{len(self.trials)} trials · {escape(self.budget_mode)} budgets · "
                 f"{escape(self.executor)} executor on {escape(', '.join(self.devices))} · "
                 f"{self.threads.get('threads', '?')} thread(s) per trial · <code>{escape(str(self.db))}</code></p>")
        return self.score._repr_html_() + facts + note + self.run._repr_html_()
