"""Column helpers shared by every domain's tables."""

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar, cast

from sqlalchemy import JSON, Dialect, TypeDecorator
from sqlmodel import AutoString, Column, Field

E = TypeVar("E", bound=StrEnum)


def utcnow() -> datetime:
    return datetime.now(UTC)


# Field() is typed Any; each helper says what the attribute holds, so a model's field is typed by it.
def id_field() -> uuid.UUID:
    return cast(uuid.UUID, Field(default_factory=uuid.uuid4, primary_key=True))


def created_field() -> datetime:
    return cast(datetime, Field(default_factory=utcnow))


def json_list_field() -> list[Any]:
    return cast(list[Any], Field(default_factory=list, sa_column=Column(JSON, nullable=False)))


class EnumString(TypeDecorator[E]):
    """A StrEnum kept as its plain string (no database enum type, so no migration), read back as the enum."""

    impl = AutoString
    cache_ok = True

    def __init__(self, enum: type[E], length: int = 16) -> None:
        super().__init__(length=length)
        self.enum, self.length = enum, length

    def process_bind_param(self, value: E | str | None, dialect: Dialect) -> str | None:
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> E | None:
        return None if value is None else self.enum(value)


def enum_field(enum: type[E], default: E, *, index: bool = False) -> E:
    """A status-like column: one of `enum`'s values, `default` until set."""
    return cast(E, Field(default=default, sa_column=Column(EnumString(enum), nullable=False, index=index)))
