"""
Workflows: the state graph of one kind of CRM transaction.

A :class:`Workflow` wraps the core's graph (``crmflow._core.Workflow``)
and keeps the declarations in the order they were made, so that it can be
written to and read from a plain definition:

.. code-block:: python

    {
        "name": "service_request",          # the kind, required
        "version": 1,                       # integer >= 1, default 1
        "description": "...",               # optional text
        "states": [                         # required, in order
            {"name": "submitted", "role": "initial",
             "description": "..."},         # role: initial | terminal
            ...                             #       | normal (default)
        ],
        "attributes": [                     # optional
            {"name": "amount", "type": "decimal", "required": False},
            ...                             # type: text (default),
        ],                                  # integer, decimal, timestamp,
                                            # duration, boolean
        "transitions": [
            {"event": "start", "from": ["submitted", "assigned"],
             "to": "in_progress", "guards": [], "actions": [],
             "internal": False},
            ...
        ],
    }

``from`` is one state name or a list of them (one transition per source,
in list order).  A guard named ``"expr: CONDITION"`` (e.g. ``"expr: amount
<= 1000"``) is an expression of the rule language over the attributes,
checked at registration; its refusal names the values read (see
``docs/rules.md``).  Unknown keys are refused with an
:class:`~crmflow.InvalidArgumentError` naming them; :meth:`Workflow.to_dict`
writes every key, so ``Workflow.from_dict(w.to_dict()) == w``.

For a given state and event the candidate transitions are tried in
declaration order, the first whose guards all pass wins (see
``cpp/include/crmflow/workflow.h``).

Example::

    wf = Workflow("ticket")
    wf.add_state("new", role="initial")
    wf.add_state("done", role="terminal")
    wf.add_transition("finish", "new", "done")
    wf.check()

.. versionadded:: 0.1.0
"""

import json
import shutil
import subprocess
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Union

from crmflow import _core
from crmflow._errors import InvalidArgumentError, ValidationError

__all__ = ["Problem", "Workflow"]

_ROLES = ("initial", "terminal", "normal")
_TYPES = ("text", "integer", "decimal", "timestamp", "duration", "boolean")
_TOP_KEYS = (
    "name",
    "version",
    "description",
    "states",
    "attributes",
    "transitions",
)
_STATE_KEYS = ("name", "role", "description")
_ATTRIBUTE_KEYS = ("name", "type", "required")
_TRANSITION_KEYS = ("event", "from", "to", "guards", "actions", "internal")


class Problem(NamedTuple):
    """
    One problem found by :meth:`Workflow.validate`.

    Attributes:
        kind: What is wrong, as the core names it (e.g. an unreachable
            state).
        state: The state concerned, or ``""``.
        event: The event concerned, or ``""``.
        message: A readable description.
        severity: ``"error"`` (the engine refuses the workflow),
            ``"warning"`` (well defined but probably not meant: an
            unguarded duplicate, guards that can both hold) or ``"info"``
            (worth a look: guards that cannot be proven exclusive, exits
            from a terminal state).

    .. versionadded:: 0.1.0
    """

    kind: str
    state: str
    event: str
    message: str
    severity: str = "error"


def _check_keys(obj: Any, allowed: Iterable[str], where: str) -> None:
    """
    Refuses a mapping with keys outside ``allowed``.

    Raises:
        InvalidArgumentError: ``obj`` is not a dict or has unknown keys.
    """
    allowed = tuple(allowed)
    if not isinstance(obj, dict):
        message = f"{where} must be an object (got {type(obj).__name__})"
        raise InvalidArgumentError(message)
    unknown = [k for k in obj if k not in allowed]
    if unknown:
        names = ", ".join(f'"{k}"' for k in unknown)
        word = "key" if len(unknown) == 1 else "keys"
        message = (
            f"unknown {word} {names} in {where} "
            f"(expected {', '.join(allowed)})"
        )
        raise InvalidArgumentError(message)


def _require(obj: Dict[str, Any], key: str, types: Any, where: str) -> Any:
    """
    Returns ``obj[key]`` after checking it is present and of ``types``.

    Raises:
        InvalidArgumentError: The key is missing or has the wrong type.
    """
    if key not in obj:
        raise InvalidArgumentError(f'{where} has no "{key}"')
    value = obj[key]
    if not isinstance(value, types):
        message = f'"{key}" of {where} has the wrong type ({value!r})'
        raise InvalidArgumentError(message)
    return value


