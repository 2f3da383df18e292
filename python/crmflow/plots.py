"""
Plots of process-mining results with matplotlib: funnels, time-in-state
distributions and throughput.

Each function draws on ``ax`` and returns the Axes.  When ``ax`` is None
it draws on a new figure with constrained layout, so that
``ax.figure.savefig(...)`` keeps long tick labels, axis labels and the
title inside the image; a figure passed in through ``ax`` keeps the
layout its caller gave it.  matplotlib is an optional dependency
(``pip install "crmflow[plots]"``), imported on first use.  In Jupyter
the figure shows inline; a script without a display needs no backend
setting either (matplotlib then uses Agg).

Example::

    from crmflow import plots
    plots.funnel(log.funnel(["Opened", "Assigned", "Resolved"]))

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from crmflow import _pandas as pd  # pandas on first use
from crmflow._errors import InvalidArgumentError

__all__ = ["funnel", "throughput", "time_in_state"]


def _axes(ax: Any) -> Any:
    """
    Returns ``ax``, or the Axes of a new figure whose constrained layout
    makes room for the labels, however long, when it is drawn.
    """
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=(7, 3.5), layout="constrained")
    return ax


def _text(value: Any) -> str:
    """
    Returns data text as a matplotlib label that shows literally: a pair
    of "$" would otherwise be read as mathtext (and a malformed one fail
    at drawing time).
    """
    return str(value).replace("$", "\\$")


def funnel(df: pd.DataFrame, ax: Any = None) -> Any:
    """
    Draws a funnel (:meth:`EventLog.funnel`) as horizontal bars, first
    milestone on top, each labelled with its cases and conversion.

    Raises:
        InvalidArgumentError: ``df`` lacks milestone / cases / conversion.
    """
    for c in ("milestone", "cases", "conversion"):
        if c not in df.columns:
            raise InvalidArgumentError(f'funnel: column "{c}" missing')
    ax = _axes(ax)
    y = np.arange(len(df))[::-1]
    ax.barh(y, df["cases"].to_numpy(), color="#4c72b0")
    ax.set_yticks(y, [_text(m) for m in df["milestone"]])
    for yi, n, c in zip(y, df["cases"], df["conversion"]):
        ax.text(n, yi, f" {int(n)} ({100 * float(c):.0f} %)",
                va="center", fontsize=8)
    ax.set_xlabel("cases")
    ax.set_title("funnel")
    return ax


def time_in_state(
    durations: pd.DataFrame,
    states: Optional[Sequence[str]] = None,
    *,
    unit: str = "h",
    ax: Any = None,
) -> Any:
    """
    Draws the distribution of time spent in each state (or activity) as
    box plots, from :meth:`EventLog.state_durations`.

    Args:
        durations: activity and duration (seconds) columns.
        states: Which to show, in order; default the 8 most frequent.
        unit: ``"s"``, ``"min"``, ``"h"`` or ``"d"``.
        ax: Where to draw.

    Raises:
        InvalidArgumentError: Unknown unit or missing columns.
    """
    scale = {"s": 1, "min": 60, "h": 3600, "d": 86400}
    if unit not in scale:
        raise InvalidArgumentError('unit must be "s", "min", "h" or "d"')
    for c in ("activity", "duration"):
        if c not in durations.columns:
            raise InvalidArgumentError(
                f'time_in_state: column "{c}" missing'
            )
    acts = durations["activity"].astype(object)
    if states is None:
        states = list(acts.value_counts().index[:8])
    data = [
        durations.loc[acts == s, "duration"].to_numpy(dtype=float)
        / scale[unit]
        for s in states
    ]
    ax = _axes(ax)
    import matplotlib

    major, minor = (int(x) for x in matplotlib.__version__.split(".")[:2])
    if (major, minor) >= (3, 10):
        ax.boxplot(data, orientation="horizontal", showfliers=False)
    else:
        ax.boxplot(data, vert=False, showfliers=False)
    ax.set_yticks(np.arange(1, len(states) + 1), [_text(s) for s in states])
    ax.set_xlabel(f"time in state ({unit})")
    ax.set_title("time in state")
    return ax


def throughput(df: pd.DataFrame, ax: Any = None) -> Any:
    """
    Draws arrivals and completions per period (:meth:`EventLog.throughput`).

    Raises:
        InvalidArgumentError: ``df`` lacks period / arrivals / completions.
    """
    for c in ("period", "arrivals", "completions"):
        if c not in df.columns:
            raise InvalidArgumentError(f'throughput: column "{c}" missing')
    ax = _axes(ax)
    x = df["period"].dt.tz_localize(None).to_numpy()
    ax.plot(x, df["arrivals"].to_numpy(), label="arrivals")
    ax.plot(x, df["completions"].to_numpy(), label="completions")
    ax.set_ylabel("cases")
    ax.set_title("arrivals and throughput")
    ax.legend()
    return ax
