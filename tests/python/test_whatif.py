"""
Tests of what-if replays under changed business rules and SLA policies
(crmflow.analytics.what_if with Scenario.rules / Scenario.sla): the
figures are checked against separate pandas code over the raw sample
files bundled in crmflow/data.
"""

import json
import pathlib
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

import crmflow
from crmflow import analytics, presets
from crmflow.analytics import EventLog, Scenario

TEMPLATES = pathlib.Path(crmflow.__file__).parent / "templates"
P3 = "3 - Moderate"
MET = ("resolved", "closed")


def _service_workflow():
    with open(TEMPLATES / "service_request.json", encoding="utf-8") as f:
        return json.load(f)


def _servicenow():
    p = presets.get("servicenow-incidents")
    log = EventLog.from_csv(
        p.sample_path(), case="number", activity="incident_state",
        time="sys_updated_at", resource="sys_updated_by",
        attributes=["priority"], time_format="%d/%m/%Y %H:%M")
    return log, p


def _desk(hours, name=None):
    wf = crmflow.Workflow.from_dict(_service_workflow())
    return Scenario(wf, name=name or f"P3 {hours} h", sla=[{
        "name": "resolution", "target_seconds": hours * 3600,
        "when": {"priority": P3}, "met": list(MET)}])


def _pandas_breaches(hours):
    """
    Breaches of a resolution SLA on P3 incidents, from the raw CSV: walk
    each incident's rows in time order through the template's transitions
    (a state change the template does not allow leaves the state as it
    is), add up the time spent outside resolved/closed until the
    incident's last row, and count the incidents over the target.
    """
    p = presets.get("servicenow-incidents")
    raw = pd.read_csv(p.sample_path())
    raw["t"] = pd.to_datetime(raw["sys_updated_at"], format="%d/%m/%Y %H:%M",
                              utc=True)
    raw["state"] = raw["incident_state"].map(p.options["status_map"])
    raw = raw.sort_values(["number", "t"], kind="stable")
    allowed = set()
    for t in _service_workflow()["transitions"]:
        for s in ([t["from"]] if isinstance(t["from"], str) else t["from"]):
            allowed.add((s, t["to"]))
    target = pd.Timedelta(hours=hours)
    breached = set()
    for number, g in raw.groupby("number", sort=False):
        if g["priority"].iloc[0] != P3:
            continue
        state, since, counted = "submitted", g["t"].iloc[0], pd.Timedelta(0)
        for s, t in zip(g["state"], g["t"]):
            if s == state or (state, s) not in allowed:
                continue
            if state not in MET:
                counted += t - since
            state, since = s, t
        if state not in MET:
            counted += g["t"].iloc[-1] - since
        if counted > target:
            breached.add(number)
    return breached


class TestSlaChange:
    """
    "What if the P3 SLA were 4 h instead of 8 h" on the ServiceNow sample,
    each incident keeping its first priority (attributes="first", which
    the pandas walk models).
    """

    @pytest.fixture(scope="class")
    def result(self):
        log, p = _servicenow()
        return analytics.what_if(log, _desk(8), _desk(4),
                                 activity_kind="state",
                                 activity_map=p.options["status_map"],
                                 attributes="first")

    def test_figures_as_before_attribute_replay(self, result):
        """
        The figures the sample gave before attribute changes were
        replayed: 1,000 breaches under 8 h, 1,040 under 4 h, and no
        attribute change set.
        """
        t = result.totals.set_index("metric")
        assert (1000, 1040) == tuple(t.loc["breaches", ["before", "after"]])
        assert 0 == result.cases["attribute_changes_after"].sum()

    def test_breaches_match_pandas(self, result):
        """
        Per case and in total, the breaches before and after are those the
        separate pandas walk finds, and so is their difference.
        """
        before, after = _pandas_breaches(8), _pandas_breaches(4)
        c = result.cases.set_index("case_id")
        assert before == set(c.index[c["breaches_before"] > 0])
        assert after == set(c.index[c["breaches_after"] > 0])
        t = result.totals.set_index("metric")
        assert len(before) == t.loc["breaches_resolution", "before"]
        assert len(after) == t.loc["breaches_resolution", "after"]
        assert len(after) - len(before) == t.loc["breaches", "change"]
        assert len(after - before) == int(c["changed"].sum())
        assert before <= after and len(after) > len(before)

    def test_breach_table_by_priority(self, result):
        """
        Only P3 incidents are under the policy, so the breach table has
        one row, its priority P3.
        """
        b = result.breaches
        assert [("resolution", P3)] == list(zip(b["policy"], b["priority"]))
        assert (b["after"] - b["before"]).tolist() == b["change"].tolist()
        e = result.sla_events
        assert set(e["kind"]) == {"breach"}
        assert (e["scenario"] == "after").sum() == b["after"].sum()

    def test_breached_names_the_policy(self, result):
        c = result.cases
        hit = c.loc[c["breaches_after"] > 0, "breached_after"]
        assert set(hit) == {"resolution"}


