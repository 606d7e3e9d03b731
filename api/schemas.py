"""Shapes shared by every domain: strict request bodies and pagination."""

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    model_validator,
)
from pydantic_core import PydanticCustomError

T = TypeVar("T")
R = TypeVar("R")
MAX_PAGE = 200
MAX_DEPTH = 32  # of any JSON value in a request body; more is no sane shape and breaks recursive code
# PostgreSQL stores neither NUL (text, jsonb) nor a lone surrogate (not encodable as UTF-8); SQLite
# would, so both databases refuse them here, the same way, before any is written.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
UNSTORABLE_CODE, TOO_DEEP_CODE = "unstorable_character", "nesting_too_deep"


def _iso_only(value: Any) -> Any:
    # Lax pydantic reads an integer as epoch seconds; a timestamp on our wire is always ISO 8601 text.
    if isinstance(value, datetime | str):
        return value
    raise PydanticCustomError("datetime_type", "Input should be an ISO 8601 date-time string")


# Per-field strict types: pydantic's model-wide strict mode would also refuse UUIDs, enums and
# date-times given as JSON strings, since FastAPI validates the decoded body as Python objects.
Bool = StrictBool
Int = StrictInt
When = Annotated[AwareDatetime, BeforeValidator(_iso_only)]


# A rule between two fields of a request body, stated where clients read it (the field's OpenAPI
# schema carries it as `x-<rule>` and in its description) and checked by Strict: one declaration.
_RULES: dict[str, tuple[str, Callable[[Any, Any], bool]]] = {
    "after": ("must come after", lambda value, other: value > other),
    "differs-from": ("must differ from", lambda value, other: value != other),
}


def after(earlier: str, **field: Any) -> Any:
    """A field that must be later than `earlier` (else 422), checked by Strict and shown in OpenAPI."""
    return _related("after", earlier, field)


def differs_from(other: str, **field: Any) -> Any:
    """A field that must not equal `other` (else 422), checked by Strict and shown in OpenAPI."""
    return _related("differs-from", other, field)


def _related(rule: str, other: str, field: dict[str, Any]) -> Any:
    said = f"{_RULES[rule][0].capitalize()} `{other}` (else 422 `validation_error`)."
    description = f"{field.pop('description')} {said}" if "description" in field else said
    return Field(description=description, json_schema_extra={f"x-{rule}": other}, **field)


class Strict(BaseModel):
    """Request bodies: an unknown field is an error, never silently dropped; no string PostgreSQL
    could not store and no nesting past MAX_DEPTH gets past validation; rules between fields
    declared with `after` / `differs_from` hold."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        check_storable(data)
        return data

    @model_validator(mode="after")
    def _related_fields(self) -> "Strict":
        for name, info in type(self).model_fields.items():
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            for rule, (words, holds) in _RULES.items():
                other = extra.get(f"x-{rule}")
                value = getattr(self, name)
                if isinstance(other, str) and value is not None and not holds(value, getattr(self, other)):
                    raise ValueError(f"{name} {words} {other}")
        return self


def check_storable(data: Any) -> None:
    """Raise a validation error for a NUL or lone surrogate anywhere in `data`, keys included, or
    for nesting deeper than MAX_DEPTH; iterative, so depth itself cannot exhaust the stack."""
    stack = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if UNSTORABLE.search(value):
                raise PydanticCustomError(UNSTORABLE_CODE, "Text holds a NUL or a lone surrogate")
        elif isinstance(value, dict | list | tuple):
            if depth >= MAX_DEPTH:
                raise PydanticCustomError(
                    TOO_DEEP_CODE, "Nested deeper than {limit} levels", {"limit": MAX_DEPTH}
                )
            items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
            stack.extend((item, depth + 1) for item in items)


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
