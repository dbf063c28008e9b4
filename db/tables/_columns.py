"""Column helpers shared by the table modules."""

from typing import Any

from piccolo.columns import UUID, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow


def uuid_pk() -> UUID:
    return UUID(primary_key=True)


def timestamp_now() -> Timestamptz:
    return Timestamptz(default=TimestamptzNow(), null=False)


def pg_enum(*choices: str, **kwargs: Any) -> Varchar:
    # The column is a PostgreSQL enum in the migration; asyncpg sends text, which PostgreSQL
    # casts, so Piccolo can treat it as a varchar.
    return Varchar(length=32, **kwargs)