def _olist():
    df = pd.read_csv(presets.get("olist-orders").sample_path())
    events = df.melt(
        id_vars=["order_id", "order_status"],
        value_vars=["order_purchase_timestamp", "order_approved_at",
                    "order_delivered_carrier_date"],
        var_name="column", value_name="time").dropna(subset=["time"])
    events["activity"] = events["column"].map({
        "order_purchase_timestamp": "submit", "order_approved_at": "approve",
        "order_delivered_carrier_date": "ship"})
    log = EventLog.from_dataframe(
        events, case="order_id", activity="activity", time="time",
        attributes=["order_status"], time_zone="America/Sao_Paulo")
    return df, log


def _order_workflow():
    return crmflow.Workflow.from_dict({
        "name": "sales_order",
        "states": [{"name": "placed", "role": "initial"},
                   {"name": "pending_approval"}, {"name": "approved"},
                   {"name": "shipped", "role": "terminal"},
                   {"name": "canceled", "role": "terminal"}],
        "attributes": [{"name": "status", "type": "text"},
                       {"name": "review", "type": "text"}],
        "transitions": [
            {"event": "submit", "from": "placed", "to": "pending_approval"},
            {"event": "approve", "from": "pending_approval",
             "to": "approved"},
            {"event": "ship", "from": "approved", "to": "shipped"},
            {"event": "cancel", "from": ["pending_approval", "approved"],
             "to": "canceled"},
        ]})


class TestRuleChange:
    """
    A rule on the Olist sample: an order that ends canceled or unavailable
    is cancelled as soon as it is approved, flagged for review and
    notified; the shipments after it are refused.
    """

    RULE = {
        "name": "stop_lost_orders", "trigger": "event", "on": "approve",
        "when": "status == 'canceled' or status == 'unavailable'",
        "actions": ["set review = 'lost'", "fire cancel",
                    "notify email with recipient = 'sales'; subject = "
                    "txn.id"],
    }

    @pytest.fixture(scope="class")
    def data(self):
        df, log = _olist()
        wf = _order_workflow()
        r = analytics.what_if(
            log, Scenario(wf, name="today"),
            Scenario(wf, name="stop", rules=[self.RULE]),
            attribute_map={"order_status": "status"},
            count_events=["cancel"])
        return df, r

    def test_counts_match_pandas(self, data):
        df, r = data
        lost = df["order_status"].isin(["canceled", "unavailable"])
        hit = lost & df["order_approved_at"].notna()
        shipped_after = hit & df["order_delivered_carrier_date"].notna()
        t = r.totals.set_index("metric")
        assert (0, hit.sum()) == tuple(t.loc["rule_fired_stop_lost_orders",
                                             ["before", "after"]])
        assert hit.sum() == t.loc["notifications", "after"]
        assert hit.sum() == t.loc["events_cancel", "after"]
        assert shipped_after.sum() == t.loc["refused_events", "change"]
        c = r.cases.set_index("case_id")
        ids = set(df.loc[hit, "order_id"])
        assert ids == set(c.index[c["state_after"] == "canceled"])
        assert ids == set(c.index[c["attr_review_after"] == "lost"])
        assert ids == set(c.index[c["changed"]])
        assert {"stop_lost_orders"} == set(c.loc[list(ids), "rules_after"])
        assert (c["rules_fired_before"] == 0).all()
        f = r.rule_firings.set_index("rule")
        assert (0, hit.sum(), hit.sum()) == tuple(
            f.loc["stop_lost_orders", ["before", "after", "change"]])

    def test_workflow_comparison_still_there(self, data):
        """
        The conformance columns are there as without rules.
        """
        _, r = data
        assert {"final_state_before", "fit_after", "deviations_after"} <= \
            set(r.cases.columns)


