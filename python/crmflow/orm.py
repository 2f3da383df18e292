"""
SQLAlchemy 2 models of the crmflow database.

Every table of the SQLite file (see ``docs/schema.md``) has a typed
declarative model here, with the relationships between them, so analysts
and scripts can query and edit the CRM data with SQLAlchemy while an
:class:`crmflow.Engine` works on the same file.  Column types convert the
stored text: times to aware UTC :class:`datetime.datetime`, money to
:class:`decimal.Decimal`, JSON text to Python objects.

The database keeps the engine's invariants whoever writes (triggers, see
``cpp/include/crmflow/store.h``): history rows cannot change, a
transaction's state changes only through a transition (a direct
``txn.state = ...`` is refused with an IntegrityError), and every write to
a transaction or attribute through SQL bumps the transaction's version, so
an engine's cached copy is reloaded.

Example::

    import sqlalchemy as sa
    from sqlalchemy.orm import Session
    from crmflow import orm

    db = orm.create_engine("crm.db")        # or crm.sqlalchemy_engine()
    with Session(db) as session:
        c = session.get(orm.Customer, "C-1")
        for t in c.transactions:
            print(t.id, t.state, t.attribute("amount"))

.. versionadded:: 0.1.0
"""

import datetime
import decimal
import json
import os
from typing import Any, Dict, List, Optional, Union

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    foreign,
    mapped_column,
    relationship,
    remote,
)

from crmflow._errors import InvalidArgumentError

__all__ = [
    "Base",
    "UtcDateTime",
    "DecimalText",
    "JsonText",
    "SchemaVersion",
    "StoredWorkflow",
    "Transaction",
    "Attribute",
    "History",
    "Deviation",
    "Import",
    "Customer",
    "Identity",
    "Merge",
    "Timer",
    "SlaEvent",
    "OutboxMessage",
    "Team",
    "TeamMember",
    "RoutingState",
    "Assignment",
    "Rule",
    "NumberingFormat",
    "Counter",
    "ApprovalRequest",
    "ApprovalStep",
    "ApprovalDecision",
    "ApprovalDelegation",
    "ApprovalMatrixRow",
    "ApprovalMatrixBand",
    "ApprovalMatrixStep",
    "create_engine",
    "format_time",
    "parse_time",
    "attribute_value",
    "attribute_text",
]

_UTC = datetime.timezone.utc
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=_UTC)


def format_time(value: datetime.datetime) -> str:
    """
    Returns an aware datetime in the stored form
    ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC).

    Raises:
        InvalidArgumentError: ``value`` is naive or not a datetime.
    """
    if not isinstance(value, datetime.datetime):
        message = f"time must be a datetime (got {type(value).__name__})"
        raise InvalidArgumentError(message)
    if value.tzinfo is None or value.utcoffset() is None:
        message = f"time {value.isoformat()} is naive (expected aware)"
        raise InvalidArgumentError(message)
    return value.astimezone(_UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: Optional[str]) -> Optional[datetime.datetime]:
    """
    Returns stored time text as an aware UTC datetime (None for None).
    """
    if text is None:
        return None
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


class UtcDateTime(sa.types.TypeDecorator):
    """
    ISO UTC text in the database, an aware UTC datetime in Python.
    """

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return None if value is None else format_time(value)

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return parse_time(value)


class DecimalText(sa.types.TypeDecorator):
    """
    Exact decimal text in the database, :class:`decimal.Decimal` in
    Python; binary floats are refused.
    """

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, float):
            message = "binary floats are refused (use decimal.Decimal)"
            raise InvalidArgumentError(message)
        return str(decimal.Decimal(value))

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return None if value is None else decimal.Decimal(value)


class JsonText(sa.types.TypeDecorator):
    """
    JSON text in the database, Python objects in Python.
    """

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        return json.dumps(value, ensure_ascii=False, sort_keys=True)

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return None if value is None else json.loads(value)


