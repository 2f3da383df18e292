"""
The ``crmflow`` command line.

Commands::

    crmflow demo [--db PATH]
    crmflow import --db PATH --preset NAME FILE
    crmflow import --db PATH --kind KIND --case COL --activity COL
                   --time COL [--actor COL] ... FILE
    crmflow fire --db PATH ID EVENT [--actor A] [--time T] [--payload JSON]
    crmflow show --db PATH ID [--tz ZONE]
    crmflow report --db PATH [--json]
    crmflow check --db PATH [--json] [--stale-days N] [--country CC]
    crmflow customers --db PATH [--duplicates] [--threshold X]
    crmflow run --db PATH [--every SECONDS] [--until ISO] [--from ISO]
                [--policies FILE]
    crmflow rules list --db PATH
    crmflow rules add --db PATH NAME --kind KIND [--trigger T] [--on X]
                      [--when EXPR] [--action LINE ...] [--priority N]
    crmflow rules disable|enable|remove --db PATH NAME

``demo`` imports the bundled samples (Olist orders and reviews, ServiceNow
incidents) into ``crmflow-demo.db`` in the working directory (or
``--db``) and prints what each import did and the report; running it
again adds nothing (the summaries then count as skipped the creations,
transitions and deviations already stored).  Every command has
``--help``.
Errors print one line ``crmflow: error: ...`` on stderr and exit with
status 1 (2 for bad arguments).  ``check`` prints the data quality
report and exits with status 3 when it found problems.

.. versionadded:: 0.1.0
"""

import argparse
import json
import os
import sqlite3
import sys
from typing import Any, Dict, List, Optional, Sequence

__all__ = ["main", "format_duration", "format_report"]

_DEMO_PRESETS = ("olist-orders", "olist-reviews", "servicenow-incidents")


class _UsageError(Exception):
    """
    Bad command-line arguments (exit status 2).
    """


class _Parser(argparse.ArgumentParser):
    """
    An ArgumentParser whose errors are one line, raised instead of
    printed, so main() reports them like every other error.
    """

    def error(self, message: str) -> "Any":  # type: ignore[override]
        raise _UsageError(f"{message} (see '{self.prog} --help')")


def format_duration(seconds: Optional[float]) -> str:
    """
    Returns a duration in a short human form: ``45s``, ``12m 5s``,
    ``3h 20m``, ``3d 4h``; ``-`` for None.

    Args:
        seconds: The duration in seconds, or None.
    """
    if seconds is None:
        return "-"
    sign = "-" if seconds < 0 else ""
    s = int(round(abs(seconds)))
    if s < 60:
        if 0 < abs(seconds) < 1:
            return f"{sign}{abs(seconds):.3g}s"
        return f"{sign}{s}s"
    if s < 3600:
        return f"{sign}{s // 60}m {s % 60}s"
    if s < 86400:
        return f"{sign}{s // 3600}h {s % 3600 // 60}m"
    return f"{sign}{s // 86400}d {s % 86400 // 3600}h"


def _counts(counts: Dict[str, int]) -> str:
    """
    Returns ``{state: n}`` as ``state n, ...`` by count, then name.
    """
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{k} {v}" for k, v in items) or "-"


def format_report(report: Dict[str, Any]) -> str:
    """
    Returns the text form of :meth:`crmflow.Engine.report`: per kind the
    transactions by current state, the cases that reached each state, per
    transition the count, median and 90th percentile of the time spent
    before it, and the deviations.
    """
    lines: List[str] = []
    kinds = report.get("kinds", {})
    if not kinds:
        return "no transactions\n"
    for kind in sorted(kinds):
        k = kinds[kind]
        lines.append(
            f"{kind}: {k['transactions']} transactions, "
            f"{k['deviations']} deviations"
        )
        lines.append(f"  by state: {_counts(k['by_state'])}")
        lines.append(f"  reached:  {_counts(k['reached'])}")
        rows = [
            (
                f"{t['from'] or '(create)'} -> {t['to']}",
                t["event"],
                str(t["count"]),
                format_duration(t["median_seconds"]),
                format_duration(t["p90_seconds"]),
            )
            for t in k["transitions"]
        ]
        if rows:
            head = ("transition", "event", "count", "median", "p90")
            widths = [
                max(len(r[i]) for r in rows + [head]) for i in range(5)
            ]
            for r in [head] + rows:
                cells = [
                    r[i].ljust(widths[i]) if i < 2 else r[i].rjust(widths[i])
                    for i in range(5)
                ]
                lines.append("    " + "  ".join(cells).rstrip())
        lines.append("")
    return "\n".join(lines)


