"""The OpenAPI document's parts that DRF views do not describe themselves.

- The gateway's endpoints (plain async Django views, not DRF): a static fragment with OpenAI's shapes.
  Each model accepts the fields of its own spec; /docs/models/<id> renders that table, so the
  request schema here lists the common fields and allows the rest.
- The error answers: every operation documents OpenAI's error shape for the statuses it can give.
"""

from __future__ import annotations

from typing import Any

ERROR_REF = {"$ref": "#/components/schemas/Error"}
MANAGEMENT_ERRORS = {
    "400": "Invalid request: `param` names the field.",
    "401": "No credentials, or an unknown, revoked or expired management key.",
    "403": "Your role may not do this here, an inference key was used, or the CSRF check failed.",
    "404": "No such object in a workspace you can reach (another workspace's objects are 404 too).",
}
GATEWAY_ERRORS = {
    "400": "Invalid request for this model (`param` names the field).",
    "401": "Missing, unknown, revoked or expired key.",
    "403": "A valid key that may not do this (a management key, or a model the key may not use).",
    "404": "Unknown model.",
    "413": "Request body too large.",
    "429": "Omixa's rate limit or budget (`code`: rate_limit_exceeded / budget_exceeded), with Retry-After.",
    "502": "Every route failed.",
    "503": "Every route was cooling down or rate limited (Retry-After).",
    "504": "The last route timed out.",
}

ERROR_SCHEMA = {
    "type": "object",
    "description": "Every error answer, in OpenAI's shape.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string", "example": "invalid_request_error"},
                "param": {"type": "string", "nullable": True},
                "code": {"type": "string", "nullable": True},
            },
            "required": ["message", "type", "param", "code"],
        }
    },
    "required": ["error"],
}

_MESSAGE = {
    "type": "object",
    "properties": {
        "role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool"]},
        "content": {
            "nullable": True,
            "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}],
            "description": "Text, or parts: text, image_url, and inline files where the model takes them.",
        },
        "tool_calls": {"type": "array", "items": {"type": "object"}},
        "tool_call_id": {"type": "string"},
    },
    "required": ["role"],
}
_USAGE = {
    "type": "object",
    "properties": {
        "prompt_tokens": {"type": "integer"},
        "completion_tokens": {"type": "integer"},
        "total_tokens": {"type": "integer"},
        "prompt_tokens_details": {"type": "object", "properties": {"cached_tokens": {"type": "integer"}}},
        "completion_tokens_details": {"type": "object", "properties": {"reasoning_tokens": {"type": "integer"}}},
        "cost": {
            "type": "string",
            "nullable": True,
            "format": "decimal",
            "description": "Omixa: the exact cost in the workspace's currency; null when unpriced.",
        },
    },
}
GATEWAY_SCHEMAS: dict[str, Any] = {
    "Error": ERROR_SCHEMA,
    "ChatCompletionRequest": {
        "type": "object",
        "description": (
            "OpenAI's chat completions request. Each model accepts the fields of its own spec, "
            "listed on its docs page (/docs/models/{id}); an unsupported field is a 400 naming it."
        ),
        "properties": {
            "model": {"type": "string", "example": "codex-mini"},
            "messages": {"type": "array", "items": _MESSAGE},
            "stream": {"type": "boolean", "description": "Server-sent events ending with `data: [DONE]`."},
            "stream_options": {"type": "object", "properties": {"include_usage": {"type": "boolean"}}},
            "max_tokens": {"type": "integer", "minimum": 1},
            "max_completion_tokens": {"type": "integer", "minimum": 1},
            "temperature": {"type": "number"},
            "top_p": {"type": "number"},
            "stop": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
            "tools": {"type": "array", "items": {"type": "object"}},
            "tool_choice": {"oneOf": [{"type": "string"}, {"type": "object"}]},
            "response_format": {"type": "object"},
            "reasoning_effort": {"type": "string", "enum": ["low", "medium", "high"]},
            "service_tier": {"type": "string"},
            "show_thinking": {
                "type": "boolean",
                "description": "Omixa: return the reasoning text where a route has it.",
            },
        },
        "required": ["model", "messages"],
        "additionalProperties": True,
    },
    "ChatCompletion": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "object": {"type": "string", "enum": ["chat.completion"]},
            "created": {"type": "integer"},
            "model": {"type": "string"},
            "choices": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "index": {"type": "integer"},
                        "message": _MESSAGE,
                        "finish_reason": {"type": "string", "nullable": True},
                    },
                },
            },
            "usage": _USAGE,
        },
        "required": ["id", "object", "created", "model", "choices"],
    },
    "ResponsesRequest": {
        "type": "object",
        "description": "OpenAI's Responses request (stateless: `previous_response_id` is refused).",
        "properties": {
            "model": {"type": "string"},
            "input": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]},
            "instructions": {"type": "string"},
            "stream": {"type": "boolean"},
            "max_output_tokens": {"type": "integer", "minimum": 1},
            "tools": {"type": "array", "items": {"type": "object"}},
            "reasoning": {"type": "object"},
        },
        "required": ["model", "input"],
        "additionalProperties": True,
    },
    "Response": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "object": {"type": "string", "enum": ["response"]},
            "created_at": {"type": "integer"},
            "model": {"type": "string"},
            "status": {"type": "string"},
            "output": {"type": "array", "items": {"type": "object"}},
            "usage": {"type": "object"},
        },
        "additionalProperties": True,
    },
    "Model": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "object": {"type": "string", "enum": ["model"]},
            "created": {"type": "integer"},
            "owned_by": {"type": "string"},
            "name": {"type": "string"},
            "description": {"type": "string"},
            "context_window": {"type": "integer"},
            "max_output_tokens": {"type": "integer"},
            "capabilities": {"type": "array", "items": {"type": "string"}},
            "reasoning": {"type": "boolean"},
            "pricing": {
                "type": "object",
                "nullable": True,
                "description": "Per 1M tokens, decimal strings.",
                "properties": {
                    "currency": {"type": "string"},
                    "unit": {"type": "string", "enum": ["per_1m_tokens"]},
                    "input": {"type": "string", "format": "decimal"},
                    "cached_input": {"type": "string", "format": "decimal"},
                    "cache_write": {"type": "string", "format": "decimal", "nullable": True},
                    "output": {"type": "string", "format": "decimal"},
                },
            },
        },
        "required": ["id", "object", "created", "owned_by"],
    },
}