class TestEdges:

    def test_empty_log(self):
        log = EventLog.from_dataframe(
            pd.DataFrame({"case_id": pd.Series([], dtype=object),
                          "activity": pd.Series([], dtype=object),
                          "timestamp": pd.Series(
                              [], dtype="datetime64[us, UTC]")}))
        r = analytics.what_if(log, _desk(8), _desk(4), activity_kind="state")
        assert 0 == len(r.cases)
        t = r.totals.set_index("metric")
        assert 0 == t.loc["breaches", "after"]
        assert 0 == len(r.breaches) and 0 == len(r.sla_events)

    def test_identical_scenarios_change_nothing(self):
        log, p = _servicenow()
        r = analytics.what_if(log, _desk(8, "a"), _desk(8, "b"),
                              activity_kind="state",
                              activity_map=p.options["status_map"])
        assert not r.cases["changed"].any()
        assert (r.totals["change"].fillna(0) == 0).all()
        assert r.totals.set_index("metric").loc["breaches", "before"] > 0

    @pytest.mark.parametrize("sla, words", [
        ({"name": "x", "target_seconds": 60, "met": ["done"]},
         ["'bad'", "unknown state 'done'"]),
        ({"name": "x", "target_seconds": 60, "when": {"urgency": "1"}},
         ["'bad'", "unknown attribute 'urgency'"]),
        ({"name": "x"}, ["'bad'", "needs 'target_seconds'"]),
        ({"name": "x", "target_seconds": 10**18},
         ["'bad'", "target_seconds 1000000000000000000 is not a number"]),
    ])
    def test_unknown_names_in_sla(self, sla, words):
        wf = crmflow.Workflow.from_dict(_service_workflow())
        log, _ = _servicenow()
        with pytest.raises(crmflow.InvalidArgumentError) as e:
            analytics.what_if(log, wf, Scenario(wf, name="bad", sla=[sla]))
        for w in words:
            assert w in str(e.value)

    @pytest.mark.parametrize("rule, words", [
        ({"name": "r", "trigger": "entered", "on": "limbo",
          "actions": ["set team = 'a'"]}, ["'bad'", 'unknown state "limbo"']),
        ({"name": "r", "trigger": "created", "when": "urgency == '1'",
          "actions": ["set team = 'a'"]}, ["'bad'", 'unknown name "urgency"']),
        ({"name": "r", "trigger": "created", "color": "red"},
         ["'bad'", "unknown key 'color'"]),
    ])
    def test_unknown_names_in_rules(self, rule, words):
        wf = crmflow.Workflow.from_dict(_service_workflow())
        log, _ = _servicenow()
        with pytest.raises(crmflow.InvalidArgumentError) as e:
            analytics.what_if(log, wf, Scenario(wf, name="bad",
                                                rules=[rule]))
        for w in words:
            assert w in str(e.value)

    def test_breach_between_events_counts_after_end_not(self):
        """
        A 1 h SLA: A is resolved after 3 h (breached while idle between
        its events), B's last event is at 30 min and the log goes on for
        hours (no breach after its end), C resolves exactly at 1 h (met).
        """
        rows = [("A", "New", 0), ("A", "Resolved", 180),
                ("B", "New", 0), ("B", "Active", 30),
                ("C", "New", 0), ("C", "Resolved", 60),
                ("D", "New", 0), ("D", "Active", 600)]
        df = pd.DataFrame(rows, columns=["case_id", "activity", "minutes"])
        df["timestamp"] = pd.Timestamp("2026-03-02T09:00Z") + \
            pd.to_timedelta(df["minutes"], unit="min")
        log = EventLog.from_dataframe(df)
        wf = crmflow.Workflow.from_dict(_service_workflow())
        sla = [{"name": "r", "target_seconds": 3600, "met": list(MET)}]
        r = analytics.what_if(
            log, wf, Scenario(wf, sla=sla), activity_kind="state",
            activity_map=presets.get("servicenow-incidents")
            .options["status_map"])
        c = r.cases.set_index("case_id")
        assert [1, 0, 0, 1] == c["breaches_after"].tolist()
        assert [0, 0, 0, 0] == c["breaches_before"].tolist()
        e = r.sla_events.set_index("case_id")
        assert pd.Timestamp("2026-03-02T10:00Z") == e.loc["A", "time"]


