"""
Checks of plain arguments shared by the modules (private).

Kept apart from :mod:`crmflow.engine` so that modules that need only
these (reading an event log, say) do not import the engine.
"""

import os
from typing import Any

from crmflow._errors import InvalidArgumentError

# The instants of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z in
# microseconds: the range the core keeps times in.
_FIRST_MICROS = -62_135_596_800 * 10**6
_LAST_MICROS = 253_402_300_800 * 10**6 - 1


def _check_str(value: Any, name: str, *, empty: bool = False) -> str:
    """
    Returns ``value`` after checking it is a string (non-empty unless
    ``empty``).

    Raises:
        InvalidArgumentError: The message names the argument.
    """
    if not isinstance(value, str):
        message = f"{name} must be a string (got {type(value).__name__})"
        raise InvalidArgumentError(message)
    if not empty and not value:
        raise InvalidArgumentError(f"{name} must not be empty")
    if not value.isascii():
        # Lone surrogates (undecodable bytes from the OS, "\ud800") have
        # no UTF-8 form; the binding would refuse them with a TypeError.
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            message = f"{name}: text is not valid UTF-8"
            raise InvalidArgumentError(message) from None
    return value


def _path_arg(value: Any, name: str = "path", *, empty: bool = False) -> str:
    """
    Returns a file-name argument (str or os.PathLike) as a str.

    Raises:
        InvalidArgumentError: Not a str or path, empty, or not UTF-8.
    """
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, bytes):
        message = f"{name} must be a str or os.PathLike (got bytes)"
        raise InvalidArgumentError(message)
    return _check_str(value, name, empty=empty)


def _not_utf8(value: Any) -> bool:
    """
    Returns True for a str with lone surrogates (no UTF-8 form).
    """
    if not isinstance(value, str) or value.isascii():
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
