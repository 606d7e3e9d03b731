"""Column helpers shared by every domain's tables."""

import uuid
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import JSON
from sqlmodel import Column, Field


def utcnow() -> datetime:
    return datetime.now(UTC)


# Field() is typed Any; each helper says what the attribute holds, so a model's field is typed by it.
def id_field() -> uuid.UUID:
    return cast(uuid.UUID, Field(default_factory=uuid.uuid4, primary_key=True))


def created_field() -> datetime:
    return cast(datetime, Field(default_factory=utcnow))


def json_list_field() -> list[Any]:
    return cast(list[Any], Field(default_factory=list, sa_column=Column(JSON, nullable=False)))
