"""
Concurrency stress: many writer processes on one SQLite file, and several
threads on one engine or several engines in one process.

The writers run a fixed, seeded workload: numbered creates, events on
their own and on shared orders (read, then fire or set attributes with the
version read, retrying on ConcurrentUpdateError as the API documents), and
the SLA scheduler's tick.  Every invariant is then checked with the
sqlite3 module against what the workers report as committed, never
through crmflow.
"""

import collections
import contextlib
import datetime
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import crmflow
from conftest import micros, utc

WRITERS = 8
ROUNDS = 30          # per writer; each round does 4 writes
SHARED = 4           # orders every writer fires on
TICKETS = 6          # tickets with a two-step escalation ladder
T0 = utc(2026, 3, 2, 9)
H = datetime.timedelta(hours=1)

# Events by state of the order workflow (a cycle, so any order can take
# any number of events).
NEXT_EVENT = {"new": "open", "open": "hold", "held": "release"}
TO_STATE = {"open": "open", "hold": "held", "release": "open"}


def child_env():
    """
    Returns the environment of a child process: it imports the crmflow
    this process imported (the package directory as found, not resolved:
    a development build links its sources in) and these test modules.
    """
    package = os.path.dirname(os.path.dirname(os.path.abspath(
        crmflow.__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [package, os.path.dirname(os.path.abspath(__file__)),
         env.get("PYTHONPATH", "")])
    return env


def order_workflow():
    """
    Returns the order workflow: new -> open <-> held.
    """
    wf = crmflow.Workflow("sales_order")
    wf.add_state("new", "initial")
    wf.add_state("open")
    wf.add_state("held")
    wf.add_state("done", "terminal")
    wf.add_attribute("count", "integer")
    wf.add_attribute("note")
    wf.add_transition("open", "new", "open")
    wf.add_transition("hold", "open", "held")
    wf.add_transition("release", "held", "open")
    wf.add_transition("finish", "open", "done")
    return wf


def ticket_workflow():
    """
    Returns the ticket workflow the SLA policy watches.
    """
    wf = crmflow.Workflow("ticket")
    wf.add_state("new", "initial")
    wf.add_state("resolved", "terminal")
    wf.add_attribute("assignment_group")
    wf.add_transition("resolve", "new", "resolved")
    return wf


def policy():
    """
    Returns the ticket SLA: 1 h, a warning at half time, a breach that
    reassigns.
    """
    return crmflow.SlaPolicy(
        "response", "ticket", H, met=["resolved"],
        escalation=[
            crmflow.Escalation(
                0.5, notify=[crmflow.Notify("email", "lead", "half")]),
            crmflow.Escalation(
                1.0, notify=[crmflow.Notify("email", "boss", "late")],
                set={"assignment_group": "L2"}),
        ])


# The worker: waits for the go file, then runs its seeded workload and
# prints what it committed as JSON.  Any exception other than the
# documented ConcurrentUpdateError retry is an error reaching the user.
_WORKER = textwrap.dedent(
    """
    import datetime, json, os, random, sys, time
    import crmflow
    import test_stress as ts

    path, worker, rounds, go = (sys.argv[1], int(sys.argv[2]),
                                int(sys.argv[3]), sys.argv[4])
    rng = random.Random(worker)
    out = {"created": [], "history": {}, "attr_writes": {},
           "increments": 0, "conflicts": 0, "errors": [], "ticks": 0}

    def add(table, tid):
        out[table][tid] = out[table].get(tid, 0) + 1

    def retry(op):
        # Read-then-write with the version read: a conflict means another
        # writer committed in between; read again and retry.
        while True:
            try:
                return op()
            except crmflow.ConcurrentUpdateError:
                out["conflicts"] += 1

    t0 = ts.micros(ts.T0)
    with crmflow.Engine(path, clock=lambda: t0) as e:
        desk = crmflow.ServiceDesk(e, [ts.policy()])
        own = []
        while not os.path.exists(go):
            time.sleep(0.005)
        for i in range(rounds):
            try:
                # A numbered create.
                txn = e.create("sales_order", time=ts.T0,
                               attributes={"count": 0})
                own.append(txn.id)
                out["created"].append(txn.id)
                add("history", txn.id)

                # An event on one of this worker's orders.
                mine = own[rng.randrange(len(own))]
                state = e.get(mine).state
                e.fire(mine, ts.NEXT_EVENT[state])
                add("history", mine)

                # An event on a shared order, from a possibly stale read.
                shared = f"SHARED-{rng.randrange(ts.SHARED)}"
                def fire_shared():
                    t = e.get(shared)
                    e.fire(shared, ts.NEXT_EVENT[t.state],
                           expected_version=t.version)
                retry(fire_shared)
                add("history", shared)

                # A read-modify-write of a shared counter attribute.
                shared = f"SHARED-{rng.randrange(ts.SHARED)}"
                def increment():
                    t = e.get(shared)
                    e.set_attributes(
                        shared, {"count": t.attributes["count"] + 1,
                                 "note": f"w{worker} r{i}"},
                        expected_version=t.version)
                retry(increment)
                add("attr_writes", shared)
                out["increments"] += 1

                # Every writer ticks the same timeline.
                if i % 3 == 0:
                    desk.tick(ts.T0 + (i // 3) * ts.H / 4)
                    out["ticks"] += 1
            except Exception as x:
                out["errors"].append(f"{type(x).__name__}: {x}")
        desk.tick(ts.T0 + 3 * ts.H)
    print(json.dumps(out))
    """
)


def setup_file(path):
    """
    Creates the shared orders and the tickets (timers armed at T0).
    """
    with crmflow.Engine(path, clock=lambda: micros(T0)) as e:
        e.register(order_workflow())
        e.register(ticket_workflow())
        e.set_numbering("sales_order", "SO-{year}-{n:06}")
        desk = crmflow.ServiceDesk(e, [policy()])
        for s in range(SHARED):
            e.create("sales_order", f"SHARED-{s}", time=T0,
                     attributes={"count": 0})
        for t in range(TICKETS):
            e.create("ticket", f"T-{t}", time=T0)
        assert 2 * TICKETS == desk.pending_count()


def run_writers(path, tmp_path, writers, rounds):
    """
    Starts the writers together and returns their reports.
    """
    go = str(tmp_path / "go")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, path, str(w), str(rounds), go],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=child_env())
        for w in range(writers)
    ]
    time.sleep(0.5)
    open(go, "w").close()
    reports = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=150)
        assert 0 == p.returncode, stderr
        reports.append(json.loads(stdout))
    return reports


