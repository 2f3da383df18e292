"""
Event logs from DataFrames and the KPI helpers on awkward input: times
with and without offsets, daylight-saving changes, out-of-range and
unparseable times, NUL characters in names, float flags, missing SLA
flags and malformed arguments.

Expected instants are worked out by hand from the zone rules (Berlin is
UTC+1 in winter, UTC+2 in summer; clocks went forward at 2021-03-28
02:00 and back at 2021-10-31 03:00) and, where the CSV reader reads the
same text, compared with it: it is a separate parser, in C++.
"""

import datetime
import zoneinfo

import numpy as np
import pandas as pd
import pytest

import crmflow
from crmflow import analytics
from crmflow.analytics import EventLog


def _times(log):
    """
    Returns {activity: time} of a log.
    """
    df = log.to_dataframe()
    return dict(zip(df["activity"].astype(str), df["time"]))


def _frame(times, **extra):
    n = len(times)
    return pd.DataFrame({"case_id": ["c"] * n,
                         "activity": [f"a{i}" for i in range(n)],
                         "timestamp": times, **extra})


class TestZones:
    def test_naive_text_beside_offsets_is_read_in_the_zone(self):
        """
        10:00 with +05:00 is 05:00Z; a naive 10:00 in Berlin (winter,
        UTC+1) is 09:00Z, not 10:00Z.
        """
        df = _frame(["2021-01-01T10:00:00+05:00", "2021-01-01T10:00:00",
                     "2021-01-01 10:00:00Z"])

        got = _times(EventLog.from_dataframe(df, time_zone="Europe/Berlin"))

        assert pd.Timestamp("2021-01-01T05:00:00Z") == got["a0"]
        assert pd.Timestamp("2021-01-01T09:00:00Z") == got["a1"]
        assert pd.Timestamp("2021-01-01T10:00:00Z") == got["a2"]

    @pytest.mark.parametrize("wall, utc", [
        # The repeated hour: its first occurrence, still UTC+2.
        ("2021-10-31T02:30:00", "2021-10-31T00:30:00Z"),
        # The skipped hour: the offset before the gap, UTC+1.
        ("2021-03-28T02:30:00", "2021-03-28T01:30:00Z"),
        # Either side of the changes.
        ("2021-10-31T03:30:00", "2021-10-31T02:30:00Z"),
        ("2021-03-28T03:30:00", "2021-03-28T01:30:00Z"),
    ])
    def test_daylight_saving_changes_as_the_csv_reader(self, tmp_path,
                                                       wall, utc):
        """
        Text and naive datetime64 columns give the instant worked out by
        hand, and the CSV reader agrees.
        """
        path = tmp_path / "dst.csv"
        path.write_text(f"case_id,activity,timestamp\nc,a0,{wall}\n",
                        encoding="utf-8")

        text = _times(EventLog.from_dataframe(
            _frame([wall]), time_zone="Europe/Berlin"))
        naive = _times(EventLog.from_dataframe(
            _frame(pd.to_datetime([wall])), time_zone="Europe/Berlin"))
        csv = _times(EventLog.from_csv(path, time_zone="Europe/Berlin"))

        assert pd.Timestamp(utc) == text["a0"] == naive["a0"] == csv["a0"]

    def test_datetime_objects_aware_and_naive(self):
        """
        An object column of Python datetimes: the aware one is its
        instant, the naive one Berlin summer time (UTC+2).
        """
        aware = datetime.datetime(2021, 6, 1, 12, 0,
                                  tzinfo=zoneinfo.ZoneInfo("Asia/Tokyo"))
        naive = datetime.datetime(2021, 6, 1, 12, 0, 0, 250)
        df = _frame(pd.Series([aware, naive], dtype=object))

        got = _times(EventLog.from_dataframe(df, time_zone="Europe/Berlin"))

        assert pd.Timestamp("2021-06-01T03:00:00Z") == got["a0"]
        assert pd.Timestamp("2021-06-01T10:00:00.000250Z") == got["a1"]

    def test_unknown_zone_is_named(self):
        with pytest.raises(crmflow.InvalidArgumentError,
                           match='unknown time zone "Mars/Olympus"'):
            EventLog.from_dataframe(_frame(["2021-01-01T10:00:00"]),
                                    time_zone="Mars/Olympus")

    def test_satisfaction_periods_in_the_zone(self):
        """
        Midnight on 1 February in Berlin is 31 January 23:00 UTC, so the
        two scores fall into January and February.
        """
        df = pd.DataFrame({"score": [5, 1],
                           "t": ["2021-02-10T00:00:00+01:00",
                                 "2021-02-01T00:00:00"]})

        out = analytics.satisfaction(df, "score", "t",
                                     time_zone="Europe/Berlin")

        assert [pd.Timestamp("2021-01-01", tz="UTC"),
                pd.Timestamp("2021-02-01", tz="UTC")] == list(out["period"])
        assert [1.0, 5.0] == out["mean_score"].tolist()

    def test_satisfaction_names_an_unreadable_time(self):
        df = pd.DataFrame({"score": [5, 1], "t": ["2021-02-10", "soon"]},
                          index=[10, 11])

        with pytest.raises(crmflow.ParseError) as e:
            analytics.satisfaction(df, "score", "t")

        assert "row 11, column \"t\"" in str(e.value)
        assert 'unparseable time "soon"' in str(e.value)


