"""
Type stub of crmflow._core, the pybind11 module over the C++ core.

Users import crmflow, not this module.  Conventions of the binding:

* Times are returned as ``int`` microseconds since 1970-01-01T00:00:00Z
  (UTC); the Python layer turns them into aware ``datetime`` objects.
  Every time *argument* accepts an ``int`` (microseconds UTC), an aware
  ``datetime`` or a naive ``datetime``, which is read as wall-clock time in
  the engine's zone.  ``payload`` arguments accept a ``str`` (JSON text,
  stored verbatim) or any object, which is stored as ``json.dumps(obj,
  ensure_ascii=False)``.
* Attribute values cross as Python objects: ``None``, ``str``, ``bool``,
  ``int``, ``decimal.Decimal``, aware ``datetime.datetime`` (any zone; a
  naive one raises InvalidArgumentError) and ``datetime.timedelta``.  Read
  back, decimals keep their scale and timestamps are UTC.
* Every failure raises a subclass of ``crmflow.Error`` from
  ``crmflow._errors``, chosen by the core's status code; an exception raised
  by a Python callback (guard, hook, action) propagates unchanged, with its
  own type and traceback, after the core rolled back.
"""

from typing import Any, Callable, Dict, List, Optional, Sequence

class Workflow:
    """A state graph being defined or registered."""

    def __init__(self, name: str, version: int = 1) -> None: ...
    @property
    def name(self) -> str: ...
    @property
    def version(self) -> int: ...
    def add_state(self, name: str, role: str = "normal") -> None:
        """role: 'normal', 'initial' or 'terminal'."""
    def add_transition(
        self,
        event: str,
        source: str,
        target: str,
        guards: Sequence[str] = (),
        actions: Sequence[str] = (),
        internal: bool = False,
    ) -> None: ...
    def add_attribute(
        self, name: str, type: str = "text", required: bool = False
    ) -> None:
        """type: text, integer, decimal, timestamp, duration, boolean."""
    def validate(self) -> list[dict[str, str]]:
        """Problems as dicts with keys kind, state, event, message."""
    def states(self) -> list[tuple[str, str]]:
        """(name, role) in declaration order."""
    def transitions(self) -> list[dict[str, Any]]:
        """Dicts with event, source, target, guards, actions, internal."""
    def attributes(self) -> list[tuple[str, str, bool]]:
        """(name, type, required) in declaration order."""
    def events_from(self, state: str) -> list[str]: ...
    def to_dot(self) -> str: ...

class CallContext:
    """What a Python guard, hook or action receives (valid during the call
    only)."""

    transaction: Transaction  # the transaction before the transition
    case: dict[str, Any]  # its attributes (same as transaction.attributes)
    event: str
    from_state: str
    to_state: str
    time: int
    actor: str
    payload: str  # JSON text or ""

class Transaction:
    id: str
    kind: str
    state: str
    customer_id: str  # "" when none
    parent_id: str  # "" when none
    attributes: dict[str, Any]
    version: int
    workflow_version: int
    created_at: int
    updated_at: int
    state_entered_at: int

