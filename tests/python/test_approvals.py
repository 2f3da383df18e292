"""
Tests of crmflow.approvals: chains without an engine, decisions and
delegation through engine.approvals, persistence across a restart, and
the bands the engine opens for the bundled Olist orders.
"""

import csv
import decimal

import pytest

import crmflow
from crmflow import approvals as ap
from conftest import Clock, utc

D = decimal.Decimal

ORDER = {
    "name": "sales_order",
    "version": 1,
    "states": [
        {"name": "draft", "role": "initial"},
        {"name": "pending_approval"},
        {"name": "approved"},
        {"name": "shipped", "role": "terminal"},
        {"name": "cancelled", "role": "terminal"},
    ],
    "attributes": [
        {"name": "amount", "type": "decimal"},
        {"name": "tier", "type": "text"},
    ],
    "transitions": [
        {"event": "submit", "from": "draft", "to": "pending_approval"},
        {"event": "approve", "from": "pending_approval", "to": "approved"},
        {"event": "reject", "from": "pending_approval", "to": "draft"},
        {"event": "cancel", "from": "pending_approval", "to": "cancelled"},
        {"event": "ship", "from": "approved", "to": "shipped"},
    ],
}

MATRIX = ap.ApprovalMatrix(
    "sales_order",
    [
        ap.Band("small", "amount <= 1000"),
        ap.Band("medium", "amount <= 10000", [ap.Step("manager", ["mia"])]),
        ap.Band(
            "large",
            "true",
            [
                ap.Step("manager", ["mia"]),
                ap.Step("director", ["dan", "dora"], mode="first"),
            ],
        ),
    ],
)


def _engine(path=None):
    """
    Returns an engine with ORDER registered and MATRIX installed.
    """
    engine = crmflow.Engine(path, clock=Clock(utc(2026, 3, 2, 10, 0)))
    engine.register(ORDER)
    engine.approvals.set_matrix(MATRIX)
    return engine


def _submit(engine, txn_id, amount):
    engine.create("sales_order", txn_id, attributes={"amount": amount})
    engine.fire(txn_id, "submit", time=utc(2026, 3, 2, 10, 0))


class TestChain:
    def test_first_matching_band_wins(self):
        """
        Amounts on the thresholds fall in the lower band; the steps are
        the band's.
        """
        chains = {
            amount: MATRIX.chain({"amount": D(amount)})
            for amount in ["0", "1000.00", "1000.01", "10000", "10000.01"]
        }

        bands = {a: (c.band, len(c)) for a, c in chains.items()}
        assert {
            "0": ("small", 0),
            "1000.00": ("small", 0),
            "1000.01": ("medium", 1),
            "10000": ("medium", 1),
            "10000.01": ("large", 2),
        } == bands
        assert ("manager", "director") == tuple(
            s.name for s in chains["10000.01"].steps
        )
        assert "first" == chains["10000.01"].steps[1].mode

    def test_missing_value_and_declared_types(self):
        """
        A None amount compares false, so only the catch-all band matches;
        an int amount declared decimal reads as a number.
        """
        assert "large" == MATRIX.chain({"amount": None}).band
        assert "small" == MATRIX.chain(
            {"amount": 7}, types={"amount": "decimal"}
        ).band

    def test_no_band_matching_names_the_value(self):
        """
        Without a catch-all band an amount above every threshold matches
        nothing, and the error names the value read.
        """
        capped = ap.ApprovalMatrix("sales_order", MATRIX.bands[:2])

        with pytest.raises(crmflow.NotFoundError) as e:
            capped.chain({"amount": D("20000")})

        assert (
            'approval matrix "sales_order": no band matches (amount=20000)'
            == str(e.value)
        )

    def test_bad_steps_are_refused(self):
        """
        A str instead of a list of approvers and an unknown mode fail at
        once; a float amount is refused as money must be Decimal.
        """
        with pytest.raises(crmflow.InvalidArgumentError):
            ap.Step("manager", "mia")
        with pytest.raises(crmflow.InvalidArgumentError):
            ap.Step("manager", ["mia"], mode="majority")
        with pytest.raises(crmflow.InvalidArgumentError):
            MATRIX.chain({"amount": 12.5})
        with pytest.raises(crmflow.InvalidArgumentError):
            ap.Step("\ud800", ["mia"])
        with pytest.raises(crmflow.InvalidArgumentError):
            ap.Band("b", "true", ["manager"])


class TestMatrixValidation:
    def test_messages_name_what_is_wrong(self):
        """
        Unknown state, an event that does not leave the requesting state
        and a condition on an unknown attribute are refused with messages
        naming them.
        """
        engine = crmflow.Engine()
        engine.register(ORDER)
        bad_state = ap.ApprovalMatrix("sales_order", MATRIX.bands,
                                      request_state="waiting")
        bad_event = ap.ApprovalMatrix("sales_order", MATRIX.bands,
                                      reject_event="ship")
        typo = ap.ApprovalMatrix(
            "sales_order", [ap.Band("all", "amout > 0")]
        )

        with pytest.raises(crmflow.ValidationError) as e1:
            engine.approvals.set_matrix(bad_state)
        with pytest.raises(crmflow.ValidationError) as e2:
            engine.approvals.set_matrix(bad_event)
        with pytest.raises(crmflow.ParseError) as e3:
            engine.approvals.set_matrix(typo)
        with pytest.raises(crmflow.NotFoundError):
            engine.approvals.set_matrix(
                ap.ApprovalMatrix("invoice", MATRIX.bands)
            )

        assert str(e1.value).startswith(
            'approval matrix "sales_order": unknown request state "waiting"'
        )
        assert (
            'approval matrix "sales_order": reject event "ship" does not '
            'leave request state "pending_approval" (events leaving it: '
            "approve, reject, cancel)" == str(e2.value)
        )
        assert str(e3.value).startswith(
            'approval matrix "sales_order": band 1 ("all"): column 1: '
            'unknown name "amout"'
        )