class TestBadTimes:
    def test_unparseable_text_names_row_column_and_value(self):
        df = _frame(["2021-01-01T00:00:00", "garbage"])

        with pytest.raises(crmflow.ParseError) as e:
            EventLog.from_dataframe(df)

        message = str(e.value)
        assert 'row 1, column "timestamp": unparseable time "garbage" ' \
            "(expected ISO 8601)" == message

    @pytest.mark.parametrize("micros", [-2**62, 2**63 - 1,
                                        # 0000-12-31T23:59:59.999999Z
                                        -62_135_596_800_000_001,
                                        # 10000-01-01T00:00:00Z
                                        253_402_300_800_000_000])
    def test_integer_times_outside_years_1_to_9999(self, micros):
        """
        Out of range: an error naming the row, or a reject; never a
        negative duration from an overflow.
        """
        df = _frame(pd.Series([0, micros], dtype="int64"))

        with pytest.raises(crmflow.ParseError, match="row 1, column"):
            EventLog.from_dataframe(df)
        log = EventLog.from_dataframe(df, on_error="collect")

        assert 1 == log.num_events
        assert [1] == log.rejects["line"].tolist()
        assert f"time {micros} out of range" in log.rejects["reason"].iloc[0]

    def test_integer_times_at_the_ends_of_the_range(self):
        """
        0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z are kept,
        and the case lasts their difference.
        """
        lo, hi = -62_135_596_800_000_000, 253_402_300_799_999_999
        df = _frame(pd.Series([lo, hi], dtype="int64"))

        log = EventLog.from_dataframe(df)

        seconds = log.case_durations()["duration"].iloc[0]
        assert (hi - lo) / 1e6 == pytest.approx(seconds, rel=1e-15)

    def test_text_whose_instant_leaves_the_range(self):
        """
        00:30 on 1 January of year 1 at +01:00 is in year 0 UTC.
        """
        df = _frame(["0001-01-01T00:30:00+01:00", "2021-01-01T00:00:00Z"])

        log = EventLog.from_dataframe(df, on_error="collect")

        assert [0] == log.rejects["line"].tolist()

    def test_missing_and_blank_times(self):
        df = _frame([None, "  ", "2021-01-01T00:00:00Z"])

        log = EventLog.from_dataframe(df, on_error="collect")

        assert [0, 1] == log.rejects["line"].tolist()
        assert ["missing time"] * 2 == log.rejects["reason"].tolist()

    def test_nullable_integer_times(self):
        df = _frame(pd.array([1_000_000, None], dtype="Int64"))

        log = EventLog.from_dataframe(df, on_error="collect")

        assert pd.Timestamp("1970-01-01T00:00:01Z") == _times(log)["a0"]
        assert ["missing time"] == log.rejects["reason"].tolist()

    def test_float_times_are_refused_naming_the_column(self):
        df = _frame([1.5e15, 1.6e15])

        with pytest.raises(crmflow.InvalidArgumentError,
                           match='column "timestamp": float64 times'):
            EventLog.from_dataframe(df)


