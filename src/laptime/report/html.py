"""Render a :class:`~laptime.report.core.Report` as one self-contained HTML page.

The page has no scripts and loads nothing: CSS is inline, plots are inline SVG
(:mod:`laptime.report.plots`), fonts are the system's.  Every user-supplied string (algorithm,
workload and variant names, hyperparameters, hardware descriptions, error text) is escaped with
:func:`html.escape` before it reaches the page.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Any

import laptime
from laptime.records import Outcome, TrialRecord
from laptime.report.core import (
    DASH,
    INF_TEXT,
    fmt_number,
    fmt_ratio,
    fmt_score,
    fmt_seconds,
    fmt_speedup,
    fmt_steps,
    fmt_value,
    integral_text,
    last_line,
    reached_counts,
    trial_choice_text,
    unit_label,
)
from laptime.report.plots import (COINCIDENT_OFFSET_PX, PALETTE, CurveSeries, coincident_profiles, curves_svg, esc,
                                  identical_curves, profile_svg)
from laptime.scoring import workload_key

if TYPE_CHECKING:
    from laptime.report.core import Report

__all__ = ["render_html", "algorithm_colors"]




def algorithm_colors(report: Report) -> dict[str, str]:
    """Scored algorithms in leaderboard order, then any others from the records, sorted."""
    names = list(report.score.algorithms)
    names += sorted({r.algorithm for r in report.records} - set(names))
    return {a: PALETTE[i % len(PALETTE)] for i, a in enumerate(names)}


_CSS = """
:root { color-scheme: light; --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --soft: #f6f8fa;
  --accent: #0969da; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff; line-height: 1.45;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Arial, sans-serif; }
main { max-width: 1220px; margin: 0 auto; padding: 24px 28px 48px; }
header h1 { margin: 0 0 4px; font-size: 26px; }
header .meta { color: var(--muted); margin: 0; }
nav { margin: 14px 0 8px; padding: 8px 0; border-top: 1px solid var(--line);
  border-bottom: 1px solid var(--line); }
nav a { color: var(--accent); text-decoration: none; margin-right: 18px; white-space: nowrap; }
section { margin-top: 30px; }
h2 { font-size: 19px; margin: 0 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 14px; margin: 0 0 2px; word-break: break-word; }
p.note, .note { color: var(--muted); font-size: 12.5px; margin: 6px 0; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; }
th, td { padding: 5px 9px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: var(--soft); font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.name { font-weight: 600; word-break: break-word; max-width: 340px; }
tr.top td { background: #f1f8ff; }
.chip { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px;
  vertical-align: baseline; }
.bar { display: inline-block; height: 8px; background: #c8dcf5; border-radius: 4px; margin-left: 8px;
  vertical-align: middle; }
.bar > span { display: block; height: 8px; background: var(--accent); border-radius: 4px; }
.sub { display: block; color: var(--muted); font-size: 11.5px; }
.best { font-weight: 700; }
.miss { color: #9a6700; }
.gated { color: #9a6700; }
.warn { border: 1px solid #d4a72c; background: #fff8c5; padding: 10px 14px; border-radius: 6px; }
.warn ul { margin: 4px 0 0 18px; padding: 0; }
.empty { border: 1px dashed var(--line); padding: 14px; color: var(--muted); border-radius: 6px; }
.legend { margin: 4px 0 10px; }
.legend span { margin-right: 16px; white-space: nowrap; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(372px, 1fr)); gap: 14px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 10px 4px; min-width: 0; }
.card .note { margin: 0 0 4px; }
.card svg { width: 100%; height: auto; display: block; }
svg.profile { max-width: 100%; height: auto; }
.badge { display: inline-block; padding: 1px 7px; border-radius: 10px; font-size: 11.5px;
  font-weight: 600; color: #fff; }
.o-reached { background: #1a7f37; } .o-budget { background: #9a6700; }
.o-complete { background: #6e7781; } .o-diverged { background: #8250df; } .o-failed { background: #cf222e; }
code, .mono { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12px; }
table.trials { font-size: 12px; }
table.trials th { white-space: normal; vertical-align: bottom; }
table.trials th, table.trials td { padding: 3px 6px; }
table.trials td.hp { font-size: 11px; min-width: 200px; max-width: 380px; }
table.trials td.err { min-width: 160px; }
.nw { white-space: nowrap; }
td.name.nw { max-width: none; }
td.err { color: #cf222e; max-width: 320px; word-break: break-word; }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 0; }
dl.kv dt { color: var(--muted); } dl.kv dd { margin: 0; word-break: break-word; }
.explain { max-width: 860px; }
.explain p, .explain li { margin: 6px 0; }
footer { margin-top: 36px; color: var(--muted); font-size: 12px; border-top: 1px solid var(--line);
  padding-top: 10px; }
@media print { nav { display: none; } .card { break-inside: avoid; } }
"""


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------


def _chip(color: str) -> str:
    return f'<span class="chip" style="background:{esc(color)}"></span>'


def _leaderboard(report: Report, colors: dict[str, str]) -> str:
    s = report.score
    boot = s.bootstrap
    reached = reached_counts(s)
    n_w = len(s.workloads)
    has_base = s.baseline is not None and s.geomean_speedups is not None
    conf = f"{boot.confidence * 100:g}%" if boot is not None else "95%"
    head = ['<th class="num">rank</th>', "<th>algorithm</th>", '<th class="num">score</th>']
    if boot is not None:
        head += [f'<th class="num">{esc(conf)} CI</th>', f'<th class="num">rank {esc(conf)} CI</th>']
    head.append('<th class="num">workloads reached</th>')
    if has_base:
        head.append(f'<th class="num">speedup vs {esc(s.baseline)}<span class="sub">geometric mean</span></th>')
    rows = []
    for a in s.algorithms:
        score = s.scores[a]
        width = max(0.0, min(1.0, score)) * 80
        cells = [
            f'<td class="num">{s.ranks[a]}</td>',
            f'<td class="name">{_chip(colors[a])}{esc(a)}</td>',
            f'<td class="num score"><span class="score-value">{fmt_score(score)}</span>'
            f'<span class="bar" style="width:80px"><span style="width:{width:.1f}px"></span></span></td>',
        ]
        if boot is not None:
            lo, hi = boot.score_ci.get(a, (math.nan, math.nan))
            rlo, rhi = boot.rank_ci.get(a, (0, 0))
            cells.append(f'<td class="num">[{fmt_score(lo)}, {fmt_score(hi)}]</td>')
            cells.append(f'<td class="num">{rlo}–{rhi}</td>' if rlo != rhi else f'<td class="num">{rlo}</td>')
        cells.append(f'<td class="num">{reached[a]} / {n_w}</td>')
        if has_base:
            cells.append(f'<td class="num">{esc(fmt_speedup(s.geomean_speedups.get(a)))}</td>')
        cls = ' class="top"' if s.ranks[a] == 1 else ""
        rows.append(f"<tr{cls}>{''.join(cells)}</tr>")
    notes = []
    if boot is not None:
        noise = (f" and over each time's measurement noise (σ = {boot.timing_noise:.0%})"
                 if boot.timing_noise else "")
        notes.append(f"Intervals: {esc(conf)} percentile bootstrap over studies{esc(noise)} "
                     f"({boot.n_resamples} resamples, seed {boot.seed}).")
    else:
        notes.append("No confidence intervals (scored without bootstrap resamples).")
    if s.variants is not None:
        notes.append(f"Variant gate on: a base workload counts as missed when one of its variants is missed "
                     f"or more than {s.max_slowdown:g}× slower than the fastest on that variant.")
    if has_base:
        notes.append(f"Speedup: geometric mean of {esc(s.baseline)}'s time / the algorithm's time over the "
                     "workloads both reached.")
    return (
        '<section id="leaderboard"><h2>Leaderboard</h2>'
        '<div class="scroll"><table class="leaderboard">'
        f"<thead><tr>{''.join(head)}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        f'<p class="note">{" ".join(notes)}</p></section>'
    )


def _profiles(report: Report, colors: dict[str, str]) -> str:
    s = report.score
    svg = profile_svg(s.ratios, s.algorithms, colors, s.tau_max, scores=s.scores)
    same = coincident_profiles(s.ratios, s.algorithms, s.tau_max)
    tied = ""
    if same:
        tied = (" Identical profiles: " + "; ".join(esc(" = ".join(g)) for g in same)
                + f" (their lines are drawn {COINCIDENT_OFFSET_PX:g} px apart, with different dashes, so that each "
                "stays visible).")
    return (
        '<section id="profiles"><h2>Performance profiles</h2>'
        f"{svg}"
        f'<p class="note">ρ(τ): the fraction of the {len(s.workloads)} scored workload(s) on which the algorithm '
        f"was at most τ times slower than the fastest algorithm; τ from 1 to τ<sub>max</sub> = {s.tau_max:g}. "
        f"Higher and further left is better.{tied}</p></section>"
    )


def _times_table(report: Report, colors: dict[str, str]) -> str:
    s = report.score
    unit = unit_label(s.column)
    variant_cols = sorted({w for ws in s.raw_times.values() for w in ws} - set(s.workloads))
    head = ["<th>algorithm</th>"]
    head += [f'<th class="num">{esc(w)}</th>' for w in s.workloads]
    head += [f'<th class="num">{esc(w)}<span class="sub">variant</span></th>' for w in variant_cols]
    best = {w: min((s.times[a].get(w, math.inf) for a in s.algorithms), default=math.inf) for w in s.workloads}
    rows = []
    for a in s.algorithms:
        cells = [f'<td class="name">{_chip(colors[a])}{esc(a)}</td>']
        for w in s.workloads:
            t = s.times[a].get(w, math.inf)
            raw = s.raw_times.get(a, {}).get(w, math.inf)
            if math.isinf(t):
                if math.isfinite(raw):
                    cells.append(f'<td class="num gated">{INF_TEXT}<span class="sub">gated; own time '
                                 f'{esc(fmt_value(raw, s.column))}</span></td>')
                else:
                    cells.append(f'<td class="num miss">{INF_TEXT}<span class="sub">missed</span></td>')
                continue
            cls = "num best" if t == best[w] else "num"
            r = s.ratios.get(a, {}).get(w, math.nan)
            cells.append(f'<td class="{cls}">{esc(fmt_value(t, s.column))}'
                         f'<span class="sub">×{esc(fmt_ratio(r))}</span></td>')
        for w in variant_cols:
            t = s.raw_times.get(a, {}).get(w, math.inf)
            cells.append(f'<td class="num{" miss" if math.isinf(t) else ""}">{esc(fmt_value(t, s.column))}</td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    what = {"steps_to_target": "steps", "robust_time_to_target": "robust seconds of submission time (contention "
            "discounted; see the method)"}.get(s.column, "raw seconds of submission time")
    return (
        '<section id="times"><h2>Per-workload times</h2>'
        '<div class="scroll"><table class="times">'
        f"<thead><tr>{''.join(head)}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        f'<p class="note">Time to target in {esc(what)} ({esc(unit)}): the median over studies of each study\'s '
        f"{esc(trial_choice_text(s).removeprefix('the '))}; {INF_TEXT} = target missed. Small print: the ratio to the fastest algorithm on that "
        "workload (bold = fastest).</p></section>"
    )


def _hit_point(r: TrialRecord, metric_key: str) -> tuple[float, float] | None:
    if Outcome(r.outcome) is not Outcome.REACHED or r.time_to_target is None:
        return None
    candidates = [ev for ev in r.evals if metric_key in ev.metrics]
    if not candidates:
        return None
    ev = min(candidates, key=lambda e: abs(float(e.submission_time) - float(r.time_to_target)))
    try:
        return float(r.time_to_target), float(ev.metrics[metric_key])
    except (TypeError, ValueError):
        return None


def _as_float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _trial_label(r: TrialRecord) -> str:
    parts = [r.algorithm]
    if r.study is not None:
        parts.append(f"study {r.study}")
    if r.trial_index is not None:
        parts.append(f"trial {r.trial_index}")
    parts.append(f"seed {r.seed}")
    parts.append(Outcome(r.outcome).value)
    return " · ".join(parts)


def _curves(report: Report, colors: dict[str, str]) -> str:
    by_key: dict[str, list[TrialRecord]] = defaultdict(list)
    for r in report.records:
        by_key[workload_key(r.workload, r.variant)].append(r)
    intro = '<section id="curves"><h2>Validation curves</h2>'
    if not by_key:
        return intro + '<p class="empty">No trial records in this report (it was built from a times table).</p></section>'
    algs = [a for a in colors if any(r.algorithm == a for r in report.records)]
    legend = "".join(f"<span>{_chip(colors[a])}{esc(a)}</span>" for a in algs)
    cards = []
    for i, key in enumerate(sorted(by_key)):
        recs = sorted(by_key[key], key=lambda r: (list(colors).index(r.algorithm), r.study or 0,
                                                   r.trial_index or 0, r.seed))
        first = recs[0]
        metric_key = f"validation/{first.target_metric}"
        op = "≤" if str(first.target_direction).lower() in ("min", "minimize", "lower") else "≥"
        target = _as_float(first.target_value)
        n_reached = sum(Outcome(r.outcome) is Outcome.REACHED for r in recs)
        head = (f"<h3>{esc(key)}</h3><p class=\"note\">target {esc(metric_key)} {op} "
                f"{esc(fmt_number(target))} · {len(recs)} trial(s), {n_reached} reached</p>")
        series = []
        for r in recs:
            pts = [(_as_float(ev.submission_time), _as_float(ev.metrics.get(metric_key)))
                   for ev in r.evals if metric_key in ev.metrics]
            if pts:
                series.append(CurveSeries(r.algorithm, _trial_label(r), pts, _hit_point(r, metric_key)))
        same = identical_curves(series)
        if same:
            head += (f'<p class="note coincident">identical curves: {"; ".join(esc(" = ".join(g)) for g in same)} '
                     f"(drawn {COINCIDENT_OFFSET_PX:g} px apart)</p>")
        if series:
            body = curves_svg(series, colors, target=target, ylabel=metric_key, label=key, uid=f"w{i}")
        else:
            body = (f'<p class="empty">No evals with {esc(metric_key)} recorded for this workload '
                    "(load trials with their evals: <code>ResultsStore.trials(with_evals=True)</code>).</p>")
        cards.append(f'<div class="card">{head}{body}</div>')
    return (
        intro + f'<div class="legend">{legend}</div><div class="grid">{"".join(cards)}</div>'
        '<p class="note">One line per trial (colour = algorithm); the dashed line is the validation target; '
        "a dot marks where a trial reached it. Variants are plotted separately. Hover a line for its trial."
        "</p></section>"
    )


def _trials(report: Report, colors: dict[str, str]) -> str:
    intro = '<section id="trials"><h2>Trials</h2>'
    if not report.records:
        return intro + '<p class="empty">No trial records in this report.</p></section>'
    order = list(colors)
    recs = sorted(report.records, key=lambda r: (r.workload, r.variant or "", order.index(r.algorithm),
                                                 -1 if r.study is None else r.study,
                                                 -1 if r.trial_index is None else r.trial_index, r.seed))
    head = ("<th>workload</th><th>variant</th><th>algorithm</th><th class=\"num\">study</th>"
            "<th class=\"num\">trial</th><th class=\"num\">seed</th><th>hyperparameters</th><th>outcome</th>"
            "<th class=\"num\">time to target (s)</th><th class=\"num\">robust (s)</th>"
            "<th class=\"num\">steps to target</th>"
            "<th class=\"num\">submission time (s)</th><th>budget</th><th>machine</th><th>error</th>")
    rows = []
    for r in recs:
        outcome = Outcome(r.outcome).value
        hps = r.hyperparameters
        if isinstance(hps, dict):
            hp = ", ".join(f'<span class="nw">{esc(k)}={esc(fmt_number(v))}</span>' for k, v in hps.items())
        else:
            hp = esc(fmt_number(hps)) if hps is not None else ""
        hp = hp or DASH
        hp_full = json.dumps(hps, default=str, sort_keys=True) if hps else ""
        err = last_line(r.error)
        err_full = "\n".join((r.error or "").strip().splitlines()[-6:])
        rows.append(
            "<tr>"
            f"<td>{esc(r.workload)}</td><td>{esc(r.variant)}</td>"
            f'<td class="name nw">{_chip(colors[r.algorithm])}{esc(r.algorithm)}</td>'
            f'<td class="num">{esc(DASH if r.study is None else r.study)}</td>'
            f'<td class="num">{esc(DASH if r.trial_index is None else r.trial_index)}</td>'
            f'<td class="num">{esc(r.seed)}</td>'
            f'<td class="hp mono" title="{esc(hp_full)}">{hp}</td>'
            f'<td><span class="badge o-{esc(outcome)}">{esc(outcome)}</span></td>'
            f'<td class="num">{esc(fmt_seconds(r.time_to_target))}</td>'
            f'<td class="num">{esc(fmt_seconds(r.robust_time_to_target))}</td>'
            f'<td class="num">{esc(fmt_steps(r.steps_to_target))}</td>'
            f'<td class="num">{esc(fmt_seconds(r.submission_time))}</td>'
            f'<td class="nw">{esc(_budget_text(r))}</td>'
            f"<td>{_machine_badge(r)}</td>"
            f'<td class="err" title="{esc(err_full)}">{esc(err)}</td>'
            "</tr>"
        )
    counts = Counter(Outcome(r.outcome).value for r in recs)
    summary = ", ".join(f"{n} {o}" for o, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    return (
        intro + f'<p class="note">{len(recs)} trial(s): {esc(summary)}.</p>'
        f'<div class="scroll"><table class="trials"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div></section>"
    )


def _budget_text(r: TrialRecord) -> str:
    if r.budget_mode == "steps":
        return f"{r.budget_steps} steps" if r.budget_steps is not None else "steps"
    return f"{fmt_number(r.budget_sec)} s"


def _machine_badge(r: TrialRecord) -> str:
    """'busy' (with what was seen) for a trial that ran beside other load, else 'quiet'."""
    contention = r.contention
    if not contention:
        return f'<span class="note">{DASH}</span>'
    threads = (r.measurement or {}).get("threads", {}).get("threads")
    suffix = f" · {threads} thr" if threads else ""
    if contention.get("contaminated"):
        reasons = "; ".join(contention.get("reasons", []))
        return f'<span class="badge o-budget" title="{esc(reasons)}">busy</span>{esc(suffix)}'
    return f'<span class="badge o-reached">quiet</span>{esc(suffix)}'


def _contention(report: Report) -> str:
    """A warning at the top when trials ran on a busy machine, saying what the score uses."""
    bad = [r for r in report.records if r.contaminated]
    if not bad:
        return ""
    column = report.score.column
    if column == "time_to_target":
        meaning = ("This report scores <b>raw</b> submission time, which that load inflates: rerun on a quiet "
                   "machine, or score the robust time or steps.")
    elif column == "robust_time_to_target":
        exact = all(r.budget_mode == "steps" for r in report.records)
        meaning = ("This report scores the <b>robust</b> time, which discounts that load (see the method); "
                   + ("outcomes and steps are exact (step budgets)." if exact
                      else "with time budgets the load may still have cut trials short."))
    else:
        meaning = "This report scores <b>steps</b>, which the load does not change."
    return (f'<div class="warn"><b>{len(bad)} of {len(report.records)} trial(s) ran on a busy machine</b> '
            f'(marked "busy" in the trial table; hover for what was seen). {meaning}</div>')


def _kv(d: dict[str, Any]) -> str:
    if not d:
        return f'<span class="note">{DASH}</span>'
    items = "".join(f"<dt>{esc(k)}</dt><dd>{esc(fmt_number(v))}</dd>" for k, v in d.items())
    return f'<dl class="kv">{items}</dl>'


def _environment(report: Report) -> str:
    intro = '<section id="environment"><h2>Hardware and software</h2>'
    recs = report.records
    if not recs:
        return intro + '<p class="empty">Unknown: the report was built without trial records.</p></section>'
    # Hardware, by (fingerprint, description).
    hw_groups: dict[tuple[str, str], list[TrialRecord]] = defaultdict(list)
    for r in recs:
        hw_groups[(r.hardware_fingerprint, json.dumps(r.hardware, sort_keys=True, default=str))].append(r)
    hw_rows = []
    for (fp, _), group in sorted(hw_groups.items()):
        devices = ", ".join(sorted({g.device for g in group}))
        algs = ", ".join(sorted({g.algorithm for g in group}))
        hw_rows.append(
            f'<tr><td class="mono">{esc(fp)}</td><td>{esc(devices)}</td><td>{_kv(group[0].hardware or {})}</td>'
            f'<td class="num">{len(group)}</td><td>{esc(algs)}</td></tr>'
        )
    # Library versions: each library with its distinct values (and how many trials had each).
    versions: dict[str, Counter] = defaultdict(Counter)
    for r in recs:
        for k, v in (r.versions or {}).items():
            versions[str(k)][str(v)] += 1
    ver_rows = []
    for lib in sorted(versions):
        vals = versions[lib]
        text = ", ".join(v if len(vals) == 1 else f"{v} ({n} trials)" for v, n in vals.most_common())
        cls = ' class="gated"' if len(vals) > 1 else ""
        ver_rows.append(f"<tr><td>{esc(lib)}</td><td{cls}>{esc(text)}</td></tr>")
    # Workload versions and datasets.
    wl: dict[str, set[str]] = defaultdict(set)
    for r in recs:
        wl[workload_key(r.workload, r.variant)].add(f"{r.workload_version} · {r.dataset} · config {r.config}")
    wl_rows = "".join(f"<tr><td>{esc(k)}</td><td>{esc('; '.join(sorted(v)))}</td></tr>" for k, v in sorted(wl.items()))
    rulesets = sorted({r.ruleset for r in recs if r.ruleset})
    started = min((r.started_at for r in recs if r.started_at), default="")
    finished = max((r.finished_at for r in recs if r.finished_at), default="")
    span = f"Trials ran from {esc(started)} to {esc(finished)}." if started and finished else ""
    rules = f" Ruleset: {esc(', '.join(rulesets))}." if rulesets else ""
    return (
        intro
        + f'<p class="note">{len(hw_groups)} distinct hardware description(s). {span}{rules}</p>'
        '<div class="scroll"><table class="hardware"><thead><tr><th>fingerprint</th><th>device</th>'
        '<th>hardware</th><th class="num">trials</th><th>algorithms</th></tr></thead>'
        f"<tbody>{''.join(hw_rows)}</tbody></table></div>"
        '<h3 style="margin-top:14px">Library versions</h3>'
        '<div class="scroll"><table class="versions"><thead><tr><th>library</th><th>version</th></tr></thead>'
        f"<tbody>{''.join(ver_rows) or '<tr><td colspan=2>—</td></tr>'}</tbody></table></div>"
        '<h3 style="margin-top:14px">Workload versions</h3>'
        '<div class="scroll"><table class="wversions"><thead><tr><th>workload</th>'
        "<th>version · dataset · config</th></tr></thead>"
        f"<tbody>{wl_rows}</tbody></table></div></section>"
    )


def _explain(report: Report) -> str:
    s = report.score
    t = f"{s.tau_max:g}"
    what = {"steps_to_target": "number of steps taken",
            "robust_time_to_target": "robust submission time (training time, evals excluded, contention "
                                     "discounted)"}.get(s.column, "raw submission time (training time, evals excluded)")
    return (
        '<section id="method" class="explain"><h2>How the score is computed</h2>'
        f"<p>Each trial trains until its validation metric meets the workload's target or its budget (submission "
        f"seconds, or steps in step-budget mode) runs out. Its result is the {esc(what)} at the first eval that "
        f"met the target, or {INF_TEXT} if it never did (ran out of budget, diverged, failed or stopped "
        "early).</p>"
        "<p>The <b>raw</b> submission time is AlgoPerf's measure, exact on a machine that does nothing else. The "
        "<b>robust</b> time discounts other load: the trial's timed work is measured in CPU time (on a CPU) and "
        "divided, window by window, by the cost of a fixed reference pass (forward and backward of the "
        "workload's model) measured between windows; that work, in reference passes, is converted back to "
        "seconds at one reference cost per workload (the lowest among the trials scored together). In "
        "step-budget mode, outcomes and steps to target do not depend on the machine's speed at all.</p>"
        "<ol>"
        "<li><b>One time per algorithm and workload.</b> Within each study (one tuning run) only "
        f"{esc(trial_choice_text(s))} counts; the workload's time is the median of those over studies.</li>"
        "<li><b>Ratios to the fastest.</b> Every time is divided by the best time any algorithm in this report "
        f"achieved on that workload: 1 means fastest, 2 means twice as slow, {INF_TEXT} means missed.</li>"
        "<li><b>Performance profile.</b> ρ(τ) is the share of workloads on which an algorithm's ratio is at "
        "most τ: it starts at the fraction of workloads where it was fastest and climbs as the tolerance τ "
        "grows.</li>"
        f"<li><b>Score.</b> The area under ρ(τ) between τ = 1 and τ = {t}, divided by {t} − 1, so that the "
        f"score lies between 0 and 1. Being fastest everywhere gives 1; a workload missed, or solved more than "
        f"{t}× slower than the best, adds nothing."
        + (f" The area is computed by {esc(integral_text(s))}." if s.tau_points else "") + "</li>"
        "</ol>"
        + (f"<p>The variant gate is on: a base workload's time counts as {INF_TEXT} for an algorithm that "
           f"misses the target on one of its variants, or is more than {s.max_slowdown:g}× slower there than "
           "the fastest algorithm on that variant. Variants are not scored on their own.</p>"
           if s.variants is not None else "")
        + "<p>Scores are relative: they compare the algorithms in this report with each other, and change when "
        "algorithms are added or removed. Confidence intervals, when shown, come from re-sampling the studies "
        "with replacement and scoring each re-sample the same way.</p></section>"
    )


def _tuning_cost(report: Report) -> str:
    """What the trials cost per algorithm and workload, and (with pruned trials) what pruning saved."""
    from laptime.tuning.pruning import tuning_cost

    if not report.records:
        return ""
    cost = tuning_cost(report.records)
    pruned = cost["total"]["pruned"]
    note = report.score.pruning
    intro = ('<section id="cost"><h2>Tuning cost</h2>'
             + (f'<p class="{"" if note["exact"] else "warn"}">Pruning: {esc(note["text"])}.</p>' if note else
                "<p>No trial was pruned: every trial ran to its target or its budget.</p>"))
    head = "<tr><th>algorithm</th><th>workload</th><th>trials</th><th>steps</th><th>trial-seconds</th>"
    if pruned:
        head += "<th>pruned</th><th>saved at most (steps)</th><th>saved at most (trial-seconds)</th>"
    rows = []
    for r in [*cost["rows"], {**cost["total"], "algorithm": "all", "workload": ""}]:
        cells = (f"<td>{esc(r['algorithm'])}</td><td>{esc(r['workload'])}</td><td>{r['trials']}</td>"
                 f"<td>{r['steps']:,}</td><td>{fmt_seconds(r['seconds'])}</td>")
        if pruned:
            cells += (f"<td>{r['pruned']}</td><td>{r['saved_steps_max']:,.0f}</td>"
                      f"<td>{fmt_seconds(r['saved_seconds_max'])}</td>")
        rows.append(f"<tr>{cells}</tr>")
    foot = ("<p>Trial-seconds: each trial's wall time (training, evaluations, speed probes). A pruned trial's "
            "saving is at most the rest of its budget at its own seconds per step: it might have stopped earlier "
            "by itself (<code>laptime replay</code> on an unpruned run measures the saving exactly).</p>"
            if pruned else "")
    return intro + f'<table class="num"><thead>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>{foot}</section>'


def _problems(report: Report) -> str:
    if not report.problems:
        return ""
    items = "".join(f"<li>{esc(p)}</li>" for p in report.problems)
    return (f'<div class="warn"><b>These trials are not strictly comparable</b> (scored anyway):'
            f"<ul>{items}</ul></div>")


def render_html(report: Report) -> str:
    """The whole page as a string."""
    s = report.score
    colors = algorithm_colors(report)
    n_trials = len(report.records)
    when = report.generated_at.isoformat()
    meta = (f"{len(s.algorithms)} algorithm(s) · {len(s.workloads)} scored workload(s) · "
            f"{n_trials} trial(s) · τ<sub>max</sub> = {s.tau_max:g} · scored on {esc(s.column)} · "
            f"generated {esc(when)}")
    nav = ("".join(f'<a href="#{a}">{t}</a>' for a, t in (
        ("leaderboard", "Leaderboard"), ("profiles", "Profiles"), ("times", "Times"), ("curves", "Curves"),
        ("trials", "Trials"), ("cost", "Tuning cost"), ("environment", "Hardware &amp; software"),
        ("method", "Method"))))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="generator" content="laptime">',
        f"<title>{esc(report.title)}</title>",
        f"<style>{_CSS}</style></head><body><main>",
        f'<header><h1>{esc(report.title)}</h1><p class="meta">{meta}</p></header>',
        f"<nav>{nav}</nav>",
        _problems(report),
        _contention(report),
        _leaderboard(report, colors),
        _profiles(report, colors),
        _times_table(report, colors),
        _curves(report, colors),
        _trials(report, colors),
        _tuning_cost(report),
        _environment(report),
        _explain(report),
        f"<footer>Generated by laptime {esc(laptime.__version__)} at {esc(when)}. "
        "This page is self-contained: it loads no scripts, fonts or images.</footer>",
        "</main></body></html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"
