"""
Tests of expression guards and stored rules from Python
(``Engine.add_rule`` and friends), including case C18 (money as exact
decimals) and the ``crmflow rules`` command.
"""

import decimal
import subprocess
import sys

import pytest

import crmflow

from conftest import Clock

D = decimal.Decimal

ORDER = {
    "name": "sales_order",
    "version": 1,
    "states": [
        {"name": "draft", "role": "initial"},
        {"name": "submitted"},
        {"name": "approved", "role": "terminal"},
    ],
    "attributes": [
        {"name": "line1", "type": "decimal"},
        {"name": "line2", "type": "decimal"},
        {"name": "total", "type": "decimal"},
        {"name": "tax", "type": "decimal"},
        {"name": "team", "type": "text"},
    ],
    "transitions": [
        {"event": "submit", "from": "draft", "to": "submitted"},
        {
            "event": "approve",
            "from": "submitted",
            "to": "approved",
            "guards": ["expr: total <= 1000"],
        },
    ],
}


def _engine(path=None):
    """
    Returns an engine with the ``sales_order`` kind of ORDER.
    """
    engine = crmflow.Engine(path, clock=Clock())
    engine.register(ORDER)
    return engine


def _c18_rules(engine):
    """
    Adds C18's rules: total = line1 + line2 on create, auto-approve when
    total <= 0.30 on entering submitted.
    """
    engine.add_rule(
        "total",
        "sales_order",
        trigger="created",
        actions=["set total = line1 + line2"],
        priority=10,
    )
    engine.add_rule(
        "auto-approve",
        "sales_order",
        trigger="entered",
        on="submitted",
        when="total <= 0.30",
        actions=["fire approve"],
    )


class TestExpressionGuard:
    def test_refusal_names_the_values(self):
        """
        A refused expression guard reports the condition and the value
        read; the state is unchanged.
        """
        engine = _engine()
        engine.create(
            "sales_order", "SO-1", attributes={"total": D("1200.00")}
        )
        engine.fire("SO-1", "submit")

        with pytest.raises(crmflow.GuardRefusedError) as e:
            engine.fire("SO-1", "approve")

        assert "total <= 1000 is false (total=1200.00)" in str(e.value)
        assert "submitted" == engine.get("SO-1").state


