"""A small SVG plotter for the run report: figures that share one time axis, as inline ``<svg>`` text.

Nothing external: no fonts, scripts or styles are fetched, and colours are CSS classes the page defines
(``harness.report.html``), so the same figure reads the same wherever the file is opened. A figure has an x
axis in seconds (the same domain and width in every figure of a page, so fault windows line up), and either
a numeric y axis (linear or log) or categorical lanes (one row per node or per metric).

Why not a plotting library: the ones that inline everything in one HTML file either embed a megabyte of
JavaScript per page (Plotly, Bokeh) or render raster images (Matplotlib, which would also bring its own
font files); the report needs a few hundred lines of SVG.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

import numpy as np

__all__ = ["WIDTH", "Figure", "nice_ticks"]

WIDTH = 1180  # px, every figure of a page
LEFT, RIGHT, TOP, BOTTOM = 118, 16, 22, 26


def _q(v: float) -> str:
    """A coordinate, short: one decimal."""
    if abs(v) >= 1e7:
        return f"{v:.0f}"
    s = f"{v:.1f}"
    return s[:-2] if s.endswith(".0") else s


def _attr(text: object) -> str:
    return escape(str(text), quote=True)


def nice_ticks(lo: float, hi: float, count: int = 8) -> list[float]:
    """Round tick values covering [lo, hi], about ``count`` of them (1, 2, 5 × 10^k steps)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    ticks, k = [], 0
    while first + k * step <= hi + step * 1e-9:
        ticks.append(round(first + k * step, 10))
        k += 1
    return ticks


def _fmt_tick(v: float) -> str:
    if v == 0:
        return "0"
    if v == int(v) and abs(v) < 1e7:
        return str(int(v))
    if abs(v) >= 1e7 or abs(v) < 0.01:
        return f"{v:.3g}"
    return f"{v:.6g}"


