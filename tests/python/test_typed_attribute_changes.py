"""
Decimal, timestamp and duration attributes changed through the service
desk, and so by what-if replays of a log whose values change mid-case.

ServiceDesk.set_attributes takes the same typed values as the engine's
create (Decimal, aware datetime, timedelta); what-if converts a log's
timestamp text to an aware datetime.  Expected values are worked out by
hand in each test.
"""

import datetime
import decimal

import pandas as pd
import pytest

import crmflow
from crmflow import analytics
from crmflow.analytics import EventLog, Scenario
from conftest import utc

D = decimal.Decimal

TYPED = {
    "name": "sr",
    "attributes": [
        {"name": "amount", "type": "decimal"},
        {"name": "due", "type": "timestamp"},
        {"name": "wait", "type": "duration"},
    ],
    "states": [
        {"name": "new", "role": "initial"},
        {"name": "busy"},
        {"name": "done", "role": "terminal"},
    ],
    "transitions": [
        {"event": "start", "from": "new", "to": "busy"},
        {"event": "work", "from": "busy", "to": "busy"},
        {"event": "finish", "from": "busy", "to": "done"},
    ],
}

# An SLA no case comes near, so that what-if replays through the engine.
QUIET_SLA = [{"name": "quiet", "target_seconds": 10 ** 6, "met": ["done"]}]


class TestDeskTakesTypedValues:
    def _desk(self):
        engine = crmflow.Engine()
        engine.register(TYPED)
        desk = crmflow.ServiceDesk(engine)
        engine.create("sr", "A", attributes={"amount": D("1.50")})
        return engine, desk

    def test_decimal_datetime_and_timedelta_are_set(self):
        """
        1E+2 is stored as 100, 11:00+01:00 as 10:00 UTC, 90 minutes as
        5 400 000 000 microseconds.
        """
        engine, desk = self._desk()
        berlin = datetime.timezone(datetime.timedelta(hours=1))

        desk.set_attributes("A", {
            "amount": D("1E+2"),
            "due": datetime.datetime(2026, 3, 2, 11, tzinfo=berlin),
            "wait": datetime.timedelta(minutes=90)})

        got = engine.get("A").attributes
        assert D("100") == got["amount"]
        assert utc(2026, 3, 2, 10) == got["due"]
        assert datetime.timedelta(microseconds=5_400_000_000) == got["wait"]
        assert 2 == engine.get("A").version

    @pytest.mark.parametrize("value, words", [
        (1.5, "binary floats are refused"),
        (datetime.datetime(2026, 3, 2, 11), "naive datetime"),
        (object(), "value must be str, int, bool, Decimal"),
    ])
    def test_untyped_values_are_refused(self, value, words):
        engine, desk = self._desk()

        with pytest.raises(crmflow.InvalidArgumentError) as e:
            desk.set_attributes("A", {"amount": value})

        assert 'attribute "amount"' in str(e.value)
        assert words in str(e.value)
        assert D("1.50") == engine.get("A").attributes["amount"]
        assert 1 == engine.get("A").version


def _replay(values, column):
    df = pd.DataFrame({
        "case_id": ["A"] * len(values),
        "activity": ["start"] + ["work"] * (len(values) - 2) + ["finish"],
        column: values,
        "timestamp": pd.Timestamp("2026-03-02T09:00Z")
        + pd.to_timedelta(range(len(values)), unit="min") * 10})
    log = EventLog.from_dataframe(df, attributes=[column])
    wf = crmflow.Workflow.from_dict(TYPED)
    r = analytics.what_if(log, wf, Scenario(wf, sla=QUIET_SLA))
    return r.cases.iloc[0]


class TestWhatIfReplaysTypedChanges:
    def test_decimal_change_is_set_not_refused(self):
        """
        100.00, 100.0 and 1E2 are one amount; 250 is the only change.
        """
        c = _replay(["100.00", "100.0", "1E2", "250"], "amount")

        assert 1 == c["attribute_changes_after"]
        assert 0 == c["refused_events_after"]
        assert "done" == c["final_state_after"]

    def test_timestamp_values_create_and_change(self):
        """
        10:00Z and 11:00+01:00 are one instant; the next day is the only
        change (the case used to fail at creation: the value reached the
        engine as an integer).
        """
        c = _replay(["2026-03-02T10:00:00Z", "2026-03-02T11:00:00+01:00",
                     "2026-03-03T10:00:00Z"], "due")

        assert 1 == c["attribute_changes_after"]
        assert 0 == c["refused_events_after"]
        assert "done" == c["final_state_after"]
