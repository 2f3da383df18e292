"""
Process mining for notebooks: a columnar event log, figures as pandas
DataFrames, conformance against a designed :class:`~crmflow.Workflow`,
discovery of a draft workflow, and what-if replays.

An :class:`EventLog` lives in C++ (``crmflow._core.EventLog``): cases,
activities, resources and attribute values are interned, timestamps are
int64 microseconds UTC, and the events of a case are ordered by (instant,
row in the input) with a stable sort.  Every measure runs in C++ with the
GIL released and comes back as a DataFrame with proper dtypes: counts are
``int64``, durations are seconds as nullable ``Float64`` (a statistic over
nothing is ``<NA>``, never NaN), times are ``datetime64[us, UTC]``.

Example::

    from crmflow.analytics import EventLog

    log = EventLog.from_xes("helpdesk.xes.gz")
    log.dfg().head()                 # from, to, count, duration_mean, ...
    log.variants().head()
    result = log.conformance(designed_workflow)
    result.fitness, result.deviations.head()
    draft = log.discover(min_count=50)
    crmflow.analytics.diff(designed_workflow, draft, basis="events")

What-if: :func:`what_if` replays one log against a baseline and a changed
:class:`Scenario` (a workflow plus Python guards, business rules, SLA
policies and team routing) and compares the outcome case by case and in
total (rules and SLA policies run in a fresh engine per scenario, see
:mod:`crmflow.whatif`).

Limitations: timestamps are kept to the microsecond; attribute values are
text (convert with pandas after :meth:`EventLog.to_dataframe`); progress
bars on reads need ``tqdm`` and measure bytes read through
``/proc/self/io`` (Linux), elsewhere no bar is shown.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import threading
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import numpy as np

from crmflow import _pandas as pd  # pandas on first use
from crmflow import _core
from crmflow._args import (
    _FIRST_MICROS,
    _LAST_MICROS,
    _check_str,
    _not_utf8,
    _path_arg,
)
from crmflow._errors import InvalidArgumentError, ParseError
from crmflow.workflow import Workflow

__all__ = [
    "ConformanceResult",
    "EventLog",
    "ReplayContext",
    "Scenario",
    "WhatIfResult",
    "WorkflowDiff",
    "campaign_response",
    "diff",
    "new_vs_returning",
    "repeat_purchase_rate",
    "satisfaction",
    "to_json",
    "what_if",
]

_ON_ERROR = ("raise", "collect")
_PERIODS = ("day", "week", "month")
_NAT = np.iinfo(np.int64).min
_STAT_NAMES = ("count", "mean", "median", "p90", "min", "max")
_PROGRESS_BYTES = 64 << 20


# --- Small conversions ------------------------------------------------------


def _floats(pair: Tuple[Any, Any]) -> pd.array:
    """
    Returns a (values, missing) pair from the core as a nullable Float64
    array: missing values are <NA>, never NaN.
    """
    values, missing = pair
    return pd.arrays.FloatingArray(
        np.asarray(values, dtype=np.float64), np.asarray(missing, dtype=bool)
    )


def _ints(values: Any) -> np.ndarray:
    """
    Returns ``values`` as an int64 array.
    """
    return np.asarray(values, dtype=np.int64)


def _times(micros: Any, missing: Any = None) -> pd.Series:
    """
    Returns int microseconds as ``datetime64[us, UTC]``; ``missing`` marks
    NaT.
    """
    raw = np.array(micros, dtype=np.int64)
    if missing is not None:
        raw[np.asarray(missing, dtype=bool)] = _NAT
    s = pd.Series(raw.view("datetime64[us]"))
    return s.dt.tz_localize("UTC")


def _stats(cols: Dict[str, Any], prefix: str) -> Dict[str, Any]:
    """
    Returns the duration statistic columns of a core result.
    """
    out: Dict[str, Any] = {}
    for name in _STAT_NAMES:
        key = prefix + name
        if name == "count":
            out[key] = _ints(cols[key])
        else:
            out[key] = _floats(cols[key])
    return out


def _strings(values: Sequence[str]) -> pd.Series:
    """
    Returns names as an object Series of str (empty lists included).
    """
    return pd.Series(list(values), dtype=object)


def _categorical(codes: Any, names: Sequence[str]) -> pd.Categorical:
    """
    Returns codes and their distinct names as a Categorical (-1: missing).
    """
    return pd.Categorical.from_codes(
        np.asarray(codes, dtype=np.int64),
        categories=pd.Index(list(names), dtype=object),
    )


def _check_columns(df: pd.DataFrame, names: Iterable[str]) -> None:
    """
    Raises InvalidArgumentError naming the first column missing from df.
    """
    have = [str(c) for c in df.columns]
    for name in names:
        if not isinstance(name, str):
            message = f"a column name must be a string (got " \
                f"{type(name).__name__})"
            raise InvalidArgumentError(message)
        if name not in df.columns:
            listed = ", ".join(have[:12]) + (", ..." if len(have) > 12 else "")
            message = f'unknown column "{name}" (expected one of {listed})'
            raise InvalidArgumentError(message)


def _factorize(series: pd.Series) -> Tuple[np.ndarray, List[str]]:
    """
    Returns codes (-1 for missing) and the distinct values as text.
    """
    try:
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
    except TypeError:
        message = f'column "{series.name}": cells must be text, numbers ' \
            "or times (got an unhashable value such as a list)"
        raise InvalidArgumentError(message) from None
    if any(isinstance(u, (bytes, bytearray)) for u in uniques):
        message = f'column "{series.name}": bytes cells (decode them to ' \
            "str first)"
        raise InvalidArgumentError(message)
    # str() one by one: numpy's str arrays drop trailing NUL characters,
    # which would merge "b\x00" with "b".  Whole floats (ints that pandas
    # turned into floats around a gap) read as the ints they were.
    names = [u if isinstance(u, str) else
             str(int(u)) if isinstance(u, float) and u.is_integer() else
             str(u) for u in uniques]
    return codes.astype(np.int64), names


# The log's own columns in to_dataframe(); attributes may not take them.
_OWN_COLUMNS = ("case_id", "activity", "time", "resource", "lifecycle",
                "row")


def _check_attribute_names(attributes: Sequence[Any]) -> None:
    """
    Raises InvalidArgumentError when an attribute would take the name of
    one of the log's own columns.
    """
    for a in attributes:
        if a in _OWN_COLUMNS:
            message = f'attribute "{a}" has the name of a column of the ' \
                f"log itself (rename it; reserved: {', '.join(_OWN_COLUMNS)})"
            raise InvalidArgumentError(message)


def _blank_missing(series: pd.Series) -> pd.Series:
    """
    Returns an optional column with empty texts as missing values, as the
    CSV reader reads empty cells.
    """
    if isinstance(series.dtype, pd.CategoricalDtype):
        # to_dataframe() gives categoricals: keep them, drop "" as a value.
        if "" in series.cat.categories:
            return series.cat.remove_categories([""])
        return series
    if series.dtype != object and not pd.api.types.is_string_dtype(
            series.dtype):
        return series
    return series.where(series.astype(object) != "", None)


def _label(value: Any) -> str:
    """
    Returns a row label for a message: 11, not np.int64(11); text quoted.
    """
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


def _case_list(cases: Any) -> List[str]:
    """
    Returns the ``cases`` argument of :meth:`EventLog.from_dataframe` as
    case ids: text (numbers are written as text, as in a case column).

    Raises:
        InvalidArgumentError: Not a list, or an id that is missing, empty
            or not valid UTF-8; the message names its position.
    """
    if isinstance(cases, (str, bytes)) or not isinstance(cases, Iterable):
        message = "cases must be a list of case ids (got " \
            f"{type(cases).__name__})"
        raise InvalidArgumentError(message)
    out = []
    for i, c in enumerate(cases):
        if isinstance(c, (int, np.integer)) and not isinstance(c, bool):
            c = str(c)
        out.append(_check_str(c, f"cases[{i}]"))
    return out


# Names of the ISO 8601 reading in time_format (pandas spells it ISO8601).
_ISO_NAMES = ("", "iso", "iso8601")


def _time_format(time_format: Any) -> str:
    """
    Returns a time_format argument as the core spells it: "iso" for ISO
    8601, else the format itself (fields as in :meth:`EventLog.from_csv`).
    """
    if not isinstance(time_format, str):
        message = "time_format must be a string (got " \
            f"{type(time_format).__name__})"
        raise InvalidArgumentError(message)
    return "iso" if time_format.lower() in _ISO_NAMES else time_format


def _as_micros(values: Any) -> np.ndarray:
    """
    Returns aware or naive datetimes (a Series) as int64 microseconds:
    UTC for aware ones, the wall clock for naive ones; ``_NAT`` for NaT.
    """
    if getattr(values.dt, "tz", None) is not None:
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    out = values.to_numpy(dtype="datetime64[us]").view(np.int64).copy()
    return out


def _micros(series: pd.Series, time_format: str, time_zone: str
            ) -> Tuple[np.ndarray, np.ndarray, Dict[int, str]]:
    """
    Returns a time column as int64 microseconds UTC, which values are
    present, and the reason each present value failed.

    ``_NAT`` marks missing values (NaN, None, NaT, blank text) and present
    values that cannot be read or lie outside years 1 to 9999 UTC.  Texts
    go through the CSV reader's parser with ``time_format`` (so both
    readers agree on every text); integers are microseconds UTC; aware
    datetimes are instants; naive datetimes and texts without an offset
    are read in ``time_zone``, by the CSV reader's rule for repeated and
    skipped hours.

    Raises:
        InvalidArgumentError: Float or boolean times, an unknown zone or a
            malformed format.
    """
    fmt = _time_format(time_format)
    # Checks the zone and the format even when no value needs them.
    _core.parse_times([], fmt, time_zone)
    dtype = series.dtype
    present = np.array(series.notna(), dtype=bool)
    reasons: Dict[int, str] = {}
    if pd.api.types.is_bool_dtype(dtype) or (
            pd.api.types.is_float_dtype(dtype) and present.any()):
        message = f'column "{series.name}": {dtype} times (expected ' \
            "datetimes, text, or int64 microseconds UTC; the nullable " \
            "Int64 dtype keeps missing values)"
        raise InvalidArgumentError(message)
    if pd.api.types.is_float_dtype(dtype):  # all missing
        out = np.full(len(series), _NAT, dtype=np.int64)
    elif pd.api.types.is_unsigned_integer_dtype(dtype):
        raw = series.to_numpy(dtype=np.uint64, na_value=0)
        out = np.where(raw > np.uint64(_LAST_MICROS), _NAT,
                       raw.astype(np.int64))
    elif pd.api.types.is_integer_dtype(dtype):
        out = series.to_numpy(dtype=np.int64, na_value=_NAT)
    elif pd.api.types.is_datetime64_any_dtype(dtype):
        out = _as_micros(series)
        if series.dt.tz is None:
            out = _core.localize_times(out, time_zone)
    else:
        values = series.astype(object)
        is_text = np.fromiter((isinstance(v, str) for v in values),
                              dtype=bool, count=len(values))
        out = np.full(len(values), _NAT, dtype=np.int64)
        text_at = np.flatnonzero(is_text)
        if len(text_at):
            texts = values.to_numpy()[text_at].tolist()
            blank = np.fromiter((not t.strip() for t in texts), dtype=bool,
                                count=len(texts))
            present[text_at[blank]] = False
            parsed, bad = _core.parse_times(texts, fmt, time_zone)
            out[text_at] = parsed
            for i, reason in bad:
                reasons[int(text_at[i])] = reason
        others = np.flatnonzero(present & ~is_text)
        if len(others):
            # datetime, Timestamp or date objects, each aware or naive.
            naive = np.zeros(len(others), dtype=bool)
            for j, i in enumerate(others.tolist()):
                out[i], naive[j] = _object_micros(values.iloc[i])
            out[others[naive]] = _core.localize_times(out[others[naive]],
                                                      time_zone)
    out = np.where(present, out, _NAT)
    out[(out != _NAT) & ((out < _FIRST_MICROS) | (out > _LAST_MICROS))] = _NAT
    for i in np.flatnonzero(present & (out == _NAT)).tolist():
        if i not in reasons:
            reasons[i] = f"time {_label(series.iloc[i])} out of range or " \
                "not a time (expected a time in years 1 to 9999 UTC)"
    return out, present, reasons


def _object_micros(value: Any) -> Tuple[int, bool]:
    """
    Returns a datetime-like cell as (microseconds, naive): UTC for an
    aware value, the wall clock for a naive one; ``_NAT`` for anything
    else (a number, a list).
    """
    import datetime

    if not isinstance(value, (datetime.datetime, datetime.date,
                              np.datetime64)):
        return _NAT, False
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, OverflowError):
        return _NAT, False
    naive = stamp.tzinfo is None
    if not naive:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    micros = stamp.to_datetime64().astype("datetime64[us]").view(np.int64)
    return int(micros), naive


def _period_start(micros: np.ndarray, period: str) -> np.ndarray:
    """
    Returns the UTC start of the day, week (Monday) or month of each time.
    """
    t = np.asarray(micros, dtype=np.int64).view("datetime64[us]")
    if period == "day":
        out = t.astype("datetime64[D]")
    elif period == "week":
        days = t.astype("datetime64[D]").view(np.int64)
        out = (days - (days + 3) % 7).view("datetime64[D]")
    else:
        out = t.astype("datetime64[M]").astype("datetime64[D]")
    return out.astype("datetime64[us]").view(np.int64)


def _check_period(period: str) -> str:
    if not isinstance(period, str) or period not in _PERIODS:
        period = period if isinstance(period, str) else type(period).__name__
        message = f'period "{period}" unknown (expected day, week or month)'
        raise InvalidArgumentError(message)
    return period


def _jsonable(value: Any) -> Any:
    """
    Returns ``value`` with pandas/numpy scalars, NA, NaN and infinities
    turned into plain JSON values (missing and non-finite become None).
    """
    if isinstance(value, pd.DataFrame):
        return [
            {str(k): _jsonable(v) for k, v in row.items()}
            for row in value.to_dict(orient="records")
        ]
    if isinstance(value, pd.Series):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def to_json(value: Any, indent: Optional[int] = None) -> str:
    """
    Returns a result (DataFrame, dict, list or result object with
    ``to_dict``) as strict JSON: no NaN or Infinity ever, missing values
    are ``null``, times ISO 8601.

    Args:
        value: What to export.
        indent: Passed to :func:`json.dumps`.
    """
    if hasattr(value, "to_dict") and not isinstance(
        value, (pd.DataFrame, pd.Series, dict)
    ):
        value = value.to_dict()
    return json.dumps(
        _jsonable(value), allow_nan=False, ensure_ascii=False, indent=indent
    )


# --- Progress ---------------------------------------------------------------


def _bytes_read() -> Optional[int]:
    """
    Returns the bytes this process has read so far (Linux), or None.
    """
    try:
        with open("/proc/self/io", "rb") as f:
            for line in f:
                if line.startswith(b"rchar:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _with_progress(work: Callable[[], Any], path: str, progress: Any) -> Any:
    """
    Runs ``work`` (a C++ read that releases the GIL) in a thread and shows
    a tqdm bar of the bytes read, when asked or when the file is large.
    """
    try:
        size = os.path.getsize(path)
    except OSError:
        size = 0
    show = progress if progress is not None else size >= _PROGRESS_BYTES
    if not show or size == 0 or _bytes_read() is None:
        return work()
    try:
        from tqdm.std import tqdm
    except ImportError:
        return work()
    box: Dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = work()
        except BaseException as e:  # re-raised in the caller's thread
            box["error"] = e

    start = _bytes_read() or 0
    thread = threading.Thread(target=run, daemon=True)
    bar = tqdm(
        total=size, unit="B", unit_scale=True, file=sys.stderr,
        desc=os.path.basename(path), leave=False,
    )
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.1)
            done = min(size, (_bytes_read() or start) - start)
            bar.n = max(bar.n, done)
            bar.refresh()
    finally:
        bar.close()
    if "error" in box:
        raise box["error"]
    return box["value"]


# --- The event log ----------------------------------------------------------


class EventLog:
    """
    A columnar event log (see the module docstring).  Build one with
    :meth:`from_csv`, :meth:`from_xes`, :meth:`from_dataframe` or
    :meth:`from_engine`; it is immutable.

    Attributes:
        rejects: Rows a reader skipped under ``on_error="collect"``, as a
            DataFrame (file, line, column, reason); empty otherwise.
    """

    def __init__(self, core: Any, rejects: Optional[pd.DataFrame] = None):
        """
        Wraps a ``_core.EventLog``; use the ``from_*`` constructors.
        """
        self._core = core
        # The rejects frame is built on first access, so that reading a
        # log and computing figures as columns never imports pandas.
        self._reject_frame = rejects
        self._reject_rows: Sequence[Tuple[Any, ...]] = ()
        self._columns: Optional[Dict[str, Any]] = None
        self._frame: Optional[pd.DataFrame] = None
        self._instances: Optional[Dict[str, Any]] = None
        # dfg() and time_in_state() come from one pass of the core over
        # the gaps between events (both are kept: a few hundred rows).
        self._follows: Optional[Dict[str, Any]] = None
        # "state" or "event" for a log made from an engine's history (what
        # its activities name), so that conformance reads it that way.
        self._engine_activity: Optional[str] = None
        self._engine_events: List[str] = []

    @property
    def rejects(self) -> pd.DataFrame:
        """
        Rows a reader skipped under ``on_error="collect"`` (file, line,
        column, reason); empty otherwise.
        """
        if self._reject_frame is None:
            self._reject_frame = _rejects(self._reject_rows)
        return self._reject_frame

    @rejects.setter
    def rejects(self, value: pd.DataFrame) -> None:
        self._reject_frame = value

    # Construction.

    @classmethod
    def from_csv(
        cls,
        path: Union[str, "os.PathLike[str]"],
        *,
        case: str = "case_id",
        activity: str = "activity",
        time: str = "timestamp",
        resource: Optional[str] = None,
        lifecycle: Optional[str] = None,
        attributes: Sequence[str] = (),
        time_format: str = "",
        time_zone: str = "UTC",
        on_error: str = "raise",
        delimiter: Optional[str] = None,
        progress: Optional[bool] = None,
        null_values: Sequence[str] = (),
    ) -> "EventLog":
        """
        Reads a CSV event log, plain or gzip, one row per event.

        Byte-order marks, ``,`` ``;`` tab or ``|`` delimiters (sniffed from
        the header unless given) and quoted fields with line breaks are
        handled; memory grows with the events kept.

        Args:
            path: The file.
            case: Column of the case id (required values).
            activity: Column of the activity (required values).
            time: Column of the timestamp (required values).
            resource: Column of the resource, optional.
            lifecycle: Column of the lifecycle transition (start,
                complete, ...), optional.
            attributes: Columns kept as text attributes.
            time_format: ``""``, ``"iso"`` or ``"ISO8601"`` for ISO 8601
                (offsets honoured), else a strptime-like format such as
                ``"%d/%m/%Y %H:%M"``.
            time_zone: IANA zone for times without offset.
            on_error: ``"raise"``: the first bad row fails the read with
                ``file:line:column: ...``; ``"collect"``: bad rows are
                skipped and listed in :attr:`rejects`.  Rows are never
                dropped silently.
            delimiter: One character; None sniffs it.
            progress: Show a progress bar (tqdm); None shows one for
                files over 64 MiB.
            null_values: Texts that mean "no value" (ServiceNow's
                ``"?"``, ``"NA"``): such a resource, lifecycle or attribute
                cell is missing, like an empty one, and such a case id,
                activity or time makes the row bad.

        Returns:
            The log.

        Raises:
            NotFoundError: The file does not exist.
            InvalidArgumentError: A mapped column is not in the header, the
                format or zone is unknown, or an option is malformed.
            ParseError: A bad row under ``on_error="raise"``.
        """
        path = _path_arg(path)
        if on_error not in _ON_ERROR:
            message = f'on_error "{on_error}" unknown (expected raise or ' \
                "collect)"
            raise InvalidArgumentError(message)
        for name, value in (("case", case), ("activity", activity),
                            ("time", time)):
            if not isinstance(value, str) or not value:
                raise InvalidArgumentError(f"{name} must be a column name")
        if isinstance(attributes, str):
            attributes = [attributes]
        _check_attribute_names(attributes)
        if isinstance(null_values, str):
            null_values = [null_values]
        nulls = [_check_str(v, f"null_values[{i}]")
                 for i, v in enumerate(null_values)]

        fmt = _time_format(time_format)

        def work() -> Any:
            return _core.EventLog.read_csv(
                path, case, activity, time, resource or "", lifecycle or "",
                list(attributes), fmt, time_zone, on_error,
                delimiter or "", nulls,
            )

        core, rejects = _with_progress(work, path, progress)
        log = cls(core)
        log._reject_rows = rejects
        if rejects:
            # Collected, not lost: say so where a notebook shows it.
            import logging

            logging.getLogger("crmflow").warning(
                "%s: %d rows rejected, %d events kept (see "
                "EventLog.rejects)", path, len(rejects), log.num_events)
        return log

    @classmethod
    def from_xes(
        cls,
        path: Union[str, "os.PathLike[str]"],
        *,
        progress: Optional[bool] = None,
    ) -> "EventLog":
        """
        Reads an XES file (plain or gzip), streaming.

        Traces become cases (empty traces: cases without events),
        ``concept:name`` the activity, ``time:timestamp`` the time,
        ``org:resource`` the resource, ``lifecycle:transition`` the
        lifecycle; other event attributes become text attributes.

        Args:
            path: The file.
            progress: As in :meth:`from_csv`.

        Raises:
            NotFoundError: The file does not exist.
            ParseError: Malformed XML or a missing required attribute
                (``file:line:column: ...``).
        """
        path = _path_arg(path)
        core = _with_progress(
            lambda: _core.EventLog.read_xes(path), path, progress
        )
        return cls(core)

    @classmethod
    def from_dataframe(
        cls,
        df: pd.DataFrame,
        *,
        case: str = "case_id",
        activity: str = "activity",
        time: str = "timestamp",
        resource: Optional[str] = None,
        lifecycle: Optional[str] = None,
        attributes: Sequence[str] = (),
        time_format: str = "",
        time_zone: str = "UTC",
        on_error: str = "raise",
        cases: Optional[Sequence[str]] = None,
    ) -> "EventLog":
        """
        Builds a log from a DataFrame with one row per event, without a
        Python loop over the rows.

        Args:
            df: The events.
            case, activity, time: Required columns.  Times may be
                datetimes (naive ones read in ``time_zone``), ints of
                microseconds UTC, or text, read by the same parser as
                :meth:`from_csv` so that both readers agree.
            resource, lifecycle: Optional columns; empty text is missing.
            attributes: Columns kept as text attributes (empty text and
                NaN are missing; whole floats such as 1.0 read as "1").
                The names case_id, activity, time, resource, lifecycle
                and row are the log's own columns and refused.
            time_format: For text times, as in :meth:`from_csv`: ``""``,
                ``"iso"`` or ``"ISO8601"`` for ISO 8601, else a format
                with the fields listed there.
            time_zone: IANA zone for naive times.
            on_error: ``"raise"`` or ``"collect"`` (see :meth:`from_csv`);
                rejects name the row position (line, 0-based) and the
                column position (1-based).
            cases: Every case id in order, including cases without events
                (optional).

        Returns:
            The log.

        Raises:
            InvalidArgumentError: An unknown column or option.
            ParseError: A missing or unparseable required value under
                ``on_error="raise"``; the message names row and column.
        """
        if not isinstance(df, pd.DataFrame):
            raise InvalidArgumentError("df must be a pandas DataFrame")
        if on_error not in _ON_ERROR:
            message = f'on_error "{on_error}" unknown (expected raise or ' \
                "collect)"
            raise InvalidArgumentError(message)
        if isinstance(attributes, str):
            attributes = [attributes]
        optional = [c for c in (resource, lifecycle) if c]
        _check_columns(df, [case, activity, time, *optional, *attributes])
        _check_attribute_names(attributes)
        strict = on_error == "raise"

        # Required values: find the bad rows once, vectorised.
        _check_str(time_zone, "time_zone")
        micros, present, reasons = _micros(df[time], time_format, time_zone)
        case_codes, case_names = _factorize(df[case])
        act_codes, act_names = _factorize(df[activity])
        empty_case = np.isin(
            case_codes, np.flatnonzero(np.asarray(case_names) == "")
        )
        empty_act = np.isin(
            act_codes, np.flatnonzero(np.asarray(act_names) == "")
        )
        problems = [
            (case, (case_codes < 0) | empty_case, "missing case id"),
            (activity, (act_codes < 0) | empty_act, "missing activity"),
            (time, ~present, "missing time"),
            (time, present & (micros == _NAT), None),  # reasons[row]
        ]
        bad = np.zeros(len(df), dtype=bool)
        reject_rows: List[Tuple[str, int, int, str]] = []
        positions = {c: i + 1 for i, c in enumerate(df.columns)}
        for column, mask, reason in problems:
            hits = np.flatnonzero(mask & ~bad)
            if len(hits) and strict:
                row = hits[0]
                why = reasons[row] if reason is None else reason
                message = f'row {_label(df.index[row])}, column "{column}": ' \
                    f"{why}"
                raise ParseError(message)
            for row in hits.tolist():
                reject_rows.append(
                    ("<DataFrame>", row, positions[column],
                     reasons[row] if reason is None else reason)
                )
            bad |= mask
        if bad.any():
            keep = ~bad
            df = df.loc[keep]
            micros = micros[keep]
            case_codes, case_names = _factorize(df[case])
            act_codes, act_names = _factorize(df[activity])

        res = (None, None)
        if resource:
            res = _factorize(_blank_missing(df[resource]))
        lc = (None, None)
        if lifecycle:
            lc = _factorize(_blank_missing(df[lifecycle]))
        attrs = [(str(a), *_factorize(_blank_missing(df[a])))
                 for a in attributes]
        rows = np.flatnonzero(~bad) if bad.any() else None
        core = _core.EventLog.from_codes(
            case_codes, case_names, act_codes, act_names, micros,
            res[0], res[1], lc[0], lc[1], rows, attrs,
            None if cases is None else _case_list(cases),
        )
        reject_rows.sort(key=lambda r: r[1])
        return cls(core, _rejects(reject_rows))

    @classmethod
    def from_engine(
        cls,
        engine: Any,
        kind: Optional[str] = None,
        *,
        activity: str = "state",
        include_internal: bool = True,
    ) -> "EventLog":
        """
        Builds a log from an engine's history.

        Args:
            engine: A :class:`crmflow.Engine`.
            kind: Only transactions of this kind (default all).
            activity: ``"state"`` (default): the activity is the state
                entered, so the creation row enters the initial state and
                time in activity reads as time in state; ``"event"``: the
                event name.
            include_internal: Keep internal transitions.

        Returns:
            The log; case = transaction id, resource = actor.

        Raises:
            InvalidArgumentError: ``activity`` is unknown.
        """
        if activity not in ("state", "event"):
            message = f'activity "{activity}" unknown (expected state or ' \
                "event)"
            raise InvalidArgumentError(message)
        history = engine.history(kind=kind)
        if not include_internal:
            history = history.loc[~history["internal"]]
        column = "to_state" if activity == "state" else "event"
        log = cls.from_dataframe(
            history, case="transaction_id", activity=column, time="time",
            resource="actor",
        )
        log._engine_activity = activity
        log._engine_events = (
            [str(e) for e in history["event"].unique()]
            if activity == "event" else []
        )
        return log

    # Whole log.

    @property
    def num_cases(self) -> int:
        """
        The number of cases, including cases without events.
        """
        return int(self._core.num_cases)

    @property
    def num_events(self) -> int:
        """
        The number of events.
        """
        return int(self._core.num_events)

    def __len__(self) -> int:
        return self.num_events

    def __repr__(self) -> str:
        return (
            f"<EventLog: {self.num_cases} cases, {self.num_events} events, "
            f"{self._num_rejects()} rejects>"
        )

    def _num_rejects(self) -> int:
        if self._reject_frame is None:
            return len(self._reject_rows)
        return len(self._reject_frame)

    def _cols(self) -> Dict[str, Any]:
        if self._columns is None:
            self._columns = self._core.to_columns()
        return self._columns

    @property
    def case_ids(self) -> List[str]:
        """
        Every case id in log order (cases without events included).
        """
        return list(self._cols()["case"][1])

    def _case_names(self) -> np.ndarray:
        return np.asarray(self._cols()["case"][1], dtype=object)

    def to_dataframe(self) -> pd.DataFrame:
        """
        Returns the events, by case then time: case_id, activity,
        resource, lifecycle (categoricals; missing is NaN in the category,
        never in a count), time (``datetime64[us, UTC]``), row (the input
        row) and one categorical column of text per attribute (an XES
        attribute named like one of those columns is ``attribute:NAME``).
        Cases without events cannot appear (see :attr:`case_ids`).
        """
        if self._frame is None:
            cols = self._cols()
            case_codes, case_names = cols["case"]
            frame = {
                "case_id": _categorical(case_codes, case_names),
                "activity": _categorical(*cols["activity"]),
                "resource": _categorical(*cols["resource"]),
                "lifecycle": _categorical(*cols["lifecycle"]),
                "time": _times(cols["time"]).array,
                "row": _ints(cols["row"]),
            }
            for name, codes, names in cols["attributes"]:
                # An XES attribute may carry one of the log's own names.
                if name in _OWN_COLUMNS:
                    name = f"attribute:{name}"
                frame[name] = _categorical(codes, names)
            self._frame = pd.DataFrame(frame, copy=False)  # fresh arrays
        return self._frame.copy()

    def to_csv(self, path: Union[str, "os.PathLike[str]"], *,
               delimiter: str = ",") -> None:
        """
        Writes the events as CSV (case_id, activity, timestamp, resource,
        lifecycle, then one column per attribute; RFC 4180 quoting).
        :meth:`from_csv` with ``resource="resource",
        lifecycle="lifecycle", attributes=[...]`` (the attribute names)
        reads it back; cases without events are not written.

        Raises:
            InvalidArgumentError: The path cannot be written.
        """
        self._core.to_csv(os.fspath(path), delimiter)

    # Measures.

    def _follows_result(self) -> Dict[str, Any]:
        # The log is immutable, so the figures are computed once.
        if self._follows is None:
            self._follows = self._core.follows()
        return self._follows

    def dfg(self) -> pd.DataFrame:
        """
        Returns the directly-follows graph: from, to, count and the time
        between the two events in seconds (duration_count, duration_mean,
        duration_median, duration_p90, duration_min, duration_max), by
        count descending.  Lifecycle is ignored (see
        :meth:`instance_dfg`).
        """
        return _dfg_frame(self._follows_result()["dfg"])

    def start_activities(self) -> pd.DataFrame:
        """
        Returns activity and count (cases starting with it), by count.
        """
        d = self._follows_result()["dfg"]["start"]
        return pd.DataFrame(
            {"activity": _strings(d["name"]), "count": _ints(d["count"])}
        )

    def end_activities(self) -> pd.DataFrame:
        """
        Returns activity and count (cases ending with it), by count.
        """
        d = self._follows_result()["dfg"]["end"]
        return pd.DataFrame(
            {"activity": _strings(d["name"]), "count": _ints(d["count"])}
        )

    def variants(self) -> pd.DataFrame:
        """
        Returns the variants: variant (tuple of activities; ``()`` for
        cases without events), length, count (cases), share of all cases
        and example_case, by count descending.
        """
        d = self._core.variants()
        counts = _ints(d["count"])
        total = int(counts.sum())
        share = counts / total if total else counts.astype(np.float64)
        return pd.DataFrame(
            {
                # Object arrays from the core, taken without a copy of
                # their 68k (at 1 M events) tuples and names.
                "variant": pd.Series(d["variant"], dtype=object,
                                     copy=False),
                "length": _ints(d["length"]),
                "count": counts,
                "share": share,
                "example_case": pd.Series(d["example_case"], dtype=object,
                                          copy=False),
            },
            # Fresh arrays: copying them into consolidated blocks would
            # touch the reference count of all 136k objects again.
            copy=False,
        )

    def time_in_state(self) -> pd.DataFrame:
        """
        Returns, per activity (or state), the time from each of its events
        to the next event of the case: activity, events, duration_count
        (events with a next one), duration_mean, duration_median,
        duration_p90, duration_min, duration_max (seconds).
        """
        d = self._follows_result()["time_in_activity"]
        return pd.DataFrame(
            {
                "activity": _strings(d["activity"]),
                "events": _ints(d["events"]),
                **_stats(d, "duration_"),
            }
        )

    def state_durations(self) -> pd.DataFrame:
        """
        Returns one row per event that has a next event in its case:
        case_id, activity, start, end (the next event's time) and duration
        in seconds (float64, always defined): the data behind
        :meth:`time_in_state`, for distributions.
        """
        df = self.to_dataframe()
        nxt = df["case_id"].cat.codes.to_numpy()
        same = np.zeros(len(df), dtype=bool)
        same[:-1] = nxt[:-1] == nxt[1:]
        t = self._cols()["time"]
        t = np.asarray(t, dtype=np.int64)
        end = np.empty_like(t)
        end[:-1] = t[1:]
        if len(t):
            end[-1] = t[-1]
        out = pd.DataFrame(
            {
                "case_id": df["case_id"],
                "activity": df["activity"],
                "start": df["time"],
                "end": _times(end).array,
                "duration": (end - t) / 1e6,
            }
        )
        return out.loc[same].reset_index(drop=True)

    def case_durations(self) -> pd.DataFrame:
        """
        Returns per case: case_id, events, start, end and duration in
        seconds (cycle time, first to last event); cases without events
        have events 0 and <NA>/NaT elsewhere.
        """
        d = self._core.case_durations()
        cols = self._cols()
        sizes = _ints(cols["case_sizes"])
        t = np.asarray(cols["time"], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        empty = sizes == 0
        first = np.where(empty, 0, t[np.minimum(offsets[:-1], len(t) - 1)]
                         if len(t) else 0)
        last = np.where(empty, 0, t[np.maximum(offsets[1:] - 1, 0)]
                        if len(t) else 0)
        return pd.DataFrame(
            {
                "case_id": _strings(cols["case"][1]),
                "events": sizes,
                "start": _times(first, empty).array,
                "end": _times(last, empty).array,
                "duration": _floats(d["per_case"]),
            }
        )

    def case_duration_stats(self) -> Dict[str, Any]:
        """
        Returns the cycle-time statistics: cases (all, also empty ones),
        count (cases with events), mean, median, p90, min, max (seconds;
        None when no case has events).
        """
        d = self._core.case_durations()
        out: Dict[str, Any] = {"cases": int(d["cases"])}
        for name in _STAT_NAMES:
            if name == "count":
                out[name] = int(d["count"][0])
            else:
                values, missing = d[name]
                out[name] = None if missing[0] else float(values[0])
        return out

    def funnel(self, milestones: Sequence[str]) -> pd.DataFrame:
        """
        Returns the cases reaching ``milestones`` in order (a case reaches
        step k when it has milestone 0, a later milestone 1, ..., k):
        milestone, cases, conversion (of all cases, empty ones included),
        from_previous.  ``result.attrs["total_cases"]`` holds the base.

        Raises:
            InvalidArgumentError: ``milestones`` is empty.
            NotFoundError: A milestone is not an activity of the log.
        """
        if isinstance(milestones, str):
            milestones = [milestones]
        names = list(milestones) if hasattr(milestones, "__iter__") else None
        if names is None or not all(
                isinstance(m, str) and not _not_utf8(m) for m in names):
            message = "milestones must be a list of activity names"
            raise InvalidArgumentError(message)
        d = self._core.funnel(names)
        df = pd.DataFrame(
            {
                "milestone": _strings(d["milestone"]),
                "cases": _ints(d["cases"]),
                "conversion": np.asarray(d["conversion"], dtype=np.float64),
                "from_previous": np.asarray(
                    d["from_previous"], dtype=np.float64
                ),
            }
        )
        df.attrs["total_cases"] = int(d["total_cases"])
        return df

    def rework(self) -> pd.DataFrame:
        """
        Returns activities repeated within a case (a start/complete pair
        counts once): activity, cases, repetitions, by repetitions.
        ``result.attrs["cases_with_rework"]`` counts cases with any.
        """
        d = self._core.rework()
        df = pd.DataFrame(
            {
                "activity": _strings(d["activity"]),
                "cases": _ints(d["cases"]),
                "repetitions": _ints(d["repetitions"]),
            }
        )
        df.attrs["cases_with_rework"] = int(d["cases_with_rework"])
        return df

    def handovers(self, by: Optional[str] = None) -> pd.DataFrame:
        """
        Returns hand-overs between consecutive events of a case whose
        resource (or attribute ``by``, e.g. a team) changes: from, to,
        count, by count descending.  Events without a value are not
        counted.

        Args:
            by: An attribute column to use instead of the resource.

        Raises:
            InvalidArgumentError: ``by`` is not an attribute.
        """
        if by is None:
            d = self._core.handovers()
            return pd.DataFrame(
                {"from": _strings(d["from"]), "to": _strings(d["to"]),
                 "count": _ints(d["count"])}
            )
        df = self.to_dataframe()
        _check_columns(df, [by])
        if not isinstance(df[by].dtype, pd.CategoricalDtype):
            names = [c for c in df.columns
                     if isinstance(df[c].dtype, pd.CategoricalDtype)
                     and c not in ("case_id", "activity")]
            message = f'handovers by "{by}": not a resource or attribute ' \
                f"column (expected one of {', '.join(names) or 'none'})"
            raise InvalidArgumentError(message)
        codes = df[by].cat.codes.to_numpy().astype(np.int64)
        cases = df["case_id"].cat.codes.to_numpy()
        a, b = codes[:-1], codes[1:]
        mask = (cases[:-1] == cases[1:]) & (a >= 0) & (b >= 0) & (a != b)
        names = np.asarray(df[by].cat.categories, dtype=object)
        pairs = pd.DataFrame({"from": names[a[mask]], "to": names[b[mask]]})
        out = pairs.groupby(["from", "to"], sort=False).size()
        out = out.reset_index(name="count")
        out["count"] = out["count"].astype(np.int64)
        out = out.sort_values(
            ["count", "from", "to"], ascending=[False, True, True],
            kind="stable",
        ).reset_index(drop=True)
        out["from"] = out["from"].astype(object)
        out["to"] = out["to"].astype(object)
        return out

    def throughput(self, period: str = "day") -> pd.DataFrame:
        """
        Returns per period (UTC day, week from Monday, or month): period
        (its start), arrivals (cases whose first event falls in it) and
        completions (cases whose last event does); every period from the
        first to the last event, zeros included.

        Raises:
            InvalidArgumentError: ``period`` is unknown.
        """
        d = self._core.throughput(_check_period(period))
        return pd.DataFrame(
            {
                "period": _times(d["period"]).array,
                "arrivals": _ints(d["arrivals"]),
                "completions": _ints(d["completions"]),
            }
        )

    def _instance_result(self) -> Dict[str, Any]:
        if self._instances is None:
            self._instances = self._core.activity_instances()
        return self._instances

    def activity_instances(self) -> pd.DataFrame:
        """
        Returns lifecycle events paired into activity instances (per case
        and activity a complete closes the oldest open start): case_id,
        activity, resource, kind (paired, open or atomic), start, end (NaT
        when open) and duration in seconds (<NA> unless paired).
        """
        d = self._instance_result()["instances"]
        cols = self._cols()
        return pd.DataFrame(
            {
                "case_id": _categorical(d["case"], cols["case"][1]),
                "activity": _categorical(d["activity"],
                                         cols["activity"][1]),
                "resource": _categorical(d["resource"],
                                         cols["resource"][1]),
                "kind": _categorical(d["kind"], d["kind_names"]),
                "start": _times(d["start"]).array,
                "end": _times(*d["end"]).array,
                "duration": _floats(d["duration"]),
            }
        )

    def service_times(self) -> pd.DataFrame:
        """
        Returns per activity the service time over its paired instances:
        activity, instances, open, duration_count, duration_mean, ... (s).
        """
        d = self._instance_result()["service_times"]
        return pd.DataFrame(
            {
                "activity": _strings(d["activity"]),
                "instances": _ints(d["instances"]),
                "open": _ints(d["open"]),
                **_stats(d, "duration_"),
            }
        )

    def instance_dfg(self) -> pd.DataFrame:
        """
        Returns the directly-follows graph over activity instances (no
        start/complete self-loops); durations are the waits from the end
        of one instance to the start of the next.
        """
        return _dfg_frame(self._instance_result()["dfg"])

    def complete_cases(self) -> pd.Series:
        """
        Returns a bool per case (indexed by case id): no open instance.
        """
        d = self._instance_result()["case_complete"]
        return pd.Series(
            np.asarray(d, dtype=bool), index=pd.Index(self.case_ids),
            name="complete",
        )

    def sla_breach_rates(
        self, by: Union[str, Sequence[str]], breached: str, *,
        per: str = "case", true_values: Sequence[str] = ("true", "1", "yes"),
    ) -> pd.DataFrame:
        """
        Returns SLA breach rates by segment from a breach flag the data
        supplies (e.g. ServiceNow's ``made_sla``, negated).

        The flag and segment of a case are taken from its last event
        (ServiceNow's ``made_sla`` is a running flag).

        Args:
            by: Attribute column(s) naming the segment (e.g. priority).
            breached: Attribute column holding the flag.  A name starting
                with ``"!"`` negates it (``"!made_sla"``: breached when
                made_sla is false).
            per: ``"case"`` (default) or ``"event"``.
            true_values: Texts read as true (letter case ignored).

        Returns:
            by columns; cases (or events) with a flag; breached; without_flag,
            the cases (or events) of the segment whose flag is missing,
            which the rate leaves out; rate, breached / cases (nullable
            Float64, ``<NA>`` when no case of the segment has a flag).

        Raises:
            InvalidArgumentError: Unknown columns or ``per``.
        """
        if isinstance(by, str):
            by = [by]
        elif isinstance(by, (list, tuple)) and len(by) > 0:
            by = list(by)
        else:
            message = "by must be a column name or a non-empty list of them"
            raise InvalidArgumentError(message)
        if not isinstance(breached, str) or breached in ("", "!"):
            message = "breached must be a column name, or one after " \
                '"!" to negate it'
            raise InvalidArgumentError(message)
        negate = breached.startswith("!")
        flag = breached[1:] if negate else breached
        if per not in ("case", "event"):
            raise InvalidArgumentError('per must be "case" or "event"')
        df = self.to_dataframe()
        _check_columns(df, [*by, flag])
        if per == "case":
            df = df.drop_duplicates("case_id", keep="last")
        truth = {v.lower() for v in true_values}
        text = df[flag].astype(object).astype(str).str.strip().str.lower()
        hit = text.isin(truth).to_numpy()
        missing = df[flag].isna().to_numpy()
        if negate:
            hit = ~hit
        frame = pd.DataFrame(
            {c: df[c].astype(object) for c in by}
        )
        frame["flagged"] = ~missing
        frame["breached"] = hit & ~missing
        frame["without_flag"] = missing
        unit = "cases" if per == "case" else "events"
        out = frame.groupby(by, dropna=False, sort=True, observed=True).agg(
            **{unit: ("flagged", "sum"), "breached": ("breached", "sum"),
               "without_flag": ("without_flag", "sum")}
        ).reset_index()
        for c in (unit, "breached", "without_flag"):
            out[c] = out[c].astype(np.int64)
        # A segment whose every case lacks the flag has no rate (<NA>).
        counted = out[unit].to_numpy()
        out["rate"] = pd.arrays.FloatingArray(
            out["breached"].to_numpy() / np.maximum(counted, 1),
            counted == 0)
        return out

    # Against the model.

    def conformance(
        self,
        workflow: Workflow,
        activity_map: Optional[Mapping[str, str]] = None,
        *,
        activity_kind: Optional[str] = None,
        milestones: Sequence[str] = (),
        ignore_unmapped: bool = True,
        complete_only: bool = True,
        resync: bool = True,
        guards: Optional[Mapping[str, Callable[["ReplayContext"], Any]]] =
        None,
        repeats_unchanged: bool = True,
    ) -> "ConformanceResult":
        """
        Replays the log against ``workflow`` (token-free): every case
        starts in the initial state and each event is tried in order; an
        event the workflow does not allow there is a deviation.

        Args:
            workflow: The designed workflow.
            activity_map: Renames activities to workflow events (or
                states); a value ``""`` ignores that activity.  None: the
                activities are the names.  Activities missing from a map
                are ignored unless ``ignore_unmapped`` is False.
            activity_kind: ``"event"``: an activity names the event fired;
                ``"state"``: it names the state entered (engine history,
                status exports).  None (default): as the log was made by
                :meth:`from_engine` (whose creation rows, event
                ``create``, are then not events of the workflow), else
                ``"event"``.
            milestones: States every case must reach; each missed one is a
                deviation ``missing_milestone``.
            ignore_unmapped: See ``activity_map``.
            complete_only: Skip events with lifecycle start (or other), so
                a start/complete pair is one step.
            resync: After a ``not_allowed`` deviation move the case to the
                state the event leads to (when unambiguous).
            guards: Python callables by guard name, called with a
                :class:`ReplayContext`; a falsy result refuses the
                transition.  Guards without a callable pass.
            repeats_unchanged: With ``activity_kind="state"``, an event
                naming the state the case is in, where no transition
                leads from that state to itself, is a repeat: status
                exports write a row on every update of a record, and two
                statuses mapped to one state read the same.  True
                (default): repeats are accepted, move nothing and are
                counted in the ``unchanged`` column; False: each is a
                ``not_allowed`` deviation.

        Returns:
            A :class:`ConformanceResult`.

        Raises:
            InvalidArgumentError: The workflow has no initial state, or an
                option is malformed.
            NotFoundError: A milestone is not a state.
        """
        activity_kind, activity_map = self._reading(activity_kind,
                                                    activity_map)
        return _replay(
            self, workflow, activity_map, activity_kind, milestones,
            ignore_unmapped, complete_only, resync, guards,
            repeats_unchanged,
        )

    def _reading(self, activity_kind: Optional[str],
                 activity_map: Optional[Mapping[str, str]]
                 ) -> Tuple[str, Optional[Mapping[str, str]]]:
        """
        Returns the activity kind and map a replay uses: those given, or
        for None the way the log was made (:meth:`from_engine`), else
        ``"event"``.
        """
        if activity_kind is not None:
            return activity_kind, activity_map
        activity_kind = self._engine_activity or "event"
        if self._engine_activity == "event" and activity_map is None:
            # The creation row enters the initial state; no event of the
            # workflow moved there.
            activity_map = {
                a: ("" if a == "create" else a) for a in self._engine_events
            }
        return activity_kind, activity_map

    def discover(
        self,
        min_count: int = 1,
        *,
        min_activity_count: Optional[int] = None,
        min_start_count: Optional[int] = None,
        min_end_count: Optional[int] = None,
        name: str = "discovered",
        start_state: str = "start",
    ) -> Workflow:
        """
        Returns a draft workflow discovered from the directly-follows
        graph: a state per activity plus the initial state
        ``start_state``, a transition (event named after its target) per
        edge counted at least ``min_count`` times, terminal states from
        the end activities.  States the start cannot reach after
        filtering are dropped.  Call ``validate()`` on the draft.

        Args:
            min_count: Minimum edge count (also the default of the other
                minimums).
            min_activity_count: Minimum occurrences of an activity.
            min_start_count: Minimum cases starting with an activity for
                it to follow the start state.
            min_end_count: Minimum cases ending with an activity for it to
                be terminal.
            name: The draft's name.
            start_state: Name of the synthetic initial state.

        Raises:
            InvalidArgumentError: The log has no events, or
                ``start_state`` is an activity.
        """
        def pick(v: Optional[int]) -> int:
            v = min_count if v is None else v
            if not isinstance(v, (int, np.integer)) or isinstance(
                    v, bool) or not 0 <= v < 2**63:
                message = "min_count and the other minimum counts must be " \
                    "ints of 0 or more"
                raise InvalidArgumentError(message)
            return int(v)

        core = self._core.discover(
            name, 1, pick(min_activity_count), pick(min_count),
            pick(min_start_count), pick(min_end_count), start_state,
        )
        return Workflow._from_core(core)


def _rejects(rows: Sequence[Tuple[Any, ...]]) -> pd.DataFrame:
    """
    Returns reader rejects as a DataFrame (file, line, column, reason).
    """
    rows = list(rows)
    return pd.DataFrame(
        {
            "file": pd.Series([r[0] for r in rows], dtype=object),
            "line": np.asarray([r[1] for r in rows], dtype=np.int64),
            "column": np.asarray([r[2] for r in rows], dtype=np.int64),
            "reason": pd.Series([r[3] for r in rows], dtype=object),
        }
    )


def _dfg_frame(d: Dict[str, Any]) -> pd.DataFrame:
    """
    Returns the edges of a core DFG result as a DataFrame.
    """
    e = d["edges"]
    return pd.DataFrame(
        {
            "from": _strings(e["from"]),
            "to": _strings(e["to"]),
            "count": _ints(e["count"]),
            **_stats(e, "duration_"),
        }
    )


# --- Conformance ------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ReplayContext:
    """
    What a Python guard sees during a replay.

    Attributes:
        case_id: The case.
        event: The workflow event of the transition tried.
        from_state: The case's state.
        to_state: The transition's target.
        guard: The guard's name.
        time: The event's time (aware UTC datetime).
        activity: The log activity.
        resource: The event's resource, or None.
        attributes: The event's text attributes (missing ones left out).
        case_attributes: The case's attributes (first value of each in the
            case).
    """

    case_id: str
    event: str
    from_state: str
    to_state: str
    guard: str
    time: Any
    activity: str
    resource: Optional[str]
    attributes: Dict[str, str]
    case_attributes: Dict[str, str]


class _GuardCaller:
    """
    Turns the core's (case, event, transition, guard) callback into
    calls of Python guards with a :class:`ReplayContext`.
    """

    def __init__(self, log: EventLog, workflow: Workflow,
                 guards: Mapping[str, Callable[[ReplayContext], Any]]):
        self._guards = dict(guards)
        self._log = log
        self._df = log.to_dataframe()
        self._ts = [
            (t["event"], t["source"], t["target"])
            for t in workflow._core.transitions()
        ]
        self._attr_names = [
            c for c in self._df.columns
            if c not in ("case_id", "activity", "resource", "lifecycle",
                         "time", "row")
        ]
        self._attrs = {
            c: self._df[c].astype(object).to_numpy()
            for c in self._attr_names
        }
        self._case_attrs: Dict[int, Dict[str, str]] = {}
        self._case_ids = log.case_ids
        self._activity = self._df["activity"].astype(object).to_numpy()
        self._resource = self._df["resource"].astype(object).to_numpy()
        self._time = self._df["time"]
        self._offsets = np.concatenate(
            [[0], np.cumsum(_ints(log._cols()["case_sizes"]))]
        )

    def _case_attributes(self, case: int) -> Dict[str, str]:
        cached = self._case_attrs.get(case)
        if cached is None:
            cached = {}
            lo, hi = self._offsets[case], self._offsets[case + 1]
            for c in self._attr_names:
                for v in self._attrs[c][lo:hi]:
                    if isinstance(v, str):
                        cached[c] = v
                        break
            self._case_attrs[case] = cached
        return cached

    def __call__(self, case: int, event: int, transition: int,
                 guard: str) -> bool:
        fn = self._guards.get(guard)
        if fn is None:
            return True
        ev, src, dst = self._ts[transition]
        attrs = {
            c: v[event] for c, v in self._attrs.items()
            if isinstance(v[event], str)
        }
        resource = self._resource[event]
        ctx = ReplayContext(
            case_id=self._case_ids[case], event=ev, from_state=src,
            to_state=dst, guard=guard,
            time=self._time.iloc[event].to_pydatetime(),
            activity=str(self._activity[event]),
            resource=resource if isinstance(resource, str) else None,
            attributes=attrs, case_attributes=self._case_attributes(case),
        )
        return bool(fn(ctx))


def _replay(
    log: EventLog, workflow: Workflow,
    activity_map: Optional[Mapping[str, str]], activity_kind: str,
    milestones: Sequence[str], ignore_unmapped: bool, complete_only: bool,
    resync: bool, guards: Optional[Mapping[str, Callable[..., Any]]],
    repeats_unchanged: bool = True,
) -> "ConformanceResult":
    """
    Runs the core replay and wraps the result.
    """
    if not isinstance(workflow, Workflow):
        raise InvalidArgumentError("workflow must be a crmflow.Workflow")
    if not isinstance(activity_kind, str) or activity_kind not in (
            "event", "state"):
        if not isinstance(activity_kind, str):
            activity_kind = type(activity_kind).__name__
        message = f'activity_kind "{activity_kind}" unknown (expected ' \
            "event or state)"
        raise InvalidArgumentError(message)
    if activity_map is not None and not isinstance(activity_map, Mapping):
        raise InvalidArgumentError("activity_map must be a dict")
    pairs = [(str(k), str(v)) for k, v in (activity_map or {}).items()]
    if isinstance(milestones, str):
        milestones = [milestones]
    milestones = list(milestones)
    caller = None
    if guards:
        if not isinstance(guards, Mapping) or not all(
            callable(f) for f in guards.values()
        ):
            raise InvalidArgumentError(
                "guards must be a dict of guard names to callables"
            )
        caller = _GuardCaller(log, workflow, guards)
    raw = log._core.replay(
        workflow._core, activity_kind, pairs, ignore_unmapped,
        complete_only, milestones, resync, caller,
        bool(repeats_unchanged),
    )
    return ConformanceResult(log, workflow, raw, milestones)


class ConformanceResult:
    """
    The outcome of :meth:`EventLog.conformance`.

    Attributes:
        cases: Per case: case_id, final_state, events (replayed),
            accepted, unchanged (of the accepted, repeats of the state;
            see ``repeats_unchanged``), ignored, deviations, fit,
            completed (final state is terminal) and
            ``reached_<milestone>`` (time first entered).
        deviations: One row per deviation: case_id, position (in the
            case, <NA> for missing milestones), time, kind (not_allowed,
            unknown_activity, guard_refused, missing_milestone), state
            (the case's state, or the milestone), activity.
        steps: The replayed history, one row per state entered: case_id,
            state, time, resource, event (workflow event, <NA> for the
            creation and resynchronisation), resync.
        fitness: Fitting cases / cases (None for an empty log).
        event_fitness: Accepted events / replayed events (None when none).
        fitting_cases: The number of fitting cases.
        workflow: The workflow replayed against.
    """

    def __init__(self, log: EventLog, workflow: Workflow,
                 raw: Dict[str, Any], milestones: List[str]):
        self.workflow = workflow
        self.milestones = milestones
        self.fitness: Optional[float] = raw["fitness"]
        self.event_fitness: Optional[float] = raw["event_fitness"]
        self.fitting_cases = int(raw["fitting_cases"])
        self.events = int(raw["events"])
        self.accepted = int(raw["accepted"])
        self.unchanged = int(raw["unchanged"])
        case_names = log._case_names()
        states = np.asarray(raw["state_names"], dtype=object)
        c = raw["cases"]
        cases = pd.DataFrame(
            {
                "case_id": _strings(case_names),
                "final_state": _strings(
                    states[_ints(c["final_state"])]
                    if len(case_names) else []
                ),
                "events": _ints(c["events"]),
                "accepted": _ints(c["accepted"]),
                "unchanged": _ints(c["unchanged"]),
                "ignored": _ints(c["ignored"]),
                "deviations": _ints(c["deviations"]),
                "fit": np.asarray(c["fit"], dtype=bool),
                "completed": np.asarray(c["completed"], dtype=bool),
            }
        )
        for name, (times, missing) in zip(milestones, c["milestones"]):
            cases[f"reached_{name}"] = _times(times, missing).array
        self.cases = cases

        cols = log._cols()
        event_time = np.asarray(cols["time"], dtype=np.int64)
        res_codes = np.asarray(cols["resource"][0], dtype=np.int64)
        d = raw["deviations"]
        ev = _ints(d["event"])
        has = ev >= 0
        safe = np.where(has, ev, 0)
        self.deviations = pd.DataFrame(
            {
                "case_id": _strings(case_names[_ints(d["case"])]),
                "position": pd.array(
                    np.where(has, _ints(d["position"]), 0),
                    dtype="Int64",
                ),
                "time": _times(
                    event_time[safe] if len(event_time) else
                    np.zeros(len(ev), dtype=np.int64), ~has
                ).array,
                "kind": _strings(d["kind"]),
                "state": _strings(d["state"]),
                "activity": _strings(d["activity"]),
            }
        )
        self.deviations.loc[~has, "position"] = pd.NA

        s = raw["steps"]
        sev = _ints(s["event"])
        self._step_events = sev
        trans = _ints(s["transition"])
        events = np.asarray(
            [t["event"] for t in workflow._core.transitions()] + [None],
            dtype=object,
        )
        rnames = np.asarray(list(cols["resource"][1]) + [None], dtype=object)
        self.steps = pd.DataFrame(
            {
                "case_id": _strings(case_names[_ints(s["case"])]),
                "state": _strings(states[_ints(s["state"])]),
                "time": _times(
                    event_time[sev] if len(sev) else sev
                ).array,
                "resource": pd.Series(
                    rnames[res_codes[sev]] if len(sev) else [],
                    dtype=object,
                ),
                "event": pd.Series(events[trans], dtype=object),
                "resync": np.asarray(s["resync"], dtype=bool),
            }
        )

    def summary(self) -> Dict[str, Any]:
        """
        Returns the totals: cases, fitting_cases, fitness, events,
        accepted, unchanged, event_fitness, deviations by kind.
        """
        kinds = self.deviations["kind"].value_counts()
        return {
            "cases": int(len(self.cases)),
            "fitting_cases": self.fitting_cases,
            "fitness": self.fitness,
            "events": self.events,
            "accepted": self.accepted,
            "unchanged": self.unchanged,
            "event_fitness": self.event_fitness,
            "deviations": {str(k): int(v) for k, v in kinds.items()},
        }

    def to_dict(self) -> Dict[str, Any]:
        """
        Returns the summary plus per-case rows and deviations (for
        :func:`to_json`).
        """
        return {**self.summary(), "per_case": self.cases,
                "deviation_rows": self.deviations}

    def edge_counts(self) -> pd.DataFrame:
        """
        Returns how often each transition was taken: from, to, event,
        count (for diagrams of the designed workflow).
        """
        st = self.steps
        prev = st["state"].shift(1)
        same = st["case_id"].eq(st["case_id"].shift(1))
        moved = same & st["event"].notna()
        out = pd.DataFrame(
            {"from": prev[moved], "to": st["state"][moved],
             "event": st["event"][moved]}
        ).groupby(["from", "to", "event"], sort=False).size()
        out = out.reset_index(name="count")
        out["count"] = out["count"].astype(np.int64)
        return out

    def diagram(self) -> Any:
        """
        Returns the workflow drawn with the replayed counts on states and
        transitions (a :class:`crmflow.diagrams.Diagram`).
        """
        from crmflow import diagrams

        visits = self.steps.groupby("state", sort=False).size()
        return diagrams.workflow_diagram(
            self.workflow, edge_counts=self.edge_counts(),
            state_counts={str(k): int(v) for k, v in visits.items()},
        )

    def _repr_svg_(self) -> Optional[str]:
        return self.diagram()._repr_svg_()

    def __repr__(self) -> str:
        fit = "n/a" if self.fitness is None else f"{self.fitness:.3f}"
        return (
            f"<ConformanceResult {self.workflow.name}: {len(self.cases)} "
            f"cases, fitness {fit}, {len(self.deviations)} deviations>"
        )


# --- Diff -------------------------------------------------------------------


class WorkflowDiff:
    """
    The differences between two workflows (see :func:`diff`).

    Attributes:
        nodes: name, where (``"both"``, ``"only_a"``, ``"only_b"``).
        edges: from, to, where.  Under basis ``"events"`` a ``from`` of
            ``""`` means "can come first".
        a_name, b_name: The workflows' names.
        basis: ``"states"`` or ``"events"``.
    """

    def __init__(self, raw: Dict[str, Any], a_name: str, b_name: str,
                 basis: str):
        self.a_name, self.b_name, self.basis = a_name, b_name, basis
        node_rows = (
            [(n, "both") for n in raw["nodes_in_both"]]
            + [(n, "only_a") for n in raw["nodes_only_in_a"]]
            + [(n, "only_b") for n in raw["nodes_only_in_b"]]
        )
        edge_rows = (
            [(f, t, "both") for f, t in raw["edges_in_both"]]
            + [(f, t, "only_a") for f, t in raw["edges_only_in_a"]]
            + [(f, t, "only_b") for f, t in raw["edges_only_in_b"]]
        )
        self.nodes = pd.DataFrame(
            {"name": _strings([r[0] for r in node_rows]),
             "where": _strings([r[1] for r in node_rows])}
        )
        self.edges = pd.DataFrame(
            {"from": _strings([r[0] for r in edge_rows]),
             "to": _strings([r[1] for r in edge_rows]),
             "where": _strings([r[2] for r in edge_rows])}
        )

    def only_in_a(self) -> pd.DataFrame:
        """
        Returns the edges found only in the first workflow.
        """
        return self.edges.loc[self.edges["where"] == "only_a",
                              ["from", "to"]].reset_index(drop=True)

    def only_in_b(self) -> pd.DataFrame:
        """
        Returns the edges found only in the second workflow.
        """
        return self.edges.loc[self.edges["where"] == "only_b",
                              ["from", "to"]].reset_index(drop=True)

    def to_dict(self) -> Dict[str, Any]:
        """
        Returns the diff as plain data (for :func:`to_json`).
        """
        return {"a": self.a_name, "b": self.b_name, "basis": self.basis,
                "nodes": self.nodes, "edges": self.edges}

    def diagram(self) -> Any:
        """
        Returns the union graph, coloured by where each part is found.
        """
        from crmflow import diagrams

        return diagrams.diff_diagram(self)

    def _repr_svg_(self) -> Optional[str]:
        return self.diagram()._repr_svg_()

    def __repr__(self) -> str:
        counts = self.edges["where"].value_counts()
        return (
            f"<WorkflowDiff {self.a_name} vs {self.b_name} ({self.basis}): "
            f"{int(counts.get('both', 0))} common edges, "
            f"{int(counts.get('only_a', 0))} only in {self.a_name}, "
            f"{int(counts.get('only_b', 0))} only in {self.b_name}>"
        )


def diff(a: Workflow, b: Workflow, *, basis: str = "states") -> WorkflowDiff:
    """
    Compares two workflows, typically designed (``a``) and discovered
    (``b``, from :meth:`EventLog.discover`).

    Args:
        a: The first workflow.
        b: The second workflow.
        basis: ``"states"``: states by name and edges as (source, target);
            ``"events"``: events by name and edges as "event E can be
            directly followed by F" -- use this when the designed
            workflow's events are the log's activities.

    Returns:
        A :class:`WorkflowDiff`.

    Raises:
        InvalidArgumentError: An argument is not a Workflow or the basis is
            unknown.
    """
    if not isinstance(a, Workflow) or not isinstance(b, Workflow):
        raise InvalidArgumentError("diff: a and b must be crmflow.Workflow")
    raw = _core.diff_workflows(a._core, b._core, basis)
    return WorkflowDiff(raw, a.name, b.name, basis)


# --- What-if ----------------------------------------------------------------


@dataclasses.dataclass
class Scenario:
    """
    A set of rules a log is replayed under in :func:`what_if`.

    Attributes:
        workflow: The workflow (e.g. with a transition added or removed).
        guards: Python guard callables by guard name (see
            :class:`ReplayContext`), e.g. ``{"small_order": lambda c:
            float(c.case_attributes["amount"]) < 100}``.
        name: A label for reports.
        rules: Business rules: a dict of :meth:`crmflow.Engine.add_rule`
            keyword arguments or a list of them (``kind`` defaults to the
            workflow's), e.g. ``{"name": "big_needs_manager", "trigger":
            "created", "when": "amount > 1000", "actions": ["set
            approval = 'manager'"]}``.
        sla: SLA policies: :class:`~crmflow.SlaPolicy` objects, policy
            dicts as in :meth:`crmflow.ServiceDesk.from_config` (with
            ``target_seconds`` or a ``target`` timedelta; ``kind``
            defaults to the workflow's) or a whole desk config dict.
        routing: Team routing: ``{"teams": [Team or dict], "rules":
            [Router.add_rule keyword dicts]}``; cases are routed when
            created.

    Example::

        Scenario(wf, name="P3 in 4 h", sla=[{"name": "resolution",
                 "target_seconds": 4 * 3600, "when": {"priority":
                 "3 - Moderate"}, "met": ["resolved", "closed"]}])
    """

    workflow: Workflow
    guards: Dict[str, Callable[[ReplayContext], Any]] = dataclasses.field(
        default_factory=dict
    )
    name: str = ""
    rules: Any = None
    sla: Any = None
    routing: Any = None


def _scenario(value: Union[Scenario, Workflow], default: str) -> Scenario:
    if isinstance(value, Workflow):
        return Scenario(value, name=default)
    if not isinstance(value, Scenario):
        raise InvalidArgumentError(
            "what_if: expected a Scenario or a Workflow"
        )
    if not isinstance(value.workflow, Workflow):
        raise InvalidArgumentError(
            "what_if: Scenario.workflow must be a crmflow.Workflow"
        )
    if not value.name:
        value = dataclasses.replace(value, name=default)
    return value


class WhatIfResult:
    """
    The comparison of two replays of one log (see :func:`what_if`).

    Attributes:
        cases: Per case: case_id and, for ``before`` and ``after``,
            final_state, fit, completed, deviations, visits to each
            counted state and seconds from the case's first event to each
            milestone (<NA> when not reached); ``changed`` is True when
            any of them differs.
        totals: metric, before, after, change (after - before): cases
            completed, fitting cases, deviations, visits per counted
            state, cases reaching and mean time to each milestone.
        load: Steps (states entered by a move) per team and state:
            team, state, before, after, change.
        before, after: The two :class:`ConformanceResult`.

    When a scenario has rules, SLA policies or routing, both scenarios are
    also replayed through an engine (:mod:`crmflow.whatif`) and ``cases``
    gains, for ``before`` and ``after``: state (the engine's state at the
    case's end), rules_fired, rules (names, comma-separated),
    ``attr_NAME`` (final value of each attribute a rule, escalation or
    routing writes), notifications (outbox rows), breaches, breached
    (policies), thresholds, thresholds_reached (``policy@share``), team,
    refused_events (log events the engine could not apply),
    attribute_changes (values the log changed after creation and the
    replay set, see ``what_if(attributes=...)``) and ``events_NAME`` per
    ``count_events``; ``totals`` gains rules_fired,
    rule_fired_NAME, notifications, breaches, breaches_POLICY,
    cases_breached, thresholds, refused_events and events_NAME; and
    these tables are set (else they are None):

    Attributes:
        rule_firings: rule, before, after, change.
        breaches: policy, priority (the case's at its end), before, after,
            change.
        team_load: team (at the case's end), before, after, change: cases.
        sla_events: Every SLA event counted: scenario (before/after),
            case_id, policy, kind (breach, threshold), share, time.
    """

    def __init__(self, before: ConformanceResult, after: ConformanceResult,
                 count_states: Sequence[str], team: Optional[str],
                 log: EventLog, engine: Optional[Dict[str, Any]] = None):
        self.before, self.after = before, after
        self.rule_firings = self.breaches = None
        self.team_load = self.sla_events = None
        frames = []
        for k, (label, r) in enumerate((("before", before),
                                        ("after", after))):
            f = pd.DataFrame({"case_id": r.cases["case_id"]})
            f["final_state"] = r.cases["final_state"]
            f["fit"] = r.cases["fit"]
            f["completed"] = r.cases["completed"]
            f["deviations"] = r.cases["deviations"]
            moves = r.steps.loc[r.steps["event"].notna() | ~r.steps["resync"]]
            for s in count_states:
                v = moves.loc[moves["state"] == s].groupby(
                    "case_id", sort=False
                ).size()
                f[f"visits_{s}"] = (
                    f["case_id"].map(v).fillna(0).astype(np.int64)
                )
            start = log.case_durations()["start"]
            for m in r.milestones:
                dt = (r.cases[f"reached_{m}"] - start).dt.total_seconds()
                f[f"seconds_to_{m}"] = pd.array(dt, dtype="Float64")
            f = f.set_index("case_id")
            if engine is not None:
                f = f.join(engine["cases"][k])
            frames.append(f.add_suffix(f"_{label}"))
        cases = pd.concat(frames, axis=1)
        names = [c[: -len("_before")] for c in frames[0].columns]
        changed = np.zeros(len(cases), dtype=bool)
        for n in names:
            a, b = cases[f"{n}_before"], cases[f"{n}_after"]
            diff_ = ~((a == b).fillna(False) | (a.isna() & b.isna()))
            changed |= np.asarray(diff_, dtype=bool)
        cases["changed"] = changed
        self.cases = cases.reset_index()

        rows: List[Tuple[str, Any, Any]] = []
        c = self.cases
        rows.append(("cases", len(c), len(c)))
        for n in ("completed", "fit"):
            rows.append((f"cases_{n}", int(c[f"{n}_before"].sum()),
                         int(c[f"{n}_after"].sum())))
        rows.append(("deviations", int(c["deviations_before"].sum()),
                     int(c["deviations_after"].sum())))
        for s in count_states:
            rows.append((f"visits_{s}", int(c[f"visits_{s}_before"].sum()),
                         int(c[f"visits_{s}_after"].sum())))
        for m in before.milestones:
            b_, a_ = c[f"seconds_to_{m}_before"], c[f"seconds_to_{m}_after"]
            rows.append((f"cases_reaching_{m}", int(b_.notna().sum()),
                         int(a_.notna().sum())))
            rows.append((f"mean_seconds_to_{m}", _mean(b_), _mean(a_)))
        if engine is not None:
            from crmflow import whatif as _whatif

            rows.extend(_whatif.totals_rows(
                c, engine["outcomes"], engine["rules"], engine["policies"],
                engine["count_events"]))
            self.rule_firings = _whatif.rule_firings(engine["outcomes"],
                                                     engine["rules"])
            self.breaches = _whatif.breach_table(
                engine["outcomes"], c, engine["priority"])
            self.team_load = _whatif.team_load(c)
            self.sla_events = _whatif.sla_events(engine["outcomes"],
                                                 engine["input"])
        rows.append(("cases_changed", 0, int(c["changed"].sum())))
        self.totals = pd.DataFrame(
            {
                "metric": _strings([r[0] for r in rows]),
                "before": pd.array([r[1] for r in rows], dtype="Float64"),
                "after": pd.array([r[2] for r in rows], dtype="Float64"),
            }
        )
        self.totals["change"] = self.totals["after"] - self.totals["before"]
        self.load = self._load(log, team)

    def _load(self, log: EventLog, team: Optional[str]) -> pd.DataFrame:
        """
        Returns steps per team and state, before and after.
        """
        if team is None:
            key = None
        else:
            df = log.to_dataframe()
            _check_columns(df, [team])
            key = df[team].astype(object)
        parts = []
        for label, r in (("before", self.before), ("after", self.after)):
            st = r.steps.loc[r.steps["event"].notna()]
            if key is None:
                who = st["resource"]
            else:
                who = _team_of_steps(r, key).loc[st.index]
            g = pd.DataFrame(
                {"team": who.astype(object), "state": st["state"]}
            ).groupby(["team", "state"], dropna=False, sort=True).size()
            parts.append(g.rename(label))
        out = pd.concat(parts, axis=1).fillna(0).astype(np.int64)
        out = out.reset_index()
        out["change"] = out["after"] - out["before"]
        return out

    def to_dict(self) -> Dict[str, Any]:
        """
        Returns totals, load and per-case rows (for :func:`to_json`).
        """
        out = {"totals": self.totals, "load": self.load,
               "cases": self.cases}
        for name in ("rule_firings", "breaches", "team_load", "sla_events"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out

    def __repr__(self) -> str:
        return (
            f"<WhatIfResult: {len(self.cases)} cases, "
            f"{int(self.cases['changed'].sum())} changed>"
        )


def _mean(values: pd.Series) -> Any:
    v = values.dropna()
    return float(v.mean()) if len(v) else None


def _team_of_steps(r: ConformanceResult, key: pd.Series) -> pd.Series:
    """
    Returns the team value of the event behind each step of ``r``.
    """
    values = np.asarray(key, dtype=object)
    return pd.Series(values[r._step_events], index=r.steps.index)


def what_if(
    log: EventLog,
    baseline: Union[Scenario, Workflow],
    changed: Union[Scenario, Workflow],
    *,
    activity_map: Optional[Mapping[str, str]] = None,
    activity_kind: Optional[str] = None,
    milestones: Sequence[str] = (),
    count_states: Sequence[str] = (),
    team: Optional[str] = None,
    resync: bool = True,
    attribute_map: Optional[Mapping[str, str]] = None,
    count_events: Sequence[str] = (),
    attributes: str = "replay",
) -> WhatIfResult:
    """
    Replays ``log`` under a baseline and a changed scenario and reports
    what changes, case by case and in total.

    Each replay is :meth:`EventLog.conformance`: events the scenario's
    workflow does not allow (or its guards refuse) do not move the case,
    so a step a new rule makes unnecessary shows up as fewer visits to its
    state (e.g. ``count_states=["pending_approval"]`` counts approvals
    needed) and a step a rule forbids as a deviation.

    Args:
        log: The history to replay.
        baseline: The current scenario (or just its workflow).
        changed: The changed scenario.
        activity_map, activity_kind: As in :meth:`EventLog.conformance`
            (None: as the log was made, see there).
        milestones: States whose time to reach is compared (seconds from
            the case's first event).
        count_states: States whose visits are counted per case.
        team: Attribute naming the team of an event for the load table;
            None uses the resource.  In the engine replay the team of a
            case is the final value of this attribute when the workflow
            declares it, else of ``team``.
        resync: As in :meth:`EventLog.conformance`.
        attribute_map: Engine replay: log attribute -> workflow attribute
            for the transactions' attributes (default: same names).
        count_events: Engine replay: events whose firings are counted per
            case (also those fired by rules and escalations), e.g. an
            approval step a rule adds.
        attributes: Engine replay: ``"replay"`` (default) creates each
            case with the values of its first row and sets every later
            change of a value in the log at that row's time, before its
            event, so rules, guards and SLA policy selection see the
            values as they were then (a priority raised mid-case
            re-selects the SLA policy); an empty value is no change.
            ``"first"`` gives each case its first non-missing value of
            each attribute and replays no change.  ``"replay"`` is the
            default because a log records each value as it was at its
            event.  See :mod:`crmflow.whatif`.

    Returns:
        A :class:`WhatIfResult`.

    Raises:
        InvalidArgumentError: Bad arguments, a scenario whose rules or
            SLA policies name an unknown kind, state, event or attribute
            (the message names the scenario and the item), or a log value
            that is not of its attribute's declared type (naming the
            scenario, case, row, event and column).
        NotFoundError: A milestone is not a state of both workflows.

    Example (what if the P3 resolution SLA were 4 h instead of 8 h)::

        def desk(hours):
            return Scenario(wf, name=f"{hours} h", sla=[{
                "name": "resolution", "target_seconds": hours * 3600,
                "when": {"priority": "3 - Moderate"},
                "met": ["resolved", "closed"]}])
        r = what_if(log, desk(8), desk(4), activity_kind="state",
                    activity_map=states)
        r.breaches            # policy, priority, before, after, change

    .. versionadded:: 0.1.0
    """
    if not isinstance(log, EventLog):
        raise InvalidArgumentError("what_if: log must be an EventLog")
    activity_kind, activity_map = log._reading(activity_kind, activity_map)
    a = _scenario(baseline, "baseline")
    b = _scenario(changed, "changed")
    if isinstance(count_states, str):
        count_states = [count_states]
    if isinstance(count_events, str):
        count_events = [count_events]
    if attribute_map is not None and not isinstance(attribute_map, Mapping):
        raise InvalidArgumentError("what_if: attribute_map must be a dict")
    from crmflow import whatif as _whatif

    if not isinstance(attributes, str) or \
            attributes not in _whatif.ATTRIBUTE_MODES:
        raise InvalidArgumentError(
            f"what_if: attributes {attributes!r} unknown (expected "
            f"{' or '.join(_whatif.ATTRIBUTE_MODES)})")

    configs = [_whatif.config(s) for s in (a, b)]
    results = []
    for s in (a, b):
        r = _replay(
            log, s.workflow, activity_map, activity_kind, milestones, True,
            True, resync, s.guards or None,
        )
        results.append(r)
    engine = None
    if any(cfg.active for cfg in configs) or count_events:
        engine = _engine_replay(log, configs, activity_map, activity_kind,
                                dict(attribute_map or {}), team,
                                list(count_events), attributes)
    return WhatIfResult(results[0], results[1], list(count_states), team,
                        log, engine)


def _engine_replay(log: EventLog, configs: Sequence[Any],
                   activity_map: Optional[Mapping[str, str]],
                   activity_kind: str, attribute_map: Dict[str, str],
                   team: Optional[str], count_events: List[str],
                   attributes: str = "replay") -> Dict[str, Any]:
    """
    Replays ``log`` through an engine per scenario (see
    :mod:`crmflow.whatif`) and returns what :class:`WhatIfResult` shows.
    """
    from crmflow import whatif as _whatif

    declared = [
        {x[0] for x in cfg.workflow._core.attributes()} for cfg in configs
    ]
    both = declared[0] & declared[1]
    for k, v in attribute_map.items():
        if not any(v in d for d in declared):
            raise InvalidArgumentError(
                f"what_if: attribute_map maps {k!r} to {v!r}, which no "
                "scenario's workflow declares"
            )
    for cfg in configs:
        events = set(cfg.workflow.events())
        for ev in count_events:
            if ev not in events:
                raise InvalidArgumentError(
                    f"what_if: count_events: scenario {cfg.name!r} has no "
                    f"event {ev!r}"
                )
    team_attr = team if team in both else ("team" if "team" in both
                                           else None)
    priority = "priority" if "priority" in both else None
    attrs: List[str] = []
    for cfg in configs:
        for x in _whatif.set_attributes(cfg):
            if x not in attrs:
                attrs.append(x)
    inp = _whatif.prepare(log, activity_map)
    outcomes = [
        _whatif.replay(cfg, inp, activity_kind, attribute_map, attributes)
        for cfg in configs
    ]
    cases = [
        _whatif.case_frame(o, inp, attrs, team_attr, count_events)
        for o in outcomes
    ]
    rules: List[str] = []
    policies: List[str] = []
    for cfg in configs:
        rules += [r["name"] for r in cfg.rules if r["name"] not in rules]
        policies += [p.name for p in cfg.policies if p.name not in policies]
    return {"cases": cases, "outcomes": outcomes, "rules": rules,
            "policies": policies, "count_events": count_events,
            "priority": priority, "input": inp}


# --- CRM KPIs ---------------------------------------------------------------


def _period_column(df: pd.DataFrame, time: str, period: str,
                   time_zone: str = "UTC") -> pd.Series:
    micros, present, reasons = _micros(df[time], "", time_zone)
    ok = micros != _NAT
    bad = np.flatnonzero(present & ~ok)
    if len(bad):
        message = f'row {_label(df.index[bad[0]])}, column "{time}": ' \
            f"{reasons[int(bad[0])]}"
        raise ParseError(message)
    starts = _period_start(np.where(ok, micros, 0), period)
    return _times(starts, ~ok)


def satisfaction(
    df: pd.DataFrame, score: str, time: str, *, period: str = "month",
    good: float = 4, time_zone: str = "UTC",
) -> pd.DataFrame:
    """
    Returns satisfaction per period from feedback scores (e.g. Olist's
    1-5 ``review_score``): period, responses, mean_score and csat (share
    of scores >= ``good``).  Rows without a score or time are left out;
    naive times are read in ``time_zone``.

    Raises:
        InvalidArgumentError: Unknown columns or period.
        ParseError: A time that cannot be read (the message names the row).
    """
    _check_columns(df, [score, time])
    _check_period(period)
    s = pd.to_numeric(df[score], errors="coerce")
    p = _period_column(df, time, period, time_zone)
    frame = pd.DataFrame({"period": p.array, "score": s.to_numpy()})
    frame = frame.dropna()
    frame["good"] = frame["score"] >= good
    out = frame.groupby("period", sort=True).agg(
        responses=("score", "size"), mean_score=("score", "mean"),
        csat=("good", "mean"),
    ).reset_index()
    out["responses"] = out["responses"].astype(np.int64)
    return out


def new_vs_returning(
    df: pd.DataFrame, customer: str, time: str, *, period: str = "month",
    time_zone: str = "UTC",
) -> pd.DataFrame:
    """
    Returns per period the customers with a transaction: customers, new
    (first transaction ever in that period) and returning.  Rows without
    a customer or time are left out; naive times are read in
    ``time_zone``.

    Raises:
        InvalidArgumentError: Unknown columns or period.
        ParseError: A time that cannot be read (the message names the row).
    """
    _check_columns(df, [customer, time])
    _check_period(period)
    p = _period_column(df, time, period, time_zone)
    frame = pd.DataFrame(
        {"customer": df[customer].to_numpy(), "period": p.array}
    ).dropna()
    first = frame.groupby("customer")["period"].transform("min")
    frame["new"] = frame["period"] == first
    per = frame.drop_duplicates(["customer", "period"])
    out = per.groupby("period", sort=True).agg(
        customers=("customer", "size"), new=("new", "sum")
    ).reset_index()
    out["customers"] = out["customers"].astype(np.int64)
    out["new"] = out["new"].astype(np.int64)
    out["returning"] = out["customers"] - out["new"]
    return out


def repeat_purchase_rate(
    df: pd.DataFrame, customer: str, order: Optional[str] = None,
) -> Dict[str, Any]:
    """
    Returns customers, repeat_customers (more than one distinct order, or
    row when ``order`` is None) and rate (None for no customers).

    Raises:
        InvalidArgumentError: Unknown columns.
    """
    _check_columns(df, [customer] + ([order] if order else []))
    frame = df[[customer] + ([order] if order else [])].dropna()
    if order:
        n = frame.drop_duplicates().groupby(customer).size()
    else:
        n = frame.groupby(customer).size()
    customers = int(len(n))
    repeat = int((n > 1).sum())
    return {
        "customers": customers,
        "repeat_customers": repeat,
        "rate": repeat / customers if customers else None,
    }


def campaign_response(
    df: pd.DataFrame, campaign: str, responded: str,
    converted: Optional[str] = None,
    true_values: Sequence[str] = ("true", "1", "yes", "y"),
) -> pd.DataFrame:
    """
    Returns per campaign: contacted, responded, response_rate and, when
    ``converted`` is given, converted and conversion_rate (of contacted).
    Flags may be bools, numbers (any but 0 is true) or text in
    ``true_values``; a missing flag is false.

    Raises:
        InvalidArgumentError: Unknown columns.
    """
    cols = [campaign, responded] + ([converted] if converted else [])
    _check_columns(df, cols)
    truth = {v.lower() for v in true_values}

    def flag(col: str) -> np.ndarray:
        s = df[col]
        if pd.api.types.is_bool_dtype(s.dtype):
            return s.fillna(False).to_numpy(dtype=bool)
        if pd.api.types.is_numeric_dtype(s.dtype):
            # 0/1 flags, floats once pandas has seen a missing value.
            return (s.fillna(0) != 0).to_numpy(dtype=bool)
        text = s.astype(object).astype(str).str.strip().str.lower()
        return text.isin(truth).to_numpy()

    frame = pd.DataFrame({"campaign": df[campaign].astype(object)})
    frame["responded"] = flag(responded)
    agg = {"contacted": ("responded", "size"),
           "responded": ("responded", "sum")}
    if converted:
        frame["converted"] = flag(converted)
        agg["converted"] = ("converted", "sum")
    out = frame.groupby("campaign", sort=True, dropna=False).agg(**agg)
    out = out.reset_index()
    for c in agg:
        out[c] = out[c].astype(np.int64)
    out["response_rate"] = out["responded"] / out["contacted"]
    if converted:
        out["conversion_rate"] = out["converted"] / out["contacted"]
    return out

