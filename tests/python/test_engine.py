"""
Tests of crmflow.engine: transactions, callbacks, queries and the report.
"""

import datetime
import decimal
import gc
import json
import weakref

import pandas as pd
import pytest

import crmflow
from crmflow import _core
from conftest import Clock, micros, ticket_workflow, utc


@pytest.fixture
def eng(engine, ticket):
    """
    The memory engine with the ticket workflow registered.
    """
    engine.register(ticket)
    return engine


class TestEngine:
    def test_subclass_keeps_fast_fire(self):
        """
        Engine subclasses the core engine and inherits fire unchanged.
        """
        assert issubclass(crmflow.Engine, _core.Engine)
        assert crmflow.Engine.fire is _core.Engine.fire

    def test_context_manager_closes(self, clock, ticket):
        """
        Leaving the with block closes the engine; closing twice is fine.
        """
        with crmflow.Engine(clock=clock) as e:
            e.register(ticket)

        with pytest.raises(crmflow.Error):
            e.kinds()
        e.close()
        assert "<crmflow.Engine closed>" == repr(e)

    def test_none_path_is_memory_store(self, engine):
        """
        path None opens the memory store.
        """
        assert "" == engine.path
        assert "UTC" == engine.zone

    def test_bad_zone_and_path(self, tmp_path):
        """
        An unknown zone and an unopenable path raise crmflow errors.
        """
        with pytest.raises(crmflow.InvalidArgumentError, match="Mars"):
            crmflow.Engine(zone="Mars/Olympus")
        with pytest.raises(crmflow.StoreError):
            crmflow.Engine(str(tmp_path))
        with pytest.raises(crmflow.InvalidArgumentError, match="clock"):
            crmflow.Engine(clock=42)

    def test_register_template_name_and_dict(self, engine):
        """
        register accepts a Workflow, a template name or a dict.
        """
        engine.register("sales_order")
        engine.register(ticket_workflow("t2").to_dict())

        assert ["sales_order", "t2"] == sorted(engine.kinds())
        assert "sales_order" == engine.workflow("sales_order").name

    def test_register_same_definition_twice(self, eng, ticket):
        """
        Registering an identical definition again does nothing.
        """
        eng.register(ticket)

        assert ["ticket"] == eng.kinds()

    def test_register_bad_type(self, engine):
        """
        register refuses other objects.
        """
        with pytest.raises(crmflow.InvalidArgumentError, match="workflow"):
            engine.register(42)

    def test_reopen_reregisters_stored_workflows(self, db_path, ticket):
        """
        Opening an existing file registers its latest workflows again.
        """
        with crmflow.Engine(db_path) as e:
            e.register(ticket)
            e.create("ticket", "T-1")
        v2 = ticket_workflow()
        d = v2.to_dict()
        d["version"] = 2
        d["states"].append({"name": "spam", "role": "terminal",
                            "description": ""})
        d["transitions"].append({"event": "spam", "from": "new",
                                 "to": "spam", "guards": [], "actions": [],
                                 "internal": False})
        with crmflow.Engine(db_path) as e:
            e.register(d)

        with crmflow.Engine(db_path) as e:
            assert ["ticket"] == e.kinds()
            assert 2 == e.workflow("ticket").version
            assert "spam" in e.workflow("ticket").states()
            assert "new" == e.get("T-1").state


