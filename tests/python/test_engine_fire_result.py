"""
What fire (and create) return when the call moves the transaction on by
itself: rules that fire follow-up events, the automatic approval of an
approval matrix's empty chain.  The result is the transaction's state
after the whole call, the state get() shows, not the state the call's own
transition entered.  Expected states are worked out by hand from the
workflow and the rules in each test.
"""

from decimal import Decimal

import pytest

import crmflow
from crmflow import approvals as ap

ORDER = {
    "name": "order",
    "version": 1,
    "states": [
        {"name": "draft", "role": "initial"},
        {"name": "submitted"},
        {"name": "checked"},
        {"name": "pending_approval"},
        {"name": "approved"},
        {"name": "shipped", "role": "terminal"},
    ],
    "attributes": [{"name": "amount", "type": "decimal"}],
    "transitions": [
        {"event": "submit", "from": "draft", "to": "submitted"},
        {"event": "check", "from": "submitted", "to": "checked"},
        {"event": "ship", "from": "checked", "to": "shipped"},
        {"event": "request", "from": "draft", "to": "pending_approval"},
        {"event": "approve", "from": "pending_approval", "to": "approved"},
        {"event": "deliver", "from": "approved", "to": "shipped"},
        {"event": "reject", "from": "pending_approval", "to": "draft"},
        {"event": "note", "from": "submitted", "to": "submitted",
         "internal": True},
    ],
}


@pytest.fixture(params=["sqlite", "memory"])
def engine(request, tmp_path):
    path = str(tmp_path / "fire.db") if request.param == "sqlite" else None
    e = crmflow.Engine(path)
    e.register(ORDER)
    yield e
    e.close()


def add_check_rule(engine):
    """
    Small orders are checked automatically once submitted.
    """
    engine.add_rule("auto_check", "order", trigger="entered",
                    on="submitted", when="amount < 100",
                    actions="fire check")


class TestFireReturnsTheFinalState:
    """
    fire's result equals get().state after the call.
    """

    def test_rule_fires_a_follow_up_event(self, engine):
        """
        submit enters "submitted"; the rule fires check at once, so the
        call ends in "checked", at version 3 (create, submit, check).
        """
        add_check_rule(engine)
        engine.create("order", "O-1", attributes={"amount": Decimal("50")})

        state = engine.fire("O-1", "submit")

        assert "checked" == state
        assert state == engine.get("O-1").state
        assert 3 == engine.get("O-1").version

    def test_rule_that_does_not_match_leaves_the_own_state(self, engine):
        """
        An amount of 500 is not small: submit's own state stands.
        """
        add_check_rule(engine)
        engine.create("order", "O-2", attributes={"amount": Decimal("500")})

        state = engine.fire("O-2", "submit")

        assert "submitted" == state
        assert state == engine.get("O-2").state

    def test_chain_of_follow_ups(self, engine):
        """
        check entering "checked" fires ship in turn: submit's call ends
        two transitions later, in "shipped".
        """
        add_check_rule(engine)
        engine.add_rule("auto_ship", "order", trigger="entered",
                        on="checked", actions="fire ship")
        engine.create("order", "O-3", attributes={"amount": Decimal("10")})

        state = engine.fire("O-3", "submit")

        assert "shipped" == state
        assert state == engine.get("O-3").state
        assert ["create", "submit", "check", "ship"] == list(
            engine.history("O-3")["event"])

    def test_rule_on_an_internal_transition(self, engine):
        """
        An event rule on the internal "note" fires check: the result is
        "checked", not the unchanged "submitted".
        """
        engine.add_rule("check_on_note", "order", trigger="event",
                        on="note", actions="fire check")
        engine.create("order", "O-4", attributes={"amount": Decimal("500")})
        engine.fire("O-4", "submit")

        state = engine.fire("O-4", "note")

        assert "checked" == state
        assert state == engine.get("O-4").state

    def test_empty_approval_chain_approves_automatically(self, engine):
        """
        A band with no steps approves at once: request enters
        "pending_approval" and the automatic approve moves on to
        "approved"; a large amount waits for its approver.
        """
        engine.approvals.set_matrix(ap.ApprovalMatrix("order", [
            ap.Band("small", "amount <= 1000"),
            ap.Band("large", "true", [ap.Step("manager", ["mia"])]),
        ], request_state="pending_approval", approve_event="approve",
            reject_event="reject"))
        engine.create("order", "S-1", attributes={"amount": Decimal("200")})
        engine.create("order", "L-1", attributes={"amount": Decimal("5000")})

        small = engine.fire("S-1", "request")
        large = engine.fire("L-1", "request")

        assert ("approved", "pending_approval") == (small, large)
        assert small == engine.get("S-1").state
        assert large == engine.get("L-1").state

    def test_hook_firing_another_transaction_does_not_change_it(
            self, engine):
        """
        A hook that moves a different transaction leaves this call's
        result alone.
        """
        engine.create("order", "A", attributes={"amount": Decimal("500")})
        engine.create("order", "B", attributes={"amount": Decimal("500")})

        @engine.on_enter("order", "submitted")
        def also_submit_b(ctx):
            if ctx.transaction.id == "A":
                engine.fire("B", "submit")

        state = engine.fire("A", "submit")

        assert "submitted" == state
        assert ("submitted", "submitted") == (engine.get("A").state,
                                              engine.get("B").state)


class TestCreateReturnsTheFinalState:
    """
    create's transaction is the one get() shows after the call.
    """

    def test_rule_on_created_fires(self, engine):
        """
        A "created" rule submits every order at once, and the check rule
        then checks the small one: create returns it in "checked" at
        version 3.
        """
        add_check_rule(engine)
        engine.add_rule("auto_submit", "order", trigger="created",
                        actions="fire submit")

        txn = engine.create("order", "C-1",
                            attributes={"amount": Decimal("20")})

        assert ("checked", 3) == (txn.state, txn.version)
        stored = engine.get("C-1")
        assert (stored.state, stored.version) == (txn.state, txn.version)
