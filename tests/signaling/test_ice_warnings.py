"""A start-up says when TURN is half configured, and when no ICE server is configured outside development."""

import logging

from api.settings import Settings
from liaison.app import create_app
from signaling.calls.ice import ice_warnings
from tests.conftest import make_settings


def test_half_configured_turn_and_no_ice_are_named():
    assert ice_warnings(Settings()) == []  # development: no ICE server is the embedded default
    secret_only = ice_warnings(Settings(turn_secret="s"))
    assert len(secret_only) == 1 and "without LIAISON_TURN_URLS" in secret_only[0]
    urls_only = ice_warnings(Settings(turn_urls=["turn:turn.example.org:3478"]))
    assert len(urls_only) == 1 and "without LIAISON_TURN_SECRET" in urls_only[0]
    prod = dict(environment="production", jwt_secret="p" * 40)
    assert any("no ICE servers" in w for w in ice_warnings(Settings(**prod)))
    assert ice_warnings(Settings(**prod, stun_urls=["stun:stun.site.test:3478"])) == []
    both = Settings(**prod, turn_urls=["turns:turn.example.org:443?transport=tcp"], turn_secret="s")
    assert ice_warnings(both) == []


async def test_start_up_logs_them(tmp_path, sqlite_template, caplog):
    import shutil

    shutil.copy(sqlite_template, tmp_path / "l.db")
    app = create_app(make_settings(f"sqlite+aiosqlite:///{tmp_path}/l.db", None, turn_secret="s"))
    with caplog.at_level(logging.WARNING, logger="liaison"):
        async with app.router.lifespan_context(app):
            pass
    said = [r.getMessage() for r in caplog.records if r.name == "liaison"]
    assert any("without LIAISON_TURN_URLS" in m for m in said), said
    assert any("no ICE servers" in m for m in said), said
