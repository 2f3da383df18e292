"""
Tests of crmflow.service: calendars, SLA policies, escalations and timers
through Python; acceptance cases C06-C09 and the ServiceNow replay.
"""

import datetime
import json

import pandas as pd
import pytest

import crmflow
from crmflow import cli
from conftest import Clock, utc

H = datetime.timedelta(hours=1)

# A request workflow where a closed request can be reopened (C08).
DESK = {
    "name": "desk_request",
    "version": 1,
    "states": [
        {"name": "open", "role": "initial"},
        {"name": "in_progress"},
        {"name": "waiting_customer"},
        {"name": "resolved"},
        {"name": "closed"},
        {"name": "cancelled", "role": "terminal"},
    ],
    "transitions": [
        {"event": "own", "from": "open", "to": "in_progress"},
        {"event": "wait", "from": ["open", "in_progress"],
         "to": "waiting_customer"},
        {"event": "resume", "from": "waiting_customer", "to": "open"},
        {"event": "resolve",
         "from": ["open", "in_progress", "waiting_customer"],
         "to": "resolved"},
        {"event": "close", "from": "resolved", "to": "closed"},
        {"event": "reopen", "from": ["resolved", "closed"], "to": "open"},
        {"event": "cancel", "from": "open", "to": "cancelled"},
    ],
    "attributes": [
        {"name": "team", "type": "text"},
        {"name": "priority", "type": "text"},
    ],
}


def resolution(hours, **kw):
    """
    Returns a resolution policy on desk_request.
    """
    kw.setdefault("paused", ["waiting_customer"])
    kw.setdefault("met", ["resolved", "closed"])
    return crmflow.SlaPolicy("resolution", "desk_request", hours * H, **kw)


@pytest.fixture
def desk_engine(clock):
    """
    A memory engine with the desk workflow on the simulated clock.
    """
    with crmflow.Engine(clock=clock) as e:
        e.register(DESK)
        yield e


def fire(engine, clock, id, event, when):
    """
    Sets the clock and fires.
    """
    clock.set(when)
    engine.fire(id, event, time=when)


class TestCalendar:
    def test_c06_new_york_dst_day(self):
        """
        C06a: 13:00-18:00 New York; 2 h from 12:00 EDT on the spring
        forward day ends 15:00 EDT (19:00Z), control 15:00 EST (20:00Z).
        """
        cal = crmflow.Calendar("America/New_York",
                               {"every_day": "13:00-18:00"})

        dst = cal.add(utc(2026, 3, 8, 16), 2 * H)
        est = cal.add(utc(2026, 3, 7, 17), 2 * H)

        assert utc(2026, 3, 8, 19) == dst
        assert utc(2026, 3, 7, 20) == est

    def test_c06_berlin_fall_back_weekend(self):
        """
        C06b: Mon-Fri 09-17 Berlin; 16 h from Friday 15:00 CEST ends
        Tuesday 15:00 CET = 14:00Z.
        """
        cal = crmflow.Calendar("Europe/Berlin", {"weekdays": "09:00-17:00"})

        due = cal.add(utc(2026, 10, 23, 13), 16 * H)

        assert utc(2026, 10, 27, 14) == due
        assert 16 * H == cal.between(utc(2026, 10, 23, 13), due)

    def test_holidays_and_special_days(self):
        """
        A holiday is skipped; a special day has its own hours.
        """
        cal = crmflow.Calendar(
            "UTC", {"weekdays": ["09:00-12:00", "13:00-17:00"]},
            holidays=["2026-12-25"],
            special_days={"2026-12-24": ["09:00-12:00"]})

        due = cal.add(utc(2026, 12, 24, 11), 2 * H)

        # 1 h on the 24th, the 25th closed, 26th/27th weekend, Mon 28th.
        assert utc(2026, 12, 28, 10) == due
        assert not cal.is_open(utc(2026, 12, 24, 13))
        assert utc(2026, 12, 28, 9) == cal.next_open(utc(2026, 12, 24, 12))

    def test_no_working_time_is_refused(self):
        """
        A calendar with no hours at all is refused with a clear message.
        """
        with pytest.raises(crmflow.InvalidArgumentError,
                           match="no working time"):
            crmflow.Calendar("UTC", {})

    def test_add_many_matches_add(self):
        """
        The vectorised add gives the same instants as add.
        """
        cal = crmflow.Calendar("Europe/Berlin", {"weekdays": "09:00-17:00"})
        starts = pd.date_range("2026-10-20", periods=50, freq="7h",
                               tz="UTC")

        many = cal.add_many(starts.tz_convert(None).values, 5 * H)

        expected = [cal.add(t.to_pydatetime(), 5 * H) for t in starts]
        got = [pd.Timestamp(v).tz_localize("UTC") for v in many]
        assert expected == got


