"""``GET /metrics``: the server's metrics in Prometheus' text format.

Open to clients on this machine: a loopback client address and no proxy header (a proxy on
this machine forwards others' requests from loopback, and says so in those headers; uvicorn
runs without trusting them, so the address is the TCP peer's). Anyone else needs
``Authorization: Bearer <metrics_token>``; without a token configured, nobody else gets in.
Refusals are ``403`` with ZStack's ``ID.1002``.
"""

from __future__ import annotations

import hmac
import ipaddress

from fastapi import APIRouter, Request
from fastapi.responses import Response

from vmexec.api.deps import ServicesDep
from vmexec.api.errors import api_error
from vmexec.api.schemas.common import ErrorReply
from vmexec.services.telemetry import CONTENT_TYPE
from vmexec.zstack.errors import Code

router = APIRouter(tags=["operations"])

#: Headers a proxy adds: a request carrying one may come from anywhere.
PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip",
                 "x-forwarded-proto", "via")


def is_loopback_client(request: Request) -> bool:
    """Whether the request comes from this machine itself, not through a proxy."""
    if request.client is None or any(h in request.headers for h in PROXY_HEADERS):
        return False
    try:
        address = ipaddress.ip_address(request.client.host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _bearer_matches(request: Request, expected: str) -> bool:
    scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
    # Compared in constant time: the token must not leak a byte at a time.
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(),
                                                                expected.encode())


@router.get("/metrics", operation_id="GetMetrics", summary="Prometheus metrics",
            response_class=Response,
            responses={200: {"content": {CONTENT_TYPE: {}},
                             "description": "Prometheus' text format"},
                       403: {"model": ErrorReply,
                             "description": "not a loopback client and no (right) "
                                            "'Authorization: Bearer <metrics_token>'"}})
async def metrics(request: Request, services: ServicesDep) -> Response:
    token = services.settings.metrics_token
    if not is_loopback_client(request) and (
            token is None or not _bearer_matches(request, token.get_secret_value())):
        raise api_error(Code.ID_PERMISSION_DENIED,
                        "GET /metrics is open to loopback clients only; others need "
                        "'Authorization: Bearer <metrics_token>'"
                        + ("" if token is not None else " (no metrics_token is configured)"),
                        status=403)
    return Response(services.metrics.exposition(), media_type=CONTENT_TYPE)
