"""Requests we make to URLs an org admin typed in (an IdP's keys, a webhook endpoint): such a request
is made on their behalf from inside our network, so where it may go is checked twice — every address
the name resolves to, and the address actually connected to (DNS may answer otherwise the second time)."""

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

import httpx


class AddressRefused(Exception):
    """The URL, or an address it leads to, is not one we send requests to; the message says why."""


def split_url(url: str, *, allow_private: bool, what: str = "the URL") -> tuple[str, int]:
    """Host and port of an acceptable URL: https (http only where private addresses are allowed),
    no credentials in it; raise AddressRefused otherwise."""
    parts = urlsplit(url)
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes or not parts.hostname or parts.username or parts.password:
        raise AddressRefused(f"{what} must be an {' or '.join(schemes)} URL with a host and no credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise AddressRefused(f"{what} has an invalid port") from None
    return parts.hostname, port


def refused_address(address: str, *, allow_private: bool) -> bool:
    """Private, loopback, link-local (cloud metadata), multicast, reserved: none is a public service's."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not allow_private and (not ip.is_global or ip.is_multicast)


async def check_resolved(host: str, port: int, *, allow_private: bool, what: str = "the URL") -> None:
    """Raise AddressRefused unless every address `host` resolves to is allowed (OSError: no answer)."""
    try:  # an address literal needs no resolver (a thread of the executor, per request)
        literal = str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        literal = None
    if literal is not None:
        if refused_address(literal, allow_private=allow_private):
            raise AddressRefused(f"{what} resolves to an address that is not allowed")
        return
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not infos or any(refused_address(str(i[4][0]), allow_private=allow_private) for i in infos):
        raise AddressRefused(f"{what} resolves to an address that is not allowed")


def check_connected(resp: httpx.Response, *, allow_private: bool, what: str = "the URL") -> None:
    """Raise AddressRefused unless the response came from an allowed address (a streamed response)."""
    stream = resp.extensions.get("network_stream")
    peer = stream.get_extra_info("server_addr") if stream is not None else None
    if peer is None or refused_address(peer[0], allow_private=allow_private):
        raise AddressRefused(f"{what} connected to an address that is not allowed")