class TestDecisions:
    def test_chain_of_two_steps(self):
        """
        A large order waits for the manager, then for the first director;
        the history names each decision's actor, step and comment.
        """
        engine = _engine()
        _submit(engine, "SO-1", D("25000.00"))

        first = engine.approvals.approve(
            "SO-1", "mia", time=utc(2026, 3, 2, 11, 0), comment="fine"
        )
        waiting = engine.get("SO-1").state
        second = engine.approvals.approve(
            "SO-1", "dora", time=utc(2026, 3, 2, 12, 0)
        )

        assert ("open", 1, "") == (
            first["status"], first["current_step"], first["fired_event"]
        )
        assert "pending_approval" == waiting
        assert ("approved", "approve", "approved") == (
            second["status"], second["fired_event"], second["state"]
        )
        assert "approved" == engine.get("SO-1").state
        decisions = engine.approvals.decisions("SO-1")
        assert [("mia", "manager", "fine"), ("dora", "director", "")] == list(
            zip(decisions["actor"], decisions["step_name"],
                decisions["comment"])
        )
        assert [utc(2026, 3, 2, 11), utc(2026, 3, 2, 12)] == [
            t.to_pydatetime() for t in decisions["time"]
        ]
        assert engine.approvals.open_requests().empty

    def test_small_order_is_approved_automatically(self):
        """
        An empty chain fires the approve event at once and marks the
        request automatic.
        """
        engine = _engine()

        _submit(engine, "SO-2", D("999.99"))

        assert "approved" == engine.get("SO-2").state
        requests = engine.approvals.requests("SO-2")
        assert [("small", "approved", True)] == list(
            zip(requests["band"], requests["status"], requests["automatic"])
        )

    def test_refusals(self):
        """
        Not an approver, a second vote and no open request each raise the
        fitting error naming transaction, step and actor.
        """
        engine = _engine()
        _submit(engine, "SO-3", D("5000"))
        engine.create("sales_order", "SO-4", attributes={"amount": D("1")})

        with pytest.raises(crmflow.NotAllowedError) as not_approver:
            engine.approvals.approve("SO-3", "eve")
        engine.approvals.reject("SO-3", "mia", comment="no budget")
        with pytest.raises(crmflow.NotFoundError) as closed:
            engine.approvals.approve("SO-3", "mia")
        with pytest.raises(crmflow.NotFoundError):
            engine.approvals.approve("SO-4", "mia")
        with pytest.raises(crmflow.InvalidArgumentError):
            engine.approvals.approve("SO-3", "\udcff")

        assert (
            'transaction "SO-3": step 1 ("manager"): actor "eve" is not an '
            "approver (approvers: mia)" == str(not_approver.value)
        )
        assert (
            'transaction "SO-3" in state "draft": no open approval request'
            == str(closed.value)
        )
        assert "draft" == engine.get("SO-3").state

    def test_second_vote_in_unanimous_step(self):
        """
        In a unanimous step every approver must approve, once each.
        """
        engine = crmflow.Engine(clock=Clock(utc(2026, 3, 2, 10, 0)))
        engine.register(ORDER)
        engine.approvals.set_matrix(ap.ApprovalMatrix("sales_order", [
            ap.Band("all", "true", [ap.Step("board", ["ann", "bob"])]),
        ]))
        _submit(engine, "SO-5", D("5"))

        engine.approvals.approve("SO-5", "ann")
        with pytest.raises(crmflow.AlreadyExistsError):
            engine.approvals.approve("SO-5", "ann")
        state_between = engine.get("SO-5").state
        engine.approvals.approve("SO-5", "bob")

        assert "pending_approval" == state_between
        assert "approved" == engine.get("SO-5").state

    @pytest.mark.parametrize("on_file", [False, True])
    def test_failed_fire_keeps_nothing(self, on_file, db_path):
        """
        A hook of the approved state that raises makes approve raise the
        same exception; the decision is not kept and the order waits, on
        the memory store and on a file.
        """
        engine = _engine(db_path if on_file else None)
        _submit(engine, "SO-6", D("5000"))

        class ErpDown(Exception):
            pass

        def hook(ctx):
            raise ErpDown("erp down")

        engine.on_enter("sales_order", "approved", hook)

        with pytest.raises(ErpDown):
            engine.approvals.approve("SO-6", "mia")

        assert "pending_approval" == engine.get("SO-6").state
        assert engine.approvals.decisions("SO-6").empty
        assert [0] == list(engine.approvals.open_requests()["current_step"])

    def test_no_band_refuses_the_submit(self):
        """
        A submit whose attributes match no band raises NotAllowedError
        from engine.fire and leaves the order in draft with no request.
        """
        engine = crmflow.Engine()
        engine.register(ORDER)
        engine.approvals.set_matrix(
            ap.ApprovalMatrix("sales_order", MATRIX.bands[:2])
        )
        engine.create("sales_order", "SO-9", attributes={"amount": D("2E4")})

        with pytest.raises(crmflow.NotAllowedError) as e:
            engine.fire("SO-9", "submit")

        assert (
            'transaction "SO-9": entering "pending_approval": approval '
            'matrix "sales_order": no band matches (amount=20000)'
            == str(e.value)
        )
        assert "draft" == engine.get("SO-9").state
        assert engine.approvals.requests().empty

    def test_one_approvals_per_engine(self):
        """
        A second Approvals object on the same engine is refused, since it
        would open every request twice.
        """
        engine = _engine()

        with pytest.raises(crmflow.InvalidArgumentError):
            ap.Approvals(engine)

        assert engine.approvals is engine.approvals

    def test_engine_with_approvals_is_freed(self):
        """
        An engine whose approvals were used is freed once dropped (the
        approvals object refers to it weakly); its approvals then refuse
        use.
        """
        import gc
        import weakref

        engine = _engine()
        _submit(engine, "SO-1", D("5000"))
        approvals = engine.approvals
        ref = weakref.ref(engine)

        del engine
        gc.collect()

        assert ref() is None
        with pytest.raises(crmflow.InvalidArgumentError):
            approvals.open_requests()

    def test_delegation(self):
        """
        A substitute decides for the approver inside the window only, and
        is recorded on the approver's behalf; overlapping windows are
        refused.
        """
        engine = _engine()
        _submit(engine, "SO-7", D("5000"))
        engine.approvals.delegate(
            "mia", "sam", utc(2026, 3, 3), utc(2026, 3, 5)
        )

        with pytest.raises(crmflow.AlreadyExistsError):
            engine.approvals.delegate(
                "mia", "tom", utc(2026, 3, 4), utc(2026, 3, 6)
            )
        with pytest.raises(crmflow.InvalidArgumentError):
            engine.approvals.delegate(
                "mia", "mia", utc(2026, 3, 7), utc(2026, 3, 8)
            )
        with pytest.raises(crmflow.NotAllowedError):
            engine.approvals.approve("SO-7", "sam",
                                     time=utc(2026, 3, 2, 12))
        pending = engine.approvals.pending("sam", at=utc(2026, 3, 4))
        result = engine.approvals.approve("SO-7", "sam",
                                          time=utc(2026, 3, 4))

        assert [("SO-7", "mia")] == list(
            zip(pending["transaction_id"], pending["on_behalf_of"])
        )
        assert "mia" == result["on_behalf_of"]
        row = engine.approvals.decisions("SO-7").iloc[0]
        assert ("sam", "mia") == (row["actor"], row["on_behalf_of"])
        assert 1 == len(engine.approvals.delegations("mia"))

    def test_team_step(self):
        """
        A team step accepts the team's available members only.
        """
        engine = crmflow.Engine(clock=Clock(utc(2026, 3, 2, 10, 0)))
        engine.register(ORDER)
        router = crmflow.Router(engine)
        router.add_team(crmflow.Team("finance", [
            crmflow.Member("fay"),
            crmflow.Member("hal", available=False),
        ]))
        engine.approvals.set_router(router)
        engine.approvals.set_matrix(ap.ApprovalMatrix("sales_order", [
            ap.Band("all", "true", [ap.Step("finance", team="finance")]),
        ]))
        _submit(engine, "SO-8", D("5"))

        with pytest.raises(crmflow.NotAllowedError):
            engine.approvals.approve("SO-8", "hal")
        engine.approvals.approve("SO-8", "fay")

        assert "approved" == engine.get("SO-8").state