def attribute_value(type_: str, text: Optional[str]) -> Any:
    """
    Returns an attribute's stored text as its Python value.

    Args:
        type_: text, integer, decimal, timestamp, duration or boolean.
        text: The stored canonical text, or None.

    Raises:
        InvalidArgumentError: An unknown type.
    """
    if text is None:
        return None
    if type_ == "text":
        return text
    if type_ == "integer":
        return int(text)
    if type_ == "decimal":
        return decimal.Decimal(text)
    if type_ == "timestamp":
        return parse_time(text)
    if type_ == "duration":
        return datetime.timedelta(microseconds=int(text))
    if type_ == "boolean":
        return text == "true"
    raise InvalidArgumentError(f'unknown attribute type "{type_}"')


def attribute_text(type_: str, value: Any) -> Optional[str]:
    """
    Returns the canonical stored text of a Python attribute value.

    Raises:
        InvalidArgumentError: The value does not fit the type.
    """
    if value is None:
        return None
    checks = {
        "text": str,
        "integer": int,
        "decimal": (decimal.Decimal, int, str),
        "timestamp": datetime.datetime,
        "duration": datetime.timedelta,
        "boolean": bool,
    }
    expected = checks.get(type_)
    if expected is None:
        raise InvalidArgumentError(f'unknown attribute type "{type_}"')
    bad_bool = type_ == "integer" and isinstance(value, bool)
    if not isinstance(value, expected) or bad_bool:
        message = (
            f"{type_} attribute value must be "
            f"{getattr(expected, '__name__', 'a Decimal')} "
            f"(got {type(value).__name__})"
        )
        raise InvalidArgumentError(message)
    if type_ == "decimal":
        return str(decimal.Decimal(value))
    if type_ == "timestamp":
        return format_time(value)
    if type_ == "duration":
        return str(value // datetime.timedelta(microseconds=1))
    if type_ == "boolean":
        return "true" if value else "false"
    return str(value)


class Base(DeclarativeBase):
    """
    The declarative base of the crmflow models.
    """


class SchemaVersion(Base):
    """
    The schema version row (the table has no key; version is used as one).
    """

    __tablename__ = "schema_version"

    version: Mapped[int] = mapped_column(sa.Integer, primary_key=True)


class StoredWorkflow(Base):
    """
    A stored workflow definition (JSON).
    """

    __tablename__ = "workflows"

    name: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    version: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    definition: Mapped[Optional[Any]] = mapped_column(JsonText)
    registered_at: Mapped[Optional[datetime.datetime]] = mapped_column(
        UtcDateTime
    )


class Transaction(Base):
    """
    A CRM transaction.  Its ``state`` changes only through the engine (the
    database refuses a direct change); ``version`` is checked on every ORM
    update (optimistic locking, as the engine does).
    """

    __tablename__ = "transactions"

    id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    kind: Mapped[str] = mapped_column(sa.Text)
    state: Mapped[str] = mapped_column(sa.Text)
    customer_id: Mapped[Optional[str]] = mapped_column(sa.Text)
    parent_id: Mapped[Optional[str]] = mapped_column(sa.Text)
    version: Mapped[int] = mapped_column(sa.Integer)
    workflow_version: Mapped[int] = mapped_column(sa.Integer)
    created_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime)
    state_entered_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime)

    __mapper_args__ = {"version_id_col": version}

    customer: Mapped[Optional["Customer"]] = relationship(
        primaryjoin=lambda: foreign(Transaction.customer_id) == Customer.id,
        back_populates="transactions",
    )
    parent: Mapped[Optional["Transaction"]] = relationship(
        primaryjoin=lambda: foreign(Transaction.parent_id)
        == remote(Transaction.id),
        back_populates="children",
    )
    children: Mapped[List["Transaction"]] = relationship(
        primaryjoin=lambda: Transaction.id
        == remote(foreign(Transaction.parent_id)),
        back_populates="parent",
        viewonly=True,
    )
    attributes: Mapped[List["Attribute"]] = relationship(
        back_populates="transaction",
        order_by="Attribute.name",
        cascade="save-update, merge",
    )
    history: Mapped[List["History"]] = relationship(
        back_populates="transaction",
        order_by="History.seq",
        viewonly=True,
    )

    def attribute(self, name: str) -> Any:
        """
        Returns the typed value of attribute ``name`` (None when absent).
        """
        for a in self.attributes:
            if a.name == name:
                return a.typed_value
        return None

    def __repr__(self) -> str:
        return f"<Transaction {self.id!r} {self.kind} {self.state}>"


