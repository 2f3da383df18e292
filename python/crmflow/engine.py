"""
The engine: creates CRM transactions, fires events, imports exports and
reports on the history.

:class:`Engine` is a subclass of the core's engine (``crmflow._core``), so
:meth:`Engine.fire` is the C++ method itself; the Python layer adds
keyword arguments, argument checks, DataFrames, decorators for callbacks,
a context manager for grouped writes and the import mappings.

Times: every time argument accepts an aware :class:`datetime.datetime`,
a naive one (read as wall-clock time in the engine's ``zone``), an ``int``
of microseconds since the epoch (UTC) or an ISO 8601 string.  Times read
back are aware UTC datetimes (``datetime64[us, UTC]`` in DataFrames).

Example::

    import crmflow

    with crmflow.Engine("crm.db", zone="Europe/Berlin") as engine:
        engine.register("sales_order")
        engine.create("sales_order", "SO-1", customer="C-7")
        engine.fire("SO-1", "submit")
        print(engine.history("SO-1"))

One engine may be shared by several threads: its calls are serialised
(see :class:`Engine`).  Several processes may share one SQLite file.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import logging
import math
import os
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import numpy as np

from crmflow import _pandas as pd  # pandas on first use
from crmflow import _core
from crmflow._args import _check_str, _not_utf8, _path_arg  # noqa: F401
from crmflow._errors import InvalidArgumentError, NotFoundError
from crmflow.workflow import Workflow

__all__ = [
    "Engine",
    "Guard",
    "ImportSummary",
    "Reject",
    "Transaction",
]

_log = logging.getLogger("crmflow")
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_ON_ERROR = ("collect", "raise")


def _utc(micros: int) -> datetime.datetime:
    """
    Returns the aware UTC datetime of ``micros`` since the epoch.
    """
    return _EPOCH + datetime.timedelta(microseconds=int(micros))


def _time_column(values: Sequence[int]) -> pd.Series:
    """
    Returns int microseconds as a ``datetime64[us, UTC]`` Series, without a
    Python loop over the rows.
    """
    raw = np.asarray(values, dtype=np.int64).view("datetime64[us]")
    return pd.Series(raw).dt.tz_localize("UTC")


def _finite(value: Any) -> Optional[float]:
    """
    Returns ``value`` as a float, or None for None, NaN and infinities.
    """
    if value is None:
        return None
    value = float(value)
    # Times are kept to the microsecond; more digits are float noise.
    return round(value, 6) if math.isfinite(value) else None


def _is_int64(value: Any) -> bool:
    """
    Returns True for an int (not a bool) that fits a signed 64-bit int.
    """
    return (isinstance(value, int) and not isinstance(value, bool)
            and -(2**63) <= value < 2**63)


def _opt_str(value: Optional[str], name: str) -> str:
    """
    Returns ``value`` or ``""`` for None, checking it is a string.
    """
    return "" if value is None else _check_str(value, name, empty=True)


def _columns(value: Any, name: str) -> List[str]:
    """
    Returns one column name or a list of them as a list.

    Raises:
        InvalidArgumentError: Not a non-empty string or list of them.
    """
    if isinstance(value, str):
        value = [value]
    if (
        not isinstance(value, (list, tuple))
        or not value
        or not all(isinstance(v, str) and v for v in value)
    ):
        message = f"{name} must be a column name or a list of column names"
        raise InvalidArgumentError(message)
    return list(value)


def _str_map(value: Any, name: str) -> Dict[str, str]:
    """
    Returns a {str: str} mapping, checked.

    Raises:
        InvalidArgumentError: Not a mapping of strings to strings.
    """
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        message = f"{name} must be a dict of strings to strings"
        raise InvalidArgumentError(message)
    return dict(value)


@dataclasses.dataclass(frozen=True)
class Transaction:
    """
    A CRM transaction as stored (a snapshot; it does not follow changes).

    Attributes:
        id: Its id, unique across kinds.
        kind: The workflow it follows.
        state: Its current state.
        customer_id: The customer, or None.
        parent_id: The linked transaction, or None.
        attributes: Typed values (str, int, Decimal, aware datetime,
            timedelta, bool or None).
        version: 1 after create, +1 on every accepted write.
        workflow_version: The workflow version it was created under.
        created_at: Aware UTC datetime.
        updated_at: Aware UTC datetime.
        state_entered_at: When it entered ``state``, aware UTC datetime.
    """

    id: str
    kind: str
    state: str
    customer_id: Optional[str]
    parent_id: Optional[str]
    attributes: Dict[str, Any] = dataclasses.field(hash=False)
    version: int
    workflow_version: int
    created_at: datetime.datetime
    updated_at: datetime.datetime
    state_entered_at: datetime.datetime

    @classmethod
    def _from_core(cls, txn: Any) -> "Transaction":
        """
        Converts a ``_core.Transaction``.
        """
        return cls(
            id=txn.id,
            kind=txn.kind,
            state=txn.state,
            customer_id=txn.customer_id or None,
            parent_id=txn.parent_id or None,
            attributes=dict(txn.attributes),
            version=int(txn.version),
            workflow_version=int(txn.workflow_version),
            created_at=_utc(txn.created_at),
            updated_at=_utc(txn.updated_at),
            state_entered_at=_utc(txn.state_entered_at),
        )

    def local(self, zone: str) -> "Transaction":
        """
        Returns a copy whose times (and timestamp attributes) are shown in
        ``zone``; the instants are unchanged.

        Args:
            zone: An IANA zone name, e.g. ``"Europe/Berlin"``.

        Raises:
            InvalidArgumentError: The zone is unknown.
        """
        tz = _zone(zone)
        attributes = {
            k: v.astimezone(tz) if isinstance(v, datetime.datetime) else v
            for k, v in self.attributes.items()
        }
        return dataclasses.replace(
            self,
            attributes=attributes,
            created_at=self.created_at.astimezone(tz),
            updated_at=self.updated_at.astimezone(tz),
            state_entered_at=self.state_entered_at.astimezone(tz),
        )


def _zone(name: str) -> datetime.tzinfo:
    """
    Returns the tzinfo of IANA zone ``name``.

    Raises:
        InvalidArgumentError: The zone is unknown.
    """
    import zoneinfo

    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidArgumentError(f'unknown time zone "{name}"') from None


class Reject(NamedTuple):
    """
    A row an import could not use (its whole case was left out).
    """

    file: str
    line: int
    column: int
    case_id: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.reason}"


@dataclasses.dataclass(frozen=True)
class ImportSummary:
    """
    What one import did.

    Attributes:
        file: The file read.
        kind: The kind imported.
        rows: Data rows read.
        cases: Cases imported (created or continued).
        created: Transactions created.
        events_applied: Transitions written (creation rows not counted).
        deviations: Events the workflow did not allow (recorded).
        unchanged: Status rows repeating the current state.
        ignored: Activities mapped to ``""``.
        skipped: Rows already imported before (same source key).
        inferred: Events fired to reach a final status.
        in_rejected_cases: Event logs: rows read without fault whose case
            another row rejected (a bad row rejects its whole case), so
            not imported.
        rejects: Rows that could not be used, as :class:`Reject`.
    """

    file: str
    kind: str
    rows: int
    cases: int
    created: int
    events_applied: int
    deviations: int
    unchanged: int
    ignored: int
    skipped: int
    inferred: int
    in_rejected_cases: int
    rejects: List[Reject] = dataclasses.field(hash=False)

    @classmethod
    def _from_core(cls, summary: Dict[str, Any]) -> "ImportSummary":
        """
        Converts the summary dict of ``_core``.
        """
        counts = {
            f.name: int(summary.get(f.name, 0))
            for f in dataclasses.fields(cls)
            if f.name not in ("file", "kind", "rejects")
        }
        rejects = [Reject(*r) for r in summary.get("rejects", [])]
        return cls(
            file=summary.get("file", ""),
            kind=summary.get("kind", ""),
            rejects=rejects,
            **counts,
        )

    def rejects_frame(self) -> pd.DataFrame:
        """
        Returns the rejects as a DataFrame (columns of :class:`Reject`).
        """
        return pd.DataFrame(list(self.rejects), columns=list(Reject._fields))

    def __str__(self) -> str:
        return (
            f"{os.path.basename(self.file)} -> {self.kind}: "
            f"{self.rows} rows, {self.cases} cases, {self.created} created, "
            f"{self.events_applied} events, {self.inferred} inferred, "
            f"{self.deviations} deviations, {self.unchanged} unchanged, "
            f"{self.ignored} ignored, {self.skipped} skipped, "
            f"{len(self.rejects)} rejected"
            + (f" ({self.in_rejected_cases} more rows in rejected cases)"
               if self.in_rejected_cases else "")
        )


class Guard:
    """
    Base class of guard objects.

    Subclass it and override :meth:`check`; register an instance with
    :meth:`Engine.add_guard`.  The engine keeps the instance alive as long
    as it lives (and no longer).

    Example::

        class VipGuard(crmflow.Guard):
            def check(self, ctx):
                return ctx.case.get("tier") == "gold"

        engine.add_guard("vip", VipGuard())
    """

    def check(self, ctx: Any) -> Any:
        """
        Returns a truthy value to allow the transition, a falsy one (or a
        tuple ``(False, reason)``) to refuse it.

        Args:
            ctx: The call context: ``transaction``, ``case`` (its
                attributes), ``event``, ``from_state``, ``to_state``,
                ``time`` (int microseconds UTC), ``actor``, ``payload``.
        """
        raise NotImplementedError("Guard subclasses must override check")

    def __call__(self, ctx: Any) -> Any:
        return self.check(ctx)


def _callback(fn: Any, name: str) -> Callable[..., Any]:
    """
    Returns the callable to hand to the core for a guard or action.

    Raises:
        InvalidArgumentError: ``fn`` is not callable, or is a Guard whose
            class does not override ``check``.
    """
    if isinstance(fn, Guard):
        if type(fn).check is Guard.check:
            cls = type(fn).__name__
            message = f'guard "{name}": {cls} must override check'
            raise InvalidArgumentError(message)
        return fn.check
    if not callable(fn):
        message = f'callback "{name}" must be callable (got {fn!r})'
        raise InvalidArgumentError(message)
    return fn


class Engine(_core.Engine):
    """
    A workflow engine over a store.

    Args:
        path: A SQLite file (created when absent), ``":memory:"`` for an
            in-memory SQLite database, or None (default) for the fast
            memory store.  Opening an existing file re-registers its
            stored workflows (the latest version of each kind).
        zone: IANA zone for naive datetimes (default UTC).
        clock: A callable returning the current time (int microseconds
            UTC or a datetime); default the system clock.

    Raises:
        StoreError: The file cannot be opened or has a newer schema.
        InvalidArgumentError: The zone is unknown.

    ``fire(id, event, ...)`` returns the name of the state the transaction
    is in when the call ends, the state :meth:`get` then shows: when rules
    run by the transition fire further events on it (a follow-up step, the
    automatic approval of an empty approval chain), that is the state the
    last of them entered, not the one the event itself led to (the
    history has each step).

    Threads: one engine may be shared by several threads without a lock
    of the caller's.  Its calls (and those of the routers, service desks,
    rules and approvals attached to it) are serialised by a lock of the
    engine: a call waits, without holding the GIL, while another thread's
    call runs.  Callbacks (guards, actions, hooks, the clock, rule
    conditions, routing strategies) run on the calling thread with the GIL
    held and may read the engine again.  An explicit transaction
    (:meth:`transaction`, ``begin()`` ... ``commit()``/``rollback()``)
    keeps the engine for the thread that began it: other threads' calls
    wait until it ends, so none of their writes lands inside it; only that
    thread can commit or roll it back (``InvalidArgumentError`` for
    another).  A call that has waited 10 s behind another thread's open
    transaction fails with ``StoreError`` ("engine busy"), so a thread that
    begins and never commits cannot hang the others silently.  When the
    thread that began it has exited, the next call fails at once with
    ``StoreError`` ("abandoned transaction") naming that thread; then
    ``rollback()`` from any thread discards the whole transaction (every
    nesting level), while ``commit()`` stays refused.  :meth:`close`
    works from any thread: it rolls back an open transaction, whoever
    began it (that thread's next call finds the engine closed), and
    releases SQLite's write lock.  Threads do not run the core in
    parallel on one engine; for parallel work use one engine per thread
    (SQLite files may be shared).  Across processes, a writer waits for
    another's open transaction through SQLite's busy timeout, 10 s a try
    and up to 50 tries, before ``StoreError``: keep explicit transactions
    short.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        path: Union[None, str, "os.PathLike[str]"] = None,
        *,
        zone: str = "UTC",
        clock: Optional[Callable[[], Any]] = None,
    ) -> None:
        path = "" if path is None else _path_arg(path, empty=True)
        _check_str(zone, "zone")
        if clock is not None and not callable(clock):
            raise InvalidArgumentError("clock must be callable")
        super().__init__(path=path, clock=clock, zone=zone)
        self._closed = False
        self._definitions: Dict[str, Tuple[int, str]] = {}
        self._load_stored_workflows()
        # Stored approval matrices come with a stored automatic-approval
        # rule: attaching now keeps the rule and the request records
        # together in every program that opens the file.
        if _core.approvals_stored(self):
            _ = self.approvals

    def _load_stored_workflows(self) -> None:
        """
        Registers the latest stored version of every kind.
        """
        latest: Dict[str, Tuple[int, str]] = {}
        for name, version, definition in self.stored_workflows():
            if name not in latest or version > latest[name][0]:
                latest[name] = (version, definition)
        for name, (version, definition) in latest.items():
            try:
                wf = Workflow.from_json(definition)
            except (ValueError, LookupError) as e:
                _log.warning(
                    "stored workflow %s v%d not loaded (%s)", name, version, e
                )
                continue
            super().register(wf._core, definition)
            self._definitions[name] = (version, definition)

    # Lifecycle.

    def close(self) -> None:
        """
        Rolls back an open explicit transaction (whichever thread began
        it), drops the callbacks and closes the store; further calls
        raise.  Callable from any thread: it waits for a call running on
        another thread, not for another thread's open transaction.
        Closing twice does nothing.

        Raises:
            InvalidArgumentError: Called from inside a callback (the
                engine stays open).
        """
        if getattr(self, "_closed", False):
            return
        # Refused inside a callback before any hook runs: the engine stays
        # open there, with its hooks (and what they would release) intact.
        self._check_closable()
        hooks = getattr(self, "_close_hooks", [])
        self._close_hooks = []
        try:
            for hook in hooks:
                hook(self)
        finally:
            # Marked closed only once the core has closed: a close that
            # failed must not make the next one a silent no-op.
            super().close()
            self._closed = True

    def on_close(self, fn: Any = None) -> Any:
        """
        Registers ``fn(engine)`` to run when the engine is closed, or
        when it is garbage-collected unclosed; decorator or plain call.

        An exception it raises reaches the caller of :meth:`close`; when
        the engine is collected instead, Python reports it through
        :func:`sys.unraisablehook` (once) and the process goes on.

        .. versionadded:: 0.1.0
        """

        def decorate(f: Any) -> Any:
            if not callable(f):
                raise InvalidArgumentError("close hook must be callable")
            if not hasattr(self, "_close_hooks"):
                self._close_hooks = []
            self._close_hooks.append(f)
            return f

        return decorate if fn is None else decorate(fn)

    def __del__(self) -> None:
        # Only close hooks need this; an exception leaving __del__ goes to
        # sys.unraisablehook, as Python does for every finalizer.
        if getattr(self, "_close_hooks", None) and not getattr(
            self, "_closed", True
        ):
            self.close()

    def rule(
        self,
        name: str,
        *,
        kind: str,
        on: str,
        when: Any = None,
        priority: int = 0,
    ) -> Callable[[Any], Any]:
        """
        Registers the decorated function as the action of a Python rule
        (see :mod:`crmflow.rules`).

        Args:
            name: A unique name among the Python rules.
            kind: The kind it watches.
            on: ``"entered:STATE"`` or ``"left:STATE"`` (``*``: any).
            when: A callable taking the call context, an expression text
                on the transaction's attributes, or None (always).
            priority: Higher runs first; ties in registration order.

        Returns:
            The decorator; it returns the function unchanged.

        Raises:
            InvalidArgumentError: A bad trigger or condition.

        .. versionadded:: 0.1.0
        """
        from crmflow import rules as _rules

        _check_str(name, "name")
        _check_str(kind, "kind")
        trigger, state = _rules.parse_trigger(on)
        if not hasattr(self, "_python_rules"):
            self._python_rules = _rules.PythonRules()
        registry = self._python_rules
        problem = self._python_rule_problem(name, kind, state, None)
        if problem is not None:
            raise InvalidArgumentError(problem)

        def compile_expression(text: str) -> Callable[[Any], Any]:
            problem = self._python_rule_problem(name, kind, state, text)
            if problem is not None:
                raise InvalidArgumentError(problem)

            def check(ctx: Any) -> bool:
                return _core.rules_check(self, text, ctx.transaction)

            check.expression = text  # type: ignore[attr-defined]
            return check

        cond = _rules.condition(when, compile_expression)

        def decorate(fn: Any) -> Any:
            if not callable(fn):
                raise InvalidArgumentError("rule action must be callable")
            registry.add(
                _rules.PythonRule(
                    name, kind, trigger, state, cond, fn, int(priority),
                    len(registry.rules),
                )
            )
            if (kind, trigger) not in registry.hooked:
                registry.hooked[(kind, trigger)] = True
                hook = getattr(super(Engine, self),
                               "on_enter" if trigger == "entered"
                               else "on_exit")
                hook(kind, "*",
                     lambda ctx, k=kind, t=trigger: registry.run(k, t, ctx))
            return fn

        return decorate

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        if getattr(self, "_closed", True):
            return "<crmflow.Engine closed>"
        where = self.path or "memory"
        return (
            f"<crmflow.Engine {where!r} zone={self.zone!r} "
            f"kinds={sorted(self.kinds())!r}>"
        )

    # Workflows.

    def register(  # type: ignore[override]
        self, workflow: Union[Workflow, str, Dict[str, Any]]
    ) -> Workflow:
        """
        Registers a workflow for its kind and stores its definition.

        Registering the same definition again does nothing; a kind is
        replaced only by a higher version.

        Args:
            workflow: A :class:`Workflow`, a template name (see
                :mod:`crmflow.templates`) or a definition dict.

        Returns:
            The registered workflow.

        Raises:
            ValidationError: The workflow has problems.
            AlreadyExistsError: The kind is registered with another
                definition and not a lower version.
            NotFoundError: No template has that name.
            InvalidArgumentError: A malformed definition.
        """
        if isinstance(workflow, str):
            from crmflow import templates

            workflow = templates.load(workflow)
        elif isinstance(workflow, dict):
            workflow = Workflow.from_dict(workflow)
        elif not isinstance(workflow, Workflow):
            message = (
                "workflow must be a Workflow, a template name or a dict "
                f"(got {type(workflow).__name__})"
            )
            raise InvalidArgumentError(message)
        definition = workflow.to_json()
        known = self._definitions.get(workflow.name)
        if known == (workflow.version, definition):
            return workflow
        super().register(workflow._core, definition)
        self._definitions[workflow.name] = (workflow.version, definition)
        approvals = getattr(self, "_approvals", None)
        if approvals is not None:
            approvals.reload()  # stored matrices of this kind validate now
        return workflow

    def workflow(self, kind: str) -> Workflow:  # type: ignore[override]
        """
        Returns the workflow registered for ``kind``.

        Raises:
            NotFoundError: The kind is not registered.
        """
        _check_str(kind, "kind")
        known = self._definitions.get(kind)
        if known is not None:
            return Workflow.from_json(known[1])
        return Workflow._from_core(super().workflow(kind))

    # Callbacks.

    def add_guard(self, name: str, guard: Any) -> None:
        """
        Registers a guard under ``name`` (replacing one of that name).

        Args:
            name: The name transitions use in their ``guards`` list.
            guard: A :class:`Guard` instance (its ``check`` is called) or a
                callable taking the call context.  It returns a truthy
                value to allow, a falsy one or ``(False, reason)`` to
                refuse.  An exception it raises reaches the caller of
                ``fire`` unchanged, after the rollback.

        Raises:
            InvalidArgumentError: ``guard`` is not callable.
        """
        _check_str(name, "name")
        self.register_guard(name, _callback(guard, name))

    def guard(self, name: str, fn: Any = None) -> Any:
        """
        Registers a guard; usable as a decorator (``@engine.guard("x")``)
        or a plain call (``engine.guard("x", fn)``).

        Returns:
            The decorator, or ``fn`` itself for a plain call.
        """

        def decorate(f: Any) -> Any:
            self.add_guard(name, f)
            return f

        return decorate if fn is None else decorate(fn)

    def action(self, name: str, fn: Any = None) -> Any:
        """
        Registers an action run by transitions naming it; usable as a
        decorator or a plain call, like :meth:`guard`.
        """

        def decorate(f: Any) -> Any:
            _check_str(name, "name")
            self.register_action(name, _callback(f, name))
            return f

        return decorate if fn is None else decorate(fn)

    def on_enter(  # type: ignore[override]
        self, kind: str, state: str, fn: Any = None
    ) -> Any:
        """
        Registers a hook run when a ``kind`` transaction enters ``state``
        (``"*"``: any state); decorator or plain call.
        """

        def decorate(f: Any) -> Any:
            _check_str(kind, "kind")
            _check_str(state, "state")
            super(Engine, self).on_enter(kind, state, _callback(f, state))
            return f

        return decorate if fn is None else decorate(fn)

    def on_exit(  # type: ignore[override]
        self, kind: str, state: str, fn: Any = None
    ) -> Any:
        """
        Registers a hook run when a ``kind`` transaction leaves ``state``
        (``"*"``: any state); decorator or plain call.
        """

        def decorate(f: Any) -> Any:
            _check_str(kind, "kind")
            _check_str(state, "state")
            super(Engine, self).on_exit(kind, state, _callback(f, state))
            return f

        return decorate if fn is None else decorate(fn)

    # Transactions.

    def _time(self, value: Any, name: str) -> Any:
        """
        Returns a time argument as the core takes it (None, int, datetime);
        strings are parsed as ISO 8601 in the engine's zone.

        Raises:
            InvalidArgumentError: An unsupported type.
            ParseError: An unparseable string.
        """
        if value is None or isinstance(value, datetime.datetime):
            return value
        if isinstance(value, bool):
            raise InvalidArgumentError(f"{name} must be a time (got bool)")
        if isinstance(value, (int, np.integer)):
            return int(value)
        if isinstance(value, str):
            return _core.parse_timestamp(value, "", self.zone)
        message = (
            f"{name} must be a datetime, int microseconds or ISO text "
            f"(got {type(value).__name__})"
        )
        raise InvalidArgumentError(message)

    def create(  # type: ignore[override]
        self,
        kind: str,
        id: Optional[str] = None,
        *,
        customer: Optional[str] = None,
        parent: Optional[str] = None,
        attributes: Optional[Dict[str, Any]] = None,
        time: Any = None,
        actor: Optional[str] = None,
    ) -> Transaction:
        """
        Creates a transaction in its kind's initial state.

        Args:
            kind: A registered kind.
            id: The new id, unique across kinds; None issues the kind's
                next number (see :meth:`set_numbering`).
            customer: The customer id; inherited from ``parent`` when None.
            parent: The id of a linked transaction.
            attributes: Values of declared attributes.
            time: When it was created (default: the clock).
            actor: Who created it.

        Returns:
            The new transaction as the call leaves it: rules on
            ``created`` may already have moved it on.

        Raises:
            NotFoundError: Unknown kind.
            AlreadyExistsError: The id is taken.
            InvalidArgumentError: A bad argument or attribute.
        """
        _check_str(kind, "kind")
        if id is not None:
            _check_str(id, "id")
        if attributes is not None and not isinstance(attributes, dict):
            raise InvalidArgumentError("attributes must be a dict")
        txn = super().create(
            kind,
            "" if id is None else id,
            customer_id=_opt_str(customer, "customer"),
            parent_id=_opt_str(parent, "parent"),
            attributes=attributes,
            time=self._time(time, "time"),
            actor=_opt_str(actor, "actor"),
        )
        return Transaction._from_core(txn)

    # Numbering.

    def set_numbering(
        self,
        kind: str,
        format: str,
        *,
        yearly_reset: bool = False,
        zone: str = "UTC",
    ) -> None:
        """
        Gives ``kind`` human-readable numbers: ``create(kind)`` without an
        id issues the next one as the id.

        The format is saved in the store, so every engine on the same
        file (a notebook, a script, the CLI) and this one reopened use
        it.  Numbers come from an integer counter incremented in the
        same SQLite transaction as the create, so they are unique and
        gap-free under concurrent writers and survive restarts.

        Args:
            kind: The kind.
            format: Literal text with fields ``{n}`` (the number),
                ``{n:0W}`` (zero-padded to at least W digits: a wider
                number is written in full), ``{year}``, ``{yy}``,
                ``{month}``, ``{day}``; ``{{`` and ``}}`` are braces.
                Examples: ``"SO-{year}-{n:06}"``, ``"CASE-{n:04}"``.
            yearly_reset: Start at 1 again each calendar year in
                ``zone``.
            zone: IANA zone of the date fields and the reset.

        Raises:
            InvalidArgumentError: A bad format or zone.

        .. versionadded:: 0.1.0
        """
        _check_str(kind, "kind")
        _check_str(format, "format")
        _check_str(zone, "zone")
        _core.numbering_set(self, kind, format, bool(yearly_reset), zone)

    def numbering(self, kind: str) -> Optional[Dict[str, Any]]:
        """
        Returns the numbering of ``kind`` as a dict with ``kind``,
        ``format``, ``yearly_reset`` and ``zone``, or None.

        .. versionadded:: 0.1.0
        """
        _check_str(kind, "kind")
        return _core.numbering_get(self, kind)

    def set_counter(
        self, kind: str, last: int, *, year: Optional[int] = None
    ) -> None:
        """
        Seeds the last number issued for ``kind`` (e.g. after a legacy
        import): the next ``create`` issues ``last + 1``.

        Args:
            kind: The kind.
            last: The last number issued, 0 or more.
            year: The year's counter, for a numbering with yearly reset.

        Raises:
            InvalidArgumentError: A negative number.

        .. versionadded:: 0.1.0
        """
        _check_str(kind, "kind")
        if not _is_int64(last):
            raise InvalidArgumentError("last must be a 64-bit int")
        _core.numbering_set_counter(self, kind, last, year or 0)

    def counter(self, kind: str, *, year: Optional[int] = None) -> int:
        """
        Returns the last number issued for ``kind`` (0 when none).

        .. versionadded:: 0.1.0
        """
        _check_str(kind, "kind")
        return _core.numbering_counter(self, kind, year or 0)

    # Rules.

    def add_rule(
        self,
        name: str,
        kind: str,
        *,
        trigger: str = "event",
        on: Optional[str] = None,
        when: Optional[str] = None,
        actions: Union[str, Sequence[str]] = (),
        priority: int = 0,
        enabled: bool = True,
    ) -> None:
        """
        Adds a rule (or replaces the one named ``name``), stored in the
        database so every engine on the file sees it.

        Rules run inside the store transaction of the change that
        triggered them: a failing rule (or a chain that loops) rolls the
        whole change back.  See ``docs/rules.md``.

        Args:
            name: A unique name.
            kind: The kind it watches.
            trigger: ``"created"``, ``"event"``, ``"entered"``, ``"left"``
                or ``"changed"``.
            on: The event, state or attribute (None: any).
            when: A condition in the expression language (None: always).
            actions: Action lines: ``"set total = line1 + line2"``,
                ``"assign team = 'vip'"``, ``"fire approve"``,
                ``"create complaint with priority = 'high'"``,
                ``"notify email with recipient = 'x@y'; subject = txn.id"``.
            priority: Higher runs first; ties in definition order.
            enabled: Whether it runs.

        Raises:
            InvalidArgumentError: An unknown kind, trigger, name or a bad
                expression (the message names the rule and column).

        .. versionadded:: 0.1.0
        """
        _check_str(name, "name")
        _check_str(kind, "kind")
        _check_str(trigger, "trigger")
        if isinstance(actions, str):
            lines = actions
        else:
            lines = "\n".join(_check_str(a, "action") for a in actions)
        if not _is_int64(priority):
            raise InvalidArgumentError("priority must be a 64-bit int")
        _core.rules_add(
            self,
            name,
            kind,
            trigger,
            _opt_str(on, "on"),
            _opt_str(when, "when"),
            priority,
            bool(enabled),
            lines,
        )

    def rules(self) -> List[Dict[str, Any]]:
        """
        Returns the rules as dicts (``name``, ``kind``, ``trigger``,
        ``on``, ``condition``, ``priority``, ``enabled``, ``actions``,
        ``position``), in definition order.

        .. versionadded:: 0.1.0
        """
        return list(_core.rules_list(self))

    def enable_rule(self, name: str, enabled: bool = True) -> None:
        """
        Enables (or with ``enabled=False`` disables) rule ``name``.

        Raises:
            NotFoundError: Unknown rule.

        .. versionadded:: 0.1.0
        """
        _core.rules_set_enabled(self, _check_str(name, "name"), enabled)

    def disable_rule(self, name: str) -> None:
        """
        Disables rule ``name``; it stays stored.

        Raises:
            NotFoundError: Unknown rule.

        .. versionadded:: 0.1.0
        """
        self.enable_rule(name, False)

    def remove_rule(self, name: str) -> None:
        """
        Removes rule ``name``.

        Raises:
            NotFoundError: Unknown rule.

        .. versionadded:: 0.1.0
        """
        _core.rules_remove(self, _check_str(name, "name"))

    def validate_rules(self) -> List[str]:
        """
        Returns one message per rule that names an unknown kind, state,
        event or attribute (or no longer type-checks) against the
        registered workflows; empty when every rule is fine.  Stored rules
        come first, then stored approval matrices that no longer validate
        (when approvals are attached, see :mod:`crmflow.approvals`), then
        Python rules (:meth:`rule`).  Each message is the
        one :meth:`add_rule` or :meth:`rule` would refuse the rule with,
        e.g. ``rule "late": unknown state "sent" of kind "sales_order"
        (known: draft, submitted, approved)``.

        .. versionadded:: 0.1.0
        """
        problems = list(_core.rules_validate(self))
        approvals = getattr(self, "_approvals", None)
        if approvals is not None:
            problems.extend(approvals.problems())
        registry = getattr(self, "_python_rules", None)
        for r in registry.rules if registry is not None else ():
            text = getattr(r.when, "expression", None)
            problem = self._python_rule_problem(r.name, r.kind, r.state, text)
            if problem is not None:
                problems.append(problem)
        return problems

    def _python_rule_problem(
        self, name: str, kind: str, state: str, text: Optional[str]
    ) -> Optional[str]:
        """
        Returns why Python rule ``name`` on ``state`` of ``kind`` (with
        condition ``text``, if an expression) cannot run, or None.  An
        unregistered kind is a problem only when ``text`` is given, so
        that rules may be declared before their workflow.
        """
        try:
            states = self.workflow(kind).states()
        except NotFoundError:
            if text is None:
                return None
            return f'rule "{name}": unknown kind "{kind}"'
        if state != "*" and state not in states:
            return (
                f'rule "{name}": unknown state "{state}" of kind "{kind}" '
                f'(known: {", ".join(states)})'
            )
        if text is None:
            return None
        # The core checks the expression: a stored rule never enabled,
        # removed again; its message is given under this rule's name.
        probe = f"__python_rule_{name}"
        try:
            self.add_rule(probe, kind, trigger="created", when=text,
                          enabled=False)
        except InvalidArgumentError as e:
            return str(e).replace(f'rule "{probe}"', f'rule "{name}"')
        self.remove_rule(probe)
        return None

    def reload_rules(self) -> None:
        """
        Reads the rules from the database again (after another process
        changed them).

        .. versionadded:: 0.1.0
        """
        _core.rules_reload(self)

    def rule_trace(self, id: Optional[str] = None) -> pd.DataFrame:
        """
        Returns the rule evaluations of this engine (of transaction ``id``
        when given), oldest first, as a DataFrame with columns ``seq``,
        ``time``, ``transaction_id``, ``rule``, ``trigger``, ``outcome``
        (``fired``, ``not matched``, ``shadowed`` or ``error``),
        ``reads`` (the values the condition read) and ``depth``.

        The trace is kept in memory (the last 100 000 rows) and includes
        evaluations of changes that were rolled back.

        .. versionadded:: 0.1.0
        """
        cols = _core.rules_trace(self, _opt_str(id, "id"))
        frame = pd.DataFrame(
            {k: v for k, v in cols.items() if k != "time"}
        )
        frame.insert(1, "time", _time_column(cols["time"]))
        return frame

    def get(self, id: str) -> Transaction:  # type: ignore[override]
        """
        Returns transaction ``id``.

        Raises:
            NotFoundError: Unknown id.
        """
        _check_str(id, "id")
        return Transaction._from_core(super().get(id))

    def set_attributes(  # type: ignore[override]
        self,
        id: str,
        attributes: Dict[str, Any],
        *,
        expected_version: Optional[int] = None,
    ) -> Transaction:
        """
        Changes attributes of ``id`` (not its state).

        Args:
            id: The transaction.
            attributes: Values of declared attributes.
            expected_version: Fail unless the stored version equals it
                (default: the current version).

        Returns:
            The transaction as the call leaves it (rules on ``changed``
            may have changed it further).

        Raises:
            ConcurrentUpdateError: The stored version moved on.
        """
        if expected_version is None:
            expected_version = self.get(id).version
        txn = super().set_attributes(id, attributes, expected_version)
        return Transaction._from_core(txn)

    @contextlib.contextmanager
    def transaction(self) -> Iterator["Engine"]:
        """
        Groups writes into one store transaction: committed when the block
        ends, rolled back when it raises.  Blocks nest (savepoints).
        """
        self.begin()
        try:
            yield self
        except BaseException:
            self.rollback()
            raise
        self.commit()

    # Queries.

    def transactions(
        self, kind: Optional[str] = None, state: Optional[str] = None
    ) -> pd.DataFrame:
        """
        Returns the transactions (of ``kind``, in ``state``) ordered by id.

        Returns:
            A DataFrame: id, kind, state, customer_id, parent_id, version,
            workflow_version, created_at, updated_at, state_entered_at
            (``datetime64[us, UTC]``) and attributes (dicts).
        """
        columns: Dict[str, Any] = super().transaction_columns(
            _opt_str(kind, "kind"), _opt_str(state, "state")
        )
        for name in ("version", "workflow_version"):
            columns[name] = np.array(columns[name], dtype=np.int64)
        for name in ("created_at", "updated_at", "state_entered_at"):
            columns[name] = _time_column(columns[name])
        return pd.DataFrame(columns)

    def history(  # type: ignore[override]
        self,
        transaction_id: Optional[str] = None,
        *,
        kind: Optional[str] = None,
        start: Any = None,
        end: Any = None,
    ) -> pd.DataFrame:
        """
        Returns history rows, filtered; time bounds are half-open
        (``start <= time < end``).

        Args:
            transaction_id: Only this transaction.
            kind: Only this kind.
            start: Lower bound (inclusive), any time argument.
            end: Upper bound (exclusive).

        Returns:
            A DataFrame ordered by seq (by time, seq when a bound is
            given): seq, transaction_id, event, from_state (None for the
            creation row), to_state, time (``datetime64[us, UTC]``), actor,
            payload (JSON text), internal, workflow_version, source.
        """
        cols = super().history(
            _opt_str(transaction_id, "transaction_id"),
            _opt_str(kind, "kind"),
            self._time(start, "start"),
            self._time(end, "end"),
        )
        return pd.DataFrame(
            {
                "seq": np.asarray(cols["seq"], dtype=np.int64),
                "transaction_id": cols["transaction_id"],
                "event": cols["event"],
                "from_state": pd.Series(cols["from_state"], dtype=object),
                "to_state": cols["to_state"],
                "time": _time_column(cols["time"]),
                "actor": pd.Series(cols["actor"], dtype=object),
                "payload": pd.Series(cols["payload"], dtype=object),
                "internal": np.asarray(cols["internal"], dtype=bool),
                "workflow_version": np.asarray(
                    cols["workflow_version"], dtype=np.int64
                ),
                "source": pd.Series(cols["source"], dtype=object),
            }
        )

    def deviations(  # type: ignore[override]
        self, kind: Optional[str] = None
    ) -> pd.DataFrame:
        """
        Returns the recorded deviations (events a workflow did not allow).

        Returns:
            A DataFrame: id, transaction_id, kind, position, state, event,
            time (``datetime64[us, UTC]``), reason, source.
        """
        cols = super().deviations(_opt_str(kind, "kind"))
        return pd.DataFrame(
            {
                "id": np.asarray(cols["id"], dtype=np.int64),
                "transaction_id": cols["transaction_id"],
                "kind": cols["kind"],
                "position": np.asarray(cols["position"], dtype=np.int64),
                "state": cols["state"],
                "event": cols["event"],
                "time": _time_column(cols["time"]),
                "reason": cols["reason"],
                "source": pd.Series(cols["source"], dtype=object),
            }
        )

    def imports(self) -> pd.DataFrame:  # type: ignore[override]
        """
        Returns one row per import run: id, file, kind, started_at, cases,
        events_applied, deviations, rejected, skipped.
        """
        cols = dict(super().imports())
        frame = pd.DataFrame(cols)
        if "started_at" in cols:
            frame["started_at"] = _time_column(cols["started_at"])
        return frame

    def report(self) -> Dict[str, Any]:  # type: ignore[override]
        """
        Returns lifecycle figures per kind, computed from the history.

        Returns:
            ``{"kinds": {kind: {"transactions": n, "by_state": {state: n},
            "reached": {state: n}, "transitions": [{"from", "to", "event",
            "count", "median_seconds", "p90_seconds"}], "deviations": n}}}``
            where the times are seconds spent in ``from`` before the
            transition.  No NaN or infinity: None where undefined.  The
            dict is JSON-serialisable.
        """
        kinds: Dict[str, Any] = {}
        for k in super().report():
            transitions = []
            for t in k["transitions"]:
                count = int(t["count"])
                transitions.append(
                    {
                        "from": t["from_state"],
                        "to": t["to_state"],
                        "event": t["event"],
                        "count": count,
                        "median_seconds": _finite(t["median_seconds"])
                        if count
                        else None,
                        "p90_seconds": _finite(t["p90_seconds"])
                        if count
                        else None,
                    }
                )
            kinds[k["kind"]] = {
                "transactions": int(k["transactions"]),
                "by_state": {s: int(n) for s, n in k["by_state"].items()},
                "reached": {s: int(n) for s, n in k["reached"].items()},
                "transitions": transitions,
                "deviations": int(k["deviations"]),
            }
        return {"kinds": kinds}

    # Imports.

    def _kind_types(self, kind: str) -> Dict[str, str]:
        """
        Returns {attribute: type} of a registered kind.

        Raises:
            NotFoundError: The kind is not registered; the message lists
                the registered ones.
        """
        if kind not in self.kinds():
            known = ", ".join(sorted(self.kinds())) or "none"
            message = f'unknown kind "{kind}" (registered: {known})'
            raise NotFoundError(message)
        return {a[0]: a[1] for a in super().workflow(kind).attributes()}

    def _attributes(
        self, kind: str, attributes: Any
    ) -> List[Tuple[str, str, str]]:
        """
        Returns (column, attribute, type) triples from the ``attributes``
        argument of an import: a dict ``{column: attribute}`` or ``{column:
        (attribute, type)}``, or a list of column names (attribute of the
        same name) or of (column, attribute[, type]) tuples.  Missing types
        are the declared ones.

        Raises:
            InvalidArgumentError: A malformed entry or undeclared attribute.
        """
        types = self._kind_types(kind)
        if attributes is None:
            return []
        if isinstance(attributes, dict):
            entries = [
                (c, *(a if isinstance(a, (tuple, list)) else (a,)))
                for c, a in attributes.items()
            ]
        elif isinstance(attributes, (list, tuple)):
            entries = [
                (a,) if isinstance(a, str) else tuple(a) for a in attributes
            ]
        else:
            message = "attributes must be a dict or a list"
            raise InvalidArgumentError(message)
        triples = []
        for entry in entries:
            if len(entry) == 1:
                entry = (entry[0], entry[0])
            if len(entry) not in (2, 3) or not all(
                isinstance(e, str) for e in entry
            ):
                message = f"attributes: malformed entry {entry!r}"
                raise InvalidArgumentError(message)
            column, name = entry[0], entry[1]
            if len(entry) == 3:
                type_ = entry[2]
            elif name in types:
                type_ = types[name]
            else:
                declared = ", ".join(types) or "none"
                message = (
                    f'attributes: "{name}" is not an attribute of {kind} '
                    f"(declared: {declared})"
                )
                raise InvalidArgumentError(message)
            triples.append((column, name, type_))
        return triples

    def _common(
        self,
        path: Any,
        kind: str,
        case: Any,
        customer: Optional[str],
        parent: Optional[str],
        attributes: Any,
        time_format: str,
        time_zone: str,
        null_values: Iterable[str],
        delimiter: Optional[str],
        on_error: str,
        id_prefix: str,
        commit_every: int,
    ) -> Tuple[str, Dict[str, Any]]:
        """
        Checks the arguments shared by both imports and returns the path
        and the common part of the core's mapping.

        Raises:
            InvalidArgumentError: A bad argument, named in the message.
            NotFoundError: The file does not exist or the kind is unknown.
        """
        path = _path_arg(path)
        if not os.path.isfile(path):
            raise NotFoundError(f"{path}: no such file")
        _check_str(kind, "kind")
        if on_error not in _ON_ERROR:
            message = f'on_error must be "collect" or "raise" ({on_error!r})'
            raise InvalidArgumentError(message)
        if delimiter is not None and (
            not isinstance(delimiter, str) or len(delimiter) != 1
        ):
            message = f"delimiter must be one character ({delimiter!r})"
            raise InvalidArgumentError(message)
        if isinstance(null_values, str):
            null_values = [null_values]
        null_values = list(null_values)
        if not all(isinstance(v, str) for v in null_values):
            raise InvalidArgumentError("null_values must be strings")
        if isinstance(commit_every, bool) or not isinstance(
            commit_every, int
        ):
            raise InvalidArgumentError("commit_every must be an integer")
        if commit_every < 0:
            raise InvalidArgumentError("commit_every must be >= 0")
        _check_str(time_format, "time_format", empty=True)
        _check_str(time_zone, "time_zone")
        mapping = {
            "kind": kind,
            "case_columns": _columns(case, "case"),
            "customer_column": _opt_str(customer, "customer"),
            "parent_column": _opt_str(parent, "parent"),
            "id_prefix": _opt_str(id_prefix, "id_prefix"),
            "attributes": self._attributes(kind, attributes),
            "time_format": time_format,
            "time_zone": time_zone,
            "null_values": null_values,
            "delimiter": delimiter or "",
            "on_error": on_error,
            "commit_every": commit_every,
        }
        return path, mapping

    def import_event_log(
        self,
        path: Union[str, "os.PathLike[str]"],
        *,
        kind: str,
        case: Union[str, Sequence[str]],
        activity: str,
        time: str,
        actor: Optional[str] = None,
        customer: Optional[str] = None,
        parent: Optional[str] = None,
        attributes: Any = None,
        payload: Optional[Sequence[str]] = None,
        activity_map: Optional[Dict[str, str]] = None,
        status_map: Optional[Dict[str, str]] = None,
        time_format: str = "",
        time_zone: str = "UTC",
        null_values: Iterable[str] = (),
        delimiter: Optional[str] = None,
        on_error: str = "collect",
        id_prefix: str = "",
        commit_every: int = 0,
    ) -> ImportSummary:
        """
        Imports an event log: one CSV row (plain or gzip) per event.

        The events of a case are replayed in (time, row) order; events the
        workflow does not allow are recorded as deviations; unusable rows
        are rejected with their whole case; importing the same file again
        adds nothing (see ``cpp/include/crmflow/importer.h``).

        Args:
            path: The CSV file.
            kind: A registered kind.
            case: The case-id column, or several (values joined by ":").
            activity: The column of activities (or statuses with
                ``status_map``).
            time: The time column.
            actor: The actor column.
            customer: The customer-id column.
            parent: The column linking to another transaction.
            attributes: Columns copied into attributes at create: a dict
                ``{column: attribute}`` or ``{column: (attribute, type)}``
                or a list of names or tuples; types default to the
                declared ones.
            payload: Columns copied into each event's JSON payload.
            activity_map: ``{activity: event}``; an activity mapped to
                ``""`` is ignored.  Default: activities are event names.
            status_map: ``{status: state}``: the column holds statuses;
                the first declared transition to that state is fired.
            time_format: See ``timestamp.h`` (``"%d/%m/%Y %H:%M"``); ``""``
                accepts ISO 8601.
            time_zone: Zone of times without an offset.
            null_values: Cell values read as empty, e.g. ``("?",)``.
            delimiter: One character; None detects or uses ``,``.
            on_error: ``"collect"`` rejects and goes on; ``"raise"`` fails
                at the first unusable row and writes nothing.
            id_prefix: Prepended to case ids.
            commit_every: Commit every n events (0: one transaction).

        Returns:
            The :class:`ImportSummary`.

        Raises:
            InvalidArgumentError: A bad argument, named in the message.
            NotFoundError: The file, kind or a column does not exist.
            ParseError: With ``on_error="raise"``, the first bad row.
        """
        path, mapping = self._common(
            path,
            kind,
            case,
            customer,
            parent,
            attributes,
            time_format,
            time_zone,
            null_values,
            delimiter,
            on_error,
            id_prefix,
            commit_every,
        )
        if activity_map and status_map:
            message = "give activity_map or status_map, not both"
            raise InvalidArgumentError(message)
        if payload is None:
            payload = []
        payload = [payload] if isinstance(payload, str) else list(payload)
        if not all(isinstance(c, str) and c for c in payload):
            raise InvalidArgumentError("payload must be column names")
        mapping.update(
            activity_column=_check_str(activity, "activity"),
            time_column=_check_str(time, "time"),
            actor_column=_opt_str(actor, "actor"),
            payload_columns=payload,
            activity_map=_str_map(activity_map, "activity_map"),
            status_map=_str_map(status_map, "status_map"),
        )
        return ImportSummary._from_core(
            super().import_event_log(path, mapping)
        )

    def import_milestones(
        self,
        path: Union[str, "os.PathLike[str]"],
        *,
        kind: str,
        case: Union[str, Sequence[str]],
        created: str,
        milestones: Any,
        status: Optional[str] = None,
        status_map: Optional[Dict[str, str]] = None,
        customer: Optional[str] = None,
        parent: Optional[str] = None,
        attributes: Any = None,
        time_format: str = "",
        time_zone: str = "UTC",
        null_values: Iterable[str] = (),
        delimiter: Optional[str] = None,
        on_error: str = "collect",
        id_prefix: str = "",
        commit_every: int = 0,
    ) -> ImportSummary:
        """
        Imports a milestone table: one CSV row per transaction, one time
        column per milestone.

        Milestones are replayed in time order; when a final ``status``
        maps to a state other than the one reached, the shortest path of
        transitions to it is fired at the last known time (payload
        ``{"inferred":true}``), or a deviation is recorded when there is
        none.

        Args:
            path: The CSV file.
            kind: A registered kind.
            case: The case-id column(s).
            created: The column of the creation time.
            milestones: ``{column: event or [event, ...]}`` (in order) or
                a list of ``(column, events)``; empty cells are skipped.
            status: The final-status column.
            status_map: ``{status: state}``; required with ``status``.
            customer, parent, attributes, time_format, time_zone,
            null_values, delimiter, on_error, id_prefix, commit_every: As
                for :meth:`import_event_log`.

        Returns:
            The :class:`ImportSummary`.

        Raises:
            InvalidArgumentError: A bad argument, named in the message.
            NotFoundError: The file, kind or a column does not exist.
            ParseError: With ``on_error="raise"``, the first bad row.
        """
        path, mapping = self._common(
            path,
            kind,
            case,
            customer,
            parent,
            attributes,
            time_format,
            time_zone,
            null_values,
            delimiter,
            on_error,
            id_prefix,
            commit_every,
        )
        if isinstance(milestones, dict):
            items = list(milestones.items())
        elif isinstance(milestones, (list, tuple)):
            items = [tuple(m) for m in milestones]
        else:
            raise InvalidArgumentError("milestones must be a dict or list")
        pairs = []
        for item in items:
            if len(item) != 2 or not isinstance(item[0], str):
                message = f"milestones: malformed entry {item!r}"
                raise InvalidArgumentError(message)
            column, events = item
            events = [events] if isinstance(events, str) else list(events)
            if not events or not all(
                isinstance(e, str) and e for e in events
            ):
                message = f'milestones: "{column}" needs event names'
                raise InvalidArgumentError(message)
            pairs.append((column, events))
        if status is not None and not status_map:
            raise InvalidArgumentError("status needs a status_map")
        if status_map and status is None:
            raise InvalidArgumentError("status_map needs a status column")
        mapping.update(
            created_column=_check_str(created, "created"),
            milestones=pairs,
            status_column=_opt_str(status, "status"),
            status_map=_str_map(status_map, "status_map"),
        )
        return ImportSummary._from_core(
            super().import_milestones(path, mapping)
        )

    def import_preset(
        self,
        name: str,
        path: Union[None, str, "os.PathLike[str]"] = None,
        *,
        on_error: str = "collect",
    ) -> ImportSummary:
        """
        Imports a file with a preset mapping (see :mod:`crmflow.presets`),
        registering the preset's template first when its kind is not
        registered.

        Args:
            name: A preset name, e.g. ``"olist-orders"``.
            path: The file; None imports the sample bundled with crmflow.
            on_error: ``"collect"`` (default) or ``"raise"``, as in
                :meth:`import_event_log`; the preset's workflow is
                registered before the rows are read, also when they are
                then refused.

        Raises:
            NotFoundError: Unknown preset or missing file.
            ParseError: An unusable row under ``on_error="raise"``.
        """
        from crmflow import presets

        preset = presets.get(name)
        if preset.kind not in self.kinds():
            self.register(preset.template)
        if path is None:
            path = preset.sample_path()
        method = (
            self.import_milestones
            if preset.shape == "milestones"
            else self.import_event_log
        )
        return method(path, kind=preset.kind, on_error=on_error,
                      **preset.options)


    # Customers, SQLAlchemy and bulk writes (SQLite files only).

    def _file(self) -> str:
        """
        Returns the absolute path of the SQLite file.

        Raises:
            InvalidArgumentError: The engine keeps its data in memory.
        """
        if self.path in ("", ":memory:"):
            message = (
                "this engine keeps its data in memory (open it on a SQLite "
                "file to use SQL tools)"
            )
            raise InvalidArgumentError(message)
        return os.path.abspath(self.path)

    @property
    def approvals(self) -> Any:
        """
        The engine's :class:`crmflow.approvals.Approvals`, attached on
        first use (its tables are created then).

        .. versionadded:: 0.1.0
        """
        existing = getattr(self, "_approvals", None)
        if existing is None:
            from crmflow.approvals import Approvals

            existing = Approvals(self)
        return existing

    @property
    def url(self) -> str:
        """
        The SQLAlchemy URL of the database, ``sqlite:///ABSOLUTE/PATH``.

        Raises:
            InvalidArgumentError: The engine keeps its data in memory.

        .. versionadded:: 0.1.0
        """
        return "sqlite:///" + self._file()

    def sqlalchemy_engine(self, **kwargs: Any) -> Any:
        """
        Returns a SQLAlchemy engine on this database (foreign keys on, 10 s
        busy timeout); use it with the models of :mod:`crmflow.orm`.

        Args:
            kwargs: Passed to :func:`sqlalchemy.create_engine`.

        Raises:
            InvalidArgumentError: The engine keeps its data in memory.

        .. versionadded:: 0.1.0
        """
        from crmflow import orm

        return orm.create_engine(self._file(), **kwargs)

    def customers(self) -> pd.DataFrame:
        """
        Returns the customers ordered by id: id, name, email, phone,
        attributes (dicts), created_at, updated_at
        (``datetime64[us, UTC]``), merged_into.

        .. versionadded:: 0.1.0
        """
        from crmflow import customers as _customers

        self._file()
        with contextlib.closing(_customers._connect(self)) as db:
            frame = pd.read_sql_query(
                "SELECT id, name, email, phone, attributes, created_at, "
                "updated_at, merged_into FROM customers ORDER BY id",
                db,
                dtype={"name": object, "email": object, "phone": object},
            )
        frame["attributes"] = frame["attributes"].map(
            lambda t: json.loads(t) if isinstance(t, str) else {}
        )
        for column in ("created_at", "updated_at"):
            frame[column] = pd.to_datetime(
                frame[column], utc=True, format="ISO8601"
            ).astype("datetime64[us, UTC]")
        frame["merged_into"] = frame["merged_into"].astype(object)
        return frame

    def import_customers(
        self,
        frame: pd.DataFrame,
        *,
        id: str = "id",
        name: Optional[str] = "name",
        email: Optional[str] = "email",
        phone: Optional[str] = "phone",
        web: Optional[str] = None,
        source_id: Optional[str] = None,
        source: Optional[str] = None,
        attributes: Optional[Sequence[str]] = None,
        default_country: Optional[str] = None,
    ) -> int:
        """
        Imports customers and their identities from a DataFrame, in one
        SQLite transaction: all rows or none.

        Every column of ``frame`` must be named by an argument or listed
        in ``attributes``; absent optional columns are skipped.  Each
        non-empty e-mail, phone, web id and source id also becomes an
        identity (normalised, see :mod:`crmflow.customers`).

        Args:
            frame: The customers, one per row.
            id: The id column (non-empty text, unique).
            name, email, phone: Columns of those fields.
            web: Column of web or app user ids.
            source_id: Column of the customer's id in the source system.
            source: The source system's name, stored with the identities.
            attributes: Columns stored in the customer's JSON attributes.
            default_country: Calling code of phones without ``+``.

        Returns:
            The number of customers imported.

        Raises:
            InvalidArgumentError: Unknown or missing columns, wrong types,
                duplicate or existing ids, invalid e-mails or phones; the
                message names the column and the row (0-based position).

        .. versionadded:: 0.1.0
        """
        from crmflow import customers as _customers

        self._file()
        if not isinstance(frame, pd.DataFrame):
            message = (
                f"frame must be a DataFrame (got {type(frame).__name__})"
            )
            raise InvalidArgumentError(message)
        attributes = list(attributes or [])
        fields = {
            "id": id,
            "name": name,
            "email": email,
            "phone": phone,
            "web": web,
            "source_id": source_id,
        }
        _known_columns(frame, fields, attributes, required=("id",))
        ids = _text_column(frame, id, required=True)
        _unique(ids, id)
        values: Dict[str, pd.Series] = {}
        for field in ("name", "email", "phone", "web", "source_id"):
            column = fields[field]
            if column is not None and column in frame.columns:
                values[field] = _text_column(frame, column)
        normalized: Dict[str, pd.Series] = {}
        checks = (
            ("email", "email", _customers.normalize_email),
            ("phone", "phone", lambda v: _customers.normalize_phone(
                v, default_country)),
            ("web", "web", lambda v: _customers.normalize_identity(
                "web", v)),
            ("source_id", "source", lambda v: _customers.normalize_identity(
                "source", v)),
        )
        for field, kind, normalize in checks:
            if field not in values:
                continue
            normalized[kind] = _normalize(
                values[field], fields[field], normalize
            )
        if attributes:
            records = frame[attributes].to_json(
                orient="records", lines=True, date_format="iso",
                force_ascii=False,
            ).splitlines()
        else:
            records = [None] * len(frame)
        now = self.now()
        stamp = _utc(now).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        none = pd.Series([None] * len(frame), dtype=object)
        customer_rows = list(
            zip(
                ids,
                values.get("name", none),
                values.get("email", none),
                values.get("phone", none),
                records,
                [stamp] * len(frame),
                [stamp] * len(frame),
            )
        )
        identity_rows: List[Tuple[Any, ...]] = []
        for kind, norm in normalized.items():
            field = "source_id" if kind == "source" else kind
            mask = norm.notna().to_numpy()
            identity_rows.extend(
                zip(
                    ids[mask],
                    [kind] * int(mask.sum()),
                    values[field][mask].str.strip(),
                    norm[mask],
                    [source] * int(mask.sum()),
                    [stamp] * int(mask.sum()),
                )
            )
        with contextlib.closing(_customers._connect(self)) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                existing = _existing(db, "customers", ids)
                if existing is not None:
                    row, value = existing
                    message = (
                        f'row {row}: {id} "{value}": customer already '
                        "exists"
                    )
                    raise InvalidArgumentError(message)
                db.executemany(
                    "INSERT INTO customers(id, name, email, phone, "
                    "attributes, created_at, updated_at) VALUES "
                    "(?, ?, ?, ?, ?, ?, ?)",
                    customer_rows,
                )
                db.executemany(
                    "INSERT OR IGNORE INTO identities(customer_id, kind, "
                    "value, normalized, source, created_at) VALUES "
                    "(?, ?, ?, ?, ?, ?)",
                    identity_rows,
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return len(frame)

    def create_many(
        self,
        frame: pd.DataFrame,
        *,
        kind: str,
        id: str = "id",
        customer: Optional[str] = "customer_id",
        parent: Optional[str] = None,
        time: Optional[str] = None,
        actor: Optional[str] = None,
        attributes: Optional[Sequence[str]] = None,
    ) -> int:
        """
        Creates one transaction of ``kind`` per row of a DataFrame, inside
        one engine transaction: all rows or none.

        The columns are checked before anything is written: every column
        must be named by an argument or be a declared attribute of
        ``kind``; attribute columns must fit the declared type (text:
        strings; integer: integers; decimal: Decimal, int or decimal
        strings, never floats; timestamp: datetimes, naive ones in the
        engine's zone; boolean: bools; duration: timedeltas).  Missing
        values (None, NaN, NaT) are stored as null.

        Args:
            frame: The transactions, one per row.
            kind: A registered kind.
            id: The id column (non-empty text, unique).
            customer: The customer-id column (skipped when absent).
            parent: The parent-id column.
            time: The creation-time column (default: the clock).
            actor: The actor column.
            attributes: The attribute columns (default: every other
                column).

        Returns:
            The number of transactions created.

        Raises:
            InvalidArgumentError: Unknown columns, wrong types, duplicate
                ids; the message names the column and row.
            AlreadyExistsError: An id is taken (nothing is written).
            NotFoundError: Unknown kind.

        .. versionadded:: 0.1.0
        """
        if not isinstance(frame, pd.DataFrame):
            message = (
                f"frame must be a DataFrame (got {type(frame).__name__})"
            )
            raise InvalidArgumentError(message)
        _check_str(kind, "kind")
        types = self._kind_types(kind)
        fields = {
            "id": id,
            "customer": customer,
            "parent": parent,
            "time": time,
            "actor": actor,
        }
        named = {c for c in fields.values() if c is not None}
        if attributes is None:
            attributes = [c for c in frame.columns if c not in named]
        attributes = list(attributes)
        for column in attributes:
            if column not in types:
                declared = ", ".join(types) or "none"
                message = (
                    f'column "{column}": not an attribute of {kind} '
                    f"(declared: {declared})"
                )
                raise InvalidArgumentError(message)
        _known_columns(frame, fields, attributes, required=("id",))
        n = len(frame)
        ids = _text_column(frame, id, required=True)
        _unique(ids, id)
        none: List[Any] = [None] * n
        empty: List[str] = [""] * n

        def text(column: Optional[str]) -> List[str]:
            if column is None or column not in frame.columns:
                return empty
            return _text_column(frame, column).fillna("").tolist()

        customers = text(customer)
        parents = text(parent)
        actors = text(actor)
        times: List[Any] = none
        if time is not None:
            times = _time_values(frame, time, self.zone)
        columns = [
            (name, _attribute_values(frame, name, types[name], self.zone))
            for name in attributes
        ]
        id_list = ids.tolist()
        create = _core.Engine.create
        with self.transaction():
            for i in range(n):
                values = {name: col[i] for name, col in columns}
                try:
                    create(
                        self,
                        kind,
                        id_list[i],
                        customer_id=customers[i],
                        parent_id=parents[i],
                        attributes=values,
                        time=times[i],
                        actor=actors[i],
                    )
                except Exception as e:
                    message = f'row {i} ({id} "{id_list[i]}"): {e}'
                    raise type(e)(message) from None
        return n


def _known_columns(
    frame: pd.DataFrame,
    fields: Dict[str, Optional[str]],
    attributes: Sequence[str],
    required: Sequence[str],
) -> None:
    """
    Checks that every column of ``frame`` is named and that the required
    and attribute columns exist.

    Raises:
        InvalidArgumentError: The message names the column.
    """
    named = {c for c in fields.values() if c is not None} | set(attributes)
    for column in frame.columns:
        if not isinstance(column, str) or column not in named:
            expected = ", ".join(sorted(named))
            message = f"unknown column {column!r} (expected {expected})"
            raise InvalidArgumentError(message)
    for field in required:
        column = fields[field]
        if column is None or column not in frame.columns:
            message = f"missing column {column!r} ({field})"
            raise InvalidArgumentError(message)
    for column in attributes:
        if column not in frame.columns:
            raise InvalidArgumentError(f"missing column {column!r}")


def _missing(series: pd.Series) -> np.ndarray:
    """
    Returns a bool array: None, NaN, NaT and pandas NA.
    """
    return series.isna().to_numpy()


def _text_column(
    frame: pd.DataFrame, column: str, required: bool = False
) -> pd.Series:
    """
    Returns a text column as an object Series (None where missing).

    Raises:
        InvalidArgumentError: A non-string value, or a missing or empty
            one when ``required``; the message names column and row.
    """
    series = frame[column].reset_index(drop=True)
    missing = _missing(series)
    values = series.astype(object).where(~missing, None)
    is_str = values.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
    bad = ~missing & ~is_str
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        got = type(values[row]).__name__
        message = f'column "{column}" row {row}: expected text (got {got})'
        raise InvalidArgumentError(message)
    unencodable = values.map(_not_utf8).to_numpy(dtype=bool)
    if unencodable.any():
        row = int(np.flatnonzero(unencodable)[0])
        message = f'column "{column}" row {row}: text is not valid UTF-8'
        raise InvalidArgumentError(message)
    if required:
        empty = missing | (values.str.len().fillna(0) == 0).to_numpy()
        if empty.any():
            row = int(np.flatnonzero(empty)[0])
            message = f'column "{column}" row {row}: empty (a value needed)'
            raise InvalidArgumentError(message)
    return values


def _unique(ids: pd.Series, column: str) -> None:
    """
    Checks ids are unique within the frame.

    Raises:
        InvalidArgumentError: The message names both rows.
    """
    dup = ids.duplicated(keep=False).to_numpy()
    if dup.any():
        rows = np.flatnonzero(dup)
        first = ids[rows[0]]
        other = [int(r) for r in rows if ids[r] == first][1]
        message = (
            f'column "{column}" rows {int(rows[0])} and {other}: '
            f'id "{first}" given twice'
        )
        raise InvalidArgumentError(message)


def _normalize(
    values: pd.Series, column: str, normalize: Callable[[str], str]
) -> pd.Series:
    """
    Returns normalised identities (None where missing or blank).

    Raises:
        InvalidArgumentError: The first invalid one, naming column and row.
    """
    out = []
    for row, v in enumerate(values.tolist()):
        if v is None or not v.strip():
            out.append(None)
            continue
        try:
            out.append(normalize(v))
        except InvalidArgumentError as e:
            message = f'column "{column}" row {row}: {e}'
            raise InvalidArgumentError(message) from None
    return pd.Series(out, dtype=object)


def _existing(
    db: Any, table: str, ids: pd.Series
) -> Optional[Tuple[int, str]]:
    """
    Returns (row, id) of the first id already in ``table``, or None.
    """
    values = ids.tolist()
    for start in range(0, len(values), 500):
        part = values[start:start + 500]
        marks = ",".join("?" * len(part))
        found = db.execute(
            f"SELECT id FROM {table} WHERE id IN ({marks}) LIMIT 1", part
        ).fetchone()
        if found is not None:
            return values.index(found[0]), found[0]
    return None


def _time_values(frame: pd.DataFrame, column: str, zone: str) -> List[Any]:
    """
    Returns a time column as int microseconds UTC (None where missing);
    naive datetimes are read in ``zone``.

    Raises:
        InvalidArgumentError: Not a datetime column; names the column.
    """
    series = frame[column].reset_index(drop=True)
    if not pd.api.types.is_datetime64_any_dtype(series):
        try:
            series = pd.to_datetime(series, format="ISO8601")
        except (ValueError, TypeError) as e:
            message = f'column "{column}": expected times ({e})'
            raise InvalidArgumentError(message) from None
    if series.dt.tz is None:
        series = series.dt.tz_localize(zone, ambiguous="raise",
                                       nonexistent="shift_forward")
    missing = _missing(series)
    micros = series.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
    raw = micros.array.asi8 if hasattr(micros.array, "asi8") else (
        micros.to_numpy().astype("datetime64[us]").astype(np.int64)
    )
    out: List[Any] = np.asarray(raw, dtype=np.int64).tolist()
    for row in np.flatnonzero(missing):
        out[int(row)] = None
    return out


def _attribute_values(
    frame: pd.DataFrame, column: str, type_: str, zone: str
) -> List[Any]:
    """
    Returns an attribute column as values the core takes, checked against
    the declared type.

    Raises:
        InvalidArgumentError: The first wrong value, naming column and row.
    """
    import decimal

    series = frame[column].reset_index(drop=True)
    missing = _missing(series)

    def bad(row: int, expected: str) -> InvalidArgumentError:
        got = type(series[row]).__name__
        message = (
            f'column "{column}" row {row}: expected {expected} for a '
            f"{type_} attribute (got {got})"
        )
        return InvalidArgumentError(message)

    if type_ == "timestamp":
        if series.dtype == object and not missing.all():
            ok = series.map(
                lambda v: v is None or isinstance(v, datetime.datetime)
                or pd.isna(v)
            ).to_numpy(dtype=bool)
            if not ok.all():
                raise bad(int(np.flatnonzero(~ok)[0]), "a datetime")
        micros = _time_values(frame, column, zone)
        return [None if m is None else _utc(m) for m in micros]
    values = series.astype(object).where(~missing, None).tolist()
    if type_ == "integer" and pd.api.types.is_integer_dtype(series.dtype):
        return [None if v is None else int(v) for v in values]
    checks: Dict[str, Tuple[Any, str]] = {
        "text": (str, "text"),
        "integer": ((int, np.integer), "an integer"),
        "decimal": ((decimal.Decimal, int, np.integer, str), "a Decimal"),
        "boolean": ((bool, np.bool_), "a bool"),
        "duration": ((datetime.timedelta,), "a timedelta"),
    }
    expected, label = checks.get(type_, (object, type_))
    out: List[Any] = []
    for row, v in enumerate(values):
        if v is None:
            out.append(None)
            continue
        if not isinstance(v, expected) or (
            type_ in ("integer", "decimal") and isinstance(v, (bool, np.bool_))
        ):
            raise bad(row, label)
        if type_ == "decimal":
            try:
                v = decimal.Decimal(str(v))
            except decimal.InvalidOperation:
                raise bad(row, label) from None
            if not v.is_finite():
                raise bad(row, "a finite Decimal")
        elif type_ == "integer":
            v = int(v)
        elif type_ == "boolean":
            v = bool(v)
        elif type_ == "duration" and isinstance(v, pd.Timedelta):
            v = v.to_pytimedelta()
        out.append(v)
    return out
