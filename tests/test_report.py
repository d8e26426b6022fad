"""Tests for laptime.report: the HTML page, the Markdown table, edge cases and a real browser render.

All records are synthetic (no torch).  The browser test runs only where a chromium binary exists.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import numpy as np
import pytest

from laptime.records import EvalRecord, Outcome, TrialRecord
from laptime.report import Report, ReportError, build_report
from laptime.report.plots import nice_ticks, profile_steps
from laptime.scoring import ScoringError, performance_profiles, rows_from_records, score_records, score_table

HW = {"device_type": "cpu", "cpu": "Test CPU @ 3.0GHz", "cpu_count": 2, "torch_threads": 2,
      "machine": "x86_64", "system": "Linux"}
VERSIONS = {"python": "3.11.2", "torch": "2.4.0", "laptime": "0.1.0", "numpy": "1.26.4"}
WHEN = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.timezone.utc)

# workload key -> (metric, direction, target, budget seconds)
WORKLOADS = {
    ("mnist1d", "base"): ("accuracy", "max", 0.90, 60.0),
    ("shakespeare", "base"): ("loss", "min", 1.50, 120.0),
}


def make_trial(algorithm: str, workload: str, variant: str, study: int, trial: int, speed: float, *,
               seed: int | None = None, n_evals: int = 12, outcome: Outcome | None = None,
               error: str | None = None, with_evals: bool = True, hp: dict | None = None,
               fingerprint: str = "fp-test", workload_version: str = "1") -> TrialRecord:
    """One synthetic trial whose validation curve approaches its limit at rate ``speed`` (1/s).

    The outcome, time and steps to target follow from the curve unless ``outcome`` forces one."""
    metric, direction, target, budget = WORKLOADS.get((workload, "base"), ("accuracy", "max", 0.9, 60.0))
    seed = study * 100 + trial if seed is None else seed
    rng = np.random.default_rng(seed + zlib.crc32(algorithm.encode()) % 1000)
    evals, reached_at = [], None
    for i in range(1, n_evals + 1):
        t = budget * i / n_evals
        if direction == "max":
            v = 0.97 * (1 - math.exp(-speed * t)) + rng.normal(0, 0.004)
            hit = v >= target
        else:
            v = 1.2 + 3.0 * math.exp(-speed * t) + rng.normal(0, 0.01)
            hit = v <= target
        if outcome is Outcome.DIVERGED and i > n_evals // 2:
            v = math.nan
        evals.append(EvalRecord(step=i * 50, submission_time=t, wall_time=t * 1.1,
                                metrics={f"validation/{metric}": v, f"train/{metric}": v}))
        if hit and reached_at is None and outcome is None:
            reached_at = (t, i * 50)
            break
    if outcome is None:
        outcome = Outcome.REACHED if reached_at else Outcome.BUDGET
    last = evals[-1]
    return TrialRecord(
        workload=workload, variant=variant, config="cpu", workload_version=workload_version, dataset=workload,
        algorithm=algorithm, algorithm_hash="abc123", hyperparameters=hp or {"learning_rate": 10 ** -(2 + trial / 3),
                                                                             "weight_decay": 0.1},
        seed=seed, device="cpu", hardware_fingerprint=fingerprint, hardware=dict(HW), versions=dict(VERSIONS),
        target_metric=metric, target_direction=direction, target_value=target, budget_sec=budget,
        outcome=outcome, time_to_target=reached_at[0] if reached_at else None,
        steps_to_target=reached_at[1] if reached_at else None, submission_time=last.submission_time,
        steps=last.step, wall_time=last.wall_time, started_at="2026-11-22T10:00:00+00:00",
        finished_at="2026-11-22T10:05:00+00:00", error=error, ruleset="external", study=study,
        trial_index=trial, evals=evals if with_evals else [],
    )


SPEEDS = {"nadamw": 0.09, "adamw": 0.06, "sgd_nesterov": 0.035}


def synthetic_records(algorithms=("nadamw", "adamw", "sgd_nesterov"), studies=(0, 1), trials=(0, 1),
                      workloads=(("mnist1d", "base"), ("shakespeare", "base"))) -> list[TrialRecord]:
    out = []
    for a_i, a in enumerate(algorithms):
        base = SPEEDS.get(a, 0.05 / (1 + a_i))
        for w_i, (w, v) in enumerate(workloads):
            for s in studies:
                for t in trials:
                    speed = base * (1 + 0.15 * t - 0.1 * s) * (1.3 if w_i % 2 else 1.0)
                    out.append(make_trial(a, w, v, s, t, speed))
    return out


@pytest.fixture(scope="module")
def records() -> list[TrialRecord]:
    return synthetic_records()


@pytest.fixture(scope="module")
def report(records) -> Report:
    return build_report(records, title="synthetic", n_bootstrap=200, seed=0, generated_at=WHEN)


@pytest.fixture(scope="module")
def page(report) -> str:
    return report.to_html()


def leaderboard_rows(page: str) -> list[tuple[str, str]]:
    """(algorithm cell text, score text) for each leaderboard row, in page order."""
    table = re.search(r'<table class="leaderboard">(.*?)</table>', page, re.S).group(1)
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", table.split("<tbody>")[1], re.S)
    out = []
    for row in rows:
        name = re.search(r'<td class="name">(?:<span[^>]*></span>)?(.*?)</td>', row, re.S).group(1)
        score = re.search(r'<span class="score-value">([^<]*)</span>', row).group(1)
        out.append((name, score))
    return out


# ------------------------------------------------------------------------------------------
# Building and scoring
# ------------------------------------------------------------------------------------------


def test_synthetic_records_are_varied(records):
    outcomes = {r.outcome for r in records}
    assert Outcome.REACHED in outcomes and Outcome.BUDGET in outcomes
    assert all(r.evals for r in records)


def test_build_report_scores_the_records_like_score_records(records, report):
    ref = score_records(records, n_bootstrap=200, seed=0)
    assert report.score.algorithms == ref.algorithms
    assert report.score.scores == ref.scores
    assert report.score.bootstrap.score_ci == ref.bootstrap.score_ci
    assert report.generated_at == WHEN
    assert report.problems == []


def test_build_report_uses_a_given_score(records):
    given = score_table(rows_from_records(records), tau_max=3.0)
    rep = build_report(records, given)
    assert rep.score is given
    assert "τ<sub>max</sub> = 3" in rep.to_html()


def test_build_report_refuses_incomparable_trials_unless_forced(records):
    other = [dataclasses.replace(records[0], hardware_fingerprint="other-machine")] + records[1:]
    with pytest.raises(ScoringError):
        build_report(other, n_bootstrap=0)
    rep = build_report(other, n_bootstrap=0, force=True)
    assert rep.problems and "hardware" in rep.problems[0]
    page = rep.to_html()
    assert "not strictly comparable" in page and "other-machine" in page


# ------------------------------------------------------------------------------------------
# The HTML page
# ------------------------------------------------------------------------------------------


def test_leaderboard_matches_score_table(records, page):
    ref = score_table(rows_from_records(records), n_bootstrap=200, seed=0)
    rows = leaderboard_rows(page)
    assert [name for name, _ in rows] == ref.algorithms
    assert [score for _, score in rows] == [f"{ref.scores[a]:.4f}" for a in ref.algorithms]
    for a in ref.algorithms:
        lo, hi = ref.bootstrap.score_ci[a]
        assert f"[{lo:.4f}, {hi:.4f}]" in page
    # workloads reached, e.g. "2 / 2"
    for a in ref.algorithms:
        k = sum(math.isfinite(ref.times[a][w]) for w in ref.workloads)
        assert f"{k} / {len(ref.workloads)}" in page
    assert "95% CI" in page and "rank 95% CI" in page


def test_page_has_every_section(page):
    for anchor in ("leaderboard", "profiles", "times", "curves", "trials", "environment", "method"):
        assert f'<section id="{anchor}"' in page
    assert page.startswith("<!DOCTYPE html>")
    assert page.rstrip().endswith("</html>")
    assert "2026-11-22T12:00:00+00:00" in page  # generation timestamp
    assert "Test CPU @ 3.0GHz" in page and "fp-test" in page  # hardware and fingerprint
    assert "2.4.0" in page  # library versions
    assert "How the score is computed" in page


def test_one_svg_per_plot(records, page):
    keys = {(r.workload, r.variant) for r in records}
    assert page.count("<svg") == 1 + len(keys)
    assert page.count('class="plot profile"') == 1
    assert page.count('class="plot curves"') == len(keys)
    # every curve plot has a dashed target line, one polyline per trial with 2+ finite points
    assert page.count('class="target"') == len(keys)
    assert page.count("<polyline") == sum(1 for r in records if len(r.evals) >= 2)


def test_svgs_are_well_formed_xml(page):
    svgs = re.findall(r"<svg.*?</svg>", page, re.S)
    assert svgs
    for svg in svgs:
        ET.fromstring(svg)  # raises on malformed markup


def test_profile_legend_names_every_algorithm(report, page):
    profile = re.search(r'<svg class="plot profile".*?</svg>', page, re.S).group(0)
    for a in report.score.algorithms:
        assert f">{a}</text>" in profile
    assert profile.count("<path") == len(report.score.algorithms)


def _drawn(svg: str, tag: str, geometry: str) -> dict[str, tuple[str, str]]:
    """Per first word of its title: (geometry attribute, transform) of each ``tag`` element in ``svg``."""
    out = {}
    for attrs, title in re.findall(rf"<{tag} ([^>]*)><title>([^<]*)</title>", svg):
        shape = re.search(rf'{geometry}="([^"]*)"', attrs).group(1)
        transform = re.search(r'transform="([^"]*)"', attrs)
        out.setdefault(title.split()[0], []).append((shape, transform.group(1) if transform else ""))
    return out


def test_identical_algorithms_stay_visible_in_profiles_and_curves():
    base = synthetic_records(algorithms=("nadamw", "adamw"), studies=(0,), trials=(0,))
    twins = [dataclasses.replace(r, algorithm="twin") for r in base if r.algorithm == "nadamw"]
    report = build_report(base + twins, title="twins", n_bootstrap=0, generated_at=WHEN)
    page = report.to_html()
    profile = re.search(r'<svg class="plot profile".*?</svg>', page, re.S).group(0)
    lines = _drawn(profile, "path", "d")
    assert lines["nadamw"][0][0] == lines["twin"][0][0]  # the same profile...
    assert lines["nadamw"][0][1] != lines["twin"][0][1]  # ...drawn apart, so neither hides the other
    assert lines["adamw"][0][1] == ""  # a profile of its own is drawn where it is
    assert "identical profiles" in profile and "nadamw = twin" in profile
    assert "Identical profiles: nadamw = twin" in page
    for svg in re.findall(r'<svg class="plot curves".*?</svg>', page, re.S):
        curves = _drawn(svg, "polyline", "points")
        assert curves["nadamw"][0][0] == curves["twin"][0][0]
        assert curves["nadamw"][0][1] != curves["twin"][0][1]
    assert page.count("identical curves: nadamw = twin") == 2  # one note per workload
    for svg in re.findall(r"<svg.*?</svg>", page, re.S):
        ET.fromstring(svg)


def test_trials_table_lists_every_trial(records, page):
    table = re.search(r'<table class="trials">(.*?)</table>', page, re.S).group(1)
    assert table.count("<tr>") == len(records) + 1  # + header row
    assert "o-reached" in table and "o-budget" in table
    assert "learning_rate=0.01" in table


def test_no_external_resources(page):
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, re.I)
    assert not re.search(r"@import|url\(\s*['\"]?(?:https?:)?//", page, re.I)
    assert "<script" not in page.lower()
    assert "<link" not in page.lower()
    assert "<img" not in page.lower()
    # the only http:// text allowed is the SVG namespace, which loads nothing
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) <= {"http://www.w3.org/2000/svg"}


def test_user_strings_are_escaped():
    evil = "<script>alert(1)</script>"
    amp = 'a&b"c'
    recs = synthetic_records(algorithms=(evil, amp), studies=(0,), trials=(0,),
                             workloads=(("mnist1d", "base"), ("<b>wl</b>", "v'1")))
    recs[0] = dataclasses.replace(recs[0], hyperparameters={"<img src=x onerror=alert(2)>": "<i>x</i>"},
                                  outcome=Outcome.FAILED, time_to_target=None, steps_to_target=None,
                                  error="Traceback (most recent call last):\nValueError: <script>alert(3)</script>")
    rep = build_report(recs, n_bootstrap=50, title="<title>x</title>", generated_at=WHEN)
    page = rep.to_html()
    assert "<script" not in page.lower()
    assert "<img" not in page.lower()
    assert "<b>wl" not in page
    assert "<i>x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "a&amp;b&quot;c" in page
    assert "&lt;b&gt;wl&lt;/b&gt;" in page
    assert "ValueError: &lt;script&gt;alert(3)&lt;/script&gt;" in page  # the error's last line
    assert "<title>&lt;title&gt;x&lt;/title&gt;</title>" in page
    for svg in re.findall(r"<svg.*?</svg>", page, re.S):
        ET.fromstring(svg)
    md = rep.to_markdown()
    assert "<script" not in md


# ------------------------------------------------------------------------------------------
# Edge cases
# ------------------------------------------------------------------------------------------


def test_zero_trials_is_an_error():
    with pytest.raises(ReportError, match="no trials"):
        build_report([])
    assert issubclass(ReportError, ValueError)


def test_score_without_records_renders_without_curves():
    score = score_table([("a", "w1", 0, 0, 10.0), ("b", "w1", 0, 0, 20.0), ("b", "w2", 0, 0, math.inf)])
    rep = build_report([], score, generated_at=WHEN)
    page = rep.to_html()
    assert [s for _, s in leaderboard_rows(page)] == ["0.5000", "0.3333"]
    assert page.count("<svg") == 1
    assert "No trial records" in page
    assert "| 1 | a | 0.5000 |" in rep.to_markdown()


def test_one_algorithm():
    recs = synthetic_records(algorithms=("nadamw",))
    rep = build_report(recs, n_bootstrap=50)
    assert leaderboard_rows(rep.to_html()) == [("nadamw", "1.0000")]
    assert rep.to_markdown().count("\n| 1 | nadamw |") == 1


def test_all_trials_missed():
    recs = [make_trial(a, "mnist1d", "base", s, 0, 0.001) for a in ("x", "y") for s in (0, 1)]
    assert all(r.outcome is Outcome.BUDGET for r in recs)
    rep = build_report(recs, n_bootstrap=50)
    page = rep.to_html()
    assert [s for _, s in leaderboard_rows(page)] == ["0.0000", "0.0000"]
    assert "0 / 1" in page and "∞" in page
    md = rep.to_markdown()
    assert "| ∞ |" in md


def test_workload_without_evals_and_diverged_trials():
    recs = synthetic_records(studies=(0,), trials=(0,))
    recs = [dataclasses.replace(r, evals=[]) if r.workload == "shakespeare" else r for r in recs]
    recs.append(make_trial("adamw", "mnist1d", "base", 1, 0, 0.5, outcome=Outcome.DIVERGED))
    rep = build_report(recs, n_bootstrap=20)
    page = rep.to_html()
    assert page.count('class="plot curves"') == 1  # mnist1d only
    assert "No evals with validation/loss recorded" in page
    assert "o-diverged" in page
    for svg in re.findall(r"<svg.*?</svg>", page, re.S):
        assert "nan" not in svg.lower()
        ET.fromstring(svg)


def test_variants_are_plotted_separately_and_gated():
    recs = synthetic_records(workloads=(("mnist1d", "base"), ("mnist1d", "gelu"), ("shakespeare", "base")))
    # adamw misses the variant -> its (reached) mnist1d time is gated to inf
    recs = [dataclasses.replace(r, outcome=Outcome.BUDGET, time_to_target=None, steps_to_target=None)
            if (r.algorithm, r.variant) == ("adamw", "gelu") else r for r in recs]
    rep = build_report(recs, n_bootstrap=20)
    assert rep.score.variants == {"mnist1d": ["mnist1d/gelu"]}
    page = rep.to_html()
    assert page.count('class="plot curves"') == 3
    assert "<h3>mnist1d/gelu</h3>" in page
    assert "gated; own time" in page
    assert "Variant gate on" in page


def test_baseline_speedups_column():
    recs = synthetic_records()
    rep = build_report(recs, n_bootstrap=0, baseline="adamw")
    page = rep.to_html()
    assert "speedup vs adamw" in page
    gm = rep.score.geomean_speedups
    assert f"{gm['nadamw']:.2f}×" in page
    assert "No confidence intervals" in page
    md = rep.to_markdown()
    assert "speedup vs adamw" in md.splitlines()[0]
    assert "| — |" in md  # no CI without bootstrap


def test_steps_to_target_scoring_labels_steps():
    recs = synthetic_records(studies=(0,), trials=(0,))
    score = score_table(rows_from_records(recs), column="steps_to_target")
    rep = build_report(recs, score)
    assert "(steps)" in rep.to_markdown().splitlines()[0]
    assert "scored on steps_to_target" in rep.to_html()


# ------------------------------------------------------------------------------------------
# Markdown
# ------------------------------------------------------------------------------------------


def test_markdown_table(report):
    md = report.to_markdown()
    lines = md.splitlines()
    s = report.score
    assert lines[0] == "| rank | algorithm | score | 95% CI | mnist1d (s) | shakespeare (s) |"
    assert lines[1] == "|---:|---|---:|---:|---:|---:|"
    body = lines[2:2 + len(s.algorithms)]
    for line, a in zip(body, s.algorithms):
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        assert cells[0] == str(s.ranks[a]) and cells[1] == a and cells[2] == f"{s.scores[a]:.4f}"
        lo, hi = s.bootstrap.score_ci[a]
        assert cells[3] == f"[{lo:.4f}, {hi:.4f}]"
        assert len(cells) == 6
    assert "τ in [1, 4]" in md


def test_markdown_escapes_pipes():
    recs = synthetic_records(algorithms=("a|b", "c\\d"), studies=(0,), trials=(0,))
    md = build_report(recs, n_bootstrap=0).to_markdown()
    assert "a\\|b" in md and "c\\\\d" in md
    header, rule, *rows = md.split("\n\n")[0].splitlines()
    n = len(re.split(r"(?<!\\)\|", header))
    assert all(len(re.split(r"(?<!\\)\|", r)) == n for r in rows)


# ------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------


def test_write_html_and_markdown_atomically(report, tmp_path):
    target = tmp_path / "out" / "report.html"
    assert report.write_html(target) == target
    assert target.read_text(encoding="utf-8") == report.to_html()
    target.write_text("old")
    report.write_html(target)
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    md = report.write_markdown(tmp_path / "out" / "report.md")
    assert md.read_text(encoding="utf-8") == report.to_markdown()
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.html", "report.md"]


def test_write_html_failure_leaves_no_temp_file(report, tmp_path, monkeypatch):
    target = tmp_path / "report.html"
    target.write_text("old")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        report.write_html(target)
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
    assert target.read_text() == "old"


# ------------------------------------------------------------------------------------------
# Plot helpers and import hygiene
# ------------------------------------------------------------------------------------------


def test_profile_steps_match_performance_profiles(report):
    s = report.score
    taus = np.linspace(1, s.tau_max, 61)
    ref = performance_profiles(s.times, taus)
    for a in s.algorithms:
        steps = profile_steps(s.ratios[a], s.tau_max)
        got = [max(rho for tau, rho in steps if tau <= t + 1e-12) for t in taus]
        np.testing.assert_allclose(got, ref[a])
    assert profile_steps({}, 4.0) == [(1.0, 0.0)]
    assert profile_steps({"w1": 1.0, "w2": 2.0, "w3": math.inf, "w4": 5.0}, 4.0) == [(1.0, 0.25), (2.0, 0.5)]


def test_nice_ticks():
    ticks, step = nice_ticks(0, 10)
    assert step == 2 and ticks == [0, 2, 4, 6, 8, 10]
    ticks, step = nice_ticks(0.81, 0.97)
    assert all(0.81 <= t <= 0.97 for t in ticks) and 3 <= len(ticks) <= 7
    ticks, _ = nice_ticks(5, 5)
    assert ticks and min(ticks) <= 5 <= max(ticks)


def test_report_imports_neither_torch_nor_matplotlib():
    code = ("import sys, laptime.report; "
            "bad = [m for m in ('torch', 'matplotlib') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------------------------------
# A real browser
# ------------------------------------------------------------------------------------------


def find_chromium() -> str | None:
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = name if os.path.isabs(name) and os.access(name, os.X_OK) else shutil.which(name)
        if path:
            return path
    return None


def chromium_args(binary: str, profile: Path) -> list[str]:
    return [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--hide-scrollbars", f"--user-data-dir={profile}"]


def test_renders_in_chromium(report, tmp_path):
    binary = find_chromium()
    if binary is None:
        pytest.skip("no chromium binary (/usr/bin/chromium, chromium or chromium-browser) on this machine")
    html_path = report.write_html(tmp_path / "report.html")
    shot = tmp_path / "shot.png"
    args = chromium_args(binary, tmp_path / "profile")
    env = {**os.environ, "HOME": str(tmp_path)}
    proc = subprocess.run([*args, f"--screenshot={shot}", "--window-size=1280,2000", html_path.as_uri()],
                          capture_output=True, text=True, timeout=60, env=env)
    assert shot.exists(), f"no screenshot; rc={proc.returncode}\n{proc.stderr[-2000:]}"
    assert shot.stat().st_size > 20_000
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        pass
    else:
        with Image.open(shot) as im:
            assert im.size == (1280, 2000)
            colors = im.convert("RGB").resize((64, 100)).getcolors(maxcolors=100_000)
            assert colors is not None and len(colors) > 20  # not a blank page
    dom = subprocess.run([*args, "--dump-dom", html_path.as_uri()], capture_output=True, text=True,
                         timeout=60, env=env).stdout
    assert '<table class="leaderboard">' in dom
    assert dom.count("<svg") == report.to_html().count("<svg")
    assert report.score.algorithms[0] in dom
