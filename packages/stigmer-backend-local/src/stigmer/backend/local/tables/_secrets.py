"""The encrypted secret store: named secrets and the run-time secrets of one execution."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from stigmer.backend.local._db import Conn, in_list
from stigmer.backend.local.tables import _grants
from stigmer.backend.local.tables._columns import now_us, timestamp
from stigmer.backend.local.tables._input import check_secret_name
from stigmer.core import FailedPrecondition, InvalidArgument, NotFound, Principal
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import secret_pb2

if TYPE_CHECKING:
    from stigmer.backend.local._crypto import SecretBox

__all__ = [
    "can_open",
    "delete_secret",
    "list_secrets",
    "metadata_of",
    "open_secret",
    "reencrypt_all",
    "require_key",
    "resolve_values",
    "runtime_secrets",
    "seal_secret",
    "set_secret",
    "store_runtime_secrets",
]

log = logging.getLogger(__name__)
_MAX_VALUE = 1 << 20

#: Every column of ``secrets``, in the table's order.
_SECRET = (
    "SELECT name, description, version, ciphertext, created_at, updated_at FROM secrets WHERE name = :name"
)
_INSERT = (
    "INSERT INTO secrets (name, description, version, ciphertext, created_at, updated_at) "
    "VALUES (:name, :description, :version, :ciphertext, :created_at, :updated_at)"
)
_UPDATE = (
    "UPDATE secrets SET description = :description, version = :version, ciphertext = :ciphertext, "
    "updated_at = :updated_at WHERE name = :name"
)
_DELETE = "DELETE FROM secrets WHERE name = :name"
_LIST = "SELECT name, description, version, created_at, updated_at FROM secrets ORDER BY name"
_CIPHERTEXT = "SELECT ciphertext FROM secrets WHERE name = :name"
_INSERT_RUNTIME = (
    "INSERT INTO execution_secrets (execution_id, name, ciphertext) "
    "VALUES (:execution_id, :name, :ciphertext)"
)
_RUNTIME = "SELECT name, ciphertext FROM execution_secrets WHERE execution_id = :execution_id"
_ALL_SECRETS = "SELECT name, ciphertext FROM secrets"
_ALL_RUNTIME = "SELECT execution_id, name, ciphertext FROM execution_secrets"
_RESEAL = "UPDATE secrets SET ciphertext = :ciphertext WHERE name = :name"
_RESEAL_RUNTIME = (
    "UPDATE execution_secrets SET ciphertext = :ciphertext "
    "WHERE execution_id = :execution_id AND name = :name"
)


def _context(name: str) -> str:
    return f"stigmer/secret/{name}"


def _runtime_context(execution_id: str, name: str) -> str:
    return f"stigmer/execution/{execution_id}/secret/{name}"


def seal_secret(box: SecretBox, name: str, value: str) -> bytes:
    """The stored form of secret ``name``: AES-256-GCM, bound to the name."""
    return box.seal(value, _context(name))


def open_secret(box: SecretBox, name: str, blob: bytes) -> str:
    return box.open(blob, _context(name), f"secret {name}")


def _metadata(row: Any) -> secret_pb2.SecretMetadata:
    out = secret_pb2.SecretMetadata(
        name=row.name,
        description=row.description,
        version=row.version,
    )
    out.created_at.CopyFrom(timestamp(row.created_at))
    out.updated_at.CopyFrom(timestamp(row.updated_at))
    return out


def _check_value(value: str, name: str) -> None:
    if len(value.encode("utf-8")) > _MAX_VALUE:
        raise InvalidArgument(f"secret {name} is larger than 1 MiB", ["value"])


def set_secret(
    conn: Conn,
    box: SecretBox,
    request: svc.SetSecretRequest,
    principal: Principal | None = None,
) -> secret_pb2.SecretMetadata:
    name = check_secret_name(request.name)
    _check_value(request.value, name)
    sealed = seal_secret(box, name, request.value)
    now = now_us()
    row = conn.execute(_SECRET + conn.for_update, {"name": name}).first()
    if row is None:
        _grants.set_owner(conn, name, _grants.owner_for_new_secret(principal))
        conn.execute(
            _INSERT,
            {
                "name": name,
                "description": request.description,
                "version": 1,
                "ciphertext": sealed,
                "created_at": now,
                "updated_at": now,
            },
        )
    else:
        _grants.check_owner(conn, principal, name, "overwrite")
        conn.execute(
            _UPDATE,
            {
                "name": name,
                "description": request.description or row.description,
                "version": row.version + 1,
                "ciphertext": sealed,
                "updated_at": now,
            },
        )
    log.info("stored secret %s", name)
    return metadata_of(conn, name)


def metadata_of(conn: Conn, name: str) -> secret_pb2.SecretMetadata:
    """The metadata of a stored secret, with its owner and grants."""
    out = _metadata(conn.execute(_SECRET, {"name": name}).one())
    _grants.describe_metadata(conn, [out])
    return out


def delete_secret(
    conn: Conn, request: svc.DeleteSecretRequest, principal: Principal | None = None
) -> secret_pb2.SecretMetadata:
    name = check_secret_name(request.name)
    row = conn.execute(_SECRET + conn.for_update, {"name": name}).first()
    if row is None:
        raise NotFound(f"secret {name} does not exist; list them with `stigmer secret list`")
    _grants.check_owner(conn, principal, name, "delete")
    out = metadata_of(conn, name)
    conn.execute(_DELETE, {"name": name})
    _grants.forget_secret(conn, name)
    log.info("deleted secret %s", name)
    return out


def list_secrets(conn: Conn, request: svc.ListSecretsRequest) -> svc.ListSecretsResponse:
    rows = [r for r in conn.execute(_LIST).all() if r.name.startswith(request.prefix)]
    out = [_metadata(r) for r in rows]
    _grants.describe_metadata(conn, out)
    return svc.ListSecretsResponse(secrets=out)


def store_runtime_secrets(conn: Conn, box: SecretBox, execution_id: str, values: Mapping[str, str]) -> None:
    rows = []
    for name, value in values.items():
        check_secret_name(name, f"runtime_secrets.{name}")
        _check_value(value, name)
        rows.append(
            {
                "execution_id": execution_id,
                "name": name,
                "ciphertext": box.seal(value, _runtime_context(execution_id, name)),
            }
        )
    if rows:
        conn.executemany(_INSERT_RUNTIME, rows)


def copy_runtime_secrets(
    conn: Conn, box: SecretBox, source_id: str, execution_id: str, given: set[str]
) -> None:
    """Give a retry or re-run the run-time secrets of the run it repeats (those still stored and
    not given again), each sealed for the new execution."""
    values = {
        name: box.open(blob, _runtime_context(source_id, name), f"secret {name}")
        for name, blob in runtime_secrets(conn, source_id).items()
        if name not in given
    }
    store_runtime_secrets(conn, box, execution_id, values)


def runtime_secrets(conn: Conn, execution_id: str) -> dict[str, bytes]:
    """``name -> ciphertext`` of the run-time secrets of one execution."""
    return {r.name: r.ciphertext for r in conn.execute(_RUNTIME, {"execution_id": execution_id}).all()}


def stored_value(conn: Conn, box: SecretBox, name: str) -> str | None:
    """The decrypted value of stored secret ``name``, or None when there is no such secret."""
    row = conn.execute(_CIPHERTEXT, {"name": name}).first()
    return None if row is None else open_secret(box, name, row.ciphertext)


def resolve_values(
    conn: Conn,
    box: SecretBox,
    execution_id: str,
    names: Iterable[str],
    runtime: Mapping[str, bytes] | None = None,
) -> dict[str, str]:
    """Decrypted values of ``names``: the execution's run-time secret, else the stored secret.

    ``runtime`` is :func:`runtime_secrets` of the execution when the caller has read it already.
    """
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return {}
    if runtime is None:
        runtime = runtime_secrets(conn, execution_id)
    names_in, params = in_list("name", [n for n in wanted if n not in runtime])
    stored = {
        r.name: r.ciphertext
        for r in conn.execute(f"SELECT name, ciphertext FROM secrets WHERE name IN {names_in}", params).all()
    }
    out: dict[str, str] = {}
    missing = []
    for name in wanted:
        if name in runtime:
            out[name] = box.open(
                runtime[name], _runtime_context(execution_id, name), f"run-time secret {name}"
            )
        elif name in stored:
            out[name] = open_secret(box, name, stored[name])
        else:
            missing.append(name)
    if missing:
        raise FailedPrecondition(
            f"execution {execution_id} needs secret(s) {', '.join(missing)}, which have no value; "
            f"set them with `stigmer secret set {missing[0]}`"
        )
    return out


def stored_count(conn: Conn) -> int:
    """How many secret values are stored: named secrets and the run-time secrets of executions."""
    named = conn.execute("SELECT count(*) FROM secrets").scalar()
    runtime = conn.execute("SELECT count(*) FROM execution_secrets").scalar()
    return int(named) + int(runtime)


def can_open(conn: Conn, box: SecretBox) -> bool | None:
    """Whether ``box`` decrypts a stored secret (None when no secret is stored at all)."""
    row = conn.execute(_ALL_SECRETS + " LIMIT 1").first()
    try:
        if row is not None:
            open_secret(box, row.name, row.ciphertext)
            return True
        item = conn.execute(_ALL_RUNTIME + " LIMIT 1").first()
        if item is None:
            return None
        box.open(item.ciphertext, _runtime_context(item.execution_id, item.name), "run-time secret")
        return True
    except FailedPrecondition:
        return False


def require_key(conn: Conn, box: SecretBox, source: str) -> None:
    """Refuse to write with a key that does not open the secrets already stored.

    Writing anyway would leave the store encrypted under two keys, which no single key (and no
    rotation) can open again.
    """
    if can_open(conn, box) is False:
        raise FailedPrecondition(
            f"the master key from {source or 'this process'} does not open the secrets already stored, "
            "so nothing was written; use the key they were stored with (STIGMER_MASTER_KEY, the OS "
            "keyring or $STIGMER_HOME/master.key), or unset STIGMER_MASTER_KEY if it is set by mistake"
        )


def reencrypt_all(conn: Conn, old: SecretBox, new: SecretBox) -> int:
    """Re-encrypt every stored and run-time secret with ``new``; returns how many were rewritten."""
    count = 0
    for row in conn.execute(_ALL_SECRETS + conn.for_update).all():
        plain = old.open(row.ciphertext, _context(row.name), f"secret {row.name}")
        conn.execute(_RESEAL, {"name": row.name, "ciphertext": new.seal(plain, _context(row.name))})
        count += 1
    for item in conn.execute(_ALL_RUNTIME + conn.for_update).all():
        ctx = _runtime_context(item.execution_id, item.name)
        plain = old.open(item.ciphertext, ctx, f"run-time secret {item.name}")
        conn.execute(
            _RESEAL_RUNTIME,
            {"execution_id": item.execution_id, "name": item.name, "ciphertext": new.seal(plain, ctx)},
        )
        count += 1
    return count
