"""
JSON rules for payloads the engine stores.

Payloads must stay readable by SQLite's JSON functions and by any JSON
parser, so NaN and Infinity are refused, and the values a CRM payload
commonly holds are written as text: decimal money keeps its exact digits
(``Decimal("1.10")`` becomes ``"1.10"``) and times become ISO 8601.
"""

import datetime
import decimal


def default(obj):
    """
    Returns the JSON form of a value json.dumps cannot write itself.

    Raises:
        TypeError: for any other type, naming it.
    """
    if isinstance(obj, decimal.Decimal):
        if not obj.is_finite():
            raise ValueError(f"decimal {obj} is not finite")
        return format(obj, "f")
    if isinstance(obj, (datetime.datetime, datetime.date)):
        return obj.isoformat()
    if isinstance(obj, datetime.timedelta):
        return obj.total_seconds()
    raise TypeError(f"values of type {type(obj).__name__} are not JSON")


def parse_constant(name):
    """
    Refuses NaN, Infinity and -Infinity while reading JSON text.
    """
    raise ValueError(f"{name} is not valid JSON")
