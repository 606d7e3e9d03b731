"""The OpenAPI document as the server really answers: problem+json errors, named operations.

Applied to the whole app at once (`install`), so a route added anywhere is described the same way
without doing anything: its error statuses come from what it takes (a body, parameters, a path id)
and from the dependencies it uses, which declare what they can answer with `answers(...)`."""

import re
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from api.errors import PROBLEM

F = TypeVar("F", bound=Callable[..., Any])
API_PREFIX = "/api/v1"
_MARK = "__liaison_answers__"
TITLES = {
    400: "Malformed request (`malformed_json` and the like)",
    401: "Authentication required or refused (`unauthenticated`, `invalid_token`)",
    403: "The caller may not do this (`forbidden`)",
    404: "No such resource, or one the caller may not see (`not_found`)",
    409: "The resource's state forbids it now (`conflict`, `invalid_transition`, ...)",
    413: "The body is larger than `max_body_bytes` (`body_too_large`)",
    415: "The body's media type is not one this route takes (`unsupported_media_type`)",
    422: "The request does not match the schema or a rule it states (`validation_error`, ...)",
    429: "Too many attempts; retry after `Retry-After` seconds (`rate_limited`)",
    503: "A store (database, Redis) is not answering; retry after `Retry-After` seconds (`unavailable`)",
}
# Headers that come with a status whatever route answers it (api/errors.py sets them).
_HEADERS = {
    401: {"WWW-Authenticate": "Bearer"},
    429: {"Retry-After": "Seconds to wait before trying again"},
    503: {"Retry-After": "Seconds to wait before trying again"},
}
_WRITES = {"POST", "PUT", "PATCH", "DELETE"}


def answers(*statuses: int) -> Callable[[F], F]:
    """Mark a dependency as able to answer these problem statuses: every route using it documents them."""

    def mark(call: F) -> F:
        setattr(call, _MARK, frozenset(statuses) | getattr(call, _MARK, frozenset()))
        return call

    return mark


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route whose service answers statuses nothing else here can tell (a 429, say)."""
    return {status: _problem_response(status) for status in statuses}


def install(app: FastAPI) -> None:
    """Serve FastAPI's document amended: each one FastAPI builds (again when routes change), once."""
    plain = app.openapi

    def document() -> dict[str, Any]:
        doc = plain()  # FastAPI's own, kept until the routes change
        if "Problem" not in doc.get("components", {}).get("schemas", {}):
            amend(doc, api_routes(app))
        return doc

    app.openapi = document  # type: ignore[method-assign]


def api_routes(app: FastAPI) -> list[Any]:
    """Every documented route, those of included routers too (FastAPI's own views of them)."""
    contexts = iter_route_contexts(app.routes)
    return [c for c in contexts if isinstance(c.original_route, APIRoute) and c.include_in_schema]


def amend(doc: dict[str, Any], routes: list[Any]) -> None:
    """Every operation's error answers as problem+json; FastAPI's HTTPValidationError gone."""
    for route in routes:
        for method in route.methods:
            operation = doc["paths"][route.path_format][method.lower()]
            responses = operation["responses"]
            responses.pop("422", None)  # FastAPI's HTTPValidationError: not what the server sends
            for status in sorted(statuses(route, method) | _declared(route)):
                responses[str(status)] = _problem_response(status) | _own(route, status)
            operation["responses"] = dict(sorted(responses.items()))
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas.update(PROBLEM_SCHEMAS)


def statuses(route: Any, method: str) -> set[int]:
    """What this route can answer besides success, from what it takes and the dependencies it uses."""
    found: set[int] = set()
    for dependant in _walk(route.dependant):
        found |= getattr(dependant.call, _MARK, frozenset())
    takes_body = route.body_field is not None or "requestBody" in (route.openapi_extra or {})
    if takes_body:
        found |= {400, 413, 422}
    if _has_params(route.dependant):
        found.add(422)
    if "{" in route.path_format:
        found.add(404)
    if method in _WRITES and 401 in found:
        found.add(409)  # a change an actor asks for can meet a state that refuses it
    return found


def _declared(route: Any) -> set[int]:
    """Error statuses the route itself declared through `problems(...)`, kept as declared."""
    return {
        int(s) for s, r in route.responses.items() if str(s).isdigit() and int(s) >= 400 and _is_problem(r)
    }


def _own(route: Any, status: int) -> dict[str, Any]:
    own = route.responses.get(status) or route.responses.get(str(status)) or {}
    return {"description": own["description"]} if "description" in own else {}


