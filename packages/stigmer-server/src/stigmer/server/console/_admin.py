"""Secrets (names, versions, grants: never values) and API tokens (admins only)."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from stigmer.core import Principal
from stigmer.server.console import _views as views
from stigmer.server.console._gateway import CallError
from stigmer.server.console._sessions import Session
from stigmer.server.console._web import Web

__all__ = ["secrets_page", "token_create", "token_revoke", "tokens_page"]


async def secrets_page(web: Web, request: Request, principal: Principal, _session: Session) -> Any:
    from stigmer.proto.v1 import backend_service_pb2 as svc

    resp = await web.gateway.call(principal, "ListSecrets", svc.ListSecretsRequest())
    items = [
        {
            "name": s.name,
            "description": s.description,
            "version": s.version,
            "owner": s.owner,
            "updated": views.fmt_time(views.ts(s.updated_at)),
            "grants": [f"{g.token_name or '*'}{' (' + g.role + ')' if g.role else ''}" for g in s.grants],
        }
        for s in resp.secrets
    ]
    return "secrets.html", {"items": items}


def _admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise CallError(
            "PERMISSION_DENIED",
            f"managing tokens requires the admin role; {principal.describe()} is not an admin",
        )


async def tokens_page(web: Web, request: Request, principal: Principal, _session: Session) -> Any:
    _admin(principal)
    items = await asyncio.to_thread(web.gateway.tokens.list)
    return "tokens.html", {"items": items, "issued": None}


async def token_create(web: Web, request: Request, principal: Principal, _session: Session) -> Any:
    _admin(principal)
    form = request.state.form
    role = str(form.get("role", "user"))
    name = str(form.get("name", "")).strip() or None
    try:
        issued = await asyncio.to_thread(web.gateway.tokens.create, role, name)
    except Exception as exc:
        raise CallError(
            getattr(exc, "grpc_code", "INVALID_ARGUMENT"), getattr(exc, "message", str(exc))
        ) from None
    items = await asyncio.to_thread(web.gateway.tokens.list)
    return "tokens.html", {"items": items, "issued": issued}


async def token_revoke(web: Web, request: Request, principal: Principal, _session: Session) -> Response:
    _admin(principal)
    try:
        await asyncio.to_thread(web.gateway.tokens.revoke, request.path_params["id"])
    except Exception as exc:
        raise CallError(
            getattr(exc, "grpc_code", "INVALID_ARGUMENT"), getattr(exc, "message", str(exc))
        ) from None
    web.gateway.forget()  # the revoked token stops working at once
    return RedirectResponse(f"{web.root(request)}/tokens", status_code=303)