class TestNames:
    def test_trailing_nul_keeps_names_apart(self):
        """
        "b" and "b\\x00" are two activities and "2" and "2\\x00" two cases,
        as the CSV reader keeps them.
        """
        df = pd.DataFrame({
            "case_id": ["1", "1", "1", "2", "2\x00"],
            "activity": ["a", "b", "b\x00", "a", "a"],
            "timestamp": pd.date_range("2021-01-01", periods=5, freq="h",
                                       tz="UTC"),
        })

        log = EventLog.from_dataframe(df)

        counts = {(f, t): c for f, t, c in
                  log.dfg()[["from", "to", "count"]].itertuples(index=False)}
        assert {("a", "b"): 1, ("b", "b\x00"): 1} == counts
        assert 3 == log.num_cases

    @pytest.mark.parametrize("cases, words", [
        (["c", ""], "cases[1] must not be empty"),
        (["c", None], "cases[1] must be a string (got NoneType)"),
        (["c", "\ud800"], "cases[1]: text is not valid UTF-8"),
        ("c", "cases must be a list of case ids (got str)"),
    ])
    def test_bad_case_list(self, cases, words):
        with pytest.raises(crmflow.InvalidArgumentError) as e:
            EventLog.from_dataframe(_frame(["2021-01-01T00:00:00Z"]),
                                    cases=cases)
        assert words in str(e.value)

    def test_case_list_with_numbers(self):
        log = EventLog.from_dataframe(_frame(["2021-01-01T00:00:00Z"]),
                                      cases=["c", 7])
        assert ["c", "7"] == log.case_ids


class TestMeasureArguments:
    def _log(self):
        df = pd.DataFrame({
            "case_id": ["1", "2", "3", "4"], "activity": ["a"] * 4,
            "timestamp": pd.date_range("2021-01-01", periods=4, freq="h",
                                       tz="UTC"),
            "prio": ["1", "1", "1", "2"],
            "made_sla": ["true", "false", None, None],
        })
        return EventLog.from_dataframe(df, attributes=["prio", "made_sla"])

    def test_handovers_by_a_column_that_is_not_an_attribute(self):
        with pytest.raises(crmflow.InvalidArgumentError) as e:
            self._log().handovers(by="time")
        assert 'handovers by "time": not a resource or attribute' in \
            str(e.value)
        assert "prio, made_sla" in str(e.value)

    @pytest.mark.parametrize("breached", [5, None, "", "!"])
    def test_breach_flag_must_be_a_column(self, breached):
        with pytest.raises(crmflow.InvalidArgumentError,
                           match="breached must be a column name"):
            self._log().sla_breach_rates("prio", breached)

    def test_cases_without_a_flag_are_counted_apart(self):
        """
        Priority 1: one breach (made_sla false) among two flagged cases,
        one case without a flag; priority 2: no flagged case, no rate.
        """
        out = self._log().sla_breach_rates("prio", "!made_sla")

        assert ["1", "2"] == out["prio"].tolist()
        assert [2, 0] == out["cases"].tolist()
        assert [1, 0] == out["breached"].tolist()
        assert [1, 1] == out["without_flag"].tolist()
        assert 0.5 == out["rate"].iloc[0]
        assert out["rate"].isna().iloc[1]
        assert not np.isnan(out["rate"].to_numpy(dtype=float,
                                                 na_value=0.0)).any()

    def test_campaign_flags_as_floats(self):
        """
        pandas stores 0/1 with a gap as floats: 1.0 is a response, 0.0
        and the gap are not.
        """
        df = pd.DataFrame({"campaign": ["x", "x", "x"],
                           "responded": [1.0, 0.0, np.nan]})

        out = analytics.campaign_response(df, "campaign", "responded")

        assert [3] == out["contacted"].tolist()
        assert [1] == out["responded"].tolist()


