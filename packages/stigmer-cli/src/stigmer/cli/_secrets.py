"""``stigmer secret set|list|delete|rotate-key``."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Annotated, Any

import typer
from stigmer.cli._backend import open_session, run_async
from stigmer.cli._errors import CliError
from stigmer.cli._output import Output, OutputOption, age, echo, emit_json, emit_yaml, print_table
from stigmer.cli._params import read_secret_value, valid_name

if TYPE_CHECKING:
    from stigmer.proto.v1 import secret_pb2

__all__ = ["secret_app"]

secret_app = typer.Typer(
    add_completion=False, help="Manage encrypted secrets (values are write-only).", no_args_is_help=True
)

NameArg = Annotated[str, typer.Argument(help="Secret name, for example GH_TOKEN.")]


def _metadata(meta: secret_pb2.SecretMetadata) -> dict[str, Any]:
    from stigmer.cli._view import timestamp

    return {
        "name": meta.name,
        "description": meta.description,
        "version": meta.version,
        "createdAt": timestamp(meta.created_at),
        "updatedAt": timestamp(meta.updated_at),
    }


@secret_app.command("set")
def set_(
    name: NameArg,
    description: Annotated[str, typer.Option("--description", help="What the secret is for.")] = "",
    output: OutputOption = Output.table,
) -> None:
    """Store a secret: asked for without echo on a terminal, read from stdin otherwise."""
    if not valid_name(name):
        raise CliError(f"secret name {name!r}: use letters, digits and underscores, starting with a letter")
    value = read_secret_value(name, whole=True)

    async def go() -> secret_pb2.SecretMetadata:
        from stigmer.proto.v1 import backend_service_pb2 as svc

        async with open_session() as session:
            return await session.backend.set_secret(
                svc.SetSecretRequest(name=name, value=value, description=description)
            )

    meta = run_async(go())
    if output is Output.table:
        echo(f"secret/{meta.name} set (version {meta.version})")
    elif output is Output.json:
        emit_json(_metadata(meta))
    else:
        emit_yaml([_metadata(meta)])


@secret_app.command("list")
def list_(
    prefix: Annotated[str, typer.Option("--prefix", help="Only names starting with this.")] = "",
    output: OutputOption = Output.table,
) -> None:
    """List secret names and dates (never values)."""

    async def go() -> list[secret_pb2.SecretMetadata]:
        from stigmer.proto.v1 import backend_service_pb2 as svc

        async with open_session() as session:
            return list((await session.backend.list_secrets(svc.ListSecretsRequest(prefix=prefix))).secrets)

    secrets = run_async(go())
    if output is Output.json:
        emit_json([_metadata(m) for m in secrets])
    elif output is Output.yaml:
        emit_yaml([_metadata(m) for m in secrets])
    else:
        rows = [[m.name, str(m.version), age(m.updated_at), m.description] for m in secrets]
        print_table(["NAME", "VERSION", "UPDATED", "DESCRIPTION"], rows, empty="no secrets")


@secret_app.command("delete")
def delete(name: NameArg) -> None:
    """Delete a secret."""

    async def go() -> secret_pb2.SecretMetadata:
        from stigmer.proto.v1 import backend_service_pb2 as svc

        async with open_session() as session:
            return await session.backend.delete_secret(svc.DeleteSecretRequest(name=name))

    meta = run_async(go())
    echo(f"secret/{meta.name or name} deleted")


@secret_app.command("rotate-key")
def rotate_key() -> None:
    """Re-encrypt every secret with a new master key (local context only)."""

    async def go() -> None:
        async with open_session() as session:
            if not session.local:
                raise CliError(
                    "rotate-key works on the local store only; a server rotates its own key "
                    "(run `stigmer secret rotate-key` on the server machine)"
                )
            rotate = getattr(session.backend, "rotate_master_key", None)
            if rotate is None:
                raise CliError(
                    f"this backend ({type(session.backend).__name__}) cannot rotate its master key; "
                    "upgrade stigmer-backend-local"
                )
            result = rotate()
            if inspect.isawaitable(result):
                await result

    run_async(go())
    echo("master key rotated; every secret was re-encrypted")
