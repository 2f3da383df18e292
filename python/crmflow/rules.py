"""
Python rules: callables registered with :meth:`crmflow.Engine.rule`
beside the stored rules of the core (``docs/rules.md``).

A Python rule watches one kind and runs when a transaction of that kind
enters or leaves a state (``on="entered:approved"``, ``"left:draft"``,
``"entered:*"``).  Its condition (``when``) is a callable taking the call
context, or an expression text of the rule language checked on the
transaction's attributes.  Rules run inside the transition, before it is
written, in order of priority (highest first) then registration order.
An exception raised by a condition or an action reaches the caller of
``fire`` with its own type and traceback, and the transition with all its
effects is rolled back.

Limitations: Python rules run as state hooks, so internal transitions
(which enter no state) do not trigger them, and an action must not fire
events on the transaction being moved (use a stored ``fire`` action).

:class:`ConditionSet` evaluates many conditions over many records with
the loop in C++ (for batch checks and to measure the evaluator alone):
operands shared by several conditions (``tier == 'gold'`` in fifty rules)
are evaluated once per record.

.. versionadded:: 0.1.0
"""

import dataclasses
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from crmflow import _core
from crmflow._errors import InvalidArgumentError

__all__ = ["ConditionSet", "PythonRule", "parse_trigger"]

_TRIGGERS = ("entered", "left")


def parse_trigger(on: str) -> Tuple[str, str]:
    """
    Splits ``"entered:STATE"`` or ``"left:STATE"`` (``STATE`` may be
    ``*``) into its trigger and state.

    Raises:
        InvalidArgumentError: Any other form.
    """
    trigger, sep, state = on.partition(":") if isinstance(on, str) else (
        "", "", ""
    )
    if not sep or trigger not in _TRIGGERS or not state:
        message = (
            f"rule trigger {on!r} must be 'entered:STATE' or "
            "'left:STATE' (STATE may be '*')"
        )
        raise InvalidArgumentError(message)
    return trigger, state


@dataclasses.dataclass
class PythonRule:
    """
    One Python rule: its action runs when ``when`` holds.
    """

    name: str
    kind: str
    trigger: str
    state: str
    when: Optional[Callable[[Any], Any]]
    action: Callable[[Any], Any]
    priority: int
    position: int

    def applies(self, trigger: str, state: str) -> bool:
        """
        Returns True when this rule watches ``trigger`` on ``state``.
        """
        return self.trigger == trigger and self.state in ("*", state)


class PythonRules:
    """
    The Python rules of one engine, dispatched from one hook per kind and
    trigger.
    """

    def __init__(self) -> None:
        self.rules: List[PythonRule] = []
        self.hooked: Dict[Tuple[str, str], bool] = {}

    def add(self, rule: PythonRule) -> None:
        """
        Adds ``rule``, replacing one of the same name.
        """
        self.rules = [r for r in self.rules if r.name != rule.name]
        self.rules.append(rule)

    def run(self, kind: str, trigger: str, ctx: Any) -> None:
        """
        Runs the matching rules of ``kind`` for ``ctx`` in order.
        """
        state = ctx.to_state if trigger == "entered" else ctx.from_state
        matching = sorted(
            (
                r
                for r in self.rules
                if r.kind == kind and r.applies(trigger, state)
            ),
            key=lambda r: (-r.priority, r.position),
        )
        for r in matching:
            if r.when is None or r.when(ctx):
                r.action(ctx)


def condition(
    when: Union[None, str, Callable[[Any], Any]], schema: Any
) -> Optional[Callable[[Any], Any]]:
    """
    Returns ``when`` as a callable: a callable as is, an expression text
    compiled by ``schema`` (a callable text -> predicate on the context).
    """
    if when is None or callable(when):
        return when
    if isinstance(when, str):
        return schema(when)
    raise InvalidArgumentError("when must be a callable or an expression")


class ConditionSet:
    """
    Conditions compiled once and evaluated together over records.

    Each condition is an expression text of the rule language over
    ``attributes`` or a callable taking the record (the dict as given)
    whose result is tested for truth.  Texts are split at their top-level
    ``and``; equal operands are evaluated at most once per record, in
    source order with short-circuit, so each result is that of the
    condition alone.

    Args:
        conditions: Expression texts and callables, in order.
        attributes: Attribute name to type name (``"decimal"``,
            ``"text"``, ...), as in a workflow definition.

    Raises:
        ParseError: A text does not parse or type-check; the message
            starts with ``condition N:`` (N from 1).
        InvalidArgumentError: An entry is neither text nor callable.

    Example::

        cs = ConditionSet(["amount > 100 and tier == 'gold'"],
                          {"amount": "decimal", "tier": "text"})
        cs.count([{"amount": Decimal("150"), "tier": "gold"}])   # [1]

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        conditions: List[Union[str, Callable[[Any], Any]]],
        attributes: Dict[str, str],
    ) -> None:
        self._core = _core.ConditionSet(list(conditions), dict(attributes))

    def __len__(self) -> int:
        return len(self._core)

    @property
    def operand_count(self) -> int:
        """
        The number of distinct operands compiled (shared ones count once).
        """
        return int(self._core.operand_count)

    def count(
        self, records: List[Dict[str, Any]], passes: int = 1
    ) -> List[int]:
        """
        Returns, per condition, how many records it matches, summed over
        ``passes`` passes over ``records`` (more passes only repeat the
        evaluation, for measurements).

        Raises:
            InvalidArgumentError: A record holds a value of the wrong type
                or an evaluation fails (``record N: condition M: column
                C: ...``, M numbering the conditions as given, callables
                included, and C, with a line for multi-line texts,
                counted within condition M's text as written).
        """
        return list(self._core.count(list(records), int(passes)))

    def matrix(self, records: List[Dict[str, Any]]) -> Any:
        """
        Returns a numpy boolean array, one row per record and one column
        per condition.
        """
        return self._core.matrix(list(records))