class TestPersistence:
    def test_restart_sees_open_request(self, db_path):
        """
        Closing and reopening the file keeps the open request with its
        chain; it can be decided without setting the matrix again, and a
        rejected request stays in the history when the order is
        resubmitted.
        """
        engine = _engine(db_path)
        _submit(engine, "SO-1", D("25000"))
        engine.approvals.approve("SO-1", "mia")
        engine.close()

        engine = crmflow.Engine(db_path, clock=Clock(utc(2026, 3, 2, 10, 0)))
        open_ = engine.approvals.open_requests()
        assert [("SO-1", 1, "director")] == list(
            zip(open_["transaction_id"], open_["current_step"],
                open_["step_name"])
        )
        engine.approvals.reject("SO-1", "dan", comment="too big")
        assert "draft" == engine.get("SO-1").state
        engine.approvals.set_matrix(MATRIX)
        engine.fire("SO-1", "submit")
        engine.close()

        engine = crmflow.Engine(db_path)
        requests = engine.approvals.requests("SO-1")
        assert ["rejected", "open"] == list(requests["status"])
        assert [2, 1] == [
            len(engine.approvals.decisions("SO-1")),
            len(engine.approvals.open_requests()),
        ]
        engine.close()


class TestStoredMatrices:
    def _reopen(self, db_path):
        return crmflow.Engine(db_path, clock=Clock(utc(2026, 3, 2, 10, 0)))

    def test_matrix_survives_restart(self, db_path):
        """
        A matrix set once is read back from the file by a new engine,
        which opens requests with its chains without set_matrix.
        """
        _engine(db_path).close()
        engine = self._reopen(db_path)
        got = engine.approvals.matrix("sales_order")
        assert (
            ["small", "medium", "large"],
            ["amount <= 1000", "amount <= 10000", "true"],
            [[], [("manager", ("mia",), "unanimous")],
             [("manager", ("mia",), "unanimous"),
              ("director", ("dan", "dora"), "first")]],
        ) == (
            [b.name for b in got.bands],
            [b.condition for b in got.bands],
            [[(s.name, tuple(s.approvers), s.mode) for s in b.steps]
             for b in got.bands],
        )
        assert ["sales_order"] == [m.kind for m in engine.approvals.matrices()]
        _submit(engine, "SO-1", D("5000"))
        open_ = engine.approvals.open_requests()
        assert [("SO-1", "medium")] == list(
            zip(open_["transaction_id"], open_["band"]))
        engine.approvals.approve("SO-1", "mia")
        assert "approved" == engine.get("SO-1").state
        engine.close()

    def test_automatic_approval_recorded_after_restart(self, db_path):
        """
        After close and reopen, a small order entering pending_approval is
        approved at once and recorded as an automatic request, exactly as
        before the restart.
        """
        engine = _engine(db_path)
        _submit(engine, "SO-1", D("500"))
        engine.close()
        engine = self._reopen(db_path)
        _submit(engine, "SO-2", D("999.99"))
        rows = engine.approvals.requests()
        engine_states = [engine.get(t).state for t in ("SO-1", "SO-2")]
        engine.close()
        assert ["approved", "approved"] == engine_states
        assert [
            ("SO-1", "small", "approved", True, "approve"),
            ("SO-2", "small", "approved", True, "approve"),
        ] == list(zip(rows["transaction_id"], rows["band"],
                      rows["status"], rows["automatic"],
                      rows["outcome_event"]))

    def test_replace_and_remove(self, db_path):
        """
        A replaced matrix is what the next process reads; a removed one
        is gone with its automatic rule, in this process and the next.
        """
        engine = _engine(db_path)
        engine.approvals.set_matrix(ap.ApprovalMatrix("sales_order", [
            ap.Band("tiny", "amount <= 100"),
            ap.Band("rest", "true", [ap.Step("boss", ["bo"])]),
        ]))
        engine.close()
        engine = self._reopen(db_path)
        _submit(engine, "SO-1", D("500"))
        assert [("SO-1", "rest", "boss")] == list(zip(
            engine.approvals.open_requests()["transaction_id"],
            engine.approvals.open_requests()["band"],
            engine.approvals.open_requests()["step_name"]))
        engine.approvals.remove_matrix("sales_order")
        assert [] == engine.approvals.matrices()
        assert [] == [r["name"] for r in engine.rules()
                      if r["name"].startswith("approvals:")]
        with pytest.raises(crmflow.NotFoundError) as e:
            engine.approvals.remove_matrix("sales_order")
        assert '"sales_order"' in str(e.value)
        engine.close()
        engine = self._reopen(db_path)
        _submit(engine, "SO-2", D("50"))
        state = engine.get("SO-2").state
        requests = list(engine.approvals.requests()["transaction_id"])
        engine.close()
        assert "pending_approval" == state  # nothing approves it any more
        assert ["SO-1"] == requests  # the old request stays in the history

    def test_matrix_broken_by_new_workflow_version(self, db_path):
        """
        A stored matrix whose condition no longer type-checks after the
        workflow changed is reported (kind, band, problem) and guards its
        state: entering it is refused rather than let through unapproved.
        """
        _engine(db_path).close()
        v2 = dict(ORDER, version=2, attributes=[
            {"name": "total", "type": "decimal"},
            {"name": "tier", "type": "text"},
        ])
        engine = self._reopen(db_path)
        engine.register(v2)
        engine.close()
        engine = self._reopen(db_path)
        problems = engine.approvals.problems()
        assert 1 == len(problems)
        assert problems[0].startswith(
            'approval matrix "sales_order": band 1 ("small")')
        assert '"amount"' in problems[0]
        assert problems[0] in engine.validate_rules()
        engine.create("sales_order", "SO-9", attributes={"total": D("5")})
        with pytest.raises(crmflow.ValidationError) as e:
            engine.fire("SO-9", "submit")
        assert '"SO-9"' in str(e.value) and "band 1" in str(e.value)
        assert "draft" == engine.get("SO-9").state
        engine.approvals.set_matrix(ap.ApprovalMatrix("sales_order", [
            ap.Band("all", "total > 0", [ap.Step("manager", ["mia"])]),
        ]))
        assert [] == engine.approvals.problems()
        engine.fire("SO-9", "submit")
        assert 1 == len(engine.approvals.open_requests())
        engine.close()


    def test_unreadable_stored_row_still_guards(self, db_path):
        """
        A stored step with a mode edited by hand to nonsense does not stop
        the file from opening: the problem names kind, band and step,
        entering the state is refused, and the matrix can be removed.
        """
        import sqlite3

        _engine(db_path).close()
        con = sqlite3.connect(db_path)
        with con:
            con.execute("UPDATE approval_matrix_steps SET mode = 'often' "
                        "WHERE band = 1")
        con.close()
        engine = self._reopen(db_path)
        assert [
            'approval matrix "sales_order": band 2 ("medium"): step '
            '"manager": unknown approval mode "often" (expected unanimous '
            'or first)'
        ] == engine.approvals.problems()
        engine.create("sales_order", "SO-1", attributes={"amount": D("5")})
        with pytest.raises(crmflow.ValidationError):
            engine.fire("SO-1", "submit")
        engine.approvals.remove_matrix("sales_order")
        assert [] == engine.approvals.problems()
        engine.close()


