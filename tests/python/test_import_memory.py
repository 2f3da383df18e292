"""
A 2,000,000-event import in bounded memory.

The importer streams its CSV and keeps each planned event as a fixed-size
record (time, line, event, case, interned actor and payload: 32 bytes,
plus a 4-byte index when grouping by case), each case as a small record
with its id interned once.  So the peak memory of an import grows with
the number of events and cases, not with the size of the file's text.

The test writes a log of 200,000 cases x 10 events with plain Python,
each row carrying a free-text comment the mapping does not use (as real
exports carry many columns), about 200 MB of CSV text; it imports the log
into a SQLite file in a child process and reads the child's peak resident
size (``VmHWM`` in ``/proc/self/status``) before and after the import.

The bound asserted is 60 bytes per event plus 32 MiB for everything else
(SQLite's page cache, the engine's bounded transaction cache, allocator
slack), and the growth must also stay below the size of the CSV text.
Measured on the 2-core development machine (loaded by other builds): a
growth of 86 MB for the 2M events, 43 bytes per event, against 113 bytes
of text per event; the importer that kept every event's text grew by
364 MB (182 bytes per event) and fails both limits.  The import took
110 to 130 s there (one SQLite transaction, 2M history rows).  The result is checked with SQL counts computed
independently of the importer's summary.
"""

import json
import os
import sqlite3
import subprocess
import sys
import textwrap

import pytest

import crmflow

CASES = 200_000
EVENTS_PER_CASE = 10
EVENTS = CASES * EVENTS_PER_CASE
ACTORS = 50
# The asserted bound on the peak growth of resident memory.
BYTES_PER_EVENT = 60
FIXED_ALLOWANCE = 32 * 2**20

FLOW = {
    "name": "chain",
    "states": (
        [{"name": "s0", "role": "initial"}]
        + [{"name": f"s{i}"} for i in range(1, EVENTS_PER_CASE - 1)]
        + [{"name": f"s{EVENTS_PER_CASE - 1}", "role": "terminal"}]
    ),
    "transitions": [
        {"event": f"step{i}", "from": f"s{i - 1}", "to": f"s{i}"}
        for i in range(1, EVENTS_PER_CASE)
    ],
}

# Runs in the child: imports the log and prints the figures as JSON.
CHILD = textwrap.dedent("""
    import json, sys, time
    import crmflow

    def hwm():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmHWM")

    db, csv, flow = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    engine = crmflow.Engine(db)
    engine.register(flow)
    before = hwm()
    started = time.perf_counter()
    summary = engine.import_event_log(
        csv, kind="chain", case="case", activity="activity", time="time",
        actor="actor")
    seconds = time.perf_counter() - started
    after = hwm()
    engine.close()
    print(json.dumps({
        "growth": after - before, "seconds": seconds,
        "rows": summary.rows, "created": summary.created,
        "applied": summary.events_applied,
        "rejects": len(summary.rejects),
    }))
""")


def _write_log(path):
    """
    Writes the log case by case, events one second apart; the first
    activity of each case is the creation.  The comment column is not
    mapped: its text must cost the import nothing.
    """
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("case,activity,time,actor,comment\n")
        base = 1_767_225_600  # 2026-01-01T00:00:00Z
        for c in range(CASES):
            case = f"ORD-{c:07d}"
            lines = []
            for i in range(EVENTS_PER_CASE):
                act = "create" if i == 0 else f"step{i}"
                t = base + c * 60 + i
                hh, rest = divmod(t % 86400, 3600)
                mm, ss = divmod(rest, 60)
                day = 1 + (t - base) // 86400
                stamp = f"2026-{1 + (day - 1) // 28:02d}-" \
                        f"{1 + (day - 1) % 28:02d}T{hh:02d}:{mm:02d}:" \
                        f"{ss:02d}Z"
                lines.append(
                    f"{case},{act},{stamp},agent{(c + i) % ACTORS},"
                    f"customer called about {case} step {i}; agent noted "
                    f"a follow-up\n")
            f.write("".join(lines))


@pytest.mark.skipif(not os.path.exists("/proc/self/status"),
                    reason="needs /proc/self/status (Linux)")
def test_two_million_events_import_in_bounded_memory(tmp_path):
    """
    Importing 2,000,000 events grows the peak resident size by at most
    60 bytes per event plus 32 MiB and by less than the CSV text itself,
    and stores every event (checked with SQL counts).
    """
    csv = tmp_path / "big.csv"
    db = tmp_path / "big.db"
    _write_log(csv)
    text_bytes = csv.stat().st_size

    # The child imports the very crmflow this process runs (a working
    # build's package of links included, hence no resolving of links).
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(os.path.dirname(crmflow.__file__))]
        + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(db), str(csv), json.dumps(FLOW)],
        capture_output=True, text=True, timeout=900, check=False, env=env,
    )

    assert 0 == done.returncode, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"\nimport of {EVENTS} events: {figures['seconds']:.1f} s, "
          f"peak RSS growth {figures['growth'] / 2**20:.1f} MiB "
          f"({figures['growth'] / EVENTS:.1f} B/event), "
          f"CSV text {text_bytes / 2**20:.1f} MiB")
    assert (EVENTS, CASES, 0) == (
        figures["rows"], figures["created"], figures["rejects"])
    assert EVENTS - CASES == figures["applied"]
    assert figures["growth"] <= BYTES_PER_EVENT * EVENTS + FIXED_ALLOWANCE
    assert figures["growth"] < text_bytes
    with sqlite3.connect(db) as con:
        txns = con.execute(
            "SELECT count(*), count(DISTINCT state) FROM transactions "
            "WHERE kind = 'chain'").fetchone()
        final = con.execute(
            "SELECT count(*) FROM transactions WHERE state = ?",
            (f"s{EVENTS_PER_CASE - 1}",)).fetchone()[0]
        history = con.execute("SELECT count(*) FROM history").fetchone()[0]
        actors = con.execute(
            "SELECT count(DISTINCT actor) FROM history").fetchone()[0]
    assert (CASES, 1) == txns
    assert CASES == final
    assert EVENTS == history
    assert ACTORS == actors
