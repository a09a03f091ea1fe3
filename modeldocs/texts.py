"""The fixed sentences of a model page, shared by the HTML template and the Markdown version so the two say the
same thing (the reference page's wording where it has one)."""

from __future__ import annotations

from billing.models import PriceCard

DOCS_EYEBROW = "Developer documentation"
REFERENCE_EYEBROW = "Model Reference"
DEFAULT_CATEGORY = "Models"
INTEGRATION_EYEBROW = "Integration reference"
INTEGRATION_INTRO = (
    "Use Omixa's unified endpoint and your workspace API key. Provider routing, billing, failover, and usage "
    "records are handled by Omixa."
)
SCHEMA_EYEBROW = "Request schema"
SCHEMA_INTRO = (
    "Only send options supported by this model. Required fields and accepted values are listed below. This table "
    "is generated from the spec the gateway validates every request with: a field it does not list is refused "
    "with a 400 naming it."
)
PAYLOAD_EYEBROW = "Ready to send"
PAYLOAD_INTRO = "Start with this model-safe payload and expect the normalized Omixa response shape shown beside it."
RESPONSE_INTRO = (
    'The gateway\'s normalized `chat.completion` for this payload with `"stream": false`, recorded from a real '
    "answer of this model's route family (through a simulated upstream, so the text is a stand-in); "
    "`usage.cost` is the exact cost in USD at the prices above."
)
NO_RESPONSE = "The answer is an OpenAI-compatible `chat.completion` object with `usage`."
EXAMPLES_EYEBROW = "Language examples"
EXAMPLES_INTRO = (
    "Replace the example API key with a workspace key and keep model-specific fields unchanged unless the table "
    "above marks them optional. Each program sends the payload above and prints the answer as it streams."
)
STREAMING_NOTE = (
    'Set `"stream": true` and read Server-Sent Events line by line until `data: [DONE]`. Each event is '
    'OpenAI-compatible `chat.completion.chunk` JSON. Add `"stream_options": {"include_usage": true}` to get a '
    "last event with `usage` (and its `cost`) before `data: [DONE]`. A stream that breaks after it started ends "
    'with an event `{"error": {...}}` instead.'
)
STREAMING_EVENTS = "Events as they arrive (the first with content, the usage event, the end):"
CHECKLIST_EYEBROW = "Production checklist"
NO_PRICE = "No price card is in effect for this model yet."


def operational_notes(api_key: str) -> tuple[str, ...]:
    return (
        f"Authenticate with `Authorization: Bearer {api_key}`.",
        "Omixa handles provider keys, routing, billing, failover, and usage recording behind this endpoint.",
        "Every answer carries `x-request-id`; quote it when you ask about a request.",
        'Errors come in OpenAI\'s shape `{"error": {"message", "type", "param", "code"}}`: 400 invalid '
        "request (the `param` names the field), 401 bad key, 404 unknown model, 429 rate or budget limit (honor "
        "`Retry-After`), 502/503/504 upstream.",
    )


def prices_note(card: PriceCard | None) -> str:
    if card is None:
        return NO_PRICE
    return f"Per 1M tokens in {card.currency}, in effect since {card.effective_from:%Y-%m-%d}."
