import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stigmer.core import KIND_PREFIXES, InvalidArgument, new_id, slugify


@pytest.mark.parametrize("kind", sorted(KIND_PREFIXES))
def test_new_id_has_kind_prefix_and_sorts_by_time(kind: str) -> None:
    a, b = new_id(kind), new_id(kind)
    assert re.fullmatch(rf"{KIND_PREFIXES[kind]}_[0-9a-z]{{26}}", a)
    assert a != b
    assert a[:14] <= b[:14]  # the ulid time part never goes backwards


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="unknown kind"):
        new_id("Nope")


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Support Bot", "support-bot"),
        ("  hello__world!! ", "hello-world"),
        ("Café Ünïcode", "cafe-unicode"),
        ("a", "a"),
    ],
)
def test_slugify(name: str, slug: str) -> None:
    assert slugify(name) == slug


def test_slug_needs_letters_or_digits() -> None:
    with pytest.raises(InvalidArgument, match="slug"):
        slugify("!!! ???")


@given(st.text(min_size=1, max_size=300))
def test_slugify_is_safe_or_refuses(name: str) -> None:
    try:
        slug = slugify(name)
    except InvalidArgument:
        return
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", slug)
    assert len(slug) <= 63
    assert slugify(slug) == slug
