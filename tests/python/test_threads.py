"""
One Engine shared by several Python threads, without any lock of the
caller's: calls on one engine are serialised by the engine itself, Python
callbacks run on the calling thread and may read the engine again, an
explicit transaction keeps the engine for the thread that began it.

Every test joins its threads with a generous timeout and fails when one is
still alive (a deadlock), and checks what was stored by independent means:
plain SQL through the sqlite3 module for SQLite engines, and the states
each thread's own fires imply.
"""

import datetime
import sqlite3
import threading

import pytest

import crmflow
from conftest import utc

THREADS = 6
OWN = 3  # transactions each thread owns
ROUNDS = 20  # fires per owned transaction
SHARED = 2  # transactions every thread fires on
SHARED_FIRES = 15  # successful fires per thread on the shared ones
JOIN_TIMEOUT = 120.0  # seconds; only reached on a deadlock

# Two states and two events, so that a transaction can be fired on any
# number of times and its final state follows from the count alone.
TOGGLE = {
    "name": "toggle",
    "version": 1,
    "states": [
        {"name": "idle", "role": "initial"},
        {"name": "busy"},
        {"name": "done", "role": "terminal"},
    ],
    "transitions": [
        {"event": "start", "from": "idle", "to": "busy",
         "guards": ["may_start"], "actions": ["count_start"]},
        {"event": "stop", "from": "busy", "to": "idle"},
        {"event": "finish", "from": "idle", "to": "done"},
    ],
}

NEXT_EVENT = {"idle": "start", "busy": "stop"}
AFTER = {"start": "busy", "stop": "idle"}


def run_threads(targets):
    """
    Runs each callable on its own thread; returns the exceptions they
    raised (thread index, exception).  Fails on a thread still alive
    after JOIN_TIMEOUT (a deadlock).
    """
    errors = []
    lock = threading.Lock()

    def wrap(i, fn):
        try:
            fn()
        except BaseException as e:  # reported to the test below
            with lock:
                errors.append((i, e))

    threads = [threading.Thread(target=wrap, args=(i, fn), daemon=True)
               for i, fn in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_TIMEOUT)
    alive = [t.name for t in threads if t.is_alive()]
    assert not alive, f"threads still running (deadlock?): {alive}"
    return errors


class Recorder:
    """
    What the callbacks saw, kept in plain Python objects (a dict of lists
    and counters shared by every thread: the callbacks run with the GIL).
    """

    def __init__(self):
        self.guard_threads = []
        self.actions = {}
        self.entered = []

    def install(self, engine):
        @engine.guard("may_start")
        def may_start(ctx):
            self.guard_threads.append(
                (threading.get_ident(), ctx.transaction.id))
            return True

        @engine.action("count_start")
        def count_start(ctx):
            key = ctx.transaction.id
            self.actions[key] = self.actions.get(key, 0) + 1

        @engine.on_enter("toggle", "*")
        def entered(ctx):
            self.entered.append((threading.get_ident(), ctx.to_state))


def own_ids(k):
    return [f"T{k}-{j}" for j in range(OWN)]


def shared_ids():
    return [f"S-{j}" for j in range(SHARED)]


def make_engine(tmp_path, store, callbacks=True):
    """
    Returns (engine, its file or None) with TOGGLE registered and, unless
    `callbacks` is false, trivial Python callbacks for it.
    """
    path = str(tmp_path / "threads.db") if store == "sqlite" else None
    engine = crmflow.Engine(path)
    engine.register(TOGGLE)
    if callbacks:
        engine.add_guard("may_start", lambda ctx: True)
        engine.register_action("count_start", lambda ctx: None)
    return engine, path


def worker(engine, k, fired, conflicts):
    """
    Fires ROUNDS events on each of thread k's own transactions, with a
    unique source each, and SHARED_FIRES successful ones on the shared
    transactions, read first and fired with expected_version: a version
    conflict (another thread moved it) is retried.  Appends (id, event,
    source, new state) of every successful fire to `fired[k]`.
    """
    mine = fired[k]
    n = 0
    for r in range(ROUNDS):
        for id in own_ids(k):
            event = "start" if r % 2 == 0 else "stop"
            source = f"own:{k}:{id}:{r}"
            state = engine.fire(id, event, source=source)
            mine.append((id, event, source, state))
        if r % 4 == 3:
            # Some fires grouped in a transaction of this thread.
            with engine.transaction():
                for id in own_ids(k):
                    assert engine.get(id).state == "idle"
    done = 0
    while done < SHARED_FIRES:
        id = shared_ids()[(k + done) % SHARED]
        txn = engine.get(id)
        event = NEXT_EVENT[txn.state]
        source = f"shared:{k}:{n}"
        n += 1
        try:
            state = engine.fire(id, event, source=source,
                                expected_version=txn.version)
        except crmflow.ConcurrentUpdateError:
            conflicts[k] += 1
            continue
        mine.append((id, event, source, state))
        done += 1