def test_collected_rejects_are_logged(tmp_path, caplog):
    """
    A read that collects rejects says so on the crmflow logger: a wrong
    time format that rejects every row does not pass unnoticed.
    """
    path = tmp_path / "log.csv"
    path.write_text("case_id,activity,timestamp\n"
                    "A,x,2026-01-01T00:00:00Z\nA,y,2026-01-01T01:00:00Z\n",
                    encoding="utf-8")

    with caplog.at_level("WARNING", logger="crmflow"):
        log = EventLog.from_csv(path, time_format="%d/%m/%Y %H:%M",
                                on_error="collect")

    assert 0 == log.num_events
    assert [f"{path}: 2 rows rejected, 0 events kept (see "
            "EventLog.rejects)"] == [r.getMessage() for r in caplog.records]


class TestNullValues:
    """
    from_csv(null_values=...): ServiceNow writes "?" for "no group".
    """

    def _sample(self):
        import os

        return os.path.join(os.path.dirname(crmflow.__file__), "data",
                            "servicenow_incidents_sample.csv.gz")

    def test_handovers_leave_out_null_groups(self):
        """
        Hand-overs between assignment groups counted with pandas, "?" read
        as missing: consecutive events of a case, both with a group, the
        groups differing.
        """
        df = pd.read_csv(self._sample(), na_values=["?"],
                         keep_default_na=False,
                         usecols=["number", "sys_updated_at",
                                  "assignment_group"])
        df["time"] = pd.to_datetime(df["sys_updated_at"],
                                    format="%d/%m/%Y %H:%M", utc=True)
        df["row"] = range(len(df))
        df = df.sort_values(["number", "time", "row"], kind="stable")
        prev = df.groupby("number")["assignment_group"].shift()
        cur = df["assignment_group"]
        hit = prev.notna() & cur.notna() & (prev != cur)
        expected = (pd.DataFrame({"from": prev[hit], "to": cur[hit]})
                    .value_counts().to_dict())

        log = EventLog.from_csv(self._sample(), case="number",
                                activity="incident_state",
                                time="sys_updated_at",
                                time_format="%d/%m/%Y %H:%M",
                                attributes=["assignment_group"],
                                null_values=["?"])
        got = log.handovers(by="assignment_group")

        assert "?" not in set(got["from"]) | set(got["to"])
        assert expected == {(f, t): c for f, t, c in
                            got.itertuples(index=False)}
        assert sum(expected.values()) > 1000

    def test_null_in_a_required_column_is_a_bad_row(self, tmp_path):
        path = tmp_path / "log.csv"
        path.write_text("case_id,activity,timestamp,resource\n"
                        "A,x,2026-01-01T00:00:00Z,NA\n"
                        "A,NA,2026-01-01T01:00:00Z,ann\n"
                        "NA,y,2026-01-01T02:00:00Z,bob\n"
                        "B,y,NA,bob\n", encoding="utf-8")

        with pytest.raises(crmflow.ParseError) as e:
            EventLog.from_csv(path, resource="resource", null_values=["NA"])
        log = EventLog.from_csv(path, resource="resource",
                                null_values=["NA"], on_error="collect")

        assert str(e.value).endswith(
            'log.csv:3:2: missing (null value "NA") activity in case A '
            "(expected a value in column activity)")
        assert [3, 4, 5] == log.rejects["line"].tolist()
        assert [2, 1, 3] == log.rejects["column"].tolist()
        assert 1 == log.num_events
        assert log.to_dataframe()["resource"].isna().all()

    def test_null_values_are_checked(self):
        with pytest.raises(crmflow.InvalidArgumentError,
                           match=r"null_values\[1\] must be a string"):
            EventLog.from_csv(self._sample(), null_values=["?", None])


