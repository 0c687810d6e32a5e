"""The console as a Starlette app, which the server mounts on its HTTP listener (``/console``)."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from stigmer.server.console import _admin, _definitions, _login, _runs
from stigmer.server.console._gateway import Gateway
from stigmer.server.console._web import HERE, Web

__all__ = ["console_app"]


def console_app(gateway: Gateway, *, secure: bool = False, one_time: tuple[str, str] | None = None) -> Any:
    """The console as an ASGI app. ``secure``: cookies get the Secure flag (the listener uses TLS).
    ``one_time``: ``(code, token)``, a login link usable once (``stigmer console`` in Lite)."""
    web = Web(gateway, secure=secure, one_time=one_time)

    def bare(handler: Any) -> Any:  # a page anyone may open (the login form)
        async def endpoint(request: Any) -> Any:
            return await handler(web, request)

        return endpoint

    routes = [
        Route("/", bare(_login.home)),
        Route("/login", bare(_login.login_page), methods=["GET"]),
        Route("/login", bare(_login.login_submit), methods=["POST"]),
        Route("/logout", web.page(_login.logout, post=True), methods=["POST"]),
        Route("/runs", web.page(_runs.runs)),
        Route("/runs/{id}", web.page(_runs.run_page)),
        Route("/runs/{id}/{action}", web.page(_runs.run_action, post=True), methods=["POST"]),
        Route("/definitions/{kind}", web.page(_definitions.definitions)),
        Route("/definitions/{kind}/{name}", web.page(_definitions.definition)),
        Route(
            "/definitions/{kind}/{name}/run",
            web.page(_definitions.run_definition, post=True),
            methods=["POST"],
        ),
        Route("/secrets", web.page(_admin.secrets_page)),
        Route("/tokens", web.page(_admin.tokens_page)),
        Route("/tokens", web.page(_admin.token_create, post=True), methods=["POST"]),
        Route("/tokens/{id}/revoke", web.page(_admin.token_revoke, post=True), methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(routes=routes)
