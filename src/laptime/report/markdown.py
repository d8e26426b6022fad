"""Render a :class:`~laptime.report.core.Report` as a GitHub-flavoured Markdown leaderboard.

Shape::

    | rank | algorithm | score | 95% CI | <workload 1> (s) | <workload 2> (s) | ... |
    |---:|---|---:|---:|---:|---:|
    | 1 | nadamw | 0.8333 | [0.7500, 0.9167] | 12.40 | ∞ |

followed by a one-paragraph footnote.  ``|`` in names is escaped as ``\\|`` and newlines become
spaces, so a name cannot break the table.  Without bootstrap intervals the CI cells are ``—``.
When the score has a baseline a ``speedup vs <baseline>`` column is added after the CI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from laptime.report.core import (
    DASH,
    fmt_score,
    fmt_speedup,
    fmt_value,
    integral_text,
    reached_counts,
    trial_choice_text,
    unit_label,
)

if TYPE_CHECKING:
    from laptime.report.core import Report

__all__ = ["md_escape", "render_markdown"]


def md_escape(text: object) -> str:
    """Make ``text`` safe inside a Markdown table cell (``\\``, ``|``, newlines, HTML brackets)."""
    s = str(text).replace("\\", "\\\\").replace("|", "\\|")
    s = s.replace("<", "&lt;").replace(">", "&gt;")
    return " ".join(s.split())


def render_markdown(report: Report) -> str:
    s = report.score
    boot = s.bootstrap
    conf = f"{boot.confidence * 100:g}%" if boot is not None else "95%"
    unit = unit_label(s.column)
    has_base = s.baseline is not None and s.geomean_speedups is not None
    header = ["rank", "algorithm", "score", f"{conf} CI"]
    align = ["---:", "---", "---:", "---:"]
    if has_base:
        header.append(f"speedup vs {md_escape(s.baseline)}")
        align.append("---:")
    header += [f"{md_escape(w)} ({unit})" for w in s.workloads]
    align += ["---:"] * len(s.workloads)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    for a in s.algorithms:
        if boot is not None and a in boot.score_ci:
            lo, hi = boot.score_ci[a]
            ci = f"[{fmt_score(lo)}, {fmt_score(hi)}]"
        else:
            ci = DASH
        cells = [str(s.ranks[a]), md_escape(a), fmt_score(s.scores[a]), ci]
        if has_base:
            cells.append(fmt_speedup(s.geomean_speedups.get(a)))
        cells += [fmt_value(s.times[a].get(w, float("inf")), s.column) for w in s.workloads]
        lines.append("| " + " | ".join(cells) + " |")
    reached = reached_counts(s)
    what = {"steps_to_target": "steps to target",
            "robust_time_to_target": "robust seconds of submission time to target (contention discounted)"}.get(
        s.column, "raw seconds of submission time to target")
    foot = (f"Score: normalised area under the performance profile for τ in [1, {s.tau_max:g}] "
            f"(1 = fastest on every workload){', by ' + integral_text(s) if s.tau_points else ''}. Times: {what}, "
            f"median over studies of each study's {trial_choice_text(s).removeprefix('the ')}; ∞ = target missed.")
    if boot is not None:
        noise = f" and timing noise (σ = {boot.timing_noise:.0%})" if boot.timing_noise else ""
        foot += f" CI: {conf} bootstrap over studies{noise} ({boot.n_resamples} resamples)."
    if s.variants is not None:
        foot += f" Variant gate on (max slowdown {s.max_slowdown:g}×)."
    n_w = len(s.workloads)
    foot += " Workloads reached: " + ", ".join(f"{md_escape(a)} {reached[a]}/{n_w}" for a in s.algorithms) + "."
    if s.pruning is not None:
        foot += f" Pruning: {md_escape(s.pruning['text'])}."
    busy = sum(r.contaminated for r in report.records)
    if busy:
        foot += (f" {busy} of {len(report.records)} trials ran on a busy machine"
                 + (": their raw times are inflated." if s.column == "time_to_target" else
                    "; the scored measure discounts that load."))
    return "\n".join(lines) + "\n\n" + foot + "\n"