_GATEWAY_HEADERS = {
    "x-request-id": {"schema": {"type": "string"}, "description": "Omixa's id of the request."},
    "x-omixa-route": {"schema": {"type": "string"}, "description": "The id of the route that served it."},
    "x-omixa-attempts": {"schema": {"type": "string"}, "description": "route_id:outcome of each attempt."},
}


def _errors(table: dict[str, str]) -> dict[str, Any]:
    return {
        code: {"description": text, "content": {"application/json": {"schema": ERROR_REF}}}
        for code, text in table.items()
    }


def _json(ref: str, description: str, **extra: Any) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": ref}}}, **extra}


def _gateway_paths() -> dict[str, Any]:
    security = [{"inferenceKey": []}]
    tags = ["Gateway (OpenAI-compatible)"]
    model_errors = _errors({k: GATEWAY_ERRORS[k] for k in ("401", "403", "404")})
    return {
        "/api/v1/chat/completions": {
            "post": {
                "operationId": "chat_completions_create",
                "tags": tags,
                "summary": "Create a chat completion",
                "description": "OpenAI-compatible; the `openai` SDKs work with base_url=<host>/api/v1.",
                "security": security,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ChatCompletionRequest"}}},
                },
                "responses": {
                    "200": {
                        "description": "The completion, or with `stream: true` `chat.completion.chunk` events.",
                        "headers": _GATEWAY_HEADERS,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/ChatCompletion"}},
                            "text/event-stream": {"schema": {"type": "string"}},
                        },
                    },
                    **_errors(GATEWAY_ERRORS),
                },
            }
        },
        "/api/v1/responses": {
            "post": {
                "operationId": "responses_create",
                "tags": tags,
                "summary": "Create a response (OpenAI Responses API)",
                "security": security,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ResponsesRequest"}}},
                },
                "responses": {
                    "200": {
                        "description": "The response, or with `stream: true` Responses events.",
                        "headers": _GATEWAY_HEADERS,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Response"}},
                            "text/event-stream": {"schema": {"type": "string"}},
                        },
                    },
                    **_errors(GATEWAY_ERRORS),
                },
            }
        },
        "/api/v1/models": {
            "get": {
                "operationId": "models_list",
                "tags": tags,
                "summary": "List the models this key may use",
                "security": security,
                "responses": {
                    "200": {
                        "description": "OpenAI's list object.",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "object": {"type": "string", "enum": ["list"]},
                                        "data": {"type": "array", "items": {"$ref": "#/components/schemas/Model"}},
                                    },
                                    "required": ["object", "data"],
                                }
                            }
                        },
                    },
                    **_errors({k: GATEWAY_ERRORS[k] for k in ("401", "403")}),
                },
            }
        },
        "/api/v1/models/{model_id}": {
            "get": {
                "operationId": "models_retrieve",
                "tags": tags,
                "summary": "Retrieve a model",
                "security": security,
                "parameters": [{"name": "model_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": _json("#/components/schemas/Model", "The model."), **model_errors},
            }
        },
    }


def add_gateway_and_errors(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    """drf-spectacular postprocessing hook (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"])."""
    components = result.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name, schema in GATEWAY_SCHEMAS.items():
        schemas.setdefault(name, schema)
    components.setdefault("securitySchemes", {})["inferenceKey"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "An inference key of the workspace (`omx_live_…`).",
    }
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/v1/workspaces"):
            continue
        for method, operation in operations.items():
            if method not in ("get", "post", "patch", "put", "delete"):
                continue
            responses = operation.setdefault("responses", {})
            for code, entry in _errors(MANAGEMENT_ERRORS).items():
                responses.setdefault(code, entry)
            if method in ("post", "patch", "delete"):
                responses.setdefault(
                    "409",
                    {
                        "description": "Conflicts with the current state (a duplicate name, the last owner).",
                        "content": {"application/json": {"schema": ERROR_REF}},
                    },
                )
    result["paths"] = {**result.get("paths", {}), **_gateway_paths()}
    return result
