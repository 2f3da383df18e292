"""
Tests that the figures crmflow.plots creates keep every label inside the
image: long, Chinese and emoji labels are neither cut off on screen nor
by ``savefig`` (Agg backend).
"""

import io

import pandas as pd
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from crmflow import plots  # noqa: E402

# The fonts of a plain test machine have no CJK or emoji glyphs: those
# draw as boxes (of a known size), which is enough to test the layout.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Glyph .* missing from font"
)

LONG = "Waiting for the customer to confirm it"   # 38 characters
LONGEST = LONG + " (2)"                           # 42 characters
LABELS = [LONGEST, "等待客户确认付款和发货地址", "Escalated 🔥🚨 to level 2",
          "open"]


def tick_labels(axis):
    """
    Returns the labels of the ticks an axis draws: those inside its view
    interval (matplotlib keeps, undrawn, the ticks just outside it).
    """
    lo, hi = sorted(axis.get_view_interval())
    slack = 1e-9 * max(1.0, hi - lo)
    ticks = axis.get_major_ticks() + axis.get_minor_ticks()
    return [t.label1 for t in ticks
            if lo - slack <= t.get_loc() <= hi + slack]


def texts(ax):
    """
    Returns the visible, non-empty texts of an Axes: tick labels, axis
    labels, title, annotations and legend entries.
    """
    found = tick_labels(ax.xaxis) + tick_labels(ax.yaxis)
    found += [ax.xaxis.label, ax.yaxis.label, ax.title] + list(ax.texts)
    legend = ax.get_legend()
    if legend is not None:
        found += list(legend.get_texts())
    return [t for t in found if t.get_visible() and t.get_text()]


def outside(fig, ax):
    """
    Draws the figure and returns ``(text, extent)`` for each text of
    ``ax`` whose window extent is not inside the figure's bounding box.
    """
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    found = []
    for t in texts(ax):
        e = t.get_window_extent(renderer)
        if (e.x0 < box.x0 or e.y0 < box.y0 or e.x1 > box.x1
                or e.y1 > box.y1):
            found.append((t.get_text(), tuple(e.extents)))
    return found


def funnel_frame(labels):
    """
    Returns a funnel DataFrame of ``labels`` with falling case counts.
    """
    cases = [1000 - 100 * i for i in range(len(labels))]
    return pd.DataFrame({
        "milestone": labels,
        "cases": cases,
        "conversion": [c / cases[0] for c in cases],
    })


def durations_frame(labels):
    """
    Returns a state_durations-like DataFrame: each label three times with
    durations of 1, 2 and 3 hours (in seconds).
    """
    return pd.DataFrame({
        "activity": [a for a in labels for _ in range(3)],
        "duration": [3600.0 * k for _ in labels for k in (1, 2, 3)],
    })


@pytest.fixture(autouse=True)
def close_figures():
    """
    Closes the figures a test made.
    """
    yield
    plt.close("all")


class TestNewFigure:
    def test_label_lengths(self):
        """
        The labels have the lengths the tests rely on.
        """
        assert 38 == len(LONG)
        assert 42 == len(LONGEST)

    @pytest.mark.parametrize("label", LABELS)
    def test_funnel_labels_inside(self, label):
        """
        Funnel tick labels, axis label, title and the case counts beside
        the bars lie inside the figure.
        """
        ax = plots.funnel(funnel_frame([label, "closed", "paid"]))

        assert [] == outside(ax.figure, ax)
        shown = [t.get_text() for t in texts(ax)]
        assert label in shown
        assert ax.xaxis.label.get_text() in shown

    def test_funnel_all_labels_inside(self):
        """
        A funnel with every kind of label at once stays inside.
        """
        ax = plots.funnel(funnel_frame(LABELS))

        assert [] == outside(ax.figure, ax)

    @pytest.mark.parametrize("label", LABELS)
    def test_time_in_state_labels_inside(self, label):
        """
        Time-in-state tick labels, x-axis label and title lie inside the
        figure.
        """
        ax = plots.time_in_state(durations_frame([label, "closed"]),
                                 unit="h")

        assert [] == outside(ax.figure, ax)
        shown = [t.get_text() for t in texts(ax)]
        assert label in shown
        assert ax.xaxis.label.get_text() in shown

    def test_time_in_state_eight_long_states_inside(self):
        """
        Eight states (the default number shown), all long, stay inside.
        """
        labels = [f"{LONG} {i}" for i in range(8)]

        ax = plots.time_in_state(durations_frame(labels), unit="d")

        assert 8 == len(ax.get_yticklabels())
        assert [] == outside(ax.figure, ax)

    def test_throughput_labels_inside(self):
        """
        Throughput date labels, axis label, title and legend lie inside
        the figure.
        """
        frame = pd.DataFrame({
            "period": pd.date_range("2026-01-01", periods=12, freq="MS",
                                    tz="UTC"),
            "arrivals": range(12),
            "completions": range(12),
        })

        ax = plots.throughput(frame)

        assert [] == outside(ax.figure, ax)

    def test_savefig_keeps_size(self):
        """
        savefig writes the figure at its own size: the layout, not a
        tight bounding box, keeps the labels in.
        """
        ax = plots.funnel(funnel_frame(LABELS))
        buffer = io.BytesIO()

        ax.figure.savefig(buffer, format="png", dpi=50)

        # PNG: width and height are big-endian at bytes 16-24.
        width = int.from_bytes(buffer.getvalue()[16:20], "big")
        height = int.from_bytes(buffer.getvalue()[20:24], "big")
        assert (7 * 50, int(3.5 * 50)) == (width, height)
        assert [] == outside(ax.figure, ax)


class TestCallerFigure:
    def test_layout_left_alone(self):
        """
        A figure passed in through ax= keeps the layout its caller set.
        """
        fig, ax = plt.subplots()

        plots.funnel(funnel_frame(["a", "b"]), ax=ax)
        plots.time_in_state(durations_frame(["a"]), ax=ax)

        assert fig.get_layout_engine() is None