class TestRoutingAndEscalation:
    """
    Routing at creation (P3 to "desk", others to "other") in both
    scenarios; the changed one adds a 4 h P3 SLA whose breach reassigns to
    "L2" and notifies the supervisor; each incident keeps its first
    priority, as the pandas walk does.
    """

    def test_team_load_and_notifications(self):
        log, p = _servicenow()
        wf = crmflow.Workflow.from_dict(_service_workflow())
        routing = {"teams": [{"name": "desk", "members": ["ann", "bob"]},
                             {"name": "other", "members": ["cy"]}],
                   "rules": [{"team": "desk", "equals": {"priority": P3}},
                             {"team": "other"}]}
        sla = [crmflow.SlaPolicy(
            "resolution", "service_request",
            pd.Timedelta(hours=4).to_pytimedelta(), when={"priority": P3},
            met=list(MET), escalation=[crmflow.Escalation(
                1.0, notify=[crmflow.Notify("email", "supervisor")],
                set={"team": "L2"})])]
        r = analytics.what_if(
            log, Scenario(wf, routing=routing),
            Scenario(wf, routing=routing, sla=sla), activity_kind="state",
            activity_map=p.options["status_map"], attributes="first")

        raw = pd.read_csv(p.sample_path())
        first = raw.groupby("number", sort=False)["priority"].first()
        p3 = int((first == P3).sum())
        breached = len(_pandas_breaches(4))
        load = r.team_load.set_index("team")
        assert p3 == load.loc["desk", "before"]
        assert len(first) - p3 == load.loc["other", "before"]
        assert p3 - breached == load.loc["desk", "after"]
        assert breached == load.loc["L2", "after"]
        assert 0 == load.loc["L2", "before"]
        t = r.totals.set_index("metric")
        assert (0, breached) == tuple(t.loc["notifications",
                                            ["before", "after"]])
        c = r.cases.set_index("case_id")
        assert {"ann", "bob"} == set(
            c.loc[first.index[first == P3], "attr_assignee_before"])


def _pandas_sorted():
    """
    The raw ServiceNow sample with times, template states and allowed
    (from, to) pairs, each incident's rows in time order (ties: file
    order, as the replay takes them).
    """
    p = presets.get("servicenow-incidents")
    raw = pd.read_csv(p.sample_path())
    raw["t"] = pd.to_datetime(raw["sys_updated_at"], format="%d/%m/%Y %H:%M",
                              utc=True)
    raw["state"] = raw["incident_state"].map(p.options["status_map"])
    raw = raw.sort_values(["number", "t"], kind="stable")
    allowed = set()
    for t in _service_workflow()["transitions"]:
        for s in ([t["from"]] if isinstance(t["from"], str) else t["from"]):
            allowed.add((s, t["to"]))
    return raw, allowed


def _pandas_priority_changes():
    """
    Per incident, how many of its rows carry another priority than the
    row before (the sample has a priority on every row).
    """
    raw, _ = _pandas_sorted()
    prev = raw.groupby("number", sort=False)["priority"].shift()
    change = prev.notna() & (raw["priority"] != prev)
    return change.groupby(raw["number"], sort=False).sum()


