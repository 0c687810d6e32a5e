"""The ``fetch`` tool set: ``fetch_url`` GETs a page and returns it as text (HTML as markdown).

Bounded in time (``timeoutSeconds``, default 30) and size (``maxOutputBytes`` of the body, default
1 MiB; the rest is cut). Only ``http`` and ``https``. Loopback, private, link-local and other
non-public addresses are the ``private_network`` capability: reachable in Lite and on your own
local stack, refused on a shared server unless its admin starts it with
``--allow-private-network``. Every address a host name resolves to is checked, and so is every
redirect (at most 5). A name that resolves to a public address for the check and to a private one
for the connection (DNS rebinding) is not caught: run a shared server behind an egress proxy where
that matters.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

__all__ = ["FetchOptions", "address_problem", "fetch_functions"]

DEFAULT_TIMEOUT = 30.0
DEFAULT_BYTES = 2**20
MAX_REDIRECTS = 5
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/xhtml", "+json", "+xml")


@dataclass
class FetchOptions:
    timeout: float = DEFAULT_TIMEOUT
    max_bytes: int = DEFAULT_BYTES
    allow_private: bool = False  # the execution's private_network capability

    @classmethod
    def of(cls, timeout: int, max_bytes: int, allow_private: bool) -> FetchOptions:
        return cls(
            timeout=float(timeout) if timeout > 0 else DEFAULT_TIMEOUT,
            max_bytes=max_bytes if max_bytes > 0 else DEFAULT_BYTES,
            allow_private=allow_private,
        )


def _public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return _public(ip.ipv4_mapped)
    return ip.is_global and not ip.is_multicast


async def address_problem(url: str, allow_private: bool) -> str:
    """Why ``url`` may not be fetched ("" if it may)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return f"only http and https URLs can be fetched, not {parts.scheme or 'a relative URL'!r}"
    host = parts.hostname
    if not host:
        return "the URL has no host"
    if allow_private:
        return ""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
    except OSError as exc:
        return f"{host} cannot be resolved ({exc.strerror or exc})"
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if not _public(ip):
            return (
                f"{host} is a loopback or private address ({ip}), which this server does not let "
                "agents fetch; an admin can enable it with `stigmer server --allow-private-network`"
            )
    return ""


def _as_text(body: bytes, content_type: str, charset: str | None) -> str | None:
    kind = content_type.split(";", 1)[0].strip().lower()
    text = body.decode(charset or "utf-8", errors="replace")
    if kind in ("text/html", "application/xhtml+xml") or (not kind and text.lstrip()[:1] == "<"):
        from bs4 import BeautifulSoup
        from markdownify import MarkdownConverter

        soup = BeautifulSoup(text, "html.parser")
        for tag in soup(["script", "style", "noscript", "template"]):
            tag.decompose()  # their content is no text of the page
        converted: str = MarkdownConverter(heading_style="ATX").convert_soup(soup)
        return "\n".join(line.rstrip() for line in converted.splitlines()).strip() + "\n"
    if not kind or any(kind.startswith(t) or kind.endswith(t) for t in _TEXT_TYPES):
        return text
    return None


def fetch_functions(options: FetchOptions) -> dict[str, Callable[..., Any]]:
    """The functions of the ``fetch`` tool set."""

    async def fetch_url(url: str) -> str:
        """Fetch a web page (HTTP GET) and return it as text; HTML pages come back as markdown.

        Args:
            url: The page's http or https URL.
        """
        try:
            return await asyncio.wait_for(_fetch(url), timeout=options.timeout)
        except TimeoutError:
            return f"error: {url} did not answer within {options.timeout:g} s"

    async def _fetch(url: str) -> str:
        import httpx

        current = url
        async with httpx.AsyncClient(follow_redirects=False, timeout=options.timeout) as client:
            for _ in range(MAX_REDIRECTS + 1):
                problem = await address_problem(current, options.allow_private)
                if problem:
                    return f"error: {problem}"
                try:
                    async with client.stream(
                        "GET", current, headers={"Accept": "text/html, text/*;q=0.9, */*;q=0.5"}
                    ) as response:
                        if response.is_redirect and "location" in response.headers:
                            current = urljoin(current, response.headers["location"])
                            continue
                        body = bytearray()
                        total = 0
                        async for chunk in response.aiter_bytes():
                            total += len(chunk)
                            room = options.max_bytes - len(body)
                            if room > 0:
                                body.extend(chunk[:room])
                            if total > options.max_bytes:
                                break
                        status = response.status_code
                        content_type = response.headers.get("content-type", "")
                        charset = response.charset_encoding
                except httpx.HTTPError as exc:
                    return f"error: fetching {current} failed: {exc}"
                text = _as_text(bytes(body), content_type, charset)
                if text is None:
                    return f"error: {current} is not text ({content_type}, {total:,} bytes or more)"
                head = f"HTTP {status} {current}\n\n" if status >= 400 or current != url else ""
                cut = f"\n[cut at {options.max_bytes:,} bytes]" if total > options.max_bytes else ""
                return head + text + cut
        return f"error: more than {MAX_REDIRECTS} redirects from {url}"

    return {"fetch_url": fetch_url}
