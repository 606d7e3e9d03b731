"""FHIR search parameters read into conditions on consults, and paging; anything else is a 400."""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import ColumnElement
from sqlmodel import col

from api.schemas import PageParams
from consults.models import Consult, Status
from fhir import codes
from fhir.bundle import MAX_COUNT
from fhir.exceptions import BadSearch

IGNORED = {"_format", "_pretty"}  # how to render, not what to find


@dataclass
class Query:
    """One search's parameters; each is read once, and what is left unread is refused."""

    params: Mapping[str, str]
    unread: set[str] = field(init=False)

    def __post_init__(self) -> None:
        self.unread = set(self.params) - IGNORED

    def take(self, *names: str) -> str | None:
        for name in names:
            self.unread.discard(name)
        values = [self.params[n] for n in names if n in self.params]
        return values[0] if values else None

    def page(self) -> PageParams:
        count, offset = self.take("_count"), self.take("_offset")
        try:
            limit, skip = int(count or 20), int(offset or 0)
        except ValueError:
            raise BadSearch("_count and _offset are whole numbers") from None
        if not (1 <= limit <= MAX_COUNT and 0 <= skip <= 10_000_000):
            raise BadSearch(f"_count is 1 to {MAX_COUNT}; _offset is 0 or more")
        return PageParams(limit=limit, offset=skip)

    def done(self) -> None:
        if self.unread:
            raise BadSearch(f"Unsupported search parameters: {', '.join(sorted(self.unread))}")

    def echo(self) -> dict[str, str]:
        """What paging links repeat: the parameters that chose the matches."""
        return {k: v for k, v in self.params.items() if k not in IGNORED | {"_count", "_offset"}}


def consult_conditions(q: Query, *, table: dict[Status, str]) -> list[ColumnElement[bool]]:
    """ServiceRequest's and Task's parameters, both read onto the consult behind them."""
    where: list[ColumnElement[bool]] = []
    if ident := q.take("_id"):
        where.append(col(Consult.id).in_([_uuid(v) for v in ident.split(",")]))
    if status := q.take("status"):
        where.append(col(Consult.status).in_(codes.statuses_for(table, status.split(","))))
    if patient := q.take("patient", "subject:identifier", "for:identifier"):
        where.append(col(Consult.patient_ref) == _token(patient, codes.PATIENT_REF))
    if specialty := q.take("performer-type", "specialty"):
        where.append(col(Consult.specialty).in_([_token(v, codes.SPECIALTY) for v in specialty.split(",")]))
    if priority := q.take("priority"):
        wanted = [codes.URGENCY.get(p) for p in priority.split(",")]
        where.append(col(Consult.urgency).in_([u for u in wanted if u]))
    if owner := q.take("owner", "performer"):
        where.append(col(Consult.assigned_to) == _reference(owner, "Practitioner"))
    if focus := q.take("focus", "based-on"):
        where.append(col(Consult.id) == _reference(focus, "ServiceRequest"))
    for authored in [q.params.get(n) for n in ("authored", "authored-on") if n in q.params]:
        where.append(_date_condition(authored or ""))
    q.take("authored", "authored-on")
    return where


def _token(value: str, system: str) -> str:
    """`system|code` or a bare code; another system matches nothing we hold."""
    if "|" in value:
        given, code = value.split("|", 1)
        if given and given != system:
            raise BadSearch(f"Only system {system} is searchable here")
        return code
    return value


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise BadSearch(f"Not an id: {value[:40]}") from None


def _reference(value: str, kind: str) -> uuid.UUID:
    return _uuid(value.removeprefix(f"{kind}/"))


PREFIXES = ("eq", "ge", "gt", "le", "lt")


def _date_condition(value: str) -> ColumnElement[bool]:
    """authored=[prefix]YYYY-MM-DD or a full instant; a bare date means that whole UTC day."""
    prefix, text = (value[:2], value[2:]) if value[:2] in PREFIXES else ("eq", value)
    start, end = _span(text)
    created = col(Consult.created_at)
    return {
        "eq": (created >= start) & (created < end),
        "ge": created >= start,
        "gt": created >= end,
        "le": created < end,
        "lt": created < start,
    }[prefix]


def _span(text: str) -> tuple[datetime, datetime]:
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return start, start + timedelta(days=1)
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadSearch(f"Not a FHIR date: {text[:40]}") from None
    if at.tzinfo is None:
        raise BadSearch("A date-time needs its zone")
    return at, at + timedelta(microseconds=1)


def instant_param(q: Query, name: str) -> datetime:
    """A single instant (`date=` for who is on call), now when absent."""
    value = q.take(name)
    return _span(value)[0] if value else datetime.now(UTC)