def history_by_sql(path):
    con = sqlite3.connect(path)
    try:
        rows = con.execute(
            "SELECT seq, transaction_id, event, to_state, source "
            "FROM history ORDER BY seq").fetchall()
        states = dict(con.execute("SELECT id, state FROM transactions"))
    finally:
        con.close()
    return rows, states


def check_stored(rows, states, fired):
    """
    Every successful fire is in the history exactly once (by its unique
    source), nothing else but the creations is, and each state equals the
    last history row's.
    """
    expected = {}
    for mine in fired:
        for id, event, source, state in mine:
            assert source not in expected
            expected[source] = (id, event, state)
    by_source = {}
    for seq, id, event, to_state, source in rows:
        if event == "create":
            continue
        assert source is not None, (seq, id, event)
        assert source not in by_source, f"{source} stored twice"
        by_source[source] = (id, event, to_state)
    assert expected == by_source
    last = {}
    for seq, id, event, to_state, source in rows:
        last[id] = to_state
    assert last == states


@pytest.mark.parametrize("store", ["sqlite", "memory"])
def test_threads_share_one_engine(tmp_path, store):
    engine, path = make_engine(tmp_path, store)
    rec = Recorder()
    rec.install(engine)
    for k in range(THREADS):
        for id in own_ids(k):
            engine.create("toggle", id)
    for id in shared_ids():
        engine.create("toggle", id)
    fired = [[] for _ in range(THREADS)]
    conflicts = [0] * THREADS
    idents = {}

    def target(k):
        def run():
            idents[k] = threading.get_ident()
            worker(engine, k, fired, conflicts)
        return run

    errors = run_threads([target(k) for k in range(THREADS)])
    assert [] == errors

    # Own transactions: ROUNDS alternating fires end where they began.
    final = "idle" if ROUNDS % 2 == 0 else "busy"
    for k in range(THREADS):
        for id in own_ids(k):
            assert final == engine.get(id).state
            assert ROUNDS + 1 == engine.get(id).version
    # Shared ones: their state follows from the count of fires on each.
    for id in shared_ids():
        count = sum(1 for mine in fired for f in mine if f[0] == id)
        assert ("idle" if count % 2 == 0 else "busy") == engine.get(id).state
    # Each thread's fires returned the states of alternation.
    for mine in fired:
        for id, event, source, state in mine:
            assert AFTER[event] == state

    # Callbacks ran on the firing thread: guards of own transactions on
    # their owner, once per committed start (no conflicts on them).
    owner = {id: idents[k] for k in range(THREADS) for id in own_ids(k)}
    own_guards = [(t, id) for t, id in rec.guard_threads if id in owner]
    assert all(t == owner[id] for t, id in own_guards)
    starts = (ROUNDS + 1) // 2
    assert THREADS * OWN * starts == len(own_guards)
    for id in owner:
        assert starts == rec.actions[id]
    firing_threads = set(idents.values()) | {threading.get_ident()}
    assert firing_threads >= {t for t, _ in rec.entered}

    if store == "sqlite":
        engine.close()
        rows, states = history_by_sql(path)
        check_stored(rows, states, fired)
    else:
        cols = engine.history()
        rows = list(zip(range(len(cols)), cols["transaction_id"],
                        cols["event"], cols["to_state"], cols["source"]))
        rows = [(s, i, e, t, src if src else None)
                for s, i, e, t, src in rows]
        states = {id: engine.get(id).state for id in set(r[1] for r in rows)}
        check_stored(rows, states, fired)
        engine.close()


@pytest.mark.parametrize("store", ["sqlite", "memory"])
def test_callbacks_read_the_engine_they_run_in(tmp_path, store):
    """
    A guard and a hook read the same engine (get, history) while other
    threads wait for it: the lock is re-entrant for the thread holding it.
    """
    engine, path = make_engine(tmp_path, store)
    seen = []

    @engine.guard("may_start")
    def may_start(ctx):
        txn = engine.get(ctx.transaction.id)  # re-enters the engine
        seen.append((ctx.transaction.id, txn.state, txn.version))
        return txn.state == "idle"

    @engine.action("count_start")
    def count_start(ctx):
        assert len(engine.history(ctx.transaction.id)) >= 1

    ids = [f"R-{k}" for k in range(4)]
    for id in ids:
        engine.create("toggle", id)

    def target(id):
        def run():
            for r in range(10):
                engine.fire(id, "start" if r % 2 == 0 else "stop")
        return run

    assert [] == run_threads([target(id) for id in ids])
    # The guard saw each transaction idle before each of its 5 starts,
    # at versions 1, 3, 5, 7, 9 (each fire adds one).
    for id in ids:
        assert [("idle", v) for v in (1, 3, 5, 7, 9)] == \
            [(s, v) for i, s, v in seen if i == id]
        assert "idle" == engine.get(id).state
    engine.close()


