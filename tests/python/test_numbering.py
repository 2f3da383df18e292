"""
Tests of transaction numbering: ``Engine.set_numbering``,
``set_counter`` and ``create`` without an id (case C11), across restarts
and concurrent writer processes.
"""

import subprocess
import sys
import textwrap

import pytest

import crmflow

from conftest import Clock, utc

DEFINITION = {
    "name": "case",
    "version": 1,
    "states": [
        {"name": "open", "role": "initial"},
        {"name": "closed", "role": "terminal"},
    ],
    "transitions": [{"event": "close", "from": "open", "to": "closed"}],
}


def _engine(path, clock=None):
    """
    Returns an engine on ``path`` with the ``case`` kind registered.
    """
    engine = crmflow.Engine(path, clock=clock or Clock())
    engine.register(DEFINITION)
    return engine


class TestNumbering:
    def test_c11_counts_past_the_width_across_a_restart(self, tmp_path):
        """
        C11: after CASE-9998, three creates give CASE-9999, CASE-10000
        and CASE-10001; after reopening, CASE-10002.
        """
        path = str(tmp_path / "crm.db")
        engine = _engine(path)
        engine.set_numbering("case", "CASE-{n:04}")
        engine.set_counter("case", 9998)
        ids = [engine.create("case").id for _ in range(3)]
        engine.close()

        engine = _engine(path)
        ids.append(engine.create("case").id)

        assert [
            "CASE-9999",
            "CASE-10000",
            "CASE-10001",
            "CASE-10002",
        ] == ids
        assert 10002 == engine.counter("case")
        assert 4 == len({t.id for t in engine.list("case")})
        engine.close()

    def test_format_is_stored_with_the_data(self, tmp_path):
        """
        A reopened engine reads the format back from the file.
        """
        path = str(tmp_path / "crm.db")
        engine = _engine(path)
        engine.set_numbering(
            "case", "SO-{year}-{n:06}", yearly_reset=True, zone="UTC"
        )
        engine.close()

        engine = _engine(path)

        assert {
            "kind": "case",
            "format": "SO-{year}-{n:06}",
            "yearly_reset": True,
            "zone": "UTC",
        } == engine.numbering("case")
        assert engine.numbering("other") is None
        engine.close()

    def test_yearly_reset_in_the_zone(self):
        """
        2026-12-31 23:30 UTC is 2027 in Berlin: the 2027 counter starts
        at 1 while the 2026 one is left alone.
        """
        engine = _engine(None, Clock(utc(2026, 12, 31, 23, 30)))
        engine.set_numbering(
            "case",
            "SO-{year}-{n:06}",
            yearly_reset=True,
            zone="Europe/Berlin",
        )
        engine.set_counter("case", 41, year=2026)

        txn = engine.create("case")

        assert "SO-2027-000001" == txn.id
        assert 41 == engine.counter("case", year=2026)
        assert 1 == engine.counter("case", year=2027)

    def test_explicit_id_still_works(self):
        """
        An explicit id bypasses the counter.
        """
        engine = _engine(None)
        engine.set_numbering("case", "C{n}")

        engine.create("case", "LEGACY-1")

        assert 0 == engine.counter("case")
        assert "C1" == engine.create("case").id

    def test_bad_format_is_refused(self):
        """
        An unknown field names the format and the column.
        """
        engine = _engine(None)

        with pytest.raises(crmflow.InvalidArgumentError) as e:
            engine.set_numbering("case", "C-{m}")

        assert 'number format "C-{m}": column 3' in str(e.value)

    def test_kind_without_numbering_needs_an_id(self):
        """
        create without an id on a kind without numbering is refused.
        """
        engine = _engine(None)

        with pytest.raises(crmflow.InvalidArgumentError):
            engine.create("case")

    def test_concurrent_processes_get_distinct_gap_free_numbers(
        self, tmp_path
    ):
        """
        4 processes x 50 creates on one file: 200 distinct numbers,
        exactly 1..200.
        """
        path = str(tmp_path / "crm.db")
        engine = _engine(path)
        engine.set_numbering("case", "CASE-{n:04}")
        engine.close()
        worker = textwrap.dedent(
            f"""
            import crmflow, sys
            engine = crmflow.Engine({path!r})
            ids = [engine.create("case").id for _ in range(50)]
            engine.close()
            print("\\n".join(ids))
            """
        )

        procs = [
            subprocess.Popen(
                [sys.executable, "-c", worker],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        outputs = [p.communicate(timeout=120) for p in procs]

        for p, (_, err) in zip(procs, outputs):
            assert 0 == p.returncode, err
        ids = [line for out, _ in outputs for line in out.split()]
        expected = {f"CASE-{n:04d}" for n in range(1, 201)}
        assert 200 == len(ids)
        assert expected == set(ids)
        engine = _engine(path)
        assert 200 == engine.counter("case")
        assert 200 == len(engine.list("case"))
        engine.close()
