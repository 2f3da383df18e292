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
    "What if the P3 SLA were 4 h instead of 8 h" on the ServiceNow sample.
    """

    @pytest.fixture(scope="class")
    def result(self):
        log, p = _servicenow()
        return analytics.what_if(log, _desk(8), _desk(4),
                                 activity_kind="state",
                                 activity_map=p.options["status_map"])

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
    "L2" and notifies the supervisor.
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
            activity_map=p.options["status_map"])

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