class TestSameAsTheCsvReader:
    """
    Texts in a DataFrame are read by the CSV reader's parser: the same
    text gives the same instant, or the same refusal, through both.
    """

    def _both(self, tmp_path, texts, time_format="", time_zone="UTC"):
        """
        Returns ({row: time}, rejected rows) from from_csv and from
        from_dataframe on the same texts (one case, activity a<row>).
        """
        path = tmp_path / "t.csv"
        lines = [f'c,a{i},"{t}"' for i, t in enumerate(texts)]
        path.write_text("case_id,activity,timestamp\n" + "\n".join(lines)
                        + "\n", encoding="utf-8")
        csv = EventLog.from_csv(path, time_format=time_format,
                                time_zone=time_zone, on_error="collect")
        df = EventLog.from_dataframe(_frame(list(texts)),
                                     time_format=time_format,
                                     time_zone=time_zone, on_error="collect")
        out = []
        for log, first_row in ((csv, 2), (df, 0)):
            rejected = sorted(int(x) - first_row
                              for x in log.rejects["line"])
            out.append((_times(log), rejected))
        return out

    @pytest.mark.parametrize("time_format, texts", [
        ("", ["2021-01-01T10:00:00+05:30", "2021-01-01T10:00:00+0530",
              "2021-01-01T10:00:00,5Z", "2021-01-01 10:00", "2021-01-01",
              "2021-01-01T10:00:00+5", "2021-01-01T10:00:00 UTC",
              "0001-01-01T00:30:00+01:00", "9999-12-31 23:00"]),
        ("ISO8601", ["2021-01-01T10:00:00+05:30", "2021-06-01T10:00"]),
        ("iso", ["2021-01-01T10:00:00+05:30", "2021-06-01T10:00"]),
        ("%Y-%m-%d %H:%M %p", ["2021-12-31 12:30 AM", "2021-12-31 01:30 PM",
                               "2021-12-31 12:30 PM"]),
        ("%d.%m.%Y %H:%M%z", ["05.01.2026 09:00+0100", "05.01.2026 09:00Z",
                              "05.01.2026 09:00"]),
    ])
    @pytest.mark.parametrize("zone", ["UTC", "America/New_York"])
    def test_same_instants_and_refusals(self, tmp_path, time_format, texts,
                                        zone):
        csv, df = self._both(tmp_path, texts, time_format, zone)
        assert csv == df

    def test_hand_worked_instants(self, tmp_path):
        """
        +05:30 is 04:30Z; 12:30 AM is 00:30 and 01:30 PM 13:30 in New York
        (UTC-5 in December); a decimal comma is a fraction.
        """
        (csv, rejected), _ = self._both(
            tmp_path, ["2021-01-01T10:00:00+05:30", "2021-01-01T10:00:00,5Z"])
        (ny, _), _ = self._both(tmp_path, ["2021-12-31 12:30 AM",
                                           "2021-12-31 01:30 PM"],
                                "%Y-%m-%d %H:%M %p", "America/New_York")

        assert pd.Timestamp("2021-01-01T04:30:00Z") == csv["a0"]
        assert pd.Timestamp("2021-01-01T10:00:00.5Z") == csv["a1"]
        assert pd.Timestamp("2021-12-31T05:30:00Z") == ny["a0"]
        assert pd.Timestamp("2021-12-31T18:30:00Z") == ny["a1"]
        assert [] == rejected

    def test_wall_time_past_9999_is_a_reject_not_a_zone_error(self):
        """
        23:00 on 31 December 9999 in New York is 04:00 in year 10000 UTC:
        that row is out of range, the zone is fine.
        """
        for times in (["9999-12-31 23:00", "2021-01-01 10:00"],
                      pd.to_datetime(["9999-12-31 23:00",
                                      "2021-01-01 10:00"])):
            log = EventLog.from_dataframe(_frame(times),
                                          time_zone="America/New_York",
                                          on_error="collect")
            assert [0] == log.rejects["line"].tolist()
            assert 1 == log.num_events

    @pytest.mark.parametrize("fmt", ["%Q", "%Y-%m-%d %", "mixed %s"])
    def test_bad_format_is_an_invalid_argument(self, fmt):
        with pytest.raises(crmflow.InvalidArgumentError,
                           match="time format"):
            EventLog.from_dataframe(_frame(["2021-01-01"]), time_format=fmt)

    @pytest.mark.parametrize("times", [
        pd.Series([1_000_000], dtype="int64"),
        ["2021-01-01T10:00:00Z"],
    ])
    def test_zone_is_checked_even_when_unused(self, times):
        with pytest.raises(crmflow.InvalidArgumentError,
                           match='unknown time zone "Nowhere/Zone"'):
            EventLog.from_dataframe(_frame(times), time_zone="Nowhere/Zone")
        with pytest.raises(crmflow.InvalidArgumentError,
                           match="time_zone must be a string"):
            EventLog.from_dataframe(_frame(times), time_zone=None)

    @pytest.mark.parametrize("dtype", ["uint64", "UInt64"])
    def test_unsigned_times_past_int64_are_out_of_range(self, dtype):
        df = _frame(pd.Series([2**64 - 1, 1_000_000], dtype=dtype))

        log = EventLog.from_dataframe(df, on_error="collect")

        assert [0] == log.rejects["line"].tolist()
        assert pd.Timestamp("1970-01-01T00:00:01Z") == _times(log)["a1"]

    def test_a_time_column_of_nothing_is_all_missing(self):
        df = _frame([np.nan, np.nan])

        log = EventLog.from_dataframe(df, on_error="collect")

        assert ["missing time"] * 2 == log.rejects["reason"].tolist()


