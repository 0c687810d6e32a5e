"""The public API of stigmer.cli is exactly what __all__ says, and importing it stays cheap."""

from __future__ import annotations

import stigmer.cli


def test_exported_names() -> None:
    assert sorted(stigmer.cli.__all__) == ["app", "event_to_dict", "execution_to_dict", "main"]
    for name in stigmer.cli.__all__:
        assert getattr(stigmer.cli, name) is not None


def test_unknown_attribute_raises() -> None:
    try:
        stigmer.cli.nope  # noqa: B018
    except AttributeError as exc:
        assert "nope" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_main_is_the_console_script() -> None:
    from stigmer.cli._app import main

    assert stigmer.cli.main is main