class TestRules:
    def test_c18_decimals(self, tmp_path):
        """
        C18: SO-9 totals exactly 0.30 and is auto-approved; SO-10 reads
        back 12345678901234567.89 after reopening; SO-11's 1000 lines of
        0.01 total 10.00; 2.675 rounds half-up to 2.68; the revenue sum
        is 12345678901234578.19.
        """
        path = str(tmp_path / "crm.db")
        engine = _engine(path)
        _c18_rules(engine)
        engine.create(
            "sales_order",
            "SO-9",
            attributes={"line1": D("0.10"), "line2": D("0.20")},
        )
        engine.fire("SO-9", "submit")
        engine.create(
            "sales_order",
            "SO-10",
            attributes={"line1": D("12345678901234567.89"), "line2": D(0)},
        )
        # SO-11: 1000 lines of 0.01, accumulated by the rule engine one
        # line at a time (line2 holds the running total).
        engine.create(
            "sales_order",
            "SO-11",
            attributes={"line1": D("0.00"), "line2": D("0.00")},
        )
        engine.add_rule(
            "accumulate",
            "sales_order",
            trigger="changed",
            on="line1",
            actions=["set line2 = line2 + line1"],
        )
        # Writing 0.01 again would be no change, so each line is written
        # and then cleared (adding 0).
        for _ in range(1000):
            engine.set_attributes("SO-11", {"line1": D("0.01")})
            engine.set_attributes("SO-11", {"line1": D("0.00")})
        engine.remove_rule("accumulate")
        engine.add_rule(
            "tax",
            "sales_order",
            trigger="changed",
            on="line1",
            actions=["set total = line2", "set tax = round(2.675, 2)"],
        )
        engine.set_attributes("SO-11", {"line1": D("1")})
        engine.close()

        engine = _engine(path)
        totals = {
            i: engine.get(i).attributes["total"]
            for i in ("SO-9", "SO-10", "SO-11")
        }

        assert "approved" == engine.get("SO-9").state
        assert "0.30" == str(totals["SO-9"])
        assert "12345678901234567.89" == str(totals["SO-10"])
        assert D("10.00") == totals["SO-11"]
        assert "10.00" == str(totals["SO-11"].quantize(D("0.01")))
        assert "2.68" == str(engine.get("SO-11").attributes["tax"])
        assert "12345678901234578.19" == str(sum(totals.values()))
        engine.close()

    def test_rules_are_shared_through_the_file(self, tmp_path):
        """
        A rule added by one engine is listed by another on the same file;
        disabling it is stored too.
        """
        path = str(tmp_path / "crm.db")
        first = _engine(path)
        _c18_rules(first)
        first.disable_rule("auto-approve")

        second = _engine(path)
        rules = {r["name"]: r for r in second.rules()}

        assert ["total", "auto-approve"] == [r["name"] for r in second.rules()]
        assert rules["auto-approve"]["enabled"] is False
        assert "total <= 0.30" == rules["auto-approve"]["condition"]
        assert "entered" == rules["auto-approve"]["trigger"]
        first.close()
        second.close()

    def test_loop_raises_and_rolls_back(self):
        """
        Two rules writing each other's attribute loop: the error names
        the chain, and nothing of the change is kept.
        """
        engine = _engine()
        engine.create(
            "sales_order",
            "SO-1",
            attributes={"line1": D(1), "line2": D(2)},
        )
        engine.add_rule(
            "ping", "sales_order", trigger="changed", on="line1",
            actions="set line2 = line2 + 1",
        )
        engine.add_rule(
            "pong", "sales_order", trigger="changed", on="line2",
            actions="set line1 = line1 + 1",
        )

        with pytest.raises(crmflow.InvalidArgumentError) as e:
            engine.set_attributes("SO-1", {"line1": D(5)})

        assert "ping -> pong -> ping" in str(e.value)
        assert D(1) == engine.get("SO-1").attributes["line1"]
        assert 1 == engine.get("SO-1").version

    def test_trace_is_a_dataframe(self):
        """
        The trace lists each evaluation with its outcome and the values
        that decided.
        """
        engine = _engine()
        _c18_rules(engine)
        engine.create(
            "sales_order",
            "SO-1",
            attributes={"line1": D("0.20"), "line2": D("0.20")},
        )
        engine.fire("SO-1", "submit")

        trace = engine.rule_trace("SO-1")

        assert ["total", "auto-approve"] == list(trace["rule"])
        assert ["fired", "not matched"] == list(trace["outcome"])
        assert "total=0.40" == trace["reads"].iloc[1]
        assert "submitted" == engine.get("SO-1").state

    def test_validate_reports_rules_broken_by_a_new_version(self):
        """
        A rule naming an attribute dropped by a newer workflow version is
        reported by validate_rules.
        """
        engine = _engine()
        _c18_rules(engine)
        newer = dict(ORDER, version=2)
        newer["attributes"] = [
            a for a in ORDER["attributes"] if a["name"] != "line2"
        ]

        engine.register(newer)
        problems = engine.validate_rules()

        assert 1 == len(problems)
        assert problems[0].startswith(
            'rule "total": action 1 on kind "sales_order": column 9:'
        )
        assert 'unknown name "line2"' in problems[0]

    def test_bad_rule_is_refused(self):
        """
        An unknown attribute in a condition names the rule and column.
        """
        engine = _engine()

        with pytest.raises(crmflow.InvalidArgumentError) as e:
            engine.add_rule("x", "sales_order", when="totl > 1")

        assert (
            'rule "x": condition on kind "sales_order": column 1: unknown '
            'name "totl" (known: line1, line2, total, tax, team)'
        ) == str(e.value)


    @pytest.mark.parametrize(
        "kwargs, message",
        [
            (
                {"trigger": "event", "on": "sumbit"},
                'rule "x": unknown event "sumbit" of kind "sales_order" '
                "(known: submit, approve)",
            ),
            (
                {"trigger": "entered", "on": "sent"},
                'rule "x": unknown state "sent" of kind "sales_order" '
                "(known: draft, submitted, approved)",
            ),
            (
                {"trigger": "changed", "on": "totl"},
                'rule "x": unknown attribute "totl" of kind "sales_order" '
                "(known: line1, line2, total, tax, team)",
            ),
            (
                {"trigger": "created", "actions": ["fire aprove"]},
                'rule "x": action 1: unknown event "aprove" of kind '
                '"sales_order"',
            ),
        ],
    )
    def test_unknown_names_are_refused_and_stored_nothing(
        self, kwargs, message
    ):
        """
        A rule naming an unknown event, state or attribute is refused with
        a message naming the rule, the kind and the name; nothing is
        stored.
        """
        engine = _engine()

        with pytest.raises(crmflow.InvalidArgumentError) as e:
            engine.add_rule("x", "sales_order", **kwargs)

        assert message == str(e.value)
        assert [] == engine.rules()

    def test_validate_gives_the_message_add_would_give(self):
        """
        After a new version drops a state, validate_rules reports the rule
        with the message add_rule now refuses it with; Python rules on a
        dropped state are reported too.
        """
        engine = _engine()
        engine.add_rule("late", "sales_order", trigger="entered",
                        on="submitted", actions=["set team = 'late'"])

        @engine.rule("py", kind="sales_order", on="left:submitted",
                     when="total > 1")
        def act(ctx):
            pass

        newer = dict(ORDER, version=2)
        newer["states"] = [s for s in ORDER["states"]
                           if s["name"] != "submitted"]
        newer["transitions"] = [
            {"event": "approve", "from": "draft", "to": "approved"}
        ]
        engine.register(newer)
        problems = engine.validate_rules()
        with pytest.raises(crmflow.InvalidArgumentError) as e:
            engine.add_rule(**{k: v for k, v in engine.rules()[0].items()
                               if k in ("name", "kind", "trigger", "on")})

        assert [
            'rule "late": unknown state "submitted" of kind "sales_order" '
            "(known: draft, approved)",
            'rule "py": unknown state "submitted" of kind "sales_order" '
            "(known: draft, approved)",
        ] == problems
        assert problems[0] == str(e.value)

    def test_python_rule_with_unknown_names_is_refused(self):
        """
        A Python rule on an unknown state, or whose expression names an
        unknown attribute, is refused under its own name.
        """
        engine = _engine()

        with pytest.raises(crmflow.InvalidArgumentError) as state:
            engine.rule("vip", kind="sales_order", on="entered:sent")
        with pytest.raises(crmflow.InvalidArgumentError) as name:
            engine.rule("vip", kind="sales_order", on="entered:*",
                        when="totl > 1")

        assert (
            'rule "vip": unknown state "sent" of kind "sales_order" '
            "(known: draft, submitted, approved)"
        ) == str(state.value)
        assert str(name.value).startswith(
            'rule "vip": condition on kind "sales_order": column 1: '
            'unknown name "totl"'
        )
        assert [] == engine.rules()


