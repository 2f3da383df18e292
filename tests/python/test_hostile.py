"""
Regression tests for hostile and odd input found by trying to break the
public API: each case must give a crmflow.Error and leave nothing behind.
"""

import decimal
import json
import sqlite3

import pytest

import crmflow

FLOW = {
    "name": "w",
    "states": [
        {"name": "a", "role": "initial"},
        {"name": "b", "role": "terminal"},
    ],
    "attributes": [{"name": "amount", "type": "decimal"}],
    "transitions": [
        {"event": "go", "from": "a", "to": "b", "guards": ["g"]},
    ],
}


@pytest.fixture
def crm(tmp_path):
    """
    An engine on a SQLite file with one transaction "A" in state a.
    """
    e = crmflow.Engine(str(tmp_path / "h.db"))
    e.register(FLOW)
    e.create("w", "A")
    yield e
    e.close()


def _dump(engine):
    """
    Returns every row of the engine's file, to compare before and after.
    """
    db = sqlite3.connect(engine.path)
    try:
        return list(db.iterdump())
    finally:
        db.close()


class TestCallbacksCannotSteerTheEngine:
    @pytest.mark.parametrize("call", ["close", "begin", "commit",
                                      "rollback"])
    def test_refused_inside_a_guard(self, crm, call):
        """
        close(), begin(), commit() and rollback() from inside a guard are
        refused and the transition is not applied.
        """
        crm.guard("g", lambda ctx: getattr(crm, call)() or True)
        before = _dump(crm)

        with pytest.raises(crmflow.InvalidArgumentError) as info:
            crm.fire("A", "go")

        assert "inside a guard, hook or action" in str(info.value)
        assert "a" == crm.get("A").state
        assert before == _dump(crm)

    def test_register_inside_a_guard(self, crm):
        """
        Registering a new version from inside a guard is refused.
        """
        newer = dict(FLOW, version=2)
        crm.guard("g", lambda ctx: crm.register(newer) or True)

        with pytest.raises(crmflow.InvalidArgumentError):
            crm.fire("A", "go")

        assert "a" == crm.get("A").state


class TestTimesOutOfRange:
    @pytest.mark.parametrize("micros", [
        2**63 - 1,
        253402300800000000,  # 10000-01-01T00:00:00Z
        -62135596800000001,  # one microsecond before 0001-01-01
    ])
    def test_refused_before_anything_is_written(self, crm, micros):
        """
        An integer time outside years 1..9999 is refused and nothing is
        stored, so the file stays readable.
        """
        before = _dump(crm)

        with pytest.raises(crmflow.InvalidArgumentError):
            crm.create("w", "BIG", time=micros)
        with pytest.raises(crmflow.InvalidArgumentError):
            crm.fire("A", "go", time=micros)

        assert before == _dump(crm)
        assert 1 == len(crm.history())

    def test_last_microsecond_of_9999_is_accepted(self, crm):
        """
        The range ends at 9999-12-31T23:59:59.999999Z inclusive.
        """
        last = 253402300800000000 - 1

        crm.create("w", "LAST", time=last)

        assert "9999-12-31 23:59:59.999999+00:00" == str(
            crm.get("LAST").created_at)


class TestDecimals:
    @pytest.mark.parametrize("value, text", [
        (decimal.Decimal("0.0000001"), "0.0000001"),
        (decimal.Decimal("100").normalize(), "100"),
        (decimal.Decimal("0.000000000000000001"), "0.000000000000000001"),
    ])
    def test_exponent_forms_are_read_exactly(self, crm, value, text):
        """
        Decimals that Python writes with an exponent are stored exactly.
        """
        crm.create("w", "D", attributes={"amount": value})

        assert decimal.Decimal(text) == crm.get("D").attributes["amount"]
        assert text == format(crm.get("D").attributes["amount"], "f")


class TestPayloads:
    def test_invalid_json_text_is_refused(self, crm):
        """
        A payload given as text must be JSON.
        """
        crm.guard("g", lambda ctx: True)

        with pytest.raises(crmflow.InvalidArgumentError) as info:
            crm.fire("A", "go", payload="not json {")

        assert "payload" in str(info.value)
        assert "a" == crm.get("A").state

    @pytest.mark.parametrize("payload", [
        {"a": float("nan")}, '{"a": NaN}', {"a": object()},
    ])
    def test_non_json_values_are_refused(self, crm, payload):
        """
        NaN and objects JSON cannot hold are refused, naming the payload.
        """
        crm.guard("g", lambda ctx: True)

        with pytest.raises(crmflow.InvalidArgumentError) as info:
            crm.fire("A", "go", payload=payload)

        assert "payload" in str(info.value)

    def test_money_in_a_payload_keeps_its_digits(self, crm):
        """
        A Decimal in a payload is written as its exact text.
        """
        crm.guard("g", lambda ctx: True)

        crm.fire("A", "go", payload={"refund": decimal.Decimal("1.10")})

        row = crm.history("A").iloc[-1]
        assert {"refund": "1.10"} == json.loads(row["payload"])


class TestOddArguments:
    def test_guard_returning_a_long_tuple_is_an_error(self, crm):
        """
        A guard must return a bool or (allowed, reason), nothing longer.
        """
        crm.guard("g", lambda ctx: (False, "x", "y"))

        with pytest.raises(crmflow.InvalidArgumentError):
            crm.fire("A", "go")

        assert "a" == crm.get("A").state

    def test_nul_in_a_path_is_refused(self, tmp_path):
        """
        A path with a NUL would silently name another file.
        """
        with pytest.raises(crmflow.InvalidArgumentError):
            crmflow.Engine(str(tmp_path / "a\x00b.db"))

        assert [] == list(tmp_path.iterdir())


class TestCommandLineErrors:
    def test_junk_database_is_one_line(self, tmp_path):
        """
        crmflow check on a file that is not a database prints one line.
        """
        import subprocess
        import sys

        junk = tmp_path / "junk.db"
        junk.write_bytes(b"junk" * 200)

        done = subprocess.run(
            [sys.executable, "-m", "crmflow", "check", "--db", str(junk)],
            capture_output=True, text=True,
        )

        assert 1 == done.returncode
        assert [f"crmflow: error: {junk}: file is not a database"] == (
            done.stderr.splitlines())

    def test_surrogate_id_is_an_invalid_argument(self, crm):
        """
        An id that is not valid UTF-8 is refused as an invalid argument.
        """
        with pytest.raises(crmflow.InvalidArgumentError) as info:
            crm.get("\udcff\udcfe")

        assert "id" in str(info.value)


class TestOpeningChangesNothing:
    def test_reopening_keeps_every_row(self, tmp_path):
        """
        Opening a file re-registers its stored workflows; that must not
        rewrite their rows (it used to stamp a new registration time on
        every open, even for read-only commands such as crmflow show).
        """
        path = str(tmp_path / "o.db")
        with crmflow.Engine(path) as e:
            e.register(FLOW)
        db = sqlite3.connect(path)
        before = list(db.iterdump())
        db.close()

        with crmflow.Engine(path) as e:
            assert ["w"] == e.kinds()

        db = sqlite3.connect(path)
        try:
            assert before == list(db.iterdump())
        finally:
            db.close()

    def test_bytes_that_are_not_utf8_give_a_crmflow_error(self, crm):
        """
        A bytes argument the binding passes on as text, quoted in the
        core's message, gives the error (with the bytes escaped) rather
        than a UnicodeDecodeError.
        """
        with pytest.raises(crmflow.NotFoundError) as info:
            crmflow._core.Engine.workflow(crm, b"\xff\xfe")

        assert "\\xff\\xfe" in str(info.value)
