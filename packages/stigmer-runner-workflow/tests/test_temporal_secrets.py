"""Secret references on durable hosts: what the workflow holds, what activities substitute and scrub."""

from __future__ import annotations

import base64
import urllib.parse

from hypothesis import given
from hypothesis import strategies as st
from stigmer.core import MIN_SECRET_LENGTH
from stigmer.runner.workflow.temporal._secrets import (
    has_refs,
    ref_names,
    scrub,
    scrub_bytes,
    secret_ref,
    substitute,
    substitute_tokens,
    token_ref,
    token_refs,
)

NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True)
VALUES = st.text(min_size=1, max_size=30).filter(lambda v: "{{" not in v)
# Values long enough to be masked (shorter ones would mask ordinary text; see MIN_SECRET_LENGTH).
MASKABLE = st.text(
    alphabet=st.characters(blacklist_characters="*"), min_size=MIN_SECRET_LENGTH, max_size=30
).filter(lambda v: "{{" not in v)


def test_references_are_found_anywhere_and_substituted_for_known_names_only() -> None:
    request = {
        "url": "https://api.example.com/v1?key=" + secret_ref("API_KEY"),
        "headers": {"Authorization": "Bearer " + secret_ref("TOKEN")},
        "body": [{"nested": secret_ref("UNKNOWN")}, 3, None],
    }
    assert ref_names(request) == {"API_KEY", "TOKEN", "UNKNOWN"}
    real = substitute(request, {"API_KEY": "k-1", "TOKEN": "t-2"})
    assert real["url"] == "https://api.example.com/v1?key=k-1"
    assert real["headers"] == {"Authorization": "Bearer t-2"}
    assert real["body"] == [{"nested": secret_ref("UNKNOWN")}, 3, None]  # not granted: stays a reference
    assert not has_refs({"a": 1, "b": ["plain"]})


def test_token_references_are_kept_apart_from_secret_references() -> None:
    headers = {"Authorization": "Bearer " + token_ref("0a1b"), "X-Key": secret_ref("API_KEY")}
    assert token_refs(headers) == {"0a1b"}
    assert ref_names(headers) == {"API_KEY"}
    real = substitute_tokens(headers, {"0a1b": "at-1", "ffff": "at-2"})
    assert real == {"Authorization": "Bearer at-1", "X-Key": secret_ref("API_KEY")}
    assert substitute_tokens(headers, {}) == headers  # unknown: stays a reference


def test_scrub_masks_every_value_longest_first() -> None:
    out = scrub({"out": "abcdef and abc", "list": ["xabcdefx"]}, {"short": "abc", "long": "abcdef"})
    assert out == {"out": "*** and ***", "list": ["x***x"]}
    assert scrub("nothing to hide", {}) == "nothing to hide"


@given(name=NAMES, value=MASKABLE, prefix=st.text(max_size=10), suffix=st.text(max_size=10))
def test_substitute_then_scrub_never_leaves_the_value(
    name: str, value: str, prefix: str, suffix: str
) -> None:
    held = prefix + secret_ref(name) + suffix
    sent = substitute(held, {name: value})
    assert sent == prefix + value + suffix
    assert value not in scrub(sent, {name: value})


def test_scrub_masks_encoded_forms_of_a_value() -> None:
    pem = "-----BEGIN KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy\n-----END KEY-----"
    secrets = {"PEM": pem}
    assert scrub({"q": urllib.parse.quote(pem, safe="")}, secrets) == {"q": "***"}
    assert scrub(repr(pem.encode()), secrets) == "b'***'"
    assert scrub(base64.b64encode(pem.encode()).decode(), secrets) == "***"


def test_scrub_bytes_masks_a_response_body() -> None:
    body = b'{"echo": "' + urllib.parse.quote_plus("sk-proj AbCd/Ef").encode() + b'"}'
    assert scrub_bytes(body, {"K": "sk-proj AbCd/Ef"}) == b'{"echo": "***"}'
