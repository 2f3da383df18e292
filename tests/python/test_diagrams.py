"""
Tests of crmflow.diagrams and crmflow.plots: hostile names render as
text in DOT and SVG, DOT is returned when Graphviz is missing, plots draw
on the Agg backend.
"""

import shutil
import xml.etree.ElementTree as ET

import pandas as pd
import pytest

import crmflow
from crmflow import analytics, diagrams
from crmflow.analytics import EventLog

HOSTILE = [
    "<script>alert(1)</script>",
    'Kunde "X" & Söhne',
    "back\\slash\\n",
    "line\nbreak",
    "]; evil [label=pwned",
    "&amp; already",
]


def _log():
    rows = []
    for i, name in enumerate(HOSTILE):
        rows.append((f"C{i}", "Opened", 0, name))
        rows.append((f"C{i}", name, 60, name))
    df = pd.DataFrame(rows, columns=["case", "activity", "s", "who"])
    df["time"] = pd.Timestamp("2026-01-01T00:00Z") + pd.to_timedelta(
        df["s"], unit="s")
    return EventLog.from_dataframe(df, case="case", activity="activity",
                                   time="time", resource="who")


def _svg_texts(svg):
    root = ET.fromstring(svg)
    return ["".join(e.itertext()) for e in root.iter()
            if e.tag.endswith("text")]


class TestEscaping:
    """
    Data text is escaped wherever it is rendered.
    """

    def test_escape(self):
        """
        Quotes, backslashes, markup and line breaks are neutralised.
        """
        assert '&lt;b&gt; \\"q\\" \\\\ &amp; \\n' == diagrams.escape(
            '<b> "q" \\ & \n')

    def test_dot_has_no_raw_markup(self):
        """
        No hostile name reaches the DOT text unescaped.
        """
        log = _log()

        dot = diagrams.dfg_diagram(log.dfg(), log.start_activities(),
                                   log.end_activities()).dot

        assert "<script>" not in dot
        assert 'label="]; evil [label=pwned"' in dot  # one quoted string
        assert '\\"X\\"' in dot

    @pytest.mark.skipif(shutil.which("dot") is None,
                        reason="Graphviz dot is not installed")
    def test_svg_shows_names_as_text(self):
        """
        The SVG parses as XML, has no script element, and shows each name
        literally (line breaks become separate lines).
        """
        log = _log()

        svg = diagrams.dfg_diagram(log.dfg()).svg()

        root = ET.fromstring(svg)
        assert not [e for e in root.iter() if e.tag.endswith("script")]
        texts = _svg_texts(svg)
        for name in HOSTILE:
            if "\n" in name:
                assert all(p in texts for p in name.split("\n"))
            else:
                assert name in texts

    @pytest.mark.skipif(shutil.which("dot") is None,
                        reason="Graphviz dot is not installed")
    def test_workflow_and_diff(self):
        """
        Discovered workflows, replay counts and diffs render too.
        """
        log = _log()
        draft = log.discover()

        r = log.conformance(draft)
        d = analytics.diff(draft, log.discover(min_count=2))

        for svg in (r._repr_svg_(), d._repr_svg_()):
            root = ET.fromstring(svg)
            assert not [e for e in root.iter() if e.tag.endswith("script")]
            assert "<script>alert(1)</script>" in _svg_texts(svg)

    def test_without_graphviz(self, monkeypatch):
        """
        Without dot, svg() is None and the DOT text is still there.
        """
        monkeypatch.setattr(shutil, "which", lambda name: None)

        d = diagrams.dfg_diagram(_log().dfg())

        assert None is d.svg()
        assert d.dot.startswith("digraph")


class TestPlots:
    """
    matplotlib plots draw without error on the Agg backend.
    """

    def test_plots(self):
        """
        Funnel, time-in-state and throughput return Axes.
        """
        mpl = pytest.importorskip("matplotlib")
        mpl.use("Agg")
        import matplotlib.pyplot as plt

        from crmflow import plots

        log = _log()

        axes = [
            plots.funnel(log.funnel(["Opened", HOSTILE[0]])),
            plots.time_in_state(log.state_durations()),
            plots.throughput(log.throughput("day")),
        ]

        assert all(hasattr(a, "figure") for a in axes)
        plt.close("all")
        with pytest.raises(crmflow.InvalidArgumentError):
            plots.time_in_state(log.state_durations(), unit="year")


class TestSave:
    """
    Diagram.save writes the format the file's extension names.
    """

    def _diagram(self):
        return diagrams.workflow_diagram(
            crmflow.templates.load("service_request"))

    def test_formats_by_extension(self, tmp_path):
        if shutil.which("dot") is None:
            pytest.skip("Graphviz dot is not installed")
        d = self._diagram()

        for name in ("w.svg", "w.png", "w.pdf", "w.dot", "w.GV"):
            d.save(tmp_path / name)

        assert (tmp_path / "w.png").read_bytes().startswith(b"\x89PNG\r\n")
        assert (tmp_path / "w.pdf").read_bytes().startswith(b"%PDF-")
        svg = (tmp_path / "w.svg").read_text(encoding="utf-8")
        assert "<svg" in svg and "waiting_customer" in svg
        assert d.dot == (tmp_path / "w.dot").read_text(encoding="utf-8")
        assert d.dot == (tmp_path / "w.GV").read_text(encoding="utf-8")

    def test_unknown_extension_writes_nothing(self, tmp_path):
        with pytest.raises(crmflow.InvalidArgumentError,
                           match='unknown diagram format ".jpeg"'):
            self._diagram().save(tmp_path / "w.jpeg")
        assert [] == list(tmp_path.iterdir())

    def test_without_graphviz_only_dot_is_written(self, tmp_path,
                                                  monkeypatch):
        monkeypatch.setattr(shutil, "which", lambda name: None)
        d = self._diagram()

        d.save(tmp_path / "w.dot")
        with pytest.raises(crmflow.NotFoundError, match="save as .dot"):
            d.save(tmp_path / "w.png")

        assert ["w.dot"] == sorted(p.name for p in tmp_path.iterdir())