def _is_problem(response: dict[str, Any]) -> bool:
    return PROBLEM in response.get("content", {})


def _walk(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for sub in dependant.dependencies:
        yield from _walk(sub)


def _has_params(dependant: Dependant) -> bool:
    return any(
        d.path_params or d.query_params or d.header_params or d.cookie_params or d.body_params
        for d in _walk(dependant)
    )


def _problem_response(status: int) -> dict[str, Any]:
    schema = "ValidationProblem" if status == 422 else "Problem"
    response: dict[str, Any] = {
        "description": TITLES.get(status, "Error"),
        "content": {PROBLEM: {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }
    if status in _HEADERS:
        response["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in _HEADERS[status].items()
        }
    return response


def operation_id(route: Any) -> str:
    """`createConsult`, `listConsults`, `acceptConsult`, `getOrgEscalationPolicy`: from method and path.

    A path ending in an id names one item (get, set, update, delete it); one ending in a plural
    word, a collection (list it, create in it); a POST to any other word after an id, an action
    on that item (`/consults/{consult_id}/accept`). A route whose path reads wrong this way
    passes `operation_id=` itself."""
    method: str = sorted(route.methods)[0]
    path: str = route.path_format
    parts = [p for p in path.removeprefix(API_PREFIX).split("/") if p]
    nouns = [(p, i + 1 < len(parts) and parts[i + 1].startswith("{")) for i, p in enumerate(parts)]
    nouns = [(p, item) for p, item in nouns if not p.startswith("{")]
    if not nouns:
        return method.lower()
    *before, (last, last_is_item) = nouns
    owner = "".join(_word(p, singular=item, owner=True) for p, item in before)
    if last_is_item or parts[-1].startswith("{"):
        verb = VERBS[method]
        return verb + owner + _word(last, singular=True)
    if _plural(last):
        if method == "GET":
            return "list" + owner + _word(last, singular=False)
        verb = VERBS[method] if method != "POST" else "create"
        return verb + owner + _word(last, singular=True)
    if method == "POST" and before and before[-1][1]:
        return _camel(last) + owner
    verb = VERBS[method]
    return verb + owner + _word(last, singular=False)


# HEAD and OPTIONS serve protocols spoken beside the API (tus, CORS), which name them too.
VERBS = {"GET": "get", "POST": "post", "PUT": "set", "PATCH": "update", "DELETE": "delete"}
VERBS |= {"HEAD": "check", "OPTIONS": "describe"}


def _plural(word: str) -> bool:
    return word.endswith("s") and not word.endswith("ss")


def _word(segment: str, *, singular: bool, owner: bool = False) -> str:
    if segment == "me":
        return "My" if owner else "Me"
    words = re.split(r"[-_]", segment)
    if singular and _plural(words[-1]):
        last = words[-1]
        words[-1] = last[:-3] + "y" if last.endswith("ies") else last[:-1]
    return "".join(w.capitalize() for w in words)


def _camel(segment: str) -> str:
    pascal = _word(segment, singular=False)
    return pascal[:1].lower() + pascal[1:]


_PROBLEM_PROPERTIES: dict[str, Any] = {
    "type": {"type": "string", "description": "`/problems/{code}`", "examples": ["/problems/not_found"]},
    "title": {"type": "string", "description": "Short, the same for every problem of this code"},
    "status": {"type": "integer", "description": "The HTTP status, repeated"},
    "detail": {"type": "string", "description": "What went wrong this time"},
    "code": {"type": "string", "description": "Stable, machine-readable: branch on this"},
}
PROBLEM_SCHEMAS: dict[str, Any] = {
    "Problem": {
        "title": "Problem",
        "description": "RFC 9457 problem details, as every error is answered. Some codes add members "
        "(e.g. `current_status` on a 409, `store` on a 503).",
        "type": "object",
        "properties": _PROBLEM_PROPERTIES,
        "required": list(_PROBLEM_PROPERTIES),
        "additionalProperties": True,
    },
    "ValidationProblem": {
        "title": "ValidationProblem",
        "description": "A 422: a Problem whose `errors` (when the schema refused the request) say where.",
        "type": "object",
        "properties": _PROBLEM_PROPERTIES
        | {
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "loc": {
                            "type": "array",
                            "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                        },
                        "type": {"type": "string"},
                        "msg": {"type": "string"},
                    },
                    "required": ["loc", "type", "msg"],
                },
            }
        },
        "required": list(_PROBLEM_PROPERTIES),
        "additionalProperties": True,
    },
}
