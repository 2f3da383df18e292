"""
Tests of crmflow.workflow: building, definitions, validation, display.
"""

import json
import shutil

import pytest

import crmflow
from crmflow import workflow as workflow_module
from conftest import ticket_workflow


def _definition():
    return {
        "name": "ticket",
        "version": 2,
        "description": "a ticket",
        "states": [
            {"name": "new", "role": "initial", "description": "fresh"},
            {"name": "open", "role": "normal", "description": ""},
            {"name": "closed", "role": "terminal", "description": ""},
        ],
        "attributes": [
            {"name": "amount", "type": "decimal", "required": True},
        ],
        "transitions": [
            {
                "event": "open",
                "from": "new",
                "to": "open",
                "guards": ["g1", "g2"],
                "actions": ["a1"],
                "internal": False,
            },
            {
                "event": "close",
                "from": ["new", "open"],
                "to": "closed",
                "guards": [],
                "actions": [],
                "internal": False,
            },
        ],
    }


class TestBuild:
    def test_states_and_events_in_declaration_order(self, ticket):
        """
        States and events come back in the order they were declared.
        """
        assert ["new", "open", "closed"] == ticket.states()
        assert ["open", "note", "close"] == ticket.events()
        assert "new" == ticket.initial_state
        assert "terminal" == ticket.role("closed")

    def test_list_source_adds_one_transition_per_source(self, ticket):
        """
        A list of sources gives one core transition per source.
        """
        assert ["open", "close"] == ticket.events_from("new")
        assert ["note", "close"] == ticket.events_from("open")

    def test_chaining(self):
        """
        The builder methods return the workflow.
        """
        wf = crmflow.Workflow("x").add_state("a", "initial")
        wf.add_state("b", "terminal").add_transition("go", "a", "b")

        assert [] == wf.validate()

    def test_unknown_role_is_refused(self):
        """
        A role other than initial, terminal or normal is refused.
        """
        with pytest.raises(crmflow.InvalidArgumentError, match="role"):
            crmflow.Workflow("x").add_state("a", "start")

    def test_unknown_attribute_type_is_refused(self):
        """
        Attribute types are checked, the message names the type.
        """
        with pytest.raises(crmflow.InvalidArgumentError, match="money"):
            crmflow.Workflow("x").add_attribute("a", "money")

    def test_duplicate_state_is_refused(self):
        """
        A state declared twice raises AlreadyExistsError.
        """
        wf = crmflow.Workflow("x").add_state("a", "initial")

        with pytest.raises(crmflow.AlreadyExistsError):
            wf.add_state("a")

    def test_bad_version(self):
        """
        Versions are integers >= 1.
        """
        with pytest.raises(crmflow.InvalidArgumentError, match="version"):
            crmflow.Workflow("x", 0)
        with pytest.raises(crmflow.InvalidArgumentError, match="version"):
            crmflow.Workflow("x", "1")

    def test_internal_needs_self_transition(self):
        """
        internal=True with a different target is refused.
        """
        wf = crmflow.Workflow("x").add_state("a", "initial")

        with pytest.raises(crmflow.InvalidArgumentError):
            wf.add_transition("go", "a", "b", internal=True)


class TestDefinitions:
    def test_dict_round_trip(self):
        """
        from_dict then to_dict gives the definition back unchanged.
        """
        d = _definition()

        assert d == crmflow.Workflow.from_dict(d).to_dict()

    def test_json_round_trip(self, ticket):
        """
        to_json then from_json gives an equal workflow.
        """
        text = ticket.to_json()

        assert ticket == crmflow.Workflow.from_json(text)
        assert json.loads(text) == ticket.to_dict()

    def test_defaults_are_filled(self):
        """
        Optional keys get their defaults in to_dict.
        """
        wf = crmflow.Workflow.from_dict(
            {
                "name": "x",
                "states": [{"name": "a", "role": "initial"}, {"name": "b"}],
                "transitions": [{"event": "go", "from": "a", "to": "b"}],
            }
        )

        d = wf.to_dict()
        assert 1 == d["version"]
        assert "normal" == d["states"][1]["role"]
        assert {
            "event": "go",
            "from": "a",
            "to": "b",
            "guards": [],
            "actions": [],
            "internal": False,
        } == d["transitions"][0]

    @pytest.mark.parametrize(
        "path, key",
        [
            ((), "colour"),
            (("states", 0), "colour"),
            (("attributes", 0), "colour"),
            (("transitions", 1), "colour"),
        ],
    )
    def test_unknown_keys_are_named(self, path, key):
        """
        Unknown keys anywhere in a definition are refused by name.
        """
        d = _definition()
        target = d
        for p in path:
            target = target[p]
        target[key] = "red"

        with pytest.raises(crmflow.InvalidArgumentError) as e:
            crmflow.Workflow.from_dict(d)
        assert '"colour"' in str(e.value)

    def test_missing_name(self):
        """
        A definition without a name is refused, naming the key.
        """
        d = _definition()
        del d["name"]

        with pytest.raises(crmflow.InvalidArgumentError, match='"name"'):
            crmflow.Workflow.from_dict(d)

    def test_not_json(self):
        """
        Text that is not JSON raises ParseError.
        """
        with pytest.raises(crmflow.ParseError):
            crmflow.Workflow.from_json("{states: [")


