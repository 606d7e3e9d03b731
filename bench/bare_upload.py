"""The baseline for bench.attachments: an HTTP server that only streams a request body to a file.

`python -m bench.bare_upload --port N --workers 1` serves, under uvicorn as Liaison's node does,
GET /healthz and PATCH (any path): the body is written to a temporary file as it arrives and
fsynced, then 204. No auth, no database, no hashing, no type check.
"""

import argparse
import os
import tempfile

import uvicorn


async def app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    if scope["method"] == "PATCH":
        with tempfile.TemporaryFile() as out:
            more = True
            while more:
                message = await receive()
                out.write(message.get("body", b""))
                more = message.get("more_body", False)
            out.flush()
            os.fsync(out.fileno())
    await send(
        {"type": "http.response.start", "status": 204 if scope["method"] == "PATCH" else 200, "headers": []}
    )
    await send({"type": "http.response.body", "body": b""})


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
