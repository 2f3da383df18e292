"""
Kill tests: a child process doing a long import, a replay or an SLA tick
is killed with SIGKILL at seeded random moments, many times over.

After every kill ``crmflow check`` (the CLI, in a subprocess) must pass:
every state equals the end of its history, no orphan rows, no duplicate
numbers.  Running the same work again finishes it, and the result equals
(by independent SQL: row counts per table, per-case states, versions and
history lengths) that of one uninterrupted run.
"""

import csv
import datetime
import gzip
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import traceback
import warnings

import pytest

import crmflow
from conftest import SHARED_DATA, micros, utc
from test_stress import child_env

HELPDESK = SHARED_DATA / "helpdesk_ticket_log" / "helpdesk_events.csv.gz"
T0 = utc(2026, 3, 2, 9)
H = datetime.timedelta(hours=1)
KILLS = {"import": 16, "replay": 16, "tick": 16}
IMPORT_CASES = 2000  # of the helpdesk log's 4,580
REPLAY_CASES, REPLAY_EVENTS = 1000, 20000
TICKETS = 1000
TICK_BATCH = 150  # tickets added before each killed tick


def helpdesk_workflow():
    """
    Returns a workflow taking every helpdesk activity: self-transitions
    while open, "Closed" ends it (later events become deviations).
    """
    wf = crmflow.Workflow("helpdesk")
    wf.add_state("open", "initial")
    wf.add_state("closed", "terminal")
    wf.add_attribute("seriousness")
    for event in ("Assign seriousness", "Take in charge ticket",
                  "Resolve ticket", "Wait", "Require upgrade",
                  "Insert ticket", "Create SW anomaly", "Resolve SW anomaly",
                  "Schedule intervention", "VERIFIED", "RESOLVED",
                  "INVALID", "DUPLICATE"):
        wf.add_transition(event, "open", "open", internal=True)
    wf.add_transition("Closed", "open", "closed")
    return wf


def job_workflow():
    """
    Returns the replay and tick workflow: a cycle a <-> b.
    """
    wf = crmflow.Workflow("job")
    wf.add_state("a", "initial")
    wf.add_state("b")
    wf.add_state("z", "terminal")
    wf.add_attribute("assignment_group")
    wf.add_transition("go", "a", "b")
    wf.add_transition("back", "b", "a")
    wf.add_transition("end", "b", "z")
    return wf


def policy():
    """
    Returns a 1 h SLA on jobs with a warning and a reassigning breach.
    """
    return crmflow.SlaPolicy(
        "respond", "job", H, met=["z"],
        escalation=[
            crmflow.Escalation(0.5, notify=[crmflow.Notify("e", "lead")]),
            crmflow.Escalation(1.0, notify=[crmflow.Notify("e", "boss")],
                               set={"assignment_group": "L2"}),
        ])


def work(kind, path, started, finished):
    """
    The child's work; calls `started` when the long operation begins and
    `finished` when it ends (before the engine closes).
    """
    t0 = micros(T0)
    with crmflow.Engine(path, clock=lambda: t0) as e:
        if kind == "import":
            started()
            e.import_event_log(
                log_path(path), kind="helpdesk", case="case_id",
                activity="activity", time="timestamp",
                attributes={"seriousness": "seriousness"},
                commit_every=500)
            finished()
        elif kind == "replay":
            ids, events, times, sources = replay_batch()
            started()
            e.replay(ids, events, times, sources=sources, commit_every=250)
            finished()
        else:
            desk = crmflow.ServiceDesk(e, [policy()])
            started()
            desk.tick(T0 + 2 * H)
            finished()


def replay_batch():
    """
    Returns the replay columns: events cycling over the jobs, with
    sources, so a second run skips what the first stored.
    """
    ids, events, times, sources = [], [], [], []
    state = {}
    base = micros(T0)
    for i in range(REPLAY_EVENTS):
        tid = f"J-{(i * 7) % REPLAY_CASES}"
        s = state.get(tid, "a")
        events.append("go" if s == "a" else "back")
        state[tid] = "b" if s == "a" else "a"
        ids.append(tid)
        times.append(base + (i + 1) * 1_000_000)
        sources.append(f"replay:{i}")
    return ids, events, times, sources


def log_path(path):
    """
    Returns the event log imported into the database at `path`.
    """
    return os.path.join(os.path.dirname(path), "helpdesk.csv")


