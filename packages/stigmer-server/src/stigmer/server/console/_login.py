"""Logging in and out: the token form, the one-time link of `stigmer console`, sessions."""

from __future__ import annotations

import secrets

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from stigmer.core import Principal
from stigmer.server.console._sessions import COOKIE, LOGIN_COOKIE, SESSION_SECONDS, Session
from stigmer.server.console._web import Web

__all__ = ["home", "login_page", "login_submit", "logout"]


async def login_page(web: Web, request: Request) -> Response:
    code = request.query_params.get("code", "")
    if code:
        token = web.sessions.redeem(code)
        if token is not None and await web.gateway.authenticate(token) is not None:
            return _logged_in(web, request, token, "/runs")
        return web.render(
            request,
            "login.html",
            status=401,
            error="this login link was used already or is wrong; paste a token",
            login_csrf="",
        )
    login_csrf = secrets.token_urlsafe(24)
    response = web.render(
        request, "login.html", login_csrf=login_csrf, next=request.query_params.get("next", "")
    )
    web.set_cookie(response, LOGIN_COOKIE, login_csrf, 3600, request)
    return response


async def login_submit(web: Web, request: Request) -> Response:
    form = await request.form()
    sent, expected = str(form.get("csrf", "")), request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not secrets.compare_digest(sent.encode(), expected.encode()):
        return PlainTextResponse(
            "refused: the login form's CSRF token is missing or wrong; reload the page\n",
            status_code=403,
            headers=web.headers(),
        )
    token = str(form.get("token", "")).strip()
    principal = await web.gateway.authenticate(token)
    if principal is None:
        login_csrf = secrets.token_urlsafe(24)
        response = web.render(
            request, "login.html", status=401, error="invalid or revoked token", login_csrf=login_csrf
        )
        web.set_cookie(response, LOGIN_COOKIE, login_csrf, 3600, request)
        return response
    nxt = str(form.get("next", ""))
    return _logged_in(web, request, token, nxt)


def _logged_in(web: Web, request: Request, token: str, nxt: str) -> Response:
    session = web.sessions.open(token)
    base = web.root(request)
    # only a path inside the console: never an open redirect
    parts = nxt.split("?", 1)[0].split("/")
    if not nxt.startswith(base + "/") or nxt.startswith("//") or "\\" in nxt or ".." in parts:
        nxt = base + "/runs"
    response = RedirectResponse(nxt, status_code=303)
    web.set_cookie(response, COOKIE, session.id, SESSION_SECONDS, request)
    web.set_cookie(response, LOGIN_COOKIE, "", 0, request)
    return response


async def logout(web: Web, request: Request, _principal: Principal, session: Session) -> Response:
    web.sessions.close(session.id)
    response = RedirectResponse(f"{web.root(request)}/login", status_code=303)
    web.set_cookie(response, COOKIE, "", 0, request)
    return response


async def home(web: Web, request: Request) -> Response:
    return RedirectResponse(f"{web.root(request)}/runs", status_code=303)
