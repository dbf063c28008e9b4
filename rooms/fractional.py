"""Fractional index keys: strings that order list items without renumbering.

A list item carries a key; the list is the items sorted by key (plain string comparison, so
clients in any language sort them the same way, byte-wise). To insert between two neighbours,
ask for a key between theirs. Keys are base-62 digit strings (``0-9A-Za-z``, in ASCII order)
read as a fraction after a radix point; a key never ends in ``0``, so there is always room
between two distinct keys. Concurrent inserts at the same place may produce equal keys; ties
are broken by the item id (kinds document this), so every replica sorts identically.
"""

from __future__ import annotations

DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
BASE = len(DIGITS)
MAX_KEY_LENGTH = 128
_INDEX = {c: i for i, c in enumerate(DIGITS)}


class InvalidKey(ValueError):
    """A key is malformed, or the bounds are not in order."""


def is_valid_key(key: str) -> bool:
    """A non-empty base-62 string of at most ``MAX_KEY_LENGTH`` that does not end in ``0``."""
    return 0 < len(key) <= MAX_KEY_LENGTH and key[-1] != "0" and all(c in _INDEX for c in key)


def key_between(before: str | None, after: str | None) -> str:
    """A key strictly between ``before`` and ``after``; None means the start / the end."""
    for key in (before, after):
        if key is not None and not is_valid_key(key):
            raise InvalidKey(f"invalid fractional key: {key!r}")
    if before is not None and after is not None and before >= after:
        raise InvalidKey(f"keys out of order: {before!r} >= {after!r}")
    return _midpoint(before or "", after)


def keys_between(before: str | None, after: str | None, count: int) -> list[str]:
    """``count`` ascending keys strictly between ``before`` and ``after``, evenly spread."""
    if count <= 0:
        return []
    if count == 1:
        return [key_between(before, after)]
    middle = key_between(before, after)
    half = count // 2
    return [
        *keys_between(before, middle, half),
        middle,
        *keys_between(middle, after, count - half - 1),
    ]


def _midpoint(low: str, high: str | None) -> str:
    # low < high, both without trailing zeros; low may be "" (zero), high None (one).
    if high is not None:
        # Skip the common prefix (low padded with zeros).
        n = 0
        while n < len(high) and (low[n] if n < len(low) else "0") == high[n]:
            n += 1
        if n > 0:
            return high[:n] + _midpoint(low[n:], high[n:])
    digit_low = _INDEX[low[0]] if low else 0
    digit_high = _INDEX[high[0]] if high is not None else BASE
    if digit_high - digit_low > 1:
        return DIGITS[(digit_low + digit_high + 1) // 2]
    # Adjacent digits: keep low's digit and go one place deeper.
    if high is not None and len(high) > 1:
        return high[0]
    return DIGITS[digit_low] + _midpoint(low[1:], None)