class TestConditionSet:
    ATTRS = {"amount": "decimal", "tier": "text"}

    def test_counts_match_a_python_reference(self):
        """
        Match counts of shared-operand conditions equal those computed in
        Python from the same records, decimals compared exactly.
        """
        conds = [f"amount > {k} and tier == 'gold'" for k in (0, 0.5, 2)]
        records = [
            {"amount": D("0.50"), "tier": "gold"},
            {"amount": D("2"), "tier": "gold"},
            {"amount": D("2.01"), "tier": "Gold"},
            {"amount": None, "tier": "gold"},
            {"tier": "silver"},
        ]
        expected = [
            sum(
                1
                for r in records
                if r.get("amount") is not None
                and r["amount"] > D(str(k))
                and r.get("tier") == "gold"
            )
            for k in (0, 0.5, 2)
        ]

        cs = crmflow.rules.ConditionSet(conds, self.ATTRS)

        assert [2, 1, 0] == expected
        assert expected == cs.count(records)
        assert [6, 3, 0] == cs.count(records, passes=3)
        assert 4 == cs.operand_count  # three bounds, one shared tier

    def test_matrix_mixes_texts_and_callables(self):
        """
        A callable condition gets the record itself; the matrix has one
        row per record.
        """
        records = [{"amount": D("5"), "tier": "gold"},
                   {"amount": D("50"), "tier": "silver"}]
        cs = crmflow.rules.ConditionSet(
            ["amount >= 5", lambda r: r["tier"] == "silver"], self.ATTRS
        )

        m = cs.matrix(records)

        assert (2, 2) == m.shape
        assert [[True, False], [True, True]] == m.tolist()

    def test_errors_name_condition_and_record(self):
        """
        A bad condition names its position; an evaluation error names the
        record; an exception from a callable keeps its type.
        """
        with pytest.raises(crmflow.ParseError) as parse:
            crmflow.rules.ConditionSet(
                [lambda r: True, "amout > 1"], self.ATTRS
            )
        cs = crmflow.rules.ConditionSet(["amount / 0 > 1"], self.ATTRS)
        with pytest.raises(crmflow.InvalidArgumentError) as ev:
            cs.count([{"amount": D(1)}])
        boom = crmflow.rules.ConditionSet([lambda r: r["nope"]], self.ATTRS)

        with pytest.raises(KeyError):
            boom.count([{"amount": D(1)}])
        assert str(parse.value).startswith(
            'condition 2: column 1: unknown name "amout"'
        )
        assert "record 1: condition 1: column 8: division by zero" == str(
            ev.value
        )