def _local_zone() -> str:
    """
    Returns the IANA name of the local zone (TZ, /etc/localtime), or UTC.
    """
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz and "/" in tz or tz == "UTC":
        return tz
    try:
        target = os.path.realpath("/etc/localtime")
    except OSError:
        return "UTC"
    marker = "zoneinfo" + os.sep
    if marker in target:
        return target.split(marker, 1)[1]
    return "UTC"


def _open(path: str, must_exist: bool = True) -> Any:
    """
    Opens the engine of database ``path``.

    Raises:
        NotFoundError: ``must_exist`` and there is no such file.
    """
    import crmflow

    if must_exist and not os.path.isfile(path):
        raise crmflow.NotFoundError(f"{path}: no such database")
    return crmflow.Engine(path)


def _print_summary(name: str, summary: Any, out: Any) -> None:
    """
    Prints an import summary and its first rejects.
    """
    print(f"{name}: {summary}", file=out)
    for r in summary.rejects[:10]:
        print(f"  rejected {r}", file=out)
    if len(summary.rejects) > 10:
        print(f"  ... {len(summary.rejects) - 10} more rejects", file=out)


def _cmd_demo(args: argparse.Namespace, out: Any) -> int:
    """
    Imports the bundled samples and prints the report.
    """
    engine = _open(args.db, must_exist=False)
    with engine:
        print(f"database {os.path.abspath(args.db)}", file=out)
        for name in _DEMO_PRESETS:
            _print_summary(name, engine.import_preset(name), out)
        print("", file=out)
        out.write(format_report(engine.report()))
    return 0


def _json_arg(text: Optional[str], name: str) -> Any:
    """
    Parses a JSON option.

    Raises:
        _UsageError: The text is not JSON.
    """
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as e:
        raise _UsageError(f"{name} is not valid JSON ({e})") from None
    except RecursionError:
        raise _UsageError(f"{name} is nested too deeply") from None