CREATED_PENDING = dict(
    ORDER,
    name="quick_order",
    states=[
        {"name": "pending_approval", "role": "initial"},
        {"name": "draft"},
        {"name": "approved"},
        {"name": "shipped", "role": "terminal"},
        {"name": "cancelled", "role": "terminal"},
    ],
)


class TestCreateIntoRequestState:
    @pytest.mark.parametrize("use_file", [False, True])
    def test_create_opens_request(self, db_path, use_file):
        """
        A transaction created straight into the requesting state opens a
        request; an empty chain approves it at once, recorded automatic,
        also after a restart on a file.
        """
        path = db_path if use_file else None
        engine = crmflow.Engine(path, clock=Clock(utc(2026, 3, 2, 10, 0)))
        engine.register(CREATED_PENDING)
        engine.approvals.set_matrix(ap.ApprovalMatrix("quick_order", [
            ap.Band("small", "amount <= 1000"),
            ap.Band("big", "true", [ap.Step("manager", ["mia"])]),
        ]))
        engine.create("quick_order", "Q-1", attributes={"amount": D("5000")})
        engine.create("quick_order", "Q-2", attributes={"amount": D("10")})
        if use_file:
            engine.close()
            engine = crmflow.Engine(path, clock=Clock(utc(2026, 3, 2, 10, 0)))
            engine.create("quick_order", "Q-3",
                          attributes={"amount": D("20")})
        states = {t: engine.get(t).state
                  for t in ("Q-1", "Q-2") + (("Q-3",) if use_file else ())}
        rows = engine.approvals.requests()
        got = list(zip(rows["transaction_id"], rows["band"],
                       rows["status"], rows["automatic"]))
        engine.approvals.approve("Q-1", "mia")
        final = engine.get("Q-1").state
        engine.close()
        expected = [("Q-1", "big", "open", False),
                    ("Q-2", "small", "approved", True)]
        if use_file:
            expected.append(("Q-3", "small", "approved", True))
        assert expected == got
        assert "pending_approval" == states["Q-1"]
        assert all(states[t] == "approved" for t in states if t != "Q-1")
        assert "approved" == final

    def test_rolled_back_create_leaves_no_request(self):
        """
        On the memory store, a create that fails after the entry hook ran
        (a later hook raises) leaves no request behind.
        """
        engine = crmflow.Engine(clock=Clock(utc(2026, 3, 2, 10, 0)))
        engine.register(CREATED_PENDING)
        engine.approvals.set_matrix(ap.ApprovalMatrix("quick_order", [
            ap.Band("big", "true", [ap.Step("manager", ["mia"])]),
        ]))

        class Boom(Exception):
            pass

        def boom(ctx):
            raise Boom()

        engine.on_enter("quick_order", "pending_approval", boom)
        with pytest.raises(Boom):
            engine.create("quick_order", "Q-1",
                          attributes={"amount": D("5")})
        assert engine.approvals.requests().empty
        engine.close()


