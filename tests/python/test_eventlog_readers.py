"""
Event-log readers seen from Python: what EventLog.from_csv, from_xes and
from_dataframe accept and refuse, and that a log they read keeps its
values.  Expected values are worked out by hand from the inputs written
here.
"""

import numpy as np
import pandas as pd
import pytest

import crmflow
from crmflow import _core
from crmflow.analytics import EventLog

# 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z in microseconds.
FIRST_MICROS = -62_135_596_800 * 10**6
LAST_MICROS = 253_402_300_800 * 10**6 - 1
OUT_OF_RANGE = "out of range (expected a time in years 1 to 9999 UTC)"


def write(path, text):
    """
    Writes `text` to `path` (UTF-8) and returns the path.
    """
    path.write_text(text, encoding="utf-8")
    return path


class TestHourWithAmPm:
    """
    "%H" with AM/PM reads a 1-12 hour as a twelve-hour clock.
    """

    FORMAT = "%Y-%m-%d %H:%M:%S %p"

    def _times(self, tmp_path, fmt, rows):
        path = write(
            tmp_path / "ampm.csv",
            "case_id,activity,timestamp\n"
            + "".join(f"c,{a},{t}\n" for a, t in rows),
        )
        df = EventLog.from_csv(path, time_format=fmt).to_dataframe()
        return dict(zip(df["activity"].astype(str), df["time"]))

    def test_twelve_am_is_midnight(self, tmp_path):
        """
        12:00:00 AM is 00:00, 01:00:00 AM is 01:00, 12:30 PM is 12:30 and
        01:00 PM is 13:00 on 2021-12-31 (UTC).
        """
        rows = [
            ("a", "2021-12-31 12:00:00 AM"),
            ("b", "2021-12-31 01:00:00 AM"),
            ("c", "2021-12-31 12:30:00 PM"),
            ("d", "2021-12-31 01:00:00 PM"),
        ]

        times = self._times(tmp_path, self.FORMAT, rows)

        assert {
            "a": pd.Timestamp("2021-12-31T00:00:00Z"),
            "b": pd.Timestamp("2021-12-31T01:00:00Z"),
            "c": pd.Timestamp("2021-12-31T12:30:00Z"),
            "d": pd.Timestamp("2021-12-31T13:00:00Z"),
        } == times

    def test_twelve_hour_field_agrees(self, tmp_path):
        """
        "%I" reads the same texts to the same instants.
        """
        rows = [
            ("a", "2021-12-31 12:00:00 AM"),
            ("c", "2021-12-31 12:30:00 PM"),
        ]

        times = self._times(tmp_path, "%Y-%m-%d %I:%M:%S %p", rows)

        assert {
            "a": pd.Timestamp("2021-12-31T00:00:00Z"),
            "c": pd.Timestamp("2021-12-31T12:30:00Z"),
        } == times


