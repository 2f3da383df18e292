"""
Tests of crmflow.templates: the six bundled workflows.
"""

import gzip
import csv

import pytest

import crmflow
from crmflow import templates

SIX = [
    "after_sales",
    "campaign",
    "complaint",
    "feedback",
    "sales_order",
    "service_request",
]


def _edges(name):
    """
    Returns {(source, target): [events]} of a template's definition.
    """
    edges = {}
    for t in templates.definition(name)["transitions"]:
        sources = [t["from"]] if isinstance(t["from"], str) else t["from"]
        for s in sources:
            edges.setdefault((s, t["to"]), []).append(t["event"])
    return edges


class TestTemplates:
    def test_names(self):
        """
        The six kinds are bundled.
        """
        assert SIX == templates.names()

    @pytest.mark.parametrize("name", SIX)
    def test_valid(self, name):
        """
        Every template passes validate() and is named after its kind.
        """
        wf = templates.load(name)

        assert [] == wf.validate()
        assert name == wf.name
        assert isinstance(wf, crmflow.Workflow)

    @pytest.mark.parametrize("name", SIX)
    def test_round_trip(self, name):
        """
        load(name).to_dict() equals the JSON file's definition.
        """
        assert templates.definition(name) == templates.load(name).to_dict()

    @pytest.mark.parametrize("name", SIX)
    def test_typed_attributes(self, name):
        """
        Every template declares typed attributes; money is decimal.
        """
        attributes = templates.definition(name)["attributes"]

        assert attributes
        money = {"amount", "budget", "cost", "compensation"}
        for a in attributes:
            if a["name"] in money:
                assert "decimal" == a["type"]

    def test_definition_is_a_copy(self):
        """
        Changing a returned definition does not change the template.
        """
        templates.definition("campaign")["states"].clear()

        assert templates.definition("campaign")["states"]

    def test_unknown_name_lists_names(self):
        """
        An unknown name raises NotFoundError listing the templates.
        """
        with pytest.raises(crmflow.NotFoundError) as e:
            templates.load("invoice")
        for name in SIX:
            assert name in str(e.value)


class TestSalesOrder:
    def test_happy_path(self):
        """
        created .. completed through the declared events.
        """
        edges = _edges("sales_order")
        path = [
            "created",
            "pending_approval",
            "approved",
            "invoiced",
            "shipped",
            "delivered",
            "completed",
        ]

        for a, b in zip(path, path[1:]):
            assert (a, b) in edges

    def test_cancel_from_open_states_only(self):
        """
        cancel leaves exactly the open states.
        """
        sources = {s for (s, t), ev in _edges("sales_order").items()
                   if "cancel" in ev}

        assert {"created", "pending_approval", "approved",
                "invoiced"} == sources

    def test_terminal_states(self):
        """
        rejected, completed, canceled and returned are terminal.
        """
        wf = templates.load("sales_order")

        terminal = {s for s in wf.states() if wf.role(s) == "terminal"}
        assert {"rejected", "completed", "canceled", "returned"} == terminal


class TestServiceRequest:
    STATUS = {
        "New": "submitted",
        "Active": "in_progress",
        "Awaiting User Info": "waiting_customer",
        "Awaiting Problem": "waiting_customer",
        "Awaiting Vendor": "waiting_customer",
        "Awaiting Evidence": "waiting_customer",
        "Resolved": "resolved",
        "Closed": "closed",
    }

    def test_servicenow_moves_have_events(self, shared_data):
        """
        Every change of state in the ServiceNow log (in file order) has a
        transition, except leaving closed (terminal, so a deviation).
        """
        path = (shared_data / "servicenow_incident_log_2016_feb_mar"
                / "incident_event_log_part1.csv.gz")
        moves = set()
        with gzip.open(path, "rt", newline="", encoding="utf-8") as f:
            last = {}
            for row in csv.DictReader(f):
                state = self.STATUS[row["incident_state"]]
                prev = last.get(row["number"], "submitted")
                if prev != state:
                    moves.add((prev, state))
                last[row["number"]] = state
        edges = _edges("service_request")

        missing = {m for m in moves if m not in edges}

        assert {m for m in missing if m[0] != "closed"} == set()

    def test_reopen_and_direct_moves(self):
        """
        reopen goes back to work; waiting resolves directly; submitted
        starts directly.
        """
        edges = _edges("service_request")

        assert ["reopen"] == edges[("resolved", "in_progress")]
        assert ["resolve"] == edges[("waiting_customer", "resolved")]
        assert ["start"] == edges[("submitted", "in_progress")]
