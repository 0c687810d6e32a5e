import base64
import io
import json
import logging
import re
import urllib.parse
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stigmer.core import MASK, MIN_SECRET_LENGTH, RedactingFilter, Redactor, default_redactor, redact_logging
from stigmer.core._redact import MIN_ENCODED_LENGTH, masked_forms


def test_scrubs_strings_and_nested_data() -> None:
    r = Redactor(["s3cr3t-token", "hunter2"])
    data = {"a": "Bearer s3cr3t-token", "b": ["x hunter2 y", ("hunter2",)], "hunter2": 5, "n": 3}
    assert r.scrub(data) == {"a": f"Bearer {MASK}", "b": [f"x {MASK} y", (MASK,)], MASK: 5, "n": 3}


def test_longest_value_wins_when_values_overlap() -> None:
    r = Redactor(["abc", "abcdef"])
    assert r.scrub("xxabcdefxx") == f"xx{MASK}xx"


def test_short_and_empty_values_are_ignored() -> None:
    r = Redactor(["", "ab"])
    assert len(r) == 0
    assert r.scrub("ab ab") == "ab ab"


def test_regex_metacharacters_are_literal() -> None:
    r = Redactor(["a.b*c"])
    assert r.scrub("a.b*c axbbc") == f"{MASK} axbbc"


def test_default_redactor_is_shared() -> None:
    assert default_redactor() is default_redactor()


@given(
    st.text(alphabet=st.characters(blacklist_characters="*"), min_size=3, max_size=40),
    st.text(max_size=80),
    st.text(max_size=80),
)
def test_value_never_survives(secret: str, before: str, after: str) -> None:
    r = Redactor([secret])
    scrubbed = r.scrub(before + secret + after)
    assert secret not in scrubbed
    assert MASK in scrubbed


# --------------------------------------------------------------------------- encoded forms
# Each form is computed here independently of the redactor's own list of forms.


TOKEN = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n"
    "MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu\n"
    "NMoSfm76oqFvAp8Gy0iz5sxjZmSnXyCdPEovGhLa0VzMaQ8s+CLOyS56YyCFGeJZ\n"
    "-----END PRIVATE KEY-----\n"
)
ODD = 'quote" back\\slash tab\t caf\u00e9 \u2603 a+b/c=d&e'


def _b64(v: str) -> str:
    return base64.b64encode(v.encode()).decode()


def _b64url(v: str) -> str:
    return base64.urlsafe_b64encode(v.encode()).decode()


FORMS: dict[str, Callable[[str], str]] = {
    "raw": lambda v: v,
    "json": lambda v: json.dumps(v)[1:-1],
    "json-utf8": lambda v: json.dumps(v, ensure_ascii=False)[1:-1],
    "json-doc": lambda v: json.dumps({"k": v}),
    "repr": repr,
    "ascii": ascii,
    "bytes-repr": lambda v: repr(v.encode()),
    "quote": lambda v: urllib.parse.quote(v, safe=""),
    "quote-path": urllib.parse.quote,
    "quote_plus": urllib.parse.quote_plus,
    "quote-lower-hex": lambda v: re.sub(
        "%[0-9A-F]{2}", lambda m: m.group(0).lower(), urllib.parse.quote(v, safe="")
    ),
    "base64": _b64,
    "base64-unpadded": lambda v: _b64(v).rstrip("="),
    "base64url": _b64url,
    "base64url-unpadded": lambda v: _b64url(v).rstrip("="),
}


@pytest.mark.parametrize("secret", [TOKEN, PEM, ODD], ids=["token", "pem", "odd"])
@pytest.mark.parametrize("form", sorted(FORMS))
def test_every_form_is_masked(secret: str, form: str) -> None:
    encoded = FORMS[form](secret)
    scrubbed = Redactor([secret]).scrub(f"before {encoded} after")
    assert MASK in scrubbed
    for needle in (secret, encoded, *secret.splitlines()):
        assert needle.strip() not in scrubbed or len(needle.strip()) < MIN_SECRET_LENGTH


def test_each_line_of_a_multiline_secret_is_masked_alone() -> None:
    r = Redactor([PEM])
    body = PEM.splitlines()[1:-1]
    for line in body:
        assert r.scrub(f"x-key: {line}\r\n") == f"x-key: {MASK}\r\n"
        assert r.scrub(json.dumps({"line": line})) == json.dumps({"line": MASK})


def test_short_lines_of_a_multiline_secret_are_not_masked_alone() -> None:
    r = Redactor(["{\n  a: 1\n}\nlong-enough-line"])
    assert r.scrub("{ a: 1 }") == "{ a: 1 }"
    assert r.scrub("see long-enough-line") == f"see {MASK}"


