"""The shipped nginx configuration (Debian nginx) with TLS from deploy/make-certs.sh, in front of
two real `liaison serve` nodes on PostgreSQL and Redis: clients on 127.0.0.2 and 127.0.0.3."""

import asyncio
import json
import ssl
import subprocess
from contextlib import asynccontextmanager

import httpx
import pytest
import websockets
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from audit.models import AuditEvent
from signaling.peers.client import CallClient
from tests.conftest import PASSWORD
from tests.consults.conftest import CONSULT
from tests.deploy.conftest import nginx_prefix, program, until_listening
from tests.faults import node_for, seeded
from tests.live import free_port

PER_ADDRESS = 3  # failed sign-ins per address before 429


@pytest.fixture(scope="module")
async def front(pg_url, redis_url, certs, tmp_path_factory):
    """(base URL, CA context, world): nginx on 127.0.0.1 over two nodes sharing PostgreSQL and Redis."""
    nginx = program("/usr/sbin/nginx", "nginx-light")
    r = Redis.from_url(redis_url)
    await r.flushdb()  # this helper's own database: no sign-in counts left from an earlier run
    await r.aclose()
    https, http_port = free_port(), free_port()
    base = f"https://localhost:{https}"
    logs = tmp_path_factory.mktemp("nodes")
    async with seeded(pg_url) as (_, world):
        nodes = [
            node_for(
                pg_url,
                logs,
                redis_url,
                trusted_proxies=["127.0.0.1"],
                public_url=base,
                signaling_port=free_port(),
                login_max_failures_per_address=PER_ADDRESS,
                login_max_failures=1000,
                escalation_worker=False,
            )
            for _ in range(2)
        ]
        for node in nodes:
            node.spawn()
        try:
            # Two nodes starting at once on a loaded machine: give them a minute, not the usual 15 s.
            await asyncio.gather(*(n.ready() for n in nodes))
            prefix = tmp_path_factory.mktemp("nginx")
            conf = nginx_prefix(
                prefix,
                certs,
                HTTPS_PORT=f"127.0.0.1:{https}",
                HTTP_PORT=f"127.0.0.1:{http_port}",
                API_1=nodes[0].host,
                API_2=nodes[1].host,
                SIGNALING_1=f"127.0.0.1:{nodes[0]._env['LIAISON_SIGNALING_PORT']}",
                SIGNALING_2=f"127.0.0.1:{nodes[1]._env['LIAISON_SIGNALING_PORT']}",
            )
            async with running_nginx(nginx, prefix, conf, https):
                yield base, ssl.create_default_context(cafile=str(certs / "ca.crt")), world, http_port
        finally:
            for node in nodes:
                node.stop()


@asynccontextmanager
async def running_nginx(nginx: str, prefix, conf, port: int):
    proc = subprocess.Popen(
        [nginx, "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        await until_listening(port, proc, lambda: proc.stderr.read().decode() if proc.stderr else "")
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stderr:
            proc.stderr.close()


def client(base: str, tls: ssl.SSLContext, source: str) -> httpx.AsyncClient:
    """HTTPS through the proxy from a loopback address of the test's choosing."""
    transport = httpx.AsyncHTTPTransport(verify=tls, local_address=source)
    return httpx.AsyncClient(base_url=base, transport=transport, timeout=10)


async def sign_in(c: httpx.AsyncClient, username: str, password: str = PASSWORD, **headers) -> httpx.Response:
    return await c.post(
        "/api/v1/auth/login", json={"username": username, "password": password}, headers=headers
    )


async def test_sign_ins_are_limited_and_audited_per_client_address(front, pg_url):
    base, tls, _, _ = front
    async with client(base, tls, "127.0.0.2") as two, client(base, tls, "127.0.0.3") as three:
        for _ in range(PER_ADDRESS):
            assert (await sign_in(two, "a-clinician", "wrong-password")).status_code == 401
        refused = await sign_in(two, "a-clinician")
        assert refused.status_code == 429, refused.text
        # What the client says of itself is not believed: nginx replaces it, the nodes trust only nginx.
        spoofed = await sign_in(two, "a-clinician", x_forwarded_for="127.0.0.3", forwarded="for=127.0.0.3")
        assert spoofed.status_code == 429
        # The other address is not locked out by the first one's failures, on either node.
        assert (await sign_in(three, "a-clinician", "wrong-password")).status_code == 401
        for _ in range(2):
            assert (await sign_in(three, "a-clinician")).status_code == 200
    engine = create_async_engine(pg_url)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(AuditEvent.client_addr, AuditEvent.outcome).where(AuditEvent.action == "auth.login")
            )
        ).all()
    await engine.dispose()
    assert {addr for addr, _ in rows} == {"127.0.0.2", "127.0.0.3"}, rows
    assert ("127.0.0.3", "success") in rows and ("127.0.0.2", "success") not in rows


async def test_plain_http_is_sent_to_https_and_metrics_are_not_published(front):
    base, tls, _, http_port = front
    async with httpx.AsyncClient() as plain:
        moved = await plain.get(
            f"http://127.0.0.1:{http_port}/api/v1/consults?x=1", headers={"host": "localhost"}
        )
    assert moved.status_code == 308 and moved.headers["location"] == "https://localhost/api/v1/consults?x=1"
    async with client(base, tls, "127.0.0.2") as c:
        assert (await c.get("/metrics")).status_code == 404
        assert (await c.get("/healthz")).status_code == 200


async def test_events_and_a_call_over_wss_name_the_public_url(front, certs, monkeypatch):
    base, tls, _, _ = front
    # The call client uses the default TLS context, as a deployment's clients would: trust the test CA.
    monkeypatch.setenv("SSL_CERT_FILE", str(certs / "ca.crt"))
    async with client(base, tls, "127.0.0.3") as c:
        clinician, specialist = [
            {"Authorization": f"Bearer {(await sign_in(c, who)).json()['access_token']}"}
            for who in ("a-clinician", "b-specialist")
        ]
        wss = base.replace("https://", "wss://")
        async with websockets.connect(f"{wss}/api/v1/events", ssl=tls, compression=None) as events:
            await events.send(json.dumps({"type": "auth", "token": specialist["Authorization"][7:]}))
            assert json.loads(await asyncio.wait_for(events.recv(), 10))["type"] == "ready"
            consult = (await c.post("/api/v1/consults", json=CONSULT, headers=clinician)).json()
            offered = await next_event(events, "offer.created")
            assert offered["consult_id"] == consult["id"]
        assert (
            await c.post(f"/api/v1/consults/{consult['id']}/accept", headers=specialist)
        ).status_code == 200
        grants = [
            (await c.post(f"/api/v1/consults/{consult['id']}/call-token", headers=h)).json()
            for h in (clinician, specialist)
        ]
    assert {g["signaling_url"] for g in grants} == {f"{wss}/api/v1/signaling"}
    async with (
        CallClient(grants[0]["signaling_url"], grants[0]["token"]) as a,
        CallClient(grants[1]["signaling_url"], grants[1]["token"]) as b,
    ):
        [la], [lb] = await a.wait_connected(1, timeout=20), await b.wait_connected(1, timeout=20)
        await asyncio.wait_for(la.channel_open.wait(), 10)
        la.send("through the proxy")
        assert await lb.receive(10) == "through the proxy"


async def next_event(ws, name: str) -> dict:
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if frame.get("type") == "event" and frame["event"] == name:
            return frame
