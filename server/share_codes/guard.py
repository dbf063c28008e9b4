"""The limit on guessing share codes (``server/ratelimit.py`` does the counting).

Every join by code first takes a token from two counters, one for the client address and one
for the user (keys ``blends:join-failures:addr:<address>`` and ``…:user:<id>``, for blends
and mashups alike); a join that succeeds, or fails for another reason than a wrong code,
gives its tokens back, so only wrong codes add up. Over ``share_code_failures_per_minute`` on
either counter the request is refused with 429 before the code is even looked up, whether it
is right or not.
"""

from __future__ import annotations

import uuid

from server.ratelimit import SHARE_CODE_GUESSES, Taken
from server.services import Services


async def take(services: Services, address: str, user_id: uuid.UUID) -> Taken:
    """Count one attempt; 429 when over the limit. Returns the keys to ``give_back``."""
    return await SHARE_CODE_GUESSES.take(services, addr=address, user=str(user_id))


async def give_back(services: Services, taken: Taken) -> None:
    """A join with a right code does not count against the limit."""
    await SHARE_CODE_GUESSES.give_back(services, taken)
