"""
Approvals: what an approval request costs a sales order.

Three workloads on the same engine, each over N orders, on the memory
store and on a SQLite file (WAL, one store transaction per call):

* ``plain``: ``create`` + ``fire("submit")`` with no matrix set, the
  baseline.
* ``opened``: the same with a matrix whose band for the amount has one
  step, so entering ``pending_approval`` computes the chain and writes a
  request and its step rows in the submit's transaction.
* ``approve``: ``approvals.approve`` on each of those orders, which
  records the decision and fires ``approve`` in one transaction.
* ``automatic`` (extra): create + submit of orders in the empty band,
  approved at once through the automatic-approval rule.

Figures are orders per second and the ratios to ``plain`` of the same
store; compare ratios within one run (shared machines are noisy).

Usage: python benchmarks/bench_approvals.py [--orders N] [--json]
"""

import argparse
import decimal
import json
import os
import tempfile
import time

import crmflow
from crmflow.approvals import ApprovalMatrix, Band, Step

D = decimal.Decimal

ORDER = {
    "name": "sales_order",
    "version": 1,
    "states": [
        {"name": "draft", "role": "initial"},
        {"name": "pending_approval"},
        {"name": "approved", "role": "terminal"},
    ],
    "attributes": [{"name": "amount", "type": "decimal"}],
    "transitions": [
        {"event": "submit", "from": "draft", "to": "pending_approval"},
        {"event": "approve", "from": "pending_approval", "to": "approved"},
        {"event": "reject", "from": "pending_approval", "to": "draft"},
    ],
}

MATRIX = ApprovalMatrix("sales_order", [
    Band("small", "amount <= 1000"),
    Band("medium", "amount <= 10000", [Step("manager", ["mia"])]),
    Band("large", "true", [Step("manager", ["mia"]),
                           Step("director", ["dan"])]),
])


def _rate(n, fn):
    """
    Returns calls per second of ``fn(i)`` for i in range(n).
    """
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - start)


def run(path, n):
    """
    Returns {workload: orders per second} on the store at ``path``
    (None: memory).
    """
    engine = crmflow.Engine(path)
    engine.register(ORDER)

    def submit(prefix, amount):
        def one(i):
            engine.create("sales_order", f"{prefix}-{i}",
                          attributes={"amount": amount})
            engine.fire(f"{prefix}-{i}", "submit")
        return one

    out = {"plain": _rate(n, submit("P", D("5000")))}
    engine.approvals.set_matrix(MATRIX)
    out["opened"] = _rate(n, submit("A", D("5000")))
    out["approve"] = _rate(n, lambda i: engine.approvals.approve(
        f"A-{i}", "mia"))
    out["automatic"] = _rate(n, submit("S", D("10")))
    # Check the work was done, so a broken hook cannot look fast.
    states = {engine.get(f"{p}-{n - 1}").state for p in ("A", "S")}
    assert states == {"approved"}, states
    engine.close()
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--orders", type=int, default=5000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in (("memory", None),
                           ("sqlite", os.path.join(tmp, "bench.db"))):
            results[name] = run(path, args.orders)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for name, r in results.items():
        base = r["plain"]
        print(
            f"{name}: create+submit without approvals {base:,.0f}/s; "
            f"with a request opened {r['opened']:,.0f}/s "
            f"({r['opened'] / base:.2f}x); approve {r['approve']:,.0f}/s "
            f"({r['approve'] / base:.2f}x); automatic approval "
            f"{r['automatic']:,.0f}/s ({r['automatic'] / base:.2f}x)"
        )


if __name__ == "__main__":
    main()