@pytest.mark.parametrize("store", ["sqlite", "memory"])
@pytest.mark.parametrize("ending", ["commit", "rollback"])
def test_open_transaction_makes_other_threads_wait(tmp_path, store, ending):
    """
    While one thread holds `with engine.transaction():` open, the other
    threads' fires wait: none completes before it ends, and none lands
    inside it (a rollback takes back only the holder's fires).
    """
    engine, path = make_engine(tmp_path, store)
    engine.create("toggle", "HOLD")
    others = [f"W-{k}" for k in range(4)]
    for id in others:
        engine.create("toggle", id)
    inside = threading.Event()
    completed = []
    seen_inside = []

    class Undo(Exception):
        pass

    def holder():
        try:
            with engine.transaction():
                engine.fire("HOLD", "start", source="hold:1")
                inside.set()
                # Let the others reach the engine and wait for it (an
                # Event.wait releases the GIL; the timeout only paces).
                threading.Event().wait(0.5)
                engine.fire("HOLD", "stop", source="hold:2")
                engine.fire("HOLD", "start", source="hold:3")
                seen_inside.append(len(completed))
                if ending == "rollback":
                    raise Undo()
        except Undo:
            pass

    def other(id):
        def run():
            inside.wait(JOIN_TIMEOUT)
            for r in range(4):
                engine.fire(id, "start" if r % 2 == 0 else "stop",
                            source=f"{id}:{r}")
            completed.append(id)
        return run

    errors = run_threads([holder] + [other(id) for id in others])
    assert [] == errors
    assert [0] == seen_inside  # nobody finished while the holder held
    assert sorted(others) == sorted(completed)
    expected_hold = "busy" if ending == "commit" else "idle"
    assert expected_hold == engine.get("HOLD").state
    for id in others:
        assert "idle" == engine.get(id).state
        assert 5 == engine.get(id).version

    if store == "sqlite":
        engine.close()
        rows, _ = history_by_sql(path)
        sources = [r[4] for r in rows if r[2] != "create"]
        hold = [s for s in sources if s.startswith("hold:")]
        if ending == "commit":
            # The holder's three fires are adjacent: nothing slipped in.
            assert ["hold:1", "hold:2", "hold:3"] == hold
            first = sources.index("hold:1")
            assert hold == sources[first:first + 3]
        else:
            assert [] == hold
        assert sorted(f"{id}:{r}" for id in others for r in range(4)) == \
            sorted(s for s in sources if not s.startswith("hold:"))
    else:
        engine.close()


def test_commit_from_another_thread_is_refused(tmp_path):
    engine, _ = make_engine(tmp_path, "sqlite")
    engine.create("toggle", "A")
    engine.begin()
    engine.fire("A", "start")
    got = []

    def other():
        try:
            engine.commit()
        except crmflow.InvalidArgumentError as e:
            got.append(str(e))

    assert [] == run_threads([other])
    assert 1 == len(got)
    assert "begun by another thread" in got[0]
    engine.commit()
    assert "busy" == engine.get("A").state
    engine.close()


def test_abandoned_transaction_fails_waiters_clearly(tmp_path):
    """
    A thread that begins and never commits makes the others wait at most
    the documented time, then fail with a StoreError saying why; once it
    commits, they work again.
    """
    engine, _ = make_engine(tmp_path, "sqlite")
    engine.create("toggle", "A")
    engine.create("toggle", "B")
    engine.begin()
    engine.fire("A", "start")
    got = []

    def other():
        try:
            engine.fire("B", "start")
        except crmflow.StoreError as e:
            got.append(str(e))

    assert [] == run_threads([other])
    assert 1 == len(got)
    assert "engine busy" in got[0]
    assert "has not committed or rolled back" in got[0]
    assert "idle" == engine.get("B").state  # nothing half-applied
    engine.commit()
    assert [] == run_threads([lambda: engine.fire("B", "start")])
    assert "busy" == engine.get("B").state
    engine.close()


