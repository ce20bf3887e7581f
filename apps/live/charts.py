"""Charts of the live page, drawn on the server as SVG so the page needs no
charting library and no internet.

Every slice and bar carries `data-label` and `data-count`, so tests and scripts
can read the numbers back from the markup.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from xml.sax.saxutils import escape, quoteattr

# Colour-blind-safe palette (Okabe and Ito, "Color Universal Design", 2008),
# extended with two darker tones for the eight states.
PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#F0E442",
    "#000000",
    "#7F7F7F",
    "#8C564B",
)
OTHER_COLOUR = "#BBBBBB"
BAR_COLOUR = "#0072B2"
FONT = "font-family='system-ui, sans-serif'"


def pie_svg(
    title: str, counts: Mapping[str, int], colour_order: Sequence[str] = ()
) -> str:
    """Draw a pie of `counts` with a legend of counts and shares.

    A label keeps its colour between updates: labels in `colour_order` take the
    palette colour of their position there, other labels share a grey.
    """
    width, height = 380, 230
    centre_x, centre_y, radius = 105, 115, 95
    total = sum(counts.values())
    parts = [_svg_open(title, width, height)]

    if total == 0:
        parts.append(
            f"<circle cx='{centre_x}' cy='{centre_y}' r='{radius}' fill='#EEEEEE'/>"
            f"<text x='{centre_x}' y='{centre_y + 5}' text-anchor='middle' {FONT} "
            "font-size='14' fill='#555555'>No cases yet</text>"
        )
        parts.append("</svg>")
        return "".join(parts)

    angle = -math.pi / 2  # Slices start at twelve o'clock and run clockwise.
    legend_y = 20
    for label, count in counts.items():
        colour = _colour(label, colour_order)
        share = count / total
        if count > 0:
            parts.append(
                _slice(centre_x, centre_y, radius, angle, share, colour, label, count)
            )
        angle += share * 2 * math.pi
        parts.append(
            f"<rect x='220' y='{legend_y - 11}' width='12' height='12' "
            f"fill='{colour}'/>"
            f"<text x='238' y='{legend_y}' {FONT} font-size='13' fill='#222222'>"
            f"{escape(label)} {count:,} ({share:.0%})</text>"
        )
        legend_y += 20
    parts.append("</svg>")
    return "".join(parts)


def bar_svg(title: str, counts: Mapping[str, int], axis_title: str) -> str:
    """Draw one bar per label of `counts`, in the given order, with the labels on
    the x axis and case counts on the y axis."""
    width, height = 520, 250
    left, right, top, bottom = 56, 12, 16, 52
    plot_width = width - left - right
    plot_height = height - top - bottom
    top_value, step = _axis_scale(max(counts.values(), default=0))
    parts = [_svg_open(title, width, height)]

    # Horizontal grid lines with their values on the y axis.
    for tick in range(0, top_value + 1, step):
        y = top + plot_height - plot_height * tick / top_value
        parts.append(
            f"<line x1='{left}' x2='{width - right}' y1='{y:.1f}' y2='{y:.1f}' "
            "stroke='#E0E0E0'/>"
            f"<text x='{left - 6}' y='{y + 4:.1f}' text-anchor='end' {FONT} "
            f"font-size='11' fill='#444444'>{tick:,}</text>"
        )

    slot = plot_width / max(len(counts), 1)
    bar_width = slot * 0.7
    for index, (label, count) in enumerate(counts.items()):
        bar_height = plot_height * count / top_value
        x = left + index * slot + (slot - bar_width) / 2
        y = top + plot_height - bar_height
        centre = x + bar_width / 2
        parts.append(
            f"<rect class='bar' data-label={quoteattr(label)} data-count='{count}' "
            f"x='{x:.1f}' y='{y:.1f}' width='{bar_width:.1f}' "
            f"height='{bar_height:.1f}' fill='{BAR_COLOUR}'>"
            f"<title>{escape(label)}: {count:,}</title></rect>"
            f"<text x='{centre:.1f}' y='{top + plot_height + 16}' "
            f"text-anchor='middle' {FONT} font-size='12' fill='#222222'>"
            f"{escape(label)}</text>"
        )
        if count > 0:
            parts.append(
                f"<text x='{centre:.1f}' y='{y - 4:.1f}' text-anchor='middle' "
                f"{FONT} font-size='11' fill='#222222'>{count:,}</text>"
            )

    parts.append(
        f"<line x1='{left}' x2='{width - right}' y1='{top + plot_height}' "
        f"y2='{top + plot_height}' stroke='#444444'/>"
        f"<text x='{left + plot_width / 2:.1f}' y='{height - 8}' "
        f"text-anchor='middle' {FONT} font-size='12' fill='#444444'>"
        f"{escape(axis_title)}</text>"
        f"<text transform='translate(14 {top + plot_height / 2:.1f}) rotate(-90)' "
        f"text-anchor='middle' {FONT} font-size='12' fill='#444444'>cases</text>"
        "</svg>"
    )
    return "".join(parts)


def _svg_open(title: str, width: int, height: int) -> str:
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width} {height}' "
        f"role='img' aria-label={quoteattr(title)}><title>{escape(title)}</title>"
    )


def _slice(
    centre_x: float,
    centre_y: float,
    radius: float,
    start: float,
    share: float,
    colour: str,
    label: str,
    count: int,
) -> str:
    attributes = (
        f"class='slice' data-label={quoteattr(label)} data-count='{count}' "
        f"fill='{colour}' stroke='#FFFFFF' stroke-width='1'"
    )
    tooltip = f"<title>{escape(label)}: {count:,}</title>"
    if share >= 1:
        # An arc from a point back to itself draws nothing, so a whole pie is a circle.
        return (
            f"<circle {attributes} cx='{centre_x}' cy='{centre_y}' r='{radius}'>"
            f"{tooltip}</circle>"
        )
    end = start + share * 2 * math.pi
    x1 = centre_x + radius * math.cos(start)
    y1 = centre_y + radius * math.sin(start)
    x2 = centre_x + radius * math.cos(end)
    y2 = centre_y + radius * math.sin(end)
    large_arc = 1 if share > 0.5 else 0
    path = (
        f"M{centre_x},{centre_y} L{x1:.2f},{y1:.2f} "
        f"A{radius},{radius} 0 {large_arc} 1 {x2:.2f},{y2:.2f} Z"
    )
    return f"<path {attributes} d='{path}'>{tooltip}</path>"


def _colour(label: str, colour_order: Sequence[str]) -> str:
    if label in colour_order:
        return PALETTE[colour_order.index(label) % len(PALETTE)]
    return OTHER_COLOUR


def _axis_scale(maximum: int) -> tuple[int, int]:
    """Return (top of the y axis, tick step): a round step, at most 5 ticks."""
    if maximum <= 0:
        return 1, 1
    raw_step = maximum / 4
    magnitude = 10 ** math.floor(math.log10(raw_step)) if raw_step >= 1 else 1
    step = next(
        factor * magnitude for factor in (1, 2, 5, 10) if factor * magnitude >= raw_step
    )
    step = max(int(step), 1)
    return math.ceil(maximum / step) * step, step
