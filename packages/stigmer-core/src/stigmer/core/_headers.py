"""Whether HTTP can carry a header, said without quoting its value.

HTTP clients refuse a header with a line break, surrounding white space or a non-ASCII character
with a message that quotes the value (httpx: ``Illegal header value b'-----BEGIN ...\\n...'``).
A header is often a secret, so the runners check first and name the header instead.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["header_problem"]

_TOKEN: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # a header name (RFC 9110)
# What httpx sends (ASCII) and h11 accepts: no NUL, no line break, no white space at either end.
_VCHAR: Final = r"[\x01-\x08\x0e-\x1f\x21-\x7f]"
_FIELD_VALUE: Final = re.compile(rf"(?:{_VCHAR}+(?:[ \t]+{_VCHAR}+)*)?")


def header_problem(name: str, value: str) -> str | None:
    """Why HTTP cannot carry this header (None when it can); names the header, never the value."""
    if not _TOKEN.fullmatch(name):
        return "a header name holds characters HTTP does not allow (a space, a line break or non-ASCII)"
    if _FIELD_VALUE.fullmatch(value):
        return None
    if "\n" in value or "\r" in value:
        return f"the value of header {name} has a line break (a multi-line value cannot be a header)"
    if value != value.strip(" \t"):
        return f"the value of header {name} starts or ends with white space"
    return f"the value of header {name} holds a character HTTP does not allow (NUL, a vertical tab, a form feed or non-ASCII)"
