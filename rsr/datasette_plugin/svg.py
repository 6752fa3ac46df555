"""Small inline SVG charts for the run summary: a bar chart and a line chart.

Built here rather than with matplotlib so the page needs nothing beyond the
base install (matplotlib is the `plots` extra) and stays a few kilobytes. Every
label is escaped: bucket names and values come from the ledger.
"""

from markupsafe import Markup, escape

WIDTH, HEIGHT = 420, 200
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 14, 46


def _frame(title, body, y_label, x_label):
    return Markup(
        f'<svg class="rsr-chart" role="img" xmlns="http://www.w3.org/2000/svg" '
        f'width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'font-family="sans-serif" font-size="11">'
        f"<title>{escape(title)}</title>"
        f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - RIGHT}" y2="{HEIGHT - BOTTOM}" '
        f'stroke="#444"/>'
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{HEIGHT - BOTTOM}" stroke="#444"/>'
        f'<text x="12" y="{TOP + (HEIGHT - TOP - BOTTOM) / 2}" text-anchor="middle" '
        f'transform="rotate(-90 12 {TOP + (HEIGHT - TOP - BOTTOM) / 2})">{escape(y_label)}</text>'
        f'<text x="{LEFT + (WIDTH - LEFT - RIGHT) / 2}" y="{HEIGHT - 4}" '
        f'text-anchor="middle">{escape(x_label)}</text>'
        f"{body}</svg>"
    )


def bar_chart(bars: dict, title: str, x_label: str, y_label: str) -> Markup:
    "Bars of {label: count}, each with its count above it."
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = max(bars.values(), default=0) or 1
    slot = plot_w / max(len(bars), 1)
    parts = []
    for i, (label, count) in enumerate(bars.items()):
        h = plot_h * count / top
        x = LEFT + i * slot + slot * 0.15
        y = TOP + plot_h - h
        parts.append(
            f'<rect class="rsr-bar" x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{h:.1f}" fill="#4a7ab5"><title>{escape(label)}: {count}</title></rect>'
            f'<text x="{x + slot * 0.35:.1f}" y="{y - 2:.1f}" text-anchor="middle">{count}</text>'
            f'<text x="{x + slot * 0.35:.1f}" y="{HEIGHT - BOTTOM + 13}" text-anchor="middle" '
            f'font-size="9">{escape(label)}</text>'
        )
    return _frame(title, "".join(parts), y_label, x_label)


def line_chart(points: list, title: str, x_label: str, y_label: str) -> Markup:
    """A line through (x, y) points with y in [0, 1], x evenly spaced (log-2 k
    values read best that way), each point labelled with its y."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(points), 1)
    coords = [
        (LEFT + step * (i + 0.5), TOP + plot_h * (1 - max(0.0, min(1.0, y))), x, y)
        for i, (x, y) in enumerate(points)
    ]
    parts = [
        f'<text x="{LEFT - 4}" y="{TOP + 4}" text-anchor="end">1</text>',
        f'<text x="{LEFT - 4}" y="{TOP + plot_h}" text-anchor="end">0</text>',
    ]
    if coords:
        path = " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy, _, _ in coords)
        parts.append(f'<polyline fill="none" stroke="#c0504d" stroke-width="2" points="{path}"/>')
    for cx, cy, x, y in coords:
        parts.append(
            f'<circle class="rsr-point" cx="{cx:.1f}" cy="{cy:.1f}" r="3" fill="#c0504d">'
            f"<title>{escape(x)}: {escape(y)}</title></circle>"
            f'<text x="{cx:.1f}" y="{cy - 6:.1f}" text-anchor="middle" font-size="9">'
            f"{escape(f'{y:.2f}')}</text>"
            f'<text x="{cx:.1f}" y="{HEIGHT - BOTTOM + 13}" text-anchor="middle">{escape(x)}</text>'
        )
    return _frame(title, "".join(parts), y_label, x_label)
