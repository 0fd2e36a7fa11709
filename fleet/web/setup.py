"""install_web(app): templates, static files, the language switch, login redirects and the page routes."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape
from starlette.exceptions import HTTPException as StarletteHTTPException

from fleet.auth.deps import LoginRequired, resolve_user
from fleet.auth.sessions import CSRF_FIELD
from fleet.satisfaction import RATE_DEFINITION
from fleet.web import labels
from fleet.web.i18n import LANG_COOKIE, request_lang, requested_lang, translator

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"
# Front-end libraries come from the npm registry (package.json) and are served by the fleet
# itself: a county's server room often has no Internet, so no CDN.
NODE_MODULES = WEB_DIR.parents[1] / "node_modules"
VENDOR = {"uplot": NODE_MODULES / "uplot" / "dist", "echarts": NODE_MODULES / "echarts" / "dist"}
LANG_COOKIE_MAX_AGE_S = 365 * 24 * 3600


MACHINE_PATHS = ("/api/", "/metrics", "/healthz", "/openapi.json", "/docs", "/redoc")


def wants_html(request: Request) -> bool:
    """A page (login redirect and error pages in the layout), as opposed to the API and other machine paths."""
    return not request.url.path.startswith(MACHINE_PATHS)


def page_context(request: Request) -> dict[str, Any]:
    """What every template gets (see templates/base.html)."""
    lang = request_lang(request)
    user = getattr(request.state, "user", None)
    if user is None:
        user = resolve_user(request)
    csrf_token = user.csrf_token if user is not None else getattr(request.state, "login_csrf", None)

    def csrf_field() -> Markup:
        return Markup(f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(csrf_token or "")}">')

    def lang_url(code: str) -> str:
        return str(request.url.include_query_params(lang=code).replace(scheme="", netloc="")).removeprefix("//")

    return {"_": translator(lang), "lang": lang, "user": user, "csrf_token": csrf_token,
            "csrf_field": csrf_field, "lang_url": lang_url}


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR), context_processors=[page_context])
    templates.env.globals.update(
        role_label=labels.role_label,
        window_label=labels.window_label,
        status_label=labels.status_label,
        reason_label=labels.reason_label,
        rate_definition=RATE_DEFINITION,  # under every 满意率 figure: one definition, said where it is shown
    )
    return templates


async def _login_required(request: Request, _exc: Exception) -> Response:
    if wants_html(request):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    return JSONResponse({"detail": "not authenticated"}, status_code=401, headers={"WWW-Authenticate": "Bearer"})


async def _http_error(request: Request, exc: Exception) -> Response:
    """Browsers get a page in the layout; API clients the usual JSON."""
    assert isinstance(exc, StarletteHTTPException)
    if not wants_html(request) or exc.status_code < 400:
        return await http_exception_handler(request, exc)
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(request, "error.html", {"status": exc.status_code, "detail": exc.detail},
                                      status_code=exc.status_code, headers=getattr(exc, "headers", None))


async def _remember_language(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    response = await call_next(request)
    lang = requested_lang(request)
    if lang is not None:
        response.set_cookie(LANG_COOKIE, lang, max_age=LANG_COOKIE_MAX_AGE_S, httponly=True, samesite="lax")
    return response


def install_web(app: FastAPI) -> None:
    """Templates, static files, the language switch, error pages and the page routes."""
    from fleet.web import account, pages, users_pages  # the routers, imported late: they import this module

    app.state.templates = make_templates()
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    for name, directory in VENDOR.items():
        if not directory.is_dir():
            log.warning("%s is missing (run `npm install`): charts will not draw", directory)
        app.mount(f"/vendor/{name}", StaticFiles(directory=str(directory), check_dir=False), name=f"vendor-{name}")
    app.middleware("http")(_remember_language)
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.include_router(account.router)
    app.include_router(users_pages.router)
    app.include_router(pages.router)
