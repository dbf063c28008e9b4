"""Wire types of share codes, the same for blends and mashups."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec


class ShareCode(msgspec.Struct, frozen=True, kw_only=True):
    code: str  # displayed form, ABCD-EFGH
    expires_at: datetime


class RotateShareCode(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # None means the configured default (blend_share_code_days or mashup_share_code_days,
    # 7 unless changed).
    expires_in_days: Annotated[int, msgspec.Meta(ge=1, le=30)] | None = None


class JoinByCode(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    code: Annotated[str, msgspec.Meta(max_length=32)]
