"""The Responses event sequence, written from the pipeline's chat stream (`POST /api/v1/responses`, stream).

The pipeline streams `chat.completion.chunk` events (with Omixa's usage chunk, since the ingress asks for
it) ending with `data: [DONE]`, or an error event when the upstream broke after the stream began. Each chunk
becomes what OpenAI's Responses stream sends for it: `response.created` and `response.in_progress` first;
per output item `response.output_item.added`, its part events (`response.reasoning_summary_part.added` /
`response.content_part.added`), deltas (`response.reasoning_summary_text.delta`, `response.output_text.delta`,
`response.refusal.delta`, `response.function_call_arguments.delta`), their `.done` events and
`response.output_item.done`; then `response.completed` (or `response.incomplete` at the output limit) with
the whole response and its usage, cost included. A broken upstream ends with `response.failed`. Every event
carries its `sequence_number`; there is no `[DONE]`, as in OpenAI's Responses streams.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from django.http import HttpResponse, StreamingHttpResponse

from gateway import responses_api
from gateway.providers._sse import SSEFramer
from gateway.responses_api import Context, base_response, finish, response_id, usage_object


class ResponsesStreamWriter:
    """Chat chunk dicts in, Responses SSE bytes out. One per stream."""

    def __init__(self, ctx: Context, request_id: str, model: str, created: int) -> None:
        self.rid = response_id(request_id)
        self.tag = self.rid[5:]
        self.response = base_response(ctx, self.rid, model, created)
        self.seq = 0
        self.items: list[dict[str, Any]] = []  # output items, in order
        self.open: dict[str, Any] | None = None  # the message or reasoning item being written
        self.calls: dict[int, dict[str, Any]] = {}  # chat tool-call index → its function_call item
        self.part: dict[str, Any] | None = None  # the open message's current content part
        self.usage: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        self.ended = False

    # -- framing ---------------------------------------------------------------------------------

    def _event(self, out: list[bytes], kind: str, **fields: Any) -> None:
        payload = {"type": kind, "sequence_number": self.seq, **fields}
        self.seq += 1
        out.append(b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n")

    def start(self) -> bytes:
        out: list[bytes] = []
        self._event(out, "response.created", response=self.response)
        self._event(out, "response.in_progress", response=self.response)
        return b"".join(out)

    # -- items -----------------------------------------------------------------------------------

    def _add(self, out: list[bytes], item: dict[str, Any]) -> int:
        index = len(self.items)
        self.items.append(item)
        self._event(out, "response.output_item.added", output_index=index, item={**item, "status": "in_progress"})
        return index

    def _close_part(self, out: list[bytes]) -> None:
        item, part = self.open, self.part
        if item is None or part is None:
            return
        ids = {"item_id": item["id"], "output_index": item["_index"], "content_index": len(item["content"]) - 1}
        if part["type"] == "output_text":
            self._event(out, "response.output_text.done", **ids, text=part["text"], logprobs=[])
        else:
            self._event(out, "response.refusal.done", **ids, refusal=part["refusal"])
        self._event(out, "response.content_part.done", **ids, part=part)
        self.part = None

    def _close_open(self, out: list[bytes]) -> None:
        item = self.open
        if item is None:
            return
        if item["type"] == "reasoning":
            ids = {"item_id": item["id"], "output_index": item["_index"], "summary_index": 0}
            part = item["summary"][0]
            self._event(out, "response.reasoning_summary_text.done", **ids, text=part["text"])
            self._event(out, "response.reasoning_summary_part.done", **ids, part=part)
        else:
            self._close_part(out)
            item["status"] = "incomplete" if self.finish_reason in ("length", "content_filter") else "completed"
        self._event(out, "response.output_item.done", output_index=item["_index"], item=_public(item))
        self.open = None

    def _open(self, out: list[bytes], kind: str) -> dict[str, Any]:
        if self.open is not None and self.open["type"] == kind:
            return self.open
        self._close_open(out)
        if kind == "reasoning":
            item: dict[str, Any] = {"id": f"rs_{self.tag}_{len(self.items)}", "type": "reasoning", "summary": []}
        else:
            item = {
                "id": f"msg_{self.tag}_{len(self.items)}",
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
        item["_index"] = self._add(out, _public(item))
        self.items[item["_index"]] = item
        if kind == "reasoning":
            part = {"type": "summary_text", "text": ""}
            item["summary"].append(part)
            ids = {"item_id": item["id"], "output_index": item["_index"], "summary_index": 0}
            self._event(out, "response.reasoning_summary_part.added", **ids, part=dict(part))
        self.open = item
        return item

    def _text(self, out: list[bytes], kind: str, delta: str) -> None:
        item = self._open(out, "message")
        if self.part is None or self.part["type"] != kind:
            self._close_part(out)
            part = (
                {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                if kind == "output_text"
                else {"type": "refusal", "refusal": ""}
            )
            item["content"].append(part)
            self.part = part
            ids = {"item_id": item["id"], "output_index": item["_index"], "content_index": len(item["content"]) - 1}
            self._event(out, "response.content_part.added", **ids, part=dict(part))
        ids = {"item_id": item["id"], "output_index": item["_index"], "content_index": len(item["content"]) - 1}
        if kind == "output_text":
            self.part["text"] += delta
            self._event(out, "response.output_text.delta", **ids, delta=delta, logprobs=[])
        else:
            self.part["refusal"] += delta
            self._event(out, "response.refusal.delta", **ids, delta=delta)

    def _tool_call(self, out: list[bytes], call: dict[str, Any]) -> None:
        index = call.get("index", 0)
        fn = call.get("function") or {}
        item = self.calls.get(index)
        if item is None:
            self._close_open(out)
            item = {
                "id": f"fc_{self.tag}_{len(self.items)}",
                "type": "function_call",
                "status": "in_progress",
                "arguments": "",
                "call_id": call.get("id"),
                "name": fn.get("name"),
            }
            item["_index"] = self._add(out, _public(item))
            self.items[item["_index"]] = item
            self.calls[index] = item
        arguments = fn.get("arguments")
        if arguments:
            item["arguments"] += arguments
            self._event(
                out,
                "response.function_call_arguments.delta",
                item_id=item["id"],
                output_index=item["_index"],
                delta=arguments,
            )

    def _close_calls(self, out: list[bytes]) -> None:
        for item in self.calls.values():
            if item["status"] == "completed":
                continue
            item["status"] = "completed"
            ids = {"item_id": item["id"], "output_index": item["_index"]}
            self._event(out, "response.function_call_arguments.done", **ids, arguments=item["arguments"])
            self._event(out, "response.output_item.done", output_index=item["_index"], item=_public(item))

    # -- chunks ----------------------------------------------------------------------------------

    def feed(self, chunk: dict[str, Any]) -> bytes:
        out: list[bytes] = []
        if "error" in chunk and not chunk.get("choices"):
            return self.fail(chunk["error"])
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        if chunk.get("service_tier"):
            self.response["service_tier"] = chunk["service_tier"]
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("reasoning_content"):
                item = self._open(out, "reasoning")
                item["summary"][0]["text"] += delta["reasoning_content"]
                ids = {"item_id": item["id"], "output_index": item["_index"], "summary_index": 0}
                self._event(out, "response.reasoning_summary_text.delta", **ids, delta=delta["reasoning_content"])
            if delta.get("content"):
                self._text(out, "output_text", delta["content"])
            if delta.get("refusal"):
                self._text(out, "refusal", delta["refusal"])
            for call in delta.get("tool_calls") or ():
                self._tool_call(out, call)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return b"".join(out)

    def complete(self) -> bytes:
        """The chat stream's [DONE]: close what is open, then the terminal event with the whole response."""
        out: list[bytes] = []
        self._close_open(out)
        self._close_calls(out)
        finish(self.response, self.finish_reason)
        self.response["output"] = [_public(item) for item in self.items]
        self.response["usage"] = usage_object(self.usage)
        kind = "response.completed" if self.response["status"] == "completed" else "response.incomplete"
        self._event(out, kind, response=self.response)
        self.ended = True
        return b"".join(out)

    def fail(self, error: dict[str, Any]) -> bytes:
        """The upstream broke after the stream began: `response.failed` with Omixa's error."""
        out: list[bytes] = []
        self.response["status"] = "failed"
        self.response["error"] = {"code": error.get("code") or "server_error", "message": error.get("message") or ""}
        self.response["output"] = [_public(item) for item in self.items]
        self._event(out, "response.failed", response=self.response)
        self.ended = True
        return b"".join(out)


