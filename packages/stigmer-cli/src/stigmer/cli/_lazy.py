"""Lazy sub-commands: the root group lists placeholders and imports a command module only on use."""

from __future__ import annotations

import importlib
from typing import Any

import typer
from typer import _click
from typer.core import TyperCommand, TyperGroup

__all__ = ["LazyGroup", "lazy"]

# name -> (import target "module:attribute", short help, panel)
_REGISTRY: dict[str, tuple[str, str]] = {}


def lazy(name: str, target: str, help: str) -> None:
    """Register ``name`` as a sub-command implemented by ``target`` (``module:attr``, a Typer app)."""
    _REGISTRY[name] = (target, help)


class _Placeholder(TyperCommand):
    """Stands in for a command in listings (name and help) until it is invoked."""

    def __init__(self, name: str, target: str, help: str) -> None:
        super().__init__(name=name, help=help, short_help=help)
        self.target = target


def load_command(name: str, target: str) -> _click.Command:
    """Import ``target`` and turn the Typer app it names into a click command called ``name``."""
    module_name, _, attr = target.partition(":")
    obj: Any = getattr(importlib.import_module(module_name), attr)
    command: _click.Command = typer.main.get_command(obj) if isinstance(obj, typer.Typer) else obj
    command.name = name
    return command


class LazyGroup(TyperGroup):
    """A ``TyperGroup`` whose registered sub-commands are imported only when they run."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, (target, help) in _REGISTRY.items():
            self.commands.setdefault(name, _Placeholder(name, target, help))

    def resolve_command(
        self, ctx: _click.Context, args: list[str]
    ) -> tuple[str | None, _click.Command | None, list[str]]:
        name, cmd, rest = super().resolve_command(ctx, args)
        if isinstance(cmd, _Placeholder) and name is not None:
            cmd = load_command(name, cmd.target)
            self.commands[name] = cmd
        return name, cmd, rest
