"""The report object: trial records + their score, rendered as HTML or Markdown.

:func:`build_report` scores the records (unless a :class:`~laptime.scoring.ScoreReport` is given)
and returns a :class:`Report`; :meth:`Report.to_html` / :meth:`Report.to_markdown` render it
(see :mod:`laptime.report.html` and :mod:`laptime.report.markdown`).  Writing is atomic.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from laptime.atomic import atomic_write
from laptime.records import TrialRecord
from laptime.scoring import ScoreReport, check_comparable, score_records
from laptime.errors import LaptimeError

__all__ = ["Report", "ReportError", "build_report"]


class ReportError(LaptimeError, ValueError):
    """Nothing to report (no trials and no score), or bad arguments."""


@dataclasses.dataclass
class Report:
    """A benchmark report: the trials, their score, a title and when it was generated.

    ``records`` may be empty when ``score`` came from elsewhere (e.g. a times CSV): the page then
    has the leaderboard and the profiles but no curves, trial table or hardware.  ``problems`` are
    the comparability problems :func:`~laptime.scoring.check_comparable` found (shown as a
    warning; only possible when the report was built with ``force=True`` or from a given score).
    """

    records: list[TrialRecord]
    score: ScoreReport
    title: str = "laptime benchmark"
    generated_at: _dt.datetime = dataclasses.field(
        default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    )
    problems: list[str] = dataclasses.field(default_factory=list)

    def to_html(self) -> str:
        """One self-contained HTML document (inline CSS and SVG; no scripts, no external loads)."""
        from laptime.report.html import render_html

        return render_html(self)

    def to_markdown(self) -> str:
        """A GitHub-flavoured Markdown leaderboard with per-workload times."""
        from laptime.report.markdown import render_markdown

        return render_markdown(self)

    def write_html(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_html` to ``path`` atomically; returns the path."""
        return _write_atomic(path, self.to_html())

    def write_markdown(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_markdown` to ``path`` atomically; returns the path."""
        return _write_atomic(path, self.to_markdown())


def build_report(
    records: Iterable[TrialRecord],
    score: ScoreReport | None = None,
    *,
    title: str = "laptime benchmark",
    tau_max: float = 4.0,
    n_bootstrap: int = 1000,
    seed: int = 0,
    force: bool = False,
    baseline: str | None = None,
    variants: Any = "auto",
    generated_at: _dt.datetime | None = None,
) -> Report:
    """Build a :class:`Report` from trial records.

    If ``score`` is ``None`` it is computed with :func:`laptime.scoring.score_records` (``force``,
    ``tau_max``, ``n_bootstrap``, ``seed``, ``baseline`` and ``variants`` are passed on); it
    raises :class:`~laptime.scoring.ScoringError` for incomparable trials unless ``force``.  If a
    ``score`` is given those arguments are ignored and its own ``tau_max`` is used.

    Records should carry their eval histories (``ResultsStore.trials(with_evals=True)``) for the
    per-workload curves.  No records and no score -> :class:`ReportError`.
    """
    records = list(records)
    if score is None:
        if not records:
            raise ReportError("no trials to report (the selection is empty)")
        score = score_records(
            records, force=force, tau_max=tau_max, n_bootstrap=n_bootstrap, seed=seed,
            baseline=baseline, variants=variants,
        )
    problems = check_comparable(records, force=True) if records else []
    if generated_at is None:
        generated_at = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    return Report(records=records, score=score, title=str(title), generated_at=generated_at, problems=problems)


def _write_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to a temp file in the target's directory, then ``os.replace`` it."""
    path = Path(path)
    with atomic_write(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    return path


# --------------------------------------------------------------------------------------------
# Formatting shared by the HTML and Markdown renderers
# --------------------------------------------------------------------------------------------

DASH = "—"
INF_TEXT = "∞"


def fmt_seconds(v: float | None) -> str:
    """Seconds with about 3-4 significant digits; ``None`` -> ``—``, ``inf`` -> ``∞``."""
    if v is None:
        return DASH
    v = float(v)
    if math.isnan(v):
        return DASH
    if math.isinf(v):
        return INF_TEXT
    if v >= 1000:
        return f"{v:,.0f}"
    if v >= 100:
        return f"{v:.1f}"
    if v >= 1:
        return f"{v:.2f}"
    if v == 0:
        return "0"
    return f"{v:.3g}"


def fmt_steps(v: float | None) -> str:
    if v is None:
        return DASH
    v = float(v)
    if math.isnan(v):
        return DASH
    if math.isinf(v):
        return INF_TEXT
    return f"{v:,.0f}"


def fmt_value(v: float | None, column: str) -> str:
    """A times-table value: seconds for ``time_to_target``, a step count for ``steps_to_target``."""
    return fmt_steps(v) if column == "steps_to_target" else fmt_seconds(v)


def fmt_score(v: float) -> str:
    return f"{float(v):.4f}"


def fmt_ratio(v: float) -> str:
    v = float(v)
    if math.isnan(v):
        return DASH
    if math.isinf(v):
        return INF_TEXT
    return f"{v:.2f}"


def fmt_speedup(v: float | None) -> str:
    if v is None or math.isnan(v):
        return DASH
    if math.isinf(v):
        return INF_TEXT
    return f"{v:.2f}×"


def fmt_number(v: Any) -> str:
    """A hyperparameter or metric value, compactly: floats to 4 significant digits."""
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(fmt_number(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {fmt_number(x)}" for k, x in v.items()) + "}"
    return str(v)


def last_line(text: str | None) -> str:
    if not text:
        return ""
    lines = [ln for ln in str(text).strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else ""


def unit_label(column: str) -> str:
    return "steps" if column == "steps_to_target" else "s"


def trial_choice_text(score: ScoreReport) -> str:
    """Which trial of each study counts, in words."""
    if score.trial_choice == "algoperf":
        return "the trial that met the target at the earliest eval (AlgoPerf's choice, not always the fastest)"
    return "the fastest trial"


def integral_text(score: ScoreReport) -> str:
    """How the profile is integrated, in words ('' for the exact integral)."""
    if score.tau_points is None:
        return ""
    return f"the trapezoid rule on {score.tau_points} evenly spaced τ (as AlgoPerf's scoring code)"


def reached_counts(score: ScoreReport) -> dict[str, int]:
    """Per algorithm, how many scored workloads have a finite (gated) time."""
    return {a: sum(1 for w in score.workloads if math.isfinite(score.times.get(a, {}).get(w, math.inf)))
            for a in score.algorithms}
