import pytest
from hypothesis import given
from hypothesis import strategies as st
from stigmer.backend.cloud import CloudBackend, Endpoint, parse_endpoint
from stigmer.core import InvalidArgument


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("grpc://127.0.0.1:7234", Endpoint("127.0.0.1", 7234, tls=False)),
        ("grpcs://stigmer.example.com:443", Endpoint("stigmer.example.com", 443, tls=True)),
        ("GRPC://localhost:1/", Endpoint("localhost", 1, tls=False)),
        ("grpcs://[::1]:7234", Endpoint("::1", 7234, tls=True)),
    ],
)
def test_valid_endpoints(text: str, expected: Endpoint) -> None:
    assert parse_endpoint(text) == expected


def test_target_and_loopback() -> None:
    assert parse_endpoint("grpc://[::1]:9").target == "[::1]:9"
    assert parse_endpoint("grpc://[::1]:9").is_loopback
    assert parse_endpoint("grpc://localhost:9").is_loopback
    assert parse_endpoint("grpc://127.0.0.2:9").is_loopback
    assert not parse_endpoint("grpc://10.0.0.1:9").is_loopback
    assert not parse_endpoint("grpcs://stigmer.example.com:9").is_loopback
    assert str(parse_endpoint("grpcs://h:9")) == "grpcs://h:9"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "127.0.0.1:7234",
        "http://127.0.0.1:7234",
        "grpc://127.0.0.1",
        "grpc://:7234",
        "grpc://host:0",
        "grpc://host:70000",
        "grpc://host:port",
        "grpc://a:b:c",
        "grpc://[::1]",
        "grpc://user@host:1",
    ],
)
def test_bad_endpoints_name_the_accepted_forms(text: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_endpoint(text)
    assert "grpc://host:port" in str(info.value)
    assert "grpcs://host:port" in str(info.value)
    assert info.value.field_paths == ("endpoint",)


def test_constructor_rejects_bad_endpoint_and_options() -> None:
    with pytest.raises(InvalidArgument):
        CloudBackend("localhost:7234")
    with pytest.raises(InvalidArgument, match="timeout"):
        CloudBackend("grpc://localhost:7234", timeout=0)
    with pytest.raises(InvalidArgument, match="plaintext"):
        CloudBackend("grpc://localhost:7234", tls_ca=__import__("pathlib").Path("ca.pem"))


@given(st.text(max_size=60))
def test_any_text_parses_or_raises_invalid_argument(text: str) -> None:
    try:
        endpoint = parse_endpoint(text)
    except InvalidArgument as err:
        assert "grpc://" in str(err)
    else:
        assert 0 < endpoint.port < 65536
        assert endpoint.host


@given(
    st.sampled_from(["grpc", "grpcs"]),
    st.from_regex(r"[a-z][a-z0-9.-]{0,20}", fullmatch=True),
    st.integers(1, 65535),
)
def test_round_trip(scheme: str, host: str, port: int) -> None:
    endpoint = parse_endpoint(f"{scheme}://{host}:{port}")
    assert (endpoint.host, endpoint.port, endpoint.tls) == (host, port, scheme == "grpcs")
    assert str(endpoint) == f"{scheme}://{host}:{port}"


@pytest.mark.parametrize(
    ("endpoint", "bound", "served"),
    [
        ("grpc://127.0.0.1:7234", "127.0.0.1:7234", True),
        ("grpc://127.0.0.1:7234", "127.0.0.1:7235", False),  # another port: another process
        ("grpc://127.0.0.1:7234", "127.0.0.2:7234", False),
        ("grpc://localhost:7234", "LOCALHOST:7234", True),
        ("grpc://localhost:7234", "127.0.0.1:7234", False),  # localhost may reach ::1
        ("grpc://127.0.0.1:7234", "localhost:7234", False),
        ("grpc://[::1]:7234", "[::1]:7234", True),
        ("grpc://[::1]:7234", "127.0.0.1:7234", False),
        ("grpc://127.0.0.1:7234", "0.0.0.0:7234", True),
        ("grpc://[::1]:7234", "0.0.0.0:7234", False),
        ("grpc://localhost:7234", "0.0.0.0:7234", False),
        ("grpc://[::1]:7234", "[::]:7234", True),
        ("grpc://localhost:7234", "[::]:7234", True),
        ("grpc://127.0.0.1:7234", "", False),
        ("grpc://127.0.0.1:7234", "127.0.0.1", False),
        ("grpc://127.0.0.1:7234", "garbage:x", False),
        ("grpc://127.0.0.1:7234", "127.0.0.1:\u0667\u0662\u0663\u0664", False),  # Arabic-Indic 7234
    ],
)
def test_served_by_only_the_bound_address(endpoint: str, bound: str, served: bool) -> None:
    assert parse_endpoint(endpoint).served_by(bound) is served


@given(st.text(max_size=40))
def test_any_recorded_address_text_is_a_plain_answer(recorded: str) -> None:
    # tokens/admin.endpoint is a file on disk: whatever it holds, the answer is a bool, and a
    # token is never sent to a port other than the one recorded.
    endpoint = parse_endpoint("grpc://127.0.0.1:7234")
    served = endpoint.served_by(recorded)
    assert isinstance(served, bool)
    if served:
        assert recorded.strip().endswith(":7234")
