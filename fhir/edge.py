"""The FHIR dialect at the edge: errors are rendered once, as problem+json, by the kernel; under
/fhir this middleware retells them as OperationOutcome, which is what FHIR clients parse."""

import json
from typing import Any

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import PROBLEM
from fhir import codes
from fhir.bundle import outcome


class FhirResponse(JSONResponse):
    media_type = codes.FHIR_JSON


class OperationOutcomes:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(codes.BASE + "/"):
            await self.app(scope, receive, send)
            return
        held: dict[str, Any] = {}

        async def retell(message: Message) -> None:
            if message["type"] == "http.response.start" and _is_problem(message):
                held["start"], held["body"] = message, b""
                return
            if "start" not in held or message["type"] != "http.response.body":
                await send(message)
                return
            held["body"] += message.get("body", b"")
            if not message.get("more_body"):
                await _send_outcome(send, held["start"], held["body"])

        await self.app(scope, receive, retell)


def _is_problem(start: Message) -> bool:
    return any(k == b"content-type" and v.startswith(PROBLEM.encode()) for k, v in start["headers"])


async def _send_outcome(send: Send, start: Message, body: bytes) -> None:
    try:
        problem = json.loads(body)
    except ValueError:
        problem = {"status": start["status"], "code": "error"}
    data = json.dumps(outcome(problem)).encode()
    kept = [(k, v) for k, v in start["headers"] if k not in (b"content-type", b"content-length")]
    headers = [
        *kept,
        (b"content-type", codes.FHIR_JSON.encode()),
        (b"content-length", str(len(data)).encode()),
    ]
    await send({"type": "http.response.start", "status": start["status"], "headers": headers})
    await send({"type": "http.response.body", "body": data})
