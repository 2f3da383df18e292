"""
Customers across channels: identities, duplicates, merges and the
customer 360 view.

A customer (table ``customers``) has identities from several channels
(table ``identities``): ``email``, ``phone``, ``web`` (a web or app user
id) and ``source`` (the id of the customer in another system, with that
system's name).  Identities are stored as given and normalised:

* e-mail: surrounding blanks removed, lower-cased.  No provider rules:
  dots and ``+tags`` are kept, also for Gmail, since they are significant
  for most providers and a wrong merge is worse than a missed one.
* phone: E.164-like ``+`` and digits: blanks, dots, dashes and brackets
  dropped, a leading ``00`` read as ``+``; a national number (no ``+``)
  gets ``default_country`` (a calling code such as ``"49"``), dropping one
  trunk ``0``.  Eight to fifteen digits.
* web and source: blanks around removed, otherwise exact.

:func:`find_duplicates` reports pairs of live customers sharing an
identity or with similar names (accents folded with NFKD, Chinese and
other CJK names compared character by character); :func:`merge` moves a
customer's transactions and identities to a survivor and records it in
``merges`` (history rows are never touched); :func:`undo` restores the
merge exactly (transactions' versions go on increasing: they are never
reset).  :func:`customer_360` gathers a customer's orders, requests,
feedback and complaints.

Functions take a file-backed :class:`crmflow.Engine` or the path of a
crmflow SQLite file, and write in one SQLite transaction each: call them
outside an open ``Engine.transaction()`` block, which holds the write
lock.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import decimal
import difflib
import json
import os
import re
import sqlite3
import unicodedata
from typing import Any, Dict, List, Optional, Union

import numpy as np

from crmflow import _pandas as pd  # pandas on first use
from crmflow._errors import InvalidArgumentError, NotFoundError

__all__ = [
    "IDENTITY_KINDS",
    "Customer360",
    "normalize_email",
    "normalize_phone",
    "normalize_identity",
    "fold_name",
    "name_similarity",
    "find_duplicates",
    "merge",
    "undo",
    "customer_360",
    "repeat_customers",
]

IDENTITY_KINDS = ("email", "phone", "web", "source")

# Kinds of the bundled templates, as the 360 view groups them.
_VIEW_KINDS = {
    "orders": "sales_order",
    "requests": "service_request",
    "feedback": "feedback",
    "complaints": "complaint",
}
# Sales-order states whose amount does not count in the lifetime value.
_LOST_ORDER_STATES = ("canceled", "rejected", "returned")

EMAIL_PATTERN = r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$"
_EMAIL_RE = re.compile(EMAIL_PATTERN)
_PHONE_JUNK = re.compile(r"[\s.\-()/]")
_CJK = re.compile(
    "[\u2e80-\u2fdf\u3040-\u30ff\u3100-\u31ff\u3400-\u4dbf"
    "\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]"
)
_UTC = datetime.timezone.utc

Target = Union[str, "os.PathLike[str]", Any]


def normalize_email(value: Any) -> str:
    """
    Returns an e-mail address trimmed and lower-cased.

    Raises:
        InvalidArgumentError: Not a string, or not ``local@domain.tld``;
            the message quotes the value.
    """
    if not isinstance(value, str):
        message = f"email must be a string (got {type(value).__name__})"
        raise InvalidArgumentError(message)
    text = value.strip().lower()
    if not _EMAIL_RE.match(text):
        message = f'invalid email "{value}" (expected local@domain.tld)'
        raise InvalidArgumentError(message)
    return text


def normalize_phone(value: Any, default_country: Optional[str] = None) -> str:
    """
    Returns a phone number as ``+`` and 8 to 15 digits.

    Args:
        value: The number as written, e.g. ``"030 1234567"``,
            ``"+49 (30) 123-4567"`` or ``"0049301234567"``.
        default_country: The calling code (digits, e.g. ``"49"``) of
            numbers written without ``+`` or ``00``.

    Raises:
        InvalidArgumentError: Not a string, letters in it, a national
            number without ``default_country``, or a wrong length.
    """
    if not isinstance(value, str):
        message = f"phone must be a string (got {type(value).__name__})"
        raise InvalidArgumentError(message)
    text = _PHONE_JUNK.sub("", value.strip())
    if text.startswith("00"):
        text = "+" + text[2:]
    if not text.startswith("+"):
        if default_country is None:
            message = (
                f'phone "{value}" has no country code (expected +CC... '
                "or a default_country)"
            )
            raise InvalidArgumentError(message)
        country = str(default_country).lstrip("+")
        if not country.isdigit():
            message = f'default_country "{default_country}" is not digits'
            raise InvalidArgumentError(message)
        text = "+" + country + (text[1:] if text.startswith("0") else text)
    digits = text[1:]
    if not digits.isdigit() or not 8 <= len(digits) <= 15:
        message = (
            f'invalid phone "{value}" (expected 8 to 15 digits after the '
            "country code's +)"
        )
        raise InvalidArgumentError(message)
    return text


def normalize_identity(
    kind: str, value: Any, default_country: Optional[str] = None
) -> str:
    """
    Returns the normalised form of an identity of ``kind``.

    Raises:
        InvalidArgumentError: An unknown kind or an invalid value.
    """
    if kind == "email":
        return normalize_email(value)
    if kind == "phone":
        return normalize_phone(value, default_country)
    if kind not in IDENTITY_KINDS:
        known = ", ".join(IDENTITY_KINDS)
        message = f'unknown identity kind "{kind}" (expected {known})'
        raise InvalidArgumentError(message)
    if not isinstance(value, str) or not value.strip():
        message = f"{kind} identity must be a non-empty string ({value!r})"
        raise InvalidArgumentError(message)
    return value.strip()


def fold_name(name: Optional[str]) -> str:
    """
    Returns a name for comparison: NFKD, accents (combining marks) and
    punctuation removed, case-folded, blanks collapsed; CJK characters are
    kept as they are.
    """
    if not name:
        return ""
    text = unicodedata.normalize("NFKD", name)
    text = "".join(
        c
        for c in text
        if not unicodedata.combining(c)
        and (c.isalnum() or c.isspace())
    )
    return " ".join(text.casefold().split())


def name_similarity(a: Optional[str], b: Optional[str]) -> float:
    """
    Returns how similar two names are, from 0 to 1.

    Names are folded (:func:`fold_name`).  When either has CJK characters
    the characters are compared in order without blanks (Chinese names
    have no word separators and a different given-name order would be a
    different person); otherwise words are compared order-insensitively
    (``"Silva, Ana"`` equals ``"Ana Silva"``).  The measure is
    :class:`difflib.SequenceMatcher`'s ratio.
    """
    fa, fb = fold_name(a), fold_name(b)
    if not fa or not fb:
        return 0.0
    if _CJK.search(fa) or _CJK.search(fb):
        sa, sb = fa.replace(" ", ""), fb.replace(" ", "")
        return difflib.SequenceMatcher(None, sa, sb).ratio()
    sorted_a = " ".join(sorted(fa.split()))
    sorted_b = " ".join(sorted(fb.split()))
    return max(
        difflib.SequenceMatcher(None, fa, fb).ratio(),
        difflib.SequenceMatcher(None, sorted_a, sorted_b).ratio(),
    )


def _now_iso() -> str:
    """
    Returns the current time in the stored form.
    """
    return datetime.datetime.now(_UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _path(target: Target) -> str:
    """
    Returns the SQLite path of an engine or a path.

    Raises:
        InvalidArgumentError: A memory engine or an unusable argument.
        NotFoundError: The file does not exist.
    """
    path = getattr(target, "path", target)
    if not isinstance(path, (str, os.PathLike)):
        message = (
            "expected a crmflow.Engine on a file or a database path "
            f"(got {type(target).__name__})"
        )
        raise InvalidArgumentError(message)
    path = os.fspath(path)
    if path in ("", ":memory:"):
        message = (
            "customers need a SQLite file (this engine keeps its data in "
            "memory)"
        )
        raise InvalidArgumentError(message)
    if not os.path.isfile(path):
        raise NotFoundError(f"{path}: no such database")
    return path


def _connect(target: Target) -> sqlite3.Connection:
    """
    Opens a connection in autocommit mode (transactions are explicit),
    with foreign keys on and a 10 s busy timeout.
    """
    db = sqlite3.connect(_path(target), timeout=10.0, isolation_level=None)
    db.execute("PRAGMA foreign_keys=ON")
    return db


def _live(db: sqlite3.Connection, customer_id: Any, name: str) -> None:
    """
    Checks that ``customer_id`` exists and is not merged.

    Raises:
        NotFoundError: It does not exist.
        InvalidArgumentError: It was merged into another customer.
    """
    if not isinstance(customer_id, str) or not customer_id:
        message = f"{name} must be a customer id (got {customer_id!r})"
        raise InvalidArgumentError(message)
    row = db.execute(
        "SELECT merged_into FROM customers WHERE id = ?", (customer_id,)
    ).fetchone()
    if row is None:
        raise NotFoundError(f'{name}: customer "{customer_id}" not found')
    if row[0] is not None:
        message = (
            f'{name}: customer "{customer_id}" was merged into "{row[0]}"'
        )
        raise InvalidArgumentError(message)


def find_duplicates(
    target: Target, *, threshold: float = 0.9, block: int = 2
) -> pd.DataFrame:
    """
    Returns pairs of live (not merged) customers that look like one
    person.

    A pair shares a normalised identity (reason ``email``, ``phone``,
    ``web`` or ``source``, score 1) or has names at least ``threshold``
    similar (reason ``name``, score the similarity).  Names are compared
    within blocks of the same first ``block`` folded characters (one for
    CJK names), so the cost stays near linear.

    Args:
        target: A file-backed engine or a database path.
        threshold: The least name similarity reported (0 to 1).
        block: Length of the blocking key.

    Returns:
        A DataFrame ordered by score (descending), then ids: customer_a,
        customer_b (customer_a < customer_b), reasons (sorted, joined by
        ``+``), score (float), name_a, name_b.

    Raises:
        InvalidArgumentError: A bad threshold or a memory engine.
    """
    if not 0 <= threshold <= 1:
        message = f"threshold must be between 0 and 1 ({threshold!r})"
        raise InvalidArgumentError(message)
    with contextlib.closing(_connect(target)) as db:
        shared = pd.read_sql_query(
            "SELECT DISTINCT a.customer_id AS customer_a, "
            "b.customer_id AS customer_b, a.kind AS reason, "
            "1.0 AS score FROM identities a JOIN identities b "
            "ON a.kind = b.kind AND a.normalized = b.normalized "
            "AND a.customer_id < b.customer_id "
            "JOIN customers ca ON ca.id = a.customer_id "
            "JOIN customers cb ON cb.id = b.customer_id "
            "WHERE ca.merged_into IS NULL AND cb.merged_into IS NULL",
            db,
        )
        people = pd.read_sql_query(
            "SELECT id, name FROM customers WHERE merged_into IS NULL "
            "AND name IS NOT NULL ORDER BY id",
            db,
        )
    pairs = [shared]
    if len(people) > 1:
        folded = people["name"].map(fold_name)
        cjk = folded.str.contains(_CJK.pattern, regex=True)
        key = np.where(
            cjk, folded.str[:1], folded.str.replace(" ", "").str[:block]
        )
        found = []
        frame = pd.DataFrame(
            {"id": people["id"], "name": people["name"], "key": key}
        )
        for _, group in frame[frame["key"] != ""].groupby("key"):
            if len(group) < 2:
                continue
            ids = group["id"].tolist()
            names = group["name"].tolist()
            for i in range(len(ids)):
                for j in range(i + 1, len(ids)):
                    score = name_similarity(names[i], names[j])
                    if score >= threshold:
                        a, b = sorted((ids[i], ids[j]))
                        found.append((a, b, "name", score))
        pairs.append(
            pd.DataFrame(
                found, columns=["customer_a", "customer_b", "reason", "score"]
            )
        )
    nonempty = [p for p in pairs if len(p)]
    # No pair at all (e.g. an empty customer table) gives an empty frame.
    allpairs = (
        pd.concat(nonempty, ignore_index=True) if nonempty else pd.DataFrame()
    )
    columns = ["customer_a", "customer_b", "reasons", "score"]
    if allpairs.empty:
        out = pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
        out["score"] = out["score"].astype(float)
    else:
        out = (
            allpairs.groupby(["customer_a", "customer_b"], as_index=False)
            .agg(
                reasons=("reason", lambda r: "+".join(sorted(set(r)))),
                score=("score", "max"),
            )
            .sort_values(
                ["score", "customer_a", "customer_b"],
                ascending=[False, True, True],
            )
            .reset_index(drop=True)
        )
    names = dict(zip(people["id"], people["name"]))
    out["name_a"] = out["customer_a"].map(names)
    out["name_b"] = out["customer_b"].map(names)
    out["score"] = out["score"].astype(float)
    return out


def merge(
    target: Target,
    survivor: str,
    merged: str,
    *,
    actor: str,
    time: Optional[datetime.datetime] = None,
) -> int:
    """
    Merges customer ``merged`` into ``survivor``.

    The merged customer's transactions are re-pointed to the survivor
    (their history rows are untouched), its identities move unless the
    survivor already has the same one, customers merged into it before now
    point at the survivor, and it gets ``merged_into = survivor``.  Its
    own fields stay as they were.  Everything is recorded in ``merges``
    (``details``) so :func:`undo` can restore it.

    Args:
        target: A file-backed engine or a database path.
        survivor: The customer that remains.
        merged: The customer merged into it.
        actor: Who merges (recorded).
        time: When (default now), an aware datetime.

    Returns:
        The merge id.

    Raises:
        NotFoundError: Either customer does not exist.
        InvalidArgumentError: Same customer twice, one already merged, or
            no actor.
    """
    if not isinstance(actor, str) or not actor:
        raise InvalidArgumentError("actor must be a non-empty string")
    if survivor == merged:
        message = f'cannot merge customer "{survivor}" into itself'
        raise InvalidArgumentError(message)
    from crmflow.orm import format_time

    when = _now_iso() if time is None else format_time(time)
    db = _connect(target)
    try:
        db.execute("BEGIN IMMEDIATE")
        _live(db, survivor, "survivor")
        _live(db, merged, "merged")
        txns = [
            r[0]
            for r in db.execute(
                "SELECT id FROM transactions WHERE customer_id = ? "
                "ORDER BY id",
                (merged,),
            )
        ]
        moved = [
            r[0]
            for r in db.execute(
                "SELECT i.id FROM identities i WHERE i.customer_id = ? "
                "AND NOT EXISTS (SELECT 1 FROM identities s WHERE "
                "s.customer_id = ? AND s.kind = i.kind AND "
                "s.normalized = i.normalized) ORDER BY i.id",
                (merged, survivor),
            )
        ]
        absorbed = [
            r[0]
            for r in db.execute(
                "SELECT id FROM customers WHERE merged_into = ? ORDER BY id",
                (merged,),
            )
        ]
        updated_at = db.execute(
            "SELECT updated_at FROM customers WHERE id = ?", (merged,)
        ).fetchone()[0]
        db.execute(
            "UPDATE transactions SET customer_id = ? WHERE customer_id = ?",
            (survivor, merged),
        )
        db.executemany(
            "UPDATE identities SET customer_id = ? WHERE id = ?",
            [(survivor, i) for i in moved],
        )
        db.execute(
            "UPDATE customers SET merged_into = ? WHERE merged_into = ?",
            (survivor, merged),
        )
        db.execute(
            "UPDATE customers SET merged_into = ?, updated_at = ? "
            "WHERE id = ?",
            (survivor, when, merged),
        )
        details = {
            "transactions": txns,
            "identities": moved,
            "customers": absorbed,
            "merged_updated_at": updated_at,
        }
        cur = db.execute(
            "INSERT INTO merges(survivor, merged, actor, time, details) "
            "VALUES (?, ?, ?, ?, ?)",
            (survivor, merged, actor, when, json.dumps(details)),
        )
        merge_id = int(cur.lastrowid)
        db.execute("COMMIT")
        return merge_id
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    finally:
        db.close()


def undo(
    target: Target, merge_id: int, *, time: Optional[datetime.datetime] = None
) -> None:
    """
    Undoes merge ``merge_id``: the transactions, identities and customers
    it moved go back to the merged customer, which is live again with its
    earlier ``updated_at``; the merge row gets ``undone_at``.

    Raises:
        NotFoundError: No such merge.
        InvalidArgumentError: It was undone already, or something it moved
            has moved on since (undo the later merge first); the message
            names it.
    """
    from crmflow.orm import format_time

    when = _now_iso() if time is None else format_time(time)
    db = _connect(target)
    try:
        db.execute("BEGIN IMMEDIATE")
        row = db.execute(
            "SELECT survivor, merged, details, undone_at FROM merges "
            "WHERE id = ?",
            (merge_id,),
        ).fetchone()
        if row is None:
            raise NotFoundError(f"merge {merge_id} not found")
        survivor, merged, details, undone_at = row
        if undone_at is not None:
            message = f"merge {merge_id} was undone at {undone_at}"
            raise InvalidArgumentError(message)
        details = json.loads(details)
        state = db.execute(
            "SELECT merged_into FROM customers WHERE id = ?", (merged,)
        ).fetchone()
        if state is None or state[0] != survivor:
            message = (
                f'merge {merge_id}: customer "{merged}" is no longer merged '
                f'into "{survivor}"'
            )
            raise InvalidArgumentError(message)
        checks = (
            ("transactions", "customer_id", details["transactions"]),
            ("identities", "customer_id", details["identities"]),
            ("customers", "merged_into", details["customers"]),
        )
        for table, column, ids in checks:
            for chunk in range(0, len(ids), 500):
                part = ids[chunk : chunk + 500]
                marks = ",".join("?" * len(part))
                moved_on = db.execute(
                    f"SELECT id FROM {table} WHERE id IN ({marks}) AND "
                    f"{column} IS NOT ? LIMIT 1",
                    (*part, survivor),
                ).fetchone()
                if moved_on is not None:
                    message = (
                        f"merge {merge_id}: {table} {moved_on[0]!r} moved "
                        "on since (undo the later merge first)"
                    )
                    raise InvalidArgumentError(message)
        db.executemany(
            "UPDATE transactions SET customer_id = ? WHERE id = ?",
            [(merged, t) for t in details["transactions"]],
        )
        db.executemany(
            "UPDATE identities SET customer_id = ? WHERE id = ?",
            [(merged, i) for i in details["identities"]],
        )
        db.executemany(
            "UPDATE customers SET merged_into = ? WHERE id = ?",
            [(merged, c) for c in details["customers"]],
        )
        db.execute(
            "UPDATE customers SET merged_into = NULL, updated_at = ? "
            "WHERE id = ?",
            (details["merged_updated_at"], merged),
        )
        db.execute(
            "UPDATE merges SET undone_at = ? WHERE id = ?", (when, merge_id)
        )
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    finally:
        db.close()


@dataclasses.dataclass(frozen=True)
class Customer360:
    """
    Everything about one customer.

    Attributes:
        customer: Its row (id, name, email, phone, attributes as a dict,
            created_at, updated_at).
        identities: DataFrame: kind, value, normalized, source,
            customer_id (the customer, or one merged into it).
        orders, requests, feedback, complaints: DataFrames of its
            transactions of kind sales_order, service_request, feedback
            and complaint: id, kind, state, created_at, updated_at
            (``datetime64[us, UTC]``), open (bool), attributes (dicts of
            typed values).
        lifetime_value: Sum of the ``amount`` attribute of its sales
            orders not canceled, rejected or returned (Decimal; 0 when
            none).
        open_items: Its transactions (any kind) not in a terminal state,
            as a DataFrame like ``orders``.
        latest_satisfaction: The ``score`` of its latest feedback (by
            created_at), or None.
    """

    customer: Dict[str, Any]
    identities: pd.DataFrame
    orders: pd.DataFrame
    requests: pd.DataFrame
    feedback: pd.DataFrame
    complaints: pd.DataFrame
    lifetime_value: decimal.Decimal
    open_items: pd.DataFrame
    latest_satisfaction: Optional[int]


def _terminal_states(db: sqlite3.Connection) -> Dict[str, set]:
    """
    Returns {kind: terminal state names} from the latest stored workflow
    definition of each kind.
    """
    out: Dict[str, set] = {}
    rows = db.execute(
        "SELECT w.name, w.definition FROM workflows w WHERE w.version = "
        "(SELECT max(version) FROM workflows v WHERE v.name = w.name)"
    )
    for name, definition in rows:
        try:
            states = json.loads(definition).get("states", [])
        except (TypeError, ValueError):
            continue
        out[name] = {s["name"] for s in states if s.get("role") == "terminal"}
    return out


def _group(db: sqlite3.Connection, customer_id: str) -> List[str]:
    """
    Returns the customer and every customer merged into it (at any
    depth).
    """
    rows = db.execute(
        "WITH RECURSIVE g(id) AS (SELECT ? UNION SELECT c.id FROM customers "
        "c JOIN g ON c.merged_into = g.id) SELECT id FROM g ORDER BY id",
        (customer_id,),
    )
    return [r[0] for r in rows]


def customer_360(target: Target, customer_id: str) -> Customer360:
    """
    Returns the 360 view of a customer: its transactions by kind, lifetime
    value, open items and latest satisfaction.

    A merged customer's id gives the view of its survivor.  Transactions
    still pointing at a customer merged into this one (written after the
    merge) are included.

    Raises:
        NotFoundError: No such customer.
        InvalidArgumentError: The id is not a string of UTF-8 text.
    """
    from crmflow.engine import _check_str
    from crmflow.orm import attribute_value

    _check_str(customer_id, "customer id")
    with contextlib.closing(_connect(target)) as db:
        row = db.execute(
            "SELECT id, name, email, phone, attributes, created_at, "
            "updated_at, merged_into FROM customers WHERE id = ?",
            (customer_id,),
        ).fetchone()
        if row is None:
            raise NotFoundError(f'customer "{customer_id}" not found')
        while row[7] is not None:
            row = db.execute(
                "SELECT id, name, email, phone, attributes, created_at, "
                "updated_at, merged_into FROM customers WHERE id = ?",
                (row[7],),
            ).fetchone()
        group = _group(db, row[0])
        marks = ",".join("?" * len(group))
        txns = pd.read_sql_query(
            "SELECT id, kind, state, created_at, updated_at FROM "
            f"transactions WHERE customer_id IN ({marks}) ORDER BY "
            "created_at, id",
            db,
            params=group,
        )
        attrs = pd.read_sql_query(
            "SELECT a.transaction_id, a.name, a.type, a.value FROM "
            "attributes a JOIN transactions t ON t.id = a.transaction_id "
            f"WHERE t.customer_id IN ({marks}) ORDER BY a.rowid",
            db,
            params=group,
        )
        identities = pd.read_sql_query(
            "SELECT kind, value, normalized, source, customer_id FROM "
            f"identities WHERE customer_id IN ({marks}) ORDER BY id",
            db,
            params=group,
        )
        terminal = _terminal_states(db)
    typed: Dict[str, Dict[str, Any]] = {t: {} for t in txns["id"]}
    for tid, name, type_, value in attrs.itertuples(index=False):
        typed[tid][name] = attribute_value(type_, value)
    for column in ("created_at", "updated_at"):
        txns[column] = pd.to_datetime(txns[column], utc=True).astype(
            "datetime64[us, UTC]"
        )
    txns["open"] = [
        state not in terminal.get(kind, ())
        for kind, state in zip(txns["kind"], txns["state"])
    ]
    txns["attributes"] = [typed[t] for t in txns["id"]]
    views = {
        name: txns[txns["kind"] == kind].reset_index(drop=True)
        for name, kind in _VIEW_KINDS.items()
    }
    orders = views["orders"]
    value = decimal.Decimal(0)
    for state, a in zip(orders["state"], orders["attributes"]):
        amount = a.get("amount")
        if amount is not None and state not in _LOST_ORDER_STATES:
            value += decimal.Decimal(amount)
    feedback = views["feedback"]
    latest = None
    if len(feedback):
        scores = feedback["attributes"].map(lambda a: a.get("score"))
        scored = feedback[scores.notna()]
        if len(scored):
            last = scored.sort_values(["created_at", "id"]).iloc[-1]
            latest = int(last["attributes"]["score"])
    customer = {
        "id": row[0],
        "name": row[1],
        "email": row[2],
        "phone": row[3],
        "attributes": json.loads(row[4]) if row[4] else {},
        "created_at": attribute_value("timestamp", row[5]),
        "updated_at": attribute_value("timestamp", row[6]),
    }
    return Customer360(
        customer=customer,
        identities=identities,
        orders=orders,
        requests=views["requests"],
        feedback=feedback,
        complaints=views["complaints"],
        lifetime_value=value,
        open_items=txns[txns["open"]].reset_index(drop=True),
        latest_satisfaction=latest,
    )


def repeat_customers(
    target: Target, *, kind: str = "sales_order", min_count: int = 2
) -> pd.DataFrame:
    """
    Returns the live customers with at least ``min_count`` transactions of
    ``kind``, counting those of customers merged into them.

    Returns:
        A DataFrame ordered by count (descending), then id: customer_id,
        count (int64).
    """
    with contextlib.closing(_connect(target)) as db:
        frame = pd.read_sql_query(
            "WITH RECURSIVE root(id, top) AS ("
            "SELECT id, id FROM customers WHERE merged_into IS NULL "
            "UNION ALL SELECT c.id, r.top FROM customers c JOIN root r "
            "ON c.merged_into = r.id) "
            "SELECT r.top AS customer_id, count(*) AS count FROM "
            "transactions t JOIN root r ON r.id = t.customer_id "
            "WHERE t.kind = ? GROUP BY r.top HAVING count(*) >= ? "
            "ORDER BY count DESC, customer_id",
            db,
            params=(kind, min_count),
        )
    frame["count"] = frame["count"].astype(np.int64)
    return frame