def _pandas_replay_breaches(hours):
    """
    Breaches of a P3 resolution SLA when each incident's priority is the
    one of its latest row: the clock counts time outside resolved/closed
    from the first row whatever the priority; the policy is checked
    whenever it could fire: while the incident is P3 and the clock
    running, at the instant the target is reached, and after the rows of
    each instant (an incident that becomes P3 with its target already
    spent is breached then, as of the instant the target was reached).
    A breach counts when that instant is before the incident's last row.
    """
    raw, allowed = _pandas_sorted()
    target = pd.Timedelta(hours=hours)
    breached = set()
    for number, g in raw.groupby("number", sort=False):
        end = g["t"].iloc[-1]
        state, prio, counted = "submitted", None, pd.Timedelta(0)
        prev = reached = None
        for t, rows in g.groupby("t", sort=True):
            if prev is not None and state not in MET:
                if counted < target <= counted + (t - prev):
                    reached = prev + (target - counted)
                    if reached < t and prio == P3:
                        break
                counted += t - prev
            for s, pr in zip(rows["state"], rows["priority"]):
                prio = pr
                if s != state and (state, s) in allowed:
                    state = s
            prev = t
            if prio == P3 and (counted > target or (
                    counted == target and state not in MET)):
                break
        else:
            continue
        if reached < end:
            breached.add(number)
    return breached


class TestAttributeReplay:
    """
    The ServiceNow sample replayed with its priority changes (the default,
    attributes="replay"): 68 incidents change priority mid-case, and the
    P3 SLA follows the priority of the moment.
    """

    @pytest.fixture(scope="class")
    def result(self):
        log, p = _servicenow()
        return analytics.what_if(log, _desk(8), _desk(4),
                                 activity_kind="state",
                                 activity_map=p.options["status_map"])

    def test_attribute_changes_match_pandas(self, result):
        """
        Per case, attribute_changes is the number of priority changes in
        the CSV, the same in both scenarios.
        """
        expected = _pandas_priority_changes()
        c = result.cases.set_index("case_id")

        for side in ("before", "after"):
            got = c[f"attribute_changes_{side}"]
            assert expected.reindex(c.index).tolist() == got.tolist()
        assert 68 == int((expected > 0).sum())
        assert 84 == int(expected.sum())

    def test_breaches_match_pandas(self, result):
        """
        The breached incidents, before (8 h) and after (4 h), are those
        the separate pandas walk with changing priorities finds; they
        differ from the first-priority figures (1,000 -> 1,040).
        """
        before, after = _pandas_replay_breaches(8), _pandas_replay_breaches(4)
        c = result.cases.set_index("case_id")
        t = result.totals.set_index("metric")

        assert before == set(c.index[c["breaches_before"] > 0])
        assert after == set(c.index[c["breaches_after"] > 0])
        assert (len(before), len(after)) == tuple(
            t.loc["breaches_resolution", ["before", "after"]])
        assert (1000, 1044) == (len(before), len(after))
        assert after != _pandas_breaches(4)

    def test_changed_rule_fires_per_change(self):
        """
        A rule on "changed priority" fires once per priority change the
        CSV has, and never when only the first values are used.
        """
        log, p = _servicenow()
        wf = crmflow.Workflow.from_dict(_service_workflow())
        rule = {"name": "reprioritised", "trigger": "changed",
                "on": "priority",
                "actions": ["notify email with recipient = 'desk'; "
                            "subject = txn.id"]}
        kw = dict(activity_kind="state",
                  activity_map=p.options["status_map"])

        replayed = analytics.what_if(log, wf, Scenario(wf, rules=[rule]),
                                     **kw)
        first = analytics.what_if(log, wf, Scenario(wf, rules=[rule]),
                                  attributes="first", **kw)

        expected = int(_pandas_priority_changes().sum())
        t = replayed.totals.set_index("metric")
        assert (0, expected) == tuple(t.loc["rule_fired_reprioritised",
                                            ["before", "after"]])
        assert expected == t.loc["notifications", "after"]
        t = first.totals.set_index("metric")
        assert 0 == t.loc["rule_fired_reprioritised", "after"]