class TestTransactions:
    def test_create_and_get(self, eng, clock):
        """
        create returns a Transaction with aware UTC times and None for
        missing customer and parent.
        """
        t = eng.create("ticket", "T-1", attributes={"tier": "gold"},
                       actor="ann")

        assert isinstance(t, crmflow.Transaction)
        assert "T-1" == t.id
        assert "new" == t.state
        assert t.customer_id is None
        assert t.parent_id is None
        assert {"tier": "gold"} == {k: v for k, v in t.attributes.items()
                                    if v is not None}
        assert 1 == t.version
        assert utc(2026, 2, 2, 9, 0) == t.created_at
        assert datetime.timezone.utc == t.created_at.tzinfo
        assert t == eng.get("T-1")

    def test_fire_moves_state(self, eng, clock):
        """
        fire returns the new state; get reflects it.
        """
        eng.create("ticket", "T-1", customer="C-1")
        clock.advance(hours=1)

        assert "open" == eng.fire("T-1", "open", actor="bob")
        t = eng.get("T-1")
        assert "open" == t.state
        assert 2 == t.version
        assert utc(2026, 2, 2, 10, 0) == t.state_entered_at
        assert "C-1" == t.customer_id

    def test_parent_customer_is_inherited(self, eng):
        """
        A transaction with a parent and no customer takes the parent's.
        """
        eng.create("ticket", "T-1", customer="C-9")
        t = eng.create("ticket", "T-2", parent="T-1")

        assert "T-1" == t.parent_id
        assert "C-9" == t.customer_id

    def test_local(self, eng):
        """
        Transaction.local shows the same instants in another zone.
        """
        t = eng.create("ticket", "T-1").local("Europe/Berlin")

        assert "2026-02-02T10:00:00+01:00" == t.created_at.isoformat()
        with pytest.raises(crmflow.InvalidArgumentError):
            t.local("Mars/Olympus")

    def test_time_arguments(self, eng):
        """
        Times may be aware, naive (engine zone), int micros or ISO text.
        """
        eng.create("ticket", "T-1", time=utc(2026, 1, 1, 8))
        eng.create("ticket", "T-2", time=datetime.datetime(2026, 1, 1, 8))
        eng.create("ticket", "T-3", time=micros(utc(2026, 1, 1, 8)))
        eng.create("ticket", "T-4", time="2026-01-01T09:00:00+01:00")

        times = {eng.get(f"T-{i}").created_at for i in range(1, 5)}
        assert {utc(2026, 1, 1, 8)} == times

    def test_argument_checks_name_the_argument(self, eng):
        """
        Python-side checks raise InvalidArgumentError naming the argument.
        """
        with pytest.raises(crmflow.InvalidArgumentError, match="id"):
            eng.create("ticket", "")
        with pytest.raises(crmflow.InvalidArgumentError, match="customer"):
            eng.create("ticket", "T-1", customer=5)
        with pytest.raises(crmflow.InvalidArgumentError, match="time"):
            eng.create("ticket", "T-1", time=1.5)
        with pytest.raises(crmflow.InvalidArgumentError, match="attrib"):
            eng.create("ticket", "T-1", attributes=[("tier", "x")])

    def test_transactions_frame(self, eng):
        """
        transactions() is a DataFrame with UTC datetime columns.
        """
        eng.create("ticket", "T-2")
        eng.create("ticket", "T-1")
        eng.fire("T-1", "open")

        df = eng.transactions()
        assert ["T-1", "T-2"] == list(df["id"])
        assert "datetime64[us, UTC]" == str(df["created_at"].dtype)
        assert ["T-1"] == list(eng.transactions(state="open")["id"])
        assert 0 == len(eng.transactions(kind="nothing"))

    def test_set_attributes(self, eng):
        """
        set_attributes changes values and bumps the version.
        """
        eng.create("ticket", "T-1")

        t = eng.set_attributes("T-1", {"amount": decimal.Decimal("1.50")})

        assert decimal.Decimal("1.50") == t.attributes["amount"]
        assert 2 == t.version
        with pytest.raises(crmflow.ConcurrentUpdateError):
            eng.set_attributes("T-1", {"tier": "x"}, expected_version=1)


class TestHistory:
    def test_frame_dtypes(self, eng, clock):
        """
        history() has typed columns; time is datetime64[us, UTC].
        """
        eng.create("ticket", "T-1")
        clock.advance(minutes=5)
        eng.fire("T-1", "open", payload={"note": "grüß"})
        clock.advance(minutes=5)
        eng.fire("T-1", "note")

        h = eng.history("T-1")

        assert ["create", "open", "note"] == list(h["event"])
        assert "datetime64[us, UTC]" == str(h["time"].dtype)
        assert "int64" == str(h["seq"].dtype)
        assert "bool" == str(h["internal"].dtype)
        assert [False, False, True] == list(h["internal"])
        assert pd.isna(h["from_state"][0])
        assert ["new", "open"] == list(h["from_state"][1:])
        assert {"note": "grüß"} == json.loads(h["payload"][1])
        assert pd.Timestamp("2026-02-02T09:05Z") == h["time"][1]

    def test_empty_history(self, eng):
        """
        An empty history is an empty frame with the same dtypes.
        """
        h = eng.history(kind="ticket")

        assert 0 == len(h)
        assert "datetime64[us, UTC]" == str(h["time"].dtype)

    def test_filters(self, eng, clock):
        """
        Filters by transaction, kind and half-open time bounds.
        """
        eng.create("ticket", "T-1")
        clock.advance(hours=1)
        eng.create("ticket", "T-2")

        assert ["T-1"] == list(eng.history("T-1")["transaction_id"])
        assert 2 == len(eng.history(kind="ticket"))
        assert ["T-1"] == list(
            eng.history(start=utc(2026, 2, 2, 9),
                        end=utc(2026, 2, 2, 10))["transaction_id"]
        )


