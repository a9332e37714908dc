"""The web console: its page at ``/``, its files, its cookie session; and the API docs
(``/docs``, ``/redoc``) from files shipped with the package, never a CDN.

- ``POST /console/session`` LogInToConsole: account name and password (clear text, as a login
  form sends it; it is hashed as ZStack clients hash it) → a LogInByAccount session, held in
  an httpOnly, SameSite=Strict cookie, with its CSRF token (see :mod:`vmexec.api.cookies`).
- ``GET /console/session`` GetConsoleSession: whom the credentials act as.
- ``DELETE /console/session`` LogOutOfConsole: ends the cookie's session (with its CSRF
  token) and clears the cookies.

The console itself (``console/``) is plain ES modules and one CSS file that call the same API
as every other client.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import Field
from starlette.staticfiles import StaticFiles

from vmexec.api.cookies import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    check_csrf,
    csrf_token,
    session_cookie,
)
from vmexec.api.deps import AuthDep, ServicesDep
from vmexec.api.observe import note
from vmexec.api.schemas.common import ERROR_RESPONSES, EmptyReply, ErrorReply, WireModel
from vmexec.zstack.dates import format_date
from vmexec.zstack.passwords import sha512_hex

PATH = "/console/session"
#: Where the console's files are served from.
STATIC_PATH = "/console/static"
DOCS_ASSETS_PATH = "/docs/assets"
CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"

router = APIRouter(tags=["console"])


class LogInToConsoleRequest(WireModel):
    account_name: str = Field(min_length=1, max_length=255, examples=["admin"])
    password: str = Field(min_length=1, max_length=1024,
                          description="The password itself, as typed in the login form")


class ConsoleSession(WireModel):
    account_uuid: str
    account_name: str
    account_type: str
    expired_date: str = Field(examples=["Oct 17, 2024 7:43:35 AM"])


class ConsoleSessionReply(WireModel):
    inventory: ConsoleSession
    csrf_token: str | None = Field(
        default=None, description="The session's CSRF token (login only; also in the "
                                  f"readable cookie {CSRF_COOKIE})")


def _https(request: Request) -> bool:
    """Whether the browser reached us over https: directly, or through a TLS proxy (`vmexec
    serve` does not read proxy headers; trusting this one is harmless: a client that lies
    gets a cookie its own browser keeps to https)."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def _set_cookies(response: JSONResponse, request: Request, token: str) -> None:
    secure = _https(request)
    # No Max-Age: the cookie ends with the browser; the session ends on its own timeout.
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict", path="/",
                        secure=secure)
    response.set_cookie(CSRF_COOKIE, csrf_token(token), httponly=False, samesite="strict",
                        path="/", secure=secure)


def _clear_cookies(response: JSONResponse, request: Request) -> None:
    secure = _https(request)
    for name, http_only in ((SESSION_COOKIE, True), (CSRF_COOKIE, False)):
        response.delete_cookie(name, path="/", samesite="strict", httponly=http_only,
                               secure=secure)


@router.post(PATH, operation_id="LogInToConsole", response_model=ConsoleSessionReply,
             responses=ERROR_RESPONSES,
             summary="Log in to the web console: the session in a cookie")
async def log_in_to_console(body: LogInToConsoleRequest, services: ServicesDep,
                            http: Request) -> JSONResponse:
    """As LogInByAccount (the same errors: ``503 ID.1000``, ``ID.1008``), with the password
    itself; the session is set as an httpOnly, SameSite=Strict cookie."""
    note(http.scope, account_name=body.account_name)
    session = await services.auth.login(body.account_name, sha512_hex(body.password),
                                        address=http.client.host if http.client else None)
    reply = ConsoleSessionReply(
        inventory=ConsoleSession(account_uuid=session.account_uuid,
                                 account_name=session.account_name,
                                 account_type=session.account_type,
                                 expired_date=format_date(session.expired_date)),
        csrf_token=csrf_token(session.uuid))
    response = JSONResponse(reply.wire())
    _set_cookies(response, http, session.uuid)
    return response


@router.get(PATH, operation_id="GetConsoleSession", response_model=ConsoleSessionReply,
            responses=ERROR_RESPONSES, summary="Whom the request's credentials act as")
async def get_console_session(session: AuthDep) -> JSONResponse:
    return JSONResponse(ConsoleSessionReply(inventory=ConsoleSession(
        account_uuid=session.account_uuid, account_name=session.account_name,
        account_type=session.account_type,
        expired_date=format_date(session.expired_date))).wire())


@router.delete(PATH, operation_id="LogOutOfConsole", response_model=EmptyReply,
               responses={403: {"model": ErrorReply, "description": "no CSRF token: ID.1002"},
                          **ERROR_RESPONSES},
               summary="Log out of the web console: end the cookie's session")
async def log_out_of_console(http: Request, services: ServicesDep) -> JSONResponse:
    """Ends the session of the cookie (the call needs its CSRF token: ``403 ID.1002``
    without) and clears the cookies; without a cookie there is nothing to end."""
    token = session_cookie(http.headers)
    if token is not None:
        check_csrf(http.method, token, http.headers)
        await services.auth.logout(token)
    response = JSONResponse({})
    _clear_cookies(response, http)
    return response


# --- pages and files -------------------------------------------------------------------------
@router.get("/", include_in_schema=False)
async def console_page() -> FileResponse:
    return FileResponse(CONSOLE_DIR / "index.html", media_type="text/html")


@router.get("/docs", include_in_schema=False)
async def swagger_ui_page() -> FileResponse:
    return FileResponse(CONSOLE_DIR / "docs.html", media_type="text/html")


@router.get("/redoc", include_in_schema=False)
async def redoc_page() -> FileResponse:
    return FileResponse(CONSOLE_DIR / "redoc.html", media_type="text/html")


def _docs_assets() -> Path:
    # Swagger UI's and Redoc's built files, as the fastapi-offline package ships them.
    return Path(str(resources.files("fastapi_offline") / "static"))


def mount_files(app: FastAPI) -> None:
    """Serve the console's files and the docs' assets."""
    app.mount(STATIC_PATH, StaticFiles(directory=CONSOLE_DIR / "static"), name="console")
    app.mount(DOCS_ASSETS_PATH, StaticFiles(directory=_docs_assets()), name="docs-assets")