class _ImportProgress:
    """
    Shows a tqdm bar of the bytes read while an import runs, when stderr
    is a terminal and tqdm is installed; does nothing otherwise.

    The importer runs in C++ with the GIL released, so a thread polls
    the bytes this process has read (``/proc/self/io``) against the file
    size.  Reads of the database count too: the bar is an estimate,
    capped at the file size.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._bar: Any = None
        self._thread: Any = None
        self._done: Any = None

    def __enter__(self) -> "_ImportProgress":
        if not sys.stderr.isatty():
            return self
        try:
            from tqdm.std import tqdm
        except ImportError:
            return self
        import threading

        from crmflow.analytics import _bytes_read

        start = _bytes_read()
        size = os.path.getsize(self._path)
        if start is None or size == 0:
            return self
        self._bar = tqdm(
            total=size, unit="B", unit_scale=True, file=sys.stderr,
            desc=os.path.basename(self._path), leave=False,
        )
        self._done = threading.Event()

        def poll() -> None:
            while not self._done.wait(0.1):
                done = min(size, (_bytes_read() or start) - start)
                self._bar.n = max(self._bar.n, done)
                self._bar.refresh()

        self._thread = threading.Thread(target=poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._done.set()
            self._thread.join()
            self._bar.close()


def _cmd_import(args: argparse.Namespace, out: Any) -> int:
    """
    Imports a file with a preset or an explicit event-log mapping.
    """
    if args.preset is None and not (
        args.kind and args.case and args.activity and args.time
    ):
        message = (
            "give --preset NAME, or --kind, --case, --activity and --time"
        )
        raise _UsageError(message)
    if not os.path.isfile(args.file):
        import crmflow

        raise crmflow.NotFoundError(f"{args.file}: no such file")
    engine = _open(args.db, must_exist=False)
    with engine:
        with _ImportProgress(args.file):
            if args.preset is not None:
                summary = engine.import_preset(args.preset, args.file,
                                               on_error=args.on_error)
                name = args.preset
            else:
                if args.kind not in engine.kinds():
                    engine.register(args.template or args.kind)
                activity_map = _json_arg(args.activity_map, "--activity-map")
                status_map = _json_arg(args.status_map, "--status-map")
                summary = engine.import_event_log(
                    args.file,
                    kind=args.kind,
                    case=args.case.split(","),
                    activity=args.activity,
                    time=args.time,
                    actor=args.actor,
                    customer=args.customer,
                    payload=args.payload.split(",") if args.payload else None,
                    activity_map=activity_map,
                    status_map=status_map,
                    time_format=args.time_format,
                    time_zone=args.time_zone,
                    null_values=args.null_value or (),
                    delimiter=args.delimiter,
                    on_error=args.on_error,
                )
                name = args.kind
        _print_summary(name, summary, out)
    return 0


def _cmd_fire(args: argparse.Namespace, out: Any) -> int:
    """
    Fires one event and prints the move.
    """
    payload = _json_arg(args.payload, "--payload")
    with _open(args.db) as engine:
        before = engine.get(args.id).state
        after = engine.fire(
            args.id,
            args.event,
            time=engine._time(args.time, "--time"),
            actor=args.actor or "",
            payload="" if payload is None else args.payload,
        )
        print(f"{args.id}: {before} -> {after} ({args.event})", file=out)
    return 0


def _cmd_show(args: argparse.Namespace, out: Any) -> int:
    """
    Prints a transaction and its history in a zone.
    """
    from crmflow.engine import _zone

    zone = args.tz or _local_zone()
    tz = _zone(zone)
    with _open(args.db) as engine:
        t = engine.get(args.id).local(zone)
        history = engine.history(args.id)

    def when(d: Any) -> str:
        return d.astimezone(tz).isoformat(sep=" ")

    print(f"id         {t.id}", file=out)
    print(f"kind       {t.kind} (workflow v{t.workflow_version})", file=out)
    print(f"state      {t.state} since {when(t.state_entered_at)}", file=out)
    print(f"customer   {t.customer_id or '-'}", file=out)
    print(f"parent     {t.parent_id or '-'}", file=out)
    print(f"version    {t.version}", file=out)
    print(f"created    {when(t.created_at)}", file=out)
    print(f"updated    {when(t.updated_at)}", file=out)
    print(f"zone       {zone}", file=out)
    if t.attributes:
        print("attributes", file=out)
        width = max(len(k) for k in t.attributes)
        for k, v in t.attributes.items():
            shown = when(v) if hasattr(v, "astimezone") else v
            text = "-" if v is None else str(shown).replace("\n", " ")
            print(f"  {k.ljust(width)}  {text}", file=out)
    print("history", file=out)
    for row in history.itertuples(index=False):
        move = (
            f"{row.from_state} -> {row.to_state}"
            if isinstance(row.from_state, str)
            else f"-> {row.to_state}"
        )
        extra = "  ".join(
            x
            for x in (
                f"by {row.actor}" if isinstance(row.actor, str) and row.actor
                else "",
                "internal" if row.internal else "",
                row.payload
                if isinstance(row.payload, str) and row.payload
                else "",
            )
            if x
        )
        line = f"  {when(row.time)}  {row.event:<12} {move}  {extra}"
        print(line.rstrip(), file=out)
    return 0


def _cmd_report(args: argparse.Namespace, out: Any) -> int:
    """
    Prints the report as text or JSON.
    """
    with _open(args.db) as engine:
        report = engine.report()
    if args.json:
        text = json.dumps(report, indent=2, allow_nan=False)
        print(text, file=out)
    else:
        out.write(format_report(report))
    return 0


def _cmd_check(args: argparse.Namespace, out: Any) -> int:
    """
    Prints the data quality report; status 3 when there are problems.
    """
    from crmflow import quality

    if not os.path.isfile(args.db):
        import crmflow

        raise crmflow.NotFoundError(f"{args.db}: no such database")
    report = quality.check(
        args.db, stale_days=args.stale_days, default_country=args.country
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2), file=out)
    else:
        print(report, file=out)
    return 0 if report.ok else 3


def _cmd_customers(args: argparse.Namespace, out: Any) -> int:
    """
    Lists the customers, or the likely duplicates.
    """
    from crmflow import customers

    with _open(args.db) as engine:
        if args.duplicates:
            frame = customers.find_duplicates(
                engine, threshold=args.threshold
            )
        else:
            frame = engine.customers().drop(columns=["attributes"])
    out.write(frame.to_string(index=False) + "\n")
    return 0


def _cmd_rules(args: argparse.Namespace, out: Any) -> int:
    """
    Lists, adds, enables, disables or removes the rules stored in the
    database.
    """
    with _open(args.db) as engine:
        if args.rules_command == "list":
            for r in engine.rules():
                state = "enabled" if r["enabled"] else "disabled"
                on = f" {r['on']}" if r["on"] else ""
                when = f" when {r['condition']}" if r["condition"] else ""
                actions = "; ".join(r["actions"].splitlines())
                print(
                    f"{r['name']} [{state}, priority {r['priority']}] "
                    f"{r['kind']} on {r['trigger']}{on}{when}: {actions}",
                    file=out,
                )
        elif args.rules_command == "add":
            engine.add_rule(
                args.name,
                args.kind,
                trigger=args.trigger,
                on=args.on,
                when=args.when,
                actions=args.action or [],
                priority=args.priority,
            )
            print(f"rule {args.name}: added", file=out)
        elif args.rules_command == "remove":
            engine.remove_rule(args.name)
            print(f"rule {args.name}: removed", file=out)
        else:
            enabled = args.rules_command == "enable"
            engine.enable_rule(args.name, enabled)
            print(f"rule {args.name}: {args.rules_command}d", file=out)
    return 0


def _cmd_approvals(args: argparse.Namespace, out: Any) -> int:
    """
    Lists open approval requests (or one actor's pending steps), records
    an approval or rejection, or lists, stores or removes matrices.
    Decisions need no matrix: a request keeps the chain and events it was
    opened with.
    """
    if args.approvals_command == "set-matrix":
        try:
            with open(args.file, encoding="utf-8") as f:
                data = json.load(f)
        except OSError as e:
            raise _UsageError(f"{args.file}: {e.strerror}") from None
        except ValueError as e:
            raise _UsageError(f"{args.file}: not valid JSON ({e})") from None
        from crmflow.approvals import ApprovalMatrix

        matrix = ApprovalMatrix.from_dict(data, args.file)
    with _open(args.db) as engine:
        approvals = engine.approvals
        if args.approvals_command == "matrices":
            for m in approvals.matrices():
                print(f"{m.kind}: {m.request_state} -> {m.approve_event} "
                      f"/ {m.reject_event}", file=out)
                for b in m.bands:
                    who = [
                        "team " + s.team if s.team else " ".join(s.approvers)
                        for s in b.steps
                    ]
                    chain = ", ".join(
                        f"{s.name} ({s.mode}: {w})"
                        for s, w in zip(b.steps, who)
                    ) or "automatic"
                    print(f"  {b.name} when {b.condition}: {chain}", file=out)
            for problem in approvals.problems():
                print(f"problem: {problem}", file=out)
            return 0
        if args.approvals_command == "set-matrix":
            approvals.set_matrix(matrix)
            print(f"approval matrix {matrix.kind}: set "
                  f"({len(matrix.bands)} bands)", file=out)
            return 0
        if args.approvals_command == "remove-matrix":
            approvals.remove_matrix(args.kind)
            print(f"approval matrix {args.kind}: removed", file=out)
            return 0
        if args.approvals_command == "list":
            if args.actor:
                for r in approvals.pending(args.actor).itertuples():
                    behalf = (
                        f" for {r.on_behalf_of}" if r.on_behalf_of else ""
                    )
                    print(
                        f"{r.transaction_id}: step {r.step + 1} "
                        f"{r.step_name} ({r.mode}){behalf}",
                        file=out,
                    )
            else:
                for r in approvals.open_requests().itertuples():
                    print(
                        f"{r.transaction_id}: {r.band}, step "
                        f"{r.current_step + 1} of {len(r.steps)} "
                        f"{r.step_name}",
                        file=out,
                    )
            return 0
        decide = (
            approvals.approve
            if args.approvals_command == "approve"
            else approvals.reject
        )
        result = decide(
            args.id,
            args.actor,
            time=engine._time(args.time, "--time"),
            comment=args.comment or "",
            on_behalf_of=args.on_behalf_of or "",
        )
        fired = (
            f", fired {result['fired_event']}" if result["fired_event"]
            else ""
        )
        done = {"approve": "approved", "reject": "rejected"}
        print(
            f"{args.id}: {done[args.approvals_command]} by {args.actor}; "
            f"request {result['status']}{fired}; state {result['state']}",
            file=out,
        )
    return 0


def _cmd_run(args: argparse.Namespace, out: Any) -> int:
    """
    Ticks the SLA timers of a database every --every seconds (on the wall
    clock, or simulated from --from) until --until.
    """
    from crmflow import service

    policies = args.policies or args.db + ".sla.json"
    if not os.path.isfile(policies):
        raise _UsageError(
            f"no SLA policies: give --policies FILE (no {policies})"
        )
    if args.every <= 0:
        raise _UsageError(f"--every must be positive (got {args.every})")
    with _open(args.db) as engine:
        desk = service.ServiceDesk.from_config(engine, policies)
        if args.start is None:
            total = desk.run(every=args.every, until=args.until)
        else:
            # Simulated clock: advance by --every without sleeping.
            clock = [service._micros(args.start, "--from")]
            step = int(args.every * 1e6)

            def now() -> int:
                return clock[0]

            def advance(_: float) -> None:
                clock[0] += step

            until = args.until or args.start
            total = desk.run(every=args.every, until=until, clock=now,
                             sleep=advance)
        print(
            f"fired {total.fired}, cancelled {total.cancelled}, moved "
            f"{total.moved}, failed {total.failed}; "
            f"{desk.pending_count()} pending",
            file=out,
        )
    return 0


def _parser() -> argparse.ArgumentParser:
    """
    Returns the argument parser of every command.
    """
    p = _Parser(
        prog="crmflow",
        description="Replay, run and report on CRM transaction workflows.",
    )
    from crmflow import __version__

    p.add_argument("--version", action="version", version=__version__)
    sub = p.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=_Parser
    )

    d = sub.add_parser(
        "demo",
        help="import the bundled samples and print the report",
        description="Import the bundled Olist orders and reviews and the "
        "ServiceNow incidents into a SQLite file and print the report. "
        "Running it again adds nothing: what the first run stored is "
        "counted as skipped.",
    )
    d.add_argument(
        "--db",
        default="crmflow-demo.db",
        help="SQLite file (default: crmflow-demo.db here)",
    )
    d.set_defaults(run=_cmd_demo)

    i = sub.add_parser(
        "import",
        help="import a CSV file",
        description="Import a CSV (or .csv.gz) file with a preset, or as "
        "an event log with an explicit column mapping.",
    )
    i.add_argument("--db", required=True, help="SQLite file")
    i.add_argument("--preset", help="olist-orders, olist-reviews, ...")
    i.add_argument("--kind", help="kind (a template name registers it)")
    i.add_argument("--template", help="template to register for --kind")
    i.add_argument("--case", help="case column(s), comma separated")
    i.add_argument("--activity", help="activity (or status) column")
    i.add_argument("--time", help="time column")
    i.add_argument("--actor", help="actor column")
    i.add_argument("--customer", help="customer column")
    i.add_argument("--payload", help="payload columns, comma separated")
    i.add_argument("--activity-map", help='JSON {"activity": "event"}')
    i.add_argument("--status-map", help='JSON {"status": "state"}')
    i.add_argument("--time-format", default="", help="e.g. %%d/%%m/%%Y")
    i.add_argument("--time-zone", default="UTC", help="default UTC")
    i.add_argument(
        "--null-value", action="append", help="value read as empty"
    )
    i.add_argument("--delimiter", help="field delimiter (default: auto)")
    i.add_argument(
        "--on-error",
        choices=("collect", "raise"),
        default="collect",
        help="collect (default) leaves out each case that has an unusable "
        "row, lists those rows as rejects and imports the rest; raise "
        "stops at the first unusable row and imports no row (the kind's "
        "workflow is registered all the same)",
    )
    i.add_argument("file", help="the CSV file")
    i.set_defaults(run=_cmd_import)

    f = sub.add_parser(
        "fire",
        help="fire an event on a transaction",
        description="Fire EVENT on transaction ID and print the move.",
    )
    f.add_argument("--db", required=True, help="SQLite file")
    f.add_argument("id", help="transaction id")
    f.add_argument("event", help="event name")
    f.add_argument("--actor", help="who fires it")
    f.add_argument("--time", help="ISO 8601 time (default: now)")
    f.add_argument("--payload", help="JSON payload")
    f.set_defaults(run=_cmd_fire)

    s = sub.add_parser(
        "show",
        help="show a transaction and its history",
        description="Show transaction ID and its history, times in ZONE.",
    )
    s.add_argument("--db", required=True, help="SQLite file")
    s.add_argument("id", help="transaction id")
    s.add_argument("--tz", help="IANA zone (default: the local zone)")
    s.set_defaults(run=_cmd_show)

    r = sub.add_parser(
        "report",
        help="print the lifecycle report",
        description="Print per kind: transactions by state, reached "
        "states, transition counts and times, deviations.",
    )
    r.add_argument("--db", required=True, help="SQLite file")
    r.add_argument("--json", action="store_true", help="print JSON")
    r.set_defaults(run=_cmd_report)

    c = sub.add_parser(
        "check",
        help="print the data quality report",
        description="Check for missing required attributes, invalid "
        "e-mails and phones, stale records, orphans, states that disagree "
        "with the history and near-duplicate ids.  Exit status 3 when "
        "problems are found.",
    )
    c.add_argument("--db", required=True, help="SQLite file")
    c.add_argument("--json", action="store_true", help="print JSON")
    c.add_argument(
        "--stale-days", type=int, default=365, help="default 365"
    )
    c.add_argument("--country", help="calling code of phones without +")
    c.set_defaults(run=_cmd_check)

    k = sub.add_parser(
        "customers",
        help="list customers or likely duplicates",
        description="List the customers, or with --duplicates the pairs "
        "that look like one person.",
    )
    k.add_argument("--db", required=True, help="SQLite file")
    k.add_argument(
        "--duplicates",
        action="store_true",
        help="list pairs of customers that share an e-mail, phone, web or "
        "source identity or have similar names, instead of all customers",
    )
    k.add_argument(
        "--threshold",
        type=float,
        default=0.9,
        help="with --duplicates: the least name similarity, from 0 to 1, "
        "for a pair found by name (default: 0.9)",
    )
    k.set_defaults(run=_cmd_customers)

    u = sub.add_parser(
        "run",
        help="fire due SLA timers (escalations, breaches) continuously",
        description="Tick the SLA timers of the database: fire what is "
        "due, in due order, each atomically, every --every seconds until "
        "--until (default: until interrupted).  Policies come from a JSON "
        "file (ServiceDesk.from_config); default PATH.sla.json.",
    )
    u.add_argument("--db", required=True, help="SQLite file")
    u.add_argument("--every", type=float, default=60.0,
                   help="seconds between ticks (default: 60)")
    u.add_argument("--until", default=None,
                   help="stop after the tick at or past this ISO instant")
    u.add_argument("--from", dest="start", default=None,
                   help="simulate: start the clock here (ISO) and advance "
                   "it by --every without sleeping")
    u.add_argument("--policies", default=None, help="JSON policy file")
    u.set_defaults(run=_cmd_run)

    ru = sub.add_parser(
        "rules",
        help="list, add, enable, disable or remove stored rules",
        description="Rules live in the database (docs/rules.md), so "
        "this command, a notebook and a script see the same ones.",
    )
    rsub = ru.add_subparsers(dest="rules_command", required=True)
    for name in ("list", "add", "enable", "disable", "remove"):
        rp = rsub.add_parser(name, help=f"{name} rules")
        rp.add_argument("--db", required=True, help="SQLite file")
        if name != "list":
            rp.add_argument("name", help="the rule")
        if name == "add":
            rp.add_argument("--kind", required=True,
                            help="the kind the rule watches")
            rp.add_argument(
                "--trigger",
                default="event",
                choices=["created", "event", "entered", "left", "changed"],
                help="what runs the rule (default: event)",
            )
            rp.add_argument("--on", default=None,
                            help="event, state or attribute (default: any)")
            rp.add_argument("--when", default=None, help="condition")
            rp.add_argument("--action", action="append",
                            help="an action line (repeat for several)")
            rp.add_argument("--priority", type=int, default=0,
                            help="higher runs first (default: 0)")
    ru.set_defaults(run=_cmd_rules)

    ap = sub.add_parser(
        "approvals",
        help="approval requests and decisions, approval matrices",
        description="Approval requests live in the database "
        "(docs/approvals.md).",
    )
    asub = ap.add_subparsers(dest="approvals_command", required=True)
    al = asub.add_parser("list", help="open requests, or an actor's steps")
    al.add_argument("--db", required=True, help="SQLite file")
    al.add_argument("--actor", help="list the steps this actor may decide")
    for name in ("approve", "reject"):
        ad = asub.add_parser(name, help=f"{name} a transaction's request")
        ad.add_argument("--db", required=True, help="SQLite file")
        ad.add_argument("id", help="transaction id")
        ad.add_argument("--actor", required=True, help="who decides")
        ad.add_argument("--comment", help="kept with the decision")
        ad.add_argument("--time", help="ISO 8601 time (default: now)")
        ad.add_argument("--on-behalf-of", dest="on_behalf_of",
                        help="the approver a substitute decides for")
    am = asub.add_parser("matrices", help="the stored approval matrices")
    am.add_argument("--db", required=True, help="SQLite file")
    asm = asub.add_parser("set-matrix",
                          help="store a matrix read from a JSON file")
    asm.add_argument("--db", required=True, help="SQLite file")
    asm.add_argument("file", help="JSON: kind, bands, optional "
                     "request_state, approve_event, reject_event")
    arm = asub.add_parser("remove-matrix", help="remove a kind's matrix")
    arm.add_argument("--db", required=True, help="SQLite file")
    arm.add_argument("kind", help="the kind")
    ap.set_defaults(run=_cmd_approvals)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """
    Runs the command line.

    Args:
        argv: The arguments (default ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 1 on an error, 2 on bad arguments.
    """
    import crmflow

    parser = _parser()
    try:
        args = parser.parse_args(argv)
        if getattr(args, "run", None) is None:
            parser.print_help(sys.stderr)
            return 2
        return args.run(args, sys.stdout)
    except _UsageError as e:
        print(f"crmflow: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (e.g. "| head"): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except (crmflow.Error, OSError, sqlite3.DatabaseError) as e:
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        if isinstance(e, sqlite3.DatabaseError):
            message = f"{getattr(args, 'db', 'database')}: {message}"
        # The message may quote an argument that is not UTF-8 (lone
        # surrogates from undecodable bytes): print those escaped.
        message = message.encode("utf-8", "backslashreplace").decode()
        print(f"crmflow: error: {message}", file=sys.stderr)
        return 1
    except UnicodeError:
        # Arguments the shell passed as bytes that are not UTF-8 (Python
        # keeps them as lone surrogates).
        print("crmflow: error: an argument is not valid UTF-8",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("crmflow: error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