class TestTimeRange:
    """
    Times are kept in years 1 to 9999 UTC, so every log read can be
    written and read back.
    """

    CSV = (
        "case_id,activity,timestamp\n"
        "a,x,0001-01-01T00:30:00+01:00\n"
        "a,y,9999-12-31T22:59:59.999999-01:00\n"
        "a,z,9999-12-31T23:30:00-01:00\n"
    )

    def test_csv_raise_names_the_first_bad_time(self, tmp_path):
        """
        0001-01-01T00:30:00+01:00 is in year 0 UTC: line 2, column 3.
        """
        path = write(tmp_path / "y.csv", self.CSV)

        with pytest.raises(crmflow.ParseError) as info:
            EventLog.from_csv(path)

        assert (
            f'{path}:2:3: time "0001-01-01T00:30:00+01:00" {OUT_OF_RANGE}'
            == str(info.value)
        )

    def test_csv_collect_rejects_both_and_keeps_the_last_instant(
        self, tmp_path
    ):
        """
        Lines 2 and 4 are rejects; line 3 is 9999-12-31T23:59:59.999999Z.
        """
        path = write(tmp_path / "y.csv", self.CSV)

        log = EventLog.from_csv(path, on_error="collect")

        rejects = log.rejects
        assert [2, 4] == rejects["line"].tolist()
        assert [3, 3] == rejects["column"].tolist()
        assert (
            f'time "9999-12-31T23:30:00-01:00" {OUT_OF_RANGE}'
            == rejects["reason"].iloc[1]
        )
        assert [LAST_MICROS] == (
            log.to_dataframe()["time"].astype("int64").tolist()
        )

    def test_what_is_read_is_written_and_read_back(self, tmp_path):
        """
        The first and last instants survive to_csv and from_csv.
        """
        path = write(
            tmp_path / "edge.csv",
            "case_id,activity,timestamp\n"
            "a,x,0001-01-01T01:00:00+01:00\n"
            "a,y,9999-12-31T22:59:59.999999-01:00\n",
        )
        out = tmp_path / "edge.out.csv"

        EventLog.from_csv(path).to_csv(out)
        again = EventLog.from_csv(out, resource="resource",
                                  lifecycle="lifecycle")

        assert [FIRST_MICROS, LAST_MICROS] == (
            again.to_dataframe()["time"].astype("int64").tolist()
        )

    def test_xes_refuses_an_instant_in_year_10000(self, tmp_path):
        """
        9999-12-31T23:30:00-01:00 is 10000-01-01T00:30Z: refused where
        the date attribute starts, line 1, column 96.
        """
        path = write(
            tmp_path / "y.xes",
            '<log><trace><string key="concept:name" value="t"/><event>'
            '<string key="concept:name" value="x"/>'
            '<date key="time:timestamp" value="9999-12-31T23:30:00-01:00"/>'
            "</event></trace></log>",
        )

        with pytest.raises(crmflow.ParseError) as info:
            EventLog.from_xes(path)

        assert (
            f'{path}:1:96: trace t: time "9999-12-31T23:30:00-01:00" '
            f"{OUT_OF_RANGE}" == str(info.value)
        )

    def test_codes_path_refuses_microseconds_outside_the_range(self):
        """
        The core's column input refuses one microsecond before year 1 and
        one after year 9999, and keeps both ends.
        """
        def build(micros):
            return _core.EventLog.from_codes(
                np.array([0]), ["a"], np.array([0]), ["x"],
                np.array([micros], dtype=np.int64),
            )

        for micros in (FIRST_MICROS - 1, LAST_MICROS + 1):
            with pytest.raises(crmflow.InvalidArgumentError) as info:
                build(micros)
            assert f"event 0: time {micros} {OUT_OF_RANGE}" == str(
                info.value
            )
        assert 1 == build(FIRST_MICROS).num_events
        assert 1 == build(LAST_MICROS).num_events


class TestXesNames:
    """
    An XES trace or event with an empty or missing concept:name is
    refused with file:line:column, as CSV refuses an empty case id or
    activity.
    """

    TIME = '<date key="time:timestamp" value="2021-01-01T00:00:00Z"/>'

    def _refusal(self, tmp_path, text):
        path = write(tmp_path / "n.xes", text)
        with pytest.raises(crmflow.ParseError) as info:
            EventLog.from_xes(path)
        return str(info.value).replace(str(path), "n.xes")

    def test_empty_activity(self, tmp_path):
        """
        concept:name "" of the event on line 3, column 3, in case t1.
        """
        text = (
            '<log><trace><string key="concept:name" value="t1"/>\n'
            "<event>\n"
            '  <string key="concept:name" value=""/>\n'
            f"  {self.TIME}\n"
            "</event></trace></log>\n"
        )

        message = self._refusal(tmp_path, text)

        assert (
            "n.xes:3:3: empty activity in case t1 (expected a value in the "
            "event's concept:name)" == message
        )

    def test_missing_activity(self, tmp_path):
        """
        An event with no concept:name: named where <event> starts.
        """
        text = (
            '<log><trace><string key="concept:name" value="t1"/>\n'
            f"<event>{self.TIME}</event></trace></log>\n"
        )

        message = self._refusal(tmp_path, text)

        assert (
            "n.xes:2:1: event without concept:name (expected a string "
            "attribute with key concept:name)" == message
        )

    def test_empty_case_id(self, tmp_path):
        """
        concept:name "" of the trace (after its event), line 3, column 1.
        """
        text = (
            "<log><trace>\n"
            '<event><string key="concept:name" value="a"/>'
            f"{self.TIME}</event>\n"
            '<string key="concept:name" value=""/></trace></log>\n'
        )

        message = self._refusal(tmp_path, text)

        assert (
            "n.xes:3:1: empty case id (expected a value in the trace's "
            "concept:name)" == message
        )

    def test_missing_case_id(self, tmp_path):
        """
        A trace with no concept:name: named where <trace> starts.
        """
        text = (
            "<log>\n"
            '  <trace><event><string key="concept:name" value="a"/>'
            f"{self.TIME}</event></trace></log>\n"
        )

        message = self._refusal(tmp_path, text)

        assert (
            "n.xes:2:3: trace without concept:name (expected a string "
            "attribute with key concept:name)" == message
        )

    def test_what_csv_refuses_xes_refuses(self, tmp_path):
        """
        The same empty activity is refused by from_csv too (line 2,
        column 2).
        """
        path = write(
            tmp_path / "e.csv",
            "case_id,activity,timestamp\nt1,,2021-01-01T00:00:00Z\n",
        )

        with pytest.raises(crmflow.ParseError) as info:
            EventLog.from_csv(path)

        assert (
            f"{path}:2:2: empty activity in case t1 (expected a value in "
            "column activity)" == str(info.value)
        )


