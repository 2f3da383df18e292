"""
Tests of crmflow.analytics through the Python API: acceptance cases C04,
C13, C14 and C15 (values as written in CASES.md), readers, measures on
small hand-computed logs, bad input, KPI helpers and strict JSON.
"""

import gzip
import json
import threading

import numpy as np
import pandas as pd
import pytest

import crmflow
from crmflow import analytics
from crmflow.analytics import EventLog

from conftest import SHARED_DATA, utc


def _strict_json(text):
    """
    Parses JSON refusing NaN and Infinity.
    """
    def refuse(token):
        raise ValueError(f"non-strict JSON constant {token}")

    return json.loads(text, parse_constant=refuse)


def _c04_csv(path, with_x=True):
    lines = ["case_id,activity,timestamp"]
    for i in range(1, 1001):
        c = f"SR-{i:04d}"
        lines += [f"{c},Created,2026-03-02T09:00:00Z",
                  f"{c},Assigned,2026-03-02T09:00:00Z",
                  f"{c},Resolved,2026-03-02T10:00:00Z"]
    if with_x:
        lines += ["SR-X,Created,2026-03-02T09:00:00.120Z",
                  "SR-X,Assigned,2026-03-02T09:00:00.045Z"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _dfg_dict(log):
    d = log.dfg()
    return {(f, t): int(n) for f, t, n in zip(d["from"], d["to"], d["count"])}


def _counts(frame):
    return {a: int(n) for a, n in zip(frame["activity"], frame["count"])}


_XES_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<log xes.version="1.0">\n'
)


def _event(name, time, lifecycle=None):
    lc = (f'<string key="lifecycle:transition" value="{lifecycle}"/>'
          if lifecycle else "")
    return (f'<event><string key="concept:name" value="{name}"/>'
            f'<date key="time:timestamp" value="{time}"/>{lc}</event>')


def _trace(case, events):
    return (f'<trace><string key="concept:name" value="{case}"/>'
            + "".join(events) + "</trace>")


def _xes(path, traces):
    path.write_text(_XES_HEAD + "".join(traces) + "</log>\n",
                    encoding="utf-8")
    return path


