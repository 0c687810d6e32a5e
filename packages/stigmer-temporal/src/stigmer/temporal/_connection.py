"""How the runner workers and the server reach Temporal: address, namespace, TLS, mutual TLS, API key.

One set of options (``--temporal-tls-ca FILE`` …, or ``STIGMER_TEMPORAL_*`` variables) becomes a
:class:`TemporalConnection`: files are read and checked when it is built, so bad input is refused
before anything starts. temporalio is imported only to connect, never at module
import.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stigmer.core import InvalidArgument, Unavailable

__all__ = ["DEFAULT_TEMPORAL_ADDRESS", "TEMPORAL_ENV", "TemporalConnection", "add_temporal_arguments"]

DEFAULT_TEMPORAL_ADDRESS = "127.0.0.1:7233"

#: Each option's environment variable (a flag on the command line wins over its variable).
TEMPORAL_ENV = {
    "address": "STIGMER_TEMPORAL_ADDRESS",
    "namespace": "STIGMER_TEMPORAL_NAMESPACE",
    "tls": "STIGMER_TEMPORAL_TLS",
    "tls_ca": "STIGMER_TEMPORAL_TLS_CA",
    "tls_cert": "STIGMER_TEMPORAL_TLS_CERT",
    "tls_key": "STIGMER_TEMPORAL_TLS_KEY",
    "tls_server_name": "STIGMER_TEMPORAL_TLS_SERVER_NAME",
    "api_key_file": "STIGMER_TEMPORAL_API_KEY_FILE",
    "api_key": "STIGMER_TEMPORAL_API_KEY",
}
_FLAGS = {
    "address": "--temporal",
    "namespace": "--namespace",
    "tls": "--temporal-tls",
    "tls_ca": "--temporal-tls-ca",
    "tls_cert": "--temporal-tls-cert",
    "tls_key": "--temporal-tls-key",
    "tls_server_name": "--temporal-tls-server-name",
    "api_key_file": "--temporal-api-key-file",
}
# How a connection the peer closed during its set-up reads ("connection was not ready": the HTTP/2
# client saw it close before it was ready, as a busy client does when mutual TLS refuses it).
_CLOSED = (
    "connectionclosed",
    "connectionreset",
    "brokenpipe",
    "closenotify",
    "unexpectedeof",
    "connectionwasnotready",
)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


@dataclass(frozen=True)
class TemporalConnection:
    """A checked Temporal connection: where, which namespace, and the TLS material and API key read."""

    address: str = DEFAULT_TEMPORAL_ADDRESS
    namespace: str = "default"
    tls: bool = False
    server_root_ca: bytes | None = field(default=None, repr=False)
    client_cert: bytes | None = field(default=None, repr=False)
    client_key: bytes | None = field(default=None, repr=False)
    server_name: str | None = None
    api_key: str | None = field(default=None, repr=False)

    @classmethod
    def from_options(
        cls,
        address: str | None = None,
        *,
        namespace: str | None = None,
        tls: bool | None = None,
        tls_ca: str | Path | None = None,
        tls_cert: str | Path | None = None,
        tls_key: str | Path | None = None,
        tls_server_name: str | None = None,
        api_key_file: str | Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> TemporalConnection:
        """Options given here win over their ``STIGMER_TEMPORAL_*`` variables; raises ``InvalidArgument``.

        An API key or any TLS option turns TLS on (with the system's trust roots unless a CA is
        given); a client certificate needs its key and the other way round.
        """
        env = os.environ if environ is None else environ
        given: dict[str, Any] = {
            "address": address,
            "namespace": namespace,
            "tls": tls or None,
            "tls_ca": tls_ca,
            "tls_cert": tls_cert,
            "tls_key": tls_key,
            "tls_server_name": tls_server_name,
            "api_key_file": api_key_file,
        }
        values: dict[str, tuple[Any, str]] = {}  # option -> (value, where it came from)
        for name, value in given.items():
            if value is not None and value != "":
                values[name] = (value, _FLAGS[name])
            elif env.get(TEMPORAL_ENV[name], "") != "":
                values[name] = (env[TEMPORAL_ENV[name]], TEMPORAL_ENV[name])

        resolved_address = str(values.get("address", (DEFAULT_TEMPORAL_ADDRESS, ""))[0]).strip()
        _check_address(resolved_address, values.get("address", ("", _FLAGS["address"]))[1])
        resolved_namespace, namespace_source = values.get("namespace", ("default", _FLAGS["namespace"]))
        resolved_namespace = str(resolved_namespace).strip()
        if not resolved_namespace:
            raise InvalidArgument(f"{namespace_source}: the Temporal namespace is empty", ["namespace"])

        use_tls = False
        if "tls" in values:
            value, source = values["tls"]
            use_tls = value if isinstance(value, bool) else _flag_value(str(value), source)

        if ("tls_cert" in values) != ("tls_key" in values):
            have, missing = ("tls_cert", "tls_key") if "tls_cert" in values else ("tls_key", "tls_cert")
            raise InvalidArgument(
                f"{values[have][1]} needs {_FLAGS[missing]} too: mutual TLS takes a client "
                "certificate and its private key",
                ["tls"],
            )
        ca = _read_pem(*values["tls_ca"]) if "tls_ca" in values else None
        cert = _read_pem(*values["tls_cert"]) if "tls_cert" in values else None
        key = _read_pem(*values["tls_key"]) if "tls_key" in values else None
        server_name = (
            str(values["tls_server_name"][0]).strip() or None if "tls_server_name" in values else None
        )

        api_key: str | None = None
        if "api_key_file" in values and values["api_key_file"][1] == _FLAGS["api_key_file"]:
            api_key = _read_key(*values["api_key_file"])
        elif env.get(TEMPORAL_ENV["api_key"], "").strip():
            api_key = env[TEMPORAL_ENV["api_key"]].strip()
        elif "api_key_file" in values:
            api_key = _read_key(*values["api_key_file"])

        use_tls = use_tls or any(v is not None for v in (ca, cert, server_name, api_key))
        return cls(
            address=resolved_address,
            namespace=resolved_namespace,
            tls=use_tls,
            server_root_ca=ca,
            client_cert=cert,
            client_key=key,
            server_name=server_name,
            api_key=api_key,
        )

    @classmethod
    def optional(
        cls,
        address: str | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        **options: Any,
    ) -> TemporalConnection | None:
        """Like :meth:`from_options` where Temporal is optional (the server): None without an address.

        Options given without an address (flag or ``STIGMER_TEMPORAL_ADDRESS``) are refused rather
        than ignored.
        """
        env = os.environ if environ is None else environ
        if address or env.get(TEMPORAL_ENV["address"]):
            return cls.from_options(address, environ=env, **options)
        given = [_FLAGS[name] for name, value in options.items() if value not in (None, "", False)]
        if given:
            raise InvalidArgument(
                f"{', '.join(given)} without --temporal HOST:PORT (or ${TEMPORAL_ENV['address']}): "
                "give the Temporal address too",
                ["temporal"],
            )
        return None

    @classmethod
    def from_args(
        cls, args: argparse.Namespace, environ: Mapping[str, str] | None = None
    ) -> TemporalConnection:
        """From the options :func:`add_temporal_arguments` added to a parser."""
        return cls.from_options(args.temporal, environ=environ, **_options_of(args))

    @classmethod
    def optional_from_args(
        cls, args: argparse.Namespace, environ: Mapping[str, str] | None = None
    ) -> TemporalConnection | None:
        """:meth:`optional` from the options :func:`add_temporal_arguments` added to a parser."""
        return cls.optional(args.temporal, environ=environ, **_options_of(args))

    def describe(self) -> str:
        """Where and how this connects, for logs and messages (never the key itself)."""
        parts = [f"namespace {self.namespace}"]
        if self.tls:
            tls = "mutual TLS" if self.client_cert is not None else "TLS"
            if self.server_root_ca is not None:
                tls += ", own CA"
            if self.server_name:
                tls += f", server name {self.server_name}"
            parts.append(tls)
        if self.api_key:
            parts.append("API key")
        return f"{self.address} ({'; '.join(parts)})"

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``temporalio.client.Client.connect`` (after the address)."""
        kwargs: dict[str, Any] = {"namespace": self.namespace}
        if self.tls:
            from temporalio.service import TLSConfig

            if any(v is not None for v in (self.server_root_ca, self.client_cert, self.server_name)):
                kwargs["tls"] = TLSConfig(
                    server_root_ca_cert=self.server_root_ca,
                    domain=self.server_name,
                    client_cert=self.client_cert,
                    client_private_key=self.client_key,
                )
            else:
                kwargs["tls"] = True
        if self.api_key:
            kwargs["api_key"] = self.api_key
        return kwargs

    async def connect(self) -> Any:
        """A connected ``temporalio.client.Client``; ``Unavailable`` with the reason when it fails."""
        from stigmer.temporal._telemetry import temporal_interceptors
        from temporalio.client import Client

        try:
            return await Client.connect(
                self.address, interceptors=temporal_interceptors(), **self.connect_kwargs()
            )
        except Exception as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise Unavailable(
                f"cannot reach Temporal at {self.describe()}: {reason}{self._hint(reason)}"
            ) from exc

    def _hint(self, reason: str) -> str:
        """What to try, for the TLS failures one can tell apart from the connection error's text."""
        text = "".join(c for c in reason.lower() if c.isalnum())  # "connection reset" = ConnectionReset
        closed = any(word in text for word in _CLOSED)
        if "notvalidforname" in text:
            return (
                "; the server's certificate does not name this host: pass the name it holds with "
                "--temporal-tls-server-name"
            )
        if "certificaterequired" in text or (
            self.tls and self.client_cert is None and self.api_key is None and closed
        ):
            return (
                "; if it requires mutual TLS, pass a client certificate with --temporal-tls-cert "
                "and --temporal-tls-key"
            )
        if "unknownissuer" in text or "certificate" in text:
            return (
                "; the server's certificate is not trusted: pass its CA with --temporal-tls-ca "
                "(and --temporal-tls-server-name if it names another host)"
            )
        if not self.tls and (closed or "h2protocol" in text):
            return "; if this Temporal endpoint uses TLS, add --temporal-tls"
        return ""