class TestCallbacks:
    def test_guard_decorator_and_plain_call(self, engine):
        """
        guard works as a decorator and as a plain call; a refusal raises
        GuardRefusedError with the reason.
        """
        wf = crmflow.Workflow("t").add_state("a", "initial")
        wf.add_state("b", "terminal")
        wf.add_transition("go", "a", "b", guards=["ok", "other"])
        engine.register(wf)
        calls = []

        @engine.guard("ok")
        def ok(ctx):
            calls.append(("ok", ctx.event, ctx.from_state, ctx.to_state))
            return True

        engine.guard("other", lambda ctx: (False, "not today"))
        engine.create("t", "X")

        with pytest.raises(crmflow.GuardRefusedError, match="not today"):
            engine.fire("X", "go")
        assert [("ok", "go", "a", "b")] == calls
        assert "a" == engine.get("X").state

    def test_guard_class(self, engine):
        """
        A Guard subclass is registered through its check method.
        """

        class Gold(crmflow.Guard):
            def check(self, ctx):
                return ctx.case.get("tier") == "gold"

        wf = ticket_workflow()
        wf.add_state("vip", "terminal")
        wf.add_transition("promote", "open", "vip", guards=["gold"])
        engine.register(wf)
        engine.add_guard("gold", Gold())
        engine.create("ticket", "T-1", attributes={"tier": "gold"})
        engine.fire("T-1", "open")

        assert "vip" == engine.fire("T-1", "promote")

    def test_guard_without_check(self, engine):
        """
        A Guard subclass that does not override check is refused.
        """
        with pytest.raises(crmflow.InvalidArgumentError, match="check"):
            engine.add_guard("g", crmflow.Guard())
        with pytest.raises(crmflow.InvalidArgumentError):
            engine.add_guard("g", 42)

    def test_hooks_and_actions(self, engine):
        """
        Exit hooks, actions and entry hooks run in that order.
        """
        wf = crmflow.Workflow("t").add_state("a", "initial")
        wf.add_state("b", "terminal")
        wf.add_transition("go", "a", "b", actions=["act"])
        engine.register(wf)
        log = []
        engine.on_exit("t", "a", lambda ctx: log.append("exit:a"))

        @engine.on_enter("t", "b")
        def entered(ctx):
            log.append("enter:" + ctx.transaction.id)

        engine.action("act", lambda ctx: log.append("act"))
        engine.create("t", "X")
        engine.fire("X", "go")

        assert ["exit:a", "act", "enter:X"] == log

    def test_callback_exception_rolls_back(self, eng):
        """
        An exception in an action propagates unchanged; nothing changes.
        """

        class Boom(Exception):
            pass

        def fail(ctx):
            raise Boom("no")

        eng.on_enter("ticket", "open", fail)
        eng.create("ticket", "T-1")
        before = eng.history()

        with pytest.raises(Boom):
            eng.fire("T-1", "open")
        pd.testing.assert_frame_equal(before, eng.history())
        assert "new" == eng.get("T-1").state

    def test_guard_freed_with_engine(self, clock, ticket):
        """
        The engine keeps a registered Guard alive, and frees it after.
        """

        class G(crmflow.Guard):
            def check(self, ctx):
                return True

        e = crmflow.Engine(clock=clock)
        g = G()
        ref = weakref.ref(g)
        e.add_guard("g", g)
        del g
        gc.collect()
        assert ref() is not None

        del e
        gc.collect()

        assert ref() is None


