from hypothesis import given
from hypothesis import strategies as st
from stigmer.core import MASK, Redactor, default_redactor


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
