"""
Tests of conformance replay, discovery, diffs and what-if replays
(crmflow.analytics), on small logs whose answers are worked out by hand.
"""

import pandas as pd
import pytest

import crmflow
from crmflow import analytics
from crmflow.analytics import EventLog, Scenario


def _ticket_workflow(extra=()):
    """
    new -assign-> assigned -resolve-> resolved -close-> closed.
    """
    return crmflow.Workflow.from_dict({
        "name": "ticket",
        "states": [{"name": "new", "role": "initial"},
                   {"name": "assigned"}, {"name": "resolved"},
                   {"name": "closed", "role": "terminal"}],
        "transitions": [
            {"event": "assign", "from": "new", "to": "assigned"},
            {"event": "resolve", "from": "assigned", "to": "resolved"},
            {"event": "close", "from": "resolved", "to": "closed"},
            *extra,
        ],
    })


def _log():
    rows = [
        ("T1", "assign", 0), ("T1", "resolve", 60), ("T1", "close", 120),
        ("T2", "assign", 0), ("T2", "close", 30), ("T2", "resolve", 90),
        ("T3", "assign", 0), ("T3", "escalate", 10),
    ]
    df = pd.DataFrame(rows, columns=["case", "activity", "seconds"])
    df["time"] = pd.Timestamp("2026-03-02T09:00Z") + pd.to_timedelta(
        df["seconds"], unit="s")
    df["amount"] = ["50", "50", "50", "500", "500", "500", "20", "20"]
    return EventLog.from_dataframe(df, case="case", activity="activity",
                                   time="time", attributes=["amount"],
                                   cases=["T1", "T2", "T3", "T4"])


class TestConformance:
    """
    Token-free replay: per case fit, deviations, fitness.
    """

    def test_per_case(self):
        """
        T1 fits; T2 closes before resolving (resynchronised to closed, so
        its resolve deviates too); T3 escalates (unknown); T4 has no
        events and misses the milestone.
        """
        r = _log().conformance(_ticket_workflow(), milestones=["closed"])

        c = r.cases.set_index("case_id")
        assert [True, False, False, False] == c["fit"].tolist()
        assert "closed" == c.loc["T1", "final_state"]
        assert "new" == c.loc["T4", "final_state"]
        assert [0, 2, 2, 1] == c["deviations"].tolist()
        assert 0.25 == r.fitness
        assert 5 / 8 == r.event_fitness
        kinds = list(zip(r.deviations["case_id"], r.deviations["kind"]))
        assert [("T2", "not_allowed"), ("T2", "not_allowed"),
                ("T3", "unknown_activity"),
                ("T3", "missing_milestone"),
                ("T4", "missing_milestone")] == kinds
        assert pd.Timestamp("2026-03-02T09:02Z") == c.loc[
            "T1", "reached_closed"]

    def test_resync(self):
        """
        With resync T2 jumps to closed on its wrong close, then resolve is
        not allowed there either (2 deviations); without resync it stays in
        assigned and its resolve fits (1 deviation).
        """
        wf = _ticket_workflow()

        on = _log().conformance(wf).cases.set_index("case_id")
        off = _log().conformance(wf, resync=False).cases.set_index("case_id")

        assert (2, "resolved") == (on.loc["T2", "deviations"],
                                 on.loc["T2", "final_state"])
        assert (1, "resolved") == (off.loc["T2", "deviations"],
                                   off.loc["T2", "final_state"])

    def test_activity_map_and_state_kind(self):
        """
        An activity map renames activities; "" ignores one.  Under
        activity_kind="state" activities name states.
        """
        m = {"assign": "assigned", "resolve": "resolved", "close": "closed",
             "escalate": ""}

        r = _log().conformance(_ticket_workflow(), m, activity_kind="state")

        c = r.cases.set_index("case_id")
        assert 1 == c.loc["T3", "ignored"]
        assert c.loc["T3", "fit"]
        assert c.loc["T1", "fit"]

    def test_errors(self):
        """
        Unknown milestones and bad options raise.
        """
        log = _log()

        with pytest.raises(crmflow.NotFoundError):
            log.conformance(_ticket_workflow(), milestones=["shipped"])
        with pytest.raises(crmflow.InvalidArgumentError):
            log.conformance(_ticket_workflow(), activity_kind="thing")
        with pytest.raises(crmflow.InvalidArgumentError):
            log.conformance(crmflow.Workflow("empty"))

    def test_guards(self):
        """
        A Python guard sees the case's attributes; refusing every
        candidate is a guard_refused deviation.
        """
        wf = _ticket_workflow()
        wf2 = crmflow.Workflow.from_dict(dict(
            wf.to_dict(), transitions=[
                dict(t, guards=["small"]) if t["event"] == "assign" else t
                for t in wf.to_dict()["transitions"]]))
        seen = []

        def small(ctx):
            seen.append((ctx.case_id, ctx.event, ctx.from_state))
            return float(ctx.case_attributes["amount"]) < 100

        r = _log().conformance(wf2, guards={"small": small}, resync=False)

        assert ("T1", "assign", "new") == seen[0]
        d = r.deviations
        assert ["guard_refused"] == d.loc[
            (d["case_id"] == "T2") & (d["position"] == 0), "kind"].tolist()

    def test_guard_exception_propagates(self):
        """
        An exception in a guard reaches the caller unchanged.
        """
        wf = crmflow.Workflow.from_dict(dict(
            _ticket_workflow().to_dict(), transitions=[
                {"event": "assign", "from": "new", "to": "assigned",
                 "guards": ["boom"]}]))

        def boom(ctx):
            raise KeyError("vip_level")

        with pytest.raises(KeyError):
            _log().conformance(wf, guards={"boom": boom})

    def test_json(self):
        """
        The result exports as strict JSON.
        """
        r = _log().conformance(_ticket_workflow(), milestones=["closed"])

        text = analytics.to_json(r)

        assert "NaN" not in text and "Infinity" not in text


