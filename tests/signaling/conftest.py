"""Every signaling test: aiortc must never fall back to its public default STUN server."""

import pytest
from aiortc.rtcicetransport import RTCIceGatherer


@pytest.fixture(autouse=True)
def no_default_stun(monkeypatch):
    """aiortc uses a public STUN server when given no configuration: fail the test if that happens."""

    def refuse(*_):
        raise AssertionError("an RTCPeerConnection was made without Liaison's ICE servers")

    monkeypatch.setattr(RTCIceGatherer, "getDefaultIceServers", refuse)


@pytest.fixture
def route(request) -> str:
    """Which listener a live test talks to: the API's ASGI route (default) or the dedicated port."""
    return getattr(request, "param", "asgi")
