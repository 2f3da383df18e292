"""
Event-log readers seen from Python: what EventLog.from_csv, from_xes and
from_dataframe accept and refuse, and that a log they read keeps its
values.  Expected values are worked out by hand from the inputs written
here.
"""

import pandas as pd

from crmflow.analytics import EventLog


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
