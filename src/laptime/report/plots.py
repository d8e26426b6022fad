"""Hand-built inline SVG plots for the report (no matplotlib, no JavaScript, no external resources).

Two kinds of plot:

- :func:`profile_svg`: the performance profiles ``rho_s(tau)``, drawn exactly as step functions
  from the performance ratios (:func:`profile_steps`), one line per algorithm, with a legend;
- :func:`curves_svg`: validation metric against submission time for the trials of one workload,
  one line per trial coloured by algorithm, the target as a dashed horizontal line.

Every piece of text that goes into an SVG passes through :func:`esc` (``html.escape``), so user
strings (algorithm or workload names) cannot inject markup.  The SVGs are meant to be inlined in
an HTML document; they carry ``xmlns`` so they are also valid standalone.
"""

from __future__ import annotations

import dataclasses
import html
import math
from collections.abc import Mapping, Sequence

__all__ = [
    "PALETTE",
    "CurveSeries",
    "coincident_profiles",
    "curves_svg",
    "identical_curves",
    "esc",
    "nice_ticks",
    "profile_steps",
    "profile_svg",
    "time_unit",
]

#: Colour-blind-friendly categorical palette (Okabe-Ito, then Tableau extras); cycles if needed.
PALETTE = (
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#8C564B",  # brown
    "#7F7F7F",  # grey
    "#BCBD22",  # olive
    "#17BECF",  # cyan
    "#000000",  # black
    "#9467BD",  # purple
)

_FONT = 'font-family="system-ui, -apple-system, Segoe UI, Roboto, DejaVu Sans, Arial, sans-serif"'


def esc(value: object) -> str:
    """HTML/SVG-escape any value's ``str`` (``&``, ``<``, ``>``, ``"`` and ``'``)."""
    return html.escape(str(value), quote=True)


def _truncate(text: str, n: int) -> str:
    return text if len(text) <= n else text[: max(1, n - 1)] + "…"


def _f(v: float) -> str:
    """Compact coordinate."""
    s = f"{v:.1f}"
    return s[:-2] if s.endswith(".0") else s


# --------------------------------------------------------------------------------------------
# Ticks and units
# --------------------------------------------------------------------------------------------


def nice_ticks(lo: float, hi: float, n: int = 5) -> tuple[list[float], float]:
    """About ``n`` round tick values (steps of 1, 2, 2.5 or 5 times a power of ten) covering
    ``[lo, hi]``; returns ``(ticks, step)``.  A degenerate range is widened around its value."""
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        lo, hi = 0.0, 1.0
    if hi < lo:
        lo, hi = hi, lo
    if hi - lo < 1e-12 * max(1.0, abs(lo), abs(hi)):
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    step = mag * 10
    for m in (1, 2, 2.5, 5, 10):
        if m * mag >= raw * (1 - 1e-9):
            step = m * mag
            break
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    k = 0
    while True:
        v = first + k * step
        if v > hi + step * 1e-9:
            break
        ticks.append(0.0 if abs(v) < step * 1e-9 else v)
        k += 1
    return ticks, step


def _tick_label(v: float, step: float) -> str:
    if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-4):
        return f"{v:.3g}"
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    if round(step / 10 ** -decimals, 6) % 1:  # e.g. step 2.5 or 0.25
        decimals += 1
    return f"{v:.{decimals}f}"


def time_unit(max_seconds: float) -> tuple[str, float]:
    """A readable unit for an axis of seconds: ``("s", 1)``, ``("min", 60)`` or ``("h", 3600)``."""
    if not math.isfinite(max_seconds) or max_seconds < 180:
        return "s", 1.0
    if max_seconds < 3 * 3600:
        return "min", 60.0
    return "h", 3600.0