class TestOrm:
    def test_rows_read_back_typed(self, db_path):
        """
        A request, its chain and its decisions read back through the ORM
        models with aware UTC datetimes and their transaction.
        """
        from sqlalchemy import orm as sa_orm

        from crmflow import orm

        engine = _engine(db_path)
        _submit(engine, "SO-1", D("25000"))
        engine.approvals.approve("SO-1", "mia", time=utc(2026, 3, 2, 11))
        with sa_orm.Session(engine.sqlalchemy_engine()) as s:
            request = s.get(orm.ApprovalRequest, 1)
            got = (
                request.transaction.id, request.band_name, request.status,
                request.current_step, request.opened_at,
                [(c.name, c.mode, c.approvers) for c in request.chain],
                [(d.actor, d.step_name, d.time) for d in request.decisions],
                request.automatic,
            )
        engine.close()

        assert (
            "SO-1", "large", "open", 1, utc(2026, 3, 2, 10),
            [("manager", "unanimous", "mia"),
             ("director", "first", "dan\ndora")],
            [("mia", "manager", utc(2026, 3, 2, 11))],
            False,
        ) == got


class TestCli:
    def test_list_approve_reject(self, db_path, capsys):
        """
        The approvals command lists open requests and an actor's steps,
        and records decisions on a file whose matrix is not set in that
        process.
        """
        from crmflow import cli

        engine = _engine(db_path)
        _submit(engine, "SO-1", D("25000"))
        _submit(engine, "SO-2", D("5000"))
        engine.close()

        codes = [
            cli.main(["approvals", "list", "--db", db_path]),
            cli.main(["approvals", "approve", "--db", db_path, "SO-1",
                      "--actor", "mia", "--comment", "ok"]),
            cli.main(["approvals", "list", "--db", db_path,
                      "--actor", "dan"]),
            cli.main(["approvals", "reject", "--db", db_path, "SO-2",
                      "--actor", "mia"]),
            cli.main(["approvals", "approve", "--db", db_path, "SO-1",
                      "--actor", "eve"]),
        ]
        out, err = capsys.readouterr()

        assert [0, 0, 0, 0, 1] == codes
        assert [
            "SO-1: large, step 1 of 2 manager",
            "SO-2: medium, step 1 of 1 manager",
            "SO-1: approved by mia; request open; state pending_approval",
            "SO-1: step 2 director (first)",
            "SO-2: rejected by mia; request rejected, fired reject; "
            "state draft",
        ] == out.splitlines()
        assert (
            'crmflow: error: transaction "SO-1": step 2 ("director"): '
            'actor "eve" is not an approver (approvers: dan, dora)\n'
            == err
        )


    def test_set_list_remove_matrix(self, db_path, tmp_path, capsys):
        """
        set-matrix stores a matrix from JSON that a later process (here
        the engine) uses; matrices lists it; remove-matrix drops it; a
        file with an unknown key is refused naming file, band and key.
        """
        import json

        from crmflow import cli

        engine = crmflow.Engine(db_path)
        engine.register(ORDER)
        engine.close()
        good = tmp_path / "m.json"
        good.write_text(json.dumps({
            "kind": "sales_order",
            "bands": [
                {"name": "small", "condition": "amount <= 1000"},
                {"name": "big", "condition": "true", "steps": [
                    {"name": "manager", "approvers": ["mia"]},
                    {"name": "director", "approvers": ["dan", "dora"],
                     "mode": "first"}]},
            ],
        }), encoding="utf-8")
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps({
            "kind": "sales_order",
            "bands": [{"name": "x", "condition": "true",
                       "steps": [{"name": "m", "who": "mia"}]}],
        }), encoding="utf-8")
        codes = [
            cli.main(["approvals", "set-matrix", "--db", db_path, str(good)]),
            cli.main(["approvals", "matrices", "--db", db_path]),
        ]
        engine = crmflow.Engine(db_path, clock=Clock(utc(2026, 3, 2, 10, 0)))
        _submit(engine, "SO-1", D("5000"))
        band = list(engine.approvals.open_requests()["band"])
        engine.close()
        codes += [
            cli.main(["approvals", "set-matrix", "--db", db_path, str(bad)]),
            cli.main(["approvals", "remove-matrix", "--db", db_path,
                      "sales_order"]),
            cli.main(["approvals", "matrices", "--db", db_path]),
        ]
        out, err = capsys.readouterr()
        assert ["big"] == band
        assert [0, 0, 1, 0, 0] == codes
        assert [
            "approval matrix sales_order: set (2 bands)",
            "sales_order: pending_approval -> approve / reject",
            "  small when amount <= 1000: automatic",
            "  big when true: manager (unanimous: mia), "
            "director (first: dan dora)",
            "approval matrix sales_order: removed",
        ] == out.splitlines()
        assert str(bad) + ": band 1: step 1: unknown key 'who'" in err


