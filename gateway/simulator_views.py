"""The offline simulated provider (`make run`): Azure OpenAI v1 and OpenAI chat endpoints, in process.

    POST /simulator/openai/v1/chat/completions   Azure shape; `api-key` header (or `Authorization: Bearer`)
    POST /simulator/openai/deployments/<name>/chat/completions?api-version=...   Azure's older path form
    POST /simulator/v1/chat/completions          OpenAI shape; `Authorization: Bearer`

Any non-empty key is accepted except keys starting with `invalid` (→ the provider's real 401). Deployment
names drive demo behaviour: reasoning when the name looks like one (o1/o3/o4/gpt-5/codex), `sim-error-<status>`
answers that provider error, a name containing `slow` waits 50 ms between stream events. Generation is
`gateway.simulator` (deterministic, no model behind it).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import orjson
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from gateway.simulator import (
    Flavor,
    ProviderError,
    error_for,
    is_reasoning_deployment,
    openai_error,
    simulate,
    unauthorized,
    validate,
)

SLOW_CHUNK_DELAY = 0.05


def _json(status: int, body: object, headers: dict[str, str] | None = None) -> HttpResponse:
    resp = HttpResponse(orjson.dumps(body), status=status, content_type="application/json")
    for key, value in (headers or {}).items():
        resp[key] = value
    return resp


def _key(request: HttpRequest, flavor: Flavor) -> str:
    if flavor == "azure":
        key = request.headers.get("api-key", "")
        if key:
            return key
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() if auth[:7].lower() == "bearer " else ""


async def _serve(request: HttpRequest, flavor: Flavor, deployment: str | None = None) -> HttpResponse:
    request_id = str(uuid.uuid4())
    id_header = {"apim-request-id" if flavor == "azure" else "x-request-id": request_id}
    if request.method != "POST":
        return _json(
            405,
            {"error": {"message": "Method not allowed.", "type": "invalid_request_error", "param": None, "code": None}},
        )
    try:
        key = _key(request, flavor)
        if not key or key.startswith("invalid"):
            raise unauthorized(flavor)
        try:
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            raise openai_error(400, "We could not parse the JSON body of your request.") from None
        if deployment is not None and isinstance(body, dict):
            body["model"] = deployment  # the path names the deployment; the body's model is ignored
        name = str(body.get("model", "")) if isinstance(body, dict) else ""
        if name.startswith("sim-error-"):
            status = name.removeprefix("sim-error-").split("-")[0]
            raise error_for(int(status) if status.isdigit() else 500, flavor, retry_after=1)
        reasoning = is_reasoning_deployment(name)
        validate(body, flavor, reasoning=reasoning)
    except ProviderError as err:
        return _json(err.status, err.body, {**err.headers, **id_header})

    answer = simulate(body, flavor=flavor, reasoning=reasoning)
    if not body.get("stream"):
        return _json(200, answer.completion(), id_header)

    events = answer.sse()
    delay = SLOW_CHUNK_DELAY if "slow" in name else 0.0

    async def stream() -> AsyncIterator[bytes]:
        for event in events:
            if delay:
                await asyncio.sleep(delay)
            yield event

    resp = StreamingHttpResponse(stream(), content_type="text/event-stream; charset=utf-8")
    resp["cache-control"] = "no-cache"
    for key, value in id_header.items():
        resp[key] = value
    return resp


@csrf_exempt
async def azure_chat_completions(request: HttpRequest) -> HttpResponse:
    return await _serve(request, "azure")


@csrf_exempt
async def azure_deployment_chat_completions(request: HttpRequest, deployment: str) -> HttpResponse:
    return await _serve(request, "azure", deployment)


@csrf_exempt
async def openai_chat_completions(request: HttpRequest) -> HttpResponse:
    return await _serve(request, "openai")