def test_httpx_header_error_quotes_the_value_as_bytes_repr() -> None:
    # h11 refuses a header with a line break and quotes it as a bytes repr.
    message = f"Illegal header value {PEM.encode()!r}"
    scrubbed = Redactor([PEM]).scrub(message)
    assert scrubbed == f"Illegal header value b'{MASK}'"


def test_scrub_bytes_masks_and_keeps_other_bytes() -> None:
    r = Redactor([TOKEN])
    data = b"\xff\x00 " + TOKEN.encode() + b" " + urllib.parse.quote(TOKEN).encode() + b" \xfe"
    assert r.scrub_bytes(data) == b"\xff\x00 *** *** \xfe"
    assert Redactor().scrub_bytes(data) == data


def test_encoded_forms_of_short_values_are_not_registered() -> None:
    # base64 of "abc" is YWJj: masking it would corrupt any base64 blob that happens to hold it.
    forms = masked_forms("abc")
    assert "abc" in forms
    assert all(len(f) >= MIN_ENCODED_LENGTH for f in forms - {"abc"})
    assert Redactor(["abc"]).scrub("data:YWJjZGVm") == "data:YWJjZGVm"
    assert masked_forms("ab") == set()


def test_one_pattern_for_many_values_still_prefers_the_longest() -> None:
    values = [f"token-{i:04d}-{'x' * (i % 7)}" for i in range(300)]
    r = Redactor(values)
    assert r.scrub("a token-0006-xxxxxx b token-0007- c") == f"a {MASK} b {MASK} c"
    assert r.scrub(json.dumps(values)) == json.dumps([MASK] * len(values))


def _stable_run(prefix: bytes, secret: bytes, suffix: bytes, encode: Callable[[bytes], bytes]) -> str:
    """The base64 characters of ``prefix + secret + suffix`` whose 6 bits all come from ``secret``."""
    text = encode(prefix + secret + suffix).decode()
    first, last = 8 * len(prefix), 8 * (len(prefix) + len(secret))
    inside = [j for j in range(len(text)) if 6 * j >= first and 6 * j + 6 <= last]
    return text[inside[0] : inside[-1] + 1] if inside else ""


_SECRETS = st.text(
    alphabet=st.characters(blacklist_characters="*", blacklist_categories=["Cs"]), min_size=3, max_size=60
)


@given(_SECRETS, st.text(max_size=40), st.text(max_size=40), st.sampled_from(sorted(FORMS)))
def test_a_registered_secret_never_survives_in_any_form(
    secret: str, before: str, after: str, form: str
) -> None:
    encoded = FORMS[form](secret)
    scrubbed = Redactor([secret]).scrub(before + encoded + after)
    assert secret not in scrubbed
    # Escaped and URL-encoded forms count from the minimum length; base64 ones from 8 characters.
    if not form.startswith("base64") or len(encoded) >= MIN_ENCODED_LENGTH:
        assert encoded not in scrubbed


@given(
    st.binary(max_size=5),
    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=8, max_size=60),
    st.binary(max_size=5),
    st.sampled_from([base64.b64encode, base64.urlsafe_b64encode]),
)
def test_base64_of_a_longer_text_loses_the_secret_at_every_alignment(
    prefix: bytes, secret: str, suffix: bytes, encode: Callable[[bytes], bytes]
) -> None:
    run = _stable_run(prefix, secret.encode(), suffix, encode)
    scrubbed = Redactor([secret]).scrub(encode(prefix + secret.encode() + suffix).decode())
    assert run not in scrubbed
    assert MASK in scrubbed


def test_the_logging_filter_masks_messages_arguments_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter(Redactor([PEM, TOKEN])))
    logger = logging.getLogger("stigmer.test.redacting")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("sending %s with %r", TOKEN, {"key": PEM})
        try:
            raise ValueError(f"Illegal header value {PEM.encode()!r}")
        except ValueError:
            logger.exception("request failed for %s", urllib.parse.quote(TOKEN))
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "sending *** with {'key': '***'}" in text
    assert "request failed for ***" in text
    assert "ValueError: Illegal header value b'***'" in text
    for line in PEM.splitlines()[1:-1]:
        assert line not in text
    assert TOKEN not in text


def test_redact_logging_filters_the_root_handlers_and_the_last_resort_once() -> None:
    root = logging.getLogger()
    handler = logging.StreamHandler(io.StringIO())
    root.addHandler(handler)
    last_resort = logging.lastResort
    assert last_resort is not None
    try:
        redact_logging()
        redact_logging()
        for h in (handler, last_resort):
            assert sum(isinstance(f, RedactingFilter) for f in h.filters) == 1
        value = "rl-" + base64.b64encode(bytes(range(20))).decode()
        default_redactor().register(value)
        record = logging.LogRecord("x", logging.WARNING, __file__, 1, "saw %s", (value,), None)
        assert last_resort.filter(record)
        assert record.getMessage() == "saw ***"
    finally:
        root.removeHandler(handler)
        for f in [f for f in last_resort.filters if isinstance(f, RedactingFilter)]:
            last_resort.removeFilter(f)


