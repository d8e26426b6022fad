"""Scoring entry points for the CLI: read a times CSV, score it, render JSON or a text table."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Union

from laptime.records import Outcome, TrialRecord
from laptime.scoring.bootstrap import BootstrapResult, bootstrap_scores
from laptime.scoring.core import (
    RowLike,
    ScoringError,
    Times,
    TimeRow,
    aggregate,
    apply_variant_gate,
    as_time_rows,
    benchmark_scores,
    check_comparable,
    geometric_mean_speedups,
    performance_ratios,
    rank_scores,
    rows_from_records,
    speedups,
    variants_from_workloads,
    workload_key,
    _check_tau_max,
    _check_tau_points,
    _check_trial_choice,
    _clean_index,
    _clean_int,
    _clean_value,
)

__all__ = ["REQUIRED_CSV_COLUMNS", "read_times_csv", "ScoreReport", "score_table", "score_records"]

#: Header columns a times CSV must have (any order, case-insensitive; extra columns are ignored,
#: except an optional ``steps_to_target`` which is read when present).
REQUIRED_CSV_COLUMNS = ("algorithm", "workload", "study", "trial", "time_to_target")

_INF_WORDS = {"", "inf", "+inf", "infinity", "+infinity"}


def _parse_value(text: str, column: str, line: int, path: str) -> float:
    """A cell of a value column: ``inf``/``Infinity``/empty = a miss, else the scoring core's check."""
    t = text.strip()
    if t.lower() in _INF_WORDS:
        return math.inf
    return _clean_value(t, column, f"{path}, line {line}")


def _parse_int(text: str, column: str, line: int, path: str) -> int:
    return _clean_int(text.strip(), column, f"{path}, line {line}", 0)


def _parse_optional(text: str, column: str, line: int, path: str) -> float | None:
    """A finite non-negative number, or ``None`` for an empty/``nan`` cell (e.g. not measured)."""
    t = text.strip()
    if t == "" or t.lower() == "nan":
        return None
    v = _parse_value(t, column, line, path)
    return v if math.isfinite(v) else None