def _three_cases():
    """
    Three incidents under a 1 h P1 and an 8 h P3 resolution SLA, times in
    minutes from 09:00: A is raised from P3 to P1 at 0:30 and resolved at
    2:00; B is lowered from P1 to P3 at 0:30 and resolved at 3:00; C is
    P1 with an empty priority on its 0:20 row (no change) and resolved at
    1:30.
    """
    rows = [("A", "New", 0, "3"), ("A", "Active", 30, "1"),
            ("A", "Resolved", 120, "1"),
            ("B", "New", 0, "1"), ("B", "Active", 30, "3"),
            ("B", "Resolved", 180, "3"),
            ("C", "New", 0, "1"), ("C", "Active", 20, None),
            ("C", "Resolved", 90, "")]
    df = pd.DataFrame(rows, columns=["case_id", "activity", "minutes",
                                     "priority"])
    df["timestamp"] = pd.Timestamp("2026-03-02T09:00Z") + \
        pd.to_timedelta(df["minutes"], unit="min")
    log = EventLog.from_dataframe(df, attributes=["priority"])
    wf = crmflow.Workflow.from_dict(_service_workflow())
    sla = [{"name": "p1", "target_seconds": 3600, "when": {"priority": "1"},
            "met": list(MET)},
           {"name": "p3", "target_seconds": 8 * 3600,
            "when": {"priority": "3"}, "met": list(MET)}]
    return log, wf, sla


