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


# -- several servers (issue 24) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "addresses", "tls", "dns"),
    [
        ("grpc://10.0.0.1:7234,grpc://10.0.0.2:7234", (("10.0.0.1", 7234), ("10.0.0.2", 7234)), False, False),
        ("grpcs://a.example:1, b.example:2", (("a.example", 1), ("b.example", 2)), True, False),
        ("grpc://[::1]:1,[::1]:2,[::1]:1", (("::1", 1), ("::1", 2)), False, False),
        ("dns:///stigmer.internal:7234", (("stigmer.internal", 7234),), False, True),
        ("grpcs+dns://stigmer.internal:443", (("stigmer.internal", 443),), True, True),
    ],
)
def test_several_servers(text: str, addresses: tuple[tuple[str, int], ...], tls: bool, dns: bool) -> None:
    endpoint = parse_endpoint(text)
    assert endpoint.addresses == addresses
    assert (endpoint.tls, endpoint.dns, endpoint.several) == (tls, dns, True)
    assert parse_endpoint(str(endpoint)) == endpoint


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("grpc://a:1,grpcs://b:2", "mixes grpc:// and grpcs://"),
        ("grpc://a:1,,b:2", "empty item"),
        ("grpc://a:1,", "empty item"),
        ("dns:///a:1,b:2", "mixes a DNS name with a list"),
        ("grpc://a:1,dns:///b:2", "mixes a DNS name with a list"),
        ("grpc://a:1,b", "needs a host and a port"),
        ("dns:///a", "needs a host and a port"),
    ],
)
def test_bad_lists_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message) as info:
        parse_endpoint(text)
    assert info.value.field_paths == ("endpoint",)


def test_channel_target_of_a_list_holds_addresses() -> None:
    from stigmer.backend.cloud._endpoint import channel_target

    assert channel_target(parse_endpoint("grpc://127.0.0.1:1")) == "127.0.0.1:1"
    assert channel_target(parse_endpoint("grpc://127.0.0.1:1,127.0.0.2:2")) == "ipv4:127.0.0.1:1,127.0.0.2:2"
    assert channel_target(parse_endpoint("grpc://[::1]:1,[::1]:2")) == "ipv6:[::1]:1,[::1]:2"
    assert channel_target(parse_endpoint("dns:///localhost:9")) == "dns:///localhost:9"
    with pytest.raises(InvalidArgument, match="do not all have an IPv4 address"):
        channel_target(parse_endpoint("grpc://127.0.0.1:1,[::1]:2"))


def test_a_list_is_loopback_only_when_every_server_is_and_never_gets_the_admin_token() -> None:
    assert parse_endpoint("grpc://127.0.0.1:1,localhost:2").is_loopback
    assert not parse_endpoint("grpc://127.0.0.1:1,10.0.0.1:2").is_loopback
    assert not parse_endpoint("grpc://127.0.0.1:1,127.0.0.1:2").served_by("127.0.0.1:1")
