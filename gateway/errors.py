"""OpenAI-shaped error answers: `{"error": {"message", "type", "param", "code"}}`."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from django.http import HttpResponse

from omixa.logging import redact

TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    499: "client_closed_request",
    500: "api_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
}


class GatewayError(Exception):
    """An answer the gateway gives instead of a completion."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        type_: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        # Messages may quote an upstream's words: no key or provider secret reaches a client through them.
        message = redact(message)
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = type_ or TYPE_BY_STATUS.get(status, "api_error")
        self.headers = dict(headers or {})

    def payload(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self, request_id: str | None = None) -> HttpResponse:
        response = HttpResponse(orjson.dumps(self.payload()), status=self.status, content_type="application/json")
        for name, value in self.headers.items():
            response[name] = value
        if request_id:
            response["x-request-id"] = request_id
        return response


def error_response(status: int, message: str, *, request_id: str | None = None, **kwargs) -> HttpResponse:
    return GatewayError(status, message, **kwargs).response(request_id)
