"""
Rule evaluation: events against 50 rules in crmflow and its peers.

Each event fires ``touch`` (an internal transition) on one of 1,000
tickets whose attributes ``amount`` (decimal) and ``tier`` (text) vary;
50 stored rules watch that event with the conditions
``amount > K and tier == 'gold'`` (K = 0, 20, ..., 980) and no actions, so
every event evaluates all 50 conditions and traces them.  The same 50
conditions are evaluated on the same records by

* the ``rule-engine`` package (``Rule(text).matches(record)``),
* the ``zen-engine`` package (``zen.compile_expression(text)`` once, then
  ``evaluate(record)``).

crmflow's figure includes firing the event (history row, version) from
Python on the memory store; the peers only evaluate.  Figures are events
per second; compare ratios within one run (shared machines are noisy).

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
    Runs the three measurements and prints them.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = {
        "crmflow": bench_crmflow(args.events),
        "rule-engine": bench_rule_engine(args.events),
        "zen-engine": bench_zen(args.events),
    }
    if args.json:
        print(json.dumps(results))
        return
    for name, rate in results.items():
        ratio = rate / results["crmflow"]
        print(f"{name:12s} {rate:12,.0f} events/s  ({ratio:.2f}x crmflow)")


if __name__ == "__main__":
    main()
