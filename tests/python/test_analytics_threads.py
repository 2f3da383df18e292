"""
The scans of a large event log run on several threads: the figures must
be the same with one thread and with several, and equal to pandas code
written here.
"""

import numpy as np
import pandas as pd
import pytest

import crmflow
from crmflow import _core


@pytest.fixture(scope="module")
def big_log():
    """
    About 200,000 events in 20,000 cases over 12 activities: past the
    65k events from which a scan is split between threads.
    """
    rng = np.random.default_rng(42)
    sizes = rng.integers(1, 20, size=20_000)
    case = np.repeat(np.arange(len(sizes)), sizes)
    act = rng.integers(0, 12, size=len(case))
    # Strictly increasing times within a case, so pandas' order is the log's.
    gaps = rng.integers(1, 7200, size=len(case))
    seconds = 1_700_000_000 + np.cumsum(gaps)
    df = pd.DataFrame({
        "case_id": pd.Series(case).map("K{:05d}".format),
        "activity": pd.Series(act).map("step {}".format),
        "timestamp": pd.to_datetime(seconds, unit="s", utc=True),
    })
    return df


@pytest.fixture
def threads():
    yield
    _core.set_worker_threads(0)


def test_same_figures_with_one_and_several_threads(big_log, threads):
    results = {}
    for n in (1, 2, 3):
        _core.set_worker_threads(n)
        assert _core.worker_threads() == n
        log = crmflow.EventLog.from_dataframe(big_log)
        results[n] = (log.dfg(), log.time_in_state(), log.variants())
    for n in (2, 3):
        for mine, one in zip(results[n], results[1]):
            pd.testing.assert_frame_equal(mine, one)


def test_figures_equal_pandas(big_log, threads):
    _core.set_worker_threads(2)
    log = crmflow.EventLog.from_dataframe(big_log)
    df = big_log
    nxt = df.groupby("case_id")["activity"].shift(-1)
    gap = (df.groupby("case_id")["timestamp"].shift(-1)
           - df["timestamp"]).dt.total_seconds()
    pairs = pd.DataFrame({"a": df["activity"], "b": nxt, "gap": gap}).dropna()
    expected = pairs.groupby(["a", "b"])["gap"].agg(["size", "mean"])
    dfg = log.dfg().set_index(["from", "to"]).sort_index()
    assert len(dfg) == len(expected)
    assert (dfg["count"].to_numpy() == expected["size"].to_numpy()).all()
    np.testing.assert_allclose(dfg["duration_mean"].to_numpy(),
                               expected["mean"].to_numpy(), rtol=1e-12)
    seqs = df.groupby("case_id", sort=True)["activity"].agg(tuple)
    first = seqs.groupby(seqs).apply(lambda s: s.index[0])
    counts = seqs.value_counts()
    var = log.variants()
    assert len(var) == len(counts)
    got = dict(zip(var["variant"], var["count"]))
    assert got == counts.to_dict()
    assert dict(zip(var["variant"], var["example_case"])) == first.to_dict()
    # Count descending, then by sequence of names.
    keys = list(zip(-var["count"], var["variant"]))
    assert keys == sorted(keys)


@pytest.mark.parametrize("bad", [-1, 65, 10**20])
def test_thread_count_out_of_range(bad, threads):
    with pytest.raises((crmflow.InvalidArgumentError, TypeError)) as info:
        _core.set_worker_threads(bad)
    if isinstance(info.value, crmflow.InvalidArgumentError):
        assert "out of range" in str(info.value)