def read_times_csv(path: str | os.PathLike[str]) -> list[TimeRow]:
    """Read trial rows from a CSV file with a header row.

    Required columns (any order, names case-insensitive): ``algorithm, workload, study, trial,
    time_to_target``; optional ``steps_to_target``, ``robust_time_to_target`` and ``eval_index_to_target``
    (for AlgoPerf's trial choice; empty = unknown) columns are read too; other columns are ignored.  Values: ``inf``, ``Infinity`` (any case, optional ``+``) and an empty cell mean a
    miss (``inf``); an empty ``study``/``trial`` is 0.  Blank lines are skipped.

    laptime's own ``laptime export --table trials`` is read as the stored trials are scored:
    ``trial_index`` stands for ``trial``; a ``variant`` column makes the workload key
    ``workload/variant`` (``workload`` alone for the base variant); with an ``outcome`` column, only
    ``reached`` trials have times (a target met after the budget does not count); with
    ``work_to_target`` and ``reference_cost`` columns, the robust time is the work times the lowest
    reference cost of the workload's trials, as ``laptime score --db`` computes it.

    Raises :class:`ScoringError` (with the file's line number) for a missing file, an empty file
    or one with a header but no rows, a missing column, a wrong number of fields, an empty
    algorithm/workload, a non-numeric, NaN or negative time, or a non-integer study/trial.
    """
    p = os.fspath(path)
    try:
        f = open(p, newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise ScoringError(f"times file not found: {p}") from None
    except OSError as e:
        raise ScoringError(f"cannot read times file {p}: {e}") from None
    with f:
        reader = csv.reader(f)
        header = None
        for raw in reader:
            if any(c.strip() for c in raw):
                header = [c.strip().lower() for c in raw]
                break
        if header is None:
            raise ScoringError(f"{p}: the file is empty (expected a header row: {', '.join(REQUIRED_CSV_COLUMNS)})")
        header_line = reader.line_num
        if "trial" not in header and "trial_index" in header:  # laptime export --table trials
            header[header.index("trial_index")] = "trial"
        missing = [c for c in REQUIRED_CSV_COLUMNS if c not in header]
        if missing:
            raise ScoringError(
                f"{p}, line {header_line}: missing column(s) {', '.join(missing)} "
                f"(header has: {', '.join(header)})"
            )
        optional = ("steps_to_target", "robust_time_to_target")
        col = {c: header.index(c) for c in (*REQUIRED_CSV_COLUMNS, *optional, "eval_index_to_target", "variant",
                                            "outcome", "work_to_target", "reference_cost")
               if c in header}
        robust_from_work = "work_to_target" in col and "reference_cost" in col
        rows: list[TimeRow] = []
        work: list[tuple[float | None, float | None]] = []  # per row: (work to target, reference cost)
        for raw in reader:
            line = reader.line_num
            if not any(c.strip() for c in raw):
                continue
            if len(raw) != len(header):
                raise ScoringError(f"{p}, line {line}: expected {len(header)} fields, got {len(raw)}")
            alg = raw[col["algorithm"]].strip()
            wl = raw[col["workload"]].strip()
            if not alg:
                raise ScoringError(f"{p}, line {line}: algorithm is empty")
            if not wl:
                raise ScoringError(f"{p}, line {line}: workload is empty")
            if "variant" in col:
                wl = workload_key(wl, raw[col["variant"]].strip())
            extra = {name: _parse_value(raw[col[name]], name, line, p) if name in col else math.inf
                     for name in optional}
            if "eval_index_to_target" in col:
                extra["eval_index_to_target"] = _clean_index(raw[col["eval_index_to_target"]].strip(),
                                                             f"{p}, line {line}")
            ttt = _parse_value(raw[col["time_to_target"]], "time_to_target", line, p)
            reached = "outcome" not in col or raw[col["outcome"]].strip().lower() == Outcome.REACHED.value
            if not reached:  # a stored trial that missed (or met the target after its budget)
                ttt = extra["steps_to_target"] = extra["robust_time_to_target"] = math.inf
                extra["eval_index_to_target"] = None
            if robust_from_work:
                work.append((_parse_optional(raw[col["work_to_target"]], "work_to_target", line, p) if reached
                             else None, _parse_optional(raw[col["reference_cost"]], "reference_cost", line, p)))
            rows.append(
                TimeRow(
                    algorithm=alg,
                    workload=wl,
                    study=_parse_int(raw[col["study"]], "study", line, p),
                    trial=_parse_int(raw[col["trial"]], "trial", line, p),
                    time_to_target=ttt,
                    **extra,
                )
            )
    if not rows:
        raise ScoringError(f"{p}: no data rows after the header")
    if robust_from_work:
        rows = _robust_from_work(rows, work)
    return rows


def _robust_from_work(rows: list[TimeRow], work: list[tuple[float | None, float | None]]) -> list[TimeRow]:
    """Robust times as :func:`~laptime.scoring.core.rows_from_records` makes them: work to target ×
    the lowest reference cost of the workload's rows (rows without work keep their own column)."""
    costs: dict[str, list[float]] = {}
    for row, (_, cost) in zip(rows, work):
        if cost is not None and cost > 0:
            costs.setdefault(row.workload, []).append(cost)
    refs = {w: min(c) for w, c in costs.items()}
    return [dataclasses.replace(row, robust_time_to_target=w * refs[row.workload])
            if w is not None and row.workload in refs else row for row, (w, _) in zip(rows, work)]


def _json_num(v: float) -> float | str | None:
    """JSON encoding of a number: ``inf`` -> ``"inf"``, ``nan`` -> ``None`` (null), else the float."""
    v = float(v)
    if math.isnan(v):
        return None
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def _fmt_num(v: float) -> str:
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf"
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.1f}"