def _olist_amounts(bundled, shared_data):
    """
    Returns {order_id: total payment_value} for the bundled sample orders
    that have payments, summed with Decimal by plain csv code.
    """
    with open(bundled / "olist_orders_sample.csv", newline="",
              encoding="utf-8") as f:
        ids = {row["order_id"] for row in csv.DictReader(f)}
    payments = (
        shared_data / "olist_ecommerce_2016_2017"
        / "olist_order_payments_dataset.csv"
    )
    totals = {}
    with open(payments, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["order_id"] in ids:
                totals[row["order_id"]] = totals.get(
                    row["order_id"], D("0")
                ) + D(row["payment_value"])
    return totals


class TestOlist:
    def test_engine_opens_the_bands_pandas_counts(self, bundled,
                                                  shared_data):
        """
        The bundled orders with their payment totals as amounts: the
        engine opens as many requests per band as pandas counts with
        thresholds 1,000 and 10,000, approves the small ones at once and
        leaves the others open.
        """
        import pandas as pd

        totals = _olist_amounts(bundled, shared_data)
        frame = pd.DataFrame(
            {"order_id": list(totals), "amount": list(totals.values())}
        )
        expected = {
            "small": int((frame["amount"] <= D("1000")).sum()),
            "medium": int(
                ((frame["amount"] > D("1000"))
                 & (frame["amount"] <= D("10000"))).sum()
            ),
            "large": int((frame["amount"] > D("10000")).sum()),
        }
        engine = _engine()

        for order_id, amount in totals.items():
            _submit(engine, order_id, amount)

        requests = engine.approvals.requests()
        opened = requests.groupby("band").size().to_dict()
        assert expected == {b: opened.get(b, 0) for b in expected}
        assert len(totals) == len(requests)
        assert expected["small"] > 0 and expected["medium"] > 0
        assert expected["medium"] + expected["large"] == len(
            engine.approvals.open_requests()
        )
        states = engine.transactions("sales_order")["state"]
        assert expected["small"] == int((states == "approved").sum())
        assert expected["medium"] == len(engine.approvals.pending("mia")) - \
            expected["large"]


def _board_engine(path=None):
    """
    Returns an engine whose only band asks a unanimous board of ann and
    bob, with bob's votes delegated to ann for March 2026.
    """
    engine = crmflow.Engine(path, clock=Clock(utc(2026, 3, 2, 10, 0)))
    engine.register(ORDER)
    engine.approvals.set_matrix(ap.ApprovalMatrix("sales_order", [
        ap.Band("all", "true", [ap.Step("board", ["ann", "bob"])]),
    ]))
    engine.approvals.delegate("bob", "ann", utc(2026, 3, 1), utc(2026, 4, 1))
    return engine


class TestOneVotePerPerson:
    def test_approver_cannot_also_vote_for_the_approver_it_stands_for(self):
        """
        ann, an approver who is also bob's substitute, votes once in her
        own name; a second vote for bob would complete the unanimous step
        alone and is refused naming transaction, step, actor and the
        approver; bob's own vote completes it.
        """
        engine = _board_engine()
        _submit(engine, "SO-1", D("5"))

        engine.approvals.approve("SO-1", "ann", time=utc(2026, 3, 2, 11))
        with pytest.raises(crmflow.NotAllowedError) as again:
            engine.approvals.approve("SO-1", "ann", time=utc(2026, 3, 2, 12))
        with pytest.raises(crmflow.NotAllowedError) as named:
            engine.approvals.approve("SO-1", "ann", on_behalf_of="bob",
                                     time=utc(2026, 3, 2, 12))
        pending = engine.approvals.pending("ann", at=utc(2026, 3, 2, 12))
        state_between = engine.get("SO-1").state
        engine.approvals.approve("SO-1", "bob", time=utc(2026, 3, 2, 13))

        assert (
            'transaction "SO-1": step 1 ("board"): actor "ann" already '
            "voted in their own name (decision 1), so cannot also vote on "
            'behalf of "bob" (one vote per person per step)'
            == str(again.value) == str(named.value)
        )
        assert "pending_approval" == state_between
        assert pending.empty
        assert "approved" == engine.get("SO-1").state
        decisions = engine.approvals.decisions("SO-1")
        assert [("ann", ""), ("bob", "")] == list(
            zip(decisions["actor"], decisions["on_behalf_of"])
        )

    def test_substitute_cannot_then_vote_in_its_own_name(self):
        """
        The other order: ann first votes for bob, then her own vote is
        refused; the step still waits for ann's own vote, cast by nobody
        else.
        """
        engine = _board_engine()
        _submit(engine, "SO-2", D("5"))

        first = engine.approvals.approve("SO-2", "ann", on_behalf_of="bob",
                                         time=utc(2026, 3, 2, 11))
        with pytest.raises(crmflow.NotAllowedError) as e:
            engine.approvals.approve("SO-2", "ann", time=utc(2026, 3, 2, 12))

        assert "bob" == first["on_behalf_of"]
        assert (
            'transaction "SO-2": step 1 ("board"): actor "ann" already '
            'voted on behalf of "bob" (decision 1), so cannot also vote in '
            "their own name (one vote per person per step)" == str(e.value)
        )
        assert "pending_approval" == engine.get("SO-2").state
        assert 1 == len(engine.approvals.decisions("SO-2"))


class TestDelegationIds:
    @pytest.mark.parametrize("on_file", [False, True])
    def test_removed_id_is_not_given_again(self, on_file, db_path):
        """
        Removing the newest delegation and adding another gives a new id
        (3), not the removed one (2).
        """
        engine = _engine(db_path if on_file else None)
        a = engine.approvals.delegate("mia", "sam", utc(2026, 3, 3),
                                      utc(2026, 3, 5))
        b = engine.approvals.delegate("dan", "sam", utc(2026, 3, 3),
                                      utc(2026, 3, 5))
        engine.approvals.remove_delegation(b)
        c = engine.approvals.delegate("dora", "sam", utc(2026, 3, 3),
                                      utc(2026, 3, 5))

        assert (1, 2, 3) == (a, b, c)
        assert [1, 3] == list(engine.approvals.delegations()["id"])

    def test_file_of_the_previous_release_is_migrated(self, db_path):
        """
        A file whose approval tables were made by the previous release
        (delegations without AUTOINCREMENT, ids 1 and 3 after a removal)
        opens with its rows and ids, and ids go on from 4 without reuse.
        """
        import sqlite3

        engine = crmflow.Engine(db_path, clock=Clock(utc(2026, 3, 2, 10)))
        engine.register(ORDER)
        engine.close()
        with sqlite3.connect(db_path) as db:
            db.executescript(
                "CREATE TABLE approval_delegations(id INTEGER PRIMARY KEY, "
                "actor TEXT, substitute TEXT, starts_at TEXT, ends_at TEXT, "
                "created_at TEXT);"
                "CREATE INDEX approval_delegations_by_substitute ON "
                "approval_delegations(substitute);"
                "INSERT INTO approval_delegations VALUES "
                "(1, 'mia', 'sam', '2026-03-03T00:00:00.000000Z', "
                "'2026-03-05T00:00:00.000000Z', "
                "'2026-03-01T00:00:00.000000Z'),"
                "(3, 'dan', 'sam', '2026-03-03T00:00:00.000000Z', "
                "'2026-03-05T00:00:00.000000Z', "
                "'2026-03-01T00:00:00.000000Z');"
            )
        db.close()

        engine = _engine(db_path)
        before = engine.approvals.delegations()
        d = engine.approvals.delegate("dora", "sam", utc(2026, 3, 3),
                                      utc(2026, 3, 5))
        engine.approvals.remove_delegation(d)
        e = engine.approvals.delegate("dora", "tom", utc(2026, 3, 3),
                                      utc(2026, 3, 5))
        _submit(engine, "SO-1", D("5000"))
        by_sam = engine.approvals.approve("SO-1", "sam",
                                          time=utc(2026, 3, 4))
        engine.close()
        with sqlite3.connect(db_path) as db:
            sql = db.execute(
                "SELECT sql FROM sqlite_master WHERE name = "
                "'approval_delegations'").fetchone()[0]
            indexes = [r[0] for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND "
                "tbl_name = 'approval_delegations'")]
        db.close()

        assert [(1, "mia", "sam"), (3, "dan", "sam")] == list(
            zip(before["id"], before["actor"], before["substitute"])
        )
        assert [utc(2026, 3, 3)] * 2 == [
            t.to_pydatetime() for t in before["starts_at"]
        ]
        assert (4, 5) == (d, e)
        assert "mia" == by_sam["on_behalf_of"]
        assert "AUTOINCREMENT" in sql.upper()
        assert ["approval_delegations_by_substitute"] == indexes


