"""
Business calendars, SLA policies, escalations and durable timers.

A :class:`Calendar` says when a desk is at work (zone, weekly hours,
holidays, special days); an :class:`SlaPolicy` says how long a kind of
transaction may take on it, when the clock pauses and when the target is
met, and what to do at shares of the target (:class:`Escalation`).  A
:class:`ServiceDesk` attaches the policies to an :class:`~crmflow.Engine`:
every state change re-arms the transaction's timers in the same store
transaction, and :meth:`ServiceDesk.tick` fires what is due, each timer
atomically and once per SLA cycle, also across restarts::

    >>> import datetime as dt, crmflow
    >>> cal = crmflow.Calendar("Europe/Berlin",
    ...                        {"weekdays": "09:00-17:00"},
    ...                        holidays=["2026-12-25"])
    >>> due = cal.add(dt.datetime(2026, 10, 23, 13, tzinfo=dt.timezone.utc),
    ...               dt.timedelta(hours=16))
    >>> due.isoformat()
    '2026-10-27T14:00:00+00:00'

All times are UTC; statuses and tables are DataFrames with
``datetime64[us, UTC]`` and ``timedelta64[us]`` columns.

Limitations: conditions are attribute equalities only; the SLA clock never
restarts (a reopen resumes it), so every timer has cycle 1; with the
memory store the timer tables are kept outside the engine's transactions.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import time as _time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
from crmflow import _pandas as pd  # pandas on first use

from crmflow import _core
from crmflow._args import _FIRST_MICROS, _LAST_MICROS
from crmflow._errors import InvalidArgumentError

__all__ = [
    "Calendar",
    "Escalation",
    "Notify",
    "ServiceDesk",
    "SlaPolicy",
    "TickSummary",
]

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_NAT = np.iinfo(np.int64).min
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

TimeLike = Union[datetime.datetime, int, str]


def _micros(value: Any, name: str) -> int:
    """
    Returns a time (aware datetime, int microseconds UTC, ISO text with
    offset) as int microseconds since the epoch.

    Raises:
        InvalidArgumentError: Naive datetimes and other types.
    """
    if isinstance(value, bool):
        raise InvalidArgumentError(f"{name} must be a time (got bool)")
    if isinstance(value, (int, np.integer)):
        if not _FIRST_MICROS <= int(value) <= _LAST_MICROS:
            message = f"{name}: time out of range (expected years 1 to 9999)"
            raise InvalidArgumentError(message)
        return int(value)
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, str):
        try:
            value = datetime.datetime.fromisoformat(
                value.replace("Z", "+00:00"))
        except ValueError:
            message = f"{name}: unreadable time {value[:80]!r} (expected " \
                "ISO 8601 with an offset, years 1 to 9999)"
            raise InvalidArgumentError(message) from None
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            message = f"{name} must be an aware datetime (got {value})"
            raise InvalidArgumentError(message)
        micros = (value - _EPOCH) // datetime.timedelta(microseconds=1)
        # An offset can carry year 1 or 9999 out of the range in UTC.
        if not _FIRST_MICROS <= micros <= _LAST_MICROS:
            message = f"{name}: time out of range in UTC (expected years " \
                "1 to 9999)"
            raise InvalidArgumentError(message)
        return micros
    message = f"{name} must be a datetime or int microseconds (got " \
        f"{type(value).__name__})"
    raise InvalidArgumentError(message)


def _span(value: Any, name: str) -> int:
    """
    Returns a timedelta (or int microseconds) as int microseconds.
    """
    if isinstance(value, pd.Timedelta):
        value = value.to_pytimedelta()
    if isinstance(value, datetime.timedelta):
        micros = value // datetime.timedelta(microseconds=1)
    elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        micros = int(value)
    else:
        message = f"{name} must be a timedelta (got {type(value).__name__})"
        raise InvalidArgumentError(message)
    # Longer than 0001..9999 is no duration any time here can take.
    if abs(micros) > _LAST_MICROS - _FIRST_MICROS:
        message = f"{name}: duration out of range (at most 9999 years)"
        raise InvalidArgumentError(message)
    return micros


def _check_range(micros: np.ndarray, what: str) -> None:
    """
    Raises InvalidArgumentError naming the first of ``micros`` (int
    microseconds UTC) outside years 1 to 9999.
    """
    bad = np.flatnonzero((micros < _FIRST_MICROS) | (micros > _LAST_MICROS))
    if len(bad):
        message = f"{what} {int(bad[0])} out of range (expected times in " \
            "years 1 to 9999)"
        raise InvalidArgumentError(message)


def _utc(micros: int) -> datetime.datetime:
    """
    Returns a result in int microseconds UTC as an aware datetime.

    Raises:
        InvalidArgumentError: The result lies past year 9999 (a calendar
            step from the end of the range).
    """
    if not _FIRST_MICROS <= int(micros) <= _LAST_MICROS:
        message = "result out of range (expected a time in years 1 to 9999)"
        raise InvalidArgumentError(message)
    return _EPOCH + datetime.timedelta(microseconds=int(micros))


def _times(values: Sequence[Optional[int]]) -> pd.Series:
    """
    Returns int microseconds (None for missing) as datetime64[us, UTC].
    """
    raw = np.array([_NAT if v is None else v for v in values],
                   dtype=np.int64).view("datetime64[us]")
    return pd.Series(raw, dtype="datetime64[us]").dt.tz_localize("UTC")


def _spans(values: Sequence[int]) -> pd.Series:
    raw = np.asarray(values, dtype=np.int64).view("timedelta64[us]")
    return pd.Series(raw, dtype="timedelta64[us]")


class Calendar:
    """
    A business calendar: working hours in a zone, holidays, special days.

    Args:
        zone: IANA zone the hours are read in.
        hours: Weekday to intervals, e.g. ``{"mon": ["09:00-12:00",
            "13:00-17:00"]}``; the keys ``"weekdays"`` (Mon-Fri) and
            ``"every_day"`` set several days at once (specific days win).
            None means 24x7.
        holidays: Dates (``"2026-12-25"`` or :class:`datetime.date`)
            closed all day.
        special_days: Date to its own intervals (``[]`` closes it).

    Raises:
        InvalidArgumentError: Unknown zone or weekday, bad or overlapping
            intervals, a calendar with no working time at all.

    Example::

        >>> Calendar("UTC", {"weekdays": "09:00-17:00"}).is_open(
        ...     "2026-02-02T10:00:00Z")
        True
    """

    def __init__(
        self,
        zone: str = "UTC",
        hours: Optional[Mapping[str, Any]] = None,
        *,
        holidays: Sequence[Any] = (),
        special_days: Optional[Mapping[Any, Any]] = None,
    ) -> None:
        from crmflow.engine import _check_str

        self.zone = _check_str(zone, "zone")
        self.hours = dict(hours) if hours is not None else None
        self.holidays = [str(d) for d in holidays]
        self.special_days = {
            str(k): v for k, v in (special_days or {}).items()
        }
        if self.hours is None and not self.holidays and not self.special_days:
            self._core = _core.Calendar.twenty_four_seven(zone)
            return
        weekly: Dict[str, Any] = {}
        hours = self.hours if self.hours is not None else {
            "every_day": "00:00-24:00"}
        for key, value in hours.items():
            if key == "every_day":
                days = _DAYS
            elif key == "weekdays":
                days = _DAYS[:5]
            else:
                continue
            for day in days:
                weekly.setdefault(day, value)
        for key, value in hours.items():
            if key not in ("every_day", "weekdays"):
                weekly[key] = value
        self._core = _core.Calendar(zone, weekly, self.holidays,
                                    self.special_days)

    @classmethod
    def twenty_four_seven(cls, zone: str = "UTC") -> "Calendar":
        """
        Returns the always-open calendar (business time is elapsed time).
        """
        return cls(zone)

    @property
    def is_24x7(self) -> bool:
        """
        True for the always-open calendar.
        """
        return bool(self._core.is_24x7)

    def to_dict(self) -> Dict[str, Any]:
        """
        Returns the calendar as a JSON-ready dict (``from_dict`` reads it).
        """
        return {"zone": self.zone, "hours": self.hours,
                "holidays": self.holidays,
                "special_days": self.special_days}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Calendar":
        """
        Returns the calendar of a dict with keys zone, hours, holidays and
        special_days (all optional).
        """
        return cls(d.get("zone", "UTC"), d.get("hours"),
                   holidays=d.get("holidays", ()),
                   special_days=d.get("special_days"))

    def add(self, start: TimeLike,
            business: datetime.timedelta) -> datetime.datetime:
        """
        Returns the instant when ``business`` working time has elapsed
        after ``start`` (aware UTC).

        Raises:
            InvalidArgumentError: A negative duration, a result beyond
                50 years or past year 9999.
        """
        return _utc(self._core.add(_micros(start, "start"),
                                   _span(business, "business")))

    def add_many(self, starts: Any, business: datetime.timedelta) -> Any:
        """
        Returns ``add`` for an array of start instants (datetime64 or int
        microseconds) as ``datetime64[us]`` values in UTC.
        """
        arr = np.asarray(starts)
        if np.issubdtype(arr.dtype, np.datetime64):
            arr = arr.astype("datetime64[us]").view(np.int64)
        arr = arr.astype(np.int64)
        _check_range(arr, "start")
        out = np.asarray(self._core.add_many(arr,
                                             _span(business, "business")))
        _check_range(out, "result")
        return out.view("datetime64[us]")

    def between(self, a: TimeLike, b: TimeLike) -> datetime.timedelta:
        """
        Returns the working time in [a, b) (negative when b < a).
        """
        return datetime.timedelta(microseconds=self._core.between(
            _micros(a, "a"), _micros(b, "b")))

    def is_open(self, t: TimeLike) -> bool:
        """
        True when ``t`` lies in a working window.
        """
        return bool(self._core.is_open(_micros(t, "t")))

    def next_open(self, t: TimeLike) -> datetime.datetime:
        """
        Returns ``t`` when open, else the start of the next window.
        """
        return _utc(self._core.next_open(_micros(t, "t")))

    def __repr__(self) -> str:
        if self.is_24x7:
            return f"Calendar({self.zone!r}, 24x7)"
        return f"Calendar({self.zone!r}, {self.hours!r})"


@dataclasses.dataclass(frozen=True)
class Notify:
    """
    An outbox notification; a recipient ``"@name"`` is read from the
    transaction's attribute ``name``.
    """

    channel: str
    recipient: str
    subject: str = ""


@dataclasses.dataclass(frozen=True)
class Escalation:
    """
    A step of an escalation ladder: at ``share`` of the target, write the
    notifications, set the attributes (reassign, raise priority), then fire
    the event; all in one store transaction, once per SLA cycle.

    Example::

        >>> Escalation(1.0, notify=[Notify("email", "supervisor",
        ...            "breached")], set={"assignment_group": "L2"})
        Escalation(share=1.0, ...)
    """

    share: float
    notify: Sequence[Notify] = ()
    set: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    fire: Optional[str] = None

    def _actions(self) -> List[Dict[str, Any]]:
        out: List[Dict[str, Any]] = []
        for n in self.notify:
            out.append({"type": "notify", "channel": n.channel,
                        "recipient": n.recipient, "subject": n.subject})
        for name, value in self.set.items():
            out.append({"type": "set", "attribute": name, "value": value})
        if self.fire:
            out.append({"type": "fire", "event": self.fire})
        return out

    def __repr__(self) -> str:
        return f"Escalation(share={self.share!r}, ...)"


@dataclasses.dataclass(frozen=True)
class SlaPolicy:
    """
    An SLA on a kind of transaction.

    Args:
        name: Unique name (``"resolution"``).
        kind: The kind it applies to.
        target: The time allowed (positive).
        calendar: The clock; None is 24x7.
        when: Attribute equalities selecting the transactions
            (``{"priority": "1 - Critical"}``); empty selects all.
        paused: States that pause the clock.
        met: States that meet the target and stop the clock.
        start: The clock starts on first entering this state (None: at
            creation).
        escalation: The ladder.

    Example::

        >>> SlaPolicy("resolution", "service_request",
        ...           datetime.timedelta(hours=8),
        ...           paused=["waiting_customer"],
        ...           met=["resolved", "closed"]).name
        'resolution'
    """

    name: str
    kind: str
    target: datetime.timedelta
    calendar: Optional[Calendar] = None
    when: Mapping[str, str] = dataclasses.field(default_factory=dict)
    paused: Sequence[str] = ()
    met: Sequence[str] = ()
    start: Optional[str] = None
    escalation: Sequence[Escalation] = ()


@dataclasses.dataclass(frozen=True)
class TickSummary:
    """
    What a tick did: timers fired, cancelled (reason passed), moved (clock
    moved on) and failed (action refused, rolled back).
    """

    fired: int = 0
    cancelled: int = 0
    moved: int = 0
    failed: int = 0


def _policy_from_dict(d: Mapping[str, Any],
                      calendars: Mapping[str, Calendar]) -> SlaPolicy:
    cal = d.get("calendar")
    if isinstance(cal, str):
        if cal not in calendars:
            message = f"sla policy {d.get('name')!r}: unknown calendar {cal!r}"
            raise InvalidArgumentError(message)
        cal = calendars[cal]
    elif isinstance(cal, Mapping):
        cal = Calendar.from_dict(cal)
    ladder = []
    for step in d.get("escalation", ()):
        ladder.append(Escalation(
            float(step["share"]),
            notify=[Notify(**n) for n in step.get("notify", ())],
            set=dict(step.get("set", {})),
            fire=step.get("fire")))
    try:
        target = datetime.timedelta(seconds=float(d["target_seconds"]))
    except (TypeError, ValueError, OverflowError):
        message = (
            f"sla policy {d.get('name')!r}: target_seconds "
            f"{d['target_seconds']!r} is not a number of seconds within "
            "the supported range"
        )
        raise InvalidArgumentError(message) from None
    return SlaPolicy(
        d["name"], d["kind"], target,
        calendar=cal, when=dict(d.get("when", {})),
        paused=list(d.get("paused", ())), met=list(d.get("met", ())),
        start=d.get("start"), escalation=ladder)


class ServiceDesk:
    """
    SLA policies and durable timers attached to an engine.

    Args:
        engine: An open :class:`~crmflow.Engine`; the desk must not be used
            after it is closed (calls raise).  Keep the desk referenced
            while the engine changes states: once it is garbage collected
            its hooks stop arming timers.
        policies: Policies to add.

    Example::

        >>> import crmflow, datetime as dt
        >>> engine = crmflow.Engine(":memory:")  # doctest: +SKIP
        >>> desk = crmflow.ServiceDesk(engine, [SlaPolicy(
        ...     "resolution", "service_request", dt.timedelta(hours=8),
        ...     met=["resolved", "closed"])])  # doctest: +SKIP
        >>> desk.tick("2026-02-02T18:00:00Z")  # doctest: +SKIP
        TickSummary(fired=0, cancelled=0, moved=0, failed=0)
    """

    def __init__(self, engine: Any,
                 policies: Sequence[SlaPolicy] = ()) -> None:
        self._engine = engine
        self._core = _core.Scheduler(engine)
        self._policies: List[SlaPolicy] = []
        for p in policies:
            self.add_policy(p)

    @classmethod
    def from_config(cls, engine: Any,
                    config: Union[str, Mapping[str, Any]]) -> "ServiceDesk":
        """
        Returns a desk from a JSON file name or dict: ``{"calendars":
        {name: calendar dict}, "policies": [{"name", "kind",
        "target_seconds", "calendar" (a name or dict), "when", "paused",
        "met", "start", "escalation": [{"share", "notify": [{"channel",
        "recipient", "subject"}], "set": {...}, "fire"}]}],
        "assignment_notices": [{"attribute", "channel", "subject"}]}``.
        """
        if isinstance(config, str):
            with open(config, encoding="utf-8") as f:
                config = json.load(f)
        calendars = {k: Calendar.from_dict(v)
                     for k, v in config.get("calendars", {}).items()}
        desk = cls(engine)
        for p in config.get("policies", ()):
            desk.add_policy(_policy_from_dict(p, calendars))
        for n in config.get("assignment_notices", ()):
            desk.notify_on_assignment(**n)
        return desk

    @property
    def policies(self) -> List[SlaPolicy]:
        """
        The policies, in the order added.
        """
        return list(self._policies)

    def add_policy(self, policy: SlaPolicy) -> None:
        """
        Adds ``policy``; stored transactions are armed by :meth:`sync`.

        Raises:
            InvalidArgumentError: A duplicate name, a target not positive,
                a state both paused and met, a share not positive.
        """
        cal = policy.calendar._core if policy.calendar is not None else None
        ladder = [(float(e.share), e._actions()) for e in policy.escalation]
        self._core.add_policy(
            policy.name, policy.kind,
            {str(k): str(v) for k, v in policy.when.items()},
            _span(policy.target, "target"), cal, list(policy.paused),
            list(policy.met), policy.start or "", ladder)
        self._policies.append(policy)

    def notify_on_assignment(self, attribute: str = "assignment_group",
                             channel: str = "group",
                             subject: str = "assigned") -> None:
        """
        Writes an outbox row to the new value whenever the desk changes
        ``attribute`` (an escalation's reassignment, :meth:`set_attributes`).
        """
        self._core.notify_on_assignment(attribute, channel, subject)

    def sync(self, id: Optional[str] = None) -> int:
        """
        Re-arms the timers of ``id`` (None: of every transaction of the
        policies' kinds) at the engine's clock; returns how many
        transactions were visited.
        """
        if id is None:
            return int(self._core.sync_all())
        self._core.sync(id)
        return 1

    def tick(self, now: TimeLike) -> TickSummary:
        """
        Processes the timers due at ``now``, in due order, each atomically.
        """
        return TickSummary(**self._core.tick(self._engine._time(now, "now")))

    def run(self, *, every: float = 60.0, until: Optional[TimeLike] = None,
            clock: Any = None, sleep: Any = _time.sleep) -> TickSummary:
        """
        Ticks at ``clock()`` (default: the wall clock, UTC) every
        ``every`` seconds (``sleep(every)`` between ticks) until the tick
        at or past ``until``; returns the totals.  Without ``until`` it
        runs until interrupted.
        """
        stop = None if until is None else _micros(until, "until")
        totals = [0, 0, 0, 0]
        while True:
            now = clock() if clock is not None else _core_now()
            s = self.tick(now)
            for i, v in enumerate((s.fired, s.cancelled, s.moved, s.failed)):
                totals[i] += v
            if stop is not None and _micros(now, "now") >= stop:
                return TickSummary(*totals)
            sleep(every)

    def status(self, id: str, now: Optional[TimeLike] = None) -> pd.DataFrame:
        """
        Returns one row per policy applying to ``id``: state (running,
        paused, met, breached, not started), counted / paused / stopped /
        remaining time, due_at, breached_at, met_at and the explanation.

        Raises:
            NotFoundError: Unknown id.
        """
        rows = self._core.status(id, self._time_or_none(now))
        cols = {k: [r[k] for r in rows] for k in (
            "transaction_id", "policy", "state", "current_state",
            "started_at", "counted", "paused", "stopped", "remaining",
            "due_at", "breached_at", "met_at", "explanation")}
        return self._frame(cols)

    def statuses(self, kind: str = "",
                 now: Optional[TimeLike] = None) -> pd.DataFrame:
        """
        Returns the status of every transaction of ``kind`` ("" all) and
        policy, as :meth:`status` without explanations.
        """
        return self._frame(self._core.status_all(kind,
                                                 self._time_or_none(now)))

    def set_attributes(self, id: str, attributes: Mapping[str, Any],
                       expected_version: Optional[int] = None) -> int:
        """
        Changes attributes, writes assignment notices and re-arms; returns
        the new version.
        """
        if expected_version is None:
            expected_version = self._engine.get(id).version
        r = self._core.set_attributes(id, dict(attributes), expected_version)
        return int(r["version"])

    def arm_timers(self, transaction_ids: Sequence[str],
                   policies: Union[str, Sequence[str]],
                   due_at: Any, steps: Any = 0) -> int:
        """
        Inserts pending timers in bulk (one transaction), ignoring existing
        keys; returns how many were inserted.  ``due_at`` is datetime64 or
        int microseconds; ``policies`` and ``steps`` may be scalars.
        """
        n = len(transaction_ids)
        if isinstance(policies, str):
            policies = [policies] * n
        if np.isscalar(steps):
            steps = [int(steps)] * n
        due = np.asarray(due_at)
        if np.issubdtype(due.dtype, np.datetime64):
            due = due.astype("datetime64[us]").view(np.int64)
        return int(self._core.arm_timers(list(transaction_ids),
                                         list(policies),
                                         [int(s) for s in steps],
                                         due.astype(np.int64).tolist()))

    def pending_count(self) -> int:
        """
        Returns how many timers are pending.
        """
        return int(self._core.pending_count())

    def timers(self, id: str = "") -> pd.DataFrame:
        """
        Returns the timers table (of ``id``, or all) as a DataFrame.
        """
        return self._frame(self._core.timers(id))

    def events(self, id: str = "") -> pd.DataFrame:
        """
        Returns the sla_events table: breaches, thresholds and failures.
        """
        return self._frame(self._core.events(id))

    def outbox(self, id: str = "") -> pd.DataFrame:
        """
        Returns the outbox table: notifications for other systems.
        """
        return self._frame(self._core.outbox(id))

    def _time_or_none(self, now: Optional[TimeLike]) -> Any:
        return None if now is None else self._engine._time(now, "now")

    @staticmethod
    def _frame(cols: Mapping[str, List[Any]]) -> pd.DataFrame:
        out: Dict[str, Any] = {}
        for name, values in cols.items():
            if name in ("started_at", "due_at", "breached_at", "met_at",
                        "fired_at", "time", "recorded_at"):
                out[name] = _times(values)
            elif name in ("counted", "paused", "stopped", "remaining"):
                out[name] = _spans(values)
            elif name in ("id", "step", "cycle"):
                out[name] = pd.Series(values, dtype="int64")
            elif name == "share":
                out[name] = pd.Series(values, dtype="float64")
            else:
                out[name] = pd.Series(values, dtype="object")
        return pd.DataFrame(out)

    def __repr__(self) -> str:
        names = ", ".join(p.name for p in self._policies)
        return f"ServiceDesk(policies=[{names}])"


def _core_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)