def test_python_rule_and_scheduler_tick_in_other_threads(tmp_path):
    """
    Threads fire on one SQLite engine that has a Python rule (condition
    and action in Python) while another thread ticks an SLA scheduler on
    it: every rule run is counted, every transaction breaches once.
    """
    engine, path = make_engine(tmp_path, "sqlite", callbacks=False)
    t0 = utc(2026, 1, 5, 9)
    desk = crmflow.ServiceDesk(engine, [crmflow.SlaPolicy(
        "response", "toggle", datetime.timedelta(hours=1), met=["done"])])
    condition_threads = []
    ran = {}

    def when(ctx):
        condition_threads.append(threading.get_ident())
        return ctx.to_state == "busy"

    @engine.rule("count_busy", kind="toggle", on="entered:*", when=when)
    def count_busy(ctx):
        id = ctx.transaction.id
        ran[id] = ran.get(id, 0) + 1

    engine.add_guard("may_start", lambda ctx: True)
    engine.register_action("count_start", lambda ctx: None)
    workers = 4
    ids = {k: [f"Q{k}-{j}" for j in range(3)] for k in range(workers)}
    stop = threading.Event()
    ticks = []
    tick_thread = []

    def firing(k):
        def run():
            for id in ids[k]:
                engine.create("toggle", id, time=t0)
            for r in range(8):
                for id in ids[k]:
                    engine.fire(id, "start" if r % 2 == 0 else "stop")
        return run

    def ticking():
        tick_thread.append(threading.get_ident())
        n = 0
        while not stop.is_set() or n < 3:
            ticks.append(desk.tick(t0 + datetime.timedelta(hours=2)))
            n += 1

    def firing_then_stop():
        try:
            assert [] == run_threads([firing(k) for k in range(workers)])
        finally:
            stop.set()

    assert [] == run_threads([ticking, firing_then_stop])
    desk.tick(t0 + datetime.timedelta(hours=2))  # the ones created last
    all_ids = [id for k in range(workers) for id in ids[k]]
    # 8 alternating fires: 4 entries into busy per transaction.
    assert {id: 4 for id in all_ids} == ran
    events = desk.events()
    breaches = events[events["kind"] == "breach"]
    assert sorted(all_ids) == sorted(breaches["transaction_id"])
    engine.close()
    con = sqlite3.connect(path)
    try:
        stored = con.execute(
            "SELECT transaction_id, COUNT(*) FROM sla_events "
            "WHERE kind = 'breach' GROUP BY transaction_id").fetchall()
    finally:
        con.close()
    assert sorted((id, 1) for id in all_ids) == sorted(stored)


def begin_on_thread_and_exit(engine, name, nested=1):
    """
    Runs a thread called `name` that begins `nested` explicit
    transactions, fires "start" on "A" and ends without committing;
    returns once that thread has exited.
    """
    def abandon():
        for _ in range(nested):
            engine.begin()
        engine.fire("A", "start", source=f"{name}:start")

    t = threading.Thread(target=abandon, name=name, daemon=True)
    t.start()
    t.join(JOIN_TIMEOUT)
    assert not t.is_alive()


def write_lock_free(path):
    """
    Returns True when a second connection can take SQLite's write lock at
    once (BEGIN IMMEDIATE with no busy wait), i.e. nobody holds it.
    """
    con = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
        con.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError as e:
        assert "locked" in str(e)
        return False
    finally:
        con.close()


