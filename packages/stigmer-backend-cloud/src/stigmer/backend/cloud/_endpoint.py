"""Parsing endpoints: ``grpc://host:port`` and ``grpcs://host:port``, a list of them
(``grpc://a:7234,grpc://b:7234``: several servers), or a DNS name whose records are the servers
(``dns:///name:port``, ``grpcs+dns://name:port``)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from stigmer.core import InvalidArgument

__all__ = ["Endpoint", "channel_target", "parse_endpoint"]

_FORMS = (
    "grpc://host:port (plaintext) or grpcs://host:port (TLS), e.g. grpc://127.0.0.1:7234; several servers "
    "as a comma-separated list (grpc://a:7234,grpc://b:7234), or a DNS name with a record per server "
    "(dns:///name:7234, grpcs+dns://name:7234)"
)
_SCHEMES = {
    "grpc": (False, False),
    "grpcs": (True, False),
    "grpc+dns": (False, True),
    "grpcs+dns": (True, True),
}


def _bracketed(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Endpoint:
    """Where the server(s) listen and whether to use TLS.

    ``host`` and ``port`` are the first (or only) server; ``more`` the other servers of a list;
    ``dns`` says that ``host`` is a DNS name whose every record is a server. With several servers
    (a list or ``dns``) a client balances its calls over them (gRPC's ``round_robin``).
    """

    host: str
    port: int
    tls: bool
    more: tuple[tuple[str, int], ...] = ()
    dns: bool = False

    @property
    def addresses(self) -> tuple[tuple[str, int], ...]:
        """Every ``(host, port)`` named (a ``dns`` endpoint: the name, resolved by gRPC)."""
        return ((self.host, self.port), *self.more)

    @property
    def several(self) -> bool:
        """True when calls are balanced over several servers (a list, or a DNS name)."""
        return bool(self.more) or self.dns

    @property
    def target(self) -> str:
        """The gRPC channel target of the first server, ``host:port`` (IPv6 in brackets);
        ``dns:///host:port`` for a DNS endpoint. A list's target is :func:`channel_target`."""
        if self.dns:
            return f"dns:///{_bracketed(self.host, self.port)}"
        return _bracketed(self.host, self.port)

    def servers(self) -> tuple[Endpoint, ...]:
        """Each server of a list as an endpoint of its own (a DNS endpoint: itself, since only
        gRPC's resolver knows its records)."""
        if not self.more:
            return (self,)
        return tuple(Endpoint(host=host, port=port, tls=self.tls) for host, port in self.addresses)

    @property
    def is_loopback(self) -> bool:
        """True when every server named is ``localhost`` or a loopback address."""
        return all(_loopback(host) for host, _port in self.addresses)

    def served_by(self, address: str) -> bool:
        """Whether a server that bound ``address`` (``host:port``, IPv6 in brackets) answers here.

        Same port, and the same host (case aside) — or a server bound to every address (``0.0.0.0``
        for an IPv4 loopback address, ``::`` for any loopback address). ``localhost`` and
        ``127.0.0.1`` are not the same host: ``localhost`` may reach ``::1``, where another
        process can listen.
        """
        if self.several:
            return False  # one server's admin token is never sent to a set of servers
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
        scheme = "grpcs" if self.tls else "grpc"
        if self.dns:
            return f"grpcs+dns://{_bracketed(self.host, self.port)}" if self.tls else self.target
        return ",".join(f"{scheme}://{_bracketed(host, port)}" for host, port in self.addresses)


def channel_target(endpoint: Endpoint) -> str:
    """The gRPC target to dial: ``host:port`` for one server, ``dns:///name:port`` for a DNS
    endpoint, and for a list ``ipv4:a:p,b:q`` (or ``ipv6:``) with every host resolved here, since
    gRPC's address-list targets take IP addresses only. Blocking (a DNS lookup for host names)."""
    if not endpoint.more:
        return endpoint.target
    import socket

    per_family: dict[int, list[str]] = {socket.AF_INET: [], socket.AF_INET6: []}
    missing: dict[int, bool] = {socket.AF_INET: False, socket.AF_INET6: False}
    for host, port in endpoint.addresses:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise InvalidArgument(
                f"cannot resolve {host!r} of endpoint {endpoint}: {exc.strerror or exc}", ["endpoint"]
            ) from None
        for family in per_family:
            ips = sorted({str(info[4][0]) for info in infos if info[0] == family})
            missing[family] = missing[family] or not ips
            per_family[family].extend(_bracketed(ip, port) for ip in ips)
    # gRPC's address lists hold one family: IPv4 when every server has an IPv4 address.
    for family, scheme in ((socket.AF_INET, "ipv4"), (socket.AF_INET6, "ipv6")):
        if not missing[family]:
            return f"{scheme}:{','.join(dict.fromkeys(per_family[family]))}"
    raise InvalidArgument(
        f"the servers of endpoint {endpoint} do not all have an IPv4 address, nor all an IPv6 address; "
        "name them by address",
        ["endpoint"],
    )


def parse_endpoint(endpoint: str) -> Endpoint:
    """Parse an endpoint string; anything else raises InvalidArgument naming the accepted forms."""
    text = (endpoint or "").strip()
    if "," in text:
        return _parse_list(endpoint, text)
    if text.lower().startswith("dns:///"):
        text = "grpc+dns://" + text[len("dns:///") :]
    scheme, sep, rest = text.partition("://")
    if not sep or scheme.lower() not in _SCHEMES:
        raise InvalidArgument(f"endpoint {endpoint!r} is not valid; use {_FORMS}", ["endpoint"])
    tls, dns = _SCHEMES[scheme.lower()]
    host, port = _host_port(endpoint, rest)
    return Endpoint(host=host, port=port, tls=tls, dns=dns)


def _parse_list(endpoint: str, text: str) -> Endpoint:
    """``grpc://a:1,grpc://b:2`` (a later item may leave out the scheme: ``grpc://a:1,b:2``)."""
    items = [item.strip() for item in text.split(",")]
    if any(not item for item in items):
        raise InvalidArgument(f"endpoint {endpoint!r} has an empty item; use {_FORMS}", ["endpoint"])
    first = parse_endpoint(items[0])
    if first.dns:
        raise InvalidArgument(
            f"endpoint {endpoint!r} mixes a DNS name with a list; use {_FORMS}", ["endpoint"]
        )
    scheme = "grpcs" if first.tls else "grpc"
    more: list[tuple[str, int]] = []
    for item in items[1:]:
        parsed = parse_endpoint(
            item if "://" in item or item.lower().startswith("dns:") else f"{scheme}://{item}"
        )
        if parsed.dns:
            raise InvalidArgument(
                f"endpoint {endpoint!r} mixes a DNS name with a list; use {_FORMS}", ["endpoint"]
            )
        if parsed.tls != first.tls:
            raise InvalidArgument(
                f"endpoint {endpoint!r} mixes grpc:// and grpcs://; every server of a list is reached the same way",
                ["endpoint"],
            )
        if (parsed.host, parsed.port) not in (first.addresses + tuple(more)):
            more.append((parsed.host, parsed.port))
    return Endpoint(host=first.host, port=first.port, tls=first.tls, more=tuple(more))


def _host_port(endpoint: str, rest: str) -> tuple[str, int]:
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
    return host, int(port_text)
