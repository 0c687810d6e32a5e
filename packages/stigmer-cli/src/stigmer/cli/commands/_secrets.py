"""``stigmer secret set|list|delete|grant|revoke|rotate-key``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from stigmer.cli._client import connect, run_async
from stigmer.cli._errors import CliError
from stigmer.cli.commands._complete import complete_secret
from stigmer.cli.commands._params import read_secret_value, valid_name
from stigmer.cli.output._format import (
    Output,
    OutputOption,
    age,
    echo,
    echo_err,
    emit_json,
    emit_yaml,
    print_table,
)

if TYPE_CHECKING:
    from stigmer.proto.v1 import secret_pb2

__all__ = ["secret_app"]

secret_app = typer.Typer(
    add_completion=False, help="Manage encrypted secrets (values are write-only).", no_args_is_help=True
)

NameArg = Annotated[str, typer.Argument(help="Secret name, for example GH_TOKEN.")]
ExistingNameArg = Annotated[
    str, typer.Argument(help="Secret name, for example GH_TOKEN.", autocompletion=complete_secret)
]


def _metadata(meta: secret_pb2.SecretMetadata) -> dict[str, Any]:
    from stigmer.cli.output._view import timestamp

    return {
        "name": meta.name,
        "description": meta.description,
        "version": meta.version,
        "createdAt": timestamp(meta.created_at),
        "updatedAt": timestamp(meta.updated_at),
        "owner": meta.owner,
        "grants": [_grantee(g) for g in meta.grants],
    }


def _grantee(grant: secret_pb2.SecretGrant) -> str:
    """A grant as shown: ``alice`` (a token name) or ``role:user``."""
    return f"role:{grant.role}" if grant.role else grant.token_name


def _owner(meta: secret_pb2.SecretMetadata) -> str:
    return meta.owner or "(admins)"


def _warn_if_short(name: str, value: str) -> None:
    from stigmer.core import MIN_SECRET_LENGTH

    if len(value) < MIN_SECRET_LENGTH:
        echo_err(
            f"warning: {name} is shorter than {MIN_SECRET_LENGTH} characters: it is stored, but it "
            "will not be masked in output (see docs/secrets.md)"
        )


EnvFileOption = Annotated[
    Path | None,
    typer.Option(
        "--from-env-file",
        help="Set every KEY=VALUE of this dotenv file (no NAME then); nothing is set if a line is bad.",
        show_default=False,
    ),
]


@secret_app.command("set")
def set_(
    name: Annotated[
        str | None, typer.Argument(help="Secret name, for example GH_TOKEN.", show_default=False)
    ] = None,
    description: Annotated[str, typer.Option("--description", help="What the secret is for.")] = "",
    from_env_file: EnvFileOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Store a secret: asked for without echo on a terminal, read from stdin otherwise.

    With --from-env-file FILE, store every KEY=VALUE of a dotenv file instead (the same as
    `stigmer secret import FILE`).
    """
    if from_env_file is not None:
        if name is not None:
            raise CliError("give either NAME or --from-env-file FILE, not both", exit_code=2)
        _set_from_file(from_env_file, "--from-env-file", description, output)
        return
    if name is None:
        raise CliError(
            "give the secret's NAME (`stigmer secret set GH_TOKEN`) or --from-env-file FILE", exit_code=2
        )
    if not valid_name(name):
        raise CliError(f"secret name {name!r}: use letters, digits and underscores, starting with a letter")
    value = read_secret_value(name, whole=True)
    _warn_if_short(name, value)

    async def go() -> secret_pb2.SecretMetadata:
        async with connect() as client:
            return await client.set_secret(name, value, description)

    meta = run_async(go())
    if output is Output.table:
        echo(f"secret/{meta.name} set (version {meta.version})")
    elif output is Output.json:
        emit_json(_metadata(meta))
    else:
        emit_yaml([_metadata(meta)])


@secret_app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="A dotenv file of KEY=VALUE lines.", show_default=False)],
    description: Annotated[str, typer.Option("--description", help="What the secrets are for.")] = "",
    output: OutputOption = Output.table,
) -> None:
    """Store every KEY=VALUE of a dotenv file as a secret (values are never printed).

    Blank lines, # comments, `export KEY=...` and quoted values are understood; every line is
    checked first, and a bad one (named by its line number) sets nothing. The same as
    `stigmer secret set --from-env-file FILE`.
    """
    _set_from_file(file, "secret import", description, output)


def _set_from_file(path: Path, option: str, description: str, output: Output) -> None:
    from stigmer.cli.commands._params import parse_secret_file

    values = parse_secret_file(path, option, allow_empty=False)
    if not values:
        raise CliError(f"{path} holds no KEY=VALUE lines; nothing was set")
    for key, value in values.items():
        _warn_if_short(key, value)

    async def go() -> list[tuple[secret_pb2.SecretMetadata, bool]]:
        async with connect() as client:
            existing = {meta.name for meta in await client.list_secrets()}
            done = []
            for key, value in values.items():
                done.append((await client.set_secret(key, value, description), key not in existing))
            return done

    results = run_async(go())
    if output is Output.table:
        for meta, created in results:
            echo(f"secret/{meta.name} {'created' if created else f'updated (version {meta.version})'}")
    elif output is Output.json:
        emit_json([{**_metadata(meta), "created": created} for meta, created in results])
    else:
        emit_yaml([{**_metadata(meta), "created": created} for meta, created in results])