class TestC04TiedTimestamps:
    """
    C04: events of a case are ordered by (instant, row in file).
    """

    def test_thousand_cases(self, tmp_path):
        """
        Ties keep file order: one variant, a 0 s Created->Assigned dwell.
        """
        path = _c04_csv(tmp_path / "c04.csv", with_x=False)

        log = EventLog.from_csv(path)

        assert {("Created", "Assigned"): 1000,
                ("Assigned", "Resolved"): 1000} == _dfg_dict(log)
        v = log.variants()
        assert [("Created", "Assigned", "Resolved")] == list(v["variant"])
        assert [1000] == v["count"].tolist()
        assert {"Created": 1000} == _counts(log.start_activities())
        d = log.dfg().set_index(["from", "to"])
        assert 0.0 == d.loc[("Created", "Assigned"), "duration_mean"]

    def test_sub_second_case_and_repeats(self, tmp_path):
        """
        SR-X is Assigned (45 ms) then Created (120 ms), gap 0.075 s; ten
        reads on several threads give identical results.
        """
        path = _c04_csv(tmp_path / "c04.csv")
        expected_dfg = {("Created", "Assigned"): 1000,
                        ("Assigned", "Resolved"): 1000,
                        ("Assigned", "Created"): 1}

        results = []

        def run():
            log = EventLog.from_csv(path)
            results.append((
                _dfg_dict(log), _counts(log.start_activities()),
                [tuple(x) for x in log.variants()["variant"]],
                log.variants()["count"].tolist(),
            ))

        threads = [threading.Thread(target=run) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        log = EventLog.from_csv(path)
        df = log.to_dataframe()
        x = df.loc[df["case_id"] == "SR-X"]

        assert 10 == len(results)
        assert all(r == results[0] for r in results)
        assert expected_dfg == results[0][0]
        assert {"Created": 1000, "Assigned": 1} == results[0][1]
        assert ["Assigned", "Created"] == x["activity"].astype(str).tolist()
        edge = log.dfg().set_index(["from", "to"]).loc[
            ("Assigned", "Created")]
        assert 0.075 == pytest.approx(edge["duration_mean"], abs=1e-9)

    def test_dataframe_path_same_order(self, tmp_path):
        """
        The same rows through from_dataframe give the same answers.
        """
        path = _c04_csv(tmp_path / "c04.csv")
        df = pd.read_csv(path)

        log = EventLog.from_dataframe(df)

        assert {("Created", "Assigned"): 1000,
                ("Assigned", "Resolved"): 1000,
                ("Assigned", "Created"): 1} == _dfg_dict(log)


class TestC13Csv:
    """
    C13: BOM, semicolons and quoted line breaks.
    """

    TEXT = (
        "\ufeffcase_id;activity;timestamp;comment\n"
        'SR-1;Opened;2026-02-02T09:00:00Z;"Kunde meldet:\n'
        'Drucker druckt nicht; Papierstau"\n'
        'SR-1;Resolved;2026-02-02T10:30:00Z;"Teil ""X-12"" getauscht"\n'
    )

    def _log(self, tmp_path):
        path = tmp_path / "c13.csv"
        path.write_bytes(self.TEXT.encode("utf-8"))
        assert path.read_bytes()[:3] == b"\xef\xbb\xbf"
        return EventLog.from_csv(path, case="case_id", activity="activity",
                                 time="timestamp", attributes=["comment"])

    def test_values(self, tmp_path):
        """
        1 case, 2 events, comments byte for byte, dwell 5400 s.
        """
        log = self._log(tmp_path)
        df = log.to_dataframe()

        assert (1, 2) == (log.num_cases, log.num_events)
        assert ["SR-1"] == log.case_ids
        assert [
            "Kunde meldet:\nDrucker druckt nicht; Papierstau",
            'Teil "X-12" getauscht',
        ] == df["comment"].astype(str).tolist()
        assert [5400.0] == log.dfg()["duration_mean"].tolist()

    def test_round_trip(self, tmp_path):
        """
        Export to CSV and import again: identical events.
        """
        log = self._log(tmp_path)
        out = tmp_path / "out.csv"

        log.to_csv(out)
        again = EventLog.from_csv(out, resource="resource",
                                  lifecycle="lifecycle",
                                  attributes=["comment"])

        a = log.to_dataframe().drop(columns=["row"])
        b = again.to_dataframe().drop(columns=["row"])
        for col in a.columns:
            assert a[col].astype(str).tolist() == b[col].astype(str).tolist()

    def test_gzip(self, tmp_path):
        """
        The same file gzip-compressed reads the same.
        """
        path = tmp_path / "c13.csv.gz"
        path.write_bytes(gzip.compress(self.TEXT.encode("utf-8")))

        log = EventLog.from_csv(path, attributes=["comment"])

        assert 2 == log.num_events


class TestC14Lifecycle:
    """
    C14: lifecycle start/complete pairs become activity instances.
    """

    def _log(self, tmp_path):
        d = "2026-02-02T"
        return EventLog.from_xes(_xes(tmp_path / "c14.xes", [
            _trace("SR-20", [
                _event("Review", d + "10:00:00Z", "start"),
                _event("Review", d + "10:30:00Z", "complete"),
                _event("Approve", d + "10:40:00Z", "start"),
                _event("Approve", d + "11:00:00Z", "complete")]),
            _trace("SR-21", [
                _event("Review", d + "09:00:00Z", "start"),
                _event("Review", d + "09:20:00Z", "complete"),
                _event("Approve", d + "09:30:00Z", "start")]),
        ]))

    def test_instances(self, tmp_path):
        """
        7 events, 4 instances; Review 1800/1200 s (mean 1500); Approve
        1200 s in SR-20 and open in SR-21; SR-21 not complete.
        """
        log = self._log(tmp_path)

        inst = log.activity_instances()
        service = log.service_times().set_index("activity")
        complete = log.complete_cases()

        assert 7 == log.num_events
        assert 4 == len(inst)
        key = list(zip(inst["case_id"].astype(str),
                       inst["activity"].astype(str)))
        dur = dict(zip(key, inst["duration"]))
        assert 1800.0 == dur[("SR-20", "Review")]
        assert 1200.0 == dur[("SR-21", "Review")]
        assert 1200.0 == dur[("SR-20", "Approve")]
        assert dur[("SR-21", "Approve")] is pd.NA
        assert 1500.0 == service.loc["Review", "duration_mean"]
        assert 1200.0 == service.loc["Approve", "duration_mean"]
        assert 1 == service.loc["Approve", "open"]
        assert {"SR-20": True, "SR-21": False} == complete.to_dict()

    def test_instance_dfg(self, tmp_path):
        """
        Instance DFG {Review->Approve: 2}, wait 600 s in both cases.
        """
        d = self._log(tmp_path).instance_dfg()

        assert [("Review", "Approve", 2)] == list(
            zip(d["from"], d["to"], d["count"].tolist()))
        assert 600.0 == d["duration_mean"][0]
        assert 600.0 == d["duration_max"][0]

    def test_no_false_rework(self, tmp_path):
        """
        A start/complete pair is one occurrence: no rework.
        """
        rw = self._log(tmp_path).rework()

        assert 0 == len(rw)
        assert 0 == rw.attrs["cases_with_rework"]


class TestC15EmptyCases:
    """
    C15: cases with no events are counted, never divided by.
    """

    def _log1(self, tmp_path):
        d = "2026-02-02T"
        return EventLog.from_xes(_xes(tmp_path / "c15a.xes", [
            _trace("SR-1", [_event("Opened", d + "09:00:00Z"),
                            _event("Assigned", d + "10:00:00Z"),
                            _event("Resolved", d + "12:00:00Z")]),
            _trace("SR-3", []),
        ]))

    def _log2(self, tmp_path):
        return EventLog.from_xes(_xes(tmp_path / "c15b.xes",
                                      [_trace("SR-4", [])]))

    def test_log1(self, tmp_path):
        """
        2 cases, 3 events; mean duration 10800 s; funnel 1/1/1 of 2.
        """
        log = self._log1(tmp_path)

        stats = log.case_duration_stats()
        durations = log.case_durations().set_index("case_id")
        f = log.funnel(["Opened", "Assigned", "Resolved"])

        assert (2, 3) == (log.num_cases, log.num_events)
        assert 0 == durations.loc["SR-3", "events"]
        assert durations.loc["SR-3", "duration"] is pd.NA
        assert 10800.0 == stats["mean"]
        assert (2, 1) == (stats["cases"], stats["count"])
        assert {("Opened", "Assigned"): 1,
                ("Assigned", "Resolved"): 1} == _dfg_dict(log)
        assert {"Opened": 1} == _counts(log.start_activities())
        assert {"Resolved": 1} == _counts(log.end_activities())
        assert [1, 1, 1] == f["cases"].tolist()
        assert 2 == f.attrs["total_cases"]
        assert 0.5 == f["conversion"].iloc[-1]

    def test_log2(self, tmp_path):
        """
        1 case, 0 events: empty DFG, means None, no exception.
        """
        log = self._log2(tmp_path)

        stats = log.case_duration_stats()

        assert (1, 0) == (log.num_cases, log.num_events)
        assert 0 == len(log.dfg())
        assert 0 == len(log.time_in_state())
        assert None is stats["mean"]
        assert None is stats["median"]
        assert [()] == list(log.variants()["variant"])
        assert 0 == len(log.throughput("day"))

    def test_json_strict(self, tmp_path):
        """
        No NaN or Infinity in any JSON export of either log.
        """
        for log in (self._log1(tmp_path), self._log2(tmp_path)):
            exports = [
                log.dfg(), log.variants(), log.time_in_state(),
                log.case_durations(), log.case_duration_stats(),
                log.throughput("week"), log.rework(), log.handovers(),
                log.activity_instances(), log.service_times(),
            ]
            if log.num_events:
                exports.append(log.funnel(["Opened", "Resolved"]))
            for e in exports:
                parsed = _strict_json(analytics.to_json(e))
                assert isinstance(parsed, (list, dict))
        parsed = _strict_json(analytics.to_json(
            self._log2(tmp_path).case_duration_stats()))
        assert None is parsed["mean"]


class TestReaders:
    """
    Readers: rejects, errors with file:line:column, dtypes.
    """

    def test_collect_rejects(self, tmp_path):
        """
        Bad rows come back as rejects, never silently dropped.
        """
        path = tmp_path / "bad.csv"
        path.write_text(
            "case_id,activity,timestamp\n"
            "A,x,2026-01-01T00:00:00Z\n"
            "A,,2026-01-01T01:00:00Z\n"
            "B,y,not a time\n", encoding="utf-8")

        log = EventLog.from_csv(path, on_error="collect")

        assert 1 == log.num_events
        assert [3, 4] == log.rejects["line"].tolist()
        assert all(log.rejects["file"].str.endswith("bad.csv"))

    def test_raise_names_position(self, tmp_path):
        """
        on_error="raise" names file:line:column.
        """
        path = tmp_path / "bad.csv"
        path.write_text("case_id,activity,timestamp\nB,y,soon\n",
                        encoding="utf-8")

        with pytest.raises(crmflow.ParseError) as e:
            EventLog.from_csv(path)

        assert "bad.csv:2:3" in str(e.value)

    def test_unknown_column(self, tmp_path):
        """
        A mapped column not in the header is an InvalidArgumentError.
        """
        path = _c04_csv(tmp_path / "c04.csv", with_x=False)

        with pytest.raises(crmflow.InvalidArgumentError):
            EventLog.from_csv(path, case="ticket")
        with pytest.raises(crmflow.InvalidArgumentError) as e:
            EventLog.from_dataframe(pd.read_csv(path), case="ticket")
        assert 'unknown column "ticket"' in str(e.value)

    def test_missing_file(self, tmp_path):
        """
        A missing file is a NotFoundError.
        """
        with pytest.raises(crmflow.NotFoundError):
            EventLog.from_xes(tmp_path / "nope.xes")

    def test_dataframe_rejects_and_zone(self):
        """
        from_dataframe: missing values rejected with row and column;
        naive times read in the given zone.
        """
        df = pd.DataFrame({
            "case": ["A", "A", None, "B"],
            "act": ["x", "y", "z", "w"],
            "t": ["2026-01-15 13:30:45", "2026-01-15 14:00:00",
                  "2026-01-15 14:00:00", "garbage"],
        })

        log = EventLog.from_dataframe(
            df, case="case", activity="act", time="t",
            time_zone="Europe/Berlin", on_error="collect")
        with pytest.raises(crmflow.ParseError):
            EventLog.from_dataframe(df, case="case", activity="act",
                                    time="t", time_format="%Y-%m-%d %H:%M:%S")

        assert 2 == log.num_events
        assert [2, 3] == log.rejects["line"].tolist()
        assert [1, 3] == log.rejects["column"].tolist()
        t = log.to_dataframe()["time"].iloc[0]
        assert pd.Timestamp("2026-01-15T12:30:45Z") == t

    def test_dtypes(self, tmp_path):
        """
        Counts are int64, durations nullable Float64, times UTC.
        """
        log = EventLog.from_csv(_c04_csv(tmp_path / "c.csv"))

        d = log.dfg()
        df = log.to_dataframe()

        assert np.int64 == d["count"].dtype
        assert "Float64" == str(d["duration_mean"].dtype)
        assert "datetime64[us, UTC]" == str(df["time"].dtype)
        assert np.int64 == log.throughput("day")["arrivals"].dtype

    def test_bad_arguments(self, tmp_path):
        """
        Unknown periods, on_error values and funnel milestones raise.
        """
        log = EventLog.from_csv(_c04_csv(tmp_path / "c.csv"))

        with pytest.raises(crmflow.InvalidArgumentError):
            log.throughput("year")
        with pytest.raises(crmflow.InvalidArgumentError):
            EventLog.from_csv(tmp_path / "c.csv", on_error="ignore")
        with pytest.raises(crmflow.NotFoundError):
            log.funnel(["Created", "Shipped"])
        with pytest.raises(crmflow.InvalidArgumentError):
            log.funnel([])

    def test_engine_history(self):
        """
        from_engine: one case per transaction, the states entered.
        """
        with crmflow.Engine() as engine:
            engine.register("service_request")
            engine.create("service_request", "SR-1",
                          time=utc(2026, 1, 1, 9))
            first = engine.allowed_events("SR-1")[0]
            engine.fire("SR-1", first, time=utc(2026, 1, 1, 10))

            log = EventLog.from_engine(engine, "service_request")

        assert (1, 2) == (log.num_cases, log.num_events)
        assert [3600.0] == log.dfg()["duration_mean"].tolist()


class TestMeasures:
    """
    Measures on a small hand-computed log.
    """

    def _log(self):
        df = pd.DataFrame({
            "case": ["A", "A", "A", "B", "B", "C"],
            "activity": ["open", "work", "close", "open", "close", "open"],
            "time": pd.to_datetime([
                "2026-01-05T00:00Z", "2026-01-05T01:00Z",
                "2026-01-05T03:00Z", "2026-01-06T00:00Z",
                "2026-01-13T00:00Z", "2026-02-01T00:00Z"]),
            "who": ["ann", "bob", "ann", "ann", "ann", "cy"],
            "team": ["t1", "t2", "t1", "t1", "t1", "t3"],
        })
        return EventLog.from_dataframe(df, case="case", activity="activity",
                                       time="time", resource="who",
                                       attributes=["team"])

    def test_time_in_state(self):
        """
        open: 1 h (A) and 7 d (B); C's open has no next event.
        """
        t = self._log().time_in_state().set_index("activity")

        assert 3 == t.loc["open", "events"]
        assert 2 == t.loc["open", "duration_count"]
        assert (3600 + 7 * 86400) / 2 == t.loc["open", "duration_mean"]
        assert t.loc["close", "duration_mean"] is pd.NA

    def test_handovers(self):
        """
        Resource and team hand-overs.
        """
        log = self._log()

        h = log.handovers()
        teams = log.handovers(by="team")

        assert {("ann", "bob"): 1, ("bob", "ann"): 1} == dict(
            zip(zip(h["from"], h["to"]), h["count"].tolist()))
        assert {("t1", "t2"): 1, ("t2", "t1"): 1} == dict(
            zip(zip(teams["from"], teams["to"]), teams["count"].tolist()))

    def test_throughput_weeks(self):
        """
        Weeks start on Monday; empty weeks are listed with zeros.
        """
        t = self._log().throughput("week")

        assert "2026-01-05" == str(t["period"].iloc[0].date())
        assert [2, 0, 0, 1] == t["arrivals"].tolist()  # 1 Feb: a Sunday
        assert [1, 1, 0, 1] == t["completions"].tolist()

    def test_sla_breach_rates(self):
        """
        Breach rate per segment from a flag on the last event.
        """
        df = pd.DataFrame({
            "case": ["A", "A", "B", "C"], "act": ["x", "y", "x", "x"],
            "t": pd.to_datetime(["2026-01-01T00:00Z"] * 4),
            "prio": ["1", "1", "1", "2"],
            "made_sla": ["true", "false", "true", "false"],
        })
        log = EventLog.from_dataframe(df, case="case", activity="act",
                                      time="t",
                                      attributes=["prio", "made_sla"])

        r = log.sla_breach_rates(by="prio", breached="!made_sla")

        assert ["1", "2"] == r["prio"].tolist()
        assert [2, 1] == r["cases"].tolist()
        assert [1, 1] == r["breached"].tolist()
        assert [0.5, 1.0] == r["rate"].tolist()


class TestKpis:
    """
    CRM KPI helpers on DataFrames.
    """

    def test_satisfaction(self):
        """
        Mean score and share of 4-5 per month.
        """
        df = pd.DataFrame({
            "score": [5, 1, 4, None],
            "at": ["2026-01-03", "2026-01-20", "2026-02-01", "2026-02-02"],
        })

        s = analytics.satisfaction(df, "score", "at")

        assert [2, 1] == s["responses"].tolist()
        assert [3.0, 4.0] == s["mean_score"].tolist()
        assert [0.5, 1.0] == s["csat"].tolist()

    def test_customers(self):
        """
        New vs returning per month and the repeat purchase rate.
        """
        df = pd.DataFrame({
            "customer": ["a", "b", "a", "c", "a"],
            "order": ["o1", "o2", "o3", "o4", "o3"],
            "at": ["2026-01-03", "2026-01-04", "2026-02-01", "2026-02-02",
                   "2026-02-01"],
        })

        nr = analytics.new_vs_returning(df, "customer", "at")
        rp = analytics.repeat_purchase_rate(df, "customer", "order")

        assert [2, 1] == nr["new"].tolist()
        assert [0, 1] == nr["returning"].tolist()
        assert {"customers": 3, "repeat_customers": 1,
                "rate": 1 / 3} == rp
        assert None is analytics.repeat_purchase_rate(
            df.iloc[:0], "customer")["rate"]

    def test_campaign(self):
        """
        Response and conversion rates per campaign.
        """
        df = pd.DataFrame({
            "campaign": ["c1", "c1", "c2"],
            "y": ["yes", "no", "yes"],
            "bought": [True, False, False],
        })

        r = analytics.campaign_response(df, "campaign", "y", "bought")

        assert [2, 1] == r["contacted"].tolist()
        assert [0.5, 1.0] == r["response_rate"].tolist()
        assert [0.5, 0.0] == r["conversion_rate"].tolist()


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="no shared data")
class TestRealLogs:
    """
    Smoke tests on the shared logs.
    """

    def test_helpdesk_counts(self):
        """
        The helpdesk XES has 4,580 traces and 21,348 events.
        """
        log = EventLog.from_xes(
            SHARED_DATA / "helpdesk_ticket_log" / "helpdesk.xes.gz")

        assert (4580, 21348) == (log.num_cases, log.num_events)
        assert 4384 == _counts(log.start_activities())["Assign seriousness"]
