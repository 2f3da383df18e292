"""
Workflow templates for common CRM transaction kinds.

Each template is a JSON definition (see :mod:`crmflow.workflow`) shipped
with the package; every one passes :meth:`crmflow.Workflow.validate` and
declares typed attributes (money as ``decimal``).

=================  ======================================================
name               lifecycle
=================  ======================================================
sales_order        created, pending_approval, approved / rejected,
                   invoiced, shipped, delivered, completed; canceled from
                   the open states, returned after delivery
service_request    submitted, assigned, in_progress, waiting_customer,
                   resolved (reopen to in_progress), closed
feedback           received, analysed, action_planned, resolved,
                   followed_up, closed
complaint          received, acknowledged, investigating, escalated,
                   resolved (reopen to investigating), closed
campaign           planned, approved, running, completed, evaluated;
                   canceled
after_sales        requested, scheduled, in_service, completed, closed
=================  ======================================================

``service_request`` is shaped after the ServiceNow incident states: New is
``submitted``, Active is ``in_progress``, the four Awaiting states are one
``waiting_customer`` state (waiting on someone outside the team), Resolved
is ``resolved`` and Closed is ``closed``.  Every move the ServiceNow log
makes between those has an event, e.g. ``resolve`` straight from
``waiting_customer`` and ``reopen`` from ``resolved``.  ``closed`` is
terminal: the few incidents that the log reopens after closing are
recorded as deviations.

Example::

    from crmflow import templates
    wf = templates.load("sales_order")

.. versionadded:: 0.1.0
"""

import json
import os
from typing import Any, Dict, List

from crmflow._errors import NotFoundError

__all__ = ["names", "load", "definition"]

_DIR = os.path.dirname(os.path.abspath(__file__))


def names() -> List[str]:
    """
    Returns the names of the bundled templates, sorted.
    """
    return sorted(
        f[: -len(".json")] for f in os.listdir(_DIR) if f.endswith(".json")
    )


def definition(name: str) -> Dict[str, Any]:
    """
    Returns the definition of template ``name`` as a new dict.

    Names are matched exactly against the bundled files, so a path such
    as ``"../x"`` or ``"/etc/x"`` never reaches a file outside the folder.

    Args:
        name: A name from :func:`names`.

    Raises:
        NotFoundError: No template has that name; the message lists them.
    """
    known = names()
    if not isinstance(name, str) or name not in known:
        shown = name if isinstance(name, str) else type(name).__name__
        message = (
            f'unknown template "{shown}" (expected {", ".join(known)})'
        )
        raise NotFoundError(message)
    path = os.path.join(_DIR, name + ".json")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def load(name: str) -> "Any":
    """
    Returns template ``name`` as a :class:`crmflow.Workflow`.

    Raises:
        NotFoundError: No template has that name; the message lists them.
    """
    from crmflow.workflow import Workflow

    return Workflow.from_dict(definition(name))