# --------------------------------------------------------------------------------------------
# Axes
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Axes:
    width: float
    height: float
    left: float
    right: float
    top: float
    bottom: float
    x0: float
    x1: float
    y0: float
    y1: float

    @property
    def pw(self) -> float:
        return self.width - self.left - self.right

    @property
    def ph(self) -> float:
        return self.height - self.top - self.bottom

    def x(self, v: float) -> float:
        return self.left + (v - self.x0) / (self.x1 - self.x0) * self.pw

    def y(self, v: float) -> float:
        return self.top + (1 - (v - self.y0) / (self.y1 - self.y0)) * self.ph

    def frame(self, xticks: Sequence[float], xstep: float, yticks: Sequence[float], ystep: float,
              xlabel: str, ylabel: str, xfmt=None, yfmt=None) -> list[str]:
        """Grid lines, tick labels, axis labels and the plot frame."""
        out = ['<g class="grid" stroke="#e3e6ea" stroke-width="1">']
        for t in xticks:
            out.append(f'<line x1="{_f(self.x(t))}" y1="{_f(self.top)}" x2="{_f(self.x(t))}" '
                       f'y2="{_f(self.top + self.ph)}"/>')
        for t in yticks:
            out.append(f'<line x1="{_f(self.left)}" y1="{_f(self.y(t))}" x2="{_f(self.left + self.pw)}" '
                       f'y2="{_f(self.y(t))}"/>')
        out.append("</g>")
        out.append(f'<rect x="{_f(self.left)}" y="{_f(self.top)}" width="{_f(self.pw)}" '
                   f'height="{_f(self.ph)}" fill="none" stroke="#9aa1a9" stroke-width="1"/>')
        out.append(f'<g class="ticks" font-size="11" fill="#4a5058" {_FONT}>')
        xfmt = xfmt or (lambda v: _tick_label(v, xstep))
        yfmt = yfmt or (lambda v: _tick_label(v, ystep))
        for t in xticks:
            out.append(f'<text x="{_f(self.x(t))}" y="{_f(self.top + self.ph + 15)}" '
                       f'text-anchor="middle">{esc(xfmt(t))}</text>')
        for t in yticks:
            out.append(f'<text x="{_f(self.left - 6)}" y="{_f(self.y(t) + 4)}" '
                       f'text-anchor="end">{esc(yfmt(t))}</text>')
        out.append("</g>")
        out.append(f'<text x="{_f(self.left + self.pw / 2)}" y="{_f(self.height - 6)}" font-size="12" '
                   f'fill="#24292f" text-anchor="middle" {_FONT}>{esc(xlabel)}</text>')
        cy = self.top + self.ph / 2
        out.append(f'<text x="14" y="{_f(cy)}" font-size="12" fill="#24292f" text-anchor="middle" '
                   f'transform="rotate(-90 14 {_f(cy)})" {_FONT}>{esc(ylabel)}</text>')
        return out


def _svg_open(width: float, height: float, cls: str, label: str) -> str:
    return (f'<svg class="plot {cls}" xmlns="http://www.w3.org/2000/svg" width="{_f(width)}" '
            f'height="{_f(height)}" viewBox="0 0 {_f(width)} {_f(height)}" role="img" '
            f'aria-label="{esc(label)}">')


# --------------------------------------------------------------------------------------------
# Performance profiles
# --------------------------------------------------------------------------------------------


#: Dash patterns cycled over the profile lines (tied algorithms' lines overlap exactly).
DASHES = ("", "9 4", "3 3", "12 3 3 3", "1.5 3")


def _dash(k: int) -> str:
    pattern = DASHES[k % len(DASHES)]
    return f' stroke-dasharray="{pattern}"' if pattern else ""


def profile_steps(ratios: Mapping[str, float], tau_max: float) -> list[tuple[float, float]]:
    """The step function ``rho(tau) = |{w : r[w] <= tau}| / |W|`` on ``[1, tau_max]`` as its
    breakpoints ``[(tau, rho from tau on), ...]``, starting at ``tau = 1`` (inclusive comparison,
    like :func:`laptime.scoring.performance_profiles`).  No workloads -> ``[(1, 0)]``."""
    values = [float(r) for r in ratios.values()]
    n = len(values)
    if n == 0:
        return [(1.0, 0.0)]
    finite = sorted(r for r in values if r <= tau_max)
    steps = [(1.0, sum(1 for r in finite if r <= 1.0) / n)]
    for r in finite:
        if r > 1.0:
            rho = sum(1 for q in finite if q <= r) / n
            if r == steps[-1][0]:
                steps[-1] = (r, rho)
            else:
                steps.append((r, rho))
    return steps


#: Pixels between the lines of algorithms whose lines coincide exactly (identical profiles or curves).
COINCIDENT_OFFSET_PX = 3.0