class TestRefusedMatrices:
    def test_blank_approver_is_refused(self):
        """
        An approver that is blank after trimming could never decide: the
        step refuses it, and so does the core given the raw matrix.
        """
        engine = _engine()
        raw = MATRIX.to_dict()
        raw["bands"][1]["steps"][0]["approvers"] = ["mia", "  "]

        with pytest.raises(crmflow.InvalidArgumentError) as step:
            ap.Step("manager", ["mia", " \t"])
        with pytest.raises(crmflow.InvalidArgumentError) as core:
            engine.approvals._core.set_matrix(raw)

        assert (
            "step 'manager': approver 2 is blank (expected an actor id)"
            == str(step.value)
        )
        assert (
            'approval matrix "sales_order": band 2 ("medium"): step 1 '
            '("manager"): bad approver "  " (expected UTF-8 text, not '
            "blank, without line breaks)" == str(core.value)
        )
        assert (
            MATRIX.to_dict()
            == engine.approvals.matrix("sales_order").to_dict()
        )

    @pytest.mark.parametrize("padded", [" mia", "mia ", "\tmia"])
    def test_approver_with_spaces_around_is_refused(self, padded):
        """
        Actors are matched exactly, so " mia" could never decide: refused
        by the step, by the core, and as a delegate.
        """
        engine = _engine()
        raw = MATRIX.to_dict()
        raw["bands"][1]["steps"][0]["approvers"] = [padded]

        with pytest.raises(crmflow.InvalidArgumentError) as step:
            ap.Step("manager", [padded])
        with pytest.raises(crmflow.InvalidArgumentError) as core:
            engine.approvals._core.set_matrix(raw)

        assert "has spaces around it" in str(step.value)
        assert "expected an id without spaces around it" in str(core.value)
        assert (
            MATRIX.to_dict()
            == engine.approvals.matrix("sales_order").to_dict()
        )

    @pytest.mark.parametrize("condition", [None, "missing", "", "   "])
    def test_band_without_condition_is_refused(self, condition):
        """
        A band whose condition is null, missing or blank would catch every
        transaction (an automatic one approving all of them): refused
        naming the band, by the core and by from_dict; the old matrix
        stays.
        """
        engine = _engine()
        raw = MATRIX.to_dict()
        if condition == "missing":
            del raw["bands"][0]["condition"]
        else:
            raw["bands"][0]["condition"] = condition

        with pytest.raises(crmflow.InvalidArgumentError) as core:
            engine.approvals._core.set_matrix(raw)
        with pytest.raises(crmflow.InvalidArgumentError) as data:
            ap.ApprovalMatrix.from_dict(raw, "m.json")
        _submit(engine, "SO-1", D("5000"))

        if condition in (None, "missing"):
            assert (
                'approval matrix "sales_order": band 1 ("small"): missing '
                'condition (expected an expression, e.g. "amount <= 1000", '
                'or "true" for a band that matches everything)'
                == str(core.value)
            )
        else:
            assert (
                'approval matrix "sales_order": band 1 ("small"): no '
                'condition (expected an expression, e.g. "amount <= 1000", '
                'or "true" for a band that matches everything)'
                == str(core.value)
            )
        assert {
            None: "m.json: band 1 ('small'): condition must be a str (got "
                  'None; "true" matches everything)',
            "missing": "m.json: band 1: missing key 'condition' (expected "
                       "name, condition, steps)",
            "": "band 'small': blank condition (expected an expression, or "
                '"true" for a band that matches everything)',
            "   ": "band 'small': blank condition (expected an expression, "
                   'or "true" for a band that matches everything)',
        }[condition] == str(data.value)
        assert "pending_approval" == engine.get("SO-1").state


