"""Share codes: short, human-typable and unguessable.

Eight symbols from a 30-symbol alphabet (digits and capitals without 0, O, 1, I, L and U, which
are easily confused or misread), shown as ``ABCD-EFGH``: 30**8 ≈ 6.6e11 codes (39 bits),
drawn with ``secrets``. Together with the 7-day expiry and the per-address and per-user limit on
failed joins, guessing a live code is hopeless. Input is forgiving: case, spaces and dashes
are ignored.
"""

from __future__ import annotations

import secrets

ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 8
_ALLOWED = frozenset(ALPHABET)


def new_code() -> str:
    """A fresh code in canonical (stored) form: eight symbols, no dash."""
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def display(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


def parse(text: str) -> str | None:
    """The canonical form of what a person typed, or None if it cannot be a code."""
    if len(text) > 32:
        return None
    cleaned = "".join(ch for ch in text.upper() if ch not in " -\t")
    if len(cleaned) != LENGTH or not set(cleaned) <= _ALLOWED:
        return None
    return cleaned
