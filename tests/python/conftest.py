"""
Fixtures shared by the Python tests.

The shared data folder is ``../shared/data`` relative to the repository
root; set ``CRMFLOW_SHARED_DATA`` to use another one.  Tests that need it
are skipped when it is absent.
"""

import datetime
import os
import pathlib

import pytest

import crmflow

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHARED_DATA = pathlib.Path(
    os.environ.get("CRMFLOW_SHARED_DATA", ROOT.parent / "shared" / "data")
)
UTC = datetime.timezone.utc

# Subprocesses (CLI, notebook kernels, workers) run in other directories:
# make them import the same crmflow as this process.  The package folder
# is taken as it was imported, not with its links resolved: a development
# build (scripts/dev-build --dir) is a folder of links to python/crmflow
# beside its own compiled module.
_PACKAGE_PARENT = str(pathlib.Path(os.path.abspath(crmflow.__file__)).parents[1])
os.environ["PYTHONPATH"] = os.pathsep.join(
    [_PACKAGE_PARENT]
    + [
        os.path.abspath(p)
        for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
        if p
    ]
)


def utc(*args):
    """
    Returns an aware UTC datetime.
    """
    return datetime.datetime(*args, tzinfo=UTC)


def micros(dt):
    """
    Returns an aware datetime as int microseconds since the epoch.
    """
    epoch = datetime.datetime(1970, 1, 1, tzinfo=UTC)
    return (dt - epoch) // datetime.timedelta(microseconds=1)


class Clock:
    """
    A simulated clock: returns the time it was set to.
    """

    def __init__(self, start=None):
        self.now = start or utc(2026, 2, 2, 9, 0)

    def __call__(self):
        return micros(self.now)

    def set(self, dt):
        """
        Sets the time.
        """
        self.now = dt

    def advance(self, **kwargs):
        """
        Moves the time forward by a timedelta's keyword arguments.
        """
        self.now += datetime.timedelta(**kwargs)


@pytest.fixture
def clock():
    """
    A simulated clock starting at 2026-02-02T09:00Z.
    """
    return Clock()


@pytest.fixture
def engine(clock):
    """
    A memory-store engine on the simulated clock, closed afterwards.
    """
    with crmflow.Engine(clock=clock) as e:
        yield e


@pytest.fixture
def db_path(tmp_path):
    """
    The path of a SQLite file that does not exist yet.
    """
    return str(tmp_path / "crm.db")


@pytest.fixture
def shared_data():
    """
    The shared data folder; skips the test when it is missing.
    """
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def bundled():
    """
    The folder of the bundled samples.
    """
    return pathlib.Path(crmflow.__file__).parent / "data"


def ticket_workflow(name="ticket"):
    """
    Returns a small valid workflow: new -> open -> closed.
    """
    wf = crmflow.Workflow(name)
    wf.add_state("new", "initial")
    wf.add_state("open")
    wf.add_state("closed", "terminal")
    wf.add_attribute("tier")
    wf.add_attribute("amount", "decimal")
    wf.add_transition("open", "new", "open")
    wf.add_transition("note", "open", "open", internal=True)
    wf.add_transition("close", ["new", "open"], "closed")
    return wf


@pytest.fixture
def ticket():
    """
    A small valid workflow (see ticket_workflow).
    """
    return ticket_workflow()
