"""
What-if replays through a live engine: business rules, SLA policies and
team routing applied to a recorded history.

:func:`crmflow.analytics.what_if` compares two :class:`~crmflow.analytics.
Scenario` objects.  The workflow and its guards are compared by the
conformance replay of the log; when a scenario also carries ``rules``,
``sla`` or ``routing``, this module replays the same log into a fresh
in-memory engine per scenario configured that way, so the rules and the
SLA scheduler really run:

* the cases are created and their events fired in time order over the
  whole log (ties: case order, then position in the case), with the
  log's timestamps as the engine's clock;
* the SLA scheduler ticks at every event time (after the events of that
  instant) and, between events, at each pending timer's due time, so a
  breach that happens while a case sits idle counts, and escalations run
  at the instant they are due;
* a case ends at its last event: its state and attributes are taken then,
  and breaches, thresholds, notifications and rule firings after that
  instant are not counted (a breach due exactly at the end is not one: the
  SLA is breached only while running after its due instant).

What one case gets: its state, the rules fired (count and names), the
final values of the attributes that rules or escalations set, the outbox
rows written (rule ``notify`` actions and SLA notifications), the SLA
breaches and thresholds reached, its team, the events the engine applied
(``count_events``: e.g. an approval event a rule fires) and the log
events the engine could not apply (not allowed from the state reached,
refused by a guard or by a failing rule; the rule trace cannot tell the
evaluations of a rolled-back change from those of other changes of the
case at the same instant, so no firing of that case at that instant is
counted).

Inputs, in the forms the engine and the service desk take:

* ``rules``: dicts of :meth:`crmflow.Engine.add_rule` keyword arguments
  (``name``, ``kind`` (default: the workflow's kind), ``trigger``, ``on``,
  ``when``, ``actions``, ``priority``, ``enabled``), one dict or a list;
* ``sla``: :class:`~crmflow.SlaPolicy` objects, policy dicts of
  :meth:`crmflow.ServiceDesk.from_config` (``target_seconds`` or a
  ``target`` timedelta) or a whole config dict (``calendars``,
  ``policies``, ``assignment_notices``);
* ``routing``: ``{"teams": [Team or {"name", "members", "strategy"}],
  "rules": [Router.add_rule keyword dicts]}``; each case is routed and
  assigned when created (after its creation rules), so the kind must
  declare ``team`` and ``assignee``.

Transaction attributes come from the log: each declared attribute of the
workflow reads the log attribute of that name (or the one
``attribute_map`` maps to it), converted to the declared type.  How is
chosen by ``what_if(..., attributes=...)``:

* ``"replay"`` (the default, since a log records what was known when):
  a case is created with the values of the row that creates it (and of
  rows of the case the replay skips before it: another lifecycle, an
  unmapped activity); after that, each row whose value of an attribute is
  present and differs from the value the log gave last sets it on the
  transaction at that row's time, before the row's event fires, through
  :meth:`crmflow.ServiceDesk.set_attributes`.  So rules on ``changed``
  run, assignment notices are written and SLA timers are re-armed: a
  policy whose condition stops holding has its pending steps cancelled,
  one that starts to hold evaluates its clock over the whole history (it
  does not restart), and a step already due fires at that instant's
  tick.  Rows the replay skips change values too, at their own time.  An
  empty, blank (spaces only) or missing value means unchanged, never
  cleared.  The log's
  value is compared with the log's previous one, not with the
  transaction's, so a value a rule, escalation or routing wrote stays
  until the log itself changes that attribute.  A value equal to the last
  one (``10.0`` and ``10.00`` as decimals, ``yes`` and ``true``) is no
  change.  Routing happens once, at creation, with the creation values.
* ``"first"``: each case is created with its first non-missing value of
  each attribute, wherever it appears in the case, and later changes are
  not replayed.

A value that does not convert (``"urgent"`` for an integer) fails the
whole what-if before anything is returned, naming the scenario, case,
row (the log's ``row``: the input row, from 0), event and column; under
``"first"`` only the values used are converted.  ``attribute_changes``
per case counts the values set after creation.  A change the engine
refuses (a rule on ``changed`` fails) is rolled back and counted, once
per row, in ``refused_events``.

Python guards see, as ``case_attributes``, the case's values current at
the event under ``"replay"`` (all log attributes, not only declared ones)
and its first values under ``"first"``.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import heapq
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from crmflow import _core
from crmflow import _pandas as pd  # pandas on first use
from crmflow._errors import Error, InvalidArgumentError

__all__: List[str] = []

_SET_ACTION = re.compile(r"^\s*(?:set|assign)\s+([A-Za-z_][A-Za-z0-9_]*)\s*=")
_RULE_KEYS = ("name", "kind", "trigger", "on", "when", "actions", "priority",
              "enabled")
# What ``what_if(attributes=...)`` accepts; the first is the default.
ATTRIBUTE_MODES = ("replay", "first")
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


@dataclasses.dataclass
class _Config:
    """
    A scenario's engine configuration, checked and normalised.
    """

    name: str
    workflow: Any
    guards: Dict[str, Any]
    rules: List[Dict[str, Any]]
    policies: List[Any]
    notices: List[Dict[str, Any]]
    routing: Optional[Dict[str, Any]]

    @property
    def active(self) -> bool:
        return bool(self.rules or self.policies or self.routing)


def _fail(scenario: str, message: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"what_if: scenario {scenario!r}: {message}")


def _rules(value: Any, kind: str, scenario: str) -> List[Dict[str, Any]]:
    if value is None:
        return []
    if isinstance(value, Mapping):
        value = [value]
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise _fail(scenario, "rules must be a rule dict or a list of them "
                    "(keyword arguments of Engine.add_rule)")
    out = []
    for i, r in enumerate(value):
        if not isinstance(r, Mapping):
            raise _fail(scenario, f"rule {i} is not a dict")
        unknown = sorted(set(r) - set(_RULE_KEYS))
        if unknown:
            raise _fail(scenario, f"rule {r.get('name', i)!r}: unknown key "
                        f"{unknown[0]!r} (expected {', '.join(_RULE_KEYS)})")
        if not isinstance(r.get("name"), str) or not r["name"]:
            raise _fail(scenario, f"rule {i} needs a name")
        d = dict(r)
        d.setdefault("kind", kind)
        out.append(d)
    names = [r["name"] for r in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise _fail(scenario, f"rule name {dup[0]!r} is given twice")
    return out


def _policies(value: Any, kind: str,
              scenario: str) -> Tuple[List[Any], List[Dict[str, Any]]]:
    from crmflow import service

    if value is None:
        return [], []
    notices: List[Dict[str, Any]] = []
    calendars: Dict[str, Any] = {}
    if isinstance(value, Mapping) and "policies" in value:
        calendars = {k: service.Calendar.from_dict(v)
                     for k, v in value.get("calendars", {}).items()}
        notices = [dict(n) for n in value.get("assignment_notices", ())]
        value = value["policies"]
    if isinstance(value, (service.SlaPolicy, Mapping)):
        value = [value]
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise _fail(scenario, "sla must be SlaPolicy objects, policy dicts "
                    "or a service desk config dict")
    out = []
    for i, p in enumerate(value):
        if isinstance(p, Mapping):
            d = dict(p)
            d.setdefault("kind", kind)
            if "target" in d and "target_seconds" not in d:
                target = d.pop("target")
                if isinstance(target, datetime.timedelta):
                    target = target.total_seconds()
                d["target_seconds"] = target
            missing = [k for k in ("name", "target_seconds") if k not in d]
            if missing:
                raise _fail(scenario, f"sla policy {d.get('name', i)!r} "
                            f"needs {missing[0]!r}")
            try:
                p = service._policy_from_dict(d, calendars)
            except (KeyError, TypeError, ValueError) as e:
                raise _fail(scenario, f"sla policy {d['name']!r}: {e}")
        elif not isinstance(p, service.SlaPolicy):
            raise _fail(scenario, f"sla item {i} is not an SlaPolicy or dict")
        out.append(p)
    return out, notices


def _routing(value: Any, scenario: str) -> Optional[Dict[str, Any]]:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not value.get("teams"):
        raise _fail(scenario, 'routing must be {"teams": [...], "rules": '
                    "[...]} with at least one team")
    unknown = sorted(set(value) - {"teams", "rules"})
    if unknown:
        raise _fail(scenario, f"routing: unknown key {unknown[0]!r}")
    return {"teams": list(value["teams"]),
            "rules": [dict(r) for r in value.get("rules", ())]}


def _check_names(cfg: _Config) -> None:
    """
    Checks what the engine would only find out at the first tick: the
    states, attributes and events the SLA policies name.
    """
    wf = cfg.workflow
    states = set(wf.states())
    attrs = {a[0] for a in wf._core.attributes()}
    events = set(wf.events())
    kind = wf.name
    for p in cfg.policies:
        what = f"sla policy {p.name!r}"
        if p.kind != kind:
            raise _fail(cfg.name, f"{what}: kind {p.kind!r} is not the "
                        f"workflow's kind {kind!r}")
        for s in (*p.paused, *p.met, *([p.start] if p.start else [])):
            if s not in states:
                raise _fail(cfg.name, f"{what}: unknown state {s!r} "
                            f"(states: {', '.join(wf.states())})")
        for a in p.when:
            if a not in attrs:
                raise _fail(cfg.name, f"{what}: unknown attribute {a!r} "
                            f"(declared: {', '.join(sorted(attrs))})")
        for step in p.escalation:
            for a in step.set:
                if a not in attrs:
                    raise _fail(cfg.name, f"{what}: escalation sets unknown "
                                f"attribute {a!r}")
            if step.fire and step.fire not in events:
                raise _fail(cfg.name, f"{what}: escalation fires unknown "
                            f"event {step.fire!r}")
    for n in cfg.notices:
        a = n.get("attribute", "assignment_group")
        if a not in attrs:
            raise _fail(cfg.name, f"assignment notice: unknown attribute "
                        f"{a!r}")


def config(scenario: Any) -> _Config:
    """
    Returns the engine configuration of a Scenario, checked.
    """
    kind = scenario.workflow.name
    name = scenario.name
    cfg = _Config(
        name, scenario.workflow, dict(scenario.guards or {}),
        _rules(scenario.rules, kind, name),
        *_policies(scenario.sla, kind, name),
        _routing(getattr(scenario, "routing", None), name),
    )
    _check_names(cfg)
    return cfg


def set_attributes(cfg: _Config) -> List[str]:
    """
    Returns the attributes the scenario's rules and escalations write.
    """
    out: List[str] = []
    for r in cfg.rules:
        lines = r.get("actions", ())
        if isinstance(lines, str):
            lines = lines.splitlines()
        for line in lines:
            m = _SET_ACTION.match(line)
            if m and m.group(1) not in out:
                out.append(m.group(1))
    for p in cfg.policies:
        for step in p.escalation:
            for a in step.set:
                if a not in out:
                    out.append(a)
    if cfg.routing:
        for a in ("team", "assignee"):
            if a not in out:
                out.append(a)
    return out


# --- The log as replay input ------------------------------------------------


@dataclasses.dataclass
class _Input:
    """
    The log's events in global time order, mapped to workflow names.
    """

    case_ids: List[str]
    order: np.ndarray  # event rows in replay order
    case: np.ndarray  # case index per row
    name: np.ndarray  # mapped activity per row (object, None: ignored)
    time: np.ndarray  # int64 micros per row
    resource: np.ndarray
    attrs: Dict[str, np.ndarray]
    first: Dict[int, int]  # case -> its first row
    last: Dict[int, int]  # case -> its last row
    activity: np.ndarray
    row: np.ndarray  # the log's input row per row
    kept: np.ndarray  # bool per row: replayed as an event
    every: np.ndarray  # all rows, kept or not, in replay order
    position: np.ndarray  # position of each row in ``every``


def _case_text(inp: _Input) -> Dict[int, Dict[str, str]]:
    """
    Returns per case the first text value of each log attribute (what a
    guard sees as ``case_attributes``).
    """
    out: Dict[int, Dict[str, str]] = {c: {} for c in inp.first}
    for col, values in inp.attrs.items():
        for r in inp.order:
            v = values[r]
            if isinstance(v, str):
                out[int(inp.case[r])].setdefault(col, v)
    return out


def prepare(log: Any, activity_map: Optional[Mapping[str, str]]) -> _Input:
    """
    Reads the log once for every scenario.
    """
    df = log.to_dataframe()
    keep = np.ones(len(df), dtype=bool)
    if "lifecycle" in df.columns:
        lc = df["lifecycle"].astype(object)
        keep &= np.asarray(
            lc.isna() | (lc.astype(str).str.lower() == "complete"),
            dtype=bool)
    activity = df["activity"].astype(object).to_numpy()
    if activity_map:
        mapping = {str(k): str(v) for k, v in activity_map.items()}
        name = np.asarray([mapping.get(a) for a in activity], dtype=object)
    else:
        name = activity.copy()
    keep &= np.asarray([n is not None for n in name], dtype=bool)
    case_ids = log.case_ids
    index = {c: i for i, c in enumerate(case_ids)}
    case = np.asarray([index[c] for c in df["case_id"].astype(object)],
                      dtype=np.int64)
    time = df["time"].astype("datetime64[us, UTC]").array.asi8
    time = np.asarray(time, dtype=np.int64)
    every = np.lexsort((np.arange(len(df)), case, time))
    position = np.empty(len(df), dtype=np.int64)
    position[every] = np.arange(len(df))
    order = every[keep[every]]
    first: Dict[int, int] = {}
    last: Dict[int, int] = {}
    for r in order.tolist():
        c = int(case[r])
        first.setdefault(c, r)
        last[c] = r
    attrs = {
        c: df[c].astype(object).to_numpy() for c in df.columns
        if c not in ("case_id", "activity", "resource", "lifecycle", "time",
                     "row")
    }
    resource = df["resource"].astype(object).to_numpy()
    row = np.asarray(df["row"], dtype=np.int64)
    return _Input(case_ids, order, case, name, time, resource, attrs, first,
                  last, activity, row, keep, every, position)


def _convert(value: str, type_: str) -> Any:
    """
    Returns log text as a value of a declared type.

    Raises:
        ValueError: The text is no such value.
    """
    try:
        if type_ == "decimal":
            d = decimal.Decimal(value)
            if not d.is_finite():
                raise ValueError(value)
            return d
        if type_ == "integer":
            d = decimal.Decimal(value)
            if not d.is_finite() or d != d.to_integral_value():
                raise ValueError(value)
            n = int(d)
            if not -2**63 <= n < 2**63:
                raise ValueError(value)
            return n
        if type_ == "boolean":
            low = value.strip().lower()
            if low in ("true", "1", "yes"):
                return True
            if low in ("false", "0", "no"):
                return False
            raise ValueError(value)
        if type_ == "timestamp":
            # An aware datetime, the type the engine takes for timestamp
            # attributes (an int would be an integer).
            return _EPOCH + datetime.timedelta(
                microseconds=_core.parse_timestamp(value, "", "UTC"))
    except (ArithmeticError, ValueError, Error):
        raise ValueError(value) from None
    return value


def _iso(micros: int) -> str:
    t = _EPOCH + datetime.timedelta(microseconds=int(micros))
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (
        f".{t.microsecond:06d}Z" if t.microsecond else "Z")


@dataclasses.dataclass
class _Plan:
    """
    The attribute values the log gives a scenario's transactions.
    """

    creation: Dict[int, Dict[str, Any]]  # case -> values it is created with
    changes: Dict[int, Dict[str, Any]]  # row -> values it sets, in order


def attribute_plan(inp: _Input, workflow: Any,
                   attribute_map: Mapping[str, str], mode: str,
                   scenario: str) -> _Plan:
    """
    Returns the creation values and later changes of every case (see the
    module docstring for the two modes), converted to the declared types.

    Raises:
        InvalidArgumentError: A value used does not convert; the message
            names the scenario, case, row, event, column and attribute.
    """
    declared = {a[0]: a[1] for a in workflow._core.attributes()}
    source = {v: k for k, v in attribute_map.items()}
    cols = []
    for attr, type_ in declared.items():
        col = source.get(attr, attr)
        if col in inp.attrs and type_ != "duration":
            cols.append((attr, type_, col, inp.attrs[col]))
    plan = _Plan({c: {} for c in inp.first}, {})
    if not cols:
        return plan
    seq = inp.order if mode == "first" else inp.every
    case = inp.case[seq]
    start = {c: int(inp.position[r]) for c, r in inp.first.items()}
    end = {c: int(inp.position[r]) for c, r in inp.last.items()}
    for attr, type_, col, values in cols:
        v = values[seq]
        # Empty and blank cells are missing values (exports pad them).
        present = np.flatnonzero(np.asarray(
            [isinstance(x, str) and x.strip() != "" for x in v],
            dtype=bool))
        # Logs repeat a case's values on every row: convert each text once.
        typed: Dict[str, Any] = {}
        last: Dict[int, Any] = {}  # case -> the value the log gave last
        for k in present.tolist():
            c = int(case[k])
            if c not in start or (mode == "first" and c in last):
                continue
            r = int(seq[k])
            at = int(inp.position[r])
            if at > end[c]:
                continue  # the case has ended
            x = v[k]
            if x not in typed:
                try:
                    typed[x] = _convert(x, type_)
                except ValueError:
                    raise _bad_value(scenario, inp, r, col, attr, x,
                                     type_) from None
            y = typed[x]
            if mode == "first" or at <= start[c]:
                plan.creation[c][attr] = y
            elif c not in last or last[c] != y:
                plan.changes.setdefault(r, {})[attr] = y
            last[c] = y
    return plan


def _bad_value(scenario: str, inp: _Input, r: int, col: str, attr: str,
               value: str, type_: str) -> InvalidArgumentError:
    cid = inp.case_ids[int(inp.case[r])]
    what = f"column {col!r}" + (f" (attribute {attr!r})" if col != attr
                                else "")
    return _fail(scenario, f"case {cid!r}, row {int(inp.row[r])} "
                 f"(event {str(inp.activity[r])!r} at "
                 f"{_iso(inp.time[r])}): {what}: {value!r} is not a valid "
                 f"{type_}")


# --- One replay -------------------------------------------------------------


@dataclasses.dataclass
class Outcome:
    """
    What one engine replay produced, per case (indexed by case index).
    """

    state: Dict[int, str]
    attributes: Dict[int, Dict[str, Any]]
    refused: Dict[int, int]
    fired: Any  # DataFrame of rule firings counted: case, rule
    sla: Any  # DataFrame of SLA events counted
    outbox: Any  # DataFrame of outbox rows counted
    history: Any  # DataFrame: case, event (engine history, up to the end)
    attribute_changes: Dict[int, int]  # values the log set after creation


def _engine(cfg: _Config, box: List[Any]) -> Tuple[Any, Any, Any]:
    """
    Returns a fresh engine configured as the scenario says, its service
    desk and router (or None).
    """
    from crmflow import engine as _engine_mod
    from crmflow import routing as _routing_mod
    from crmflow import service

    # The SQLite memory store: rule notifications go to its outbox table.
    e = _engine_mod.Engine(":memory:", clock=lambda: box[0])
    wf = cfg.workflow
    guard_names = {g for t in wf._core.transitions() for g in t["guards"]
                   if not g.startswith("expr:")}
    for g in sorted(guard_names):
        fn = cfg.guards.get(g)
        e.add_guard(g, _GuardAdapter(fn, box) if fn else (lambda ctx: True))
    e.register(wf)
    try:
        for r in cfg.rules:
            e.add_rule(**r)
    except Error as ex:
        raise _fail(cfg.name, str(ex)) from None
    problems = e.validate_rules()
    if problems:
        raise _fail(cfg.name, "; ".join(problems))
    desk = service.ServiceDesk(e)
    try:
        for p in cfg.policies:
            desk.add_policy(p)
        for n in cfg.notices:
            desk.notify_on_assignment(**n)
    except Error as ex:
        raise _fail(cfg.name, str(ex)) from None
    router = None
    if cfg.routing:
        router = _routing_mod.Router(e)
        try:
            for t in cfg.routing["teams"]:
                if isinstance(t, Mapping):
                    t = _routing_mod.Team(**t)
                router.add_team(t)
            for r in cfg.routing["rules"]:
                router.add_rule(**r)
        except (Error, TypeError) as ex:
            raise _fail(cfg.name, f"routing: {ex}") from None
    return e, desk, router


class _GuardAdapter:
    """
    Calls a :class:`~crmflow.analytics.ReplayContext` guard from the
    engine's call context, with the log event being replayed.
    """

    def __init__(self, fn: Any, box: List[Any]):
        self._fn = fn
        self._box = box

    def __call__(self, ctx: Any) -> bool:
        from crmflow.analytics import ReplayContext

        _, event_info = self._box
        case_id, activity, resource, attrs, case_attrs = event_info
        time = datetime.datetime.fromtimestamp(
            ctx.time / 1e6, tz=datetime.timezone.utc)
        rc = ReplayContext(
            case_id=case_id, event=ctx.event, from_state=ctx.from_state,
            to_state=ctx.to_state, guard="", time=time, activity=activity,
            resource=resource, attributes=attrs, case_attributes=case_attrs)
        return bool(self._fn(rc))


def replay(cfg: _Config, inp: _Input, activity_kind: str,
           attribute_map: Mapping[str, str],
           attributes: str = "replay") -> Outcome:
    """
    Replays the log into a fresh engine configured by ``cfg``, with the
    log's attribute values as ``attributes`` (one of ATTRIBUTE_MODES)
    says.

    Raises:
        InvalidArgumentError: A log value does not convert to its declared
            type, or a case cannot be created (the message names the
            scenario and the case).
    """
    if attributes not in ATTRIBUTE_MODES:
        raise InvalidArgumentError(
            f"what_if: attributes {attributes!r} unknown (expected "
            f"{' or '.join(ATTRIBUTE_MODES)})")
    # Converted before the engine exists: a bad value fails the scenario
    # before anything of it is made.
    plan = attribute_plan(inp, cfg.workflow, attribute_map, attributes,
                          cfg.name)
    replaying = attributes == "replay"
    wf = cfg.workflow
    kind = wf.name
    initial = wf.initial_state
    by_target: Dict[Tuple[str, str], str] = {}
    for t in wf._core.transitions():
        by_target.setdefault((t["source"], t["target"]), t["event"])
    box: List[Any] = [0, ("", "", None, {}, {})]
    e, desk, router = _engine(cfg, box)
    core_desk = desk._core
    has_sla = bool(cfg.policies)
    # Escalations that set attributes or fire events re-arm timers.
    volatile = any(step.set or step.fire for p in cfg.policies
                   for step in p.escalation)
    creation = plan.creation
    # What a Python guard sees as case_attributes; under "replay" the
    # values current at the event, filled in as the rows go by.
    if not cfg.guards:
        case_text: Dict[int, Dict[str, str]] = {}
    elif replaying:
        case_text = {c: {} for c in inp.first}
    else:
        case_text = _case_text(inp)
    text_cols = list(inp.attrs.items()) if cfg.guards and replaying else []
    changed: Dict[int, int] = {c: 0 for c in inp.first}
    state: Dict[int, str] = {}
    attributes: Dict[int, Dict[str, Any]] = {}
    refused: Dict[int, int] = {c: 0 for c in inp.first}
    ended_at: Dict[int, int] = {}
    heap: List[Tuple[int, str]] = []
    current: Dict[int, str] = {}
    last_tick = [np.iinfo(np.int64).min]
    failed: set = set()  # (case id, instant) of changes rolled back

    def tick(now: int) -> None:
        box[0] = now
        s = core_desk.tick(now)
        last_tick[0] = now
        if (s["fired"] and volatile) or s["moved"] or s["failed"]:
            # Actions may have moved cases: re-read every pending timer.
            heap.clear()
            t = core_desk.timers("")
            heap.extend(
                (d, tid) for d, tid, st in zip(t["due_at"],
                                               t["transaction_id"],
                                               t["state"])
                if st == "pending")
            heapq.heapify(heap)

    # The engine keeps the last 100 000 trace rows: read them while the
    # replay goes, well before any can be dropped.
    trace: Dict[str, List[Any]] = {}
    seen = [0]
    # An event evaluates each rule about once (chains aside).
    every = max(1, 50_000 // max(1, len(cfg.rules)))

    def drain() -> None:
        cols = _core.rules_trace(e, "")
        seq = cols["seq"]
        start = next((k for k, v in enumerate(seq) if v > seen[0]),
                     len(seq))
        for key, values in cols.items():
            trace.setdefault(key, []).extend(values[start:])
        if seq:
            seen[0] = max(seen[0], seq[-1])

    def arm(case_id: str) -> None:
        t = core_desk.timers(case_id)
        for d, st in zip(t["due_at"], t["state"]):
            if st == "pending":
                heapq.heappush(heap, (d, case_id))

    def set_values(c: int, cid: str, r: int, t: int,
                   resource: Optional[str]) -> bool:
        """
        Sets the values row ``r`` changes, as the service desk does (rules
        on changed, assignment notices, timers re-armed); returns False
        when the engine refused (rolled back).
        """
        values = plan.changes[r]
        box[1] = (cid, str(inp.activity[r]), resource, {}, case_text.get(
            c, {}))
        try:
            desk.set_attributes(cid, values)
        except Error:
            failed.add((cid, t))
            return False
        changed[c] += len(values)
        if has_sla:
            arm(cid)
        return True

    # Under "replay" the rows the replay skips are walked too, for the
    # attribute values they carry.
    order = inp.every if replaying else inp.order
    kept = inp.kept
    times = inp.time[order]
    n = len(order)
    i = 0
    ended_ids = set()
    index = {c: k for k, c in enumerate(inp.case_ids)}
    while i < n:
        t = int(times[i])
        j = i
        while j < n and times[j] == t:
            j += 1
        # Timers due strictly before this instant, in due order.
        while has_sla and heap and heap[0][0] < t:
            due, tid = heapq.heappop(heap)
            if tid in ended_ids or due <= last_tick[0]:
                continue
            tick(due)
        box[0] = t
        ending = []
        if cfg.rules and (i // every) != (j // every):
            drain()
        for k in range(i, j):
            r = int(order[k])
            c = int(inp.case[r])
            cid = inp.case_ids[c]
            name = inp.name[r]
            resource = inp.resource[r]
            resource = resource if isinstance(resource, str) else None
            for col, values in text_cols:
                if isinstance(values[r], str) and values[r] != "":
                    case_text.setdefault(c, {})[col] = values[r]
            if not kept[r]:
                if r in plan.changes and c in current:
                    if not set_values(c, cid, r, t, resource):
                        refused[c] += 1
                continue
            if c not in current:
                try:
                    e.create(kind, cid, attributes=creation[c] or None,
                             time=t, actor=resource)
                except Error as ex:
                    raise _fail(cfg.name, f"case {cid!r}: {ex}") from None
                current[c] = initial
                if router is not None:
                    try:
                        router.assign(cid, time=t)
                    except Error:
                        pass  # no team matches: the case stays unassigned
                current[c] = e.get(cid).state
                if activity_kind == "state" and name == initial:
                    if r == inp.last[c]:
                        ending.append(c)
                    if has_sla:
                        arm(cid)
                    continue
            row_refused = False
            if r in plan.changes:
                row_refused = not set_values(c, cid, r, t, resource)
                current[c] = e.get(cid).state  # a rule may have moved it
            event = _event_for(activity_kind, name, current[c], by_target)
            moved = event is not None
            if event is None:
                if name != current[c] or row_refused:
                    refused[c] += 1
            else:
                attrs = {a: v[r] for a, v in inp.attrs.items()
                         if isinstance(v[r], str)} if cfg.guards else {}
                box[1] = (cid, str(inp.activity[r]), resource, attrs,
                          case_text.get(c, {}))
                try:
                    current[c] = e.fire(cid, event, time=t,
                                        actor=resource or "")
                    if row_refused:
                        refused[c] += 1
                except Error:
                    refused[c] += 1
                    current[c] = e.get(cid).state
                    failed.add((cid, t))
                    moved = False
            if has_sla and moved:
                arm(cid)
            if r == inp.last[c]:
                ending.append(c)
        if has_sla:
            tick(t)
        for c in ending:
            cid = inp.case_ids[c]
            txn = e.get(cid)
            state[c] = txn.state
            attributes[c] = dict(txn.attributes)
            ended_at[c] = t
            ended_ids.add(cid)
        i = j
    drain()
    out = _collect(e, desk, inp, index, state, attributes, refused,
                   ended_at, failed, trace)
    out.attribute_changes = changed
    return out


def _event_for(activity_kind: str, name: str, state: str,
               by_target: Mapping[Tuple[str, str], str]) -> Optional[str]:
    if activity_kind == "event":
        return name
    # A row repeating the state fires the self-loop when there is one (as
    # conformance takes it); otherwise it is a repeat and moves nothing.
    return by_target.get((state, name))


def _collect(e: Any, desk: Any, inp: _Input, index: Mapping[str, int],
             state: Dict[int, str], attributes: Dict[int, Dict[str, Any]],
             refused: Dict[int, int], ended_at: Dict[int, int],
             failed: set, trace: Mapping[str, List[Any]]) -> Outcome:
    """
    Reads the rule trace, SLA events, outbox and history, keeping what
    happened up to each case's end.
    """

    def frame(cols: Mapping[str, List[Any]], time_key: str,
              strict: bool) -> Any:
        df = pd.DataFrame({k: list(v) for k, v in cols.items()})
        if df.empty:
            df["case"] = pd.Series(dtype=np.int64)
            return df
        df["case"] = df["transaction_id"].map(index)
        df = df.loc[df["case"].notna()].copy()
        df["case"] = df["case"].astype(np.int64)
        end = df["case"].map(ended_at)
        t = df[time_key].astype(np.int64)
        ok = (t < end) if strict is True else (t <= end)
        if strict is None:
            # Outbox rows: a rule's count up to the end, an assignment
            # notice's before it, an SLA step's when its SLA event counts
            # (the tick writes them at its own instant, which is later
            # than the step's when the step falls due at a change).
            rule = df["policy"].astype(str).str.startswith("rule:")
            step = df["step"].astype(np.int64)
            keys = pd.Series(list(zip(df["transaction_id"], df["policy"],
                                      step)), index=df.index)
            ok = np.where(rule, t <= end,
                          np.where(step < 0, t < end, keys.isin(sla_keys)))
        return df.loc[np.asarray(ok, dtype=bool)].reset_index(drop=True)

    fired = frame(trace, "time", False)
    if len(fired):
        # The trace keeps evaluations of changes that were rolled back
        # (a failing rule): it cannot tell them from other changes of
        # the case at the same instant, so neither is counted.
        keep = fired["outcome"] == "fired"
        if failed:
            keep &= ~pd.Series(
                list(zip(fired["transaction_id"], fired["time"])),
                index=fired.index).isin(failed)
        fired = fired.loc[keep]
    sla = frame(desk._core.events(""), "time", True)
    sla_keys: set = set()
    if len(sla):
        sla_keys = set(zip(sla["transaction_id"], sla["policy"],
                           sla["step"].astype(np.int64)))
    outbox = frame(desk._core.outbox(""), "time", None)
    hist = e.history()
    history = pd.DataFrame({
        "transaction_id": hist["transaction_id"].astype(object),
        "event": hist["event"].astype(object),
        "time": hist["time"].astype("datetime64[us, UTC]").array.asi8,
    })
    history = frame({k: history[k].tolist() for k in history.columns},
                    "time", False)
    return Outcome(state, attributes, refused, fired, sla, outbox, history,
                   {})


# --- Tables -----------------------------------------------------------------


def case_frame(out: Outcome, inp: _Input, attrs: Sequence[str],
               team_attr: Optional[str],
               count_events: Sequence[str]) -> Any:
    """
    Returns one row per case of the log (indexed by case_id) with what the
    engine replay did to it.
    """
    n = len(inp.case_ids)
    cases = np.arange(n)

    def per_case(df: Any) -> np.ndarray:
        if len(df) == 0:
            return np.zeros(n, dtype=np.int64)
        return np.bincount(df["case"].to_numpy(np.int64), minlength=n)

    def names(df: Any, column: str) -> List[Any]:
        found: Dict[int, set] = {}
        for c, v in zip(df["case"], df[column]) if len(df) else ():
            found.setdefault(int(c), set()).add(str(v))
        return [", ".join(sorted(found[c])) if c in found else ""
                for c in cases]

    f = pd.DataFrame({"case_id": pd.Series(inp.case_ids, dtype=object)})
    f["state"] = pd.Series([out.state.get(c) for c in cases], dtype=object)
    f["rules_fired"] = per_case(out.fired)
    f["rules"] = pd.Series(names(out.fired, "rule"), dtype=object)
    for a in attrs:
        f[f"attr_{a}"] = pd.Series(
            [_text(out.attributes.get(c, {}).get(a)) for c in cases],
            dtype=object)
    f["notifications"] = per_case(out.outbox)
    sla = out.sla
    breach = sla.loc[sla["kind"] == "breach"] if len(sla) else sla
    threshold = sla.loc[sla["kind"] == "threshold"] if len(sla) else sla
    f["breaches"] = per_case(breach)
    f["breached"] = pd.Series(names(breach, "policy"), dtype=object)
    if len(threshold):
        threshold = threshold.assign(
            step_name=threshold["policy"].astype(str) + "@"
            + threshold["share"].map(lambda s: f"{s:g}"))
    f["thresholds"] = per_case(threshold)
    f["thresholds_reached"] = pd.Series(
        names(threshold, "step_name") if len(threshold) else [""] * n,
        dtype=object)
    f["team"] = pd.Series(
        [_text(out.attributes.get(c, {}).get(team_attr)) if team_attr
         else None for c in cases], dtype=object)
    f["refused_events"] = np.asarray(
        [out.refused.get(c, 0) for c in cases], dtype=np.int64)
    f["attribute_changes"] = np.asarray(
        [out.attribute_changes.get(c, 0) for c in cases], dtype=np.int64)
    h = out.history
    for ev in count_events:
        sub = h.loc[h["event"] == ev] if len(h) else h
        f[f"events_{ev}"] = per_case(sub)
    return f.set_index("case_id")


def _text(value: Any) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def totals_rows(cases: Any, out: Sequence[Outcome], rules: Sequence[str],
                policies: Sequence[str],
                count_events: Sequence[str]) -> List[Tuple[str, Any, Any]]:
    """
    Returns the engine replay's rows of WhatIfResult.totals.
    """
    rows: List[Tuple[str, Any, Any]] = []

    def both(col: str) -> Tuple[int, int]:
        return (int(cases[f"{col}_before"].sum()),
                int(cases[f"{col}_after"].sum()))

    rows.append(("rules_fired", *both("rules_fired")))
    for r in rules:
        rows.append((f"rule_fired_{r}", *(
            int((o.fired["rule"] == r).sum()) if len(o.fired) else 0
            for o in out)))
    rows.append(("notifications", *both("notifications")))
    rows.append(("breaches", *both("breaches")))
    for p in policies:
        rows.append((f"breaches_{p}", *(
            int(((o.sla["kind"] == "breach") & (o.sla["policy"] == p)).sum())
            if len(o.sla) else 0 for o in out)))
    rows.append(("cases_breached", int((cases["breaches_before"] > 0).sum()),
                 int((cases["breaches_after"] > 0).sum())))
    rows.append(("thresholds", *both("thresholds")))
    rows.append(("refused_events", *both("refused_events")))
    for ev in count_events:
        rows.append((f"events_{ev}", *both(f"events_{ev}")))
    return rows


def _compare(parts: Sequence[Any], keys: List[str]) -> Any:
    out = pd.concat(parts, axis=1).fillna(0).astype(np.int64)
    out = out.reset_index()
    out.columns = [*keys, "before", "after"]
    out["change"] = out["after"] - out["before"]
    return out


def rule_firings(out: Sequence[Outcome], rules: Sequence[str]) -> Any:
    """
    Returns rule, before, after, change: firings per rule.
    """
    parts = []
    for o, label in zip(out, ("before", "after")):
        s = (o.fired.groupby("rule").size() if len(o.fired)
             else pd.Series(dtype=np.int64))
        parts.append(s.reindex(list(rules)).rename(label))
    df = _compare(parts, ["rule"]) if rules else pd.DataFrame(
        {"rule": pd.Series(dtype=object), "before": pd.Series(dtype="int64"),
         "after": pd.Series(dtype="int64"),
         "change": pd.Series(dtype="int64")})
    return df


def breach_table(out: Sequence[Outcome], cases: Any,
                 priority_attr: Optional[str]) -> Any:
    """
    Returns policy, priority, before, after, change: breaches per policy
    and the case's priority at its end.
    """
    parts = []
    for o, label in zip(out, ("before", "after")):
        b = o.sla.loc[o.sla["kind"] == "breach"] if len(o.sla) else None
        if b is None or not len(b):
            parts.append(pd.Series(dtype=np.int64, name=label,
                                   index=pd.MultiIndex.from_arrays(
                                       [[], []],
                                       names=["policy", "priority"])))
            continue
        if priority_attr:
            prio = b["case"].map(lambda c: _text(
                o.attributes.get(int(c), {}).get(priority_attr)))
        else:
            prio = pd.Series([None] * len(b), index=b.index)
        g = pd.DataFrame({"policy": b["policy"].astype(object),
                          "priority": prio.astype(object)}).groupby(
            ["policy", "priority"], dropna=False, sort=True).size()
        parts.append(g.rename(label))
    return _compare(parts, ["policy", "priority"])


def team_load(cases: Any) -> Any:
    """
    Returns team, before, after, change: cases per final team.
    """
    parts = []
    for label in ("before", "after"):
        parts.append(cases.groupby(f"team_{label}", dropna=False,
                                   sort=True).size().rename(label))
    parts = [p.rename_axis("team") for p in parts]
    return _compare(parts, ["team"])


def sla_events(out: Sequence[Outcome], inp: _Input) -> Any:
    """
    Returns the SLA events counted: scenario (before/after), case_id,
    policy, kind, share, time.
    """
    frames = []
    for o, label in zip(out, ("before", "after")):
        s = o.sla
        if not len(s):
            continue
        frames.append(pd.DataFrame({
            "scenario": label,
            "case_id": s["transaction_id"].astype(object),
            "policy": s["policy"].astype(object),
            "kind": s["kind"].astype(object),
            "share": s["share"].astype(np.float64),
            "time": pd.to_datetime(s["time"].astype(np.int64), unit="us",
                                   utc=True),
        }))
    if not frames:
        return pd.DataFrame({
            "scenario": pd.Series(dtype=object),
            "case_id": pd.Series(dtype=object),
            "policy": pd.Series(dtype=object),
            "kind": pd.Series(dtype=object),
            "share": pd.Series(dtype=np.float64),
            "time": pd.Series(dtype="datetime64[us, UTC]")})
    df = pd.concat(frames, ignore_index=True)
    df["time"] = df["time"].astype("datetime64[us, UTC]")
    return df
