"""TemporalConnection: options and STIGMER_TEMPORAL_* variables become checked Client.connect arguments."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stigmer.core import InvalidArgument, Unavailable
from stigmer.temporal import (
    DEFAULT_TEMPORAL_ADDRESS,
    TEMPORAL_ENV,
    TemporalConnection,
    add_temporal_arguments,
)
from temporalio.service import TLSConfig

PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
KEY = b"-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {"ca": PEM, "cert": PEM, "key": KEY, "api": b"  the-api-key\n", "other-api": b"other-key"}
    out = {}
    for name, data in paths.items():
        out[name] = tmp_path / name
        out[name].write_bytes(data)
    return out


def test_defaults_are_plain_grpc_on_default() -> None:
    connection = TemporalConnection.from_options(environ={})
    assert (connection.address, connection.namespace, connection.tls) == (
        DEFAULT_TEMPORAL_ADDRESS,
        "default",
        False,
    )
    assert connection.connect_kwargs() == {"namespace": "default"}
    assert connection.describe() == "127.0.0.1:7233 (namespace default)"


def test_tls_alone_uses_the_system_roots() -> None:
    connection = TemporalConnection.from_options("t.example:7233", tls=True, environ={})
    assert connection.connect_kwargs() == {"namespace": "default", "tls": True}


def test_mutual_tls_files_and_server_name_become_a_tls_config(files: dict[str, Path]) -> None:
    connection = TemporalConnection.from_options(
        "t.example:7233",
        namespace="team.acct",
        tls_ca=files["ca"],
        tls_cert=files["cert"],
        tls_key=files["key"],
        tls_server_name="temporal.internal",
        environ={},
    )
    kwargs = connection.connect_kwargs()
    assert kwargs == {
        "namespace": "team.acct",
        "tls": TLSConfig(
            server_root_ca_cert=PEM, domain="temporal.internal", client_cert=PEM, client_private_key=KEY
        ),
    }
    assert connection.describe() == (
        "t.example:7233 (namespace team.acct; mutual TLS, own CA, server name temporal.internal)"
    )


def test_an_api_key_implies_tls_and_is_never_shown(files: dict[str, Path]) -> None:
    connection = TemporalConnection.from_options(
        "ns.acct.tmprl.cloud:7233", namespace="ns.acct", api_key_file=files["api"], environ={}
    )
    assert connection.connect_kwargs() == {"namespace": "ns.acct", "tls": True, "api_key": "the-api-key"}
    assert connection.tls
    assert "the-api-key" not in repr(connection) + connection.describe()
    assert connection.describe().endswith("; TLS; API key)")
    assert "MII" not in repr(TemporalConnection.from_options(tls_ca=files["ca"], environ={}))


def test_every_option_has_its_variable_and_flags_win(files: dict[str, Path]) -> None:
    env = {
        TEMPORAL_ENV["address"]: "env.example:7233",
        TEMPORAL_ENV["namespace"]: "env-ns",
        TEMPORAL_ENV["tls"]: "yes",
        TEMPORAL_ENV["tls_ca"]: str(files["ca"]),
        TEMPORAL_ENV["tls_cert"]: str(files["cert"]),
        TEMPORAL_ENV["tls_key"]: str(files["key"]),
        TEMPORAL_ENV["tls_server_name"]: "env-name",
        TEMPORAL_ENV["api_key_file"]: str(files["other-api"]),
    }
    from_env = TemporalConnection.from_options(environ=env)
    assert (from_env.address, from_env.namespace, from_env.server_name) == (
        "env.example:7233",
        "env-ns",
        "env-name",
    )
    assert (from_env.server_root_ca, from_env.client_cert, from_env.client_key) == (PEM, PEM, KEY)
    assert from_env.api_key == "other-key"
    # the key's value in the environment wins over the key file named in the environment
    assert TemporalConnection.from_options(environ={**env, TEMPORAL_ENV["api_key"]: " v "}).api_key == "v"
    # a key file given as an option wins over both
    flagged = TemporalConnection.from_options(
        "flag.example:1",
        namespace="flag-ns",
        tls_server_name="flag-name",
        api_key_file=files["api"],
        environ={**env, TEMPORAL_ENV["api_key"]: "v"},
    )
    assert (flagged.address, flagged.namespace, flagged.server_name, flagged.api_key) == (
        "flag.example:1",
        "flag-ns",
        "flag-name",
        "the-api-key",
    )
    assert not TemporalConnection.from_options(environ={TEMPORAL_ENV["tls"]: "off"}).tls


@pytest.mark.parametrize(
    ("options", "env", "message"),
    [
        ({"tls_cert": "{cert}"}, {}, "--temporal-tls-cert needs --temporal-tls-key too"),
        ({"tls_key": "{key}"}, {}, "--temporal-tls-key needs --temporal-tls-cert too"),
        ({}, {"STIGMER_TEMPORAL_TLS_CERT": "{cert}"}, "STIGMER_TEMPORAL_TLS_CERT needs --temporal-tls-key"),
        ({"tls_ca": "{missing}"}, {}, "--temporal-tls-ca: cannot read {missing}: No such file or directory"),
        ({}, {"STIGMER_TEMPORAL_TLS_CA": "{missing}"}, "STIGMER_TEMPORAL_TLS_CA: cannot read"),
        ({"tls_ca": "{api}"}, {}, "--temporal-tls-ca: {api} is not a PEM file"),
        ({"api_key_file": "{missing}"}, {}, "--temporal-api-key-file: cannot read"),
        ({"api_key_file": "{empty}"}, {}, "--temporal-api-key-file: {empty} is empty"),
        ({"address": "no-port"}, {}, "--temporal: expected HOST:PORT"),
        ({}, {"STIGMER_TEMPORAL_ADDRESS": "h:99999"}, "STIGMER_TEMPORAL_ADDRESS: expected HOST:PORT"),
        ({"namespace": "  "}, {}, "the Temporal namespace is empty"),
        ({}, {"STIGMER_TEMPORAL_TLS": "maybe"}, "STIGMER_TEMPORAL_TLS: expected 1/true/yes/on"),
    ],
)
def test_bad_input_is_one_clear_line(
    files: dict[str, Path], tmp_path: Path, options: dict[str, str], env: dict[str, str], message: str
) -> None:
    (tmp_path / "empty").write_text(" \n")
    names = {k: str(v) for k, v in files.items()} | {
        "missing": str(tmp_path / "missing.pem"),
        "empty": str(tmp_path / "empty"),
    }
    options = {k: v.format(**names) for k, v in options.items()}
    env = {k: v.format(**names) for k, v in env.items()}
    with pytest.raises(InvalidArgument) as info:
        TemporalConnection.from_options(environ=env, **options)  # type: ignore[arg-type]
    assert message.format(**names) in str(info.value)
    assert "\n" not in str(info.value)


def test_optional_is_none_without_an_address_and_refuses_orphan_options(files: dict[str, Path]) -> None:
    assert TemporalConnection.optional(environ={}) is None
    assert TemporalConnection.optional(environ={}, tls=False, namespace=None) is None
    with pytest.raises(InvalidArgument, match="--temporal-tls-ca, --namespace without --temporal HOST:PORT"):
        TemporalConnection.optional(environ={}, tls_ca=files["ca"], namespace="x")
    found = TemporalConnection.optional(
        environ={"STIGMER_TEMPORAL_ADDRESS": "h:1", "STIGMER_TEMPORAL_TLS": "1"}
    )
    assert found is not None and (found.address, found.tls) == ("h:1", True)


def test_argparse_options(files: dict[str, Path]) -> None:
    parser = argparse.ArgumentParser()
    add_temporal_arguments(parser)
    args = parser.parse_args(
        [
            "--temporal-namespace",
            "ns",
            "--temporal-tls-ca",
            str(files["ca"]),
            "--temporal-api-key-file",
            str(files["api"]),
        ]
    )
    connection = TemporalConnection.from_args(args, environ={})
    assert (connection.namespace, connection.server_root_ca, connection.api_key) == ("ns", PEM, "the-api-key")
    assert TemporalConnection.optional_from_args(parser.parse_args([]), environ={}) is None
    assert "--temporal-api-key " not in parser.format_help()  # no key on the command line, where ps shows it


@settings(max_examples=200, deadline=None)
@given(
    address=st.none() | st.text(max_size=30),
    namespace=st.none() | st.text(max_size=20),
    tls=st.text(max_size=8),
    server_name=st.none() | st.text(max_size=20),
)
def test_any_text_gives_a_connection_or_invalid_argument(
    address: str | None, namespace: str | None, tls: str, server_name: str | None
) -> None:
    try:
        connection = TemporalConnection.from_options(
            address, namespace=namespace, tls_server_name=server_name, environ={"STIGMER_TEMPORAL_TLS": tls}
        )
    except InvalidArgument as err:
        assert str(err) and "\n" not in str(err).strip()
    else:
        assert connection.namespace.strip() and ":" in connection.address
        connection.connect_kwargs()


@pytest.mark.parametrize(
    ("reason", "tls", "hint"),
    [
        ("InvalidCertificate(UnknownIssuer)", True, "pass its CA with --temporal-tls-ca"),
        (
            "InvalidCertificate(NotValidForNameContext { expected: IpAddress",
            True,
            "--temporal-tls-server-name",
        ),
        ("peer closed connection without sending TLS close_notify", True, "--temporal-tls-cert"),
        ("received fatal alert: CertificateRequired", True, "--temporal-tls-cert"),
        # seen under load when a mutual-TLS endpoint refused a client without a certificate
        (
            'Some(tonic::transport::Error(Transport, hyper::Error(Canceled, "connection was not ready")))',
            True,
            "--temporal-tls-cert",
        ),
        ("stream closed because of a broken pipe", False, "add --temporal-tls"),
        ("transport error: hyper::Error(Io, Kind(ConnectionReset))", False, "add --temporal-tls"),
        ("Connection refused (os error 111)", False, ""),
    ],
)
def test_hints_for_tls_failures(reason: str, tls: bool, hint: str) -> None:
    connection = TemporalConnection(tls=tls)
    found = connection._hint(reason)
    assert (hint in found) if hint else found == ""


async def test_connect_failure_is_unavailable_with_the_reason() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    connection = TemporalConnection.from_options(f"127.0.0.1:{port}", namespace="ns", environ={})
    with pytest.raises(Unavailable) as info:
        await connection.connect()
    text = str(info.value)
    assert text.startswith(f"cannot reach Temporal at 127.0.0.1:{port} (namespace ns): ")
    assert "\n" not in text


def test_import_loads_temporalio_only_to_connect(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys, stigmer.temporal as c\n"
        "c.WorkerCommand('p', 'd', 'q', 1, 'h', 'pkg', 'mod').build_parser().parse_args([])\n"
        "conn = c.TemporalConnection.from_options(environ={})\n"
        "conn.describe()\n"
        "print('temporalio' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
