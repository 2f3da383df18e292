"""
Where ConditionSet puts an evaluation error: the column (and line) within
the condition text as written, not within the top-level "and" operand it
was split into, and the condition numbered as the caller listed it
(callables included).  Columns are counted by hand in each test.
"""

from decimal import Decimal

import pytest

import crmflow
from crmflow.rules import ConditionSet

SCHEMA = {"tier": "text", "amount": "decimal"}
GOLD = {"tier": "gold", "amount": Decimal("5")}


def error_of(conditions, records):
    """
    Returns the message of the InvalidArgumentError ConditionSet.count
    raises on `records`.
    """
    cs = ConditionSet(conditions, SCHEMA)
    with pytest.raises(crmflow.InvalidArgumentError) as info:
        cs.count(records)
    return str(info.value)


class TestConditionSetErrorColumns:
    """
    Evaluation errors name the column in the text the user wrote.
    """

    def test_division_by_zero_in_second_operand(self):
        """
        "tier == 'gold' and amount / 0 > 1": "tier == 'gold' and " is 19
        characters, "amount " 7 more, so the "/" is column 27 (column 8
        of the operand "amount / 0 > 1" alone).
        """
        text = "tier == 'gold' and amount / 0 > 1"
        assert 26 == text.index("/")  # 0-based: column 27

        message = error_of([text], [GOLD])

        assert "record 1: condition 1: column 27: division by zero" == \
            message

    def test_operand_shared_with_an_earlier_condition(self):
        """
        The failing operand is also the whole first condition (column 8
        there); in the second it starts after "tier == 'gold' and ", so
        the second's error would be column 27, but the first fails first.
        With the first one true instead, the second reports column 27.
        """
        first_fails = error_of(
            ["amount / 0 > 1", "tier == 'gold' and amount / 0 > 1"], [GOLD])
        second_fails = error_of(
            ["tier == 'gold'", "tier == 'gold' and amount / 0 > 1"], [GOLD])

        assert "record 1: condition 1: column 8: division by zero" == \
            first_fails
        assert "record 1: condition 2: column 27: division by zero" == \
            second_fails

    def test_multiline_text_and_callable_before_it(self):
        """
        Entry 2 (after a callable) spans two lines; its second line
        "  amount / 0 > 1" has the "/" at column 10.  The record that
        fails is the second one (the first is not gold, so the "and"
        stops before the division).
        """
        text = "tier == 'gold' and\n  amount / 0 > 1"
        assert 9 == text.split("\n")[1].index("/")
        silver = {"tier": "silver", "amount": Decimal("5")}

        message = error_of([lambda record: True, text], [silver, GOLD])

        assert ("record 2: condition 2: line 2, column 10: division by "
                "zero") == message

    def test_results_unchanged_without_errors(self):
        """
        The columns fix leaves matching alone: counts by hand over three
        records.
        """
        cs = ConditionSet(
            ["tier == 'gold' and amount / 2 > 2", "amount > 1",
             lambda r: r["tier"] == "gold"], SCHEMA)
        records = [GOLD, {"tier": "gold", "amount": Decimal("4")},
                   {"tier": "silver", "amount": Decimal("9")}]

        counts = cs.count(records)

        # 5/2 = 2.5 > 2 (gold, 5) only; > 1: all three; gold: two.
        assert [1, 3, 2] == counts