@dataclasses.dataclass
class ScoreReport:
    """The result of :func:`score_table`.

    - ``algorithms``: ordered best first (by rank, then name); ``workloads``: the scored
      workloads (sorted; variant keys are excluded when the variant gate is on);
    - ``times``: the scored times table (after the variant gate, if any), ``inf`` = miss;
      ``raw_times``: the aggregate before gating (includes variant workloads);
    - ``ratios``, ``scores``, ``ranks``: see :func:`~laptime.scoring.core.performance_ratios`,
      :func:`~laptime.scoring.core.benchmark_scores`, :func:`~laptime.scoring.core.rank_scores`;
    - ``variants``: the base -> variants mapping the gate used (``None`` = gate off);
    - ``baseline``/``speedups``/``geomean_speedups``: only when a baseline was given;
    - ``bootstrap``: only when ``n_bootstrap > 0``;
    - ``trial_choice``: how each study's trial was chosen (``fastest`` or ``algoperf``);
    - ``tau_points``: ``None`` (the exact integral) or the number of taus of the trapezoid rule;
    - ``pruning``: with trials of a pruning benchmark (:mod:`laptime.tuning.pruning`), what pruned them
      and how many (:func:`pruning_note`), else ``None``.
    """

    algorithms: list[str]
    workloads: list[str]
    tau_max: float
    column: str
    times: Times
    ratios: Times
    scores: dict[str, float]
    ranks: dict[str, int]
    raw_times: Times
    variants: dict[str, list[str]] | None = None
    max_slowdown: float = 4.0
    baseline: str | None = None
    speedups: Times | None = None
    geomean_speedups: dict[str, float] | None = None
    bootstrap: BootstrapResult | None = None
    trial_choice: str = "fastest"
    tau_points: int | None = None
    pruning: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict.  Shape::

            {"algorithms": {name: {"score": float, "rank": int,
                                   "times": {workload: float | "inf"},
                                   "ratios": {workload: float | "inf"},
                                   ["speedups": {...}, "geomean_speedup": float | null,]
                                   ["score_ci": [lo, hi], "rank_ci": [lo, hi]]}},
             "workloads": [...], "tau_max": float, "column": str,
             "variant_gate": null | {"max_slowdown": float, "variants": {base: [variant, ...]}},
             "baseline": str | null, "trial_choice": "fastest" | "algoperf", "tau_points": int | null,
             ["bootstrap": {"n_resamples", "seed", "confidence"}]}

        Infinity is encoded as the string ``"inf"`` and NaN (e.g. a speedup where both missed)
        as ``null``, so the output is strict JSON.  ``algorithms`` keeps best-first order.
        """
        algs: dict[str, Any] = {}
        for a in self.algorithms:
            entry: dict[str, Any] = {
                "score": self.scores[a],
                "rank": self.ranks[a],
                "times": {w: _json_num(self.times[a][w]) for w in self.workloads},
                "ratios": {w: _json_num(self.ratios[a][w]) for w in self.workloads},
            }
            if self.speedups is not None and self.geomean_speedups is not None:
                entry["speedups"] = {w: _json_num(self.speedups[a][w]) for w in self.workloads}
                entry["geomean_speedup"] = _json_num(self.geomean_speedups[a])
            if self.bootstrap is not None:
                entry["score_ci"] = list(self.bootstrap.score_ci[a])
                entry["rank_ci"] = list(self.bootstrap.rank_ci[a])
            algs[a] = entry
        out: dict[str, Any] = {
            "algorithms": algs,
            "workloads": list(self.workloads),
            "tau_max": self.tau_max,
            "column": self.column,
            "variant_gate": None
            if self.variants is None
            else {"max_slowdown": self.max_slowdown, "variants": {b: list(v) for b, v in self.variants.items()}},
            "baseline": self.baseline,
            "trial_choice": self.trial_choice,
            "tau_points": self.tau_points,
        }
        if self.pruning is not None:
            out["pruning"] = self.pruning
        if self.bootstrap is not None:
            out["bootstrap"] = {
                "n_resamples": self.bootstrap.n_resamples,
                "seed": self.bootstrap.seed,
                "confidence": self.bootstrap.confidence,
                "timing_noise": self.bootstrap.timing_noise,
            }
        return out

    def to_json(self, indent: int | None = 2) -> str:
        """:meth:`to_dict` as strict JSON (``allow_nan=False``: no bare ``Infinity``/``NaN``)."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def format_table(self) -> str:
        """Plain-text table: ``rank``, ``algorithm``, ``score`` (4 decimals), with a bootstrap the
        score's and the rank's intervals, with a baseline the geometric-mean speedup over it, then
        one column per scored workload with its time (``inf`` = missed); rows best first. With a
        baseline a second table gives the per-workload speedups. A footer names tau_max, the value
        column and what the extra columns mean."""
        boot = self.bootstrap
        has_base = self.baseline is not None and self.speedups is not None and self.geomean_speedups is not None
        header = ["rank", "algorithm", "score"]
        if boot is not None:
            level = f"{boot.confidence * 100:g}%"
            header += [f"score {level} CI", f"rank {level} CI"]
        if has_base:
            header.append(f"speedup vs {self.baseline}")
        header += self.workloads
        body = []
        for a in self.algorithms:
            row = [str(self.ranks[a]), a, f"{self.scores[a]:.4f}"]
            if boot is not None:
                lo, hi = boot.score_ci[a]
                rlo, rhi = boot.rank_ci[a]
                row += [f"[{lo:.4f}, {hi:.4f}]", f"[{rlo}, {rhi}]"]
            if has_base:
                row.append(_fmt_speedup(self.geomean_speedups[a]))
            row += [_fmt_num(self.times[a][w]) for w in self.workloads]
            body.append(row)
        lines = _aligned(header, body, left=(1,))
        unit = "steps" if self.column == "steps_to_target" else "seconds"
        foot = f"tau_max = {self.tau_max:g}; {self.column} in {unit}; inf = target missed"
        if self.variants is not None:
            foot += f"; variant gate on (max slowdown {self.max_slowdown:g}x)"
        if self.trial_choice == "algoperf":
            foot += "; per study the trial that met the target at the earliest eval (AlgoPerf's choice)"
        if self.tau_points is not None:
            foot += f"; profile integrated by the trapezoid rule on {self.tau_points} taus"
        if boot is not None:
            foot += (f"; CI: bootstrap percentile intervals over studies ({boot.n_resamples} resamples, seed "
                     f"{boot.seed}" + (f", timing noise {boot.timing_noise:.0%}" if boot.timing_noise else "") + ")")
        if has_base:
            foot += (f"; speedup vs {self.baseline}: geometric mean of {self.baseline}'s time / the algorithm's "
                     "over the workloads both reached (- = none)")
        lines.append(foot)
        if self.pruning is not None:
            lines.append(f"pruning: {self.pruning['text']}")
        if has_base:
            lines.append("")
            lines.append(f"speedup over {self.baseline} per workload ({self.baseline}'s time / the algorithm's; "
                         "inf = only the baseline missed, 0.00x = only the algorithm missed, - = both missed)")
            lines += _aligned(["algorithm", *self.workloads],
                              [[a, *(_fmt_speedup(self.speedups[a][w]) for w in self.workloads)]
                               for a in self.algorithms], left=(0,))
        return "\n".join(lines)

    # ---- notebooks and data frames ------------------------------------------------------------

    def to_pandas(self, values: str = "times"):
        """The leaderboard as a DataFrame, one row per algorithm, best first.

        Columns: ``algorithm, rank, score``; with a bootstrap ``score_ci_low, score_ci_high,
        rank_ci_low, rank_ci_high``; with a baseline ``geomean_speedup``; then one column per scored
        workload holding ``values``: ``"times"`` (the scored times, ``inf`` = missed; seconds, or
        steps when scored on steps), ``"ratios"`` (performance ratios) or ``"speedups"`` (against
        the baseline). Needs pandas.
        """
        try:
            import pandas as pd
        except ImportError as exc:
            raise ScoringError('pandas is needed for ScoreReport.to_pandas: pip install "laptime[pandas]"') from exc
        table = {"times": self.times, "ratios": self.ratios, "speedups": self.speedups}.get(values, KeyError)
        if table is KeyError:
            raise ScoringError(f"values must be times, ratios or speedups, got {values!r}")
        if table is None:
            raise ScoringError("no speedups: score with a baseline (baseline=...) to get them")
        rows = []
        for a in self.algorithms:
            row: dict[str, Any] = {"algorithm": a, "rank": self.ranks[a], "score": self.scores[a]}
            if self.bootstrap is not None:
                (row["score_ci_low"], row["score_ci_high"]) = self.bootstrap.score_ci[a]
                (row["rank_ci_low"], row["rank_ci_high"]) = self.bootstrap.rank_ci[a]
            if self.geomean_speedups is not None:
                row["geomean_speedup"] = self.geomean_speedups[a]
            for w in self.workloads:
                row[w] = float(table[a][w])
            rows.append(row)
        columns = ["algorithm", "rank", "score"]
        if self.bootstrap is not None:
            columns += ["score_ci_low", "score_ci_high", "rank_ci_low", "rank_ci_high"]
        if self.geomean_speedups is not None:
            columns.append("geomean_speedup")
        return pd.DataFrame.from_records(rows, columns=[*columns, *self.workloads])

    def _repr_html_(self) -> str:
        """The leaderboard as an HTML table (Jupyter shows it when the report is a cell's value)."""
        from html import escape

        from laptime.scoring.core import COLUMN_NAMES

        steps = self.column == "steps_to_target"
        unit = "steps" if steps else "s"
        head = ["rank", "algorithm", "score"]
        if self.bootstrap is not None:
            head.append(f"{int(round(self.bootstrap.confidence * 100))}% CI")
        if self.geomean_speedups is not None:
            head.append(f"speedup vs {self.baseline}")
        head += [f"{w} ({unit})" for w in self.workloads]
        body = []
        for a in self.algorithms:
            cells = [str(self.ranks[a]), f"<b>{escape(a)}</b>", f"{self.scores[a]:.3f}"]
            if self.bootstrap is not None:
                lo, hi = self.bootstrap.score_ci[a]
                cells.append(f"[{lo:.3f}, {hi:.3f}]")
            if self.geomean_speedups is not None:
                gm = self.geomean_speedups[a]
                cells.append("—" if math.isnan(gm) else f"{gm:.2f}×")
            for w in self.workloads:
                t = self.times[a][w]
                cells.append("∞" if math.isinf(t) else (f"{t:.0f}" if steps else f"{t:.2f}"))
            body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        caption = (f"laptime leaderboard: benchmark score (area under the performance profile, τmax = "
                   f"{self.tau_max:g}) scored on {COLUMN_NAMES.get(self.column, self.column)}; ∞ = target missed")
        if self.variants is not None:
            caption += f"; variant gate on (max slowdown {self.max_slowdown:g}×)"
        return ('<table class="laptime-score">'
                f"<caption style=\"caption-side: top; text-align: left\">{escape(caption)}</caption>"
                "<thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr></thead>"
                "<tbody>" + "".join(body) + "</tbody></table>")