def _public(item: dict[str, Any]) -> dict[str, Any]:
    """An item without the writer's bookkeeping (copied: later deltas must not change what was sent)."""
    out = {k: v for k, v in item.items() if k != "_index"}
    if "content" in out:
        out["content"] = [dict(p) for p in out["content"]]
    if "summary" in out:
        out["summary"] = [dict(p) for p in out["summary"]]
    return out


async def events(chat_stream: AsyncIterator[bytes], writer: ResponsesStreamWriter) -> AsyncIterator[bytes]:
    """Re-shape the pipeline's chat stream. Closing this closes the pipeline's stream (its usage record
    then says how the stream ended), whatever way the client left."""
    framer = SSEFramer()
    started = False
    try:
        async for raw in chat_stream:
            out = [] if started else [writer.start()]
            started = True
            for payload in framer.feed(raw):
                if writer.ended:
                    break
                if payload == b"[DONE]":
                    out.append(writer.complete())
                else:
                    out.append(writer.feed(orjson.loads(payload)))
            data = b"".join(out)
            if data:
                yield data
    finally:
        aclose = getattr(chat_stream, "aclose", None)
        if aclose is not None:
            await aclose()


def reshape(answer: HttpResponse, ctx: Context, request_id: str, model: str, created: int) -> HttpResponse:
    """The pipeline's answer in the Responses shape: a stream's events re-written, a JSON answer re-shaped,
    an error (OpenAI's shape already) passed on unchanged."""
    if not isinstance(answer, StreamingHttpResponse):
        return responses_api.answer(answer, ctx, request_id)
    # The pipeline's own generator (Django keeps it as given), so closing ours closes it, not a wrapper.
    chat_stream = getattr(answer, "_iterator", None) or answer.streaming_content
    writer = ResponsesStreamWriter(ctx, request_id, model, created)
    streaming = StreamingHttpResponse(events(chat_stream, writer), content_type="text/event-stream")
    responses_api.copy_headers(answer, streaming)
    streaming.omixa_abandon = getattr(answer, "omixa_abandon", None)  # see pipeline._open_stream
    return streaming
