"""
Tests of crmflow.orm: models in step with the live schema, SQLAlchemy and
the engine on one file in both directions, types, the triggers that refuse
direct state writes and history edits, and the migration from schema 1.
"""

import datetime
import decimal
import sqlite3

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

import crmflow
from crmflow import orm, routing

from conftest import utc


@pytest.fixture
def crm(db_path, clock, ticket):
    """
    A file-backed engine with the ticket workflow and one ticket T-1 of
    customer C-1 (amount 12.30).
    """
    with crmflow.Engine(db_path, clock=clock) as e:
        e.register(ticket)
        e.create(
            "ticket",
            "T-1",
            customer="C-1",
            attributes={"amount": decimal.Decimal("12.30"), "tier": "gold"},
        )
        yield e


# The tables each module creates on first use; the engine's own tables
# exist as soon as it opens.
_MODULE_TABLES = {
    "timers", "sla_events", "outbox",                       # ServiceDesk
    "teams", "team_members", "routing_state", "assignments",  # Router
    "rules",                                                # add_rule
    "numbering", "counters",                                # set_numbering
    "approval_requests", "approval_steps",                  # approvals
    "approval_decisions", "approval_delegations",
    "approval_matrices", "approval_matrix_bands", "approval_matrix_steps",
}


def _affinity(column):
    """
    Returns the SQLite declared type a model column stands for.
    """
    t = column.type
    t = getattr(t, "impl_instance", t)
    if isinstance(t, (sa.Integer, sa.Boolean)):
        return "INTEGER"
    if isinstance(t, sa.Float):
        return "REAL"
    if isinstance(t, sa.String):
        return "TEXT"
    return repr(t)


@pytest.fixture
def every_module(db_path, clock):
    """
    A file-backed engine where every core module has created its tables
    and written rows: service_request with numbering (SR-0001), a rule
    that notifies on create, an SLA desk whose 1 h response policy
    notifies the supervisor on breach, and a router that assigned SR-0001
    to team desk; the clock is then moved 2 h on and the desk ticked, so
    the breach timer fired.  Yields (engine, desk, router).
    """
    with crmflow.Engine(db_path, clock=clock) as e:
        e.register("service_request")
        e.set_numbering("service_request", "SR-{n:04}")
        e.add_rule(
            "welcome",
            "service_request",
            trigger="created",
            actions=["notify email with recipient = 'desk@example.com'; "
                     "subject = txn.id"],
        )
        desk = crmflow.ServiceDesk(e, [crmflow.SlaPolicy(
            "response", "service_request", datetime.timedelta(hours=1),
            met=["resolved", "closed"],
            escalation=[crmflow.Escalation(
                1.0,
                notify=[crmflow.Notify("email", "supervisor",
                                       "response breached")])])])
        router = routing.Router(e)
        router.add_team(routing.Team("desk", ["ann", "bob"]))
        e.create("service_request", attributes={"subject": "printer"})
        router.assign("SR-0001", team="desk")
        assert e.approvals.open_requests().empty  # creates its tables
        clock.advance(hours=2)
        summary = desk.tick(clock.now)
        assert 1 == summary.fired
        yield e, desk, router


