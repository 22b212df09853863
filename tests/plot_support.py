"""Checks of a drawn matplotlib figure, as a reader sees it: text that fits and never collides.

Any test that draws a figure can call :func:`text_problems` (or :func:`assert_readable`)
on it. It draws the figure with the Agg renderer and asks matplotlib for every visible
text's extent in pixels (``Text.get_window_extent``): titles, axis labels, tick labels,
annotations, legend entries. A text that leaves the figure is cut off in the PNG; two
texts whose boxes intersect print over each other. Both are reported by what they say.
"""

from __future__ import annotations

from itertools import combinations

from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.transforms import Bbox

#: Pixels of slack: anti-aliased glyph edges may touch without anyone noticing.
TOLERANCE_PX = 1.0


def visible_texts(fig: Figure) -> list[Text]:
    """Every text a reader sees in ``fig`` (non-empty, visible, with its parents visible).

    An axis keeps Text objects for ticks outside its view, with stale positions; only the
    ticks it draws count (``Axis._update_ticks`` is what ``Axis.draw`` itself asks).
    """
    fig.canvas.draw()
    tick_labels: set[int] = set()
    drawn: list[Text] = []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for tick in [*axis.get_major_ticks(), *axis.get_minor_ticks()]:
                tick_labels.update((id(tick.label1), id(tick.label2)))
            if ax.get_visible() and axis.get_visible():
                for tick in axis._update_ticks():  # type: ignore[union-attr]
                    drawn += [label for label in (tick.label1, tick.label2) if label.get_visible()]
    found = []
    for text in [*fig.findobj(Text), *drawn]:
        if id(text) in tick_labels and text not in drawn:
            continue
        if not text.get_visible() or not text.get_text().strip() or text in found:
            continue
        parent = text.axes
        if parent is not None and not parent.get_visible():
            continue
        found.append(text)
    return found


def _extent(text: Text, fig: Figure) -> Bbox:
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    return text.get_window_extent(renderer)


def _shrunk(box: Bbox) -> Bbox:
    return Bbox.from_extents(
        box.x0 + TOLERANCE_PX, box.y0 + TOLERANCE_PX, box.x1 - TOLERANCE_PX, box.y1 - TOLERANCE_PX
    )


def text_problems(fig: Figure) -> list[str]:
    """What a reader would trip over: texts cut off at the edge, texts on top of each other."""
    texts = visible_texts(fig)
    frame = fig.bbox
    boxes = [(text, _extent(text, fig)) for text in texts]
    problems = []
    for text, box in boxes:
        inside = (
            box.x0 >= frame.x0 - TOLERANCE_PX
            and box.y0 >= frame.y0 - TOLERANCE_PX
            and box.x1 <= frame.x1 + TOLERANCE_PX
            and box.y1 <= frame.y1 + TOLERANCE_PX
        )
        if not inside:
            problems.append(f"leaves the figure: {text.get_text()!r} at {box.bounds}")
    for (a, abox), (b, bbox) in combinations(boxes, 2):
        if _shrunk(abox).overlaps(_shrunk(bbox)):
            problems.append(f"overlap: {a.get_text()!r} and {b.get_text()!r}")
    return problems


def assert_readable(fig: Figure) -> None:
    """Fail with every problem :func:`text_problems` finds."""
    problems = text_problems(fig)
    assert not problems, "\n".join(problems)