def _names(value: Any, what: str, where: str) -> List[str]:
    """
    Returns ``value`` as a list of strings (a single string is allowed).

    Raises:
        InvalidArgumentError: ``value`` is not a string or list of strings.
    """
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(
        isinstance(v, str) for v in value
    ):
        return list(value)
    message = f'"{what}" of {where} must be a string or a list of strings'
    raise InvalidArgumentError(message)


class Workflow:
    """
    A named, versioned state graph for one kind of transaction.

    Args:
        name: The kind this workflow defines (e.g. ``"sales_order"``).
        version: Its version, an integer >= 1; an engine replaces a
            registered workflow only with a higher version.
        description: Free text kept in the definition.

    Raises:
        InvalidArgumentError: A name or version is malformed.
    """

    def __init__(
        self, name: str, version: int = 1, *, description: str = ""
    ) -> None:
        if not isinstance(name, str) or not name:
            raise InvalidArgumentError("name must be a non-empty string")
        if isinstance(version, bool) or not isinstance(version, int):
            raise InvalidArgumentError("version must be an integer")
        if version < 1:
            raise InvalidArgumentError(f"version must be >= 1 ({version})")
        self._core = _core.Workflow(name, version)
        self.description = description
        self._states: List[Dict[str, str]] = []
        self._attributes: List[Dict[str, Any]] = []
        self._transitions: List[Dict[str, Any]] = []

    # Building.

    @property
    def name(self) -> str:
        """
        The kind this workflow defines.
        """
        return self._core.name

    @property
    def version(self) -> int:
        """
        The workflow's version.
        """
        return self._core.version

    def add_state(
        self, name: str, role: str = "normal", *, description: str = ""
    ) -> "Workflow":
        """
        Adds a state.

        Args:
            name: The state's name, unique in this workflow.
            role: ``"initial"``, ``"terminal"`` or ``"normal"``.
            description: Free text kept in the definition.

        Returns:
            This workflow, so calls can be chained.

        Raises:
            InvalidArgumentError: ``role`` is unknown or ``name`` malformed.
            AlreadyExistsError: The state exists.
        """
        if role not in _ROLES:
            message = f'unknown role "{role}" (expected {", ".join(_ROLES)})'
            raise InvalidArgumentError(message)
        if not isinstance(description, str):
            raise InvalidArgumentError("description must be a string")
        self._core.add_state(name, role)
        self._states.append(
            {"name": name, "role": role, "description": description}
        )
        return self

    def add_attribute(
        self, name: str, type: str = "text", required: bool = False
    ) -> "Workflow":
        """
        Declares a typed attribute of the kind's transactions.

        Args:
            name: The attribute's name.
            type: One of text, integer, decimal (money), timestamp,
                duration, boolean.
            required: Whether it must be given at create.

        Returns:
            This workflow.

        Raises:
            InvalidArgumentError: ``type`` is unknown.
            AlreadyExistsError: The attribute is declared already.
        """
        if type not in _TYPES:
            message = (
                f'unknown attribute type "{type}" '
                f'(expected {", ".join(_TYPES)})'
            )
            raise InvalidArgumentError(message)
        self._core.add_attribute(name, type, bool(required))
        self._attributes.append(
            {"name": name, "type": type, "required": bool(required)}
        )
        return self

    def add_transition(
        self,
        event: str,
        source: Union[str, Iterable[str]],
        target: str,
        guards: Iterable[str] = (),
        actions: Iterable[str] = (),
        internal: bool = False,
    ) -> "Workflow":
        """
        Adds a transition (one per source when ``source`` is a list).

        Args:
            event: The event name that fires it.
            source: A state name or a list of them.
            target: The state it leads to.
            guards: Names of guards, evaluated left to right.
            actions: Names of actions, run in order.
            internal: For a self-transition: run only the actions, no
                entry or exit hooks, keep the entered-at time.

        Returns:
            This workflow.

        Raises:
            InvalidArgumentError: A name is malformed, or ``internal`` is
                set with a source other than the target.
        """
        sources = _names(source, "source", f'transition "{event}"')
        where = f'transition "{event}"'
        if not isinstance(guards, str):
            guards = list(guards)
        if not isinstance(actions, str):
            actions = list(actions)
        guards = _names(guards, "guards", where)
        actions = _names(actions, "actions", where)
        if not sources:
            message = f'transition "{event}" has no source state'
            raise InvalidArgumentError(message)
        for s in sources:
            self._core.add_transition(
                event, s, target, guards, actions, bool(internal)
            )
        self._transitions.append(
            {
                "event": event,
                "from": source if isinstance(source, str) else sources,
                "to": target,
                "guards": guards,
                "actions": actions,
                "internal": bool(internal),
            }
        )
        return self

    # Queries.

    def states(self) -> List[str]:
        """
        Returns the state names in declaration order.
        """
        return [name for name, _ in self._core.states()]

    def role(self, state: str) -> str:
        """
        Returns the role of ``state``.

        Raises:
            NotFoundError: The state is not declared.
        """
        for s in self._states:
            if s["name"] == state:
                return s["role"]
        from crmflow._errors import NotFoundError

        raise NotFoundError(f'unknown state "{state}" in {self.name}')

    @property
    def initial_state(self) -> Optional[str]:
        """
        The initial state, or None when there is none.
        """
        for s in self._states:
            if s["role"] == "initial":
                return s["name"]
        return None

    def events(self) -> List[str]:
        """
        Returns the distinct event names in declaration order.
        """
        seen: Dict[str, None] = {}
        for t in self._transitions:
            seen.setdefault(t["event"], None)
        return list(seen)

    def events_from(self, state: str) -> List[str]:
        """
        Returns the distinct events leaving ``state``, in declaration order.
        """
        return list(self._core.events_from(state))

    def validate(self) -> List[Problem]:
        """
        Returns every problem of the graph; an empty list means valid.

        Checks: exactly one initial state, at least one terminal state,
        every state reachable from the initial one, a terminal state
        reachable from every state, no unguarded duplicate transition, no
        undeclared state name and ``expr:`` guards that parse.

        Transitions on the same event from the same state are compared
        pairwise: ``expr:`` guards are analysed exactly (intervals of
        numbers, timestamps and durations with open or closed ends, sets
        of text and booleans, null checks, ``and``/``or``/``not``), and
        guards that can both hold give an ``overlapping_guards`` warning
        with values satisfying both, e.g. ``amount = 1000`` for
        ``amount <= 1000`` and ``amount >= 1000``.  A guard the analysis
        cannot see into (a Python guard, a function call, arithmetic)
        gives an ``unproven_exclusive`` note instead.

        .. versionadded:: 0.1.0
        """
        return [
            Problem(
                str(p.get("kind", "")),
                str(p.get("state", "")),
                str(p.get("event", "")),
                str(p.get("message", "")),
                str(p.get("severity", "error")),
            )
            for p in self._core.validate()
        ]

    def check(self) -> "Workflow":
        """
        Raises when the workflow has errors or warnings (notes of
        severity ``"info"`` do not count).

        Returns:
            This workflow, when valid.

        Raises:
            ValidationError: The message lists every error and warning.
        """
        problems = [p for p in self.validate() if p.severity != "info"]
        if problems:
            message = f"workflow {self.name} v{self.version} is invalid: " + (
                "; ".join(p.message for p in problems)
            )
            raise ValidationError(message)
        return self

    # Definitions.

    def to_dict(self) -> Dict[str, Any]:
        """
        Returns the definition (see the module docstring).
        """
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "states": [dict(s) for s in self._states],
            "attributes": [dict(a) for a in self._attributes],
            "transitions": [
                dict(
                    t,
                    guards=list(t["guards"]),
                    actions=list(t["actions"]),
                    **{
                        "from": t["from"]
                        if isinstance(t["from"], str)
                        else list(t["from"])
                    },
                )
                for t in self._transitions
            ],
        }

    def to_json(self, indent: Optional[int] = None) -> str:
        """
        Returns the definition as JSON text (UTF-8 characters kept).

        Args:
            indent: Passed to :func:`json.dumps`; None gives one line.
        """
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)

    @classmethod
    def from_dict(cls, definition: Dict[str, Any]) -> "Workflow":
        """
        Builds a workflow from a definition (see the module docstring).

        Args:
            definition: The definition.

        Returns:
            The workflow (not validated; call :meth:`check`).

        Raises:
            InvalidArgumentError: Unknown keys, missing keys or wrong types;
                the message names them.
            AlreadyExistsError: A state or attribute is declared twice.
        """
        _check_keys(definition, _TOP_KEYS, "workflow definition")
        name = _require(definition, "name", str, "workflow definition")
        where = f'workflow "{name}"'
        version = definition.get("version", 1)
        if isinstance(version, bool) or not isinstance(version, int):
            raise InvalidArgumentError(f'"version" of {where} must be int')
        description = definition.get("description", "")
        if not isinstance(description, str):
            message = f'"description" of {where} must be a string'
            raise InvalidArgumentError(message)
        wf = cls(name, version, description=description)

        states = _require(definition, "states", list, where)
        for i, s in enumerate(states):
            w = f"state {i} of {where}"
            _check_keys(s, _STATE_KEYS, w)
            wf.add_state(
                _require(s, "name", str, w),
                s.get("role", "normal"),
                description=s.get("description", ""),
            )

        attributes = definition.get("attributes", [])
        if not isinstance(attributes, list):
            message = f'"attributes" of {where} must be a list'
            raise InvalidArgumentError(message)
        for i, a in enumerate(attributes):
            w = f"attribute {i} of {where}"
            _check_keys(a, _ATTRIBUTE_KEYS, w)
            required = a.get("required", False)
            if not isinstance(required, bool):
                message = f'"required" of {w} must be true or false'
                raise InvalidArgumentError(message)
            wf.add_attribute(
                _require(a, "name", str, w), a.get("type", "text"), required
            )

        transitions = definition.get("transitions", [])
        if not isinstance(transitions, list):
            message = f'"transitions" of {where} must be a list'
            raise InvalidArgumentError(message)
        for i, t in enumerate(transitions):
            w = f"transition {i} of {where}"
            _check_keys(t, _TRANSITION_KEYS, w)
            if "from" not in t:
                raise InvalidArgumentError(f'{w} has no "from"')
            internal = t.get("internal", False)
            if not isinstance(internal, bool):
                message = f'"internal" of {w} must be true or false'
                raise InvalidArgumentError(message)
            source = t["from"]
            _names(source, "from", w)
            wf.add_transition(
                _require(t, "event", str, w),
                source,
                _require(t, "to", str, w),
                _names(t.get("guards", []), "guards", w),
                _names(t.get("actions", []), "actions", w),
                internal,
            )
        return wf

    @classmethod
    def from_json(cls, text: Union[str, bytes]) -> "Workflow":
        """
        Builds a workflow from JSON text (see :meth:`from_dict`).

        Raises:
            ParseError: The text is not JSON.
            InvalidArgumentError: See :meth:`from_dict`.
        """
        from crmflow._errors import ParseError

        try:
            definition = json.loads(text)
        except ValueError as e:
            message = f"workflow definition is not JSON ({e})"
            raise ParseError(message) from None
        return cls.from_dict(definition)

    @classmethod
    def _from_core(cls, core: Any) -> "Workflow":
        """
        Wraps a ``_core.Workflow`` (e.g. a registered copy), rebuilding the
        declarations from it; sources are not grouped.
        """
        wf = cls.__new__(cls)
        wf._core = core
        wf.description = ""
        wf._states = [
            {"name": n, "role": r, "description": ""}
            for n, r in core.states()
        ]
        wf._attributes = [
            {"name": n, "type": t, "required": bool(r)}
            for n, t, r in core.attributes()
        ]
        wf._transitions = [
            {
                "event": t["event"],
                "from": t["source"],
                "to": t["target"],
                "guards": list(t["guards"]),
                "actions": list(t["actions"]),
                "internal": bool(t["internal"]),
            }
            for t in core.transitions()
        ]
        return wf

    # Display.

    def to_dot(self) -> str:
        """
        Returns the graph in Graphviz DOT.
        """
        return self._core.to_dot()

    def _repr_svg_(self) -> Optional[str]:
        """
        Returns the graph as SVG for Jupyter, or None when the Graphviz
        ``dot`` program is not installed or fails.
        """
        dot = shutil.which("dot")
        if dot is None:
            return None
        try:
            done = subprocess.run(
                [dot, "-Tsvg"],
                input=self.to_dot().encode("utf-8"),
                capture_output=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        if done.returncode != 0:
            return None
        return done.stdout.decode("utf-8")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Workflow):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        initial = self.initial_state
        return (
            f"<Workflow {self.name} v{self.version}: "
            f"{len(self._states)} states, "
            f"{len(self._core.transitions())} transitions, "
            f"initial {initial!r}>"
        )
