"""Server-drawn SVG charts: no JavaScript, no CDN, readable offline and in tests. Every bar is a
link to the mentions it counts and names its exact figures on hover. A chart is a labelled
group, not an image: a screen reader reaches each bar's link and hears its figures."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


# Label colours that keep their meaning on every chart (and pass contrast on white).
LABEL_COLOURS = {"negative": "#c62828", "neutral": "#8a8f98", "positive": "#2e7d32"}


def _linked(href: str, attributes: str, inner: str) -> str:
    """An SVG element group, as a link where there is somewhere to go (a report saved as a
    file has no dashboard to link to)."""
    if href:
        return f'<a href="{escape(href)}" {attributes}>{inner}</a>'
    return f"<g {attributes}>{inner}</g>"


def stacked_bars(
    title: str,
    xs: Sequence[str],
    stacks: dict[str, Sequence[int]],
    href: Callable[[int, str], str],
    *,
    x_labels: Sequence[str] | None = None,
    width: int = 640,
    height: int = 220,
) -> str:
    """One bar per x, one segment per stack (bottom first); each segment links to `href(i,
    stack)` and names its exact figures on hover."""
    pad_l, pad_r, pad_t, pad_b = 40, 12, 40, 34
    totals = [sum(stacks[k][i] for k in stacks) for i in range(len(xs))]
    top = max(totals, default=0) or 1
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b
    slot = plot_w / max(len(xs), 1)
    bar = max(slot * 0.75, 1.0)
    labels = list(x_labels or xs)
    parts = [
        f'<svg class="chart bars" role="group" aria-label="{escape(title)}" '
        f'viewBox="0 0 {width} {height}" preserveAspectRatio="xMinYMin meet">',
        f"<title>{escape(title)}</title>",
        f'<text x="{pad_l}" y="16" class="chart-title">{escape(title)}</text>',
    ]
    for n, name in enumerate(stacks):
        colour = LABEL_COLOURS.get(name, PALETTE[n % len(PALETTE)])
        parts.append(
            f'<rect x="{pad_l + 90 * n}" y="24" width="10" height="10" fill="{colour}"/>'
            f'<text x="{pad_l + 90 * n + 14}" y="33" class="legend">{escape(name)}</text>'
        )
    for frac in (0, 0.5, 1):
        y = pad_t + plot_h * (1 - frac)
        parts.append(
            f'<text x="{pad_l - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">'
            f"{top * frac:.0f}</text>"
            f'<line x1="{pad_l}" y1="{y:.1f}" x2="{width - pad_r}" y2="{y:.1f}" class="grid"/>'
        )
    for i, x in enumerate(xs):
        left = pad_l + i * slot + (slot - bar) / 2
        y = pad_t + plot_h
        for n, name in enumerate(stacks):
            count = stacks[name][i]
            if not count:
                continue
            h = plot_h * count / top
            y -= h
            colour = LABEL_COLOURS.get(name, PALETTE[n % len(PALETTE)])
            share = f" ({count / totals[i]:.0%})" if totals[i] else ""
            link = href(i, name)
            parts.append(
                _linked(
                    link,
                    f'class="segment" data-x="{escape(x)}" data-stack="{escape(name)}" '
                    f'data-count="{count}"',
                    f'<rect x="{left:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                    f'fill="{colour}"><title>{escape(labels[i])}: {count} {escape(name)} of '
                    f"{totals[i]}{share}</title></rect>",
                )
            )
        every = max(len(xs) // 7, 1)
        last = len(xs) - 1
        if len(xs) <= 10 or (i % every == 0 and last - i >= every / 2) or i == last:
            parts.append(
                f'<text x="{left + bar / 2:.1f}" y="{height - 12}" text-anchor="middle" '
                f'class="tick">{escape(labels[i])}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def bar_list(
    title: str,
    rows: Sequence[tuple[str, float, str, str]],
    *,
    width: int = 420,
    row_height: int = 24,
) -> str:
    """Horizontal bars, one per (name, value, link, caption): the value sets the bar's length
    against the largest; the caption is what the row says in words ("12 mentions, 31 %")."""
    pad_t, name_w = 26, 130
    height = pad_t + row_height * len(rows) + 6
    top = max((v for _, v, _, _ in rows), default=0) or 1
    bar_w = width - name_w - 150
    parts = [
        f'<svg class="chart list" role="group" aria-label="{escape(title)}" '
        f'viewBox="0 0 {width} {height}" preserveAspectRatio="xMinYMin meet">',
        f"<title>{escape(title)}</title>",
        f'<text x="4" y="16" class="chart-title">{escape(title)}</text>',
    ]
    for i, (name, value, link, caption) in enumerate(rows):
        y = pad_t + i * row_height
        short = name if len(name) <= 18 else name[:17] + "…"
        parts.append(
            _linked(
                link,
                f'class="bar-row" data-name="{escape(name)}" data-value="{value:g}"',
                f"<title>{escape(name)}: {escape(caption)}</title>"
                f'<text x="4" y="{y + 15}" class="tick">{escape(short)}</text>'
                f'<rect x="{name_w}" y="{y + 4}" width="{max(bar_w * value / top, 1):.1f}" '
                f'height="{row_height - 8}" fill="{PALETTE[0]}"/>'
                f'<text x="{name_w + bar_w + 6}" y="{y + 15}" class="tick">'
                f"{escape(caption)}</text>",
            )
        )
    parts.append("</svg>")
    return "".join(parts)