class Engine:
    def __init__(
        self,
        path: str = "",
        clock: Optional[Callable[[], Any]] = None,
        zone: str = "UTC",
    ) -> None:
        """path: '' memory store, ':memory:' SQLite in memory, else a file.

        clock returns the time (int microseconds UTC or a datetime); default
        the system clock.  zone: IANA zone for naive datetimes.
        """
    @property
    def zone(self) -> str: ...
    @property
    def path(self) -> str: ...
    def close(self) -> None:
        """Drops callbacks and closes the store; further calls raise."""
    def _check_closable(self) -> None:
        """Raises InvalidArgumentError where close() would (in a callback)."""
    def now(self) -> int: ...
    def register(self, workflow: Workflow, definition: str = "") -> None: ...
    def kinds(self) -> list[str]: ...
    def workflow(self, kind: str) -> Workflow:
        """A copy of the registered workflow; NotFoundError when absent."""
    def stored_workflows(self) -> list[tuple[str, int, str]]:
        """(name, version, definition) for every stored definition."""
    def register_guard(
        self, name: str, fn: Callable[[CallContext], Any]
    ) -> None:
        """fn returns a truthy value to allow and a falsy one to refuse; a
        tuple (allowed, reason) refuses with that reason shown to the
        caller."""
    def register_action(
        self, name: str, fn: Callable[[CallContext], None]
    ) -> None: ...
    def on_enter(
        self, kind: str, state: str, fn: Callable[[CallContext], None]
    ) -> None: ...
    def on_exit(
        self, kind: str, state: str, fn: Callable[[CallContext], None]
    ) -> None: ...
    def create(
        self,
        kind: str,
        id: str,
        customer_id: str = "",
        parent_id: str = "",
        attributes: Optional[dict[str, Any]] = None,
        time: Any = None,
        actor: str = "",
        source: str = "",
    ) -> Transaction: ...
    def fire(
        self,
        id: str,
        event: str,
        time: Any = None,
        actor: str = "",
        payload: Any = "",
        expected_version: Optional[int] = None,
        source: str = "",
    ) -> str:
        """Returns the state the transaction is in when the call ends."""
    def allowed_events(self, id: str) -> list[str]: ...
    def set_attributes(
        self, id: str, attributes: dict[str, Any], expected_version: int
    ) -> Transaction: ...
    def get(self, id: str) -> Transaction: ...
    def list(self, kind: str = "", state: str = "") -> list[Transaction]: ...
    def transaction_columns(
        self, kind: str = "", state: str = ""
    ) -> dict[str, list[Any]]:
        """Columns id, kind, state, customer_id, parent_id (None when
        empty), version, workflow_version, created_at, updated_at,
        state_entered_at (int us) and attributes (dicts)."""
    def history(
        self,
        transaction_id: str = "",
        kind: str = "",
        start: Any = None,
        end: Any = None,
    ) -> dict[str, list[Any]]:
        """Columns seq, transaction_id, event, from_state (None for the
        creation row), to_state, time (int us), actor, payload, internal,
        workflow_version, source."""
    def deviations(self, kind: str = "") -> dict[str, list[Any]]:
        """Columns id, transaction_id, kind, position, state, event, time,
        reason, source."""
    def imports(self) -> dict[str, list[Any]]:
        """Columns id, file, kind, started_at, cases, events_applied,
        deviations, rejected, skipped."""
    def replay(
        self,
        ids: Sequence[str],
        events: Sequence[str],
        times: Sequence[int],
        actors: Optional[Sequence[str]] = None,
        payloads: Optional[Sequence[str]] = None,
        sources: Optional[Sequence[str]] = None,
        commit_every: int = 0,
        record_deviations: bool = True,
    ) -> dict[str, int]:
        """Keys applied, deviations, skipped."""
    def begin(self) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def report(self) -> list[dict[str, Any]]:
        """Per kind: kind, transactions, by_state {state: n}, reached
        {state: n}, transitions [{from_state, to_state, event, count,
        median_seconds, p90_seconds}], deviations."""
    def import_event_log(
        self, path: str, mapping: dict[str, Any]
    ) -> dict[str, Any]: ...
    def import_milestones(
        self, path: str, mapping: dict[str, Any]
    ) -> dict[str, Any]:
        """mapping keys (all optional but kind, case_columns and the time
        columns): kind, case_columns [str], customer_column, parent_column,
        id_prefix, attributes [(column, attribute, type)], time_format,
        time_zone, null_values [str], delimiter (str of length 1 or ''),
        on_error ('collect' | 'raise'), commit_every; event logs:
        activity_column, time_column, actor_column, payload_columns [str],
        activity_map {value: event}, status_map {value: state};
        milestones: created_column, milestones [(column, [event, ...])],
        status_column, status_map {value: state}.

        Returns the summary: file, kind, rows, cases, created,
        events_applied, deviations, unchanged, ignored, skipped, inferred,
        rejects [(file, line, column, case_id, reason)]."""

def parse_timestamp(text: str, format: str = "", zone: str = "UTC") -> int:
    """Parses with the core's timestamp parser; raises ParseError."""

def format_local(micros: int, zone: str) -> str:
    """ISO 8601 with the zone's offset at that instant."""

def decimal_round(text: str, places: int) -> str:
    """Rounds a decimal half away from zero."""

def worker_threads() -> int:
    """Threads the scans of a large event log use."""

def set_worker_threads(threads: int) -> None:
    """Sets them (1 to 64; 0: CRMFLOW_THREADS or the machine's cores, up
    to 8); results never depend on it."""

class Approvals:
    """crmflow::Approvals (approvals.h): rows are dicts, times int
    microseconds UTC; see crmflow.approvals for the public API."""

    def __init__(self, engine: Engine, router: Any = None) -> None: ...
    def set_router(self, router: Any) -> None: ...
    def set_matrix(self, matrix: Dict[str, Any]) -> None: ...
    def matrix(self, kind: str) -> Dict[str, Any]: ...
    def approve(self, txn_id: str, actor: str, time: Any = None,
                comment: str = "", on_behalf_of: str = ""
                ) -> Dict[str, Any]: ...
    def reject(self, txn_id: str, actor: str, time: Any = None,
               comment: str = "", on_behalf_of: str = ""
               ) -> Dict[str, Any]: ...
    def delegate(self, actor: str, substitute: str, start: Any,
                 end: Any) -> int: ...
    def remove_delegation(self, id: int) -> None: ...
    def delegations(self, actor: str = "") -> List[Dict[str, Any]]: ...
    def open_requests(self, kind: str = "") -> List[Dict[str, Any]]: ...
    def requests(self, txn_id: str = "") -> List[Dict[str, Any]]: ...
    def decisions(self, txn_id: str = "") -> List[Dict[str, Any]]: ...
    def pending(self, actor: str, at: Any = None) -> List[Dict[str, Any]]: ...

def approval_chain(matrix: Dict[str, Any], attributes: Dict[str, Any],
                   types: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """The chain of a matrix dict for attributes: band, index, steps."""