class TestPriorityChangeByHand:
    """
    A priority change mid-case re-selects the SLA policy (figures by
    hand in _three_cases).
    """

    def _run(self, attributes):
        log, wf, sla = _three_cases()
        return analytics.what_if(
            log, wf, Scenario(wf, sla=sla), activity_kind="state",
            activity_map=presets.get("servicenow-incidents")
            .options["status_map"], attributes=attributes)

    def test_replay_follows_the_change(self):
        """
        A breaches P1 at 10:00 (its clock runs from creation), B's P1
        timer is cancelled when lowered, C keeps P1 through the empty
        values and breaches at 10:00.
        """
        r = self._run("replay")

        c = r.cases.set_index("case_id")
        assert [1, 0, 1] == c["breaches_after"].tolist()
        assert ["p1", "", "p1"] == c["breached_after"].tolist()
        assert [1, 1, 0] == c["attribute_changes_after"].tolist()
        e = r.sla_events.set_index("case_id")
        assert [pd.Timestamp("2026-03-02T10:00Z")] * 2 == \
            e.loc[["A", "C"], "time"].tolist()
        b = r.breaches.set_index(["policy", "priority"])
        assert 2 == b.loc[("p1", "1"), "after"]

    def test_first_values_keep_the_creation_priority(self):
        """
        With the first values A stays P3 (no breach in 2 h), B stays P1
        (breached at 10:00) and C is as under replay.
        """
        r = self._run("first")

        c = r.cases.set_index("case_id")
        assert [0, 1, 1] == c["breaches_after"].tolist()
        assert [0, 0, 0] == c["attribute_changes_after"].tolist()

    def test_raised_after_target_spent_breaches_at_due(self):
        """
        Raised to P1 at 1:30, after the 1 h target had passed: the P1
        clock counts from creation, so the breach is recorded as of
        10:00, at the change.
        """
        df = pd.DataFrame({
            "case_id": ["D"] * 3, "activity": ["New", "Active", "Resolved"],
            "priority": ["3", "1", "1"],
            "timestamp": pd.to_datetime(
                ["2026-03-02T09:00Z", "2026-03-02T10:30Z",
                 "2026-03-02T11:00Z"])})
        log = EventLog.from_dataframe(df, attributes=["priority"])
        _, wf, sla = _three_cases()

        r = analytics.what_if(
            log, wf, Scenario(wf, sla=sla), activity_kind="state",
            activity_map=presets.get("servicenow-incidents")
            .options["status_map"])

        e = r.sla_events
        assert [("D", "p1", pd.Timestamp("2026-03-02T10:00Z"))] == list(
            zip(e["case_id"], e["policy"], e["time"]))


    def test_skipped_row_changes_at_its_time(self):
        """
        A row whose activity the map leaves out still changes the
        priority at its time: raised to P1 at 0:30 by an unmapped
        "Reprioritise" row, E breaches the 1 h P1 SLA at 10:00; its
        rows after the last replayed one change nothing.
        """
        df = pd.DataFrame({
            "case_id": ["E"] * 4,
            "activity": ["New", "Reprioritise", "Resolved", "Reprioritise"],
            "priority": ["3", "1", None, "2"],
            "timestamp": pd.to_datetime(
                ["2026-03-02T09:00Z", "2026-03-02T09:30Z",
                 "2026-03-02T11:00Z", "2026-03-02T12:00Z"])})
        log = EventLog.from_dataframe(df, attributes=["priority"])
        _, wf, sla = _three_cases()

        r = analytics.what_if(
            log, wf, Scenario(wf, sla=sla), activity_kind="state",
            activity_map=presets.get("servicenow-incidents")
            .options["status_map"])

        c = r.cases.set_index("case_id")
        assert (1, 1) == (c.loc["E", "breaches_after"],
                          c.loc["E", "attribute_changes_after"])
        assert "p1" == c.loc["E", "breached_after"]


    @pytest.mark.parametrize("attributes, finished", [
        ("replay", [1, 0]), ("first", [0, 1])])
    def test_guard_sees_values_of_the_moment(self, attributes, finished):
        """
        A guard letting only P1 cases finish: A (P3, raised to P1 on its
        finish row) finishes under replay, B (P1, lowered to P3 there)
        under the first values.
        """
        df = pd.DataFrame({
            "case_id": ["A", "A", "B", "B"],
            "activity": ["start", "finish", "start", "finish"],
            "priority": ["3", "1", "1", "3"],
            "timestamp": pd.to_datetime(
                ["2026-03-02T09:00Z", "2026-03-02T10:00Z"] * 2)})
        log = EventLog.from_dataframe(df, attributes=["priority"])
        wf = crmflow.Workflow.from_dict({
            "name": "sr",
            "states": [{"name": "new", "role": "initial"}, {"name": "busy"},
                       {"name": "done", "role": "terminal"}],
            "transitions": [
                {"event": "start", "from": "new", "to": "busy"},
                {"event": "finish", "from": "busy", "to": "done",
                 "guards": ["p1"]}]})

        def p1(ctx):
            return ctx.case_attributes.get("priority") == "1"

        r = analytics.what_if(log, wf, Scenario(wf, guards={"p1": p1}),
                              count_events=["finish"], attributes=attributes)

        c = r.cases.set_index("case_id")
        assert finished == c["events_finish_after"].tolist()


