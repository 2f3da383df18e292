"""
Tests of Engine.import_event_log and Engine.import_milestones on small
files written by the tests.
"""

import gzip
import json

import pandas as pd
import pytest

import crmflow


def _sr():
    wf = crmflow.Workflow("sr")
    wf.add_state("new", "initial")
    wf.add_state("open")
    wf.add_state("resolved")
    wf.add_state("closed", "terminal")
    wf.add_attribute("team")
    wf.add_attribute("cost", "decimal")
    wf.add_transition("open", "new", "open")
    wf.add_transition("resolve", "open", "resolved")
    wf.add_transition("reopen", "resolved", "open")
    wf.add_transition("close", "resolved", "closed")
    return wf


LOG = (
    "case,activity,time,agent,team,cost\n"
    "SR-1,Opened,2026-02-02T09:00:00Z,ann,L1,10.50\n"
    "SR-1,Note,2026-02-02T09:10:00Z,ann,L1,10.50\n"
    "SR-1,Resolved,2026-02-02T10:00:00Z,bob,L2,10.50\n"
    "SR-2,Opened,2026-02-02T11:00:00Z,ann,L1,\n"
    "SR-2,Closed,2026-02-02T12:00:00Z,ann,L1,\n"
    "SR-3,Opened,yesterday,ann,L1,\n"
    "SR-3,Resolved,2026-02-02T10:00:00Z,ann,L1,\n"
)
MAP = {"Opened": "open", "Resolved": "resolve", "Closed": "close",
       "Note": ""}


@pytest.fixture
def eng(engine):
    engine.register(_sr())
    return engine