class Attribute(Base):
    """
    One attribute value of a transaction, as canonical text with its type
    (see :attr:`typed_value`).  ``written_version`` belongs to the engine:
    leave it None so the write counts as a SQL write.
    """

    __tablename__ = "attributes"

    transaction_id: Mapped[str] = mapped_column(
        sa.Text, sa.ForeignKey("transactions.id"), primary_key=True
    )
    name: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    type: Mapped[str] = mapped_column(sa.Text)
    value: Mapped[Optional[str]] = mapped_column(sa.Text)
    written_version: Mapped[Optional[int]] = mapped_column(sa.Integer)

    transaction: Mapped[Transaction] = relationship(
        back_populates="attributes"
    )

    @property
    def typed_value(self) -> Any:
        """
        The value as a Python object (int, Decimal, aware datetime, ...);
        assigning converts to the canonical text of ``type``.
        """
        return attribute_value(self.type, self.value)

    @typed_value.setter
    def typed_value(self, value: Any) -> None:
        self.value = attribute_text(self.type, value)
        self.written_version = None


class History(Base):
    """
    One accepted transition (append-only: updates and deletes are refused
    by the database).
    """

    __tablename__ = "history"

    seq: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    transaction_id: Mapped[str] = mapped_column(
        sa.Text, sa.ForeignKey("transactions.id")
    )
    event: Mapped[str] = mapped_column(sa.Text)
    from_state: Mapped[Optional[str]] = mapped_column(sa.Text)
    to_state: Mapped[str] = mapped_column(sa.Text)
    time: Mapped[datetime.datetime] = mapped_column(UtcDateTime)
    actor: Mapped[Optional[str]] = mapped_column(sa.Text)
    payload: Mapped[Optional[str]] = mapped_column(sa.Text)
    internal: Mapped[bool] = mapped_column(sa.Boolean)
    workflow_version: Mapped[int] = mapped_column(sa.Integer)
    source: Mapped[Optional[str]] = mapped_column(sa.Text)

    transaction: Mapped[Transaction] = relationship(
        back_populates="history", viewonly=True
    )

    @property
    def data(self) -> Any:
        """
        The payload parsed as JSON (None when there is none).
        """
        return None if self.payload in (None, "") else json.loads(
            self.payload
        )


class Deviation(Base):
    """
    An imported event the workflow did not allow.
    """

    __tablename__ = "deviations"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    transaction_id: Mapped[str] = mapped_column(sa.Text)
    kind: Mapped[str] = mapped_column(sa.Text)
    position: Mapped[int] = mapped_column(sa.Integer)
    state: Mapped[str] = mapped_column(sa.Text)
    event: Mapped[str] = mapped_column(sa.Text)
    time: Mapped[datetime.datetime] = mapped_column(UtcDateTime)
    reason: Mapped[str] = mapped_column(sa.Text)
    source: Mapped[Optional[str]] = mapped_column(sa.Text)

    transaction: Mapped[Optional[Transaction]] = relationship(
        primaryjoin=lambda: foreign(Deviation.transaction_id)
        == Transaction.id,
        viewonly=True,
    )


