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

# The binding looks error classes up in _errors, so it is imported first.
from crmflow import _errors  # noqa: F401  (isort: skip)
from crmflow import _core  # noqa: F401  (isort: skip)
from crmflow import customers, presets, quality, templates
from crmflow._errors import (
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
from crmflow.engine import Engine, Guard, ImportSummary, Reject, Transaction
from crmflow.customers import Customer360, customer_360, find_duplicates
from crmflow.quality import QualityReport
from crmflow.workflow import Problem, Workflow

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
