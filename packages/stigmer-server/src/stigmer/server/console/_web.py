"""What every console page shares: templates, security headers, cookies, and the login and CSRF
check around each handler (:meth:`Web.page`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from stigmer.core import Principal
from stigmer.server.console._gateway import CallError, Gateway
from stigmer.server.console._sessions import COOKIE, Session, Sessions

__all__ = ["DEFINITION_KINDS", "EVENTS_SHOWN", "HERE", "PAGE_SIZE", "PHASES", "Handler", "Web"]

HERE = Path(__file__).parent
PAGE_SIZE = 50  # runs per page: the list stays fast however many runs are stored
EVENTS_SHOWN = 500  # the latest events a run page shows
DEFINITION_KINDS = ("Agent", "Workflow", "Skill", "McpServer", "Environment", "Schedule")
PHASES = ("PENDING", "RUNNING", "WAITING_APPROVAL", "SUCCEEDED", "FAILED", "CANCELLED")
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_HTTP_STATUS = {
    "PERMISSION_DENIED": 403,
    "UNAUTHENTICATED": 401,
    "NOT_FOUND": 404,
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 409,
    "ALREADY_EXISTS": 409,
    "ABORTED": 409,
    "RESOURCE_EXHAUSTED": 429,
    "UNAVAILABLE": 503,
}

# A page handler: (web, request, principal, session) -> a Response, or (template, context).
Handler = Callable[["Web", Request, Principal, Session], Awaitable[Any]]


class Web:
    """One console: its gateway to the Backend, its sessions and templates."""

    def __init__(self, gateway: Gateway, *, secure: bool, one_time: tuple[str, str] | None) -> None:
        self.gateway = gateway
        self.secure = secure
        self.sessions = Sessions(one_time)
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,  # the templates ship with the package: no stat() per page
            cache_size=-1,
        )

    @staticmethod
    def root(request: Request) -> str:
        """Where the console is mounted (``/console``), without the trailing slash."""
        return str(request.scope.get("root_path", "")).rstrip("/")

    @staticmethod
    def headers() -> dict[str, str]:
        return dict(_HEADERS)

    def render(self, request: Request, template: str, status: int = 200, **context: Any) -> Response:
        context.setdefault("principal", None)
        context.setdefault("csrf", "")
        body = self.env.get_template(template).render(base=self.root(request), request=request, **context)
        return HTMLResponse(body, status_code=status, headers=self.headers())

    def set_cookie(self, response: Response, name: str, value: str, max_age: int, request: Request) -> None:
        """HTTP-only, SameSite=Strict, scoped to the console; Secure when the listener uses TLS."""
        base = self.root(request)
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=base + "/" if base else "/",
            httponly=True,
            samesite="strict",
            secure=self.secure,
        )

    def to_login(self, request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{self.root(request)}/login?{urlencode({'next': target})}", status_code=303)

    def page(self, handler: Handler, *, post: bool = False) -> Callable[[Request], Awaitable[Response]]:
        """``handler`` behind the login (re-checked each time) and, for ``post``, the CSRF check;
        a :class:`CallError` it raises becomes an error page with the server's message."""

        async def endpoint(request: Request) -> Response:
            session = self.sessions.get(request.cookies.get(COOKIE))
            principal = await self.gateway.authenticate(session.token) if session is not None else None
            if session is None or principal is None:
                if session is not None:
                    self.sessions.close(session.id)
                if post or request.query_params.get("partial"):
                    return PlainTextResponse("not logged in\n", status_code=401, headers=self.headers())
                return self.to_login(request)
            if post:
                form = await request.form()
                if not session.csrf_ok(str(form.get("csrf", ""))):
                    return PlainTextResponse(
                        "refused: the form's CSRF token is missing or wrong; reload the page\n",
                        status_code=403,
                        headers=self.headers(),
                    )
                request.state.form = form
            try:
                result = await handler(self, request, principal, session)
            except CallError as err:
                return self.render(
                    request,
                    "error.html",
                    status=_HTTP_STATUS.get(err.code, 500),
                    principal=principal,
                    csrf=session.csrf,
                    code=err.code,
                    message=err.message,
                )
            if isinstance(result, Response):
                return result
            template, context = result
            return self.render(request, template, principal=principal, csrf=session.csrf, **context)

        return endpoint