class TestSchemaInSync:
    def test_every_table_and_column_is_modelled(self, every_module):
        """
        Every table of a database where every module (engine, SLA desk,
        router, rules, numbering) created its tables has a model with the
        same columns, declared types and nullability; a table added later
        fails this test until it is modelled.
        """
        crm = every_module[0]
        db = sqlite3.connect(crm.path)
        tables = [
            r[0]
            for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND "
                "name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        live = {}
        for t in tables:
            live[t] = {
                r[1]: (bool(r[3]), bool(r[5]), r[2].upper())
                for r in db.execute(f"PRAGMA table_info({t})")
            }
        db.close()

        modelled = {
            name: {
                c.name: (not c.nullable, c.primary_key, _affinity(c))
                for c in table.columns
            }
            for name, table in orm.Base.metadata.tables.items()
        }

        assert _MODULE_TABLES <= set(live), "a module did not run"
        assert sorted(live) == sorted(modelled)
        for t in tables:
            assert sorted(live[t]) == sorted(modelled[t]), t
            for column, (notnull, pk, type_) in live[t].items():
                assert type_ == modelled[t][column][2], (t, column)
                if t == "schema_version":
                    continue  # no key in the file; the model keys version
                assert pk == modelled[t][column][1], (t, column)
                if pk:
                    continue
                assert notnull == modelled[t][column][0], (t, column)

    def test_module_rows_read_back_typed(self, every_module):
        """
        A fired SLA timer, its event, the outbox rows, the assignment, the
        team, the rule and the counter read back through the ORM with
        aware UTC datetimes, JSON bodies as dicts, booleans and their
        transaction.
        """
        crm = every_module[0]
        db = crm.sqlalchemy_engine()

        with Session(db) as s:
            timer = s.scalars(
                sa.select(orm.Timer).where(orm.Timer.state == "fired")
            ).one()
            event = s.scalars(sa.select(orm.SlaEvent)).one()
            outbox = s.scalars(
                sa.select(orm.OutboxMessage).order_by(orm.OutboxMessage.id)
            ).all()
            assignment = s.scalars(sa.select(orm.Assignment)).one()
            team = s.get(orm.Team, "desk")
            rule = s.get(orm.Rule, "welcome")
            numbering = s.get(orm.NumberingFormat, "service_request")
            got = {
                "timer": (timer.transaction.id, timer.policy, timer.step,
                          timer.cycle, timer.due_at, timer.fired_at),
                "event": (event.kind, event.share, event.time,
                          event.recorded_at, event.transaction.kind),
                "outbox": [(o.policy, o.recipient, o.subject, o.time,
                            o.transaction.id) for o in outbox],
                "bodies": [o.body for o in outbox],
                "assignment": (assignment.transaction.id, assignment.team,
                               assignment.member, assignment.time,
                               assignment.previous_member),
                "members": [(m.member, m.position, m.available)
                            for m in team.members],
                "rule": (rule.trigger, rule.enabled, rule.on_name),
                "counters": [(c.period, c.last) for c in numbering.counters],
                "yearly_reset": numbering.yearly_reset,
            }

        assert (
            "SR-0001", "response", 0, 1,
            utc(2026, 2, 2, 10), utc(2026, 2, 2, 11),
        ) == got["timer"]
        assert datetime.timezone.utc == got["timer"][5].tzinfo
        assert (
            "breach", 1.0, utc(2026, 2, 2, 10), utc(2026, 2, 2, 11),
            "service_request",
        ) == got["event"]
        assert [
            ("rule:welcome", "desk@example.com", "SR-0001",
             utc(2026, 2, 2, 9), "SR-0001"),
            ("response", "supervisor", "response breached",
             utc(2026, 2, 2, 11), "SR-0001"),
        ] == got["outbox"]
        assert {"text": "", "rule": "welcome"} == got["bodies"][0]
        assert isinstance(got["bodies"][1], dict)
        assert "breached" == got["bodies"][1]["state"]
        assert -3600 == got["bodies"][1]["remaining_seconds"]
        assert (
            "SR-0001", "desk", "ann", utc(2026, 2, 2, 9), None,
        ) == got["assignment"]
        assert datetime.timezone.utc == got["assignment"][3].tzinfo
        assert [("ann", 0, True), ("bob", 1, True)] == got["members"]
        assert ("created", True, "") == got["rule"]
        assert [(0, 1)] == got["counters"]
        assert got["yearly_reset"] is False
        db.dispose()


class TestBothDirections:
    def test_orm_customer_seen_by_engine(self, crm):
        """
        A customer added through SQLAlchemy is listed by the engine at
        once, with its JSON attributes and aware times.
        """
        db = crm.sqlalchemy_engine()
        with Session(db) as s:
            s.add(
                orm.Customer(
                    id="C-1",
                    name="Ana Silva",
                    email="ana@example.com",
                    attributes={"tier": "gold", "since": 2019},
                )
            )
            s.commit()

        frame = crm.customers()

        assert ["C-1"] == frame["id"].tolist()
        assert {"tier": "gold", "since": 2019} == frame["attributes"][0]
        assert "datetime64[us, UTC]" == str(frame["created_at"].dtype)
        db.dispose()

    def test_engine_rows_read_back_typed(self, crm, clock):
        """
        Rows the engine wrote read back through the ORM as aware UTC
        datetimes, Decimal money and history in order.
        """
        clock.advance(hours=1)
        crm.fire("T-1", "open", actor="ana")
        db = orm.create_engine(crm.path)

        with Session(db) as s:
            s.add(orm.Customer(id="C-1", name="Ana"))
            s.commit()
            t = s.get(orm.Transaction, "T-1")
            history = [(h.event, h.to_state, h.time) for h in t.history]
            amount = t.attribute("amount")
            customer = s.get(orm.Customer, "C-1")
            mine = [x.id for x in customer.transactions]

        assert decimal.Decimal("12.30") == amount
        assert "12.30" == str(amount)
        assert [
            ("create", "new", utc(2026, 2, 2, 9, 0)),
            ("open", "open", utc(2026, 2, 2, 10, 0)),
        ] == history
        assert datetime.timezone.utc == history[0][2].tzinfo
        assert ["T-1"] == mine
        db.dispose()

    def test_orm_attribute_edit_seen_by_caching_engine(self, crm):
        """
        An attribute edited through the ORM bumps the version, so the
        engine (which cached T-1 when creating it) reads the new value
        and can still fire.
        """
        before = crm.get("T-1").version
        db = crm.sqlalchemy_engine()

        with Session(db) as s:
            a = s.get(orm.Attribute, ("T-1", "amount"))
            a.typed_value = decimal.Decimal("99.95")
            s.commit()
        state = crm.fire("T-1", "open")
        after = crm.get("T-1")

        assert "open" == state
        assert decimal.Decimal("99.95") == after.attributes["amount"]
        assert before + 2 == after.version
        db.dispose()

    def test_orm_link_edit_bumps_version(self, crm):
        """
        Changing a transaction's customer through the ORM is a SQL write:
        the version goes up by one and the engine sees the new customer.
        """
        db = crm.sqlalchemy_engine()

        with Session(db) as s:
            s.get(orm.Transaction, "T-1").customer_id = "C-2"
            s.commit()

        assert "C-2" == crm.get("T-1").customer_id
        assert 2 == crm.get("T-1").version
        db.dispose()


class TestRefusedWrites:
    def test_direct_state_change_refused(self, crm):
        """
        Setting a state through the ORM is refused by the database and
        nothing changes.
        """
        db = crm.sqlalchemy_engine()

        with Session(db) as s:
            s.get(orm.Transaction, "T-1").state = "closed"
            with pytest.raises(sa.exc.IntegrityError) as info:
                s.commit()

        assert "only through a transition" in str(info.value)
        assert "new" == crm.get("T-1").state
        db.dispose()

    def test_history_is_append_only(self, crm):
        """
        History rows cannot be updated or deleted with plain SQL.
        """
        db = sqlite3.connect(crm.path)

        for sql in (
            "UPDATE history SET actor = 'mallory'",
            "DELETE FROM history",
        ):
            with pytest.raises(sqlite3.IntegrityError) as info:
                db.execute(sql)
            assert "history is append-only" == str(info.value)
        db.close()
        assert 1 == len(crm.history("T-1"))

    def test_state_change_after_history_row_accepted(self, crm):
        """
        A SQL writer that appends the history row first may change the
        state, as the engine does.
        """
        db = sqlite3.connect(crm.path)
        db.execute(
            "INSERT INTO history(transaction_id, event, from_state, "
            "to_state, time, internal, workflow_version) VALUES ('T-1', "
            "'open', 'new', 'open', '2026-02-02T10:00:00.000000Z', 0, 1)"
        )
        db.execute("UPDATE transactions SET state = 'open' WHERE id = 'T-1'")
        db.commit()
        db.close()

        assert "open" == crm.get("T-1").state
        assert "closed" == crm.fire("T-1", "close")

    def test_transactions_not_deleted(self, crm):
        """
        Deleting a transaction is refused (its history stays valid).
        """
        db = sqlite3.connect(crm.path)

        with pytest.raises(sqlite3.IntegrityError) as info:
            db.execute("DELETE FROM transactions")

        assert "kept with their history" in str(info.value)
        db.close()

    def test_memory_engine_has_no_url(self, engine):
        """
        A memory engine has no URL to hand to SQL tools.
        """
        with pytest.raises(crmflow.InvalidArgumentError) as info:
            engine.url

        assert "in memory" in str(info.value)


_V1 = """
CREATE TABLE schema_version(version INTEGER NOT NULL);
INSERT INTO schema_version VALUES (1);
CREATE TABLE workflows(name TEXT NOT NULL, version INTEGER NOT NULL,
  definition TEXT, registered_at TEXT, PRIMARY KEY (name, version));
CREATE TABLE transactions(id TEXT PRIMARY KEY, kind TEXT NOT NULL,
  state TEXT NOT NULL, customer_id TEXT NULL, parent_id TEXT NULL,
  version INTEGER NOT NULL, workflow_version INTEGER NOT NULL,
  created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
  state_entered_at TEXT NOT NULL);
CREATE TABLE attributes(transaction_id TEXT NOT NULL REFERENCES
  transactions(id), name TEXT NOT NULL, type TEXT NOT NULL,
  value TEXT NULL, PRIMARY KEY (transaction_id, name));
CREATE TABLE history(seq INTEGER PRIMARY KEY, transaction_id TEXT NOT NULL
  REFERENCES transactions(id), event TEXT NOT NULL, from_state TEXT NULL,
  to_state TEXT NOT NULL, time TEXT NOT NULL, actor TEXT NULL,
  payload TEXT NULL, internal INTEGER NOT NULL DEFAULT 0,
  workflow_version INTEGER NOT NULL, source TEXT NULL);
CREATE TABLE deviations(id INTEGER PRIMARY KEY, transaction_id TEXT NOT
  NULL, kind TEXT NOT NULL, position INTEGER NOT NULL, state TEXT NOT NULL,
  event TEXT NOT NULL, time TEXT NOT NULL, reason TEXT NOT NULL,
  source TEXT NULL);
CREATE TABLE imports(id INTEGER PRIMARY KEY, file TEXT, kind TEXT,
  started_at TEXT, cases INTEGER, events_applied INTEGER,
  deviations INTEGER, rejected INTEGER, skipped INTEGER);
INSERT INTO transactions VALUES ('T-9', 'ticket', 'new', 'C-9', NULL, 1, 1,
  '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z',
  '2026-01-01T00:00:00.000000Z');
INSERT INTO attributes VALUES ('T-9', 'amount', 'decimal', '5.00');
INSERT INTO history(transaction_id, event, from_state, to_state, time,
  internal, workflow_version) VALUES ('T-9', 'create', NULL, 'new',
  '2026-01-01T00:00:00.000000Z', 0, 1);
"""


class TestMigration:
    def test_schema_1_file_upgraded_in_place(self, db_path, clock, ticket):
        """
        A schema 1 file opens as schema 2: new tables and triggers, its
        rows intact and usable by the engine.
        """
        db = sqlite3.connect(db_path)
        db.executescript(_V1)
        db.close()

        with crmflow.Engine(db_path, clock=clock) as e:
            e.register(ticket)
            e.set_attributes("T-9", {"tier": "gold"})
            state = e.fire("T-9", "open")
            t = e.get("T-9")
        db = sqlite3.connect(db_path)
        version = db.execute("SELECT version FROM schema_version").fetchall()
        tables = {
            r[0]
            for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
            )
        }
        with pytest.raises(sqlite3.IntegrityError):
            db.execute("DELETE FROM history")
        db.close()

        assert [(2,)] == version
        assert {"customers", "identities", "merges"} <= tables
        assert "open" == state
        assert decimal.Decimal("5.00") == t.attributes["amount"]
        assert "gold" == t.attributes["tier"]
        assert 3 == t.version
