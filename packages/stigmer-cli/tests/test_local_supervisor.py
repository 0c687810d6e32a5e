"""What the local stack's supervisor starts: the Temporal web UI on by default (off with
``--no-ui``), the search attributes that name each run's target, and the server's HTTP listener."""

from __future__ import annotations

from pathlib import Path

from stigmer.cli.local._files import LocalPaths, StackSettings
from stigmer.cli.local._supervisor import Supervisor


def _argv(home: Path, settings: StackSettings, name: str) -> list[str]:
    LocalPaths(home).ensure()
    LocalPaths(home).save_settings(settings)
    supervisor = Supervisor(home)
    try:
        return supervisor.children[name].argv
    finally:
        supervisor.log.close()


def test_the_temporal_ui_is_on_by_default_and_runs_carry_their_target(tmp_path: Path) -> None:
    argv = _argv(tmp_path, StackSettings(), "temporal")
    assert argv[argv.index("--ui-port") + 1] == "8233"
    assert "--ui-disable-news-fetch" in argv  # no request leaves the machine
    assert "--headless" not in argv
    attributes = [argv[i + 1] for i, a in enumerate(argv) if a == "--search-attribute"]
    assert attributes == ["StigmerKind=Keyword", "StigmerName=Keyword"]


def test_no_ui_runs_temporal_headless(tmp_path: Path) -> None:
    argv = _argv(tmp_path, StackSettings(ui_port=0), "temporal")
    assert "--headless" in argv and "--ui-port" not in argv
    assert "--search-attribute" in argv  # the attributes are there without the UI too


def test_the_server_gets_its_http_listener_unless_off(tmp_path: Path) -> None:
    on = _argv(tmp_path, StackSettings(http_port=9911), "server")
    assert on[on.index("--http-listen") + 1] == "127.0.0.1:9911"
    off = _argv(tmp_path / "other", StackSettings(http_port=0), "server")
    assert "--http-listen" not in off


def test_old_settings_without_the_new_ports_load_with_the_defaults(tmp_path: Path) -> None:
    paths = LocalPaths(tmp_path)
    paths.ensure()
    paths.settings.write_text(
        '{"temporal_port": 7300, "server_port": 7301, "ui_port": 0, "host": "127.0.0.1"}'
    )
    settings = paths.load_settings()
    assert (settings.ui_port, settings.http_port) == (0, 7235)
    assert settings.ui_url == "" and settings.http_url == "http://127.0.0.1:7235"