class TestEngineHistory:
    @pytest.mark.parametrize("activity", ["state", "event"])
    def test_engine_history_fits_its_own_workflow(self, activity):
        """
        A log of the engine's own history, read as it was made, fits the
        workflow that wrote it: two orders moved only by allowed events,
        so fitness is 1 and no case deviates (by construction, by hand).
        """
        crm = crmflow.Engine()
        crm.register("sales_order")
        for order in ("SO-1", "SO-2"):
            crm.create("sales_order", order)
            crm.fire(order, "submit")
        crm.fire("SO-1", "approve")

        log = EventLog.from_engine(crm, activity=activity)
        result = log.conformance(crm.workflow("sales_order"))

        assert 1.0 == result.fitness
        assert [0, 0] == result.cases["deviations"].tolist()


class TestDiscovery:
    """
    Discovery of a draft workflow and the diff against a designed one.
    """

    def test_discover_filters(self):
        """
        Every edge occurs once, so min_count=2 keeps only the start edge;
        the unfiltered draft accepts every event of its log.
        """
        log = _log()

        draft = log.discover(min_count=2)

        assert "start" == draft.initial_state
        names = {(t["from"], t["to"]) for t in draft.to_dict()["transitions"]}
        assert {("start", "assign")} == names
        full = log.discover()
        r = log.conformance(full)
        assert 1.0 == r.event_fitness

    def test_discover_empty_log(self):
        """
        A log without events cannot be discovered from.
        """
        log = EventLog.from_dataframe(pd.DataFrame({
            "case_id": pd.Series([], dtype=object),
            "activity": pd.Series([], dtype=object),
            "timestamp": pd.Series([], dtype="datetime64[us, UTC]")}))

        with pytest.raises(crmflow.InvalidArgumentError):
            log.discover()

    def test_diff_events(self):
        """
        By events: assign->close and escalate are only in the log.
        """
        designed = _ticket_workflow()
        draft = _log().discover()

        d = analytics.diff(designed, draft, basis="events")

        only_b = set(map(tuple, d.only_in_b().to_numpy().tolist()))
        assert ("assign", "close") in only_b
        assert ("assign", "escalate") in only_b
        assert set() == set(map(tuple, d.only_in_a().to_numpy().tolist()))
        assert "escalate" in d.nodes.loc[d.nodes["where"] == "only_b",
                                         "name"].tolist()