class TestServiceDesk:
    def test_c07_pause_then_resolve(self, desk_engine, clock):
        """
        C07: T-1 resolved straight from waiting_customer keeps its 28 h
        pause: counted 2 h, met, due 21:00Z; T-2 counted 3 h; no breach.
        """
        desk = crmflow.ServiceDesk(desk_engine, [resolution(8)])
        for id in ("T-1", "T-2"):
            desk_engine.create("desk_request", id, time=utc(2026, 2, 2, 9))
            fire(desk_engine, clock, id, "wait", utc(2026, 2, 2, 11))
        ticks = [desk.tick(utc(2026, 2, 2, 11) + i * H) for i in range(28)]
        fire(desk_engine, clock, "T-1", "resolve", utc(2026, 2, 3, 15))
        fire(desk_engine, clock, "T-2", "resume", utc(2026, 2, 3, 15))
        fire(desk_engine, clock, "T-2", "resolve", utc(2026, 2, 3, 16))
        ticks += [desk.tick(utc(2026, 2, 3, 15) + i * H) for i in range(8)]

        asked = desk.status("T-1", now=utc(2026, 2, 2, 20)).iloc[0]
        final = desk.statuses(now=utc(2026, 2, 4)).set_index("transaction_id")

        assert "paused" == asked["state"]
        assert pd.Timedelta(hours=6) == asked["remaining"]
        assert ["met", "met"] == final["state"].tolist()
        assert [pd.Timedelta(hours=2), pd.Timedelta(hours=3)] == \
            final["counted"].tolist()
        assert [pd.Timedelta(hours=28)] * 2 == final["paused"].tolist()
        due = pd.Timestamp("2026-02-03T21:00Z")
        assert [due, due] == final["due_at"].tolist()
        assert 0 == sum(t.fired for t in ticks)
        assert desk.events().empty

    def test_c08_reopen_after_close(self, desk_engine, clock):
        """
        C08: the time closed is not counted; both tickets counted 3 h, met,
        due 2026-02-03T12:00Z after the reopen.
        """
        desk = crmflow.ServiceDesk(desk_engine, [resolution(4, paused=[])])
        for id in ("T-3", "T-4"):
            desk_engine.create("desk_request", id, time=utc(2026, 2, 2, 9))
            fire(desk_engine, clock, id, "resolve", utc(2026, 2, 2, 10))
        fire(desk_engine, clock, "T-3", "close", utc(2026, 2, 2, 10, 30))
        quiet = [desk.tick(utc(2026, 2, 2, 11) + i * H) for i in range(22)]
        for id in ("T-3", "T-4"):
            fire(desk_engine, clock, id, "reopen", utc(2026, 2, 3, 9))

        check = desk.statuses(now=utc(2026, 2, 3, 11, 30))
        for id in ("T-3", "T-4"):
            fire(desk_engine, clock, id, "resolve", utc(2026, 2, 3, 11))
        late = [desk.tick(utc(2026, 2, 3, 11) + i * H) for i in range(4)]
        final = desk.statuses(now=utc(2026, 2, 4))

        assert ["running", "running"] == check["state"].tolist()
        due = pd.Timestamp("2026-02-03T12:00Z")
        assert [due, due] == check["due_at"].tolist()
        assert ["met", "met"] == final["state"].tolist()
        assert [pd.Timedelta(hours=3)] * 2 == final["counted"].tolist()
        assert 0 == sum(t.fired for t in quiet + late)

    def c09_desk(self, engine):
        """
        The C09 desk: time to own 1 h; on breach notify the supervisor and
        reassign to L2; assignments notify the new team.
        """
        policy = crmflow.SlaPolicy(
            "time_to_own", "desk_request", H,
            met=["in_progress", "resolved", "closed"],
            escalation=[crmflow.Escalation(
                1.0,
                notify=[crmflow.Notify("email", "supervisor",
                                       "time to own breached")],
                set={"team": "L2"})])
        desk = crmflow.ServiceDesk(engine, [policy])
        desk.notify_on_assignment("team", "group", "assigned to you")
        return desk

    def test_c09_one_breach_one_escalation_across_restart(self, db_path):
        """
        C09: checker every minute 09:55-11:00Z, restart at 10:30Z: exactly
        one breach at 10:00Z, one supervisor and one L2 notification, one
        assignment change; later ticks do nothing.
        """
        clock = Clock(utc(2026, 2, 2, 9))
        engine = crmflow.Engine(db_path, clock=clock)
        engine.register(DESK)
        desk = self.c09_desk(engine)
        engine.create("desk_request", "T-5", attributes={"team": "L1"})
        minutes = [utc(2026, 2, 2, 9, 55) + datetime.timedelta(minutes=i)
                   for i in range(66)]

        results = {}
        for t in minutes:
            if t == utc(2026, 2, 2, 10, 30):
                engine.close()
                engine = crmflow.Engine(db_path, clock=clock)
                desk = self.c09_desk(engine)
            clock.set(t)
            results[t] = desk.tick(t)

        fired = {t: r.fired for t, r in results.items() if r.fired}
        assert {utc(2026, 2, 2, 10): 1} == fired
        events = desk.events("T-5")
        assert ["breach"] == events["kind"].tolist()
        assert [pd.Timestamp("2026-02-02T10:00Z")] == events["time"].tolist()
        outbox = desk.outbox("T-5")
        assert ["supervisor", "L2"] == outbox["recipient"].tolist()
        txn = engine.get("T-5")
        assert "L2" == txn.attributes["team"]
        assert 2 == txn.version
        engine.close()

    def test_escalation_75_and_100_once_after_downtime(self, desk_engine):
        """
        A 75 % notice and a 100 % escalation fire once each, in due order,
        when the checker comes back after downtime.
        """
        desk = crmflow.ServiceDesk(desk_engine, [resolution(4, escalation=[
            crmflow.Escalation(0.75, notify=[crmflow.Notify(
                "chat", "@team", "75 % used")]),
            crmflow.Escalation(1.0, set={"priority": "1 - Critical"}),
        ])])
        desk_engine.create("desk_request", "T-6", time=utc(2026, 2, 2, 9),
                           attributes={"team": "L1"})

        first = desk.tick(utc(2026, 2, 2, 20))
        again = desk.tick(utc(2026, 2, 3, 20))

        assert crmflow.TickSummary(fired=2) == first
        assert crmflow.TickSummary() == again
        events = desk.events()
        assert ["threshold", "breach"] == events["kind"].tolist()
        assert [pd.Timestamp("2026-02-02T12:00Z"),
                pd.Timestamp("2026-02-02T13:00Z")] == events["time"].tolist()
        assert ["L1"] == desk.outbox()["recipient"].tolist()
        assert "1 - Critical" == desk_engine.get("T-6").attributes["priority"]

    def test_c06_policy_on_business_calendar(self, desk_engine):
        """
        C06 through a policy: the timer of a ticket opened on the New York
        spring-forward day is due at 19:00Z.
        """
        cal = crmflow.Calendar("America/New_York",
                               {"every_day": "13:00-18:00"})
        desk = crmflow.ServiceDesk(desk_engine,
                                   [resolution(2, calendar=cal)])
        desk_engine.create("desk_request", "DST", time=utc(2026, 3, 8, 16))

        timers = desk.timers("DST")

        assert [pd.Timestamp("2026-03-08T19:00Z")] == \
            timers["due_at"].tolist()
        assert "datetime64[us, UTC]" == str(timers["due_at"].dtype)

    def test_status_dtypes(self, desk_engine):
        """
        Status frames use UTC datetimes and timedeltas.
        """
        desk = crmflow.ServiceDesk(desk_engine, [resolution(8)])
        desk_engine.create("desk_request", "X", time=utc(2026, 2, 2, 9))

        st = desk.status("X", now=utc(2026, 2, 2, 10))

        assert "datetime64[us, UTC]" == str(st["due_at"].dtype)
        assert "timedelta64[us]" == str(st["counted"].dtype)
        assert pd.Timedelta(hours=1) == st["counted"][0]
        assert "target 8h" in st["explanation"][0]

    def test_impossible_policy_refused(self, desk_engine):
        """
        A target below zero is refused naming the policy.
        """
        desk = crmflow.ServiceDesk(desk_engine)

        with pytest.raises(crmflow.InvalidArgumentError,
                           match="resolution.*not positive"):
            desk.add_policy(resolution(-1))

    def test_cli_run_simulated(self, db_path, tmp_path, capsys):
        """
        ``crmflow run`` with a simulated clock fires the breach once.
        """
        with crmflow.Engine(db_path) as e:
            e.register(DESK)
            desk = crmflow.ServiceDesk(e, [resolution(1)])
            e.create("desk_request", "R-1", time=utc(2026, 2, 2, 9))
            assert 1 == desk.pending_count()
        config = tmp_path / "sla.json"
        config.write_text(json.dumps({"policies": [{
            "name": "resolution", "kind": "desk_request",
            "target_seconds": 3600, "met": ["resolved", "closed"]}]}))

        status = cli.main(["run", "--db", db_path, "--policies",
                           str(config), "--from", "2026-02-02T09:30:00Z",
                           "--until", "2026-02-02T11:00:00Z",
                           "--every", "600"])
        again = cli.main(["run", "--db", db_path, "--policies",
                          str(config), "--from", "2026-02-02T11:00:00Z"])

        assert 0 == status == again
        out = capsys.readouterr().out.splitlines()
        assert out[0].startswith("fired 1,")
        assert out[1].startswith("fired 0,")