def add_temporal_arguments(
    parser: argparse.ArgumentParser,
    *,
    address_help: str = f"Temporal frontend (default: $STIGMER_TEMPORAL_ADDRESS, else {DEFAULT_TEMPORAL_ADDRESS})",
) -> None:
    """The Temporal connection options, shared by the worker scripts and the server."""
    group = parser.add_argument_group("Temporal connection")
    group.add_argument(
        "--temporal", "--temporal-address", dest="temporal", metavar="HOST:PORT", help=address_help
    )
    group.add_argument(
        "--namespace",
        "--temporal-namespace",
        dest="namespace",
        metavar="NAME",
        help="Temporal namespace, e.g. NAME.ACCOUNT on Temporal Cloud (default: $STIGMER_TEMPORAL_NAMESPACE, else default)",
    )
    group.add_argument(
        "--temporal-tls",
        action="store_true",
        default=None,
        help="connect with TLS, trusting the system's roots (implied by the other TLS options and by an API key)",
    )
    group.add_argument(
        "--temporal-tls-ca", metavar="FILE", help="PEM CA bundle to verify the Temporal server with"
    )
    group.add_argument("--temporal-tls-cert", metavar="FILE", help="PEM client certificate for mutual TLS")
    group.add_argument("--temporal-tls-key", metavar="FILE", help="PEM private key of --temporal-tls-cert")
    group.add_argument(
        "--temporal-tls-server-name",
        metavar="NAME",
        help="the name to expect in the server's certificate (and SNI)",
    )
    group.add_argument(
        "--temporal-api-key-file",
        metavar="FILE",
        help="file holding a Temporal API key (or set $STIGMER_TEMPORAL_API_KEY); implies TLS",
    )