@dataclass
class Figure:
    """One plot. ``x0``..``x1`` is the shared time domain (seconds); ``height`` the plotting area's.

    Numeric figures take ``y=(lo, hi)`` (``log=True`` for a log axis); lane figures take ``lanes=[label,
    ...]`` (top to bottom). Add marks with the methods below, then ``render()``.
    """

    id: str
    title: str
    x0: float
    x1: float
    height: int = 150
    y: tuple[float, float] | None = None
    log: bool = False
    lanes: Sequence[str] = ()
    y_label: str = ""
    caption: str = ""
    _body: list[str] = field(default_factory=list)
    _back: list[str] = field(default_factory=list)
    _legend: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.x1 <= self.x0:
            self.x1 = self.x0 + 1.0
        if self.lanes:
            self.height = max(self.height if self.y else 0, 22 * len(self.lanes))
        if self.y is not None:
            lo, hi = self.y
            if self.log:
                lo = max(lo, 1e-9)
                hi = max(hi, lo * 10)
            elif hi <= lo:
                hi = lo + 1.0
            self.y = (lo, hi)

    # -- scales
    @property
    def plot_width(self) -> float:
        return WIDTH - LEFT - RIGHT

    def sx(self, t: float) -> float:
        return LEFT + (t - self.x0) / (self.x1 - self.x0) * self.plot_width

    def sy(self, v: float) -> float:
        assert self.y is not None
        lo, hi = self.y
        if self.log:
            v = max(v, lo)
            f = (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
        else:
            f = (v - lo) / (hi - lo)
        return TOP + self.height - min(max(f, 0.0), 1.0) * self.height

    def sx_array(self, ts: Sequence[float] | np.ndarray) -> np.ndarray:
        """``sx`` of every element of ``ts``."""
        t = np.asarray(ts, dtype=np.float64)
        out: np.ndarray = LEFT + (t - self.x0) / (self.x1 - self.x0) * self.plot_width
        return out

    def sy_array(self, vs: Sequence[float] | np.ndarray) -> np.ndarray:
        """``sy`` of every element of ``vs``."""
        assert self.y is not None
        lo, hi = self.y
        v = np.asarray(vs, dtype=np.float64)
        if self.log:
            f = (np.log10(np.maximum(v, lo)) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
        else:
            f = (v - lo) / (hi - lo)
        out: np.ndarray = TOP + self.height - np.clip(f, 0.0, 1.0) * self.height
        return out

    def lane_y(self, lane: int) -> tuple[float, float]:
        """Top and height of lane ``lane``."""
        h = self.height / max(len(self.lanes), 1)
        return TOP + lane * h, h

    # -- marks
    def band(self, t0: float, t1: float, cls: str, title: str = "", data: str = "") -> None:
        """A window over the whole height (a fault, an outage), behind everything else."""
        x0, x1 = self.sx(max(t0, self.x0)), self.sx(min(t1, self.x1))
        extra = f' data-event="{_attr(data)}"' if data else ""
        tip = f"<title>{escape(title)}</title>" if title else ""
        self._back.append(f'<rect class="{cls}" x="{_q(x0)}" y="{TOP}" width="{_q(max(x1 - x0, 1.5))}" '
                          f'height="{self.height}"{extra}>{tip}</rect>')  # fmt: skip

    def line(self, ts: Sequence[float], vs: Sequence[float | None], cls: str, label: str = "",
             *, step: bool = False) -> None:  # fmt: skip
        """A polyline (a step line with ``step``); a None or NaN value breaks it."""
        parts: list[str] = []
        pen = False
        values = np.array([math.nan if v is None else v for v in vs], dtype=np.float64)
        if len(values) != len(ts):
            raise ValueError(f"{len(ts)} times but {len(values)} values")
        xs, ys = self.sx_array(ts).tolist(), self.sy_array(values).tolist()  # every point at once
        for x, y in zip(xs, ys, strict=True):
            if math.isnan(y):
                pen = False
                continue
            if not pen:
                parts.append(f"M{_q(x)} {_q(y)}")
                pen = True
            elif step:
                parts.append(f"H{_q(x)}V{_q(y)}")
            else:
                parts.append(f"L{_q(x)} {_q(y)}")
        if parts:
            self._body.append(f'<path class="ln {cls}" d="{"".join(parts)}"/>')
        if label:
            self._legend.append((cls, label))

    def points(
        self, ts: Sequence[float] | np.ndarray, vs: Sequence[float] | np.ndarray, cls: str, label: str = ""
    ) -> None:
        """One small square per point, drawn as one path (a hundred thousand points stay one element); the
        coordinates are computed for all points at once."""
        xs, ys = self.sx_array(ts) - 1, self.sy_array(vs) - 1
        d = "".join(f"M{_q(x)} {_q(y)}h2.2v2.2h-2.2z" for x, y in zip(xs.tolist(), ys.tolist(), strict=True))
        if d:
            self._body.append(f'<path class="pt {cls}" d="{d}"/>')
        if label:
            self._legend.append((cls, label))

    def segment(self, lane: int, t0: float, t1: float, cls: str, title: str = "", label: str = "") -> None:
        """A bar in lane ``lane`` from ``t0`` to ``t1`` (a state held over time)."""
        top, h = self.lane_y(lane)
        x0, x1 = self.sx(max(t0, self.x0)), self.sx(min(t1, self.x1))
        tip = f"<title>{escape(title)}</title>" if title else ""
        self._body.append(f'<rect class="seg {cls}" x="{_q(x0)}" y="{_q(top + 2)}" '
                          f'width="{_q(max(x1 - x0, 0.8))}" height="{_q(max(h - 4, 2))}">{tip}</rect>')  # fmt: skip
        if label and x1 - x0 > 7 * len(label) + 6:
            self._body.append(f'<text class="seg-label" x="{_q(x0 + 4)}" y="{_q(top + h / 2 + 4)}">'
                              f"{escape(label)}</text>")  # fmt: skip

    def marker(self, t: float, cls: str, title: str = "") -> None:
        """A vertical tick at ``t`` over the whole height (an instant: a harness action's start)."""
        x = self.sx(t)
        tip = f"<title>{escape(title)}</title>" if title else ""
        self._body.append(f'<line class="{cls}" x1="{_q(x)}" x2="{_q(x)}" y1="{TOP}" '
                          f'y2="{TOP + self.height}">{tip}</line>')  # fmt: skip

    def legend(self, cls: str, label: str) -> None:
        self._legend.append((cls, label))

    # -- output
    def _x_axis(self) -> str:
        y = TOP + self.height
        out = [f'<line class="axis" x1="{LEFT}" x2="{_q(LEFT + self.plot_width)}" y1="{y}" y2="{y}"/>']
        for t in nice_ticks(self.x0, self.x1, 12):
            x = self.sx(t)
            out.append(f'<line class="grid" x1="{_q(x)}" x2="{_q(x)}" y1="{TOP}" y2="{y}"/>')
            out.append(
                f'<text class="tick" x="{_q(x)}" y="{y + 15}" text-anchor="middle">{_fmt_tick(t)}s</text>'
            )
        return "".join(out)

    def _y_axis(self) -> str:
        out = [f'<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{TOP + self.height}"/>']
        if self.lanes:
            for i, name in enumerate(self.lanes):
                top, h = self.lane_y(i)
                out.append(f'<text class="lane" x="{LEFT - 6}" y="{_q(top + h / 2 + 4)}" text-anchor="end">'
                           f"{escape(name)}</text>")  # fmt: skip
                if i:
                    out.append(f'<line class="grid" x1="{LEFT}" x2="{_q(LEFT + self.plot_width)}" '
                               f'y1="{_q(top)}" y2="{_q(top)}"/>')  # fmt: skip
            return "".join(out)
        assert self.y is not None
        lo, hi = self.y
        if self.log:
            ticks = [10.0**k for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)]
            ticks = [t for t in ticks if lo <= t <= hi * 1.0001]
        else:
            ticks = nice_ticks(lo, hi, max(2, self.height // 32))
        for v in ticks:
            y = self.sy(v)
            out.append(
                f'<line class="grid" x1="{LEFT}" x2="{_q(LEFT + self.plot_width)}" y1="{_q(y)}" y2="{_q(y)}"/>'
            )
            out.append(
                f'<text class="tick" x="{LEFT - 6}" y="{_q(y + 4)}" text-anchor="end">{_fmt_tick(v)}</text>'
            )
        if self.y_label:
            out.append(f'<text class="ylabel" x="12" y="{_q(TOP + self.height / 2)}" '
                       f'transform="rotate(-90 12 {_q(TOP + self.height / 2)})" text-anchor="middle">'
                       f"{escape(self.y_label)}</text>")  # fmt: skip
        return "".join(out)

    def _legend_svg(self) -> str:
        out, x = [], LEFT + 4
        for cls, label in self._legend:
            out.append(f'<rect class="key {cls}" x="{x}" y="5" width="10" height="10"/>'
                       f'<text class="legend" x="{x + 14}" y="14">{escape(label)}</text>')  # fmt: skip
            x += 26 + 7 * len(label)
        return "".join(out)

    def render(self) -> str:
        total = TOP + self.height + BOTTOM
        clip = f"clip-{self.id}"
        return (
            f'<figure class="plot" id="{_attr(self.id)}" data-plot="{_attr(self.id)}">'
            f"<figcaption>{escape(self.title)}"
            + (f' <span class="cap">{escape(self.caption)}</span>' if self.caption else "")
            + "</figcaption>"
            f'<svg viewBox="0 0 {WIDTH} {total}" width="{WIDTH}" '
            f'height="{total}" data-x0="{self.x0}" data-x1="{self.x1}" data-left="{LEFT}" '
            f'data-width="{_q(self.plot_width)}" role="img" aria-label="{_attr(self.title)}">'
            f'<defs><clipPath id="{_attr(clip)}"><rect x="{LEFT}" y="{TOP - 1}" width="{_q(self.plot_width)}" '
            f'height="{self.height + 2}"/></clipPath></defs>'
            + self._legend_svg()
            + self._y_axis()
            + self._x_axis()
            + f'<g clip-path="url(#{_attr(clip)})">'
            + "".join(self._back)
            + "".join(self._body)
            + "</g>"
            + f'<line class="cursor" x1="-10" x2="-10" y1="{TOP}" y2="{TOP + self.height}"/>'
            + "</svg></figure>"
        )
