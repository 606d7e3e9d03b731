"""Shapes shared by every domain: strict request bodies and pagination."""

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, ConfigDict

T = TypeVar("T")
R = TypeVar("R")
MAX_PAGE = 200


class Strict(BaseModel):
    """Request bodies: an unknown field is an error, never silently dropped."""

    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    """Response shapes, built straight from table rows."""

    model_config = ConfigDict(from_attributes=True)


class Page(BaseModel, Generic[T]):
    items: list[T]
    limit: int
    offset: int
    next_offset: int | None


class PageParams(BaseModel):
    limit: int
    offset: int


async def page_params(
    limit: int = Query(50, ge=1, le=MAX_PAGE), offset: int = Query(0, ge=0, le=10_000_000)
) -> PageParams:
    return PageParams(limit=limit, offset=offset)


def make_page(rows: Sequence[R], params: PageParams, convert: Callable[[R], Any]) -> dict[str, Any]:
    """Services fetch limit + 1 rows; the extra one only says that a next page exists."""
    more = len(rows) > params.limit
    return {
        "items": [convert(r) for r in rows[: params.limit]],
        "limit": params.limit,
        "offset": params.offset,
        "next_offset": params.offset + params.limit if more else None,
    }
