"""Server-drawn SVG line charts: no JavaScript, no CDN, readable offline and in tests."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def line_chart(
    title: str,
    xs: Sequence[str],
    series: dict[str, Sequence[float | None]],
    *,
    width: int = 640,
    height: int = 220,
    y_min: float | None = None,
    y_max: float | None = None,
    fmt: str = "{:.0f}",
) -> str:
    """One polyline per series over shared x labels; gaps (None) break the line."""
    pad_l, pad_r, pad_t, pad_b = 48, 28, 28, 36
    values = [v for vals in series.values() for v in vals if v is not None]
    lo = y_min if y_min is not None else min(values, default=0.0)
    hi = y_max if y_max is not None else max(values, default=1.0)
    if hi == lo:
        hi = lo + 1
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b
    step = plot_w / max(len(xs) - 1, 1)

    def point(i: int, v: float) -> str:
        return f"{pad_l + i * step:.1f},{pad_t + plot_h * (1 - (v - lo) / (hi - lo)):.1f}"

    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}">',
        f'<text x="{pad_l}" y="16" class="chart-title">{escape(title)}</text>',
        f'<line x1="{pad_l}" y1="{pad_t + plot_h}" x2="{width - pad_r}" '
        f'y2="{pad_t + plot_h}" stroke="#999"/>',
    ]
    for frac in (0, 0.5, 1):
        y = pad_t + plot_h * (1 - frac)
        parts.append(
            f'<text x="{pad_l - 6}" y="{y + 4:.1f}" text-anchor="end" '
            f'class="tick">{escape(fmt.format(lo + frac * (hi - lo)))}</text>'
        )
    for i, x in enumerate(xs):
        if len(xs) <= 8 or i % max(len(xs) // 6, 1) == 0 or i == len(xs) - 1:
            parts.append(
                f'<text x="{pad_l + i * step:.1f}" y="{height - 12}" '
                f'text-anchor="middle" class="tick">{escape(x)}</text>'
            )
    for n, (name, vals) in enumerate(series.items()):
        colour = PALETTE[n % len(PALETTE)]
        run: list[str] = []
        runs = []
        for i, v in enumerate(vals):
            if v is None:
                if run:
                    runs.append(run)
                run = []
            else:
                run.append(point(i, v))
        if run:
            runs.append(run)
        for r in runs:
            if len(r) == 1:
                cx, cy = r[0].split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="{colour}"/>')
            else:
                parts.append(
                    f'<polyline class="series" data-series="{escape(name)}" '
                    f'fill="none" stroke="{colour}" stroke-width="2" '
                    f'points="{" ".join(r)}"/>'
                )
        parts.append(
            f'<text x="{width - pad_r - 4}" y="{pad_t + 14 * n + 4}" '
            f'text-anchor="end" fill="{colour}" class="legend">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