class TestValidate:
    def test_valid_workflow_has_no_problems(self, ticket):
        """
        The ticket workflow is valid; check() returns it.
        """
        assert [] == ticket.validate()
        assert ticket is ticket.check()

    def test_unreachable_state(self, ticket):
        """
        An unreachable state is reported with its name.
        """
        ticket.add_state("archived", "terminal")

        problems = ticket.validate()

        assert 1 == len(problems)
        assert isinstance(problems[0], crmflow.Problem)
        assert "archived" == problems[0].state
        assert "archived" in problems[0].message

    def test_no_initial_state(self):
        """
        A workflow without an initial state fails check().
        """
        wf = crmflow.Workflow("x").add_state("a", "terminal")

        assert wf.validate()
        with pytest.raises(crmflow.ValidationError, match="x"):
            wf.check()

    def test_unknown_state_in_transition(self, ticket):
        """
        A transition naming an undeclared state is a problem.
        """
        ticket.add_transition("escalate", "open", "escalated")

        assert any("escalated" in p.message for p in ticket.validate())

    def test_check_lists_every_problem(self):
        """
        The ValidationError message holds every problem.
        """
        wf = crmflow.Workflow("x").add_state("a", "initial")
        wf.add_state("b").add_state("c", "terminal")

        with pytest.raises(crmflow.ValidationError) as e:
            wf.check()
        for p in wf.validate():
            assert p.message in str(e.value)


def _approval(first, second, attributes=None):
    """
    Returns a workflow where "approve" leaves "submitted" twice, with the
    guard lists ``first`` and ``second``.
    """
    return crmflow.Workflow.from_dict({
        "name": "order",
        "states": [
            {"name": "submitted", "role": "initial"},
            {"name": "approved", "role": "terminal"},
            {"name": "review", "role": "terminal"},
        ],
        "attributes": attributes or [
            {"name": "amount", "type": "decimal"},
            {"name": "tier", "type": "text"},
        ],
        "transitions": [
            {"event": "approve", "from": "submitted", "to": "approved",
             "guards": first},
            {"event": "approve", "from": "submitted", "to": "review",
             "guards": second},
        ],
    })


class TestGuardOverlap:
    def test_touching_bounds_overlap_with_a_witness(self):
        """
        amount <= 1000 and amount >= 1000 both hold at 1000: a warning
        naming state, event, both transitions and the witness; check()
        refuses it.
        """
        wf = _approval(["expr: amount <= 1000"], ["expr: amount >= 1000"])

        problems = wf.validate()

        assert [
            crmflow.Problem(
                "overlapping_guards",
                "submitted",
                "approve",
                'state "submitted": event "approve": guards of transition '
                '#1 to "approved" (expr: amount <= 1000) and transition #2 '
                'to "review" (expr: amount >= 1000) can both hold, e.g. '
                "amount = 1000 (the first declared wins)",
                "warning",
            )
        ] == problems
        with pytest.raises(crmflow.ValidationError, match="amount = 1000"):
            wf.check()

    @pytest.mark.parametrize("first, second", [
        ("amount <= 1000", "amount > 1000"),
        ("amount == 0.1", "amount == 0.11"),
        ("tier == 'Gold'", "tier == 'gold'"),
        ("tier in ['gold', 'silver']", "tier not in ['gold', 'silver']"),
        ("amount > 5 and tier == 'gold'", "not (amount > 5) or tier != "
         "'gold'"),
    ])
    def test_exclusive_guards_pass(self, first, second):
        """
        Guards no value satisfies together give no problem.
        """
        wf = _approval(["expr: " + first], ["expr: " + second])

        assert [] == wf.validate()
        assert wf is wf.check()

    @pytest.mark.parametrize("first, second, witness", [
        ("amount == 0.1", "amount == 0.10", "amount = 0.1"),
        ("amount > 100 or tier == 'gold'", "amount < 50",
         "tier = 'gold', amount = 49"),
        ("tier != 'gold'", "amount == null", "tier = 'other', amount = null"),
    ])
    def test_overlap_witnesses(self, first, second, witness):
        """
        The witness satisfies both guards (checked by hand).
        """
        wf = _approval(["expr: " + first], ["expr: " + second])

        [p] = wf.validate()

        assert "overlapping_guards" == p.kind
        assert f"e.g. {witness} (" in p.message

    def test_python_guard_is_an_unproven_note(self):
        """
        A Python guard cannot be analysed: an info note, which check()
        does not refuse, and the engine registers the workflow.
        """
        wf = _approval(["is_vip"], ["expr: amount > 5"])

        [p] = wf.validate()
        engine = crmflow.Engine()
        engine.add_guard("is_vip", lambda ctx: True)
        engine.register(wf)

        assert "unproven_exclusive" == p.kind
        assert "info" == p.severity
        assert p.message.endswith('(cannot analyse guard "is_vip")')
        assert wf is wf.check()

    def test_invalid_guard_is_an_error(self):
        """
        An expression guard naming an unknown attribute is an error of
        Workflow.validate(), with the column.
        """
        wf = _approval(["expr: amout > 5"], [])

        [p] = wf.validate()

        assert ("invalid_guard", "error") == (p.kind, p.severity)
        assert 'column 1: unknown name "amout"' in p.message


class TestDisplay:
    def test_dot_names_states(self, ticket):
        """
        The DOT text contains every state and event.
        """
        dot = ticket.to_dot()

        for name in ticket.states() + ticket.events():
            assert name in dot

    @pytest.mark.skipif(shutil.which("dot") is None, reason="no graphviz")
    def test_svg_with_graphviz(self, ticket):
        """
        _repr_svg_ renders through dot when installed.
        """
        svg = ticket._repr_svg_()

        assert "<svg" in svg

    def test_svg_without_graphviz(self, ticket, monkeypatch):
        """
        Without dot, _repr_svg_ returns None.
        """
        monkeypatch.setattr(workflow_module.shutil, "which", lambda n: None)

        assert ticket._repr_svg_() is None

    def test_repr(self):
        """
        The repr names the kind, version, sizes and initial state.
        """
        wf = ticket_workflow("order")

        assert (
            "<Workflow order v1: 3 states, 4 transitions, initial 'new'>"
            == repr(wf)
        )