def setup(kind, path):
    """
    Creates the file the child works on (and, for the import, the log:
    the first IMPORT_CASES cases of the helpdesk log).
    """
    with crmflow.Engine(path, clock=lambda: micros(T0)) as e:
        if kind == "import":
            e.register(helpdesk_workflow())
            with gzip.open(HELPDESK, "rt", newline="") as src, open(
                    log_path(path), "w", newline="") as out:
                rows = csv.reader(src)
                w = csv.writer(out)
                w.writerow(next(rows))
                cases = set()
                for row in rows:
                    cases.add(row[0])
                    if len(cases) > IMPORT_CASES:
                        break
                    w.writerow(row)
            return
        e.register(job_workflow())
    if kind == "tick":
        add_tickets(path, 0, TICKETS)
        return
    with crmflow.Engine(path, clock=lambda: micros(T0)) as e:
        with e.transaction():
            for i in range(REPLAY_CASES):
                e.create("job", f"J-{i}", time=T0)


def add_tickets(path, first, count):
    """
    Creates jobs J-first ... with their SLA timers armed.
    """
    with crmflow.Engine(path, clock=lambda: micros(T0)) as e:
        desk = crmflow.ServiceDesk(e, [policy()])
        before = desk.pending_count()
        with e.transaction():
            for i in range(first, first + count):
                e.create("job", f"J-{i}", time=T0)
        assert before + 2 * count == desk.pending_count()


class Child:
    """
    A forked child process running `work` (forked rather than started
    afresh: an interpreter importing crmflow would take longer than the
    work itself).  Its death by SIGKILL is the point of the test.
    """

    def __init__(self, kind, path):
        read, write = os.pipe()
        with warnings.catch_warnings():
            # Python 3.12 warns about forking a process with threads; the
            # child only runs crmflow and its own SQLite connection.
            warnings.simplefilter("ignore", DeprecationWarning)
            self.pid = os.fork()
        if self.pid == 0:  # the child: never returns into pytest
            status = 1
            try:
                os.close(read)
                work(kind, path, lambda: os.write(write, b"g"),
                     lambda: os.write(write, b"d"))
                status = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(status)
        os.close(write)
        self._pipe = read
        # Wait until the long operation begins.
        assert b"g" == os.read(read, 1)

    def kill(self):
        """
        Sends SIGKILL (a no-op when the child has finished) and reaps it;
        returns whether the kill ended it (rather than its finishing).
        """
        os.kill(self.pid, signal.SIGKILL)
        return -signal.SIGKILL == self.wait()

    def wait(self):
        """
        Waits for the child; returns its exit status or -signal.
        """
        os.close(self._pipe)
        _, status = os.waitpid(self.pid, 0)
        return os.waitstatus_to_exitcode(status)


def run_to_end(kind, path):
    """
    Runs the work in a child to completion; returns its seconds.
    """
    child = Child(kind, path)
    began = time.monotonic()
    assert b"d" == os.read(child._pipe, 1)
    took = time.monotonic() - began
    assert 0 == child.wait()
    return took


def check_cli(path):
    """
    Runs ``crmflow check`` and returns (exit status, output).
    """
    r = start_check(path)
    out, err = r.communicate(timeout=60)
    return r.returncode, out + err


def start_check(path):
    """
    Starts ``crmflow check`` on `path`; returns the process.
    """
    return subprocess.Popen(
        [sys.executable, "-m", "crmflow", "check", "--db", path,
         "--stale-days", "100000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=child_env())


_CHECK_MANY = textwrap.dedent(
    """
    import contextlib, io, json, sys
    from crmflow.cli import main
    statuses = []
    for path in sys.argv[1:]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            status = main(["check", "--db", path, "--stale-days", "100000"])
        statuses.append(status)
        if status != 0:
            print(out.getvalue(), file=sys.stderr)
    print(json.dumps(statuses))
    """
)


def check_many(paths):
    """
    Runs the ``crmflow check`` command on each file, in one subprocess
    (starting an interpreter per file would cost more than the checks);
    returns the exit statuses.
    """
    r = subprocess.run(
        [sys.executable, "-c", _CHECK_MANY, *paths], capture_output=True,
        text=True, timeout=120, env=child_env())
    assert 0 == r.returncode, r.stderr
    statuses = json.loads(r.stdout)
    assert [0] * len(paths) == statuses, r.stderr
    return statuses


def freeze(path, n):
    """
    Copies the database as a kill left it (file and WAL) to a new name,
    so the check can run while the work resumes on the original.
    """
    copy = f"{path}.kill{n}"
    for suffix in ("", "-wal"):
        if os.path.exists(path + suffix):
            shutil.copyfile(path + suffix, copy + suffix)
    return copy


def snapshot(path):
    """
    Returns what must equal between an interrupted and a plain run, read
    with sqlite3: row counts per table (but imports, one row per run) and
    per-transaction (state, version, history rows, attributes).
    """
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name "
            "<> 'imports' ORDER BY name")]
        counts = {t: db.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]
                  for t in tables}
        cases = db.execute(
            "SELECT t.id, t.state, t.version, (SELECT count(*) FROM history "
            "h WHERE h.transaction_id = t.id), (SELECT group_concat(name "
            "|| '=' || coalesce(value, ''), ';') FROM attributes a WHERE "
            "a.transaction_id = t.id) FROM transactions t ORDER BY t.id"
        ).fetchall()
        timers = db.execute(
            "SELECT transaction_id, policy, step, state FROM timers "
            "ORDER BY transaction_id, policy, step").fetchall() if (
                "timers" in counts) else []
        events = db.execute(
            "SELECT transaction_id, step, kind, count(*) FROM sla_events "
            "GROUP BY transaction_id, step, kind").fetchall() if (
                "sla_events" in counts) else []
        integrity = db.execute("PRAGMA integrity_check").fetchall()
    return {"counts": counts, "cases": cases, "timers": timers,
            "events": events, "integrity": integrity}


