"""Column helpers shared by every domain's tables."""

import uuid
from datetime import UTC, datetime

from sqlalchemy import JSON
from sqlmodel import Column, Field


def utcnow() -> datetime:
    return datetime.now(UTC)


def id_field() -> uuid.UUID:
    return Field(default_factory=uuid.uuid4, primary_key=True)


def created_field() -> datetime:
    return Field(default_factory=utcnow)


def json_list_field() -> list:
    return Field(default_factory=list, sa_column=Column(JSON, nullable=False))