class TestAbandonedTransaction:
    """
    An explicit transaction whose owner thread exited without commit() or
    rollback(): close() from any thread rolls it back, the next caller is
    told which thread left it, and rollback() from another thread is the
    way out.
    """

    def test_close_rolls_back_transaction_of_exited_thread(self, tmp_path):
        """
        close() on the main thread discards the exited thread's open
        transaction and releases SQLite's write lock; a second close() is
        a no-op that leaves no lock either.
        """
        engine, path = make_engine(tmp_path, "sqlite")
        engine.create("toggle", "A")
        begin_on_thread_and_exit(engine, "abandoner")
        assert not write_lock_free(path)  # the open transaction holds it

        engine.close()

        assert write_lock_free(path)
        engine.close()
        assert write_lock_free(path)
        con = sqlite3.connect(path)
        try:
            stored = con.execute(
                "SELECT state, version FROM transactions WHERE id = 'A'"
            ).fetchall()
            sources = con.execute(
                "SELECT source FROM history WHERE event <> 'create'"
            ).fetchall()
        finally:
            con.close()
        assert [("idle", 1)] == stored
        assert [] == sources
        with pytest.raises(crmflow.InvalidArgumentError, match="closed"):
            engine.get("A")

    def test_close_from_another_thread_ends_a_live_transaction(
            self, tmp_path):
        """
        close() on another thread while this thread holds a transaction
        open (between its calls) rolls it back and closes; this thread's
        next call reports the engine closed.
        """
        engine, path = make_engine(tmp_path, "sqlite")
        engine.create("toggle", "A")
        engine.begin()
        engine.fire("A", "start")

        assert [] == run_threads([engine.close])

        assert write_lock_free(path)
        with pytest.raises(crmflow.InvalidArgumentError, match="closed"):
            engine.commit()
        engine.close()  # nothing left to do
        con = sqlite3.connect(path)
        try:
            state = con.execute(
                "SELECT state FROM transactions WHERE id = 'A'").fetchone()
        finally:
            con.close()
        assert ("idle",) == state

    @pytest.mark.parametrize("store", ["sqlite", "memory"])
    def test_next_caller_is_told_which_thread_left_it(self, tmp_path, store):
        """
        A call behind a transaction whose owner exited fails at once with
        a StoreError naming that thread and the ways out, and changes
        nothing.
        """
        engine, path = make_engine(tmp_path, store)
        engine.create("toggle", "A")
        engine.create("toggle", "B")
        begin_on_thread_and_exit(engine, "left-open")

        with pytest.raises(crmflow.StoreError) as caught:
            engine.fire("B", "start")

        message = str(caught.value)
        assert 'thread "left-open"' in message
        assert "exited" in message
        assert "rollback()" in message
        assert "engine busy" not in message  # no 10 s wait behind it
        engine.rollback()
        assert "idle" == engine.get("B").state
        assert 1 == engine.get("B").version
        engine.close()

    def test_waiter_learns_of_the_exit_while_waiting(self, tmp_path):
        """
        A call already waiting behind a live owner's transaction fails
        with the abandoned-transaction error once that owner exits without
        committing, instead of the 10 s "engine busy".
        """
        engine, _ = make_engine(tmp_path, "sqlite")
        engine.create("toggle", "A")
        engine.create("toggle", "B")
        began = threading.Event()
        got = []

        def owner():
            engine.begin()
            engine.fire("A", "start")
            began.set()
            # Lets the waiter reach the engine first; the timeout only
            # paces (the outcome is the same if it comes later).
            threading.Event().wait(0.3)

        def waiter():
            began.wait(JOIN_TIMEOUT)
            try:
                engine.fire("B", "start")
            except crmflow.StoreError as e:
                got.append(str(e))

        t = threading.Thread(target=owner, name="short-lived", daemon=True)

        assert [] == run_threads([t.start, waiter])

        t.join(JOIN_TIMEOUT)
        assert 1 == len(got)
        assert got[0].startswith('abandoned transaction: thread '
                                 '"short-lived"'), got[0]
        engine.rollback()
        assert ("idle", "idle") == (engine.get("A").state,
                                    engine.get("B").state)
        engine.close()

    @pytest.mark.parametrize("store", ["sqlite", "memory"])
    def test_rollback_from_another_thread_discards_every_level(
            self, tmp_path, store):
        """
        rollback() on another thread ends the whole abandoned transaction
        (both nesting levels): the fire inside it is undone, the engine
        works again and, on SQLite, the write lock is free.
        """
        engine, path = make_engine(tmp_path, store)
        engine.create("toggle", "A")
        begin_on_thread_and_exit(engine, "nested", nested=2)

        engine.rollback()

        assert "idle" == engine.get("A").state
        assert 1 == engine.get("A").version
        if store == "sqlite":
            assert write_lock_free(path)
        assert "busy" == engine.fire("A", "start")
        with engine.transaction():
            engine.fire("A", "stop")
        assert "idle" == engine.get("A").state
        assert 3 == engine.get("A").version
        engine.close()
        if store == "sqlite":
            assert write_lock_free(path)

    def test_rollback_of_a_live_threads_transaction_is_refused(
            self, tmp_path):
        """
        While the owner thread runs, rollback() elsewhere is refused and
        leaves its transaction open.
        """
        engine, _ = make_engine(tmp_path, "sqlite")
        engine.create("toggle", "A")
        engine.begin()
        engine.fire("A", "start")
        got = []

        def other():
            try:
                engine.rollback()
            except crmflow.InvalidArgumentError as e:
                got.append(str(e))

        assert [] == run_threads([other])

        assert 1 == len(got)
        assert "begun by another thread" in got[0]
        engine.commit()
        assert "busy" == engine.get("A").state
        engine.close()
