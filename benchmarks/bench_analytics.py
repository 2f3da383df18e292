"""
Benchmark of the analytics: directly-follows graph, time in state and
variants over synthetic logs of 1 or 10 million events, crmflow beside
pm4py and plain pandas, plus reading the log from CSV, in one run.

Each tool runs in its own child process, which imports its libraries
first (timed apart, as "import") and reports its own peak resident memory
(``VmHWM`` of ``/proc/self/status``: C++ included, which tracemalloc
cannot see, and nothing of the parent's, which ``ru_maxrss`` of a child
would include).  What each tool does:

* crmflow: ``crmflow.EventLog.from_csv``, then the public measures
  ``dfg()``, ``time_in_state()``, ``variants()`` (DataFrames, so pandas is
  imported for the results; its import is timed as "import", like the
  peers' imports);
* crmflow-core: the same read, then the same three figures as the core
  returns them (dicts of numpy arrays and lists, what the DataFrames are
  built from), without building DataFrames;
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

__all__ = ["main"]


def make_csv(path: str, events: int, seed: int = 7) -> None:
    """
    Writes a synthetic event log of about ``events`` events to ``path``.
    """
    import numpy as np
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


def _peak_mib() -> float:
    """
    Returns this process's peak resident memory in MiB (Linux VmHWM).
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _worker(tool: str, path: str) -> dict:
    """
    Runs one tool on the CSV and returns its timings in seconds.
    """
    out = {}
    t0 = time.perf_counter()
    if tool in ("crmflow", "crmflow-core"):
        import crmflow

        # crmflow imports its submodules on first use: load the event
        # log's now, so that its import is timed as import, not as read.
        crmflow.EventLog

        if tool == "crmflow":
            # The measures return DataFrames: pandas is part of the cost,
            # its import is timed with the others'.
            import pandas  # noqa: F401
        out["import"] = time.perf_counter() - t0
        out["pandas"] = "pandas" in sys.modules
        t0 = time.perf_counter()
        log = crmflow.EventLog.from_csv(path, progress=False)
        out["read"] = time.perf_counter() - t0
        t1, c1 = time.perf_counter(), time.process_time()
        if tool == "crmflow":
            measures = (log.dfg, log.time_in_state, log.variants)
        else:
            measures = (log._core.dfg, log._core.time_in_activity,
                        log._core.variants)
        parts = []
        for f in measures:
            t = time.perf_counter()
            parts.append(f())
            out[f"t_{f.__name__}"] = time.perf_counter() - t
        out["analytics"] = time.perf_counter() - t1
        out["analytics_cpu"] = time.process_time() - c1
        dfg, tis, var = parts
        if tool == "crmflow":
            out["edges"], out["variants"] = len(dfg), len(var)
            out["states"] = len(tis)
        else:
            out["edges"] = len(dfg["edges"]["from"])
            out["variants"] = len(var["count"])
            out["states"] = len(tis["activity"])
        out["pandas"] = out["pandas"] or "pandas" in sys.modules
    elif tool == "pm4py":
        import contextlib
        import io
        import warnings

        with warnings.catch_warnings(), \
                contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            import pandas as pd
            import pm4py

            out["import"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            df = pd.read_csv(path)
            df = pm4py.format_dataframe(
                df, case_id="case_id", activity_key="activity",
                timestamp_key="timestamp")
            out["read"] = time.perf_counter() - t0
            t1, c1 = time.perf_counter(), time.process_time()
            dfg, _, _ = pm4py.discover_dfg(df)
            t2 = time.perf_counter()
            perf, _, _ = pm4py.discover_performance_dfg(df)
            t3 = time.perf_counter()
            var = pm4py.get_variants(df)
            t4 = time.perf_counter()
            out["analytics"] = t4 - t1
            out["analytics_cpu"] = time.process_time() - c1
            out.update(t_dfg=t2 - t1, t_time_in_state=t3 - t2,
                       t_variants=t4 - t3)
        out["edges"], out["variants"] = len(dfg), len(var)
        out["states"] = len(perf)
    elif tool == "pandas":
        import pandas as pd

        out["import"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        df = pd.read_csv(path)
        df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
        out["read"] = time.perf_counter() - t0
        t1, c1 = time.perf_counter(), time.process_time()
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
        out["analytics_cpu"] = time.process_time() - c1
        out["edges"], out["variants"] = len(dfg), len(var)
        out["states"] = len(tis)
    else:
        raise SystemExit(f"unknown tool {tool}")
    out["peak_mib"] = _peak_mib()
    return out


def _run_child(tool: str, path: str) -> dict:
    """
    Runs ``_worker`` in a child process and returns what it reported.
    """
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--worker", tool,
         "--csv", path], capture_output=True)
    if proc.returncode != 0:
        return {"error": proc.stderr.decode(errors="replace")[-400:]}
    return json.loads(proc.stdout.decode().strip().splitlines()[-1])


def main(argv=None) -> None:
    """
    Parses arguments, runs every tool on every size and prints a table.
    """
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=float, nargs="+", default=[1],
                   help="log sizes in millions of events (default 1)")
    p.add_argument("--tools", nargs="+",
                   default=["crmflow", "crmflow-core", "pm4py", "pandas"])
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
            print(f"{'tool':12} {'import s':>8} {'read s':>7} "
                  f"{'analytics s':>11} {'peak MiB':>8} {'edges':>6} "
                  f"{'variants':>8}  pandas loaded")
            results = {}
            for tool in args.tools:
                r = _run_child(tool, path)
                results[tool] = r
                if "error" in r:
                    print(f"{tool:12} failed: {r['error']}")
                    continue
                loaded = r.get("pandas", tool != "crmflow-core")
                print(f"{tool:12} {r['import']:8.2f} {r['read']:7.2f} "
                      f"{r['analytics']:11.4f} {r['peak_mib']:8.0f} "
                      f"{r['edges']:6d} {r['variants']:8d}  "
                      f"{'yes' if loaded else 'no'}")
            for tool, r in results.items():
                if "t_variants" in r:
                    split = ", ".join(
                        f"{k[2:]} {v:.4f}" for k, v in r.items()
                        if k.startswith("t_"))
                    split += f"; CPU {r['analytics_cpu']:.4f}"
                    print(f"{tool:12} analytics split (s): {split}")
            for tool in ("crmflow", "crmflow-core"):
                r = results.get(tool, {})
                if "read" in r:
                    total = r["import"] + r["read"] + r["analytics"]
                    print(f"{tool:12} shares of import+read+analytics "
                          f"{total:.2f} s: import "
                          f"{r['import'] / total:.0%}, read "
                          f"{r['read'] / total:.0%}, analytics "
                          f"{r['analytics'] / total:.0%}")
            keys = ("import", "read", "analytics")
            for mine in ("crmflow", "crmflow-core"):
                c = results.get(mine, {})
                for other in ("pm4py", "pandas"):
                    o = results.get(other, {})
                    if "read" in c and "read" in o:
                        print(
                            f"{mine} vs {other}: analytics "
                            f"{o['analytics'] / c['analytics']:.0f}x "
                            f"faster, read {o['read'] / c['read']:.1f}x "
                            f"faster, peak memory "
                            f"{c['peak_mib'] / o['peak_mib']:.2f} of "
                            f"{other}'s, import+read+analytics "
                            f"{sum(o[k] for k in keys) / sum(c[k] for k in keys):.0f}x "
                            "faster; analytics CPU time "
                            f"{o['analytics_cpu'] / c['analytics_cpu']:.0f}x "
                            "less")


if __name__ == "__main__":
    main()
