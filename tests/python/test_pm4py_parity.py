"""
Parity with pm4py on the shared logs: directly-follows counts, start
activities and variant counts equal pm4py's exactly; mean durations of
directly-follows edges equal pm4py's and the exact mean (integer
microseconds summed in Python) to 1e-12 relative: both tools sum
floating-point seconds, so the last bits depend on summation order.

pm4py reads the XES files with its own parser, so the comparison also
checks crmflow's XES reader.  Skipped when pm4py or the data is missing.
"""

import contextlib
import fractions
import io
import warnings

import numpy as np
import pandas as pd
import pytest

from crmflow.analytics import EventLog

from conftest import SHARED_DATA

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    with contextlib.redirect_stdout(io.StringIO()):
        pm4py = pytest.importorskip(
            "pm4py", reason="pm4py is not installed (pip install pm4py)")

pytestmark = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"shared data not found: {SHARED_DATA}")

_XES = {
    "helpdesk": "helpdesk_ticket_log/helpdesk.xes.gz",
    "running-example": "pm4py_small_example_logs/running-example.xes",
    "repairExample": "pm4py_small_example_logs/03_repairExample.xes.gz",
}


@contextlib.contextmanager
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            yield


def _pm4py_figures(df):
    """
    Returns pm4py's DFG, start activities, variants and performance DFG of
    a DataFrame with case:concept:name, concept:name, time:timestamp.
    """
    with _quiet():
        df = pm4py.format_dataframe(
            df, case_id="case:concept:name", activity_key="concept:name",
            timestamp_key="time:timestamp")
        dfg, start, end = pm4py.discover_dfg(df)
        perf, _, _ = pm4py.discover_performance_dfg(df)
        variants = pm4py.get_variants(df)
    return (dict(dfg), dict(start), dict(end),
            {tuple(k): int(v) for k, v in variants.items()}, perf)


def _exact_means(log):
    """
    Returns the exact mean gap per edge, computed from integer
    microseconds in Python (separate code from the C++ core).
    """
    df = log.to_dataframe()
    case = df["case_id"].cat.codes.to_numpy()
    act = df["activity"].astype(str).to_numpy()
    t = df["time"].dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
    t = t.view(np.int64)
    same = case[:-1] == case[1:]
    sums, counts = {}, {}
    for a, b, d in zip(act[:-1][same], act[1:][same],
                       (t[1:] - t[:-1])[same].tolist()):
        sums[(a, b)] = sums.get((a, b), 0) + d
        counts[(a, b)] = counts.get((a, b), 0) + 1
    return {k: float(fractions.Fraction(sums[k], counts[k] * 1_000_000))
            for k in sums}


def _check(log, df):
    dfg, start, end, variants, perf = _pm4py_figures(df)
    ours = log.dfg()
    counts = {(f, t): int(n)
              for f, t, n in zip(ours["from"], ours["to"], ours["count"])}
    means = {(f, t): float(m) for f, t, m in
             zip(ours["from"], ours["to"], ours["duration_mean"])}
    v = log.variants()
    our_variants = {tuple(a): int(n)
                    for a, n in zip(v["variant"], v["count"]) if a}
    s = log.start_activities()
    e = log.end_activities()

    assert dfg == counts
    assert start == dict(zip(s["activity"], s["count"].tolist()))
    assert end == dict(zip(e["activity"], e["count"].tolist()))
    assert variants == our_variants
    exact = _exact_means(log)
    assert set(exact) == set(means) == set(perf)
    for k, m in means.items():
        assert exact[k] == pytest.approx(m, rel=1e-12, abs=1e-9)
        assert perf[k]["mean"] == pytest.approx(m, rel=1e-12, abs=1e-9)


class TestXesParity:
    """
    crmflow's XES reader and measures against pm4py's on the same files.
    """

    @pytest.mark.parametrize("name", sorted(_XES))
    def test_xes(self, name):
        """
        DFG counts, start/end activities, variants and mean durations.
        """
        path = SHARED_DATA / _XES[name]
        log = EventLog.from_xes(path)
        with _quiet():
            df = pm4py.read_xes(str(path))

        _check(log, df)


class TestCsvParity:
    """
    The same figures from CSV and DataFrame inputs.
    """

    def test_helpdesk_csv(self):
        """
        crmflow's CSV reader on the flattened helpdesk log.
        """
        path = SHARED_DATA / "helpdesk_ticket_log" / "helpdesk_events.csv.gz"
        log = EventLog.from_csv(path, case="case_id", activity="activity",
                                time="timestamp", resource="resource")
        df = pd.read_csv(path)
        df = df.rename(columns={"case_id": "case:concept:name",
                                "activity": "concept:name",
                                "timestamp": "time:timestamp"})
        df["time:timestamp"] = pd.to_datetime(df["time:timestamp"], utc=True)

        _check(log, df)

    def test_servicenow_status_changes(self):
        """
        A status-change log from the ServiceNow export: one event per row
        whose incident_state differs from the incident's previous row.
        """
        path = (SHARED_DATA / "servicenow_incident_log_2016_feb_mar"
                / "incident_event_log_part1.csv.gz")
        raw = pd.read_csv(path, usecols=["number", "incident_state",
                                         "sys_updated_at"])
        prev_case = raw["number"].shift(1)
        prev_state = raw["incident_state"].shift(1)
        changed = (raw["number"] != prev_case) | (
            raw["incident_state"] != prev_state)
        ev = raw.loc[changed].copy()
        ev["time"] = pd.to_datetime(ev["sys_updated_at"],
                                    format="%d/%m/%Y %H:%M", utc=True)
        log = EventLog.from_dataframe(ev, case="number",
                                      activity="incident_state", time="time")
        df = pd.DataFrame({"case:concept:name": ev["number"],
                           "concept:name": ev["incident_state"],
                           "time:timestamp": ev["time"]})

        assert 9202 == log.num_cases
        _check(log, df)
