"""
Times at the ends of the supported range, years 1 to 9999 UTC, where a
zone's offset or a calendar step carries a valid-looking value outside
it: refused with InvalidArgumentError, nothing written, the database
still readable.

Berlin's offset before 1893 is its local mean time, +00:53:28, so local
midnight on 1 January of year 1 is 23:06:32 on 31 December of year 0
UTC; New York's is -04:56:02, so 23:00 on 31 December 9999 is past the
end of year 9999 UTC.
"""

import datetime
import sqlite3

import numpy as np
import pandas as pd
import pytest

import crmflow
from crmflow.analytics import EventLog
from crmflow.service import Calendar


class TestEngineTimes:
    def test_naive_time_before_year_1_utc_writes_nothing(self, tmp_path):
        path = tmp_path / "crm.db"
        with crmflow.Engine(str(path), zone="Europe/Berlin") as e:
            e.register("service_request")

            with pytest.raises(crmflow.InvalidArgumentError,
                               match="time out of range in UTC"):
                e.create("service_request", "A",
                         time=datetime.datetime(1, 1, 1))
            e.create("service_request", "B",
                     time=datetime.datetime(1, 1, 1, 1))

            assert ["B"] == list(e.transactions()["id"])
            assert 1 == len(e.history("B"))
        with sqlite3.connect(path) as con:
            assert [("B",)] == con.execute(
                "SELECT id FROM transactions").fetchall()

    def test_naive_time_after_year_9999_utc_is_refused(self):
        with crmflow.Engine(zone="America/New_York") as e:
            e.register("service_request")
            e.create("service_request", "A",
                     time=datetime.datetime(9999, 12, 31, 12))
            before = e.history("A")

            with pytest.raises(crmflow.InvalidArgumentError,
                               match="time out of range in UTC"):
                e.fire("A", "assign", actor="ann",
                       time=datetime.datetime(9999, 12, 31, 23))

            assert before.equals(e.history("A"))


class TestCalendarEdges:
    def test_a_step_past_9999_is_an_error(self):
        c = Calendar("UTC")
        end = "9999-12-31T23:00:00Z"

        with pytest.raises(crmflow.InvalidArgumentError,
                           match="out of range"):
            c.add(end, datetime.timedelta(hours=2))
        with pytest.raises(crmflow.InvalidArgumentError,
                           match="result 0 out of range"):
            c.add_many(np.array(["9999-12-31T23:00"],
                                dtype="datetime64[us]"),
                       datetime.timedelta(hours=2))
        assert datetime.datetime(9999, 12, 31, 23, 30,
                                 tzinfo=datetime.timezone.utc) == \
            c.add(end, datetime.timedelta(minutes=30))

    @pytest.mark.parametrize("start", [
        "0001-01-01T00:30:00+01:00",       # year 0 UTC
        "9999-12-31T23:30:00-01:00",       # year 10000 UTC
    ])
    def test_offsets_cannot_leave_the_range(self, start):
        with pytest.raises(crmflow.InvalidArgumentError,
                           match="time out of range in UTC"):
            Calendar("UTC").is_open(start)

    def test_many_starts_out_of_range(self):
        with pytest.raises(crmflow.InvalidArgumentError,
                           match="start 1 out of range"):
            Calendar("UTC").add_many(np.array([0, 2**62], dtype=np.int64),
                                     datetime.timedelta(hours=1))


def test_categorical_empty_attribute_is_missing():
    """
    to_dataframe() gives categoricals; fed back, "" is missing there as
    in an object column: no hand-over x -> "" -> y, but none x -> y
    either (the event between has no group).
    """
    df = pd.DataFrame({
        "case_id": ["c"] * 3, "activity": ["a", "b", "c"],
        "timestamp": pd.date_range("2021-01-01", periods=3, freq="h",
                                   tz="UTC"),
        "grp": pd.Categorical(["x", "", "y"])})

    log = EventLog.from_dataframe(df, attributes=["grp"])

    assert ["x", None, "y"] == [
        None if pd.isna(v) else v for v in log.to_dataframe()["grp"]]
    assert 0 == len(log.handovers(by="grp"))
