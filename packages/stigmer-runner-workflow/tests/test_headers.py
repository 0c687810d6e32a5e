"""``stigmer.core.header_problem`` agrees with the HTTP client the runners use (httpx sends str
headers as ASCII through h11) and names the header, never its value."""

from __future__ import annotations

import h11
import h11._headers
from hypothesis import given
from hypothesis import strategies as st
from stigmer.core import header_problem

PEM = "-----BEGIN KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy\n-----END KEY-----"


def _client_accepts(name: str, value: str) -> bool:
    try:
        h11._headers.normalize_and_validate([(name.encode("ascii"), value.encode("ascii"))])
    except (UnicodeEncodeError, h11.LocalProtocolError):
        return False
    return True


def test_a_multiline_value_is_refused_by_name() -> None:
    problem = header_problem("X-Key", PEM)
    assert problem == "the value of header X-Key has a line break (a multi-line value cannot be a header)"
    assert not _client_accepts("X-Key", PEM)
    assert header_problem("X-Key", "sk-proj-abc\n") is not None  # a final line break too


def test_other_refusals_name_the_header_only() -> None:
    for value in (" padded", "trailing\t", "caf\u00e9-token", "tok-1234\x00", "tok-5678\x0c"):
        problem = header_problem("Authorization", value)
        assert problem is not None and "Authorization" in problem
        assert value.strip() not in problem
    assert header_problem("Bad Name", "v") is not None
    assert header_problem("Authorization", "Bearer sk-proj-abc") is None
    assert header_problem("X-Empty", "") is None


@given(
    st.sampled_from(["X-Key", "Authorization", "x_y", "Bad Name", "k\u00e9y", "a:b"]),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=30),
)
def test_agrees_with_the_http_client_and_never_quotes_the_value(name: str, value: str) -> None:
    problem = header_problem(name, value)
    assert (problem is None) == _client_accepts(name, value)
    if problem is not None and len(value.strip()) >= 4:
        # the message's own words, for a value it cannot quote
        fixed = " ".join(str(header_problem(name, v)) for v in ("\n", " x", "\x00", "x"))
        assert value.strip() not in problem or value.strip() in fixed
