"""Bearer tokens with roles, checked by a server interceptor before any handler runs.

``authorization: Bearer <token>`` metadata; no (or an unknown) token -> UNAUTHENTICATED; a token without a role the
method needs -> PERMISSION_DENIED. Roles per method follow the proto: the order service (``orders``) submits,
cancels, quotes and watches; the rider gateway (``riders``) reports events and watches; ``ops`` updates parameters;
reads are open to every role. The health and reflection services need no token (load balancers and grpcurl).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable
from typing import Any

import grpc

from dispatch.service.config import ROLES, TokenSpec

SERVICE = "/dispatch.v1.DispatchService/"
_READ = frozenset(ROLES)
METHOD_ROLES: dict[str, frozenset[str]] = {
    "SubmitOrder": frozenset({"orders"}),
    "SubmitOrders": frozenset({"orders"}),
    "CancelOrder": frozenset({"orders"}),
    "Quote": frozenset({"orders"}),
    "ReportRiderEvents": frozenset({"riders"}),
    "WatchAssignments": frozenset({"orders", "riders"}),
    "UpdateParams": frozenset({"ops"}),
    "GetOrder": _READ,
    "GetRider": _READ,
    "GetSite": _READ,
    "GetStats": _READ,
    "GetParams": _READ,
}


def _refuse(handler: Any, code: grpc.StatusCode, message: str) -> Any:
    """A handler of the same shape as ``handler`` that fails with ``code``."""

    def unary(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, message)

    def streaming(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, message)
        yield  # pragma: no cover - makes this a generator

    return handler_like(handler, unary, streaming)


def handler_like(handler: Any, unary: Any, streaming: Any) -> Any:
    """A method handler of the same shape as ``handler`` (None: None) that answers with ``unary`` (unary
    responses) or ``streaming`` (streamed responses): how both front ends' interceptors refuse a call."""
    if handler is None:
        return None
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(streaming)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(unary)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(streaming)
    return grpc.unary_unary_rpc_method_handler(unary)


class AuthInterceptor(grpc.ServerInterceptor):
    """See the module docstring."""

    def __init__(self, tokens: Iterable[TokenSpec]) -> None:
        self._tokens = [(t.token.encode(), t.roles) for t in tokens]

    def roles_of(self, token: str) -> frozenset[str] | None:
        raw = token.encode()
        found: frozenset[str] | None = None
        for tok, roles in self._tokens:  # constant-time compare against every token
            if hmac.compare_digest(tok, raw):
                found = roles
        return found

    def check(self, details: Any) -> tuple[grpc.StatusCode, str] | None:
        """None when the call may go ahead, else the status and message that refuse it."""
        method: str = details.method
        if not method.startswith(SERVICE):
            return None
        needed = METHOD_ROLES.get(method[len(SERVICE) :])
        token = ""
        for key, value in details.invocation_metadata or ():
            if key == "authorization":
                v = value if isinstance(value, str) else value.decode()
                if v[:7].lower() == "bearer ":
                    token = v[7:].strip()
                break
        if not token:
            return grpc.StatusCode.UNAUTHENTICATED, "missing bearer token (authorization metadata)"
        roles = self.roles_of(token)
        if roles is None:
            return grpc.StatusCode.UNAUTHENTICATED, "unknown bearer token"
        if needed is not None and not (roles & needed):
            return (
                grpc.StatusCode.PERMISSION_DENIED,
                f"{method[len(SERVICE) :]} needs the role {' or '.join(sorted(needed))}; the token has "
                f"{', '.join(sorted(roles))}",
            )
        return None

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = continuation(details)
        refusal = self.check(details)
        return handler if refusal is None else _refuse(handler, *refusal)