class TestLifecycleText:
    """
    Lifecycle values are kept as read; start and complete still pair
    into activity instances, in any letter case.
    """

    TEXTS = ["schedule", "assign", "start", "suspend", "resume",
             "ate_abort", "complete", "Reviewed, twice"]

    def _xes(self, tmp_path, texts):
        event = (
            '<event><string key="concept:name" value="A"/>'
            '<date key="time:timestamp" value="2021-01-01T00:00:0{i}Z"/>'
            "{lc}</event>"
        )
        lc = '<string key="lifecycle:transition" value="{}"/>'
        body = "".join(
            event.format(i=i, lc=lc.format(t) if t is not None else "")
            for i, t in enumerate(texts)
        )
        return write(
            tmp_path / "lc.xes",
            '<log><trace><string key="concept:name" value="t"/>'
            + body + "</trace></log>",
        )

    def test_xes_values_reach_the_dataframe(self, tmp_path):
        """
        Every XES lifecycle value comes back as written, one per event.
        """
        log = EventLog.from_xes(self._xes(tmp_path, self.TEXTS))

        values = log.to_dataframe()["lifecycle"].astype(str).tolist()

        assert self.TEXTS == values

    def test_csv_round_trip_keeps_the_values(self, tmp_path):
        """
        to_csv writes the values (quoting the comma) and from_csv reads
        them back.
        """
        out = tmp_path / "lc.csv"
        EventLog.from_xes(self._xes(tmp_path, self.TEXTS)).to_csv(out)

        again = EventLog.from_csv(out, resource="resource",
                                  lifecycle="lifecycle")

        assert '"Reviewed, twice"' in out.read_text()
        assert self.TEXTS == (
            again.to_dataframe()["lifecycle"].astype(str).tolist()
        )

    def test_pairing_is_unchanged(self, tmp_path):
        """
        start at 2 s and complete at 6 s pair (4 s); the six other events
        are atomic, without duration: seven instances.
        """
        log = EventLog.from_xes(self._xes(tmp_path, self.TEXTS))

        inst = log.activity_instances()

        assert 7 == len(inst)
        assert [4.0] == inst["duration"].dropna().tolist()

    def test_letter_case_kept_and_still_paired(self, tmp_path):
        """
        "Start" at 0 s and "COMPLETE" at 2 s keep their case and pair
        (2 s); the event at 1 s without lifecycle is missing (NaN) and
        atomic (no duration).
        """
        log = EventLog.from_xes(
            self._xes(tmp_path, ["Start", None, "COMPLETE"])
        )

        df = log.to_dataframe()
        inst = log.activity_instances()

        assert ["Start", "COMPLETE"] == df["lifecycle"].dropna().tolist()
        assert df["lifecycle"].isna().tolist() == [False, True, False]
        assert 2 == len(inst)
        assert 2.0 == inst["duration"].iloc[0]
        assert [False, True] == inst["duration"].isna().tolist()

    def test_dataframe_values_are_kept(self):
        """
        from_dataframe keeps "assign" and "Start"; None stays missing.
        """
        df = pd.DataFrame({
            "case_id": ["a", "a", "a"],
            "activity": ["x", "x", "y"],
            "timestamp": [0, 60_000_000, 120_000_000],
            "lc": ["assign", "Start", None],
        })

        log = EventLog.from_dataframe(df, lifecycle="lc")

        out = log.to_dataframe()["lifecycle"]
        assert ["assign", "Start"] == out.iloc[:2].tolist()
        assert out.isna().tolist() == [False, False, True]

    def test_no_lifecycle_gives_a_missing_column(self, tmp_path):
        """
        A log read without lifecycle still has the column, all missing.
        """
        path = write(
            tmp_path / "plain.csv",
            "case_id,activity,timestamp\na,x,2021-01-01T00:00:00Z\n",
        )

        df = EventLog.from_csv(path).to_dataframe()

        assert df["lifecycle"].isna().tolist() == [True]
