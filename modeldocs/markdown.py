"""The Markdown version of a model page (/docs/models/<slug>.md): the HTML page's sections, in its order, with
the same texts, the same fields table and the same code. Pure: a ModelDoc in, text out."""

from __future__ import annotations

import re

from modeldocs import texts
from modeldocs.selectors import ModelDoc

_FENCE_LANG = {
    "curl": "bash",
    "javascript": "javascript",
    "python": "python",
    "php": "php",
    "csharp": "csharp",
    "go": "go",
}


def fence(code: str, lang: str = "") -> str:
    """A fenced block that no backtick run inside `code` can close early."""
    longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{lang}\n{code.rstrip(chr(10))}\n{ticks}"


def cell(text: str) -> str:
    """A GFM table cell: pipes escaped (also inside code spans), no line breaks."""
    return " ".join(text.split()).replace("|", "\\|")


def render(doc: ModelDoc) -> str:
    model, spec = doc.model, doc.spec
    out: list[str] = []
    add = out.append

    add(f"# {model.name}\n")
    add(f"{texts.DOCS_EYEBROW}\n")
    if model.description:
        add(f"{model.description}\n")

    add(f"## {texts.REFERENCE_EYEBROW}: {model.category or texts.DEFAULT_CATEGORY}\n")
    if model.category_description:
        add(f"{model.category_description}\n")
    add(f"Endpoint: `POST {doc.endpoint}`\n")
    add(f"### {model.name} (`{model.slug}`)\n")
    if model.description:
        add(f"{model.description}\n")
    add(f"- Capabilities: {', '.join(doc.capabilities) or 'none listed'}")
    add(f"- Context window: {spec.context_window:,} tokens")
    add(f"- Max output: {spec.max_output_tokens:,} tokens\n")
    if doc.prices:
        add("| Price | Per 1M tokens |")
        add("| --- | ---: |")
        for price in doc.prices:
            add(f"| {price.label} | {price.shown} |")
        add("")
        add(f"{texts.prices_note(doc.card)}\n")
    else:
        add(f"{texts.NO_PRICE}\n")

    add(f"## {texts.INTEGRATION_EYEBROW}: Connect {model.name}\n")
    add(f"{texts.INTEGRATION_INTRO}\n")
    add(f"`POST {doc.endpoint}`\n")
    add(f"Headers: `Authorization: Bearer {doc.api_key_placeholder}` and `Content-Type: application/json`\n")
    out.extend(f"- {note}" for note in doc.notes)
    add("")

    add(f"## {texts.SCHEMA_EYEBROW}: Request fields\n")
    add(f"{texts.SCHEMA_INTRO}\n")
    add("| Field | Type | Required | Accepted values | Description |")
    add("| --- | --- | --- | --- | --- |")
    for row in doc.fields:
        add(
            f"| `{cell(row.field)}` | {cell(row.type)} | {row.required} | {cell(row.accepted)} | {cell(row.description)} |"
        )
    add("")

    add(f"## {texts.PAYLOAD_EYEBROW}: Payload and response\n")
    add(f"{texts.PAYLOAD_INTRO}\n")
    add("### Example JSON payload\n")
    add(fence(doc.payload_json, "json") + "\n")
    add("### Response shape\n")
    if doc.response is not None:
        add(f"{texts.RESPONSE_INTRO}\n")
        add(fence(doc.completion_json, "json") + "\n")
    else:
        add(f"{texts.NO_RESPONSE}\n")

    add(f"## {texts.EXAMPLES_EYEBROW}: Copy-ready integration code\n")
    add(f"{texts.EXAMPLES_INTRO}\n")
    for example in doc.examples:
        add(f"### {example.label}\n")
        add(f"{example.how_to_run}\n")
        add(fence(example.code, _FENCE_LANG.get(example.slug, "")) + "\n")

    add("## Streaming note\n")
    add(f"{texts.STREAMING_NOTE}\n")
    if doc.response is not None:
        add(f"{texts.STREAMING_EVENTS}\n")
        add(fence(f"{doc.chunk_line}\n\n{doc.usage_chunk_line}\n\ndata: [DONE]", "text") + "\n")

    add(f"## {texts.CHECKLIST_EYEBROW}: Operational notes\n")
    out.extend(f"- {note}" for note in texts.operational_notes(doc.api_key_placeholder))
    return "\n".join(out) + "\n"