def _groups(keys: Mapping[str, object], order: Sequence[str]) -> list[list[str]]:
    """Names sharing one key, groups of two or more, each in ``order``, in the order of their first member."""
    by_key: dict[object, list[str]] = {}
    for name in order:
        by_key.setdefault(keys[name], []).append(name)
    return [names for names in by_key.values() if len(names) > 1]


def _offsets(groups: Sequence[Sequence[str]]) -> dict[str, float]:
    """Vertical pixel offsets spreading each group's lines around their true place."""
    out: dict[str, float] = {}
    for names in groups:
        for j, name in enumerate(names):
            out[name] = (j - (len(names) - 1) / 2) * COINCIDENT_OFFSET_PX
    return out


def _translate(dy: float) -> str:
    return f' transform="translate(0 {_f(dy)})"' if dy else ""


def coincident_profiles(ratios: Mapping[str, Mapping[str, float]], algorithms: Sequence[str],
                        tau_max: float) -> list[list[str]]:
    """Groups of algorithms whose performance profiles are identical on ``[1, tau_max]`` (their lines
    would be drawn exactly on top of each other), each group in ``algorithms`` order."""
    keys = {a: tuple((round(t, 9), round(r, 9)) for t, r in profile_steps(ratios.get(a, {}), tau_max))
            for a in algorithms}
    return _groups(keys, algorithms)


def profile_svg(
    ratios: Mapping[str, Mapping[str, float]],
    algorithms: Sequence[str],
    colors: Mapping[str, str],
    tau_max: float,
    *,
    width: int = 900,
    height: int = 380,
    scores: Mapping[str, float] | None = None,
) -> str:
    """Performance profiles, one step line per algorithm (drawn best last so it is on top)."""
    legend_w = 250
    ax = _Axes(width, height, left=52, right=legend_w + 12, top=14, bottom=44,
               x0=1.0, x1=float(tau_max), y0=0.0, y1=1.0)
    ax.y0, ax.y1 = -0.02, 1.03
    xticks, xstep = nice_ticks(1.0, tau_max, 6)
    xticks = [t for t in xticks if 1.0 - 1e-9 <= t <= tau_max + 1e-9]
    yticks = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    out = [_svg_open(width, height, "profile", "performance profiles")]
    out.append("<title>Performance profiles: fraction of workloads within a factor tau of the fastest"
               "</title>")
    out += ax.frame(xticks, xstep, yticks, 0.2, "τ (time relative to the fastest)",
                    "ρ(τ) fraction of workloads", yfmt=lambda v: f"{v:.1f}")
    # Best first, so that worse-ranked (dashed) lines lie on top: where lines coincide (ties),
    # the solid line underneath shows through the dashes.
    out.append('<g class="lines" fill="none" stroke-width="2.4" stroke-linejoin="round">')
    n = len(algorithms)
    # Identical profiles (ties on every workload) would hide all but the last drawn: spread them a
    # few pixels apart (and say so in the legend), besides their different dash patterns.
    groups = coincident_profiles(ratios, algorithms, tau_max)
    offsets = _offsets(groups)
    for i, a in enumerate(algorithms):
        steps = profile_steps(ratios.get(a, {}), tau_max)
        d = [f"M{_f(ax.x(1.0))},{_f(ax.y(steps[0][1]))}"]
        for tau, rho in steps[1:]:
            d.append(f"H{_f(ax.x(tau))}V{_f(ax.y(rho))}")
        d.append(f"H{_f(ax.x(tau_max))}")
        # The lines of tied algorithms overlap exactly: vary the dash pattern so each stays visible.
        dash = _dash(i)
        tip = a if scores is None or a not in scores else f"{a} (score {scores[a]:.4f})"
        same = next((g for g in groups if a in g), None)
        if same is not None:
            tip += " — same profile as " + ", ".join(b for b in same if b != a)
        out.append(f'<path d="{"".join(d)}" stroke="{esc(colors[a])}"{dash}{_translate(offsets.get(a, 0.0))}>'
                   f'<title>{esc(tip)}</title></path>')
    out.append("</g>")
    # legend
    lx = width - legend_w
    out.append(f'<g class="legend" font-size="12" fill="#24292f" {_FONT}>')
    notes = [" = ".join(g) for g in groups]
    y = ax.top + 10
    for k, a in enumerate(algorithms):
        y = ax.top + 10 + k * 20
        if y > height - 20:
            out.append(f'<text x="{lx}" y="{_f(y + 4)}" fill="#6a737d">+{n - k} more</text>')
            break
        dash = _dash(k)
        out.append(f'<line x1="{lx}" y1="{_f(y)}" x2="{lx + 24}" y2="{_f(y)}" stroke="{esc(colors[a])}" '
                   f'stroke-width="2.4"{dash}/>')
        label = _truncate(a, 26)
        out.append(f'<text x="{lx + 30}" y="{_f(y + 4)}"><title>{esc(a)}</title>{esc(label)}</text>')
    if notes and y + 28 <= height:  # which lines coincide, and that they are drawn apart on purpose
        y += 24
        out.append(f'<text class="coincident" x="{lx}" y="{_f(y + 4)}" fill="#6a737d">identical profiles, drawn '
                   f'{COINCIDENT_OFFSET_PX:g} px apart:<title>{esc("; ".join(notes))}</title></text>')
        for note in notes:
            y += 16
            if y > height - 8:
                break
            out.append(f'<text class="coincident" x="{lx}" y="{_f(y + 4)}" fill="#6a737d">'
                       f'<title>{esc(note)}</title>{esc(_truncate(note, 34))}</text>')
    out.append("</g></svg>")
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# Per-workload curves
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class CurveSeries:
    """One trial's validation curve: ``points`` are ``(submission_time_s, metric)`` (non-finite
    metrics are gaps); ``hit`` marks where it reached the target, if it did."""

    algorithm: str
    label: str
    points: list[tuple[float, float]]
    hit: tuple[float, float] | None = None