class TestRulesCli:
    def test_list_add_disable(self, tmp_path):
        """
        ``crmflow rules add``, ``disable`` and ``list`` work on the file
        an engine uses.
        """
        path = str(tmp_path / "crm.db")
        _engine(path).close()

        def cli(*args):
            return subprocess.run(
                [sys.executable, "-m", "crmflow", "rules", args[0]]
                + ["--db", path]
                + list(args[1:]),
                capture_output=True,
                text=True,
                check=True,
            ).stdout

        cli(
            "add", "big", "--kind", "sales_order", "--trigger", "created",
            "--when", "line1 > 100", "--action", "assign team = 'key'",
        )
        cli("disable", "big")
        out = cli("list")

        assert "big" in out and "disabled" in out
        engine = _engine(path)
        assert [False] == [r["enabled"] for r in engine.rules()]
        engine.close()


_C16_PRELUDE = '''
import gc, sys, traceback
import crmflow
DEF = {
    "name": "service_request", "version": 1,
    "states": [{"name": "new", "role": "initial"},
               {"name": "escalated", "role": "terminal"}],
    "attributes": [{"name": "tier", "type": "text"}],
    "transitions": [{"event": "escalate", "from": "new",
                     "to": "escalated"}],
}
engine = crmflow.Engine()
engine.register(DEF)
engine.create("service_request", "SR-1", attributes={"tier": "gold"})
'''


def _run(code):
    """
    Runs ``code`` after the C16 prelude in a fresh interpreter; returns
    the completed process.
    """
    return subprocess.run(
        [sys.executable, "-c", _C16_PRELUDE + code],
        capture_output=True,
        text=True,
        timeout=120,
    )