class Import(Base):
    """
    The summary of one import run.
    """

    __tablename__ = "imports"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    file: Mapped[Optional[str]] = mapped_column(sa.Text)
    kind: Mapped[Optional[str]] = mapped_column(sa.Text)
    started_at: Mapped[Optional[datetime.datetime]] = mapped_column(
        UtcDateTime
    )
    cases: Mapped[Optional[int]] = mapped_column(sa.Integer)
    events_applied: Mapped[Optional[int]] = mapped_column(sa.Integer)
    deviations: Mapped[Optional[int]] = mapped_column(sa.Integer)
    rejected: Mapped[Optional[int]] = mapped_column(sa.Integer)
    skipped: Mapped[Optional[int]] = mapped_column(sa.Integer)


def _now() -> datetime.datetime:
    """
    Returns the current aware UTC time.
    """
    return datetime.datetime.now(_UTC)


class Customer(Base):
    """
    A customer.  ``merged_into`` names the survivor after a merge (see
    :func:`crmflow.customers.merge`); ``attributes`` is a JSON object.
    """

    __tablename__ = "customers"

    id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    name: Mapped[Optional[str]] = mapped_column(sa.Text)
    email: Mapped[Optional[str]] = mapped_column(sa.Text)
    phone: Mapped[Optional[str]] = mapped_column(sa.Text)
    attributes: Mapped[Optional[Dict[str, Any]]] = mapped_column(JsonText)
    created_at: Mapped[datetime.datetime] = mapped_column(
        UtcDateTime, default=_now
    )
    updated_at: Mapped[datetime.datetime] = mapped_column(
        UtcDateTime, default=_now, onupdate=_now
    )
    merged_into: Mapped[Optional[str]] = mapped_column(
        sa.Text, sa.ForeignKey("customers.id")
    )

    transactions: Mapped[List[Transaction]] = relationship(
        primaryjoin=lambda: Customer.id == foreign(Transaction.customer_id),
        back_populates="customer",
        order_by=lambda: Transaction.id,
    )
    identities: Mapped[List["Identity"]] = relationship(
        back_populates="customer", order_by="Identity.id"
    )
    survivor: Mapped[Optional["Customer"]] = relationship(
        remote_side=lambda: Customer.id, back_populates="absorbed"
    )
    absorbed: Mapped[List["Customer"]] = relationship(
        back_populates="survivor"
    )

    def __repr__(self) -> str:
        return f"<Customer {self.id!r} {self.name!r}>"


class Identity(Base):
    """
    One identity of a customer in a channel: ``kind`` email, phone, web or
    source (the id in ``source``, the system it came from).
    """

    __tablename__ = "identities"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    customer_id: Mapped[str] = mapped_column(
        sa.Text, sa.ForeignKey("customers.id")
    )
    kind: Mapped[str] = mapped_column(sa.Text)
    value: Mapped[str] = mapped_column(sa.Text)
    normalized: Mapped[str] = mapped_column(sa.Text)
    source: Mapped[Optional[str]] = mapped_column(sa.Text)
    created_at: Mapped[datetime.datetime] = mapped_column(
        UtcDateTime, default=_now
    )

    customer: Mapped[Customer] = relationship(back_populates="identities")


class Merge(Base):
    """
    A recorded merge of customer ``merged`` into ``survivor``; ``details``
    lists what moved, ``undone_at`` is set by an undo.
    """

    __tablename__ = "merges"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    survivor: Mapped[str] = mapped_column(
        sa.Text, sa.ForeignKey("customers.id")
    )
    merged: Mapped[str] = mapped_column(
        sa.Text, sa.ForeignKey("customers.id")
    )
    actor: Mapped[str] = mapped_column(sa.Text)
    time: Mapped[datetime.datetime] = mapped_column(UtcDateTime)
    details: Mapped[Any] = mapped_column(JsonText)
    undone_at: Mapped[Optional[datetime.datetime]] = mapped_column(
        UtcDateTime
    )


# Tables of the other core modules, created on first use in the same file
# (see docs/schema.md): the SLA scheduler (timers, sla_events, outbox),
# routing (teams, team_members, routing_state, assignments), rules (rules,
# outbox) and numbering (numbering, counters).  A file where a module never
# ran lacks its tables.


