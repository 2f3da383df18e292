"""
Rule evaluation: events against 50 rules in crmflow and its peers.

The 50 conditions are ``amount > K and tier == 'gold'`` (K = 0, 20, ...,
980) over 1,000 records whose ``amount`` (decimal) and ``tier`` (text)
vary; an event evaluates all 50 conditions on one record.  Figures:

* ``crmflow native``: ``crmflow.rules.ConditionSet.count`` with the loop
  in C++ over the same records (records converted once per call, inside
  the timing); the shared ``tier == 'gold'`` is evaluated once per event.
  This is the like-for-like figure against the peers.
* ``crmflow fire``: each event fires ``touch`` (an internal transition)
  on one of 1,000 tickets from Python, with the 50 conditions as stored
  rules of that event (no actions): it includes the fire itself (history
  row, version, trace row per rule) on the memory store.
* ``rule-engine``: ``Rule(text).matches(record)`` per condition.
* ``zen-engine``: ``zen.compile_expression(text)`` once, then
  ``evaluate(record)`` per condition (amounts as floats, as zen takes
  them).
* Python conditions: a ``ConditionSet`` of one callable condition vs. a
  bare loop in C++ calling the same no-op Python function
  (``_core.call_python_n``), per call.

Figures are events per second (calls per second for the last pair);
compare ratios within one run (shared machines are noisy).

Usage: python benchmarks/bench_rules.py [--events N] [--json]
"""

import argparse
import decimal
import json
import time

import crmflow

RULES = 50
TICKETS = 1000


def _conditions():
    """
    Returns the 50 condition texts.
    """
    return [f"amount > {20 * k} and tier == 'gold'" for k in range(RULES)]


def _records():
    """
    Returns the attributes of the tickets.
    """
    return [
        {
            "amount": decimal.Decimal(f"{(i * 37) % 1000}.50"),
            "tier": "gold" if i % 3 == 0 else "silver",
        }
        for i in range(TICKETS)
    ]


def bench_crmflow(events):
    """
    Returns events per second of fire with 50 stored rules.
    """
    engine = crmflow.Engine()
    engine.register(
        {
            "name": "ticket",
            "states": [
                {"name": "open", "role": "initial"},
                {"name": "closed", "role": "terminal"},
            ],
            "attributes": [
                {"name": "amount", "type": "decimal"},
                {"name": "tier", "type": "text"},
            ],
            "transitions": [
                {"event": "touch", "from": "open", "to": "open",
                 "internal": True},
                {"event": "close", "from": "open", "to": "closed"},
            ],
        }
    )
    for i, rec in enumerate(_records()):
        engine.create("ticket", f"T-{i}", attributes=rec)
    for k, text in enumerate(_conditions()):
        engine.add_rule(f"r{k}", "ticket", on="touch", when=text)
    ids = [f"T-{i % TICKETS}" for i in range(events)]
    fire = engine.fire
    start = time.perf_counter()
    for id_ in ids:
        fire(id_, "touch")
    return events / (time.perf_counter() - start)


def bench_native(events):
    """
    Returns events per second of the 50 conditions in a ConditionSet.
    """
    cs = crmflow.rules.ConditionSet(
        _conditions(), {"amount": "decimal", "tier": "text"}
    )
    records = _records()
    passes = max(1, events // TICKETS)
    start = time.perf_counter()
    cs.count(records, passes=passes)
    return passes * TICKETS / (time.perf_counter() - start)


def bench_python_condition(calls):
    """
    Returns (calls per second of a Python condition in a ConditionSet,
    calls per second of bare C++-to-Python calls of the same function).
    """
    from crmflow import _core

    def no_op(record):
        return False

    records = _records()
    cs = crmflow.rules.ConditionSet([no_op], {"amount": "decimal"})
    passes = max(1, calls // TICKETS)
    start = time.perf_counter()
    cs.count(records, passes=passes)
    in_set = passes * TICKETS / (time.perf_counter() - start)
    n = passes * TICKETS
    start = time.perf_counter()
    _core.call_python_n(no_op, records[0], n)
    bare = n / (time.perf_counter() - start)
    return in_set, bare


def bench_rule_engine(events):
    """
    Returns events per second of the rule-engine package.
    """
    import rule_engine

    rules = [rule_engine.Rule(t) for t in _conditions()]
    records = _records()
    start = time.perf_counter()
    for i in range(events):
        rec = records[i % TICKETS]
        for r in rules:
            r.matches(rec)
    return events / (time.perf_counter() - start)


def bench_zen(events):
    """
    Returns events per second of the zen-engine package.
    """
    import zen

    exprs = [zen.compile_expression(t) for t in _conditions()]
    records = [
        {"amount": float(r["amount"]), "tier": r["tier"]} for r in _records()
    ]
    start = time.perf_counter()
    for i in range(events):
        rec = records[i % TICKETS]
        for e in exprs:
            e.evaluate(rec)
    return events / (time.perf_counter() - start)


def main():
    """
    Runs the measurements and prints them with the ratios.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = {
        "crmflow native": bench_native(args.events),
        "crmflow fire": bench_crmflow(args.events),
        "rule-engine": bench_rule_engine(args.events),
        "zen-engine": bench_zen(args.events),
    }
    in_set, bare = bench_python_condition(args.events)
    results["python condition"] = in_set
    results["bare python call"] = bare
    if args.json:
        print(json.dumps(results))
        return
    native = results["crmflow native"]
    print(f"{args.events:,} events x {RULES} conditions")
    for name in ("crmflow native", "crmflow fire", "rule-engine",
                 "zen-engine"):
        rate = results[name]
        print(f"{name:16s} {rate:12,.0f} events/s  "
              f"({1e9 / rate / RULES:8.1f} ns/condition)")
    print(f"native vs zen-engine:   {native / results['zen-engine']:6.1f}x "
          "(target >= 10x)")
    print(f"native vs rule-engine:  {native / results['rule-engine']:6.1f}x "
          "(target >= 50x)")
    print(f"fire vs zen-engine:     "
          f"{results['crmflow fire'] / results['zen-engine']:6.1f}x "
          "(fire includes the transition)")
    print(f"python condition {1e9 / in_set:8.1f} ns/call, bare C++-to-Python "
          f"call {1e9 / bare:8.1f} ns/call: {bare / in_set:.2f}x "
          "(target <= 2x)")


if __name__ == "__main__":
    main()
