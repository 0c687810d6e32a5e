"""Parsing ``grpc://host:port`` and ``grpcs://host:port`` endpoints."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from stigmer.core import InvalidArgument

__all__ = ["Endpoint", "parse_endpoint"]

_FORMS = "grpc://host:port (plaintext) or grpcs://host:port (TLS), e.g. grpc://127.0.0.1:7234"


@dataclass(frozen=True)
class Endpoint:
    """Where a server listens and whether to use TLS."""

    host: str
    port: int
    tls: bool

    @property
    def target(self) -> str:
        """The gRPC channel target, ``host:port`` (IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        """True for ``localhost`` and loopback addresses."""
        if self.host.lower() == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def served_by(self, address: str) -> bool:
        """Whether a server that bound ``address`` (``host:port``, IPv6 in brackets) answers here.

        Same port, and the same host (case aside) — or a server bound to every address (``0.0.0.0``
        for an IPv4 loopback address, ``::`` for any loopback address). ``localhost`` and
        ``127.0.0.1`` are not the same host: ``localhost`` may reach ``::1``, where another
        process can listen.
        """
        text = address.strip()
        host, sep, port = text.rpartition(":")
        if not sep or not (port.isascii() and port.isdigit()) or int(port) != self.port:
            return False
        host = host.removeprefix("[").removesuffix("]").lower()
        mine = self.host.lower()
        if host == mine:
            return True
        try:
            ip = ipaddress.ip_address(mine)
        except ValueError:
            return host == "::" and mine == "localhost"
        if host == "0.0.0.0":
            return ip.version == 4 and ip.is_loopback
        return host == "::" and ip.is_loopback

    def __str__(self) -> str:
        return f"{'grpcs' if self.tls else 'grpc'}://{self.target}"


def parse_endpoint(endpoint: str) -> Endpoint:
    """Parse an endpoint string; anything else raises InvalidArgument naming the accepted forms."""
    text = (endpoint or "").strip()
    scheme, sep, rest = text.partition("://")
    if not sep or scheme.lower() not in ("grpc", "grpcs"):
        raise InvalidArgument(f"endpoint {endpoint!r} is not valid; use {_FORMS}", ["endpoint"])
    rest = rest.rstrip("/")
    if rest.startswith("["):
        host, bracket, tail = rest[1:].partition("]")
        if not bracket or not tail.startswith(":"):
            raise InvalidArgument(f"endpoint {endpoint!r} is not valid; use {_FORMS}", ["endpoint"])
        port_text = tail[1:]
    else:
        host, colon, port_text = rest.partition(":")
        if not colon or ":" in port_text:
            raise InvalidArgument(
                f"endpoint {endpoint!r} needs a host and a port; use {_FORMS}", ["endpoint"]
            )
    if not host or "/" in host or "@" in host or any(ch.isspace() for ch in host):
        raise InvalidArgument(f"endpoint {endpoint!r} has no valid host; use {_FORMS}", ["endpoint"])
    if not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise InvalidArgument(
            f"endpoint {endpoint!r} has no valid port (1-65535); use {_FORMS}", ["endpoint"]
        )
    return Endpoint(host=host, port=int(port_text), tls=scheme.lower() == "grpcs")
