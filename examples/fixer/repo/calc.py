"""A tiny calculator with a bug for the fixer example to find."""


def add(a: int, b: int) -> int:
    """The sum of a and b."""
    return a - b


def double(a: int) -> int:
    return a * 2