def _fmt_speedup(v: float) -> str:
    v = float(v)
    if math.isnan(v):
        return "-"
    if math.isinf(v):
        return "inf"
    return f"{v:.2f}x"


def _aligned(header: Sequence[str], body: Sequence[Sequence[str]], left: Sequence[int] = (0,)) -> list[str]:
    """Header, dashes and rows; the columns in ``left`` are left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i in left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [line(header), "  ".join("-" * w for w in widths), *(line(r) for r in body)]


VariantsArg = Union[Mapping[str, Sequence[str]], str, None]


def _resolve_variants(variants: VariantsArg, workloads: Iterable[str]) -> dict[str, list[str]] | None:
    if variants is None:
        return None
    if isinstance(variants, str):
        if variants != "auto":
            raise ScoringError(f"variants must be a mapping, 'auto' or None, got {variants!r}")
        found = {b: vs for b, vs in variants_from_workloads(workloads).items() if vs}
        return found or None
    return {b: list(vs) for b, vs in variants.items()}


#: Relative standard deviation of a robust time between re-runs of the same trial on one machine,
#: the measurement noise the bootstrap adds when scoring robust times (measured with
#: ``benchmarks/contention.py``: see docs/benchmarks.md).
ROBUST_TIME_NOISE = 0.03


def score_table(
    rows: Iterable[RowLike],
    tau_max: float = 4.0,
    column: str = "time_to_target",
    variants: VariantsArg = "auto",
    max_slowdown: float = 4.0,
    baseline: str | None = None,
    n_bootstrap: int = 0,
    seed: int = 0,
    confidence: float = 0.95,
    timing_noise: float | None = None,
    trial_choice: str = "fastest",
    tau_points: int | None = None,
) -> ScoreReport:
    """Score trial rows: aggregate -> (variant gate) -> ratios -> scores -> ranks.

    - ``column``: ``"time_to_target"`` (raw submission seconds), ``"robust_time_to_target"``
      (contention-robust seconds) or ``"steps_to_target"`` (steps-to-target scoring);
    - ``variants``: ``"auto"`` (default) gates each base workload ``w`` on the ``"w/variant"``
      keys present in the rows (no such keys -> no gate); a mapping base -> variant keys gates
      on exactly those; ``None`` switches the gate off and scores every key, variants included,
      as a workload of its own.  When gated, only base workloads are scored;
    - ``baseline``: also compute :func:`~laptime.scoring.core.speedups` and their geometric means;
    - ``n_bootstrap > 0``: add :func:`~laptime.scoring.bootstrap.bootstrap_scores` intervals;
      ``timing_noise`` is their measurement noise (relative σ of each time; default
      :data:`ROBUST_TIME_NOISE` for the robust time, 0 for raw times and steps);
    - ``trial_choice``: ``"fastest"`` (laptime: each study's fastest trial) or ``"algoperf"`` (the
      trial that met the target at the earliest eval index, as AlgoPerf's scoring code picks it;
      see :func:`~laptime.scoring.core.study_bests`);
    - ``tau_points``: ``None`` (default) integrates the performance profile exactly; ``N`` uses the
      trapezoid rule on ``N`` evenly spaced taus, as AlgoPerf's scoring code does with 100.
    """
    tau_max = _check_tau_max(tau_max)
    tau_points = _check_tau_points(tau_points)
    _check_trial_choice(trial_choice)
    rows = as_time_rows(rows, column)
    if not rows:
        raise ScoringError("no trial rows to score")
    raw = aggregate(rows, column, trial_choice)
    all_workloads = sorted({w for ws in raw.values() for w in ws})
    gate = _resolve_variants(variants, all_workloads)
    times = apply_variant_gate(raw, None, gate, max_slowdown) if gate is not None else raw
    scores = benchmark_scores(times, tau_max, tau_points)
    ranks = rank_scores(scores)
    workloads = sorted({w for ws in times.values() for w in ws})
    algorithms = sorted(times, key=lambda a: (ranks[a], a))
    sp = gm = None
    if baseline is not None:
        sp = speedups(times, baseline)
        gm = geometric_mean_speedups(times, baseline)
    boot = None
    if n_bootstrap:
        if timing_noise is None:
            timing_noise = ROBUST_TIME_NOISE if column == "robust_time_to_target" else 0.0
        boot = bootstrap_scores(
            rows, n_bootstrap, seed, tau_max, confidence, column, variants=gate, max_slowdown=max_slowdown,
            timing_noise=timing_noise, trial_choice=trial_choice, tau_points=tau_points,
        )
    return ScoreReport(
        algorithms=algorithms,
        workloads=workloads,
        tau_max=tau_max,
        column=column,
        times=times,
        ratios=performance_ratios(times),
        scores=scores,
        ranks=ranks,
        raw_times=raw,
        variants=gate,
        max_slowdown=float(max_slowdown),
        baseline=baseline,
        speedups=sp,
        geomean_speedups=gm,
        bootstrap=boot,
        trial_choice=trial_choice,
        tau_points=tau_points,
    )


def pruning_note(records: Sequence[TrialRecord], column: str) -> dict[str, Any] | None:
    """What the leaderboard says about pruning (None: no trial was run by a pruning benchmark).

    ``{"policies": [...], "trials", "pruned", "exact": bool, "text": str}``. ``exact`` is whether
    the scores are those of the same trials unpruned: every trial pruned exactly, by ``column``
    (:mod:`laptime.tuning.pruning`). Trials stopped by a prediction, or pruned by another column
    than the one scored, make it False and the text says so."""
    infos = [(r, (r.measurement or {}).get("prune")) for r in records]
    infos = [(r, i) for r, i in infos if i]
    if not infos:
        return None
    policies = sorted({json.dumps(i.get("policy", {}), sort_keys=True) for _, i in infos})
    pruned = [(r, i) for r, i in infos if Outcome(r.outcome) is Outcome.PRUNED]
    predicted = [i for _, i in pruned if i.get("stopped_by") != "exact"]
    other_column = sorted({i.get("by") for _, i in pruned if i.get("by") != column})
    names = {"steps_to_target": "steps", "time_to_target": "raw time", "robust_time_to_target": "robust time"}
    modes = sorted({json.loads(p).get("mode", "?") for p in policies})
    text = f"{'/'.join(modes)} pruning; {len(pruned)} of {len(records)} trials pruned"
    if pruned:
        text += f" ({len(pruned) - len(predicted)} exactly, {len(predicted)} by a prediction)"
    exact = not predicted and not other_column
    if other_column:
        text += (f"; they were pruned by {', '.join(names.get(c, str(c)) for c in other_column)}, not by the "
                 f"{names.get(column, column)} scored here, so these scores are NOT those of the trials unpruned: "
                 f"score by the column they were pruned by")
    elif predicted:
        text += "; trials stopped by a prediction might have been their study's fastest: scores may differ from an "\
                "unpruned run's (laptime prune replay measures by how much)"
    else:
        text += "; scores are those of the same trials unpruned (exact pruning)"
    return {"policies": [json.loads(p) for p in policies], "trials": len(records), "pruned": len(pruned),
            "predicted": len(predicted), "exact": exact, "text": text}


def score_records(records: Iterable[TrialRecord], force: bool = False, **kwargs: Any) -> ScoreReport:
    """:func:`check_comparable` (refuses mixed hardware / workload versions unless ``force``), then
    :func:`score_table` on :func:`rows_from_records`; ``kwargs`` go to :func:`score_table`. Pruned
    trials are misses (exact: their study's best is at most the bound they proved); the report says
    how they were pruned (:func:`pruning_note`). AlgoPerf's trial choice (by eval index, not by
    value) is refused for pruned trials: pruning by value cannot keep its choice."""
    records = list(records)
    check_comparable(records, force=force)
    column = kwargs.get("column", "time_to_target")
    if kwargs.get("trial_choice") == "algoperf" and any(Outcome(r.outcome) is Outcome.PRUNED for r in records):
        raise ScoringError("these trials include pruned ones: AlgoPerf's trial choice (the earliest eval index) "
                           "cannot score them exactly; use the fastest-trial choice (the default)")
    report = score_table(rows_from_records(records, column), **kwargs)
    report.pruning = pruning_note(records, column)
    return report