class TestManyWriterProcesses:
    def test_eight_writers_keep_every_invariant(self, tmp_path):
        """
        8 processes x 30 rounds of create, fire, shared fire, shared
        read-modify-write and tick: no error reaches a worker, no update
        is lost, numbers are gap-free, each escalation step fires once.
        """
        path = str(tmp_path / "stress.db")
        setup_file(path)

        reports = run_writers(path, tmp_path, WRITERS, ROUNDS)

        assert [] == [x for r in reports for x in r["errors"]]
        history = collections.Counter()
        attr_writes = collections.Counter()
        for r in reports:
            history.update(r["history"])
            attr_writes.update(r["attr_writes"])
        created = [c for r in reports for c in r["created"]]
        increments = sum(r["increments"] for r in reports)
        n = WRITERS * ROUNDS
        assert n == len(created) == increments
        with sqlite3.connect(path) as db:
            q = db.execute
            # History rows: the setup's creates plus what workers report.
            stored = dict(q("SELECT transaction_id, count(*) FROM history "
                            "GROUP BY transaction_id"))
            expected = dict(history)
            for s in range(SHARED):
                expected[f"SHARED-{s}"] = expected.get(f"SHARED-{s}", 0) + 1
            for t in range(TICKETS):
                expected[f"T-{t}"] = 1
            assert expected == stored
            # State is the last row's to_state, and equals the state the
            # cycle gives after that many events.
            rows = q("SELECT t.id, t.state, h.to_state, t.version FROM "
                     "transactions t JOIN history h ON h.seq = (SELECT "
                     "max(seq) FROM history x WHERE x.transaction_id = "
                     "t.id)").fetchall()
            assert [] == [r for r in rows if r[1] != r[2]]
            for tid, state, _, version in rows:
                if tid.startswith("T-"):
                    continue
                events = stored[tid] - 1
                walk = "new"
                for _ in range(events):
                    walk = TO_STATE[NEXT_EVENT[walk]]
                assert (tid, walk) == (tid, state)
                # Version: 1 at create, +1 per event and attribute write.
                assert (tid, stored[tid] + attr_writes[tid]) == (tid, version)
            # No lost increment of the shared counters.
            counts = q("SELECT sum(CAST(value AS INTEGER)) FROM attributes "
                       "WHERE name = 'count'").fetchone()[0]
            assert increments == counts
            # Numbers: unique and gap-free 1..n, the counter at n.
            numbered = sorted(
                r[0] for r in q("SELECT id FROM transactions WHERE id LIKE "
                                "'SO-2026-%'"))
            assert [f"SO-2026-{i:06d}" for i in range(1, n + 1)] == numbered
            assert sorted(created) == numbered
            assert [("sales_order", n)] == q(
                "SELECT kind, last FROM counters").fetchall()
            # Each ticket's two steps fired exactly once, with one outbox
            # row each and the reassignment written once.
            events = q("SELECT transaction_id, step, kind, count(*) FROM "
                       "sla_events GROUP BY transaction_id, step, "
                       "kind").fetchall()
            assert sorted(
                [(f"T-{t}", 0, "breach", 1) for t in range(TICKETS)]
                + [(f"T-{t}", 1, "threshold", 1) for t in range(TICKETS)]
            ) == sorted(events)
            outbox = q("SELECT transaction_id, recipient, count(*) FROM "
                       "outbox GROUP BY transaction_id, recipient").fetchall()
            assert sorted(
                [(f"T-{t}", r, 1) for t in range(TICKETS)
                 for r in ("boss", "lead")]) == sorted(outbox)
            assert [("fired", 2 * TICKETS)] == q(
                "SELECT state, count(*) FROM timers GROUP BY state").fetchall()
            tickets = q("SELECT t.version, a.value FROM transactions t JOIN "
                        "attributes a ON a.transaction_id = t.id AND a.name "
                        "= 'assignment_group' WHERE t.kind = 'ticket'")
            assert [(2, "L2")] * TICKETS == tickets.fetchall()
            assert [("ok",)] == q("PRAGMA integrity_check").fetchall()
        assert crmflow.quality.check(path, stale_days=100000).ok
        conflicts = sum(r["conflicts"] for r in reports)
        print(f"{WRITERS} writers: {n} creates, {sum(history.values())} "
              f"history rows, {increments} attribute writes, "
              f"{sum(r['ticks'] for r in reports)} ticks, {conflicts} "
              f"version conflicts retried")