# --- ServiceNow replay -------------------------------------------------------

POLICY_HOURS = {"1 - Critical": 4, "2 - High": 8, "3 - Moderate": 72,
                "4 - Low": 120}
STATE_MAP = {"New": "submitted", "Active": "in_progress",
             "Awaiting User Info": "waiting_customer",
             "Awaiting Problem": "waiting_customer",
             "Awaiting Vendor": "waiting_customer",
             "Awaiting Evidence": "waiting_customer",
             "Resolved": "resolved", "Closed": "closed"}


def expected_from_csv(path, skip):
    """
    Computes resolution time (counted, 24x7) and breach per incident from
    the CSV alone: file order, times clamped not to go back, repeated
    states ignored, paused in waiting_customer, stopped in resolved or
    closed, breached when running past the target.
    """
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    out = []
    for number, rows in frame.groupby("number", sort=False):
        if number in skip:
            continue
        times = pd.to_datetime(rows["sys_updated_at"],
                               format="%d/%m/%Y %H:%M").cummax().tolist()
        states = [STATE_MAP[s] for s in rows["incident_state"]]
        priority = rows["priority"].iloc[0]
        target = pd.Timedelta(hours=POLICY_HOURS[priority])
        changes = [(times[0], "submitted")]
        for t, s in zip(times, states):
            if s != changes[-1][1]:
                changes.append((t, s))
        counted = pd.Timedelta(0)
        breached = False
        for (t0, s), (t1, _) in zip(changes, changes[1:]):
            if s in ("waiting_customer", "resolved", "closed"):
                continue
            counted += t1 - t0
            breached |= counted > target
        out.append((number, priority, counted, breached,
                    rows["made_sla"].iloc[-1] == "true"))
    return pd.DataFrame(out, columns=["id", "priority", "counted",
                                      "breached", "made_sla"])


