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

Submodules and their names are imported on first use, so ``import
crmflow`` stays light (pandas too is imported only when a DataFrame is
built).

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
from crmflow.workflow import Problem, Workflow  # noqa: E402

__version__ = "0.1.0"

# The rest is imported on first use (PEP 562): a notebook that only reads
# an event log does not pay for the engine, the service desk, customers or
# SQLAlchemy (several MiB and a good part of ``import crmflow``'s time).
# Public name -> the submodule that defines it.
_LAZY_NAMES = {
    "Engine": "engine",
    "Guard": "engine",
    "ImportSummary": "engine",
    "Reject": "engine",
    "Transaction": "engine",
    "Customer360": "customers",
    "customer_360": "customers",
    "find_duplicates": "customers",
    "QualityReport": "quality",
    "ConformanceResult": "analytics",
    "EventLog": "analytics",
    "Scenario": "analytics",
    "WhatIfResult": "analytics",
    "WorkflowDiff": "analytics",
    "what_if": "analytics",
    "Member": "routing",
    "Router": "routing",
    "Team": "routing",
    "Calendar": "service",
    "Escalation": "service",
    "Notify": "service",
    "ServiceDesk": "service",
    "SlaPolicy": "service",
    "TickSummary": "service",
    "ApprovalMatrix": "approvals",
    "Approvals": "approvals",
    "Band": "approvals",
    "Step": "approvals",
}

# Submodules that are part of the public API, loaded on first use too.
_LAZY_MODULES = (
    "analytics",
    "approvals",
    "customers",
    "diagrams",
    "engine",
    "orm",
    "plots",
    "presets",
    "quality",
    "routing",
    "rules",
    "service",
    "templates",
    "whatif",
)


def __getattr__(name: str) -> object:
    """
    Imports the submodule behind a public name on first use.
    """
    import importlib

    if name in _LAZY_NAMES:
        value = getattr(
            importlib.import_module("crmflow." + _LAZY_NAMES[name]), name)
    elif name in _LAZY_MODULES:
        value = importlib.import_module("crmflow." + name)
    else:
        raise AttributeError(f"module 'crmflow' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "__version__",
    "Workflow",
    "Problem",
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
    *_LAZY_NAMES,
    *_LAZY_MODULES,
]