_TICKER = textwrap.dedent(
    """
    import json, os, sys, time
    import crmflow
    import test_stress as ts

    path, go = sys.argv[1], sys.argv[2]
    t0 = ts.micros(ts.T0)
    errors, fired = [], 0
    with crmflow.Engine(path, clock=lambda: t0) as e:
        desk = crmflow.ServiceDesk(e, [ts.policy()])
        while not os.path.exists(go):
            time.sleep(0.002)
        for k in range(1, 9):
            try:
                fired += desk.tick(ts.T0 + k * ts.H / 4).fired
            except Exception as x:
                errors.append(f"{type(x).__name__}: {x}")
    print(json.dumps({"fired": fired, "errors": errors}))
    """
)


class TestConcurrentTicks:
    def test_each_step_fires_once_across_processes(self, tmp_path):
        """
        8 processes tick the same timeline over 150 tickets at once: each
        of the 300 escalation steps fires exactly once (one sla_events
        row, one outbox row), and the fired counts the ticks report add
        up to 300.
        """
        path = str(tmp_path / "ticks.db")
        tickets = 150
        with crmflow.Engine(path, clock=lambda: micros(T0)) as e:
            e.register(ticket_workflow())
            desk = crmflow.ServiceDesk(e, [policy()])
            with e.transaction():
                for t in range(tickets):
                    e.create("ticket", f"T-{t}", time=T0)
            assert 2 * tickets == desk.pending_count()
        go = str(tmp_path / "go")

        procs = [subprocess.Popen(
            [sys.executable, "-c", _TICKER, path, go],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=child_env())
            for _ in range(WRITERS)]
        time.sleep(0.5)
        open(go, "w").close()
        results = []
        for p in procs:
            stdout, stderr = p.communicate(timeout=120)
            assert 0 == p.returncode, stderr
            results.append(json.loads(stdout))

        assert [] == [x for r in results for x in r["errors"]]
        assert 2 * tickets == sum(r["fired"] for r in results)
        with sqlite3.connect(path) as db:
            q = db.execute
            assert [(2 * tickets, 2 * tickets)] == q(
                "SELECT count(*), count(DISTINCT transaction_id || '/' || "
                "step) FROM sla_events").fetchall()
            assert [(2 * tickets, 2 * tickets)] == q(
                "SELECT count(*), count(DISTINCT transaction_id || '/' || "
                "recipient) FROM outbox").fetchall()
            assert [("fired", 2 * tickets)] == q(
                "SELECT state, count(*) FROM timers GROUP BY state"
            ).fetchall()
            assert [(2, tickets)] == q(
                "SELECT version, count(*) FROM transactions GROUP BY "
                "version").fetchall()
            assert [("ok",)] == q("PRAGMA integrity_check").fetchall()


