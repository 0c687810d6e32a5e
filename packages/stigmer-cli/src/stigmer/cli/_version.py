"""``stigmer version``: versions of the installed stigmer distributions."""

from __future__ import annotations

import json
import platform
from typing import Annotated

import typer

__all__ = ["installed_versions", "version_app"]

version_app = typer.Typer()

DISTRIBUTIONS = (
    "stigmer",
    "stigmer-cli",
    "stigmer-core",
    "stigmer-proto",
    "stigmer-backend-local",
    "stigmer-backend-cloud",
    "stigmer-runner-workflow",
    "stigmer-runner-agent",
    "stigmer-sdk",
    "stigmer-conformance",
)


def installed_versions() -> dict[str, str]:
    """Installed stigmer distributions and their versions (missing ones left out)."""
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str] = {}
    for name in DISTRIBUTIONS:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


@version_app.command("version")
def show_version(
    output: Annotated[
        str, typer.Option("--output", "-o", help="Output format: table, json or yaml.", show_default=False)
    ] = "table",
) -> None:
    """Show the versions of the installed stigmer packages and of Python."""
    versions = installed_versions()
    if output == "json":
        print(json.dumps({"packages": versions, "python": platform.python_version()}, indent=2))
        return
    if output == "yaml":
        lines = [
            "packages:",
            *(f"  {k}: {v}" for k, v in versions.items()),
            f"python: {platform.python_version()}",
        ]
        print("\n".join(lines))
        return
    if output != "table":
        raise typer.BadParameter(
            f"{output!r} is not one of table, json, yaml", param_hint="'--output' / '-o'"
        )
    width = max(len(k) for k in versions) if versions else 0
    for name, ver in versions.items():
        print(f"{name.ljust(width)}  {ver}")
    print(f"{'python'.ljust(width)}  {platform.python_version()}")
