"""Errors in OpenAI's shape, like the gateway's: `{"error": {"message", "type", "param", "code"}}`.

A validation error names the first field at fault in `param` and lists every problem in `message`.
"""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, serializers
from rest_framework.views import exception_handler as drf_exception_handler

from gateway.errors import TYPE_BY_STATUS
from workspaces.services import DuplicateApiKeyName, LastOwnerError, WorkspaceError

# The gateway's types, and the API's own statuses (a conflict is the caller's to resolve, as OpenAI types it).
ERROR_TYPES = {**TYPE_BY_STATUS, 409: "invalid_request_error", 415: "invalid_request_error"}


class Conflict(exceptions.APIException):
    status_code = 409
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"


def from_workspace_error(exc: WorkspaceError) -> exceptions.APIException:
    """A service's refusal as an answer: 409 for a clash with existing state, 400 otherwise."""
    if isinstance(exc, DuplicateApiKeyName | LastOwnerError):
        return Conflict(str(exc), code="last_owner" if isinstance(exc, LastOwnerError) else "duplicate_name")
    return exceptions.ValidationError({"non_field_errors": [str(exc)]}, code="invalid")


def _flatten(detail: Any, path: str = "") -> list[tuple[str, str, str]]:
    """(param, message, code) for every leaf of a DRF error detail."""
    if isinstance(detail, dict):
        found = []
        for key, value in detail.items():
            name = "" if key in ("non_field_errors", "detail") else str(key)
            sub = f"{path}.{name}" if path and name else (path or name)
            if path and name.isdigit():
                sub = f"{path}[{name}]"
            found.extend(_flatten(value, sub))
        return found
    if isinstance(detail, list):
        found = []
        for index, value in enumerate(detail):
            sub = f"{path}[{index}]" if isinstance(value, dict | list) else path
            found.extend(_flatten(value, sub))
        return found
    return [(path, str(detail), getattr(detail, "code", None) or "invalid")]


def exception_handler(exc: Exception, context: dict) -> Any:
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    leaves = _flatten(response.data) or [("", "Invalid request.", "invalid")]
    param, _, code = leaves[0]
    message = "; ".join(f"{p}: {m}" if p else m for p, m, _ in leaves)
    response.data = {
        "error": {
            "message": message,
            "type": ERROR_TYPES.get(response.status_code, "api_error"),
            "param": param or None,
            "code": code,
        }
    }
    return response


class ErrorBodySerializer(serializers.Serializer):
    message = serializers.CharField()
    type = serializers.CharField()
    param = serializers.CharField(allow_null=True)
    code = serializers.CharField(allow_null=True)


class ErrorSerializer(serializers.Serializer):
    """Every error answer of the management API."""

    error = ErrorBodySerializer()
