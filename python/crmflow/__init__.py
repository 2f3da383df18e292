"""
crmflow: a C++ workflow engine for CRM transactions, driven from Python.

Sales orders, service requests, feedback, complaints, campaigns and
after-sales cases follow versioned state graphs (:class:`Workflow`,
ready-made in :mod:`crmflow.templates`); an :class:`Engine` creates
transactions, fires events through Python guards, actions and hooks,
keeps the history in SQLite, imports real exports
(:mod:`crmflow.presets`) and reports on lifecycles.

Example::

    import crmflow

    with crmflow.Engine("crm.db") as engine:
        engine.register("service_request")
        engine.create("service_request", "SR-1", customer="C-1")
        engine.fire("SR-1", "start")
        print(engine.report())

Limitations: an engine is not thread-safe (use one per thread or
process); ``Engine.fire`` runs Python callbacks with the GIL held.

.. versionadded:: 0.1.0
"""



class _LazyModule:
    """
    Stands for a module that is imported on first attribute access.

    The submodules use ``_pandas`` as ``pd`` so that ``import crmflow``
    does not import pandas (about 50 MiB and 0.2 s) before something
    builds a DataFrame; it must be defined before they are imported.
    """

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> object:
        import importlib

        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


_pandas = _LazyModule("pandas")

# The binding looks error classes up in _errors, so it is imported first.
from crmflow import _errors  # noqa: F401,E402  (isort: skip)
from crmflow import _core  # noqa: F401,E402  (isort: skip)
from crmflow import customers, presets, quality, templates  # noqa: E402
from crmflow._errors import (  # noqa: E402
    AlreadyExistsError,
    ConcurrentUpdateError,
    Error,
    GuardRefusedError,
    InvalidArgumentError,
    NotAllowedError,
    NotFoundError,
    ParseError,
    StoreError,
    ValidationError,
)
from crmflow.engine import (  # noqa: E402
    Engine,
    Guard,
    ImportSummary,
    Reject,
    Transaction,
)
from crmflow.customers import (  # noqa: E402
    Customer360,
    customer_360,
    find_duplicates,
)
from crmflow.quality import QualityReport  # noqa: E402
from crmflow.workflow import Problem, Workflow  # noqa: E402

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """
    Imports :mod:`crmflow.orm` (and so SQLAlchemy) on first use only.
    """
    if name == "orm":
        import importlib

        return importlib.import_module("crmflow.orm")
    raise AttributeError(f"module 'crmflow' has no attribute {name!r}")

__all__ = [
    "__version__",
    "Engine",
    "Workflow",
    "Transaction",
    "Guard",
    "Problem",
    "ImportSummary",
    "Reject",
    "templates",
    "presets",
    "customers",
    "quality",
    "orm",
    "Customer360",
    "QualityReport",
    "customer_360",
    "find_duplicates",
    "Error",
    "InvalidArgumentError",
    "NotFoundError",
    "AlreadyExistsError",
    "NotAllowedError",
    "GuardRefusedError",
    "ConcurrentUpdateError",
    "ParseError",
    "ValidationError",
    "StoreError",
]

# Analytics (issue: analytics for notebooks).
from crmflow import analytics, diagrams, plots  # noqa: E402
from crmflow.analytics import (  # noqa: E402
    ConformanceResult,
    EventLog,
    Scenario,
    WhatIfResult,
    WorkflowDiff,
    what_if,
)

__all__ += [
    "analytics",
    "diagrams",
    "plots",
    "EventLog",
    "ConformanceResult",
    "Scenario",
    "WhatIfResult",
    "WorkflowDiff",
    "what_if",
]

# Routing and assignment (issue: routing and assignment).
from crmflow import routing  # noqa: E402
from crmflow.routing import Member, Router, Team  # noqa: E402

__all__ += ["routing", "Member", "Router", "Team"]

# Service desk: calendars, SLA policies, timers (issue: time a desk trusts).
from crmflow import service  # noqa: E402
from crmflow.service import (  # noqa: E402
    Calendar,
    Escalation,
    Notify,
    ServiceDesk,
    SlaPolicy,
    TickSummary,
)

__all__ += [
    "Calendar",
    "Escalation",
    "Notify",
    "ServiceDesk",
    "SlaPolicy",
    "TickSummary",
    "service",
]

from crmflow import rules  # noqa: E402

__all__ += ["rules"]

# Approval matrices, decisions and delegation.
from crmflow import approvals  # noqa: E402
from crmflow.approvals import (  # noqa: E402
    ApprovalMatrix,
    Approvals,
    Band,
    Step,
)

__all__ += ["approvals", "ApprovalMatrix", "Approvals", "Band", "Step"]