class TestServiceNowReplay:
    def test_resolution_per_priority_matches_csv(self, bundled):
        """
        Replaying the sample under 4 h / 8 h / 3 d / 5 d (24x7, paused in
        waiting_customer, met in resolved or closed) gives the resolution
        times and breach counts per priority computed from the CSV.
        """
        path = bundled / "servicenow_incidents_sample.csv.gz"
        with crmflow.Engine(":memory:") as engine:
            engine.import_preset("servicenow-incidents")
            desk = crmflow.ServiceDesk(engine, [
                crmflow.SlaPolicy(
                    f"resolution {p}", "service_request", hours * H,
                    when={"priority": p}, paused=["waiting_customer"],
                    met=["resolved", "closed"])
                for p, hours in POLICY_HOURS.items()])
            skip = set(engine.deviations()["transaction_id"])
            st = desk.statuses("service_request", now=utc(2018, 1, 1))

        st = st[~st["transaction_id"].isin(skip)]
        st = st.assign(priority=st["policy"].str.removeprefix("resolution "),
                       breached=st["state"] == "breached")
        expected = expected_from_csv(path, skip)
        got = st.groupby("priority").agg(
            n=("transaction_id", "size"), breaches=("breached", "sum"),
            median=("counted", "median"), total=("counted", "sum"))
        want = expected.groupby("priority").agg(
            n=("id", "size"), breaches=("breached", "sum"),
            median=("counted", "median"), total=("counted", "sum"))
        assert want["n"].to_dict() == got["n"].to_dict()
        assert want["breaches"].to_dict() == got["breaches"].to_dict()
        assert want["median"].to_dict() == got["median"].to_dict()
        assert want["total"].to_dict() == got["total"].to_dict()
        assert ["met", "breached"] == sorted(set(st["state"]),
                                             key=["met", "breached"].index)
        # Loose sanity check against the log's own flag: our policy is not
        # theirs, but most incidents flagged as missed also miss ours or
        # are on-time under both.
        agree = (~expected["breached"] == expected["made_sla"]).mean()
        assert agree > 0.7