def _curve_key(s: CurveSeries) -> tuple:
    return (tuple((round(x, 9), round(y, 9)) if math.isfinite(x) and math.isfinite(y) else (None, None)
                  for x, y in s.points), s.hit)


def identical_curves(series: Sequence[CurveSeries]) -> list[list[str]]:
    """Groups of algorithms (two or more) that have trials with exactly the same curve: drawn
    as they are, the last one drawn would hide the others."""
    by_key: dict[tuple, list[str]] = {}
    for s in series:
        by_key.setdefault(_curve_key(s), []).append(s.algorithm)
    groups = [list(dict.fromkeys(algs)) for algs in by_key.values()]
    return [g for g in groups if len(g) > 1]


def _curve_offsets(series: Sequence[CurveSeries]) -> list[float]:
    """Per series, the pixel offset that keeps it visible beside identical curves of other algorithms."""
    by_key: dict[tuple, list[str]] = {}
    for s in series:
        algs = by_key.setdefault(_curve_key(s), [])
        if s.algorithm not in algs:
            algs.append(s.algorithm)
    out = []
    for s in series:
        algs = by_key[_curve_key(s)]
        out.append((algs.index(s.algorithm) - (len(algs) - 1) / 2) * COINCIDENT_OFFSET_PX if len(algs) > 1 else 0.0)
    return out


def _robust_range(values: Sequence[float]) -> tuple[float, float]:
    """Range of ``values`` with far outliers (e.g. a loss blowing up before a divergence) cut off."""
    v = sorted(values)
    if len(v) < 8:
        return v[0], v[-1]

    def q(p: float) -> float:
        pos = p * (len(v) - 1)
        i = int(pos)
        j = min(i + 1, len(v) - 1)
        return v[i] + (v[j] - v[i]) * (pos - i)

    q_lo, q_hi = q(0.05), q(0.95)
    span = max(q_hi - q_lo, 1e-12)
    return max(v[0], q_lo - span), min(v[-1], q_hi + span)