class TestGroupedWrites:
    def test_commit(self, db_path, ticket, clock):
        """
        Writes inside transaction() are committed together.
        """
        with crmflow.Engine(db_path, clock=clock) as e:
            e.register(ticket)
            with e.transaction():
                e.create("ticket", "T-1")
                e.fire("T-1", "open")

        with crmflow.Engine(db_path) as e:
            assert "open" == e.get("T-1").state

    def test_rollback_on_exception(self, eng):
        """
        An exception inside transaction() undoes every write in it.
        """
        eng.create("ticket", "T-0")
        before = eng.history()

        with pytest.raises(KeyError):
            with eng.transaction():
                eng.create("ticket", "T-1")
                eng.fire("T-0", "open")
                raise KeyError("stop")

        pd.testing.assert_frame_equal(before, eng.history())
        assert "new" == eng.get("T-0").state
        with pytest.raises(crmflow.NotFoundError):
            eng.get("T-1")


class TestBadInput:
    @pytest.fixture
    def filled(self, eng):
        eng.create("ticket", "T-1", attributes={"tier": "gold"})
        eng.fire("T-1", "open")
        return eng

    @pytest.mark.parametrize(
        "call, error",
        [
            (lambda e: e.create("nokind", "T-9"), crmflow.NotFoundError),
            (lambda e: e.create("ticket", "T-1"), crmflow.AlreadyExistsError),
            (lambda e: e.fire("T-1", "nope"), crmflow.Error),
            (lambda e: e.fire("T-1", "open"), crmflow.NotAllowedError),
            (lambda e: e.fire("T-404", "open"), crmflow.NotFoundError),
            (
                lambda e: e.create("ticket", "T-9", attributes={"x": "1"}),
                crmflow.InvalidArgumentError,
            ),
            (
                lambda e: e.create("ticket", "T-9",
                                   attributes={"amount": 1.5}),
                crmflow.InvalidArgumentError,
            ),
            (
                lambda e: e.create("ticket", "T-9", time="2026-13-01"),
                crmflow.ParseError,
            ),
            (lambda e: e.get("T-404"), crmflow.NotFoundError),
            (lambda e: e.workflow("nokind"), crmflow.NotFoundError),
        ],
    )
    def test_clear_error_and_nothing_changes(self, filled, call, error):
        """
        Bad input raises a crmflow.Error subclass and changes nothing.
        """
        before_h = filled.history()
        before_t = filled.transactions()

        with pytest.raises(error) as e:
            call(filled)

        assert isinstance(e.value, crmflow.Error)
        assert e.value.message
        pd.testing.assert_frame_equal(before_h, filled.history())
        pd.testing.assert_frame_equal(before_t, filled.transactions())

    def test_not_allowed_names_state_and_event(self, filled):
        """
        The not-allowed message names the transaction, state and event.
        """
        with pytest.raises(crmflow.NotAllowedError) as e:
            filled.fire("T-1", "open")

        for word in ("T-1", "open"):
            assert word in str(e.value)


class TestReport:
    def test_shape_and_values(self, eng, clock):
        """
        The report counts states and transitions and times the dwell.
        """
        for i in range(3):
            eng.create("ticket", f"T-{i}")
        clock.advance(hours=1)
        eng.fire("T-0", "open")
        eng.fire("T-1", "open")
        clock.advance(hours=2)
        eng.fire("T-0", "close")

        r = eng.report()["kinds"]["ticket"]

        assert 3 == r["transactions"]
        assert {"new": 1, "open": 1, "closed": 1} == r["by_state"]
        assert 3 == r["reached"]["new"]
        assert 2 == r["reached"]["open"]
        assert 0 == r["deviations"]
        t = {(x["from"], x["to"], x["event"]): x for x in r["transitions"]}
        assert 2 == t[("new", "open", "open")]["count"]
        assert 3600.0 == t[("new", "open", "open")]["median_seconds"]
        assert 7200.0 == t[("open", "closed", "close")]["median_seconds"]
        json.dumps(eng.report(), allow_nan=False)

    def test_empty(self, eng):
        """
        No transactions: no kinds in the report.
        """
        assert {"kinds": {}} == eng.report()


class TestClock:
    def test_clock_drives_default_times(self):
        """
        The injected clock gives the default time of create and fire.
        """
        c = Clock(utc(2030, 1, 1))
        with crmflow.Engine(clock=c) as e:
            e.register(ticket_workflow())
            e.create("ticket", "T-1")
            c.advance(seconds=90)
            e.fire("T-1", "open")

            assert utc(2030, 1, 1, 0, 1, 30) == e.get("T-1").updated_at
