"""
Diagrams of workflows, directly-follows graphs and diffs, as Graphviz DOT
and SVG.

Every function returns a :class:`Diagram`: its DOT text is always
available (``str(diagram)``); :meth:`Diagram.svg` runs the Graphviz ``dot``
program (Debian package ``graphviz``) and returns None when it is missing,
and Jupyter shows the SVG inline through ``_repr_svg_``.

Text from the data (activity, state, event and resource names) is escaped
wherever it is rendered: node ids are generated (``n0``, ``n1``, ...), and
labels are written as DOT strings with ``\\`` and ``"`` escaped and ``&``,
``<``, ``>`` written as XML entities, so a customer named ``<script>``
appears as text in the SVG, never as markup.

Example::

    from crmflow import diagrams
    diagrams.dfg_diagram(log.dfg(), log.start_activities(),
                         log.end_activities())

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any, Dict, List, Mapping, Optional

from crmflow import _pandas as pd  # pandas on first use

__all__ = [
    "Diagram",
    "dfg_diagram",
    "diff_diagram",
    "escape",
    "workflow_diagram",
]


# Characters an SVG (XML 1.0) document cannot hold, and that Graphviz
# would pass through or choke on: control characters other than tab and
# line breaks, lone surrogates and the two non-characters U+FFFE/U+FFFF.
_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff"
                     "\ufffe\uffff]")


def escape(text: Any) -> str:
    """
    Returns ``text`` as the inside of a DOT double-quoted string that
    renders literally in SVG: backslashes and quotes escaped, ``&``, ``<``
    and ``>`` as XML entities, line breaks as DOT ``\\n``, and characters
    XML cannot hold (NUL and other controls, lone surrogates) as U+FFFD,
    so the drawing still shows that something was there.
    """
    s = _UNSAFE.sub("\ufffd", str(text))
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = s.replace("\\", "\\\\").replace('"', '\\"')
    s = s.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
    return s


def _duration(seconds: Any) -> str:
    """
    Returns a short human duration ("3.2 d", "4.5 h", "12 min", "40 s").
    """
    if seconds is None or pd.isna(seconds):
        return ""
    s = float(seconds)
    if s >= 86400:
        return f"{s / 86400:.1f} d"
    if s >= 3600:
        return f"{s / 3600:.1f} h"
    if s >= 60:
        return f"{s / 60:.0f} min"
    return f"{s:.0f} s"


class Diagram:
    """
    A graph as DOT text, rendered to SVG on demand.

    Attributes:
        dot: The DOT text.
    """

    def __init__(self, dot: str) -> None:
        self.dot = dot
        self._svg: Optional[str] = None

    def svg(self) -> Optional[str]:
        """
        Returns the SVG, or None when Graphviz ``dot`` is not installed or
        fails.
        """
        if self._svg is None:
            self._svg = render_svg(self.dot)
        return self._svg

    def save(self, path: Any) -> None:
        """
        Writes the diagram to ``path`` in the format its extension names:
        ``.svg``, ``.png`` or ``.pdf`` (rendered by Graphviz) or ``.dot`` /
        ``.gv`` (the DOT text, no Graphviz needed).

        Raises:
            InvalidArgumentError: Another extension, or the file cannot be
                written.
            NotFoundError: Graphviz is missing or fails for a rendered
                format (the message says to install it or save as .dot).
        """
        import os

        from crmflow._args import _path_arg
        from crmflow._errors import InvalidArgumentError, NotFoundError

        path = _path_arg(path)
        ext = os.path.splitext(path)[1].lower()
        if ext in (".dot", ".gv"):
            data = self.dot.encode("utf-8")
        elif ext in _FORMATS:
            if ext == ".svg":
                svg = self.svg()
                rendered = None if svg is None else svg.encode("utf-8")
            else:
                rendered = _render(self.dot, _FORMATS[ext])
            if rendered is None:
                message = f"{path}: cannot render {ext[1:]} (expected " \
                    "the Graphviz dot program: install the graphviz " \
                    "package, or save as .dot)"
                raise NotFoundError(message)
            data = rendered
        else:
            message = f'{path}: unknown diagram format "{ext}" (expected ' \
                ".svg, .png, .pdf, .dot or .gv)"
            raise InvalidArgumentError(message)
        try:
            with open(path, "wb") as f:
                f.write(data)
        except OSError as e:
            message = f"{path}: cannot open for writing ({e.strerror})"
            raise InvalidArgumentError(message) from None

    def _repr_svg_(self) -> Optional[str]:
        return self.svg()

    def __str__(self) -> str:
        return self.dot

    def __repr__(self) -> str:
        return self.dot


# Rendered formats of Diagram.save by extension: dot's -T value.
_FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf"}


def render_svg(dot: str) -> Optional[str]:
    """
    Returns ``dot`` rendered by Graphviz as SVG, or None when the ``dot``
    program is missing or fails.
    """
    out = _render(dot, "svg")
    return None if out is None else out.decode("utf-8")


def _render(dot: str, fmt: str) -> Optional[bytes]:
    """
    Returns ``dot`` rendered by Graphviz in ``fmt`` (svg, png, pdf), or
    None when the ``dot`` program is missing or fails.
    """
    exe = shutil.which("dot")
    if exe is None:
        return None
    try:
        done = subprocess.run(
            [exe, f"-T{fmt}"], input=dot.encode("utf-8"),
            capture_output=True, timeout=60, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout


class _Ids:
    """
    Generated node ids, so that no data text ever becomes a DOT id.
    """

    def __init__(self) -> None:
        self._ids: Dict[str, str] = {}

    def __call__(self, name: str) -> str:
        if name not in self._ids:
            self._ids[name] = f"n{len(self._ids)}"
        return self._ids[name]

    def items(self) -> List[Any]:
        return list(self._ids.items())


def _header(name: str) -> List[str]:
    return [
        "digraph G {",
        f'  graph [rankdir=LR, label="{escape(name)}", labelloc=t, '
        'fontname="Helvetica"];',
        '  node [shape=box, style="rounded,filled", fillcolor="#f4f6fb", '
        'fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=9, color="#555555"];',
    ]


def dfg_diagram(
    dfg: pd.DataFrame,
    start: Optional[pd.DataFrame] = None,
    end: Optional[pd.DataFrame] = None,
    *,
    min_count: int = 1,
    label: str = "directly-follows graph",
) -> Diagram:
    """
    Draws a directly-follows graph (:meth:`EventLog.dfg`): edges labelled
    with count and mean time, optional start and end markers.

    Args:
        dfg: from, to, count and optionally duration_mean.
        start: activity, count (:meth:`EventLog.start_activities`).
        end: activity, count (:meth:`EventLog.end_activities`).
        min_count: Edges with a lower count are not drawn.
        label: The graph's title.
    """
    ids = _Ids()
    lines = _header(label)
    edges = dfg.loc[dfg["count"] >= min_count]
    means = (
        edges["duration_mean"].tolist() if "duration_mean" in edges
        else [None] * len(edges)
    )
    for a, b, n, mean in zip(edges["from"].astype(str),
                             edges["to"].astype(str),
                             edges["count"].astype(int), means):
        text = f"{n}"
        if _duration(mean):
            text += "\\n" + escape(_duration(mean))
        lines.append(f'  {ids(a)} -> {ids(b)} [label="{text}"];')
    for frame, shape, mark in ((start, "circle", "start"),
                               (end, "doublecircle", "end")):
        if frame is None or frame.empty:
            continue
        marker = f"__{mark}"
        lines.append(
            f'  {marker} [label="", shape={shape}, width=0.25, '
            'style=filled, fillcolor="#333333"];'
        )
        for row in frame.itertuples(index=False):
            act, count = str(row[0]), int(row[1])
            if count < min_count:
                continue
            if mark == "start":
                lines.append(
                    f'  {marker} -> {ids(act)} [label="{count}", '
                    'style=dashed];'
                )
            else:
                lines.append(
                    f'  {ids(act)} -> {marker} [label="{count}", '
                    'style=dashed];'
                )
    for name, nid in ids.items():
        lines.append(f'  {nid} [label="{escape(name)}"];')
    lines.append("}")
    return Diagram("\n".join(lines) + "\n")


def workflow_diagram(
    workflow: Any,
    *,
    edge_counts: Optional[pd.DataFrame] = None,
    state_counts: Optional[Mapping[str, int]] = None,
    state_times: Optional[Mapping[str, float]] = None,
) -> Diagram:
    """
    Draws a :class:`crmflow.Workflow` with optional figures: counts on
    transitions (from, to, event, count, e.g.
    :meth:`ConformanceResult.edge_counts`), visits and mean time (seconds)
    on states.
    """
    ids = _Ids()
    lines = _header(f"{workflow.name} v{workflow.version}")
    counts: Dict[Any, int] = {}
    if edge_counts is not None:
        for row in edge_counts.itertuples(index=False):
            d = dict(zip(edge_counts.columns, row))
            counts[(str(d["from"]), str(d["to"]), str(d["event"]))] = int(
                d["count"]
            )
    roles = dict(workflow._core.states())
    for name, role in workflow._core.states():
        parts = [escape(name)]
        if state_counts is not None and name in state_counts:
            parts.append(f"{int(state_counts[name])}")
        if state_times is not None and name in state_times:
            parts.append(escape(_duration(state_times[name])))
        shape = ""
        if role == "initial":
            shape = ', penwidth=2, fillcolor="#dcefdc"'
        elif role == "terminal":
            shape = ', peripheries=2, fillcolor="#e8e8e8"'
        label = "\\n".join(parts)
        lines.append(f'  {ids(name)} [label="{label}"{shape}];')
    for t in workflow._core.transitions():
        src, dst, ev = t["source"], t["target"], t["event"]
        text = escape(ev)
        if t["guards"]:
            text += "\\n[" + escape(", ".join(t["guards"])) + "]"
        n = counts.get((src, dst, ev))
        if n is not None:
            text += f"\\n{n}"
        style = ", style=dashed" if src == dst and t["internal"] else ""
        if src not in roles or dst not in roles:
            style += ", color=red"
        lines.append(f'  {ids(src)} -> {ids(dst)} [label="{text}"{style}];')
    lines.append("}")
    return Diagram("\n".join(lines) + "\n")


_DIFF_COLOURS = {"both": "#555555", "only_a": "#1f77b4", "only_b": "#d62728"}


def diff_diagram(diff: Any) -> Diagram:
    """
    Draws a :class:`crmflow.analytics.WorkflowDiff`: the union of both
    graphs, grey where they agree, blue only in the first, red only in the
    second.
    """
    ids = _Ids()
    lines = _header(
        f"{diff.a_name} (blue) vs {diff.b_name} (red), by {diff.basis}"
    )
    for row in diff.nodes.itertuples(index=False):
        name, where = str(row[0]), str(row[1])
        colour = _DIFF_COLOURS[where]
        lines.append(
            f'  {ids(name)} [label="{escape(name)}", color="{colour}", '
            f'fontcolor="{colour}"];'
        )
    first_drawn = False
    for row in diff.edges.itertuples(index=False):
        a, b, where = str(row[0]), str(row[1]), str(row[2])
        colour = _DIFF_COLOURS[where]
        src = "__first" if a == "" else ids(a)
        # A flag, not a search of the text: a name may contain "__first".
        if a == "" and not first_drawn:
            first_drawn = True
            lines.append(
                '  __first [label="", shape=circle, width=0.25, '
                'style=filled, fillcolor="#333333"];'
            )
        lines.append(f'  {src} -> {ids(b)} [color="{colour}"];')
    lines.append("}")
    return Diagram("\n".join(lines) + "\n")