class TestBadAttributeValue:
    """
    A log value that is not of its attribute's declared type.
    """

    def _log_and_workflow(self):
        df = pd.DataFrame({
            "case_id": ["A", "A", "B", "B", "B"],
            "activity": ["start", "finish", "start", "work", "finish"],
            "priority": ["2", "2", "3", "urgent", "1"],
            "timestamp": pd.to_datetime(
                ["2026-03-02T09:00Z", "2026-03-02T10:00Z",
                 "2026-03-02T09:30Z", "2026-03-02T09:45Z",
                 "2026-03-02T11:00Z"])})
        log = EventLog.from_dataframe(df, attributes=["priority"])
        spec = {
            "name": "sr",
            "states": [{"name": "new", "role": "initial"}, {"name": "busy"},
                       {"name": "done", "role": "terminal"}],
            "transitions": [
                {"event": "start", "from": "new", "to": "busy"},
                {"event": "work", "from": "busy", "to": "busy"},
                {"event": "finish", "from": "busy", "to": "done"}]}
        plain = crmflow.Workflow.from_dict(spec)
        spec["attributes"] = [{"name": "level", "type": "integer"}]
        wf = crmflow.Workflow.from_dict(spec)
        sla = [{"name": "s", "target_seconds": 3600, "met": ["done"],
                "when": {"level": "1"}}]
        return log, plain, wf, sla

    def test_error_names_case_row_and_column(self):
        """
        The change to "urgent" on B's second row (input row 3) fails the
        what-if, naming the scenario, case, row, event and column; no
        result is returned, although the baseline (which has no such
        attribute) replayed.
        """
        log, plain, wf, sla = self._log_and_workflow()

        with pytest.raises(crmflow.InvalidArgumentError) as e:
            analytics.what_if(log, plain, Scenario(wf, name="new", sla=sla),
                              attribute_map={"priority": "level"})

        message = str(e.value)
        for words in ("scenario 'new'", "case 'B'", "row 3",
                      "'work' at 2026-03-02T09:45:00Z",
                      "column 'priority' (attribute 'level')",
                      "'urgent' is not a valid integer"):
            assert words in message

    def test_blank_value_is_missing_not_an_error(self):
        """
        B's "urgent" replaced by spaces, as exports pad empty cells: no
        error, and B changes once (3 -> 1 at its last row), A never.
        """
        log, plain, wf, sla = self._log_and_workflow()
        df = log.to_dataframe()
        df["priority"] = df["priority"].astype(object).where(
            df["priority"] != "urgent", "   ")
        log = EventLog.from_dataframe(
            df.rename(columns={"time": "timestamp"}),
            attributes=["priority"])

        r = analytics.what_if(log, plain, Scenario(wf, name="new", sla=sla),
                              attribute_map={"priority": "level"})

        c = r.cases.set_index("case_id")
        assert [0, 1] == c.loc[["A", "B"], "attribute_changes_after"].tolist()

    def test_first_values_convert_only_what_they_use(self):
        """
        With the first values only B's "3" is read, so the same log
        replays; neither case is P1, so nothing is breached.
        """
        log, plain, wf, sla = self._log_and_workflow()

        r = analytics.what_if(log, plain, Scenario(wf, sla=sla),
                              attribute_map={"priority": "level"},
                              attributes="first")

        t = r.totals.set_index("metric")
        assert 0 == t.loc["breaches", "after"]

    @pytest.mark.parametrize("value", ["last", None, 1])
    def test_unknown_mode(self, value):
        """
        attributes takes "replay" or "first" only.
        """
        log, plain, _, _ = self._log_and_workflow()

        with pytest.raises(crmflow.InvalidArgumentError) as e:
            analytics.what_if(log, plain, plain, attributes=value)

        assert "expected replay or first" in str(e.value)


def test_sla_due_past_year_9999_is_never_due():
    """
    A case whose SLA would fall due after 9999-12-31 gets no timer: the
    replay ends (in a child process, so that a regression fails instead
    of hanging) with no breach.
    """
    code = textwrap.dedent('''
        import pandas as pd, crmflow
        from crmflow.analytics import EventLog, Scenario, what_if
        wf = crmflow.Workflow.from_dict({
            "name": "sr",
            "states": [{"name": "new", "role": "initial"},
                       {"name": "work"}, {"name": "done", "role": "terminal"}],
            "transitions": [{"event": "start", "from": "new", "to": "work"},
                            {"event": "finish", "from": "work", "to": "done"}]})
        log = EventLog.from_dataframe(pd.DataFrame({
            "case_id": ["A"], "activity": ["start"],
            "timestamp": [pd.Timestamp("9999-12-31T23:00", tz="UTC")]}))
        r = what_if(log, Scenario(wf, name="a"), Scenario(wf, name="b",
                    sla=[{"name": "s", "target_seconds": 7200,
                          "met": ["done"]}]))
        t = r.totals.set_index("metric")
        print(int(t.loc["breaches", "after"]))
    ''')
    done = subprocess.run([sys.executable, "-c", code], capture_output=True,
                          text=True, timeout=120)

    assert 0 == done.returncode, done.stderr
    assert "0" == done.stdout.strip()