class TestPythonRules:
    def test_rule_runs_in_priority_order(self):
        """
        Python rules on entering a state run highest priority first, with
        an expression or a callable as condition.
        """
        engine = crmflow.Engine(clock=Clock())
        engine.register(ORDER)
        calls = []

        @engine.rule("low", kind="sales_order", on="entered:submitted",
                     when="line1 > 1")
        def low(ctx):
            calls.append(("low", ctx.transaction.id))

        @engine.rule("high", kind="sales_order", on="entered:*",
                     when=lambda ctx: ctx.to_state == "submitted",
                     priority=5)
        def high(ctx):
            calls.append(("high", ctx.transaction.id))

        engine.create("sales_order", "SO-1", attributes={"line1": D(2)})
        engine.create("sales_order", "SO-2", attributes={"line1": D(1)})
        engine.fire("SO-1", "submit")
        engine.fire("SO-2", "submit")

        assert [
            ("high", "SO-1"),
            ("low", "SO-1"),
            ("high", "SO-2"),
        ] == calls

    def test_c16a_guard_key_error_keeps_type_and_frame(self):
        """
        C16 (a): a Python rule condition raising KeyError('vip_level')
        reaches fire as that KeyError, the traceback shows the function,
        and the state is unchanged.
        """
        code = '''
def vip_guard(ctx):
    return ctx.case["vip_level"] > 1
engine.add_guard("vip", lambda ctx: vip_guard(ctx))
@engine.rule("vip", kind="service_request", on="left:new",
             when=vip_guard)
def act(ctx):
    pass
try:
    engine.fire("SR-1", "escalate")
except KeyError as e:
    assert e.args == ("vip_level",), e.args
    frames = [f.name for f in traceback.extract_tb(e.__traceback__)]
    assert "vip_guard" in frames, frames
    assert engine.get("SR-1").state == "new"
    print("ok")
'''

        r = _run(code)

        assert 0 == r.returncode, r.stderr
        assert "ok" == r.stdout.strip()

    def test_c16b_action_exception_keeps_its_class(self):
        """
        C16 (b): a test-defined exception raised by a Python rule action
        is caught by its own class; the transition is rolled back.
        """
        code = '''
class QuotaExceeded(Exception):
    pass
@engine.rule("quota", kind="service_request", on="entered:escalated")
def quota(ctx):
    raise QuotaExceeded("no quota left")
try:
    engine.fire("SR-1", "escalate")
except QuotaExceeded as e:
    assert str(e) == "no quota left"
    assert engine.get("SR-1").state == "new"
    print("ok")
'''

        r = _run(code)

        assert 0 == r.returncode, r.stderr
        assert "ok" == r.stdout.strip()

    def test_c16c_close_hook_error_is_unraisable_once(self):
        """
        C16 (c): a close hook raising RuntimeError while the engine is
        collected goes to sys.unraisablehook exactly once; the process
        goes on and a new engine works.
        """
        code = '''
seen = []
sys.unraisablehook = lambda u: seen.append(u.exc_value)
@engine.on_close
def hook(e):
    raise RuntimeError("hook failed")
del engine
gc.collect()
assert len(seen) == 1, seen
assert isinstance(seen[0], RuntimeError) and str(seen[0]) == "hook failed"
fresh = crmflow.Engine()
fresh.register(DEF)
fresh.create("service_request", "SR-2")
assert fresh.fire("SR-2", "escalate") == "escalated"
print("ok")
'''

        r = _run(code)

        assert 0 == r.returncode, r.stderr
        assert "ok" == r.stdout.strip()


class TestOlistComplaints:
    def test_low_reviews_open_complaints(self):
        """
        On the bundled Olist samples a Python rule opens a complaint for
        each review scored 1 or 2, severity high when the order was
        delivered after its estimated date; the expected counts come from
        the CSVs by separate code.
        """
        import csv
        import pathlib

        data = pathlib.Path(crmflow.__file__).parent / "data"
        with open(data / "olist_orders_sample.csv", newline="") as f:
            orders = {r["order_id"]: r for r in csv.DictReader(f)}
        with open(data / "olist_reviews_sample.csv", newline="") as f:
            low = [
                r for r in csv.DictReader(f) if int(r["review_score"]) <= 2
            ]
        # Same zone and fixed-width format: text order is time order.
        late = [
            r
            for r in low
            if orders[r["order_id"]]["order_delivered_customer_date"]
            > orders[r["order_id"]]["order_estimated_delivery_date"]
        ]
        engine = crmflow.Engine()
        engine.register("complaint")
        engine.import_preset("olist-orders")

        @engine.rule(
            "complaint-from-review",
            kind="feedback",
            on="entered:received",
            when=lambda ctx: (ctx.case.get("score") or 5) <= 2,
        )
        def open_complaint(ctx):
            order = engine.get(ctx.transaction.parent_id)
            due = order.attributes.get("estimated_delivery")
            arrived = (
                order.state_entered_at if order.state == "delivered" else None
            )
            high = arrived is not None and due is not None and arrived > due
            engine.create(
                "complaint",
                "CMP-" + ctx.transaction.id,
                parent=order.id,
                attributes={
                    "channel": "review",
                    "severity": "high" if high else "normal",
                },
            )

        engine.import_preset("olist-reviews")
        complaints = engine.list("complaint")

        assert len(low) == len(complaints)
        assert len(late) == sum(
            c.attributes["severity"] == "high" for c in complaints
        )