class Timer(Base):
    """
    A durable SLA timer (the SLA scheduler, :class:`crmflow.ServiceDesk`):
    step 0 is the breach, 1..n the ladder's other steps; ``state`` is
    ``pending``, ``fired``, ``cancelled`` or ``failed``.  Written by the
    scheduler inside the engine's store transactions.
    """

    __tablename__ = "timers"
    __table_args__ = (
        sa.UniqueConstraint("transaction_id", "policy", "step", "cycle"),
        sa.Index("timers_due", "state", "due_at"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    transaction_id: Mapped[str] = mapped_column(sa.Text)
    policy: Mapped[str] = mapped_column(sa.Text)
    step: Mapped[int] = mapped_column(sa.Integer)
    due_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime)
    cycle: Mapped[int] = mapped_column(
        sa.Integer, server_default=sa.text("1")
    )
    state: Mapped[str] = mapped_column(
        sa.Text, server_default=sa.text("'pending'")
    )
    fired_at: Mapped[Optional[datetime.datetime]] = mapped_column(
        UtcDateTime
    )

    transaction: Mapped[Optional[Transaction]] = relationship(
        primaryjoin=lambda: foreign(Timer.transaction_id) == Transaction.id,
        viewonly=True,
    )

    def __repr__(self) -> str:
        return (
            f"<Timer {self.transaction_id!r} {self.policy} "
            f"step {self.step} {self.state}>"
        )


class SlaEvent(Base):
    """
    A threshold an SLA clock reached: ``kind`` ``breach``, ``threshold``
    or ``failed`` (an action was refused and rolled back; ``detail`` holds
    the error); ``time`` is when it was reached, ``recorded_at`` the tick
    that saw it.
    """

    __tablename__ = "sla_events"
    __table_args__ = (sa.Index("sla_events_txn", "transaction_id"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    time: Mapped[datetime.datetime] = mapped_column(UtcDateTime)
    recorded_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime)
    transaction_id: Mapped[str] = mapped_column(sa.Text)
    policy: Mapped[str] = mapped_column(sa.Text)
    step: Mapped[int] = mapped_column(sa.Integer)
    cycle: Mapped[int] = mapped_column(sa.Integer)
    kind: Mapped[str] = mapped_column(sa.Text)
    share: Mapped[float] = mapped_column(sa.Float)
    detail: Mapped[str] = mapped_column(
        sa.Text, server_default=sa.text("''")
    )

    transaction: Mapped[Optional[Transaction]] = relationship(
        primaryjoin=lambda: foreign(SlaEvent.transaction_id)
        == Transaction.id,
        viewonly=True,
    )


class OutboxMessage(Base):
    """
    A notification for another system to deliver (crmflow never sends
    it), written by SLA escalations (``policy`` the SLA policy),
    assignment notices (``policy`` ``assignment``, ``step`` -1) and rule
    ``notify`` actions (``policy`` ``rule:NAME``, ``step`` 0); ``body`` is
    a JSON object.
    """

    __tablename__ = "outbox"
    __table_args__ = (sa.Index("outbox_txn", "transaction_id"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    time: Mapped[datetime.datetime] = mapped_column(UtcDateTime)
    transaction_id: Mapped[str] = mapped_column(sa.Text)
    channel: Mapped[str] = mapped_column(sa.Text)
    recipient: Mapped[str] = mapped_column(sa.Text)
    subject: Mapped[str] = mapped_column(sa.Text)
    body: Mapped[Any] = mapped_column(JsonText)
    policy: Mapped[str] = mapped_column(sa.Text)
    step: Mapped[int] = mapped_column(sa.Integer)

    transaction: Mapped[Optional[Transaction]] = relationship(
        primaryjoin=lambda: foreign(OutboxMessage.transaction_id)
        == Transaction.id,
        viewonly=True,
    )

    def __repr__(self) -> str:
        return (
            f"<OutboxMessage {self.id} {self.channel} "
            f"{self.recipient!r} {self.transaction_id!r}>"
        )


class Team(Base):
    """
    A routing team (:class:`crmflow.routing.Router`); ``strategy`` is
    ``round_robin``, ``least_loaded``, ``skills`` or a registered name.
    """

    __tablename__ = "teams"

    name: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    strategy: Mapped[Optional[str]] = mapped_column(sa.Text)

    members: Mapped[List["TeamMember"]] = relationship(
        primaryjoin=lambda: Team.name == foreign(TeamMember.team),
        order_by=lambda: TeamMember.position,
        viewonly=True,
    )


class TeamMember(Base):
    """
    A member of a team: ``position`` orders the team, ``skills`` is
    comma-separated, ``capacity`` 0 means no limit.
    """

    __tablename__ = "team_members"

    team: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    member: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    position: Mapped[Optional[int]] = mapped_column(sa.Integer)
    skills: Mapped[Optional[str]] = mapped_column(sa.Text)
    capacity: Mapped[Optional[int]] = mapped_column(sa.Integer)
    available: Mapped[Optional[bool]] = mapped_column(sa.Boolean)


class RoutingState(Base):
    """
    Where a team's next round-robin scan starts (advanced once per
    committed assignment).
    """

    __tablename__ = "routing_state"

    team: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    position: Mapped[Optional[int]] = mapped_column(sa.Integer)


class Assignment(Base):
    """
    One assignment of a transaction to a team member, with the previous
    team and member (None for the first).
    """

    __tablename__ = "assignments"
    __table_args__ = (
        sa.Index("assignments_by_transaction", "transaction_id", "id"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    transaction_id: Mapped[Optional[str]] = mapped_column(sa.Text)
    team: Mapped[Optional[str]] = mapped_column(sa.Text)
    member: Mapped[Optional[str]] = mapped_column(sa.Text)
    time: Mapped[Optional[datetime.datetime]] = mapped_column(UtcDateTime)
    reason: Mapped[Optional[str]] = mapped_column(sa.Text)
    previous_team: Mapped[Optional[str]] = mapped_column(sa.Text)
    previous_member: Mapped[Optional[str]] = mapped_column(sa.Text)

    transaction: Mapped[Optional[Transaction]] = relationship(
        primaryjoin=lambda: foreign(Assignment.transaction_id)
        == Transaction.id,
        viewonly=True,
    )

    def __repr__(self) -> str:
        return (
            f"<Assignment {self.transaction_id!r} {self.team}/{self.member}>"
        )


class Rule(Base):
    """
    A stored rule (:meth:`crmflow.Engine.add_rule`): ``trigger`` is
    ``created``, ``event``, ``entered``, ``left`` or ``changed``;
    ``on_name`` and ``condition`` are ``''`` for any / always; ``actions``
    holds one action per line (see ``docs/rules.md``).  Engines load rules
    when they open (or :meth:`crmflow.Engine.reload_rules`).
    """

    __tablename__ = "rules"

    name: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    position: Mapped[int] = mapped_column(sa.Integer)
    kind: Mapped[str] = mapped_column(sa.Text)
    trigger: Mapped[str] = mapped_column(sa.Text)
    on_name: Mapped[str] = mapped_column(sa.Text)
    condition: Mapped[str] = mapped_column(sa.Text)
    priority: Mapped[int] = mapped_column(sa.Integer)
    enabled: Mapped[bool] = mapped_column(sa.Boolean)
    actions: Mapped[str] = mapped_column(sa.Text)


class NumberingFormat(Base):
    """
    The number format of a kind (:meth:`crmflow.Engine.set_numbering`),
    e.g. ``CASE-{n:04}``; ``zone`` is the IANA zone of the date fields and
    the yearly reset.
    """

    __tablename__ = "numbering"

    kind: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    format: Mapped[str] = mapped_column(sa.Text)
    yearly_reset: Mapped[bool] = mapped_column(sa.Boolean)
    zone: Mapped[str] = mapped_column(sa.Text)

    counters: Mapped[List["Counter"]] = relationship(
        primaryjoin=lambda: NumberingFormat.kind == foreign(Counter.kind),
        order_by=lambda: Counter.period,
        viewonly=True,
    )


class Counter(Base):
    """
    The last number issued for a kind in a period (0, or the year with a
    yearly reset).  Incremented in the same store transaction as the
    create that uses the number.
    """

    __tablename__ = "counters"

    kind: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    period: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    last: Mapped[int] = mapped_column(sa.Integer)


class ApprovalRequest(Base):
    """
    One approval request (:mod:`crmflow.approvals`), opened when its
    transaction entered the requesting state: ``status`` is ``open``,
    ``approved``, ``rejected`` or ``cancelled``; ``current_step`` indexes
    the waiting step (``steps`` when done); ``automatic`` marks an empty
    chain approved at once.
    """

    __tablename__ = "approval_requests"
    __table_args__ = (
        sa.Index("approval_requests_by_transaction", "transaction_id", "id"),
        sa.Index("approval_requests_by_status", "status", "id"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    transaction_id: Mapped[Optional[str]] = mapped_column(sa.Text)
    kind: Mapped[Optional[str]] = mapped_column(sa.Text)
    band: Mapped[Optional[int]] = mapped_column(sa.Integer)
    band_name: Mapped[Optional[str]] = mapped_column(sa.Text)
    status: Mapped[Optional[str]] = mapped_column(sa.Text)
    current_step: Mapped[Optional[int]] = mapped_column(sa.Integer)
    steps: Mapped[Optional[int]] = mapped_column(sa.Integer)
    approve_event: Mapped[Optional[str]] = mapped_column(sa.Text)
    reject_event: Mapped[Optional[str]] = mapped_column(sa.Text)
    opened_at: Mapped[Optional[datetime.datetime]] = mapped_column(
        UtcDateTime
    )
    closed_at: Mapped[Optional[datetime.datetime]] = mapped_column(
        UtcDateTime
    )
    outcome_event: Mapped[Optional[str]] = mapped_column(sa.Text)
    automatic: Mapped[Optional[bool]] = mapped_column(sa.Boolean)

    transaction: Mapped[Optional[Transaction]] = relationship(
        primaryjoin=lambda: foreign(ApprovalRequest.transaction_id)
        == Transaction.id,
        viewonly=True,
    )
    chain: Mapped[List["ApprovalStep"]] = relationship(
        primaryjoin=lambda: ApprovalRequest.id
        == foreign(ApprovalStep.request_id),
        order_by=lambda: ApprovalStep.position,
        viewonly=True,
    )
    decisions: Mapped[List["ApprovalDecision"]] = relationship(
        primaryjoin=lambda: ApprovalRequest.id
        == foreign(ApprovalDecision.request_id),
        order_by=lambda: ApprovalDecision.id,
        viewonly=True,
    )

    def __repr__(self) -> str:
        return (
            f"<ApprovalRequest {self.id} {self.transaction_id!r} "
            f"{self.status}>"
        )


class ApprovalStep(Base):
    """
    One step of a request's chain as computed when it opened: ``mode`` is
    ``unanimous`` or ``first``; ``approvers`` holds one actor id per line,
    or ``team`` names a routing team (the other is None).
    """

    __tablename__ = "approval_steps"

    request_id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    position: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    name: Mapped[Optional[str]] = mapped_column(sa.Text)
    mode: Mapped[Optional[str]] = mapped_column(sa.Text)
    approvers: Mapped[Optional[str]] = mapped_column(sa.Text)
    team: Mapped[Optional[str]] = mapped_column(sa.Text)


class ApprovalDecision(Base):
    """
    One approval or rejection: ``actor`` decided, for ``on_behalf_of``
    when a substitute (None otherwise).
    """

    __tablename__ = "approval_decisions"
    __table_args__ = (
        sa.Index("approval_decisions_by_request", "request_id", "step"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    request_id: Mapped[Optional[int]] = mapped_column(sa.Integer)
    transaction_id: Mapped[Optional[str]] = mapped_column(sa.Text)
    step: Mapped[Optional[int]] = mapped_column(sa.Integer)
    step_name: Mapped[Optional[str]] = mapped_column(sa.Text)
    actor: Mapped[Optional[str]] = mapped_column(sa.Text)
    on_behalf_of: Mapped[Optional[str]] = mapped_column(sa.Text)
    decision: Mapped[Optional[str]] = mapped_column(sa.Text)
    time: Mapped[Optional[datetime.datetime]] = mapped_column(UtcDateTime)
    comment: Mapped[Optional[str]] = mapped_column(sa.Text)


class ApprovalDelegation(Base):
    """
    A window ``[starts_at, ends_at)`` in which ``substitute`` may decide
    for ``actor``.
    """

    __tablename__ = "approval_delegations"
    __table_args__ = (
        sa.Index("approval_delegations_by_substitute", "substitute"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    actor: Mapped[Optional[str]] = mapped_column(sa.Text)
    substitute: Mapped[Optional[str]] = mapped_column(sa.Text)
    starts_at: Mapped[Optional[datetime.datetime]] = mapped_column(
        UtcDateTime
    )
    ends_at: Mapped[Optional[datetime.datetime]] = mapped_column(UtcDateTime)
    created_at: Mapped[Optional[datetime.datetime]] = mapped_column(
        UtcDateTime
    )


class ApprovalMatrixRow(Base):
    """
    One kind's approval matrix: the state that requests approval and the
    events fired on completion and rejection; its bands and steps are
    :class:`ApprovalMatrixBand` and :class:`ApprovalMatrixStep` rows.
    Write matrices through ``engine.approvals.set_matrix``, which
    validates them.
    """

    __tablename__ = "approval_matrices"

    kind: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    request_state: Mapped[Optional[str]] = mapped_column(sa.Text)
    approve_event: Mapped[Optional[str]] = mapped_column(sa.Text)
    reject_event: Mapped[Optional[str]] = mapped_column(sa.Text)
    updated_at: Mapped[Optional[datetime.datetime]] = mapped_column(
        UtcDateTime
    )


class ApprovalMatrixBand(Base):
    """
    One band of a stored matrix, ``position`` 0-based in match order;
    ``condition`` is an expression ("" means true).
    """

    __tablename__ = "approval_matrix_bands"

    kind: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    position: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    name: Mapped[Optional[str]] = mapped_column(sa.Text)
    condition: Mapped[Optional[str]] = mapped_column(sa.Text)


class ApprovalMatrixStep(Base):
    """
    One step of a stored band's chain (``band`` is the band's position):
    ``approvers`` one actor id per line, or ``team``.
    """

    __tablename__ = "approval_matrix_steps"

    kind: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    band: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    position: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    name: Mapped[Optional[str]] = mapped_column(sa.Text)
    mode: Mapped[Optional[str]] = mapped_column(sa.Text)
    approvers: Mapped[Optional[str]] = mapped_column(sa.Text)
    team: Mapped[Optional[str]] = mapped_column(sa.Text)


def create_engine(
    path: Union[str, "os.PathLike[str]"], **kwargs: Any
) -> sa.engine.Engine:
    """
    Returns a SQLAlchemy engine on a crmflow SQLite file, with foreign keys
    enforced and the same busy timeout as the crmflow engine (10 s).

    Args:
        path: The SQLite file (created by a crmflow engine first, which
            creates the schema).
        kwargs: Passed to :func:`sqlalchemy.create_engine`.

    Raises:
        InvalidArgumentError: ``path`` is empty or ``":memory:"``.
    """
    path = os.fspath(path)
    if not isinstance(path, str) or path in ("", ":memory:"):
        message = f"path must be a SQLite file (got {path!r})"
        raise InvalidArgumentError(message)
    engine = sa.create_engine(
        "sqlite:///" + os.path.abspath(path), **kwargs
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    return engine
