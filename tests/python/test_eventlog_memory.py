"""
Reading an event log streams: memory follows the events kept, not the
file's text.

The test writes a gzip CSV of 400,000 events whose rows carry a long
free-text column that the log does not keep (as real exports carry
descriptions and comments), about 240 MB of text in a file of a few MB.
A child process reads it with ``EventLog.from_csv`` and reports the growth
of its peak resident size (``VmHWM`` in ``/proc/self/status``) over the
read.  A reader that held the text, or a fifth of it, fails the bounds:
the growth must stay under a fifth of the text and under 64 bytes an
event plus 24 MiB.  The kept columns are an activity id and a time, 12
bytes an event, plus the case ids; measured: 22 MiB, of which about
13 MiB does not depend on the size of the log.  The event and case counts
and the directly-follows pairs are checked against what the test wrote.
"""

import gzip
import json
import os
import subprocess
import sys
import textwrap

import pytest

import crmflow

CASES = 40_000
EVENTS_PER_CASE = 10
EVENTS = CASES * EVENTS_PER_CASE
NOTE = "the customer wrote again about the parcel; " * 13  # 572 chars
BYTES_PER_EVENT = 64
FIXED_ALLOWANCE = 24 * 2**20

CHILD = textwrap.dedent("""
    import json, sys
    import crmflow

    def hwm():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmHWM")

    before = hwm()
    log = crmflow.EventLog.from_csv(sys.argv[1], case="case",
                                    activity="activity", time="time",
                                    progress=False)
    after = hwm()
    counts = log.dfg()
    print(json.dumps({
        "growth": after - before, "events": log.num_events,
        "cases": log.num_cases, "pairs": int(counts["count"].sum()),
        "edges": len(counts),
    }))
""")


def _write_log(path):
    """
    Writes cases of ten events a minute apart, activities a0..a9 in order,
    with the unkept note; returns the size of the uncompressed text.
    """
    text = 0
    with gzip.open(path, "wt", encoding="utf-8", newline="",
                   compresslevel=1) as f:
        header = "case,activity,time,note\n"
        f.write(header)
        text += len(header)
        for c in range(CASES):
            rows = []
            for i in range(EVENTS_PER_CASE):
                minute = c % 1440
                rows.append(f"C{c:06d},a{i},2026-03-01T{minute // 60:02d}:"
                            f"{minute % 60:02d}:{i:02d}Z,\"{NOTE}{c}\"\n")
            chunk = "".join(rows)
            f.write(chunk)
            text += len(chunk)
    return text


@pytest.mark.skipif(not os.path.exists("/proc/self/status"),
                    reason="needs /proc/self/status (Linux)")
def test_reading_a_log_grows_with_events_not_text(tmp_path):
    """
    400,000 events under 240 MB of text: every event and case is read,
    and the peak resident size grows by less than a fifth of the text and
    by at most 64 bytes an event plus 24 MiB.
    """
    path = tmp_path / "notes.csv.gz"
    text_bytes = _write_log(path)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(os.path.dirname(crmflow.__file__))]
        + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])

    done = subprocess.run([sys.executable, "-c", CHILD, str(path)],
                          capture_output=True, text=True, timeout=600,
                          check=False, env=env)

    assert 0 == done.returncode, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"\nread {EVENTS} events from {text_bytes / 2**20:.0f} MiB of "
          f"text: peak RSS growth {got['growth'] / 2**20:.1f} MiB")
    # Ten activities in order per case: nine directly-follows pairs each,
    # on nine distinct edges a0->a1 .. a8->a9.
    assert (EVENTS, CASES, CASES * 9, 9) == (
        got["events"], got["cases"], got["pairs"], got["edges"])
    assert text_bytes > 200 * 2**20
    assert got["growth"] < text_bytes / 5
    assert got["growth"] <= BYTES_PER_EVENT * EVENTS + FIXED_ALLOWANCE