def _options_of(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "namespace": args.namespace,
        "tls": args.temporal_tls,
        "tls_ca": args.temporal_tls_ca,
        "tls_cert": args.temporal_tls_cert,
        "tls_key": args.temporal_tls_key,
        "tls_server_name": args.temporal_tls_server_name,
        "api_key_file": args.temporal_api_key_file,
    }


def _check_address(address: str, source: str) -> None:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise InvalidArgument(
            f"{source}: expected HOST:PORT for the Temporal frontend, got {address!r}", ["temporal"]
        )


def _flag_value(text: str, source: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidArgument(f"{source}: expected 1/true/yes/on or 0/false/no/off, got {text!r}", ["tls"])


def _read(path: str | Path, source: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InvalidArgument(f"{source}: cannot read {path}: {exc.strerror or exc}", ["tls"]) from None


def _read_pem(path: str | Path, source: str) -> bytes:
    data = _read(path, source)
    if b"-----BEGIN " not in data:
        raise InvalidArgument(f"{source}: {path} is not a PEM file (no -----BEGIN line)", ["tls"])
    return data


def _read_key(path: str | Path, source: str) -> str:
    try:
        key = _read(path, source).decode("utf-8").strip()
    except UnicodeDecodeError:
        raise InvalidArgument(f"{source}: {path} is not a text file", ["api_key"]) from None
    if not key:
        raise InvalidArgument(f"{source}: {path} is empty", ["api_key"])
    return key