@secret_app.command("list")
def list_(
    prefix: Annotated[str, typer.Option("--prefix", help="Only names starting with this.")] = "",
    output: OutputOption = Output.table,
) -> None:
    """List secret names and dates (never values)."""

    async def go() -> list[secret_pb2.SecretMetadata]:
        async with connect() as client:
            return list(await client.list_secrets(prefix))

    secrets = run_async(go())
    if output is Output.json:
        emit_json([_metadata(m) for m in secrets])
    elif output is Output.yaml:
        emit_yaml([_metadata(m) for m in secrets])
    else:
        rows = [
            [
                m.name,
                str(m.version),
                age(m.updated_at),
                _owner(m),
                ", ".join(_grantee(g) for g in m.grants),
                m.description,
            ]
            for m in secrets
        ]
        print_table(
            ["NAME", "VERSION", "UPDATED", "OWNER", "GRANTED TO", "DESCRIPTION"], rows, empty="no secrets"
        )


@secret_app.command("delete")
def delete(name: ExistingNameArg) -> None:
    """Delete a secret."""

    async def go() -> secret_pb2.SecretMetadata:
        async with connect() as client:
            return await client.delete_secret(name)

    meta = run_async(go())
    echo(f"secret/{meta.name or name} deleted")


ToOption = Annotated[
    str, typer.Option("--to", help="A token name (as in `stigmer token create --name`).", show_default=False)
]
RoleOption = Annotated[
    str, typer.Option("--role", help="Every token of a role: user, runner or admin.", show_default=False)
]


def _change_grant(name: str, to: str, role: str, *, add: bool) -> None:
    from stigmer.proto.v1 import secret_pb2

    if bool(to) == bool(role):
        raise CliError("say who: give either --to TOKEN_NAME or --role ROLE", exit_code=2)
    if role and role not in ("user", "runner", "admin"):
        raise CliError(f"unknown role {role!r}; choose one of: user, runner, admin", exit_code=2)
    who = secret_pb2.SecretGrant(token_name=to, role=role)

    async def go() -> secret_pb2.SecretMetadata:
        async with connect() as client:
            change = client.grant_secret if add else client.revoke_secret
            return await change(name, to=to, role=role)

    meta = run_async(go())
    echo(f"secret/{meta.name} {'granted to' if add else 'no longer granted to'} {_grantee(who)}")


@secret_app.command("grant")
def grant(name: ExistingNameArg, to: ToOption = "", role: RoleOption = "") -> None:
    """Let a token (by name) or every token of a role author definitions that use a secret.

    On a shared server a definition may declare a secret (workflow `use.secrets`, agent, MCP
    server or Environment `secrets`) only when its author owns the secret, is an admin, or holds
    a grant. Anyone who may author such a definition can read the secret: grant with care.
    """
    _change_grant(name, to, role, add=True)


@secret_app.command("revoke")
def revoke(name: ExistingNameArg, to: ToOption = "", role: RoleOption = "") -> None:
    """Take back a grant made with `stigmer secret grant`; runs that start afterwards are refused."""
    _change_grant(name, to, role, add=False)


@secret_app.command("rotate-key")
def rotate_key(
    new_key_file: Annotated[
        Path | None,
        typer.Option(
            "--new-key-file",
            help="Write the new key here (base64, mode 0600); required when STIGMER_MASTER_KEY holds the key.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Re-encrypt every secret with a new master key (local context only).

    A key kept in ``$STIGMER_HOME/master.key`` or the OS keyring is replaced there. A key given by
    ``STIGMER_MASTER_KEY`` cannot be updated by stigmer: the new key is written to
    ``--new-key-file`` first, and ``STIGMER_MASTER_KEY`` must then be set to it.
    """
    from_env = bool(os.environ.get("STIGMER_MASTER_KEY"))
    if from_env and new_key_file is None:
        raise CliError(
            "the master key comes from STIGMER_MASTER_KEY, which stigmer cannot update: give "
            "--new-key-file PATH to receive the new key, then set STIGMER_MASTER_KEY to its content"
        )
    if new_key_file is not None and new_key_file.exists():
        raise CliError(f"{new_key_file} already exists; give a path for a new file")

    async def go() -> None:
        async with connect() as client:
            if not client.local:
                raise CliError(
                    "rotate-key works on the local store only; a server rotates its own key "
                    "(run `stigmer secret rotate-key` on the server machine)"
                )
            if new_key_file is None:
                await client.rotate_master_key()
            else:
                key = os.urandom(32)
                _write_key(new_key_file, key)  # before the rotation: the key is never only in memory
                await client.rotate_master_key(key)

    run_async(go())
    echo("master key rotated; every secret was re-encrypted")
    if new_key_file is not None:
        echo_err(
            f"the new key is in {new_key_file}: set STIGMER_MASTER_KEY to its content before the next command"
        )


def _write_key(path: Path, key: bytes) -> None:
    import base64

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(base64.b64encode(key).decode("ascii") + "\n")
