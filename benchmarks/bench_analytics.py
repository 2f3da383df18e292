"""
Benchmark of the analytics: directly-follows graph, time in state and
variants over synthetic logs of 1 or 10 million events, crmflow beside
pm4py and plain pandas, plus reading the log from CSV, in one run.

Each tool runs in its own child process so that its peak resident memory
(C++ included, which tracemalloc cannot see) is read from the kernel with
``os.wait4``.  What each tool does:

* crmflow: ``EventLog.from_csv``, then ``dfg()``, ``time_in_state()``,
  ``variants()``;
* pm4py: ``pandas.read_csv`` + ``pm4py.format_dataframe`` (pm4py's CSV
  path), then ``discover_dfg``, ``discover_performance_dfg`` (its
  counterpart of time between events) and ``get_variants``;
* pandas: ``read_csv`` + ``to_datetime``, then groupby/shift code.

Usage::

    python benchmarks/bench_analytics.py                 # 1 M events
    python benchmarks/bench_analytics.py --sizes 1 10    # 1 M and 10 M
    python benchmarks/bench_analytics.py --tools crmflow pandas

The synthetic log: cases of 4-16 events over 20 activities (a random walk
with a preferred successor, so variants repeat), one-second-resolution
ISO 8601 UTC timestamps, written once per size to a temporary CSV.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

__all__ = ["main"]


def make_csv(path: str, events: int, seed: int = 7) -> None:
    """
    Writes a synthetic event log of about ``events`` events to ``path``.
    """
    import pandas as pd

    rng = np.random.default_rng(seed)
    sizes = rng.integers(4, 17, size=events // 10 + 1)
    sizes = sizes[: np.searchsorted(np.cumsum(sizes), events) + 1]
    sizes[-1] -= int(sizes.sum()) - events
    sizes = sizes[sizes > 0]
    n = int(sizes.sum())
    case = np.repeat(np.arange(len(sizes)), sizes)
    first = np.zeros(n, dtype=bool)
    first[np.concatenate([[0], np.cumsum(sizes)[:-1]])] = True
    step = np.where(rng.random(n) < 0.7, 1, rng.integers(0, 20, n))
    act = np.cumsum(step) % 20
    starts = np.cumsum(first) - 1
    act = (act - act[np.flatnonzero(first)][starts]) % 20
    gaps = rng.exponential(3600, n).astype(np.int64) + 1
    base = rng.integers(1.6e9, 1.7e9, len(sizes))[starts]
    seconds = base + np.cumsum(gaps) - np.repeat(
        np.cumsum(gaps)[np.flatnonzero(first)], sizes)
    df = pd.DataFrame({
        "case_id": pd.Series(case).map("C{}".format),
        "activity": pd.Series(act).map("activity {}".format),
        "timestamp": pd.to_datetime(seconds, unit="s", utc=True).strftime(
            "%Y-%m-%dT%H:%M:%SZ"),
    })
    df.to_csv(path, index=False)


def _worker(tool: str, path: str) -> dict:
    """
    Runs one tool on the CSV and returns its timings in seconds.
    """
    out = {}
    t0 = time.perf_counter()
    if tool == "crmflow":
        from crmflow.analytics import EventLog

        log = EventLog.from_csv(path, progress=False)
        out["read"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        dfg = log.dfg()
        tis = log.time_in_state()
        var = log.variants()
        out["analytics"] = time.perf_counter() - t1
        out["edges"], out["variants"] = len(dfg), len(var)
        out["states"] = len(tis)
    elif tool == "pm4py":
        import contextlib
        import io
        import warnings

        import pandas as pd

        with warnings.catch_warnings(), \
                contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            import pm4py

            df = pd.read_csv(path)
            df = pm4py.format_dataframe(
                df, case_id="case_id", activity_key="activity",
                timestamp_key="timestamp")
            out["read"] = time.perf_counter() - t0
            t1 = time.perf_counter()
            dfg, _, _ = pm4py.discover_dfg(df)
            perf, _, _ = pm4py.discover_performance_dfg(df)
            var = pm4py.get_variants(df)
            out["analytics"] = time.perf_counter() - t1
        out["edges"], out["variants"] = len(dfg), len(var)
        out["states"] = len(perf)
    elif tool == "pandas":
        import pandas as pd

        df = pd.read_csv(path)
        df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
        out["read"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        df = df.sort_values(["case_id", "timestamp"], kind="stable")
        nxt = df.groupby("case_id", sort=False)["activity"].shift(-1)
        gap = (df.groupby("case_id", sort=False)["timestamp"].shift(-1)
               - df["timestamp"]).dt.total_seconds()
        pairs = pd.DataFrame({"a": df["activity"], "b": nxt, "gap": gap})
        dfg = pairs.dropna().groupby(["a", "b"])["gap"].agg(
            ["size", "mean"])
        tis = pairs.groupby("a")["gap"].agg(["mean", "median"])
        var = df.groupby("case_id", sort=False)["activity"].agg(
            tuple).value_counts()
        out["analytics"] = time.perf_counter() - t1
        out["edges"], out["variants"] = len(dfg), len(var)
        out["states"] = len(tis)
    else:
        raise SystemExit(f"unknown tool {tool}")
    return out


def _run_child(tool: str, path: str) -> dict:
    """
    Runs ``_worker`` in a child process; adds its peak RSS in MiB.
    """
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--worker", tool,
         "--csv", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout = proc.stdout.read()
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        return {"error": stderr.decode(errors="replace")[-400:]}
    result = json.loads(stdout.decode().strip().splitlines()[-1])
    result["peak_mib"] = usage.ru_maxrss / 1024  # Linux: KiB
    return result


def main(argv=None) -> None:
    """
    Parses arguments, runs every tool on every size and prints a table.
    """
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=float, nargs="+", default=[1],
                   help="log sizes in millions of events (default 1)")
    p.add_argument("--tools", nargs="+",
                   default=["crmflow", "pm4py", "pandas"])
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--csv", help=argparse.SUPPRESS)
    p.add_argument("--make", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.make:
        make_csv(args.csv, args.make)
        return
    if args.worker:
        print(json.dumps(_worker(args.worker, args.csv)))
        return

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    for size in args.sizes:
        events = int(size * 1_000_000)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "log.csv")
            t = time.perf_counter()
            # In a child: Linux carries a parent's peak RSS over into the
            # ru_maxrss of children it forks, so the parent stays small.
            subprocess.run([sys.executable, os.path.abspath(__file__),
                            "--make", str(events), "--csv", path],
                           check=True)
            mib = os.path.getsize(path) / 2**20
            print(f"\n{events:,} events, CSV {mib:.0f} MiB "
                  f"(generated in {time.perf_counter() - t:.1f} s)")
            print(f"{'tool':8} {'read s':>8} {'analytics s':>12} "
                  f"{'peak MiB':>9} {'edges':>6} {'variants':>9}")
            results = {}
            for tool in args.tools:
                r = _run_child(tool, path)
                results[tool] = r
                if "error" in r:
                    print(f"{tool:8} failed: {r['error']}")
                    continue
                print(f"{tool:8} {r['read']:8.2f} {r['analytics']:12.3f} "
                      f"{r['peak_mib']:9.0f} {r['edges']:6d} "
                      f"{r['variants']:9d}")
            c = results.get("crmflow", {})
            for other in ("pm4py", "pandas"):
                o = results.get(other, {})
                if "read" in c and "read" in o:
                    print(
                        f"crmflow vs {other}: analytics "
                        f"{o['analytics'] / c['analytics']:.0f}x faster, "
                        f"read {o['read'] / c['read']:.1f}x faster, peak "
                        f"memory {c['peak_mib'] / o['peak_mib']:.2f} of "
                        f"{other}'s")


if __name__ == "__main__":
    main()