class TestDecisionTimes:
    def test_decision_before_the_request_is_refused(self):
        """
        The order entered pending_approval at 10:00; a decision dated 09:59
        is refused naming the transaction and both times; 10:00 itself is
        accepted.
        """
        engine = _engine()
        _submit(engine, "SO-1", D("5000"))

        with pytest.raises(crmflow.InvalidArgumentError) as e:
            engine.approvals.approve("SO-1", "mia",
                                     time=utc(2026, 3, 2, 9, 59))
        kept = engine.approvals.decisions("SO-1").empty
        engine.approvals.approve("SO-1", "mia", time=utc(2026, 3, 2, 10))

        assert (
            'transaction "SO-1": approve: decision time '
            "2026-03-02T09:59:00.000000Z is before approval request 1 was "
            "opened at 2026-03-02T10:00:00.000000Z (when the transaction "
            "entered the requesting state)" == str(e.value)
        )
        assert kept
        assert "approved" == engine.get("SO-1").state

    def test_decision_after_year_9999_is_refused(self):
        """
        A time past 9999-12-31 (given as microseconds, as datetime cannot)
        is refused before anything is written (here by the binding; the
        core refuses it too, see approvals_test.cc); the decisions stay
        readable.
        """
        engine = _engine()
        _submit(engine, "SO-1", D("5000"))
        year_10000 = 253402300800000000  # 10000-01-01T00:00:00Z

        with pytest.raises(crmflow.InvalidArgumentError) as e:
            engine.approvals.reject("SO-1", "mia", time=year_10000)

        assert (
            "time: integer time out of range (expected microseconds "
            "between 0001-01-01 and 9999-12-31)" == str(e.value)
        )
        assert engine.approvals.decisions("SO-1").empty
        assert "pending_approval" == engine.get("SO-1").state


class TestChainAmounts:
    def test_floats_refused_ints_exact(self):
        """
        A float amount is refused naming the attribute (money is never a
        binary float); an int is exact: 1000 is in the band of
        Decimal("1000"), 1001 in the next.
        """
        with pytest.raises(crmflow.InvalidArgumentError) as e:
            MATRIX.chain({"amount": 1000.0})
        with pytest.raises(crmflow.InvalidArgumentError):
            MATRIX.chain({"amount": 0.5}, types={"amount": "decimal"})

        assert (
            'attribute "amount": binary floats are refused (use '
            "decimal.Decimal or int)" == str(e.value)
        )
        assert ("small", "medium", "medium") == tuple(
            MATRIX.chain({"amount": a}, types={"amount": "decimal"}).band
            for a in (1000, 1001, 10000)
        )


_RACE_CHILD = r"""
import json, sys
import crmflow
engine = crmflow.Engine(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()  # the other process holds the lock now
try:
    engine.approvals.approve("SO-1", "dora")
    print(json.dumps(["ok", ""]))
except crmflow.Error as e:
    print(json.dumps([type(e).__name__, str(e)]))
"""


class TestRace:
    def test_loser_reports_the_state_after_the_winner(self, db_path):
        """
        Two processes approve the same first-response step: this one holds
        the write lock with dan's approval while the other starts dora's;
        after the commit the loser's error names the state as it is
        (approved), not as it read it before waiting for the lock.  (The
        pause only lets the child reach the lock; were it slower, the test
        would pass without proving anything, never fail wrongly.)
        """
        import json
        import subprocess
        import sys
        import time

        from test_stress import child_env

        engine = crmflow.Engine(db_path, clock=Clock(utc(2026, 3, 2, 10)))
        engine.register(ORDER)
        engine.approvals.set_matrix(ap.ApprovalMatrix("sales_order", [
            ap.Band("all", "true",
                    [ap.Step("director", ["dan", "dora"], mode="first")]),
        ]))
        _submit(engine, "SO-1", D("5"))

        # The child opens its engine first (opening writes, which would
        # wait for the lock held below).
        child = subprocess.Popen(
            [sys.executable, "-c", _RACE_CHILD, db_path],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=child_env())
        ready = child.stdout.readline()
        with engine.transaction():
            engine.approvals.approve("SO-1", "dan")
            child.stdin.write("go\n")
            child.stdin.flush()
            time.sleep(1.0)
        stdout, stderr = child.communicate(timeout=120)

        assert "ready\n" == ready, stderr
        assert 0 == child.returncode, stderr
        assert [
            "NotFoundError",
            'transaction "SO-1" in state "approved": no open approval '
            "request",
        ] == json.loads(stdout)
        assert ["dan"] == list(engine.approvals.decisions("SO-1")["actor"])
