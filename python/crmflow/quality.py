"""
The data quality report of a crmflow database (``crmflow check``).

:func:`check` looks for:

``missing_required``
    a transaction without a value for an attribute its workflow (latest
    stored version of its kind) declares required;
``invalid_email`` / ``invalid_phone``
    a customer e-mail or phone (or identity of that kind) that does not
    normalise (see :mod:`crmflow.customers`; phones without ``+`` are
    read with ``default_country``);
``stale``
    a live customer, or a transaction not in a terminal state, not
    updated for ``stale_days`` days;
``orphan``
    a transaction whose customer has no row (only when the database has
    customers), a history row, attribute or identity whose transaction or
    customer does not exist, a customer merged into a missing one, a
    timer, SLA event, outbox row or assignment of a missing transaction;
``state_mismatch``
    a transaction whose state is not the to_state of its last history row
    (or that has no history);
``duplicate_id``
    customer or transaction ids that differ only by case or blanks around
    them (a sign of a bad import);
``duplicate_number``
    two transactions of a numbered kind carrying the same number (and
    year, with a yearly reset), say ``CASE-0042`` and ``CASE-42``.

Every check is one SQL query or one vectorised pandas step.

Example::

    report = crmflow.quality.check("crm.db", stale_days=180)
    if not report.ok:
        print(report.counts())
        print(report.problems.head())

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import re
from typing import Any, Dict, List, Optional


from crmflow import _pandas as pd  # pandas on first use
from crmflow import customers as _customers
from crmflow._errors import InvalidArgumentError

__all__ = ["CHECKS", "QualityReport", "check"]

CHECKS = (
    "missing_required",
    "invalid_email",
    "invalid_phone",
    "stale",
    "orphan",
    "state_mismatch",
    "duplicate_id",
    "duplicate_number",
)
_COLUMNS = ["check", "table", "id", "field", "detail"]
_UTC = datetime.timezone.utc


@dataclasses.dataclass(frozen=True)
class QualityReport:
    """
    The problems found.

    Attributes:
        problems: DataFrame, one row per problem: check (one of
            :data:`CHECKS`), table, id (the row's key as text), field
            (column or attribute, or None), detail.
        checked_at: When the report was made (aware UTC).
        stale_days: The staleness limit used.
    """

    problems: pd.DataFrame
    checked_at: datetime.datetime
    stale_days: int

    @property
    def ok(self) -> bool:
        """
        True when no problem was found.
        """
        return self.problems.empty

    def counts(self) -> Dict[str, int]:
        """
        Returns {check: number of problems} for every check (0 included).
        """
        found = self.problems["check"].value_counts()
        return {c: int(found.get(c, 0)) for c in CHECKS}

    def to_dict(self) -> Dict[str, Any]:
        """
        Returns the report as JSON-serialisable data: ``{"ok", "checked_at",
        "stale_days", "counts", "problems": [{check, table, id, field,
        detail}]}``.
        """
        rows = self.problems.astype(object).where(
            self.problems.notna(), None
        )
        return {
            "ok": self.ok,
            "checked_at": self.checked_at.isoformat(),
            "stale_days": self.stale_days,
            "counts": self.counts(),
            "problems": rows.to_dict(orient="records"),
        }

    def __str__(self) -> str:
        if self.ok:
            return "no problems found"
        lines = [
            f"{n} {c}" for c, n in self.counts().items() if n
        ]
        text = "problems: " + ", ".join(lines)
        for r in self.problems.head(20).itertuples(index=False):
            where = f"{r.table} {r.id}" + (f" {r.field}" if r.field else "")
            text += f"\n  {r.check}: {where}: {r.detail}"
        if len(self.problems) > 20:
            text += f"\n  ... {len(self.problems) - 20} more"
        return text


def _frame(rows: pd.DataFrame, check: str, table: str) -> pd.DataFrame:
    """
    Returns query rows (id, field, detail) as problem rows.
    """
    out = pd.DataFrame(
        {
            "check": check,
            "table": table,
            "id": rows["id"].astype(str),
            "field": rows["field"] if "field" in rows else None,
            "detail": rows["detail"],
        }
    )
    return out.astype({"field": object})


def _required(db: Any) -> List[pd.DataFrame]:
    """
    Returns missing required attributes, per kind.
    """
    out = []
    rows = db.execute(
        "SELECT w.name, w.definition FROM workflows w WHERE w.version = "
        "(SELECT max(version) FROM workflows v WHERE v.name = w.name)"
    ).fetchall()
    for kind, definition in rows:
        try:
            attributes = json.loads(definition).get("attributes", [])
        except (TypeError, ValueError):
            continue
        for a in attributes:
            if not a.get("required"):
                continue
            found = pd.read_sql_query(
                "SELECT t.id AS id, ? AS field, 'required attribute of ' "
                "|| t.kind || ' has no value' AS detail FROM transactions t "
                "LEFT JOIN attributes a ON a.transaction_id = t.id AND "
                "a.name = ? WHERE t.kind = ? AND a.value IS NULL "
                "ORDER BY t.id",
                db,
                params=(a["name"], a["name"], kind),
            )
            out.append(_frame(found, "missing_required", "transactions"))
    return out


def _contacts(db: Any, default_country: Optional[str]) -> List[pd.DataFrame]:
    """
    Returns invalid e-mails and phones of customers and identities.
    """
    out = []
    rows = pd.read_sql_query(
        "SELECT 'customers' AS tbl, id, 'email' AS field, email AS value "
        "FROM customers WHERE email IS NOT NULL UNION ALL "
        "SELECT 'customers', id, 'phone', phone FROM customers "
        "WHERE phone IS NOT NULL UNION ALL "
        "SELECT 'identities', id, kind, value FROM identities "
        "WHERE kind IN ('email', 'phone')",
        db,
    )
    if rows.empty:
        return out
    email = rows["field"] == "email"
    folded = rows["value"].str.strip().str.lower()
    bad_email = email & ~folded.str.match(_customers.EMAIL_PATTERN)
    phone = ~email

    def phone_ok(v: str) -> bool:
        try:
            _customers.normalize_phone(v, default_country)
        except InvalidArgumentError:
            return False
        return True

    bad_phone = phone & ~rows["value"].where(phone, "").map(phone_ok)
    for mask, check, expected in (
        (bad_email, "invalid_email", "expected local@domain.tld"),
        (bad_phone, "invalid_phone", "expected +CC and 8 to 15 digits"),
    ):
        bad = rows[mask]
        for table in ("customers", "identities"):
            part = bad[bad["tbl"] == table]
            if part.empty:
                continue
            detail = '"' + part["value"] + '" (' + expected + ")"
            out.append(
                _frame(
                    pd.DataFrame(
                        {
                            "id": part["id"],
                            "field": part["field"],
                            "detail": detail,
                        }
                    ),
                    check,
                    table,
                )
            )
    return out


def _terminal_pairs(db: Any) -> pd.DataFrame:
    """
    Returns (kind, state) rows of the terminal states of every kind.
    """
    terminal = _customers._terminal_states(db)
    pairs = [(k, s) for k, states in terminal.items() for s in states]
    return pd.DataFrame(pairs, columns=["kind", "state"])


# Tables of the SLA and routing modules that point at a transaction; they
# exist only in files those modules were used on.
_TRANSACTION_TABLES = ("timers", "sla_events", "outbox", "assignments")
# Number format fields (see numbering.h) as regular expressions.
_NUMBER_FIELDS = {
    "year": r"(?P<year>\d{4})",
    "yy": r"\d{2}",
    "month": r"\d{2}",
    "day": r"\d{2}",
}


def _tables(db: Any) -> List[str]:
    """
    Returns the names of the tables in the file.
    """
    return [r[0] for r in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")]


def _orphans(db: Any, tables: List[str]) -> List[pd.DataFrame]:
    """
    Returns rows of the module tables whose transaction does not exist.
    """
    out = []
    for table in _TRANSACTION_TABLES:
        if table not in tables:
            continue
        found = pd.read_sql_query(
            f"SELECT x.id, 'transaction_id' AS field, 'transaction \"' || "
            f"x.transaction_id || '\" does not exist' AS detail FROM "
            f"\"{table}\" x WHERE NOT EXISTS (SELECT 1 FROM transactions t "
            f"WHERE t.id = x.transaction_id) ORDER BY x.id",
            db,
        )
        out.append(_frame(found, "orphan", table))
    return out


def _number_pattern(format: str) -> Optional["re.Pattern[str]"]:
    """
    Returns a regular expression matching the ids a number format issues
    (group ``n`` the number, ``year`` the year when present), or None
    for a format this check cannot read.
    """
    out = ""
    i = 0
    while i < len(format):
        c = format[i]
        if format.startswith("{{", i) or format.startswith("}}", i):
            out += re.escape(c)
            i += 2
            continue
        if c != "{":
            out += re.escape(c)
            i += 1
            continue
        close = format.find("}", i)
        if close < 0:
            return None
        field = format[i + 1:close]
        if field == "n" or field.startswith("n:"):
            out += r"(?P<n>\d+)"
        elif field in _NUMBER_FIELDS:
            out += _NUMBER_FIELDS[field]
        else:
            return None
        i = close + 1
    return re.compile(out)


def _numbers(db: Any, tables: List[str]) -> List[pd.DataFrame]:
    """
    Returns numbers issued twice within a kind (and period).
    """
    if "numbering" not in tables:
        return []
    rows = []
    specs = db.execute("SELECT kind, format, yearly_reset FROM numbering")
    for kind, format, yearly in specs.fetchall():
        pattern = _number_pattern(format)
        if pattern is None:
            continue
        seen: Dict[Any, str] = {}
        ids = db.execute(
            "SELECT id FROM transactions WHERE kind = ? ORDER BY id", (kind,))
        for (tid,) in ids:
            m = pattern.fullmatch(tid)
            if m is None:
                continue
            year = m.groupdict().get("year")
            period = int(year) if yearly and year else 0
            n = int(m.group("n"))
            key = (period, n)
            if key in seen:
                rows.append((tid, f"number {n} also issued as "
                                  f"\"{seen[key]}\""))
                continue
            seen[key] = tid
    if not rows:
        return []
    found = pd.DataFrame(rows, columns=["id", "detail"]).assign(field="id")
    return [_frame(found, "duplicate_number", "transactions")]


def check(
    target: Any,
    *,
    stale_days: int = 365,
    now: Optional[datetime.datetime] = None,
    default_country: Optional[str] = None,
) -> QualityReport:
    """
    Returns the data quality report of a crmflow database.

    Args:
        target: A file-backed :class:`crmflow.Engine` or a database path.
        stale_days: Days without an update after which a live customer or
            an open transaction is stale.
        now: The time staleness is measured from (default now), aware.
        default_country: Calling code for phones written without ``+``.

    Returns:
        The :class:`QualityReport`.

    Raises:
        InvalidArgumentError: A bad argument or a memory engine.
        NotFoundError: The file does not exist.
    """
    if isinstance(stale_days, bool) or not isinstance(stale_days, int):
        raise InvalidArgumentError("stale_days must be an integer")
    if stale_days < 0:
        raise InvalidArgumentError(f"stale_days must be >= 0 ({stale_days})")
    from crmflow.orm import format_time

    now = datetime.datetime.now(_UTC) if now is None else now
    cutoff = format_time(now - datetime.timedelta(days=stale_days))
    parts: List[pd.DataFrame] = []
    with contextlib.closing(_customers._connect(target)) as db:
        db.execute("BEGIN")
        tables = _tables(db)
        parts += _required(db)
        parts += _orphans(db, tables)
        parts += _numbers(db, tables)
        parts += _contacts(db, default_country)

        # Stale: open transactions (terminal states from the workflows).
        terminal = _terminal_pairs(db)
        open_txns = pd.read_sql_query(
            "SELECT id, kind, state, updated_at FROM transactions "
            "WHERE updated_at < ? ORDER BY id",
            db,
            params=(cutoff,),
        )
        if len(open_txns):
            keys = pd.MultiIndex.from_frame(open_txns[["kind", "state"]])
            done = keys.isin(pd.MultiIndex.from_frame(terminal)) if len(
                terminal
            ) else False
            stale = open_txns[~pd.Series(done, index=open_txns.index)]
            stale = stale.assign(
                field="updated_at",
                detail="open (" + stale["state"] + ") and not updated since "
                + stale["updated_at"],
            )
            parts.append(_frame(stale, "stale", "transactions"))
        queries = [
            (
                "stale",
                "customers",
                "SELECT id, 'updated_at' AS field, 'not updated since ' || "
                "updated_at AS detail FROM customers WHERE merged_into IS "
                "NULL AND updated_at < ?1 ORDER BY id",
            ),
            (
                "orphan",
                "transactions",
                "SELECT t.id, 'customer_id' AS field, 'customer \"' || "
                "t.customer_id || '\" has no row' AS detail FROM "
                "transactions t WHERE t.customer_id IS NOT NULL AND EXISTS "
                "(SELECT 1 FROM customers) AND NOT EXISTS (SELECT 1 FROM "
                "customers c WHERE c.id = t.customer_id) ORDER BY t.id",
            ),
            (
                "orphan",
                "history",
                "SELECT h.seq AS id, 'transaction_id' AS field, "
                "'transaction \"' || h.transaction_id || '\" does not "
                "exist' AS detail FROM history h WHERE NOT EXISTS (SELECT 1 "
                "FROM transactions t WHERE t.id = h.transaction_id) "
                "ORDER BY h.seq",
            ),
            (
                "orphan",
                "attributes",
                "SELECT a.transaction_id || '/' || a.name AS id, "
                "'transaction_id' AS field, 'transaction does not exist' "
                "AS detail FROM attributes a WHERE NOT EXISTS (SELECT 1 "
                "FROM transactions t WHERE t.id = a.transaction_id)",
            ),
            (
                "orphan",
                "identities",
                "SELECT i.id, 'customer_id' AS field, 'customer \"' || "
                "i.customer_id || '\" does not exist' AS detail FROM "
                "identities i WHERE NOT EXISTS (SELECT 1 FROM customers c "
                "WHERE c.id = i.customer_id) ORDER BY i.id",
            ),
            (
                "orphan",
                "customers",
                "SELECT c.id, 'merged_into' AS field, 'customer \"' || "
                "c.merged_into || '\" does not exist' AS detail FROM "
                "customers c WHERE c.merged_into IS NOT NULL AND NOT EXISTS "
                "(SELECT 1 FROM customers s WHERE s.id = c.merged_into) "
                "ORDER BY c.id",
            ),
            (
                "state_mismatch",
                "transactions",
                "SELECT t.id, 'state' AS field, CASE WHEN h.to_state IS "
                "NULL THEN 'no history row' ELSE 'state \"' || t.state || "
                "'\" but last history row says \"' || h.to_state || '\"' "
                "END AS detail FROM transactions t LEFT JOIN history h ON "
                "h.seq = (SELECT max(seq) FROM history x WHERE "
                "x.transaction_id = t.id) WHERE h.to_state IS NULL OR "
                "h.to_state IS NOT t.state ORDER BY t.id",
            ),
            (
                "duplicate_id",
                "customers",
                "SELECT id, 'id' AS field, 'same as ' || (SELECT "
                "group_concat('\"' || o.id || '\"', ', ') FROM customers o "
                "WHERE o.id <> c.id AND lower(trim(o.id)) = "
                "lower(trim(c.id))) || ' up to case and blanks' AS detail "
                "FROM customers c WHERE EXISTS (SELECT 1 FROM customers o "
                "WHERE o.id <> c.id AND lower(trim(o.id)) = "
                "lower(trim(c.id))) ORDER BY id",
            ),
            (
                "duplicate_id",
                "transactions",
                "SELECT id, 'id' AS field, 'same as another id up to case "
                "and blanks' AS detail FROM transactions t WHERE "
                "lower(trim(id)) IN (SELECT lower(trim(id)) FROM "
                "transactions GROUP BY lower(trim(id)) HAVING count(*) > 1) "
                "ORDER BY id",
            ),
        ]
        for check_name, table, sql in queries:
            params = (cutoff,) if "?1" in sql else ()
            found = pd.read_sql_query(sql, db, params=params)
            if len(found):
                parts.append(_frame(found, check_name, table))
        db.execute("COMMIT")
    parts = [p for p in parts if len(p)]
    if parts:
        problems = pd.concat(parts, ignore_index=True)
    else:
        problems = pd.DataFrame(
            {c: pd.Series(dtype=object) for c in _COLUMNS}
        )
    return QualityReport(
        problems=problems[_COLUMNS],
        checked_at=now.astimezone(_UTC),
        stale_days=stale_days,
    )