class TestAttributesAsTheCsvReader:
    def test_reserved_names_are_refused(self, tmp_path):
        df = _frame(["2021-01-01T10:00:00Z"], resource=["ann"])
        path = tmp_path / "t.csv"
        df.to_csv(path, index=False)

        for read in (lambda a: EventLog.from_dataframe(df, attributes=[a]),
                     lambda a: EventLog.from_csv(path, attributes=[a])):
            with pytest.raises(crmflow.InvalidArgumentError,
                               match='attribute "resource" has the name of'):
                read("resource")

    def test_empty_cells_and_float_flags(self, tmp_path):
        """
        Four cases: flag 1.0 (breached), 0.0, empty, and missing. Both
        readers: 2 cases with a flag, 1 breached, 2 without, rate 0.5.
        """
        df = pd.DataFrame({"case_id": ["1", "2", "3", "4"],
                           "activity": ["a"] * 4,
                           "timestamp": ["2021-01-01T10:00:00Z"] * 4,
                           "prio": ["p"] * 4,
                           "late": [1.0, 0.0, np.nan, np.nan]})
        text = df.astype({"late": object})
        text.loc[2, "late"] = ""
        path = tmp_path / "t.csv"
        text.assign(late=["1", "0", "", ""]).to_csv(path, index=False)

        logs = [EventLog.from_dataframe(df, attributes=["prio", "late"]),
                EventLog.from_dataframe(text, attributes=["prio", "late"]),
                EventLog.from_csv(path, attributes=["prio", "late"])]

        for log in logs:
            out = log.sla_breach_rates("prio", "late")
            assert [2, 1, 2] == out[["cases", "breached",
                                     "without_flag"]].iloc[0].tolist()
            assert 0.5 == out["rate"].iloc[0]


