"""
The exception hierarchy of crmflow.

Every error the core reports is a subclass of :class:`Error`, chosen by the
core's status code, and also derives from the built-in exception that fits
it, so ``except ValueError`` and ``except LookupError`` work as expected.
Exceptions raised by user callbacks (guards, hooks, actions) are not
wrapped: they reach the caller with their own type and traceback.
"""

__all__ = [
    "Error",
    "InvalidArgumentError",
    "NotFoundError",
    "AlreadyExistsError",
    "NotAllowedError",
    "GuardRefusedError",
    "ConcurrentUpdateError",
    "ParseError",
    "ValidationError",
    "StoreError",
]


class Error(Exception):
    """
    Base class of every error crmflow reports.

    Attributes:
        code: The core's status code name, e.g. ``"not allowed"``.
    """

    code = "error"

    @property
    def message(self):
        """
        The message as the core wrote it.
        """
        return self.args[0] if self.args else ""


class InvalidArgumentError(Error, ValueError):
    """
    A malformed value, name or option.
    """

    code = "invalid argument"


class NotFoundError(Error, LookupError):
    """
    An unknown transaction, kind, state, event, guard or file.
    """

    code = "not found"


class AlreadyExistsError(Error, ValueError):
    """
    A duplicate transaction id or workflow.
    """

    code = "already exists"


class NotAllowedError(Error, ValueError):
    """
    An event that is not allowed in the transaction's current state.
    """

    code = "not allowed"


class GuardRefusedError(Error):
    """
    A guard refused the transition; the message holds its reason.
    """

    code = "guard refused"


class ConcurrentUpdateError(Error, RuntimeError):
    """
    A write from a stale copy: the stored version moved on.
    """

    code = "concurrent update"


class ParseError(Error, ValueError):
    """
    Unreadable input: a CSV record, timestamp or decimal.
    """

    code = "parse error"


class ValidationError(Error, ValueError):
    """
    A workflow failed validation; the message lists every problem.
    """

    code = "validation error"


class StoreError(Error, OSError):
    """
    The database failed (I/O error, corruption, newer schema).
    """

    code = "store error"


# The binding looks classes up here by the core's code name.
BY_CODE = {
    cls.code: cls
    for cls in (
        InvalidArgumentError,
        NotFoundError,
        AlreadyExistsError,
        NotAllowedError,
        GuardRefusedError,
        ConcurrentUpdateError,
        ParseError,
        ValidationError,
        StoreError,
    )
}
