"""
Bulk import from pandas: customers and transactions through crmflow's bulk
paths beside ``DataFrame.to_sql`` of the same frames, in the same run.

crmflow's paths do more than ``to_sql``: ``Engine.import_customers``
validates and normalises e-mails and phones and writes an identity row
per channel value; ``Engine.create_many`` checks every attribute against
the workflow and writes the transaction, its attribute rows and its
creation history row.  ``to_sql`` writes the frame's rows as they are
into one table.  The ratio is crmflow rows/s over to_sql rows/s.

Usage: python benchmarks/bench_bulk.py [--rows N] [--json]
"""

import argparse
import decimal
import json
import os
import sqlite3
import tempfile
import time

import numpy as np
import pandas as pd
import sqlalchemy as sa

import crmflow


def _frames(n):
    """
    Returns (customers, orders) frames of n rows each.
    """
    ids = pd.Series([f"C-{i:07d}" for i in range(n)], dtype=object)
    customers = pd.DataFrame(
        {
            "id": ids,
            "name": "Customer " + ids.str[2:],
            "email": "c" + ids.str[2:] + "@example.com",
            "phone": "+4930" + ids.str[2:],
        }
    )
    rng = np.random.default_rng(7)
    cents = rng.integers(100, 100000, n)
    orders = pd.DataFrame(
        {
            "id": pd.Series([f"SO-{i:07d}" for i in range(n)], dtype=object),
            "customer_id": ids,
            "amount": [decimal.Decimal(int(c)).scaleb(-2) for c in cents],
            "channel": np.where(cents % 2 == 0, "web", "shop").astype(object),
        }
    )
    return customers, orders


def _rate(rows, seconds):
    """
    Returns rows per second.
    """
    return rows / seconds if seconds > 0 else float("inf")


def main():
    """
    Runs the benchmark and prints rows/s and ratios.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    customers, orders = _frames(args.rows)
    results = {"rows": args.rows}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "crm.db")
        with crmflow.Engine(path) as crm:
            crm.register("sales_order")
            t0 = time.perf_counter()
            crm.import_customers(customers)
            results["crmflow_customers_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            crm.create_many(orders, kind="sales_order")
            results["crmflow_orders_s"] = time.perf_counter() - t0

        peer = os.path.join(tmp, "peer.db")
        db = sqlite3.connect(peer)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.close()
        engine = sa.create_engine("sqlite:///" + peer)
        plain_orders = orders.assign(amount=orders["amount"].astype(str))
        t0 = time.perf_counter()
        customers.to_sql("customers", engine, index=False, chunksize=50_000)
        results["to_sql_customers_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        plain_orders.to_sql("orders", engine, index=False, chunksize=50_000)
        results["to_sql_orders_s"] = time.perf_counter() - t0
        engine.dispose()
    n = args.rows
    for what in ("customers", "orders"):
        ours = _rate(n, results[f"crmflow_{what}_s"])
        theirs = _rate(n, results[f"to_sql_{what}_s"])
        results[f"crmflow_{what}_rows_per_s"] = ours
        results[f"to_sql_{what}_rows_per_s"] = theirs
        results[f"{what}_ratio"] = ours / theirs
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{n:,} rows per frame")
    for what, label in (("customers", "import_customers"),
                        ("orders", "create_many")):
        print(
            f"{what:<10} crmflow {label:<17}"
            f"{results[f'crmflow_{what}_rows_per_s']:>12,.0f} rows/s   "
            f"to_sql {results[f'to_sql_{what}_rows_per_s']:>12,.0f} rows/s"
            f"   ratio {results[f'{what}_ratio']:.2f}"
        )


if __name__ == "__main__":
    main()