@pytest.mark.skipif(not HELPDESK.exists(), reason="shared data absent")
class TestKill:
    @pytest.mark.parametrize("kind", ["import", "replay", "tick"])
    def test_killed_runs_resume_to_the_plain_result(self, tmp_path, kind):
        """
        SIGKILL at seeded random moments; after each kill the check
        passes; the resumed run ends where an uninterrupted one ends.
        """
        plain = str(tmp_path / "plain.db")
        setup(kind, plain)
        if kind == "tick":
            # The killed runs get fresh due timers before each kill (a
            # tick resumed after a kill has little left to do otherwise);
            # the plain run has them all from the start.
            add_tickets(plain, TICKETS, KILLS[kind] * TICK_BATCH)
        took = run_to_end(kind, plain)
        expected = snapshot(plain)
        assert [("ok",)] == expected["integrity"]
        path = str(tmp_path / "killed.db")
        setup(kind, path)
        rng = random.Random(f"kill-{kind}")

        frozen = []
        hits = 0
        limit = took
        for n in range(KILLS[kind]):
            if kind == "tick":
                add_tickets(path, TICKETS + n * TICK_BATCH, TICK_BATCH)
            child = Child(kind, path)
            time.sleep(rng.uniform(0, limit))
            if child.kill():
                hits += 1
            else:
                # The resumed run had less left to do than the delay:
                # aim the next delays at the shrinking remainder.
                limit /= 2
            # The check reads a copy of what the kill left, later.
            frozen.append(freeze(path, n))
        run_to_end(kind, path)
        got = snapshot(path)
        statuses = check_many(frozen)
        survived = sum(1 for s in statuses if s == 0)

        assert KILLS[kind] == survived
        assert hits >= 1, "no kill hit a running child"
        assert expected == got
        print(f"{kind}: {survived} kills survived ({hits} of a running "
              f"child), plain run {took:.2f} s")


class TestCheckFindsDamage:
    def test_orphans_and_duplicate_numbers_reported(self, tmp_path):
        """
        The checks a kill could break find damage written through SQL: a
        timer, outbox row and SLA event of a missing transaction, and a
        number issued twice (SO-2026-000001 and SO-2026-1).
        """
        path = str(tmp_path / "damaged.db")
        with crmflow.Engine(path, clock=lambda: micros(T0)) as e:
            e.register(job_workflow())
            e.set_numbering("job", "SO-{year}-{n:06}")
            crmflow.ServiceDesk(e, [policy()])
            e.create("job", time=T0)
            assert crmflow.quality.check(path, stale_days=100000).ok
            # The engine accepts an explicit id that repeats a number.
            e.create("job", "SO-2026-1", time=T0)
        with sqlite3.connect(path) as db:
            timer = db.execute(
                "INSERT INTO timers(transaction_id, policy, step, due_at, "
                "cycle, state) VALUES ('GONE', 'respond', 0, "
                "'2026-03-02T10:00:00.000000Z', 1, 'pending')").lastrowid
            outbox = db.execute(
                "INSERT INTO outbox(time, transaction_id, channel, "
                "recipient, subject, body, policy, step) VALUES "
                "('2026-03-02T10:00:00.000000Z', 'GONE', 'e', 'x', '', "
                "'{}', 'respond', 0)").lastrowid

        report = crmflow.quality.check(path, stale_days=100000)
        status, text = check_cli(path)

        found = sorted(report.problems[["check", "table", "id"]].itertuples(
            index=False, name=None))
        assert [("duplicate_number", "transactions", "SO-2026-1"),
                ("orphan", "outbox", str(outbox)),
                ("orphan", "timers", str(timer))] == found
        assert 3 == status, text
