"""Client address, scheme and host as a trusted proxy reports them (LIAISON_TRUSTED_PROXIES).

Behind nginx or an Ingress every connection comes from the proxy, so the audit trail and the
per-address sign-in limit would see one address for everybody. The proxy's X-Forwarded-For /
-Proto / -Host (or RFC 7239 Forwarded) headers are believed only when the immediate peer is a
listed proxy: from anyone else they are a client's claim, and ignored. uvicorn's own proxy support
is off (liaison.app.uvicorn_options) so that this one rule holds on every server that runs the app."""

import re
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

from starlette.types import ASGIApp, Receive, Scope, Send

_HOST = re.compile(r"^(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?$")
_PAIR = re.compile(r'\s*([A-Za-z]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;,\s]*)\s*')
Address = IPv4Address | IPv6Address


def parse_networks(entries: list[str]) -> list[IPv4Network | IPv6Network]:
    """The listed proxies as networks (a bare address is a network of one); ValueError on a bad entry."""
    return [ip_network(entry.strip(), strict=False) for entry in entries]


class TrustedProxies:
    """Rewrites scope["client"], scope["scheme"] and the Host header from a trusted proxy's headers."""

    def __init__(self, app: ASGIApp, trusted: list[str]) -> None:
        self.app = app
        self.networks = parse_networks(trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and self.networks and self._trusts(_peer(scope)):
            scope = self._rewritten(scope)
        await self.app(scope, receive, send)

    def _trusts(self, addr: Address | None) -> bool:
        return addr is not None and any(addr in net for net in self.networks)

    def _rewritten(self, scope: Scope) -> Scope:
        headers = _header_map(scope)
        hops, proto, host = _forwarded(headers) if b"forwarded" in headers else _x_forwarded(headers)
        scope = dict(scope)
        client = self._client(hops)
        if client is not None:
            scope["client"] = (client, 0)
        if proto in ("http", "https"):
            secure = proto == "https"
            scope["scheme"] = ("wss" if secure else "ws") if scope["type"] == "websocket" else proto
        if host and _HOST.match(host):
            scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"host"] + [
                (b"host", host.encode("latin-1"))
            ]
        return scope

    def _client(self, hops: list[str]) -> str | None:
        """The nearest hop that is not a trusted proxy (a chain of proxies is walked from the right)."""
        found = None
        for hop in reversed(hops):
            addr = _address(hop)
            if addr is None:
                break  # what lies beyond an unreadable hop cannot be believed
            found = str(addr)
            if not self._trusts(addr):
                break
        return found


def _peer(scope: Scope) -> Address | None:
    client = scope.get("client")
    return _address(client[0]) if client else None


def _address(text: str) -> Address | None:
    """An address from a header value: bare, `[v6]`, `[v6]:port` or `v4:port`; None when it is none."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        return ip_address(text)
    except ValueError:
        return None


def _header_map(scope: Scope) -> dict[bytes, str]:
    """Each header once, repeated ones joined with commas (as HTTP allows for these list headers)."""
    out: dict[bytes, str] = {}
    for key, value in scope["headers"]:
        text = value.decode("latin-1")
        out[key] = f"{out[key]}, {text}" if key in out else text
    return out


def _last(value: str | None) -> str | None:
    """The value the nearest proxy appended (the list's last)."""
    if not value:
        return None
    return value.rsplit(",", 1)[-1].strip() or None


def _x_forwarded(headers: dict[bytes, str]) -> tuple[list[str], str | None, str | None]:
    hops = [h for h in headers.get(b"x-forwarded-for", "").split(",") if h.strip()]
    proto = _last(headers.get(b"x-forwarded-proto"))
    return hops, proto.lower() if proto else None, _last(headers.get(b"x-forwarded-host"))


def _forwarded(headers: dict[bytes, str]) -> tuple[list[str], str | None, str | None]:
    """RFC 7239: one element per proxy, comma-separated; `for`, `proto`, `host` from each."""
    hops: list[str] = []
    proto = host = None
    for element in headers[b"forwarded"].split(","):
        pairs = {k.lower(): v.strip('"') for k, v in _PAIR.findall(element)}
        if "for" in pairs:
            hops.append(pairs["for"])
        proto = pairs.get("proto", proto)
        host = pairs.get("host", host)
    return hops, proto.lower() if proto else None, host
