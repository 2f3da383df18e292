"""
Durable SLA timers and business-time arithmetic, in one run.

1. Timers: N transactions are created on a SQLite file (``create_many``,
   no scheduler attached), N breach timers are armed through the bulk path
   (``ServiceDesk.arm_timers``, one transaction), then one ``tick`` past
   every due time processes them all: per timer it re-evaluates the SLA
   clock over the stored history and fires it in its own store
   transaction (mark fired + an sla_events row; WAL, synchronous=NORMAL).
   Reported: arm rate and timers processed per second.
2. Business time: ``Calendar.add`` (Mon-Fri 09:00-17:00 UTC with
   holidays), one call per start and vectorised (``add_many``), against
   ``pandas.offsets.CustomBusinessHour`` with the same hours and holidays
   (``start + k * offset``); the results are checked to agree first.

The machines are shared and noisy: compare the ratios, not the figures.

Usage: python benchmarks/bench_service.py [--timers N] [--adds N] [--json]
"""

import argparse
import datetime
import json
import os
import tempfile
import time

import numpy as np
import pandas as pd

import crmflow

UTC = datetime.timezone.utc
HOLIDAYS = ["2026-01-01", "2026-04-03", "2026-04-06", "2026-05-01",
            "2026-12-25", "2026-12-26"]
DEFINITION = {
    "name": "bench_request",
    "version": 1,
    "states": [{"name": "open", "role": "initial"},
               {"name": "resolved", "role": "terminal"}],
    "transitions": [{"event": "resolve", "from": "open", "to": "resolved"}],
}


def bench_timers(n):
    """
    Returns arm and tick figures for n timers.
    """
    folder = tempfile.mkdtemp(prefix="crmflow_bench_service_")
    path = os.path.join(folder, "timers.db")
    opened = pd.Timestamp("2026-02-02T09:00Z")
    with crmflow.Engine(path) as engine:
        engine.register(DEFINITION)
        ids = [f"R-{i:07d}" for i in range(n)]
        t0 = time.perf_counter()
        engine.create_many(pd.DataFrame({"id": ids, "time": opened}),
                           kind="bench_request", time="time")
        create_s = time.perf_counter() - t0
        desk = crmflow.ServiceDesk(engine, [crmflow.SlaPolicy(
            "resolution", "bench_request", datetime.timedelta(hours=4),
            met=["resolved"])])
        due = (opened + pd.Timedelta(hours=4)).tz_convert(None)
        due_us = np.full(n, due.value // 1000, dtype=np.int64)

        t0 = time.perf_counter()
        armed = desk.arm_timers(ids, "resolution", due_us)
        arm_s = time.perf_counter() - t0
        pending = desk.pending_count()
        t0 = time.perf_counter()
        summary = desk.tick(datetime.datetime(2026, 2, 3, tzinfo=UTC))
        tick_s = time.perf_counter() - t0
        left = desk.pending_count()
    for name in os.listdir(folder):
        os.remove(os.path.join(folder, name))
    os.rmdir(folder)
    assert armed == n == pending and summary.fired == n and left == 0
    return {"timers": n, "create_s": create_s, "arm_s": arm_s,
            "arm_per_s": n / arm_s, "tick_s": tick_s,
            "tick_per_s": n / tick_s}


def bench_adds(n):
    """
    Returns business-time additions per second, crmflow vs pandas.
    """
    cal = crmflow.Calendar("UTC", {"weekdays": "09:00-17:00"},
                           holidays=HOLIDAYS)
    offset = pd.offsets.CustomBusinessHour(start="09:00", end="17:00",
                                           holidays=HOLIDAYS)
    rng = np.random.default_rng(7)
    # Starts inside working hours (pandas rolls other starts differently).
    days = pd.bdate_range("2026-01-05", "2026-11-30", freq="C",
                          holidays=HOLIDAYS)
    starts = (days[rng.integers(0, len(days), n)]
              + pd.to_timedelta(rng.integers(0, 8 * 60, n), unit="min"))
    hours = 13
    starts_utc = [t.tz_localize("UTC").to_pydatetime() for t in starts]

    # Agreement first, on a sample.
    for t, tu in list(zip(starts, starts_utc))[:200]:
        want = (t + hours * offset).tz_localize("UTC")
        got = pd.Timestamp(cal.add(tu, datetime.timedelta(hours=hours)))
        assert want == got, (t, want, got)

    span = datetime.timedelta(hours=hours)
    t0 = time.perf_counter()
    for tu in starts_utc:
        cal.add(tu, span)
    crmflow_s = time.perf_counter() - t0
    values = starts.values
    t0 = time.perf_counter()
    cal.add_many(values, span)
    many_s = time.perf_counter() - t0
    m = min(n, 20000)
    t0 = time.perf_counter()
    for t in starts[:m]:
        t + hours * offset
    pandas_s = time.perf_counter() - t0
    pandas_rate = m / pandas_s
    return {"adds": n, "crmflow_per_s": n / crmflow_s,
            "crmflow_many_per_s": n / many_s, "pandas_per_s": pandas_rate,
            "pandas_adds": m,
            "ratio": (n / crmflow_s) / pandas_rate,
            "ratio_many": (n / many_s) / pandas_rate}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--timers", type=int, default=1_000_000)
    p.add_argument("--adds", type=int, default=200_000)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    adds = bench_adds(args.adds)
    timers = bench_timers(args.timers)
    if args.json:
        print(json.dumps({"timers": timers, "adds": adds}, indent=2))
        return
    print(f"timers: {timers['timers']:,} on SQLite "
          f"(create_many {timers['create_s']:.1f} s)")
    print(f"  arm (bulk)  {timers['arm_s']:8.2f} s "
          f"{timers['arm_per_s']:12,.0f} timers/s")
    print(f"  tick        {timers['tick_s']:8.2f} s "
          f"{timers['tick_per_s']:12,.0f} timers/s")
    print(f"business-time add, {adds['adds']:,} starts, 13 h, "
          "Mon-Fri 09-17 + holidays:")
    print(f"  crmflow add      {adds['crmflow_per_s']:12,.0f} /s")
    print(f"  crmflow add_many {adds['crmflow_many_per_s']:12,.0f} /s")
    print(f"  pandas CBH       {adds['pandas_per_s']:12,.0f} /s "
          f"({adds['pandas_adds']:,} adds)")
    print(f"  ratio: add {adds['ratio']:.0f}x, "
          f"add_many {adds['ratio_many']:.0f}x pandas")


if __name__ == "__main__":
    main()
