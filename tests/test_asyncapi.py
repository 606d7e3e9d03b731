"""/asyncapi.json: served by the app, valid for the AsyncAPI Initiative's parser, and the document
tests/protocol.py checks every WebSocket message of the suite against."""

import ast
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import events.wire
import signaling.wire
from liaison.asyncapi import document
from tests import protocol
from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parents[1]
VALIDATOR = ROOT / "tools" / "asyncapi" / "validate.mjs"
# Functions whose first argument is an error code a client is sent (signaling and events).
SENDERS = {"ProtocolError", "error", "_refuse"}


def validate(doc: dict) -> dict:
    """@asyncapi/parser's verdict (tools/asyncapi, installed by `make install`)."""
    node = shutil.which("node")
    if node is None or not (VALIDATOR.parent / "node_modules" / "@asyncapi" / "parser").is_dir():
        if IN_CI:
            pytest.fail(
                "node and tools/asyncapi's @asyncapi/parser must be installed under CI=true (make install)"
            )
        pytest.skip("the AsyncAPI validator is not installed (Debian nodejs and npm, then make install)")
    done = subprocess.run(
        [node, str(VALIDATOR)], input=json.dumps(doc), capture_output=True, text=True, timeout=120
    )
    verdict = json.loads(done.stdout)
    verdict["returncode"] = done.returncode
    return verdict


def errors(verdict: dict) -> list[dict]:
    return [d for d in verdict["diagnostics"] if d["severity"] == "error"]


async def test_served_document_is_valid_asyncapi_3(client, app):
    answer = await client.get("/asyncapi.json")
    assert answer.status_code == 200
    doc = answer.json()
    assert doc["asyncapi"].startswith("3.")
    assert set(doc["channels"]) == {"signaling", "signalingPort", "events"}
    assert doc == document(version=app.version, host=doc["servers"]["api"]["host"], signaling_port=None)
    verdict = validate(doc)
    assert verdict["valid"] and verdict["returncode"] == 0 and not errors(verdict), errors(verdict)


def test_validator_refuses_a_broken_document():
    """The validator is not a rubber stamp: a payload that is no schema, and an operation sending a
    message of another channel, are both errors."""
    doc = document(version="t", host="127.0.0.1:8000", signaling_port=8443)
    doc["components"]["messages"]["events.ping"]["payload"]["type"] = 5
    doc["operations"]["events.toClient"]["messages"].append({"$ref": "#/channels/signaling/messages/joined"})
    found = {d["code"] for d in errors(validate(doc))}
    assert {"asyncapi-document-resolved", "asyncapi3-operation-messages-from-referred-channel"} <= found


def test_messages_are_checked_against_the_document():
    """The check the whole suite runs on WebSocket frames rejects what the protocol does not allow."""
    check = protocol.CHECKER.check
    ok = '{"type": "candidate", "to": "ab", "candidate": "", "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": null}'
    assert check("signaling", "receive", ok) == []
    assert check("signalingPort", "send", '{"type": "pong"}') == []
    assert check(
        "signaling", "receive", '{"type": "candidate", "to": "ab", "candidate": "x"}'
    )  # no 'candidate:'
    assert check("signaling", "receive", '{"type": "join", "token": "t", "extra": 1}')  # unknown field
    assert check("signaling", "send", '{"type": "error", "code": "no_such_code", "message": "m"}')
    assert check(
        "signaling", "send", '{"type": "join", "token": "t"}'
    )  # a client's message, not the server's
    assert check("events", "send", '{"type": "ready", "user_id": "u"}')  # no channels
    assert check("events", "receive", "not json")


def test_a_wrong_schema_fails_the_check():
    """Were the document wrong about a message the server sends, the suite's check would say so."""
    doc = document(version="t", host="127.0.0.1:8000", signaling_port=None)
    pong = doc["components"]["messages"]["signaling.pong"]["payload"]
    pong["required"].append("at")
    pong["properties"]["at"] = {"type": "number"}
    assert protocol.Checker(doc).check("signaling", "send", '{"type": "pong"}')


def _codes_sent(*packages: str) -> set[str]:
    """Every string literal given as the code to ProtocolError / error / _refuse, or as an `error`
    message's code, in the packages' source."""
    codes = set()
    for package in packages:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call):
                    # error(...) is messages.error; parser.error(...) (argparse) is not a message
                    name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                    name = None if name == "error" and not isinstance(node.func, ast.Name) else name
                    args = node.args[1:] if name == "_refuse" else node.args
                    if name in SENDERS and args and isinstance(args[0], ast.Constant):
                        codes.add(args[0].value)
                if isinstance(node, ast.Dict):
                    pairs = {
                        getattr(k, "value", None): v for k, v in zip(node.keys, node.values, strict=True)
                    }
                    if getattr(pairs.get("type"), "value", None) == "error" and isinstance(
                        pairs.get("code"), ast.Constant
                    ):
                        codes.add(pairs["code"].value)
    return codes


def test_every_error_code_is_documented():
    """Each code the code can send is in the document's enum and in the README's "Calls" section."""
    readme = (ROOT / "README.md").read_text()
    calls = readme[readme.index("\n## Calls") : readme.index("\n## ", readme.index("\n## Calls") + 1)]
    signaling_codes = _codes_sent("signaling") | {"unavailable"}  # unavailable: api.errors, for any store
    events_codes = _codes_sent("events") | {"auth_required", "invalid_token", "unavailable"}
    assert signaling_codes <= set(signaling.wire.ERROR_CODES), signaling_codes - set(
        signaling.wire.ERROR_CODES
    )
    assert events_codes <= set(events.wire.ERROR_CODES), events_codes - set(events.wire.ERROR_CODES)
    doc = json.dumps(document(version="t", host="h:1", signaling_port=None))
    for code in set(signaling.wire.ERROR_CODES) | set(events.wire.ERROR_CODES):
        assert f'"{code}"' in doc, code
        assert f"`{code}`" in calls, f"README's Calls section does not name {code}"
    for close in set(signaling.wire.CLOSE_CODES) | set(events.wire.CLOSE_CODES):
        assert re.search(rf"\b{close}\b", calls), f"README's Calls section does not name close code {close}"