class TestThreads:
    @staticmethod
    def _callbacks(e, seen):
        """
        Registers a guard, an action and hooks that touch shared Python
        objects and record the thread they run on.
        """
        def note(kind):
            def record(ctx):
                # Python objects mutated from many threads: only safe
                # with the GIL held; a lost append shows up in the count.
                seen[kind].append(threading.get_ident())
                return True
            return record

        e.guard("always", note("guard"))
        e.action("log", note("action"))
        e.on_enter("job", "*", note("enter"))
        e.on_exit("job", "*", note("exit"))

    @staticmethod
    def _workflow():
        wf = crmflow.Workflow("job")
        wf.add_state("a", "initial")
        wf.add_state("b")
        wf.add_state("z", "terminal")
        wf.add_transition("end", "b", "z")
        wf.add_transition("go", "a", "b", guards=["always"], actions=["log"])
        wf.add_transition("back", "b", "a", guards=["always"],
                          actions=["log"])
        return wf

    def _run_threads(self, engines, per_thread, lock=None):
        """
        Runs one thread per engine entry, each firing on its own job
        (holding `lock` around each call when given); returns errors.  A
        thread still running after the timeout fails the test (a
        deadlock).
        """
        errors = []
        guard = lock if lock is not None else contextlib.nullcontext()

        def work(e, t):
            try:
                for i in range(per_thread):
                    with guard:
                        e.fire(f"J-{t}", "go" if i % 2 == 0 else "back")
            except Exception as x:  # reported, not swallowed
                errors.append(f"{type(x).__name__}: {x}")

        threads = [threading.Thread(target=work, args=(e, t), daemon=True)
                   for t, e in enumerate(engines)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert [] == [t.name for t in threads if t.is_alive()]
        return errors

    def test_separate_engines_on_one_file(self, tmp_path):
        """
        4 threads, each with its own engine on one file, with Python
        guards, actions and hooks: no deadlock, no error, every callback
        ran on the firing thread, every transition stored.
        """
        path = str(tmp_path / "threads.db")
        with crmflow.Engine(path, clock=lambda: micros(T0)) as e:
            e.register(self._workflow())
            for t in range(4):
                e.create("job", f"J-{t}", time=T0)
        seen = collections.defaultdict(list)
        engines = [crmflow.Engine(path, clock=lambda: micros(T0))
                   for _ in range(4)]
        for e in engines:
            self._callbacks(e, seen)

        try:
            errors = self._run_threads(engines, 50)
        finally:
            for e in engines:
                e.close()

        assert [] == errors
        assert {k: 200 for k in ("guard", "action", "enter", "exit")} == {
            k: len(v) for k, v in seen.items()}
        with sqlite3.connect(path) as db:
            assert [(f"J-{t}", 51, "a") for t in range(4)] == db.execute(
                "SELECT t.id, count(*), t.state FROM transactions t JOIN "
                "history h ON h.transaction_id = t.id GROUP BY t.id "
                "ORDER BY t.id").fetchall()

    @pytest.mark.parametrize("path", ["file", None])
    def test_one_engine_many_threads(self, tmp_path, path):
        """
        An engine is not thread-safe: threads may share one when they
        serialise their calls (here a lock around each fire, which the
        engine's release of the GIL during SQLite work must not upset):
        no deadlock, every callback runs on the thread that fired, with
        the GIL held, and every transition is stored.
        """
        path = str(tmp_path / "one.db") if path else None
        e = crmflow.Engine(path, clock=lambda: micros(T0))
        e.register(self._workflow())
        for t in range(4):
            e.create("job", f"J-{t}", time=T0)
        seen = collections.defaultdict(list)
        self._callbacks(e, seen)
        callers = {}

        def check_thread(ctx):
            # The hook runs on the thread that called fire.
            callers.setdefault(ctx.transaction.id, set()).add(
                threading.get_ident())
        e.on_enter("job", "b", check_thread)

        try:
            errors = self._run_threads([e] * 4, 50, threading.Lock())
            history = e.history()
        finally:
            e.close()

        assert [] == errors
        assert {k: 200 for k in ("guard", "action", "enter", "exit")} == {
            k: len(v) for k, v in seen.items()}
        assert [1] * 4 == [len(v) for v in callers.values()]
        assert {f"J-{t}": 51 for t in range(4)} == dict(
            collections.Counter(history["transaction_id"]))
