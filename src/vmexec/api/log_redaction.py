"""Keep session tokens out of the access log.

ZStack's LogOut and ValidateSession carry the session token in the path
(``/zstack/v1/accounts/sessions/<token>[/valid]``), and uvicorn logs every request's path at
INFO. :class:`TokenPathFilter` rewrites such paths to ``.../sessions/***`` before a record is
formatted; :func:`install` puts it on uvicorn's access logger.
"""

from __future__ import annotations

import logging
import re

ACCESS_LOGGER = "uvicorn.access"
_SESSION_PATH = re.compile(r"(/accounts/sessions/)[^/?\s\"]+")


def redact_path(text: str) -> str:
    """``text`` with any session token in a sessions path replaced by ``***``."""
    return _SESSION_PATH.sub(r"\1***", text)


class TokenPathFilter(logging.Filter):
    """Redacts session tokens in a record's message and string arguments; drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_path(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact_path(a) if isinstance(a, str) else a
                                for a in record.args)
        return True


def install(logger_name: str = ACCESS_LOGGER) -> None:
    """Add the filter to ``logger_name`` once (calling again does nothing)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, TokenPathFilter) for f in logger.filters):
        logger.addFilter(TokenPathFilter())
