"""
Tests of crmflow.quality and ``crmflow check``: each kind of problem is
planted by hand with plain SQL and found, a clean database passes.
"""

import json
import sqlite3
import subprocess
import sys

import pandas as pd
import pytest

import crmflow
from crmflow import quality

from conftest import utc


@pytest.fixture
def clean(db_path, clock):
    """
    The path of a database with one customer and one open ticket of it,
    the ticket workflow declaring ``tier`` required.
    """
    wf = crmflow.Workflow("ticket")
    wf.add_state("new", "initial")
    wf.add_state("closed", "terminal")
    wf.add_attribute("tier", required=True)
    wf.add_transition("close", "new", "closed")
    with crmflow.Engine(db_path, clock=clock) as e:
        e.register(wf)
        e.import_customers(
            pd.DataFrame(
                {"id": ["C-1"], "email": ["a@b.io"], "phone": ["+4930123456"]}
            )
        )
        e.create("ticket", "T-1", customer="C-1", attributes={"tier": "x"})
        e.create("ticket", "T-2", customer="C-1", attributes={"tier": "y"})
        e.fire("T-2", "close")
    return db_path


def _plant(path):
    """
    Plants one problem of each kind with plain SQL.
    """
    db = sqlite3.connect(path)
    db.executescript(
        """
        INSERT INTO customers(id, email, phone, created_at, updated_at)
        VALUES ('c-1 ', 'not-an-email', '12ab', '2020-01-01T00:00:00.000000Z',
                '2020-01-01T00:00:00.000000Z');
        DELETE FROM attributes WHERE transaction_id = 'T-1';
        INSERT INTO transactions VALUES ('T-3', 'ticket', 'new', 'C-404',
          NULL, 1, 1, '2026-02-02T09:00:00.000000Z',
          '2026-02-02T09:00:00.000000Z', '2026-02-02T09:00:00.000000Z');
        INSERT INTO attributes VALUES ('T-3', 'tier', 'text', 'z', NULL);
        PRAGMA foreign_keys=OFF;
        INSERT INTO history(transaction_id, event, to_state, time,
          workflow_version) VALUES ('T-404', 'create', 'new',
          '2026-02-02T09:00:00.000000Z', 1);
        """
    )
    db.commit()
    db.close()


class TestCheck:
    def test_clean_database_passes(self, clean):
        """
        A database written only through crmflow has no problems.
        """
        report = quality.check(clean, now=utc(2026, 2, 3))

        assert report.ok
        assert 0 == sum(report.counts().values())

    def test_planted_problems_found(self, clean):
        """
        Each planted problem is reported once with its table and id.
        """
        _plant(clean)

        report = quality.check(clean, now=utc(2026, 2, 3))
        found = set(
            zip(report.problems["check"], report.problems["table"],
                report.problems["id"])
        )

        assert {
            ("missing_required", "transactions", "T-1"),
            ("invalid_email", "customers", "c-1 "),
            ("invalid_phone", "customers", "c-1 "),
            ("stale", "customers", "c-1 "),
            ("orphan", "transactions", "T-3"),
            ("orphan", "history", "4"),
            ("state_mismatch", "transactions", "T-3"),
            ("duplicate_id", "customers", "C-1"),
            ("duplicate_id", "customers", "c-1 "),
        } == found
        assert not report.ok

    def test_stale_open_transactions_only(self, clean):
        """
        A year later the open ticket is stale, the closed one is not.
        """
        report = quality.check(clean, now=utc(2027, 6, 1), stale_days=30)
        stale = report.problems[report.problems["check"] == "stale"]

        assert [("customers", "C-1"), ("transactions", "T-1")] == sorted(
            zip(stale["table"], stale["id"])
        )

    def test_bad_stale_days_refused(self, clean):
        """
        A negative limit is refused with a message naming it.
        """
        with pytest.raises(crmflow.InvalidArgumentError) as info:
            quality.check(clean, stale_days=-1)

        assert "stale_days must be >= 0" in str(info.value)


class TestCli:
    def test_check_exit_status_and_json(self, clean):
        """
        ``crmflow check`` exits 0 on a clean database and 3 with the
        problems as JSON otherwise.
        """
        command = [sys.executable, "-m", "crmflow.cli", "check", "--db",
                   clean, "--stale-days", "100000"]
        ok = subprocess.run(command, capture_output=True, text=True)
        _plant(clean)

        bad = subprocess.run(command + ["--json"], capture_output=True,
                             text=True)
        data = json.loads(bad.stdout)

        assert 0 == ok.returncode, ok.stderr
        assert "no problems found" in ok.stdout
        assert 3 == bad.returncode
        assert not data["ok"]
        assert 1 == data["counts"]["state_mismatch"]
