"""
Replay of synthetic sales orders through crmflow and its peers, in one run.

Every order goes created -> pending_approval -> approved -> invoiced ->
shipped -> delivered -> completed (six events).  The same workload runs in

* the ``transitions`` library (one model per order, ``trigger``),
* ``python-statemachine`` (one machine per order, ``send``),
* crmflow's ``fire`` from Python on the memory store,
* crmflow's batch ``replay`` on the memory store,
* raw SQLite statements from Python (UPDATE + INSERT per event, WAL,
  synchronous=NORMAL) and crmflow on a SQLite file with the same pragmas,
  committing after every event and in groups of 1,000 events.

The figures are events per second and, for crmflow, ratios against the peer
measured in the same run: these machines are shared and noisy, so only the
ratios are meant to be compared between runs.

Usage: python benchmarks/bench_engine.py [--orders N] [--json]
"""

import argparse
import json
import os
import sqlite3
import tempfile
import time

import crmflow

STATES = [
    "created",
    "pending_approval",
    "approved",
    "invoiced",
    "shipped",
    "delivered",
    "completed",
]
EVENTS = ["submit", "approve", "invoice", "ship", "deliver", "complete"]

DEFINITION = {
    "name": "bench_order",
    "version": 1,
    "states": [
        {"name": s, "role": "initial" if i == 0 else
         ("terminal" if s == "completed" else "normal")}
        for i, s in enumerate(STATES)
    ],
    "transitions": [
        {"event": e, "from": STATES[i], "to": STATES[i + 1]}
        for i, e in enumerate(EVENTS)
    ],
}


def _rate(events, seconds):
    return events / seconds if seconds > 0 else float("inf")


def bench_transitions(n):
    """
    Returns events per second of the transitions library.
    """
    from transitions import Machine

    class Order:
        pass

    orders = [Order() for _ in range(n)]
    Machine(
        model=orders,
        states=STATES,
        transitions=[
            [e, STATES[i], STATES[i + 1]] for i, e in enumerate(EVENTS)
        ],
        initial="created",
        auto_transitions=False,
    )
    t0 = time.perf_counter()
    for o in orders:
        for e in EVENTS:
            o.trigger(e)
    elapsed = time.perf_counter() - t0
    assert all(o.state == "completed" for o in orders)
    return _rate(n * len(EVENTS), elapsed)


def bench_statemachine(n):
    """
    Returns events per second of python-statemachine.
    """
    from statemachine import State, StateMachine

    class OrderMachine(StateMachine):
        created = State(initial=True)
        pending_approval = State()
        approved = State()
        invoiced = State()
        shipped = State()
        delivered = State()
        completed = State(final=True)

        submit = created.to(pending_approval)
        approve = pending_approval.to(approved)
        invoice = approved.to(invoiced)
        ship = invoiced.to(shipped)
        deliver = shipped.to(delivered)
        complete = delivered.to(completed)

    machines = [OrderMachine() for _ in range(n)]
    t0 = time.perf_counter()
    for m in machines:
        for e in EVENTS:
            m.send(e)
    elapsed = time.perf_counter() - t0
    assert all(m.current_state.id == "completed" for m in machines)
    return _rate(n * len(EVENTS), elapsed)


def _engine_with_orders(path, n):
    engine = crmflow.Engine(path)
    engine.register(DEFINITION)
    with engine.transaction():
        for i in range(n):
            engine.create("bench_order", f"SO-{i:07d}")
    return engine


def bench_crmflow_fire(n):
    """
    Returns events per second of Engine.fire on the memory store.
    """
    engine = _engine_with_orders(None, n)
    ids = [f"SO-{i:07d}" for i in range(n)]
    fire = engine.fire
    t0 = time.perf_counter()
    for i in ids:
        for e in EVENTS:
            fire(i, e)
    elapsed = time.perf_counter() - t0
    assert engine.get(ids[-1]).state == "completed"
    engine.close()
    return _rate(n * len(EVENTS), elapsed)


def bench_crmflow_replay(n):
    """
    Returns events per second of one Engine.replay batch (memory store),
    conversion of the Python lists included.
    """
    engine = _engine_with_orders(None, n)
    ids, events, times = [], [], []
    base = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
    for i in range(n):
        oid = f"SO-{i:07d}"
        for k, e in enumerate(EVENTS):
            ids.append(oid)
            events.append(e)
            times.append(base + i * 1000 + k)
    t0 = time.perf_counter()
    summary = engine.replay(ids, events, times)
    elapsed = time.perf_counter() - t0
    assert summary["applied"] == n * len(EVENTS), summary
    engine.close()
    return _rate(n * len(EVENTS), elapsed)