class TestWhatIfReadsAsConformance:
    def test_a_repeated_state_fires_the_self_loop(self):
        """
        new, open, open, closed with a note: open -> open self-loop: the
        second "open" is the note, in conformance and in what-if alike.
        """
        wf = crmflow.Workflow.from_dict({
            "name": "w",
            "states": [{"name": "new", "role": "initial"},
                       {"name": "open"},
                       {"name": "closed", "role": "terminal"}],
            "transitions": [
                {"event": "open", "from": "new", "to": "open"},
                {"event": "note", "from": "open", "to": "open"},
                {"event": "close", "from": "open", "to": "closed"}]})
        df = pd.DataFrame({
            "case_id": ["c1"] * 4,
            "activity": ["new", "open", "open", "closed"],
            "timestamp": pd.date_range("2021-01-01", periods=4, freq="h",
                                       tz="UTC")})
        log = EventLog.from_dataframe(df)

        edges = log.conformance(wf, activity_kind="state").edge_counts()
        r = analytics.what_if(log, wf, wf, activity_kind="state",
                              count_events=["note"])

        assert [1] == edges.loc[edges["event"] == "note", "count"].tolist()
        totals = r.totals.set_index("metric")
        assert 1 == totals.loc["events_note", "before"]

    @pytest.mark.parametrize("activity", ["state", "event"])
    def test_a_log_from_the_engine(self, activity):
        """
        The engine's own history fits its workflow in what-if as in
        conformance: 1000 Olist orders, no deviation.
        """
        with crmflow.Engine() as crm:
            crm.import_preset("olist-orders")
            wf = crm.workflow("sales_order")
            log = EventLog.from_engine(crm, "sales_order", activity=activity)

            conformance = log.conformance(wf).summary()
            before = analytics.what_if(log, wf, wf).before.summary()

        assert (1000, {}) == (conformance["fitting_cases"],
                              conformance["deviations"])
        assert (1000, {}) == (before["fitting_cases"], before["deviations"])


def test_breach_rates_need_a_segment():
    log = EventLog.from_dataframe(_frame(["2021-01-01T10:00:00Z"],
                                         flag=["true"]),
                                  attributes=["flag"])
    with pytest.raises(crmflow.InvalidArgumentError,
                       match="non-empty list"):
        log.sla_breach_rates([], "flag")


def test_diagram_into_a_missing_folder(tmp_path):
    from crmflow import diagrams

    d = diagrams.workflow_diagram(crmflow.templates.load("complaint"))
    with pytest.raises(crmflow.InvalidArgumentError,
                       match="cannot open for writing"):
        d.save(tmp_path / "no" / "such" / "w.dot")


def test_xes_attributes_named_like_the_logs_columns(tmp_path):
    """
    An XES event attribute "resource" beside org:resource, and one named
    "timestamp": both kept apart from the log's own columns, in the
    DataFrame and in a CSV that reads back.
    """
    path = tmp_path / "a.xes"
    path.write_text(
        '<log><trace><string key="concept:name" value="t1"/><event>'
        '<string key="concept:name" value="A"/>'
        '<date key="time:timestamp" value="2021-01-01T00:00:00Z"/>'
        '<string key="org:resource" value="ann"/>'
        '<string key="resource" value="desk 4"/>'
        '<string key="timestamp" value="yesterday"/>'
        "</event></trace></log>", encoding="utf-8")
    log = EventLog.from_xes(path)

    df = log.to_dataframe()
    log.to_csv(tmp_path / "a.csv")
    back = EventLog.from_csv(
        tmp_path / "a.csv", resource="resource",
        attributes=["attribute:resource", "attribute:timestamp"])

    assert ["ann"] == df["resource"].astype(str).tolist()
    assert ["desk 4"] == df["attribute:resource"].astype(str).tolist()
    assert pd.Timestamp("2021-01-01", tz="UTC") == df["time"].iloc[0]
    b = back.to_dataframe()
    assert ["ann"] == b["resource"].astype(str).tolist()
    assert ["desk 4"] == b["attribute:resource"].astype(str).tolist()
    assert ["yesterday"] == b["attribute:timestamp"].astype(str).tolist()