def curves_svg(
    series: Sequence[CurveSeries],
    colors: Mapping[str, str],
    *,
    target: float | None,
    ylabel: str,
    label: str,
    uid: str,
    width: int = 380,
    height: int = 250,
) -> str:
    """Validation metric vs submission time, one polyline per trial, target as a dashed line.

    Points outside the (outlier-trimmed) y range are clipped.  ``label`` names the plot (title and
    accessible label); ``uid`` makes its clip-path id unique in the page (letters, digits, ``-``)."""
    xs = [x for s in series for x, y in s.points if math.isfinite(x) and math.isfinite(y)]
    ys = [y for s in series for x, y in s.points if math.isfinite(x) and math.isfinite(y)]
    x_max = max(xs, default=1.0) or 1.0
    unit, div = time_unit(x_max)
    if ys:
        y_lo, y_hi = _robust_range(ys)
    else:
        y_lo, y_hi = (target, target) if target is not None and math.isfinite(target) else (0.0, 1.0)
    if target is not None and math.isfinite(target):
        y_lo, y_hi = min(y_lo, target), max(y_hi, target)
    if y_hi - y_lo < 1e-12 * max(1.0, abs(y_hi)):
        pad = abs(y_hi) * 0.05 or 0.5
        y_lo, y_hi = y_lo - pad, y_hi + pad
    pad = (y_hi - y_lo) * 0.06
    y_lo, y_hi = y_lo - pad, y_hi + pad
    ax = _Axes(width, height, left=56, right=12, top=10, bottom=40,
               x0=0.0, x1=x_max / div * 1.02, y0=y_lo, y1=y_hi)
    xticks, xstep = nice_ticks(0.0, ax.x1, 5)
    xticks = [t for t in xticks if t <= ax.x1 + 1e-12]
    yticks, ystep = nice_ticks(y_lo, y_hi, 5)
    yticks = [t for t in yticks if y_lo <= t <= y_hi]
    clip = "clip-" + "".join(c if c.isascii() and c.isalnum() else "-" for c in uid)
    out = [_svg_open(width, height, "curves", f"validation curves: {label}")]
    out.append(f"<title>{esc(label)}</title>")
    out.append(f'<defs><clipPath id="{esc(clip)}"><rect x="{_f(ax.left)}" y="{_f(ax.top)}" '
               f'width="{_f(ax.pw)}" height="{_f(ax.ph)}"/></clipPath></defs>')
    out += ax.frame(xticks, xstep, yticks, ystep, f"submission time ({unit})", ylabel)
    out.append(f'<g clip-path="url(#{esc(clip)})">')
    if target is not None and math.isfinite(target):
        ty = _f(ax.y(target))
        out.append(f'<line class="target" x1="{_f(ax.left)}" y1="{ty}" x2="{_f(ax.left + ax.pw)}" y2="{ty}" '
                   f'stroke="#24292f" stroke-width="1.3" stroke-dasharray="6 4"><title>target '
                   f'{esc(f"{target:.6g}")}</title></line>')
    out.append('<g fill="none" stroke-width="1.6" stroke-opacity="0.75" stroke-linejoin="round">')
    # identical curves of different algorithms are spread a few pixels apart, the later ones dashed
    offsets = _curve_offsets(series)
    for s, dy in zip(series, offsets):
        color = esc(colors.get(s.algorithm, "#7F7F7F"))
        shift = _translate(dy) + (' stroke-dasharray="5 3"' if dy > 0 else "")
        segments: list[list[str]] = [[]]
        for x, y in s.points:
            if math.isfinite(x) and math.isfinite(y):
                segments[-1].append(f"{_f(ax.x(x / div))},{_f(ax.y(y))}")
            elif segments[-1]:
                segments.append([])
        for seg in segments:
            if len(seg) == 1:
                cx, cy = seg[0].split(",")
                out.append(f'<circle cx="{cx}" cy="{cy}" r="2" fill="{color}" stroke="none"{_translate(dy)}>'
                           f"<title>{esc(s.label)}</title></circle>")
            elif seg:
                out.append(f'<polyline points="{" ".join(seg)}" stroke="{color}"{shift}><title>{esc(s.label)}'
                           f"</title></polyline>")
    out.append("</g>")
    for s, dy in zip(series, offsets):
        if s.hit is not None and all(math.isfinite(v) for v in s.hit):
            color = esc(colors.get(s.algorithm, "#7F7F7F"))
            out.append(f'<circle class="hit" cx="{_f(ax.x(s.hit[0] / div))}" cy="{_f(ax.y(s.hit[1]))}" r="3.2" '
                       f'fill="{color}" stroke="#fff" stroke-width="1"{_translate(dy)}><title>{esc(s.label)}: reached the '
                       f'target at {esc(f"{s.hit[0]:.4g}")} s</title></circle>')
    out.append("</g></svg>")
    return "\n".join(out)