class TestWhatIf:
    """
    What-if: replaying history under a changed workflow.
    """

    def test_auto_approve(self):
        """
        Small tickets skip "assigned": the changed workflow resolves them
        directly, so visits to assigned drop for T1 and T3.
        """
        base = _ticket_workflow()
        changed = _ticket_workflow(extra=[
            {"event": "assign", "from": "new", "to": "resolved",
             "guards": ["small"]}])
        d = changed.to_dict()
        d["transitions"] = [d["transitions"][3]] + d["transitions"][:3]
        changed = crmflow.Workflow.from_dict(d)

        r = analytics.what_if(
            _log(), base,
            Scenario(changed, guards={"small": lambda c: float(
                c.case_attributes["amount"]) < 100}),
            count_states=["assigned"], milestones=["resolved"])

        c = r.cases.set_index("case_id")
        assert [1, 1, 1, 0] == c["visits_assigned_before"].tolist()
        assert [0, 1, 0, 0] == c["visits_assigned_after"].tolist()
        t = r.totals.set_index("metric")
        assert (3, 1) == (t.loc["visits_assigned", "before"],
                          t.loc["visits_assigned", "after"])
        assert 60.0 == c.loc["T1", "seconds_to_resolved_before"]
        assert 0.0 == c.loc["T1", "seconds_to_resolved_after"]
        assert c.loc["T1", "changed"] and not c.loc["T4", "changed"]
        assert {"team", "state", "before", "after", "change"} == set(
            r.load.columns)

    def test_bad_rules_field(self):
        """
        Scenario.rules must be rule dicts (tests/python/test_whatif.py
        covers rules and SLA policies); anything else is refused, naming
        the scenario.
        """
        with pytest.raises(crmflow.InvalidArgumentError, match="'changed'"):
            analytics.what_if(_log(), _ticket_workflow(),
                              Scenario(_ticket_workflow(), rules=object()))


class TestStatusExports:
    """
    A status export repeats a record's status on every update; two
    statuses mapped to one state read the same.  On the bundled
    ServiceNow sample the repeats are counted with pandas, apart from the
    replay.
    """

    STATUS = {
        "New": "submitted", "Active": "in_progress",
        "Awaiting User Info": "waiting_customer",
        "Awaiting Problem": "waiting_customer",
        "Awaiting Vendor": "waiting_customer",
        "Awaiting Evidence": "waiting_customer",
        "Resolved": "resolved", "Closed": "closed",
    }

    def _sample(self):
        import os

        return os.path.join(os.path.dirname(crmflow.__file__), "data",
                            "servicenow_incidents_sample.csv.gz")

    def _repeats_by_pandas(self, workflow):
        """
        Rows whose mapped state equals the case's previous mapped state,
        in (time, row) order, where the workflow has no transition from
        that state to itself (there the repeat is a real move).
        """
        df = pd.read_csv(self._sample(), usecols=["number", "incident_state",
                                                  "sys_updated_at"])
        df["time"] = pd.to_datetime(df["sys_updated_at"],
                                    format="%d/%m/%Y %H:%M", utc=True)
        df["state"] = df["incident_state"].map(self.STATUS)
        df = df.dropna(subset=["state"])
        df["row"] = range(len(df))
        df = df.sort_values(["number", "time", "row"], kind="stable")
        same = df["state"].eq(df.groupby("number")["state"].shift())
        loops = {t["from"] for t in workflow.to_dict()["transitions"]
                 if t["from"] == t["to"]}
        return int((same & ~df["state"].isin(loops)).sum())

    def test_repeated_statuses_are_unchanged_not_deviations(self):
        workflow = crmflow.templates.load("service_request")
        log = EventLog.from_csv(self._sample(), case="number",
                                activity="incident_state",
                                time="sys_updated_at",
                                time_format="%d/%m/%Y %H:%M")
        expected = self._repeats_by_pandas(workflow)

        r = log.conformance(workflow, self.STATUS, activity_kind="state")
        strict = log.conformance(workflow, self.STATUS,
                                 activity_kind="state",
                                 repeats_unchanged=False)

        assert expected > 1000
        assert expected == r.unchanged == int(r.cases["unchanged"].sum())
        assert expected == len(strict.deviations) - len(r.deviations)
        assert 0 == strict.unchanged
        assert r.fitness > 0.9 > strict.fitness
