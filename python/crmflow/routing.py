"""
Routing and assignment: teams, rules, strategies and hand-over figures.

A :class:`Router` is attached to an :class:`crmflow.Engine`.  Teams hold
members in round-robin order; rules route a transaction to the first team
whose rule matches; the team's strategy (``"round_robin"``,
``"least_loaded"``, ``"skills"`` or one registered with
:meth:`Router.register_strategy`) picks the member.  Assigning writes the
transaction's ``team`` and ``assignee`` attributes (the kind must declare
both as text, as the ``service_request`` template does) and a row of the
``assignments`` table; the round-robin position is stored and advances
once per committed assignment.

:func:`handovers` computes hand-over and ping-pong figures per team from
any history, e.g. an imported ServiceNow log, from the payload's
``assignment_group``.

Limitations: member calendars (off-shift) are only available from C++
for now; rules compare text attributes for equality (use ``condition`` for
other types).

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Callable, Dict, List, Optional, Sequence

from crmflow import _pandas as pd  # pandas on first use

from crmflow import _core
from crmflow._errors import InvalidArgumentError

__all__ = [
    "Member",
    "Team",
    "Router",
    "handovers",
]


@dataclasses.dataclass
class Member:
    """
    A team member.

    Attributes:
        id: The assignee name.
        skills: Skill names.
        capacity: Most open transactions; 0 for no limit.
        available: False while absent.
    """

    id: str
    skills: Sequence[str] = ()
    capacity: int = 0
    available: bool = True


@dataclasses.dataclass
class Team:
    """
    A team with its members in round-robin order.

    Attributes:
        name: Unique team name.
        members: Members or plain ids.
        strategy: ``"round_robin"``, ``"least_loaded"``, ``"skills"`` or a
            registered strategy name.
    """

    name: str
    members: Sequence[Any] = ()
    strategy: str = "round_robin"


def _member_dict(member: Any) -> Dict[str, Any]:
    if isinstance(member, str):
        member = Member(member)
    if not isinstance(member, Member):
        message = f"member must be a Member or str (got {member!r})"
        raise TypeError(message)
    return {
        "id": member.id,
        "skills": list(member.skills),
        "capacity": int(member.capacity),
        "available": bool(member.available),
    }


class Router:
    """
    Routes and assigns an engine's transactions.

    Not thread-safe; use it from the engine's thread.  Keeps its engine
    alive.

    Example::

        router = Router(engine)
        router.add_team(Team("desk", ["ann", "bob"]))
        router.assign("SR-1", team="desk")
    """

    def __init__(self, engine: Any) -> None:
        """
        Attaches a router to ``engine``, loading the stored teams.

        Raises:
            StoreError: The routing tables cannot be created or read.
        """
        self._engine = engine
        self._core = _core.Router(engine)

    def add_team(self, team: Team) -> None:
        """
        Adds or replaces ``team`` (its round-robin position is kept).

        Raises:
            InvalidArgumentError: Empty or duplicate ids, negative
                capacity, unknown strategy.
        """
        from crmflow.engine import _check_str, _is_int64

        members = [_member_dict(m) for m in team.members]
        for m in members:
            _check_str(m["id"], "member id")
            for skill in m["skills"]:
                _check_str(skill, "skill")
            if not _is_int64(m["capacity"]):
                message = f"member {m['id']!r}: capacity must be a 64-bit int"
                raise InvalidArgumentError(message)
        self._core.add_team(_check_str(team.name, "team name", empty=True),
                            members, _check_str(team.strategy, "strategy"))

    def remove_team(self, name: str) -> None:
        """
        Removes team ``name``.

        Raises:
            NotFoundError: Unknown team.
        """
        from crmflow.engine import _check_str

        self._core.remove_team(_check_str(name, "team name"))

    def teams(self) -> List[Team]:
        """
        Returns the teams, ordered by name.
        """
        out = []
        for t in self._core.teams():
            members = [
                Member(m["id"], tuple(m["skills"]), m["capacity"],
                       m["available"])
                for m in t["members"]
            ]
            out.append(Team(t["name"], members, t["strategy"]))
        return out

    def set_available(self, team: str, member: str, available: bool) -> None:
        """
        Marks ``member`` of ``team`` available or absent (stored).

        Raises:
            NotFoundError: Unknown team or member.
        """
        self._core.set_available(team, member, bool(available))

    def add_rule(
        self,
        team: str,
        *,
        kind: str = "",
        equals: Optional[Dict[str, str]] = None,
        condition: str = "",
        skills: Sequence[str] = (),
    ) -> None:
        """
        Appends a routing rule; the first matching rule wins.

        Args:
            team: The target team.
            kind: Only this kind ("" for every kind).
            equals: Text attributes that must have these values.
            condition: An expression over the attributes, e.g.
                ``"channel = 'email'"``.
            skills: Skills required of the member.

        Raises:
            NotFoundError: Unknown team.
            ParseError: The condition does not parse.
        """
        pairs = sorted((equals or {}).items())
        self._core.add_rule(team, kind, pairs, condition, list(skills))

    def clear_rules(self) -> None:
        """
        Drops every rule.
        """
        self._core.clear_rules()

    def register_strategy(
        self, name: str, fn: Callable[..., Optional[str]]
    ) -> None:
        """
        Registers a strategy.

        ``fn(transaction_id, team, eligible, open, position)`` gets the
        eligible member ids in list order, the open load per member and
        the team's round-robin position, and returns a member id or None
        (nobody).

        Raises:
            InvalidArgumentError: A built-in or empty name.
        """
        if not callable(fn):
            raise TypeError(f"strategy {name!r} must be callable")
        self._core.register_strategy(name, fn)

    def route(self, id: str) -> str:
        """
        Returns the team the rules give transaction ``id``.

        Raises:
            NotFoundError: Unknown transaction, or no rule matches.
        """
        return self._core.route(id)

    def assign(
        self,
        id: str,
        *,
        team: str = "",
        skills: Sequence[str] = (),
        time: Any = None,
        reason: str = "",
    ) -> Dict[str, Any]:
        """
        Routes (unless ``team`` is given) and assigns transaction ``id``.

        Returns:
            The assignment: id, transaction_id, team, member, time
            (microseconds UTC), reason, previous_team, previous_member.

        Raises:
            NotFoundError: Unknown transaction or team, no matching rule,
                no eligible member.
            InvalidArgumentError: The kind lacks ``team``/``assignee``.
        """
        return self._core.assign(id, team, list(skills), time, reason)

    def position(self, team: str) -> int:
        """
        Returns the stored round-robin position of ``team``.
        """
        return self._core.position(team)

    def assignments(self, transaction_id: str = "") -> pd.DataFrame:
        """
        Returns the assignments (of one transaction, or all) as a
        DataFrame ordered by id.
        """
        rows = self._core.assignments(transaction_id)
        frame = pd.DataFrame(
            rows,
            columns=[
                "id", "transaction_id", "team", "member", "time", "reason",
                "previous_team", "previous_member",
            ],
        )
        frame["time"] = pd.to_datetime(frame["time"], unit="us", utc=True)
        return frame

    def loads(self) -> pd.DataFrame:
        """
        Returns team, member, open and assigned per team member.
        """
        return pd.DataFrame(
            self._core.loads(),
            columns=["team", "member", "open", "assigned"],
        )

    def handovers(self) -> pd.DataFrame:
        """
        Returns per-team hand-over figures of the assignments: team,
        handovers_in, handovers_out, ping_pongs, reassignments.
        """
        return _teams_frame(self._core.handovers())


def _teams_frame(report: Dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(
        report["teams"],
        columns=[
            "team", "handovers_in", "handovers_out", "ping_pongs",
            "reassignments",
        ],
    )


def handovers(
    history: pd.DataFrame, *, field: str = "assignment_group"
) -> pd.DataFrame:
    """
    Returns per-team hand-over figures of a history.

    A hand-over is two consecutive history rows of a transaction whose
    payload ``field`` holds two different non-missing teams; a ping-pong
    is a hand-over back to the team the previous hand-over came from.
    Rows without a payload (the creation row) count as missing.

    Args:
        history: ``Engine.history(...)`` rows, e.g.
            ``engine.history(kind="service_request")``.
        field: The payload field naming the team.

    Returns:
        A DataFrame: team, handovers_in, handovers_out (the team's
        reassignments to another team), ping_pongs, reassignments (0).
    """
    ids: List[str] = []
    teams: List[str] = []
    for tid, payload in zip(history["transaction_id"], history["payload"]):
        team = ""
        if isinstance(payload, str) and payload:
            value = json.loads(payload).get(field)
            if value is not None:
                team = str(value)
        ids.append(str(tid))
        teams.append(team)
    return _teams_frame(_core.compute_handovers(ids, teams))
