"""Every signaling test: aiortc must never fall back to its public default STUN server."""

import pytest
from aiortc.rtcicetransport import RTCIceGatherer


@pytest.fixture(autouse=True)
def no_default_stun(monkeypatch):
    """aiortc uses a public STUN server when given no configuration: fail the test if that happens."""

    def refuse(*_):
        raise AssertionError("an RTCPeerConnection was made without Liaison's ICE servers")

    monkeypatch.setattr(RTCIceGatherer, "getDefaultIceServers", refuse)
