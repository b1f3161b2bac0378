"""JavaScript semantics the official client relies on, for JSON values in Python.

The ports of client files (:mod:`.chunks`, :mod:`.compat`) compare, print and test
values the way the TypeScript does; these are the few operators they need.
"""

from __future__ import annotations

from typing import Any

_NUMBER_TYPES = (int, float)


def strict_equals(a: Any, b: Any) -> bool:
    """JavaScript ``a === b`` for JSON values.

    Strings compare by value, numbers by value (never across types, so ``1 === "1"``
    and ``1 === true`` are false), ``null`` and the booleans are singletons, and
    objects and arrays compare by identity.
    """
    ta, tb = type(a), type(b)
    if ta is str or tb is str:
        return ta is tb and a == b
    if ta in _NUMBER_TYPES and tb in _NUMBER_TYPES:
        return bool(a == b)
    return a is b


def truthy(value: Any) -> bool:
    """JavaScript truthiness: ``""``, ``0``, ``null`` and ``false`` are falsy; every
    object and array is truthy, empty or not."""
    if isinstance(value, (dict, list)):
        return True
    return bool(value)


def number_to_string(value: int | float) -> str:
    """JavaScript ``String(number)`` for the numbers JSON carries: integral values
    print without a fraction below 1e21 (``String(2.0)`` is ``"2"``)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return repr(value)


def to_string(value: Any) -> str:
    """JavaScript ``String(value)``, for the client's error messages."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return number_to_string(value)
    if isinstance(value, list):
        # Array.prototype.join: null (and undefined) items print as "".
        return ",".join("" if item is None else to_string(item) for item in value)
    return "[object Object]"
