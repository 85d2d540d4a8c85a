"""The client's address (客户端地址) as the audit log records it.

``X-Forwarded-For`` is whatever the client wrote, so it counts only when the request came through a
proxy we run: ``ONEMAP_TRUSTED_PROXIES`` lists those proxies' addresses or networks (comma-separated,
e.g. ``10.0.0.5,10.1.0.0/16``). Without it the address is the socket peer, whatever the header says.
With it, and only when the peer is one of them, the header is read from the right (each proxy appends
the address it saw) past every trusted hop, and the first untrusted address is the client: anything
left of it was written by the client and is ignored.

The server must hand the app the real peer: `onemap serve` starts uvicorn with ``proxy_headers=False``
(uvicorn would otherwise rewrite the peer from the header for connections from 127.0.0.1); anyone
starting uvicorn themselves passes ``--no-proxy-headers``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from functools import cached_property, lru_cache
from typing import Any

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ProxySettings(BaseSettings):
    """Which reverse proxies may tell us the client's address (env prefix ONEMAP_)."""

    model_config = SettingsConfigDict(env_prefix="ONEMAP_", extra="ignore")

    trusted_proxies: str = ""  # e.g. "127.0.0.1,10.0.0.0/8"; empty: X-Forwarded-For is never believed

    @field_validator("trusted_proxies")
    @classmethod
    def _parses(cls, value: str) -> str:
        parse_networks(value)
        return value

    @cached_property
    def networks(self) -> tuple[Network, ...]:
        """Parsed once per settings object (every request asks)."""
        return parse_networks(self.trusted_proxies)


def parse_networks(value: str) -> tuple[Network, ...]:
    """``"10.0.0.5, 10.1.0.0/16"`` → networks; a bad entry is a ValueError naming it."""
    networks = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ValueError(f"ONEMAP_TRUSTED_PROXIES: {item!r} is not an IP address or network") from exc
    return tuple(networks)


@lru_cache
def proxy_settings() -> ProxySettings:
    return ProxySettings()


def client_ip(scope: Mapping[str, Any], trusted: Sequence[Network] | None = None) -> str | None:
    """The client's address for this request (see the module's docstring)."""
    trusted = proxy_settings().networks if trusted is None else trusted
    client = scope.get("client")
    peer = client[0] if client else None
    if not trusted or peer is None or not _within(_address(peer), trusted):
        return peer
    hops = [hop.strip() for key, value in scope.get("headers", []) if key.lower() == b"x-forwarded-for"
            for hop in value.decode("latin-1").split(",")]
    seen = peer
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:  # not an address: nothing further left can be believed
            return seen
        if not _within(address, trusted):
            return str(address)
        seen = str(address)
    return seen  # every hop is a trusted proxy: the left-most one is as far as we can see


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address, allowing ``[v6]``, ``[v6]:port`` and ``v4:port`` forms some proxies write."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _within(address: ipaddress.IPv4Address | ipaddress.IPv6Address | None, trusted: Sequence[Network]) -> bool:
    if address is None:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address.version == net.version and address in net for net in trusted)