def test_redact_logging_filters_a_non_propagating_logger_too() -> None:
    """``stigmer server`` logs through a ``stigmer`` logger with its own handler."""
    ours = logging.getLogger("stigmer.test-redact-own")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    ours.addHandler(handler)
    ours.propagate = False
    try:
        redact_logging()
        value = "own-" + base64.b64encode(bytes(range(30))).decode()
        default_redactor().register(value)
        ours.warning("saw %s", value)
        assert stream.getvalue() == "saw ***\n"
    finally:
        ours.removeHandler(handler)


def test_forms_sharing_their_first_characters_are_compared_whole() -> None:
    r = Redactor(["abcdefghijklmnopqrstuvwxyz", "abcdefghijklmnopQRS", "abcdefgh"])
    assert r.scrub("abcdefghijklmnopqrsXYZ") == f"{MASK}ijklmnopqrsXYZ"
    assert r.scrub("abcdefghijklmnopQRS!") == f"{MASK}!"
    assert r.scrub("xabcdefghijklmnopqrstuvwxyz") == f"x{MASK}"
    assert r.scrub("abcdefgabcdefghijklmnop") == f"abcdefg{MASK}ijklmnop"


def test_a_programs_logging_keeps_other_libraries_to_warnings() -> None:
    """``configure_logging``: an HTTP client's per-request INFO line (its URL may carry a value)
    is not written; Stigmer's and Temporal's own lines are, at the program's level; secrets are
    masked."""
    import subprocess
    import sys

    script = """
import logging
from stigmer.core import configure_logging, default_redactor
configure_logging("info")
default_redactor().register("s3cr3t-value-42")
logging.getLogger("httpx").info("HTTP Request: GET http://api.test/?key=plain-query-value")
logging.getLogger("httpx").warning("httpx trouble")
logging.getLogger("stigmer.worker").info("worker started with s3cr3t-value-42")
logging.getLogger("temporalio.worker").info("polling")
logging.getLogger("stigmer.worker").debug("not at info")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    lines = done.stderr.splitlines()
    assert not any("plain-query-value" in line for line in lines), lines
    assert any(line.endswith("WARNING httpx: httpx trouble") for line in lines), lines
    assert any("INFO stigmer.worker: worker started with" in line for line in lines), lines
    assert not any("s3cr3t-value-42" in line for line in lines), lines
    assert any(line.endswith("INFO temporalio.worker: polling") for line in lines), lines
    assert not any("not at info" in line for line in lines), lines


# ------------------------------------------------------------------ revision and the memo of short texts
def test_revision_changes_exactly_when_the_masked_forms_do() -> None:
    r = Redactor()
    start = r.revision
    r.register("")  # too short: nothing to mask
    assert r.revision == start
    r.register("s3cr3t-token")
    after = r.revision
    assert after != start
    r.register("s3cr3t-token")  # known already
    assert r.revision == after
    r.register("hunter22")
    assert r.revision != after


def test_a_short_text_scrubbed_before_a_value_is_registered_is_masked_after() -> None:
    r = Redactor(["first-secret"])
    text = "path /do/0/hunter22 first-secret"
    assert r.scrub(text) == f"path /do/0/hunter22 {MASK}"
    assert r.scrub(text) == f"path /do/0/hunter22 {MASK}"  # remembered: the same answer
    r.register("hunter22")
    assert r.scrub(text) == f"path /do/0/{MASK} {MASK}"
    assert r.scrub({"k": text}) == {"k": f"path /do/0/{MASK} {MASK}"}


def test_the_memo_of_short_texts_stays_bounded_and_long_texts_are_not_kept() -> None:
    from stigmer.core._redact import MEMO_LENGTH, MEMO_SIZE

    r = Redactor(["s3cr3t-token"])
    for i in range(MEMO_SIZE * 2 + 5):
        assert r.scrub(f"/do/{i}/s3cr3t-token") == f"/do/{i}/{MASK}"
    matcher = r._matcher
    assert matcher is not None
    assert 0 < len(matcher.memo) <= MEMO_SIZE
    long_text = "x" * MEMO_LENGTH + "s3cr3t-token"
    assert r.scrub(long_text) == "x" * MEMO_LENGTH + MASK
    assert long_text not in matcher.memo


def test_a_str_subclass_is_scrubbed_as_before() -> None:
    class Text(str):
        pass

    r = Redactor(["s3cr3t-token"])
    plain = Text("nothing to hide")
    assert r.scrub(plain) is plain  # no match: the very object back, as ever
    assert r.scrub(Text("a s3cr3t-token")) == f"a {MASK}"