@pytest.fixture
def log(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(LOG, encoding="utf-8")
    return str(path)


def _import(engine, path, **kw):
    args = dict(kind="sr", case="case", activity="activity", time="time",
                actor="agent", activity_map=MAP,
                attributes={"team": "team", "cost": "cost"},
                payload=["team"])
    args.update(kw)
    return engine.import_event_log(path, **args)


class TestEventLog:
    def test_summary(self, eng, log):
        """
        Cases, deviations, ignored activities and rejects are counted.
        """
        s = _import(eng, log)

        assert isinstance(s, crmflow.ImportSummary)
        assert "sr" == s.kind
        assert 7 == s.rows
        assert 2 == s.cases
        assert 2 == s.created
        assert 3 == s.events_applied
        assert 1 == s.deviations
        assert 1 == s.ignored
        assert 0 == s.skipped

    def test_reject_points_at_the_cell(self, eng, log):
        """
        The unparseable time rejects its whole case with file:line:col.
        """
        s = _import(eng, log)

        assert 1 == len(s.rejects)
        r = s.rejects[0]
        assert isinstance(r, crmflow.Reject)
        assert (7, 3, "SR-3") == (r.line, r.column, r.case_id)
        assert str(r).startswith(f"{log}:7:3: ") or "log.csv:7:3" in str(r)
        assert ["line", "column"] == list(s.rejects_frame().columns[1:3])
        with pytest.raises(crmflow.NotFoundError):
            eng.get("SR-3")
        # SR-3's Resolved row (line 8) is fine but goes with its case.
        assert 1 == s.in_rejected_cases
        assert str(s).endswith("1 rejected (1 more rows in rejected cases)")

    def test_rows_before_and_after_the_bad_row_are_counted(self, eng,
                                                           tmp_path):
        """
        SR-9's bad time is its third row of five: the two rows before it
        and the two after are counted as rows in rejected cases.
        """
        path = tmp_path / "late.csv"
        path.write_text(
            "case,activity,time,agent,team,cost\n"
            "SR-9,Opened,2026-02-02T09:00:00Z,ann,L1,\n"
            "SR-9,Resolved,2026-02-02T10:00:00Z,ann,L1,\n"
            "SR-9,Closed,soon,ann,L1,\n"
            "SR-8,Opened,2026-02-02T09:00:00Z,ann,L1,\n"
            "SR-9,Resolved,2026-02-02T10:30:00Z,ann,L1,\n"
            "SR-9,Closed,2026-02-02T11:00:00Z,ann,L1,\n", encoding="utf-8")

        s = _import(eng, str(path))

        assert (6, 1, 1) == (s.rows, len(s.rejects), s.created)
        assert 4 == s.in_rejected_cases
        with pytest.raises(crmflow.NotFoundError):
            eng.get("SR-9")

    def test_states_attributes_payload(self, eng, log):
        """
        States, typed attributes, actors and payloads are imported.
        """
        _import(eng, log)

        t = eng.get("SR-1")
        assert "resolved" == t.state
        assert "L1" == t.attributes["team"]
        assert "10.50" == str(t.attributes["cost"])
        assert "open" == eng.get("SR-2").state
        h = eng.history("SR-1")
        assert ["create", "open", "resolve"] == list(h["event"])
        assert ["ann", "ann", "bob"] == list(h["actor"])
        assert {"team": "L2"} == json.loads(h["payload"].iloc[-1])

    def test_deviation_recorded(self, eng, log):
        """
        Closing an open case is recorded as a deviation at its position.
        """
        _import(eng, log)

        d = eng.deviations()
        assert 1 == len(d)
        row = d.iloc[0]
        assert ("SR-2", "close", "open", 1) == (
            row.transaction_id, row.event, row.state, row.position)
        assert pd.Timestamp("2026-02-02T12:00Z") == row.time

    def test_reimport_skips_everything(self, eng, log):
        """
        Importing the same file again adds nothing.
        """
        _import(eng, log)
        before = eng.history()

        s = _import(eng, log)

        assert 0 == s.created
        assert 0 == s.events_applied
        assert 0 == s.deviations
        assert s.skipped > 0
        pd.testing.assert_frame_equal(before, eng.history())
        assert 1 == len(eng.deviations())

    def test_on_error_raise_writes_nothing(self, eng, log):
        """
        on_error="raise" fails at the first bad row and writes nothing.
        """
        with pytest.raises(crmflow.ParseError, match="yesterday"):
            _import(eng, log, on_error="raise")

        assert 0 == len(eng.history())

    def test_gzip(self, eng, tmp_path):
        """
        A gzip file is read like a plain one.
        """
        path = tmp_path / "log.csv.gz"
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(LOG)

        assert 2 == _import(eng, str(path)).cases

    def test_status_map(self, eng, tmp_path):
        """
        With status_map, the first declared transition to the state is
        fired and repeated statuses are unchanged.
        """
        path = tmp_path / "s.csv"
        path.write_text(
            "id;status;at\n"
            "A;N;2/2/2026 09:00\nA;W;2/2/2026 09:30\nA;W;2/2/2026 09:40\n"
            "A;D;2/2/2026 11:00\nA;W;2/2/2026 12:00\nA;X;3/2/2026 08:00\n",
            encoding="utf-8",
        )

        s = eng.import_event_log(
            str(path), kind="sr", case="id", activity="status", time="at",
            status_map={"N": "new", "W": "open", "D": "resolved",
                        "X": "closed"},
            time_format="%d/%m/%Y %H:%M", time_zone="Europe/Berlin",
            delimiter=";",
        )

        assert 1 == s.unchanged
        h = eng.history("A")
        assert ["create", "open", "resolve", "reopen"] == list(h["event"])
        assert 1 == s.deviations
        assert pd.Timestamp("2026-02-02T08:00Z") == h["time"][0]

    def test_non_utf8_is_rejected(self, eng, tmp_path):
        """
        A row with bytes that are not UTF-8 is a clear error or a reject,
        and its case is not half-applied.
        """
        path = tmp_path / "bad.csv"
        path.write_bytes(
            b"case,activity,time,agent,team,cost\n"
            b"SR-1,Opened,2026-02-02T09:00:00Z,ann,L\xe9,\n"
            b"SR-1,Resolved,2026-02-02T10:00:00Z,ann,L1,\n"
        )

        try:
            s = _import(eng, str(path))
        except crmflow.Error:
            assert 0 == len(eng.history())
        else:
            assert 1 == len(s.rejects)
            assert 0 == len(eng.history())

    def test_duplicate_id_across_kinds(self, eng, log):
        """
        A case whose id exists with another kind is rejected.
        """
        eng.register("campaign")
        eng.create("campaign", "SR-1")

        s = _import(eng, log)

        assert "SR-1" in {r.case_id for r in s.rejects}
        assert "planned" == eng.get("SR-1").state


class TestArguments:
    @pytest.mark.parametrize(
        "kw, word",
        [
            ({"kind": ""}, "kind"),
            ({"case": []}, "case"),
            ({"case": 3}, "case"),
            ({"on_error": "ignore"}, "on_error"),
            ({"delimiter": ";;"}, "delimiter"),
            ({"activity_map": {"a": 1}}, "activity_map"),
            ({"activity_map": MAP, "status_map": {"N": "new"}},
             "status_map"),
            ({"payload": [1]}, "payload"),
            ({"attributes": {"team": "nosuch"}}, "nosuch"),
            ({"commit_every": -1}, "commit_every"),
        ],
    )
    def test_bad_arguments_are_named(self, eng, log, kw, word):
        """
        Python-side checks raise InvalidArgumentError naming the argument.
        """
        with pytest.raises(crmflow.InvalidArgumentError, match=word):
            _import(eng, log, **kw)
        assert 0 == len(eng.history())

    def test_unknown_kind(self, eng, log):
        """
        An unregistered kind raises NotFoundError naming it.
        """
        with pytest.raises(crmflow.NotFoundError, match="nokind"):
            _import(eng, log, kind="nokind")

    def test_missing_file(self, eng, tmp_path):
        """
        A missing file raises NotFoundError naming it.
        """
        with pytest.raises(crmflow.NotFoundError, match="nothere"):
            _import(eng, str(tmp_path / "nothere.csv"))

    def test_unknown_column(self, eng, log):
        """
        A column absent from the header is a crmflow.Error.
        """
        with pytest.raises(crmflow.Error, match="nosuchcolumn"):
            _import(eng, log, actor="nosuchcolumn")


class TestMilestones:
    CSV = (
        "id,cust,placed,paid,sent,status,total\n"
        "O-1,C1,2026-01-05 10:00:00,2026-01-05 11:00:00,"
        "2026-01-06 10:00:00,sent,1.10\n"
        "O-2,C2,2026-01-05 10:00:00,2026-01-05 12:00:00,,sent,2.20\n"
        "O-3,C3,2026-01-05 10:00:00,,,gone,\n"
        "O-4,C4,2026-01-05 10:00:00,2026-01-07 10:00:00,"
        "2026-01-06 10:00:00,sent,\n"
        "O-5,C5,,,,sent,\n"
    )

    @pytest.fixture
    def orders(self, engine, tmp_path):
        wf = crmflow.Workflow("order")
        wf.add_state("placed", "initial")
        wf.add_state("paid")
        wf.add_state("sent", "terminal")
        wf.add_state("gone", "terminal")
        wf.add_attribute("total", "decimal")
        wf.add_transition("pay", "placed", "paid")
        wf.add_transition("send", "paid", "sent")
        wf.add_transition("cancel", ["placed", "paid"], "gone")
        engine.register(wf)
        path = tmp_path / "orders.csv"
        path.write_text(self.CSV, encoding="utf-8")
        return engine, str(path)

    def _run(self, engine, path):
        return engine.import_milestones(
            path, kind="order", case="id", customer="cust",
            created="placed", milestones={"paid": "pay", "sent": ["send"]},
            status="status",
            status_map={"sent": "sent", "gone": "gone"},
            attributes={"total": "total"},
            time_format="%Y-%m-%d %H:%M:%S", time_zone="UTC",
        )

    def test_replay_and_inference(self, orders):
        """
        Milestones are replayed in time order, a missing step to the final
        status is inferred, out-of-order ones are deviations.
        """
        engine, path = orders

        s = self._run(engine, path)

        assert 4 == s.cases
        assert "sent" == engine.get("O-1").state
        assert "sent" == engine.get("O-2").state
        assert "gone" == engine.get("O-3").state
        assert 3 == s.inferred
        assert "sent" == engine.get("O-4").state
        h = engine.history("O-2")
        assert {"inferred": True} == json.loads(h["payload"].iloc[-1])
        assert pd.Timestamp("2026-01-05T12:00Z") == h["time"].iloc[-1]
        assert {"O-4"} == set(engine.deviations()["transaction_id"])
        assert "C1" == engine.get("O-1").customer_id

    def test_empty_created_is_rejected(self, orders):
        """
        An empty creation time rejects the row.
        """
        engine, path = orders

        s = self._run(engine, path)

        assert ["O-5"] == [r.case_id for r in s.rejects]
        assert 6 == s.rejects[0].line

    def test_argument_checks(self, orders):
        """
        status and status_map go together; milestones need events.
        """
        engine, path = orders

        with pytest.raises(crmflow.InvalidArgumentError, match="status"):
            engine.import_milestones(path, kind="order", case="id",
                                     created="placed", milestones={},
                                     status="status")
        with pytest.raises(crmflow.InvalidArgumentError, match="paid"):
            engine.import_milestones(path, kind="order", case="id",
                                     created="placed",
                                     milestones={"paid": []})
