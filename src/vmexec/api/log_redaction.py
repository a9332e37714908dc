"""Keep session tokens and webhook credentials out of the logs of the libraries we use.

- uvicorn's access log (INFO) shows every request's path, and ZStack's LogOut and
  ValidateSession carry the session token there (``/zstack/v1/accounts/sessions/<token>``):
  :class:`TokenPathFilter` rewrites it to ``.../sessions/***``.
- httpx logs every request's URL at INFO, webhooks' too: :class:`UrlFilter` shows URLs
  redacted (no credentials, no query string).
- aiosqlite logs every statement *with its parameters* at DEBUG (password hashes, webhook
  URLs): it is kept at INFO.

:func:`install` sets all of this up; it is idempotent.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import httpx

from vmexec.services.webhooks import redact

ACCESS_LOGGER = "uvicorn.access"
HTTP_CLIENT_LOGGER = "httpx"
SQLITE_DRIVER_LOGGER = "aiosqlite"
_SESSION_PATH = re.compile(r"(/accounts/sessions/)[^/?\s\"]+")
#: Path parameters that are credentials (LogOut's and ValidateSession's session token): never
#: logged or audited as the resource a call is about.
SECRET_PATH_PARAMETERS = frozenset({"session_uuid"})


def redact_path(text: str) -> str:
    """``text`` with any session token in a sessions path replaced by ``***``."""
    return _SESSION_PATH.sub(r"\1***", text)


class _ArgumentFilter(logging.Filter):
    """Rewrites a record's message and arguments; drops nothing."""

    def rewrite(self, value: object) -> object:
        raise NotImplementedError

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = str(self.rewrite(record.msg))
        if isinstance(record.args, tuple):
            record.args = tuple(self.rewrite(a) for a in record.args)
        return True


class TokenPathFilter(_ArgumentFilter):
    """Session tokens in request paths become ``***``."""

    def rewrite(self, value: object) -> object:
        return redact_path(value) if isinstance(value, str) else value


class UrlFilter(_ArgumentFilter):
    """httpx URLs (the arguments of its request log) are shown redacted."""

    def rewrite(self, value: object) -> object:
        return redact(str(value)) if isinstance(value, httpx.URL) else value


def _add_once(logger_name: str, make: Callable[[], _ArgumentFilter]) -> None:
    logger = logging.getLogger(logger_name)
    kind = type(make())
    if not any(isinstance(f, kind) for f in logger.filters):
        logger.addFilter(make())


def install() -> None:
    """Put the filters on their loggers (once) and keep aiosqlite at INFO."""
    _add_once(ACCESS_LOGGER, TokenPathFilter)
    _add_once(HTTP_CLIENT_LOGGER, UrlFilter)
    driver = logging.getLogger(SQLITE_DRIVER_LOGGER)
    if driver.level < logging.INFO:  # NOTSET too: it would follow a DEBUG root
        driver.setLevel(logging.INFO)
