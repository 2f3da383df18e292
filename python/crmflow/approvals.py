"""
Approval matrices, approval chains, decisions and delegation.

An :class:`ApprovalMatrix` is data: per kind, an ordered list of
:class:`Band` objects, each with a condition in the expression language of
the rules (``"amount <= 1000"``) and the chain of :class:`Step` objects it
requires; the first band whose condition holds wins.  A step names its
approvers (actor ids, or a routing team whose available members approve)
and its mode, ``"unanimous"`` (all must approve) or ``"first"`` (the first
response decides).  :meth:`ApprovalMatrix.chain` computes the chain for a
dict of attributes without an engine, e.g. to count approvals needed.

Attached to an engine (``engine.approvals``), a matrix opens a request
whenever a transaction of its kind enters the requesting state (by default
``pending_approval``), with the chain of that moment.  An empty chain fires
the approve event at once (recorded as automatic); otherwise
:meth:`Approvals.approve` and :meth:`Approvals.reject` record decisions,
and completing the last step fires the approve event, a rejection the
reject event.  Each decision and the event it fires are one store
transaction.  :meth:`Approvals.delegate` lets a substitute decide for an
approver during a window.

Matrices are stored in the engine's database (tables
``approval_matrices``, ``approval_matrix_bands``, ``approval_matrix_steps``)
so a notebook, a script and the CLI opening the same file see the same
ones; an engine opened on a file that holds matrices attaches its
approvals by itself.  A stored matrix that no longer validates against
its workflow is listed by :meth:`Approvals.problems` (and
``engine.validate_rules()``), and entering its requesting state is refused.

Limitations: member calendars of team steps are ignored (only the
members' availability counts); the automatic approval is an engine rule
named ``approvals:<kind>:automatic`` (plus ``...:automatic-on-create``
when the requesting state is the initial one), visible in
``engine.rules()``.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import dataclasses
import weakref
from typing import Any, Dict, List, Mapping, Optional, Sequence

from crmflow import _pandas as pd  # pandas on first use

from crmflow import _core
from crmflow._args import _check_str
from crmflow._errors import InvalidArgumentError

__all__ = [
    "ApprovalChain",
    "ApprovalMatrix",
    "Approvals",
    "Band",
    "Step",
]

_MODES = ("unanimous", "first")


@dataclasses.dataclass(frozen=True)
class Step:
    """
    One step of an approval chain.

    Attributes:
        name: The step's name, e.g. ``"manager"``.
        approvers: Actor ids; leave empty when ``team`` is given.
        team: A routing team whose available members approve.
        mode: ``"unanimous"`` (default) or ``"first"``.
    """

    name: str
    approvers: Sequence[str] = ()
    team: str = ""
    mode: str = "unanimous"

    def __post_init__(self) -> None:
        _check_str(self.name, "step name")
        if not self.name.strip():
            raise InvalidArgumentError("step name must not be blank")
        _check_str(self.team, "team", empty=True)
        if isinstance(self.approvers, str):
            message = (
                f"step {self.name!r}: approvers must be a list of ids "
                f"(got the str {self.approvers!r})"
            )
            raise InvalidArgumentError(message)
        if self.mode not in _MODES:
            message = (
                f"step {self.name!r}: unknown mode {self.mode!r} "
                "(expected unanimous or first)"
            )
            raise InvalidArgumentError(message)
        object.__setattr__(self, "approvers", tuple(self.approvers))
        for i, a in enumerate(self.approvers, 1):
            _check_str(a, f"step {self.name!r}: approver {i}")
            if not a.strip():
                # No actor id is blank: such an approver could never
                # decide, and a unanimous step would wait for ever.
                message = (
                    f"step {self.name!r}: approver {i} is blank "
                    "(expected an actor id)"
                )
                raise InvalidArgumentError(message)
            if a != a.strip():
                # Actors are matched exactly: " mia" could never decide.
                message = (
                    f"step {self.name!r}: approver {i} {a!r} has spaces "
                    "around it (expected an actor id)"
                )
                raise InvalidArgumentError(message)

    def _to_dict(self) -> Dict[str, Any]:
        return {
            "name": self.name,
            "approvers": list(self.approvers),
            "team": self.team,
            "mode": self.mode,
        }

    @classmethod
    def _from_dict(cls, d: Mapping[str, Any]) -> "Step":
        return cls(d["name"], tuple(d["approvers"]), d["team"], d["mode"])


@dataclasses.dataclass(frozen=True)
class Band:
    """
    One band of a matrix.

    Attributes:
        name: Unique within the matrix.
        condition: An expression over the kind's attributes, required:
            ``"true"`` matches everything.  (A band without one would
            silently catch every transaction, and an automatic band would
            approve them all.)
        steps: The chain; empty means approved automatically.

    Raises:
        InvalidArgumentError: A blank name or condition (naming the band).
    """

    name: str
    condition: str
    steps: Sequence[Step] = ()

    def __post_init__(self) -> None:
        _check_str(self.name, "band name")
        if not self.name.strip():
            raise InvalidArgumentError("band name must not be blank")
        if self.condition is None:
            message = (
                f"band {self.name!r}: condition is None (expected an "
                "expression, or \"true\" for a band that matches everything)"
            )
            raise InvalidArgumentError(message)
        _check_str(self.condition, f"band {self.name!r}: condition",
                   empty=True)
        if not self.condition.strip():
            message = (
                f"band {self.name!r}: blank condition (expected an "
                "expression, or \"true\" for a band that matches everything)"
            )
            raise InvalidArgumentError(message)
        object.__setattr__(self, "steps", tuple(self.steps))
        for step in self.steps:
            if not isinstance(step, Step):
                message = f"band {self.name!r}: steps must be Step objects"
                raise InvalidArgumentError(message)


@dataclasses.dataclass(frozen=True)
class ApprovalChain:
    """
    The chain a matrix gives one set of attributes.

    Attributes:
        band: The name of the band that matched.
        steps: Its steps in order; ``len(chain)`` counts them.
    """

    band: str
    steps: Sequence[Step]

    def __len__(self) -> int:
        return len(self.steps)


@dataclasses.dataclass(frozen=True)
class ApprovalMatrix:
    """
    The approval matrix of one kind.

    Attributes:
        kind: The kind it applies to.
        bands: Tried in order; the first whose condition holds wins.
        request_state: Entering it opens a request.
        approve_event: Fired when the chain completes.
        reject_event: Fired on a rejection; its transition names the
            state the transaction returns to.
    """

    kind: str
    bands: Sequence[Band]
    request_state: str = "pending_approval"
    approve_event: str = "approve"
    reject_event: str = "reject"

    def __post_init__(self) -> None:
        for value, what in [
            (self.kind, "kind"), (self.request_state, "request_state"),
            (self.approve_event, "approve_event"),
            (self.reject_event, "reject_event"),
        ]:
            _check_str(value, what)
        object.__setattr__(self, "bands", tuple(self.bands))
        for band in self.bands:
            if not isinstance(band, Band):
                message = f"matrix {self.kind!r}: bands must be Band objects"
                raise InvalidArgumentError(message)

    def _to_dict(self) -> Dict[str, Any]:
        return {
            "kind": self.kind,
            "request_state": self.request_state,
            "approve_event": self.approve_event,
            "reject_event": self.reject_event,
            "bands": [
                {
                    "name": b.name,
                    "condition": b.condition,
                    "steps": [s._to_dict() for s in b.steps],
                }
                for b in self.bands
            ],
        }

    def to_dict(self) -> Dict[str, Any]:
        """
        Returns the matrix as plain data (what :meth:`from_dict` reads and
        ``crmflow approvals set-matrix`` takes as JSON).
        """
        return self._to_dict()

    @classmethod
    def from_dict(
        cls, d: Any, where: str = "approval matrix"
    ) -> "ApprovalMatrix":
        """
        Builds a matrix from plain data: ``kind``, ``bands`` (each with
        ``name``, ``condition`` (``"true"`` for a catch-all) and optional
        ``steps``; a step with
        ``name`` and ``approvers`` or ``team``, optional ``mode``) and
        optional ``request_state``, ``approve_event``, ``reject_event``.

        Raises:
            InvalidArgumentError: A missing or unknown key, or a value of
                the wrong type; the message starts with ``where`` and
                names the band or step.
        """

        def check(obj: Any, what: str, required: Sequence[str],
                  optional: Sequence[str]) -> Mapping[str, Any]:
            if not isinstance(obj, Mapping):
                message = f"{what}: expected an object (got {obj!r})"
                raise InvalidArgumentError(message)
            unknown = sorted(set(obj) - set(required) - set(optional))
            missing = [k for k in required if k not in obj]
            if unknown or missing:
                expected = ", ".join(list(required) + list(optional))
                bad = unknown[0] if unknown else missing[0]
                word = "unknown" if unknown else "missing"
                message = f"{what}: {word} key {bad!r} (expected {expected})"
                raise InvalidArgumentError(message)
            return obj

        top = check(d, where, ("kind", "bands"),
                    ("request_state", "approve_event", "reject_event"))
        if not isinstance(top["bands"], list):
            raise InvalidArgumentError(f"{where}: bands must be a list")
        bands = []
        for i, b in enumerate(top["bands"], 1):
            bw = f"{where}: band {i}"
            b = check(b, bw, ("name", "condition"), ("steps",))
            if not isinstance(b["condition"], str):
                message = (
                    f"{bw} ({b['name']!r}): condition must be a str "
                    f"(got {b['condition']!r}; \"true\" matches everything)"
                )
                raise InvalidArgumentError(message)
            steps = []
            raw = b.get("steps", [])
            if not isinstance(raw, list):
                raise InvalidArgumentError(f"{bw}: steps must be a list")
            for k, st in enumerate(raw, 1):
                sw = f"{bw}: step {k}"
                st = check(st, sw, ("name",), ("approvers", "team", "mode"))
                approvers = st.get("approvers", [])
                if not isinstance(approvers, list):
                    message = f"{sw}: approvers must be a list"
                    raise InvalidArgumentError(message)
                steps.append(Step(st["name"], tuple(approvers),
                                  st.get("team", "") or "",
                                  st.get("mode", "unanimous")))
            bands.append(Band(b["name"], b["condition"], steps))
        extra = {k: top[k] for k in
                 ("request_state", "approve_event", "reject_event")
                 if k in top}
        return cls(top["kind"], bands, **extra)

    @classmethod
    def _from_dict(cls, d: Mapping[str, Any]) -> "ApprovalMatrix":
        bands = [
            Band(b["name"], b["condition"] or "true",
                 [Step._from_dict(s) for s in b["steps"]])
            for b in d["bands"]
        ]
        return cls(d["kind"], bands, d["request_state"], d["approve_event"],
                   d["reject_event"])

    def chain(
        self,
        attributes: Mapping[str, Any],
        *,
        types: Optional[Mapping[str, str]] = None,
    ) -> ApprovalChain:
        """
        Returns the chain for ``attributes``, without an engine.

        Args:
            attributes: Attribute values as the engine takes them (str,
                int, bool, Decimal, datetime, timedelta, None); a name the
                conditions read but absent here is an unknown name.  Money
                is a Decimal or an int (exact, compared by value:
                ``{"amount": 1000}`` is in the band of ``Decimal("1000")``);
                a float (also numpy's) is refused, since a binary float
                cannot hold most amounts exactly.
            types: Optional declared types by name (``"decimal"``, ...),
                as a workflow would declare them.

        Raises:
            NotFoundError: No band matches (the message names the values
                read).
            ParseError: A condition does not parse or type-check.
            InvalidArgumentError: A bad matrix or value; for a float, the
                message names the attribute (``attribute "amount": binary
                floats are refused ...``).
        """
        result = _core.approval_chain(
            self._to_dict(), dict(attributes),
            None if types is None else dict(types),
        )
        steps = tuple(Step._from_dict(s) for s in result["steps"])
        return ApprovalChain(result["band"], steps)


_REQUEST_COLUMNS = [
    "id", "transaction_id", "kind", "band", "status", "current_step",
    "step_name", "steps", "opened_at", "closed_at", "outcome_event",
    "automatic",
]
_DECISION_COLUMNS = [
    "id", "request_id", "transaction_id", "step", "step_name", "actor",
    "on_behalf_of", "decision", "time", "comment",
]
_PENDING_COLUMNS = [
    "request_id", "transaction_id", "kind", "step", "step_name", "mode",
    "actor", "on_behalf_of", "opened_at",
]
_DELEGATION_COLUMNS = [
    "id", "actor", "substitute", "starts_at", "ends_at", "created_at",
]


def _frame(rows: List[Dict[str, Any]], columns: List[str],
           times: Sequence[str]) -> "pd.DataFrame":
    frame = pd.DataFrame(rows, columns=columns)
    for c in times:
        frame[c] = pd.to_datetime(frame[c], unit="us", utc=True)
    return frame


class Approvals:
    """
    The approval requests, decisions and delegations of one engine.

    Use ``engine.approvals`` (one per engine: a second object would open
    every request twice).  Not thread-safe; use it from the engine's
    thread.  The engine holds it, and it refers to the engine weakly, so
    an engine with approvals is freed like any other; it keeps its router
    alive until the engine is closed.

    Example::

        engine.approvals.set_matrix(ApprovalMatrix("sales_order", [
            Band("small", "amount <= 1000"),
            Band("medium", "amount <= 10000", [Step("manager", ["mia"])]),
            Band("large", "true", [Step("manager", ["mia"]),
                                   Step("director", ["dan"])]),
        ]))
        engine.fire("SO-1", "submit")
        engine.approvals.approve("SO-1", "mia", comment="ok")
    """

    def __init__(self, engine: Any, router: Any = None) -> None:
        """
        Attaches to ``engine``, creating the approval tables when absent.

        Args:
            engine: A :class:`crmflow.Engine`.
            router: Optional :class:`crmflow.Router` resolving team steps.

        Raises:
            InvalidArgumentError: The engine already has approvals.
            StoreError: The tables cannot be created.
        """
        if getattr(engine, "_approvals", None) is not None:
            message = (
                "this engine already has approvals (use engine.approvals)"
            )
            raise InvalidArgumentError(message)
        self._engine = weakref.ref(engine)
        self._core = _core.Approvals(engine, _router_core(router))
        self._router: Any = None
        engine._approvals = self
        self._keep_router(engine, router)

    def __repr__(self) -> str:
        return f"<Approvals of {self._engine()!r}>"

    def set_router(self, router: Any) -> None:
        """
        Sets (None: clears) the router that resolves team approvers.
        """
        self._core.set_router(_router_core(router))
        engine = self._engine()
        if engine is not None:
            self._keep_router(engine, router)

    def _keep_router(self, engine: Any, router: Any) -> None:
        # The router refers to the engine from C++, a link the garbage
        # collector cannot follow: closing the engine breaks the cycle.
        if router is not None and self._router is None:
            engine.on_close(_forget_approvals)
        self._router = router

    def set_matrix(self, matrix: ApprovalMatrix) -> None:
        """
        Validates ``matrix`` against its kind's workflow, stores it in the
        engine's database and installs it, replacing the kind's previous
        one (open requests keep their chains).

        Raises:
            NotFoundError: The kind is not registered.
            ValidationError: The state or an event is unknown, or an event
                does not leave the requesting state.
            ParseError: A condition does not parse or type-check.
            InvalidArgumentError: A bad name, mode, approver or team.
        """
        if not isinstance(matrix, ApprovalMatrix):
            message = (
                f"matrix must be an ApprovalMatrix (got {matrix!r})"
            )
            raise InvalidArgumentError(message)
        self._core.set_matrix(matrix._to_dict())

    def matrix(self, kind: str) -> ApprovalMatrix:
        """
        Returns the matrix installed for ``kind``.

        Raises:
            NotFoundError: No matrix for that kind.
        """
        _check_str(kind, "kind")
        return ApprovalMatrix._from_dict(self._core.matrix(kind))

    def remove_matrix(self, kind: str) -> None:
        """
        Removes the kind's matrix from the database (and its
        automatic-approval rules); open requests stay open and keep their
        chains, so they can still be decided.

        Raises:
            NotFoundError: No matrix for that kind.
        """
        self._core.remove_matrix(_check_str(kind, "kind"))

    def matrices(self) -> List[ApprovalMatrix]:
        """
        Returns the matrices stored in the database, by kind, including
        any that no longer validate (see :meth:`problems`).
        """
        stored = self._core.stored_matrices()
        return [ApprovalMatrix._from_dict(d) for d in stored]

    def problems(self) -> List[str]:
        """
        Returns one message per stored matrix that does not validate
        against the registered workflows, naming kind, band and problem;
        empty when all are fine.
        """
        return list(self._core.problems())

    def reload(self) -> None:
        """
        Reads the stored matrices again and validates them (the engine
        does this after registering a workflow).
        """
        self._core.reload()

    def approve(
        self,
        txn_id: str,
        actor: str,
        *,
        time: Any = None,
        comment: str = "",
        on_behalf_of: str = "",
    ) -> Dict[str, Any]:
        """
        Records an approval of the current step of ``txn_id``'s open
        request; completing the last step fires the approve event in the
        same store transaction.

        Args:
            txn_id: The transaction.
            actor: Who decides: an approver of the step, or a substitute
                of one (then recorded on behalf of that approver).
            time: When (datetime or int microseconds UTC); default now.
            comment: Free text kept with the decision.
            on_behalf_of: The approver a substitute decides for; default
                the first one who delegated to ``actor`` and has not
                decided.

        Returns:
            A dict: decision_id, request_id, status, current_step,
            fired_event, state, on_behalf_of.

        Raises:
            NotFoundError: Unknown transaction, or no open request.
            NotAllowedError: ``actor`` is not an approver of the current
                step (nor a substitute of one at ``time``), or already
                voted at this step in another capacity (one vote per
                person per step).
            AlreadyExistsError: The approver already decided this step.
            InvalidArgumentError: ``time`` is before the request was
                opened (the message names both times).
            Other crmflow errors or callback exceptions of the fired
            event; nothing of the decision is kept then.
        """
        return self._core.approve(
            *_decision_args(txn_id, actor, time, comment, on_behalf_of)
        )

    def reject(
        self,
        txn_id: str,
        actor: str,
        *,
        time: Any = None,
        comment: str = "",
        on_behalf_of: str = "",
    ) -> Dict[str, Any]:
        """
        Records a rejection: the request closes and the reject event is
        fired in the same store transaction.  Arguments, result and errors
        as :meth:`approve`.
        """
        return self._core.reject(
            *_decision_args(txn_id, actor, time, comment, on_behalf_of)
        )

    def delegate(self, actor: str, substitute: str, start: Any,
                 end: Any) -> int:
        """
        Lets ``substitute`` decide for ``actor`` from ``start`` (included)
        to ``end`` (excluded); returns the delegation's id.

        Raises:
            InvalidArgumentError: Self-delegation, empty names, or ``end``
                not after ``start``.
            AlreadyExistsError: The window overlaps another of ``actor``.
        """
        _check_str(actor, "actor")
        _check_str(substitute, "substitute")
        return self._core.delegate(actor, substitute, start, end)

    def remove_delegation(self, delegation_id: int) -> None:
        """
        Removes a delegation.

        Raises:
            NotFoundError: No delegation with that id.
        """
        self._core.remove_delegation(delegation_id)

    def delegations(self, actor: str = "") -> "pd.DataFrame":
        """
        Returns the delegations (of one actor, or all) by id.
        """
        _check_str(actor, "actor", empty=True)
        return _frame(self._core.delegations(actor), _DELEGATION_COLUMNS,
                      ["starts_at", "ends_at", "created_at"])

    def open_requests(self, kind: str = "") -> "pd.DataFrame":
        """
        Returns the open requests (of one kind, or all) by id; ``steps``
        holds the chain as a list of dicts.
        """
        _check_str(kind, "kind", empty=True)
        return _frame(self._core.open_requests(kind), _REQUEST_COLUMNS,
                      ["opened_at", "closed_at"])

    def requests(self, txn_id: str = "") -> "pd.DataFrame":
        """
        Returns every request (of one transaction, or all) by id, closed
        ones included.
        """
        _check_str(txn_id, "txn_id", empty=True)
        return _frame(self._core.requests(txn_id), _REQUEST_COLUMNS,
                      ["opened_at", "closed_at"])

    def decisions(self, txn_id: str = "") -> "pd.DataFrame":
        """
        Returns the decision history (of one transaction, or all) by id.
        """
        _check_str(txn_id, "txn_id", empty=True)
        return _frame(self._core.decisions(txn_id), _DECISION_COLUMNS,
                      ["time"])

    def pending(self, actor: str, *, at: Any = None) -> "pd.DataFrame":
        """
        Returns the current steps ``actor`` may decide at ``at`` (default
        now), as an approver and as a substitute (``on_behalf_of`` set).
        """
        _check_str(actor, "actor")
        return _frame(self._core.pending(actor, at), _PENDING_COLUMNS,
                      ["opened_at"])


def _decision_args(txn_id: Any, actor: Any, time: Any, comment: Any,
                   on_behalf_of: Any) -> tuple:
    return (
        _check_str(txn_id, "txn_id"),
        _check_str(actor, "actor"),
        time,
        _check_str(comment, "comment", empty=True),
        _check_str(on_behalf_of, "on_behalf_of", empty=True),
    )


def _forget_approvals(engine: Any) -> None:
    approvals = getattr(engine, "_approvals", None)
    engine._approvals = None
    if approvals is not None:
        approvals._router = None


def _router_core(router: Any) -> Any:
    if router is None:
        return None
    core = getattr(router, "_core", router)
    if not isinstance(core, _core.Router):
        message = f"router must be a crmflow.Router (got {router!r})"
        raise InvalidArgumentError(message)
    return core
