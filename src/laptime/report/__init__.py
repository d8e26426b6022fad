"""The benchmark report: one self-contained HTML page and a Markdown leaderboard.

>>> from laptime.results import ResultsStore
>>> from laptime.report import build_report
>>> with ResultsStore("results.sqlite") as store:                  # doctest: +SKIP
...     report = build_report(store.trials(with_evals=True), title="my benchmark")
>>> report.write_html("report.html")                               # doctest: +SKIP
>>> print(report.to_markdown())                                    # doctest: +SKIP

The HTML page holds a leaderboard (score, bootstrap interval, rank interval, workloads reached,
speedup over a baseline), the performance profiles, the per-workload times, validation curves per
workload, a table of every trial, the hardware and library versions, and a short explanation of
the score.  It loads nothing (no scripts, fonts or images from anywhere): CSS is inline and the
plots are inline SVG.  No torch and no matplotlib needed.
"""

from laptime.report.core import Report, ReportError, build_report

__all__ = ["Report", "ReportError", "build_report"]