RAW_SCHEMA = """
CREATE TABLE transactions(id TEXT PRIMARY KEY, kind TEXT, state TEXT,
  version INTEGER, updated_at TEXT, state_entered_at TEXT);
CREATE TABLE history(seq INTEGER PRIMARY KEY, transaction_id TEXT,
  event TEXT, from_state TEXT, to_state TEXT, time TEXT, actor TEXT,
  payload TEXT, internal INTEGER, workflow_version INTEGER, source TEXT);
CREATE INDEX history_txn ON history(transaction_id, seq);
CREATE INDEX history_time ON history(time);
"""


def bench_raw_sqlite(path, n, group):
    """
    Returns events per second of hand-written SQLite statements doing the
    writes of one transition: UPDATE the transaction, INSERT the history
    row, commit every `group` events.
    """
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(RAW_SCHEMA)
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO transactions VALUES (?, 'bench_order', 'created', 1, "
        "'', '')",
        [(f"SO-{i:07d}",) for i in range(n)],
    )
    db.execute("COMMIT")
    update = (
        "UPDATE transactions SET state=?, version=version+1, updated_at=?, "
        "state_entered_at=? WHERE id=? AND version=?"
    )
    insert = (
        "INSERT INTO history(transaction_id, event, from_state, to_state, "
        "time, actor, payload, internal, workflow_version, source) "
        "VALUES (?, ?, ?, ?, ?, NULL, NULL, 0, 1, NULL)"
    )
    stamp = "2026-01-01T00:00:00.000000Z"
    count = 0
    t0 = time.perf_counter()
    db.execute("BEGIN IMMEDIATE")
    for i in range(n):
        oid = f"SO-{i:07d}"
        for k, e in enumerate(EVENTS):
            db.execute(update, (STATES[k + 1], stamp, stamp, oid, k + 1))
            db.execute(insert, (oid, e, STATES[k], STATES[k + 1], stamp))
            count += 1
            if count % group == 0:
                db.execute("COMMIT")
                db.execute("BEGIN IMMEDIATE")
    db.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    db.close()
    return _rate(n * len(EVENTS), elapsed)


def bench_crmflow_sqlite(path, n, group):
    """
    Returns events per second of Engine.fire on a SQLite file, committing
    every `group` events (1: each fire is its own transaction).
    """
    engine = _engine_with_orders(path, n)
    fire = engine.fire
    count = 0
    t0 = time.perf_counter()
    if group == 1:
        for i in range(n):
            oid = f"SO-{i:07d}"
            for e in EVENTS:
                fire(oid, e)
    else:
        engine.begin()
        for i in range(n):
            oid = f"SO-{i:07d}"
            for e in EVENTS:
                fire(oid, e)
                count += 1
                if count % group == 0:
                    engine.commit()
                    engine.begin()
        engine.commit()
    elapsed = time.perf_counter() - t0
    engine.close()
    return _rate(n * len(EVENTS), elapsed)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--orders", type=int, default=20000)
    parser.add_argument("--sqlite-orders", type=int, default=5000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    n, ns = args.orders, args.sqlite_orders

    results = {}
    results["transitions"] = bench_transitions(n)
    results["python-statemachine"] = bench_statemachine(n)
    results["crmflow fire (memory)"] = bench_crmflow_fire(n)
    results["crmflow replay batch (memory)"] = bench_crmflow_replay(n)
    with tempfile.TemporaryDirectory() as tmp:
        for group in (1, 1000):
            raw = bench_raw_sqlite(os.path.join(tmp, f"raw{group}.db"), ns,
                                   group)
            ours = bench_crmflow_sqlite(
                os.path.join(tmp, f"crm{group}.db"), ns, group)
            results[f"raw sqlite3, commit every {group}"] = raw
            results[f"crmflow sqlite, commit every {group}"] = ours

    base = results["transitions"]
    ratios = {
        "fire / transitions": results["crmflow fire (memory)"] / base,
        "replay / transitions": results["crmflow replay batch (memory)"]
        / base,
        "fire / python-statemachine": results["crmflow fire (memory)"]
        / results["python-statemachine"],
        "sqlite commit-per-event / raw": results[
            "crmflow sqlite, commit every 1"]
        / results["raw sqlite3, commit every 1"],
        "sqlite grouped / raw": results["crmflow sqlite, commit every 1000"]
        / results["raw sqlite3, commit every 1000"],
    }
    targets = {
        "fire / transitions": 25,
        "replay / transitions": 140,
        "sqlite commit-per-event / raw": 0.70,
        "sqlite grouped / raw": 0.70,
    }
    if args.json:
        print(json.dumps({"events_per_second": results, "ratios": ratios}))
        return
    print(f"{n} orders x {len(EVENTS)} events in memory; "
          f"{ns} orders on SQLite")
    for name, rate in results.items():
        print(f"  {name:40s} {rate:14,.0f} events/s")
    print("ratios (same run):")
    for name, ratio in ratios.items():
        target = targets.get(name)
        mark = "" if target is None else (
            f"  (target >= {target}: {'met' if ratio >= target else 'MISSED'})")
        print(f"  {name:40s} {ratio:10.2f}{mark}")


if __name__ == "__main__":
    main()
