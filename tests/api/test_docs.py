"""`/docs` and `/redoc` render from packaged assets: nothing they load leaves 127.0.0.1.

Two checks: what the pages reference, read through the app (HTML and CSS reference no other host;
the Content-Security-Policy confines the vendors' JavaScript to the app's own origin), and a real
headless Chromium with every host but 127.0.0.1 unresolvable, as on an air-gapped network: the
pages render the API, and every request they made went to the app."""

import asyncio
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser

import httpx
import pytest

from tests.conftest import IN_CI
from tests.live import serve

PAGES = {"docs": "swagger-ui-bundle.js", "redoc": "redoc.standalone.js"}
EXTERNAL = re.compile(r"https?://(?!127\.0\.0\.1[:/])[^\s\"')]+")
# What a browser fetches from CSS: url(...) other than data:, and @import.
CSS_LOADS = re.compile(r"url\(\s*['\"]?(?!data:)([^'\")]+)|@import\s+['\"]?([^'\";\s]+)")
FETCH_DIRECTIVES = (
    "default-src",
    "script-src",
    "style-src",
    "img-src",
    "font-src",
    "connect-src",
    "worker-src",
)


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.refs += [v for k, v in attrs if k in ("src", "href", "spec-url") and v]


@pytest.fixture
async def docs_client(tmp_path, sqlite_template):
    from liaison.app import create_app
    from tests.conftest import make_settings

    shutil.copy(sqlite_template, tmp_path / "docs.db")
    app = create_app(make_settings(f"sqlite+aiosqlite:///{tmp_path / 'docs.db'}", None))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as c,
    ):
        yield c


@pytest.mark.parametrize("page", PAGES)
async def test_page_and_every_asset_it_references_come_from_the_app(docs_client, page):
    resp = await docs_client.get(f"/{page}")
    assert resp.status_code == 200 and "text/html" in resp.headers["content-type"]
    assert not EXTERNAL.findall(resp.text), "the page names another host"
    parser = _Refs()
    parser.feed(resp.text)
    assert any(ref.endswith(PAGES[page]) for ref in parser.refs)
    for ref in parser.refs:
        assert ref.startswith("/"), f"{ref}: not served by the app"
        asset = await docs_client.get(ref)
        assert asset.status_code == 200, ref
        if ref.endswith(".css"):
            loads = [a or b for a, b in CSS_LOADS.findall(asset.text)]
            assert not [u for u in loads if EXTERNAL.match(u)], f"{ref} loads from another host"
    _assert_policy_is_own_origin(resp.headers["content-security-policy"])


def _assert_policy_is_own_origin(policy: str) -> None:
    """Every fetch directive allows the app's origin at most (plus inline, data: and blob:)."""
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";") if d.strip())
    assert directives["default-src"] == "'none'"
    for name in FETCH_DIRECTIVES:
        sources = set(directives.get(name, "'none'").split())
        assert sources <= {"'self'", "'none'", "'unsafe-inline'", "data:", "blob:"}, (name, sources)


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if IN_CI:
            pytest.fail(
                "chromium is missing; under CI=true the offline-docs test must run (Debian `chromium`)"
            )
        pytest.skip("chromium is not installed (Debian package `chromium`)")
    return found


@pytest.mark.parametrize("page", PAGES)
async def test_pages_render_with_the_network_unplugged(tmp_path, sqlite_template, page):
    from tests.conftest import make_settings

    binary = _chromium()
    shutil.copy(sqlite_template, tmp_path / "docs.db")
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'docs.db'}", None)
    async with serve(settings) as (_, host):
        dom, requests = await _render(binary, tmp_path, f"http://{host}/{page}")
    origin = f"http://{host}"
    # The browser's own background requests (updates, accounts) carry no page origin: only the
    # page's are the app's concern, and every one must have gone to the app.
    from_page = [url for url, initiator in requests if initiator == origin]
    assert f"{origin}/openapi.json" in from_page and any(u.endswith(PAGES[page]) for u in from_page)
    assert [u for u in from_page if not u.startswith(origin + "/")] == []
    # Rendered, not a blank page: the operations of the document are on it.
    assert "/api/v1/consults" in dom and "/api/v1/auth/login" in dom


async def _render(binary: str, tmp_path, url: str) -> tuple[str, list[tuple[str, str]]]:
    """Chromium's rendered DOM of the page, and (url, initiator) of every request it started."""
    net_log = tmp_path / "net.json"
    proc = await asyncio.create_subprocess_exec(
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        # The air gap: no name resolves but the app's address.
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        f"--log-net-log={net_log}",
        "--virtual-time-budget=20000",
        "--dump-dom",
        url,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    dom, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 0
    log = json.loads(net_log.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    requests = [
        (e["params"].get("url", ""), e["params"].get("initiator", ""))
        for e in log["events"]
        if e["type"] == start_job and "params" in e
    ]
    return dom.decode(), requests
