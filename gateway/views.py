"""The gateway's HTTP endpoints: thin async views (parse, authenticate, validate, hand over).

They are served by a Django handler without middleware (omixa/asgi.py), so nothing here may rely
on sessions, CSRF or `request.user`.
"""

from __future__ import annotations

import logging
import time

import orjson
import uuid_utils
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse

from gateway import metrics, pipeline, responses_api, responses_stream, runtime
from gateway.auth import authenticate
from gateway.errors import GatewayError
from gateway.models_api import model_object
from gateway.snapshot import KeyEntry, ModelEntry
from gateway.spec import validate_chat
from gateway.types import RequestRejected
from omixa.logging import bind_request_id

logger = logging.getLogger(__name__)


def new_request_id() -> str:
    """Mint the request's id and bind it to the current task's log lines (omixa/logging.py).

    Time-ordered (UUIDv7): unique keys can include the month when usage tables are partitioned.
    """
    request_id = str(uuid_utils.uuid7())
    bind_request_id(request_id)
    return request_id


def too_large() -> GatewayError:
    limit = settings.OMIXA_MAX_REQUEST_BYTES
    return GatewayError(413, f"The request body is larger than {limit} bytes.", code="request_too_large")


def _body(request: HttpRequest) -> bytes:
    limit = settings.OMIXA_MAX_REQUEST_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    too_big = too_large()
    if declared > limit:
        raise too_big
    try:
        body = request.body
    except RequestDataTooBig:
        raise too_big from None
    if len(body) > limit:
        raise too_big
    return body


def _parse(body: bytes) -> dict:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise GatewayError(
            400,
            "We could not parse the JSON body of your request. The body must be a JSON object.",
            code="invalid_json",
        ) from None
    if not isinstance(payload, dict):
        raise GatewayError(400, "The request body must be a JSON object.", code="invalid_json")
    return payload


def _model_for(payload: dict, key: KeyEntry, rt: runtime.Runtime) -> ModelEntry:
    slug = payload.get("model")
    if slug is None:
        raise GatewayError(
            400, "Missing required parameter: 'model'.", param="model", code="missing_required_parameter"
        )
    if not isinstance(slug, str):
        raise GatewayError(400, "Invalid type for 'model': expected a string.", param="model", code="invalid_type")
    model = rt.snapshot.models.get(slug)
    if model is None:
        raise GatewayError(
            404,
            f"The model '{slug}' does not exist or you do not have access to it.",
            param="model",
            code="model_not_found",
        )
    if key.allowed_models is not None and slug not in key.allowed_models:
        raise GatewayError(
            403, f"This API key may not use the model '{slug}'.", param="model", code="model_not_allowed"
        )
    return model


async def _serve(request: HttpRequest, translate, answer) -> HttpResponse:
    """The chat pipeline behind an ingress shape: `translate(payload, spec)` → (ChatRequest, context),
    `answer(response, context, request_id, model, created)` → what the client gets."""
    started, started_wall = time.perf_counter(), time.time()
    request_id = new_request_id()
    if request.method != "POST":
        return _method_not_allowed(request_id, "POST")
    try:
        rt = await runtime.get()
        body = _body(request)
        key = await authenticate(request.headers.get("authorization"), rt)
        payload = _parse(body)
        model = _model_for(payload, key, rt)
        metrics.note_model(model.slug)
        chat, ctx = translate(payload, model.spec)
        call = pipeline.Call(
            request_id=request_id,
            client_request_id=(request.headers.get("x-request-id") or "")[:200],
            started=started,
            started_wall=started_wall,
            key=key,
            model=model,
            chat=chat,
            rt=rt,
        )
        return answer(await pipeline.run(call), ctx, request_id, model.slug, int(started_wall))
    except RequestRejected as exc:
        return GatewayError(exc.status, exc.message, param=exc.param, code=exc.code).response(request_id)
    except GatewayError as exc:
        return exc.response(request_id)
    except Exception:
        return _internal_error(request_id)


def _chat(payload: dict, spec) -> tuple:
    return validate_chat(payload, spec), None


def _as_is(response: HttpResponse, *_) -> HttpResponse:
    return response


@metrics.counted
async def chat_completions(request: HttpRequest) -> HttpResponse:
    return await _serve(request, _chat, _as_is)


@metrics.counted
async def responses(request: HttpRequest) -> HttpResponse:
    """OpenAI's Responses API shape, served by the chat pipeline (gateway/responses_api.py)."""
    return await _serve(request, responses_api.to_chat, responses_stream.reshape)


async def models_list(request: HttpRequest) -> HttpResponse:
    request_id = new_request_id()
    if request.method != "GET":
        return _method_not_allowed(request_id, "GET")
    try:
        rt = await runtime.get()
        key = await authenticate(request.headers.get("authorization"), rt)
        data = [
            model_object(model)
            for slug, model in sorted(rt.snapshot.models.items())
            if key.allowed_models is None or slug in key.allowed_models
        ]
        return _json({"object": "list", "data": data}, request_id)
    except GatewayError as exc:
        return exc.response(request_id)
    except Exception:
        return _internal_error(request_id)


async def model_detail(request: HttpRequest, model_id: str) -> HttpResponse:
    request_id = new_request_id()
    if request.method != "GET":
        return _method_not_allowed(request_id, "GET")
    try:
        rt = await runtime.get()
        key = await authenticate(request.headers.get("authorization"), rt)
        model = rt.snapshot.models.get(model_id)
        if model is None or (key.allowed_models is not None and model_id not in key.allowed_models):
            raise GatewayError(
                404,
                f"The model '{model_id}' does not exist or you do not have access to it.",
                param="model",
                code="model_not_found",
            )
        return _json(model_object(model), request_id)
    except GatewayError as exc:
        return exc.response(request_id)
    except Exception:
        return _internal_error(request_id)


async def not_found(request: HttpRequest, path: str = "") -> HttpResponse:
    return GatewayError(404, f"Unknown path: {request.method} {request.path}", code="unknown_url").response(
        new_request_id()
    )


def _json(payload: dict, request_id: str) -> HttpResponse:
    response = HttpResponse(orjson.dumps(payload), content_type="application/json")
    response["x-request-id"] = request_id
    return response


def _internal_error(request_id: str) -> HttpResponse:
    # A bug of ours: still OpenAI's shape and the request id (never Django's HTML 500 page); the
    # traceback goes to the log (through the redaction filter), not to the client.
    logger.exception("gateway: unexpected error in request %s", request_id)
    message = f"The server had an error while processing your request (request id {request_id})."
    return GatewayError(500, message, code="internal_error").response(request_id)


def _method_not_allowed(request_id: str, allowed: str) -> HttpResponse:
    error = GatewayError(
        405, f"Method not allowed. Use {allowed}.", code="method_not_allowed", headers={"Allow": allowed}
    )
    return error.response(request_id)
