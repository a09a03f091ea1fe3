"""gateway.tokens: the offline estimate stays near real BPE counts and counts chat framing, images, files, tools.

The real counts below were measured once with OpenAI's o200k_base encoding (the tokenizer of gpt-4o, gpt-4.1
and the o-series/codex models) and are kept as literals, so the tests need no tokenizer data.
"""

from __future__ import annotations

import base64
import time

import pytest

from gateway.tokens import (
    IMAGE_TOKENS_HIGH,
    IMAGE_TOKENS_LOW,
    estimate_chat_input_tokens,
    estimate_message_tokens,
    estimate_output_tokens,
    estimate_text_tokens,
    estimate_tools_tokens,
)
from tests.reference import REFERENCE_PAYLOAD

PROSE = (
    "The gateway validates every request against the model's own specification before it picks a route. "
    "Unknown fields are rejected with a clear message, so that a client learns about a typo at once instead of "
    "wondering why an option had no effect. Token estimates are used to refuse requests that cannot fit the "
    "context window, and to bill a stream that was cut short before the provider reported its usage."
)
PYTHON = (
    "def fibonacci(n: int) -> list[int]:\n"
    '    """Return the first n Fibonacci numbers."""\n'
    "    sequence = [0, 1]\n"
    "    while len(sequence) < n:\n"
    "        sequence.append(sequence[-1] + sequence[-2])\n"
    "    return sequence[:n]\n\n\n"
    'if __name__ == "__main__":\n'
    "    print(fibonacci(10))\n"
)
JAVASCRIPT = (
    "async function fetchOrders(customerId) {\n"
    "  const response = await fetch(`/api/customers/${customerId}/orders`, {\n"
    "    headers: { Authorization: `Bearer ${token}` },\n"
    "  });\n"
    "  if (!response.ok) throw new Error(`HTTP ${response.status}`);\n"
    "  return (await response.json()).items.map((o) => o.id);\n"
    "}\n"
)
JSON_TEXT = '{"order_id": "A-10293", "status": "shipped", "items": [{"sku": "KB-204", "qty": 2}], "total": 129.90}'

# (text, o200k_base token count)
ENGLISH_AND_CODE = [
    ("Hello! How are you doing today?", 8),
    ("Explain this model in three practical bullet points.", 9),
    (PROSE, 76),
    (PYTHON, 69),
    (JAVASCRIPT, 71),
    (JSON_TEXT, 42),
]
OTHER_LANGUAGES = [
    ("Die Anfrage wurde abgelehnt, weil das Feld nicht unterstützt wird.", 14),
    ("请用三个要点解释这个模型的主要用途。", 12),
    ("Объясните эту модель в трёх практических пунктах.", 14),
]


@pytest.mark.parametrize(("text", "real"), ENGLISH_AND_CODE)
def test_english_and_code_within_20_percent(text: str, real: int) -> None:
    estimate = estimate_text_tokens(text)
    assert abs(estimate - real) <= max(2, 0.2 * real), (estimate, real)


@pytest.mark.parametrize(("text", "real"), OTHER_LANGUAGES)
def test_other_scripts_are_in_the_right_range(text: str, real: int) -> None:
    estimate = estimate_text_tokens(text)
    assert 0.65 * real <= estimate <= 1.35 * real, (estimate, real)


def test_a_long_mixed_document_within_10_percent() -> None:
    long = "\n\n".join(text for text, _ in ENGLISH_AND_CODE[2:]) + "\n\n"
    real_one = 76 + 69 + 71 + 42 + 3 * 1  # blocks plus the "\n\n" separators (one token each)
    estimate = estimate_text_tokens(long * 20)
    assert abs(estimate - 20 * real_one) <= 0.1 * 20 * real_one, (estimate, 20 * real_one)


def test_not_a_chars_over_four_guess() -> None:
    # o200k: a rule of 80 "=" is 1 token, a long rare word 6, eight one-letter words 8 (not 15 chars / 4)
    assert estimate_text_tokens("=" * 80) <= 2
    assert 4 <= estimate_text_tokens("antidisestablishmentarianism") <= 8
    assert 7 <= estimate_text_tokens("a b c d e f g h") <= 9


def test_empty_and_output() -> None:
    assert estimate_text_tokens("") == 0
    assert estimate_output_tokens("") == 0
    assert estimate_output_tokens(PROSE) == estimate_text_tokens(PROSE)
    assert estimate_text_tokens("ok") == 1


def test_chat_framing_follows_openais_recipe() -> None:
    assert estimate_chat_input_tokens([]) == 3  # reply priming
    message = {"role": "user", "content": "Hello! How are you doing today?"}
    assert estimate_message_tokens(message) == 3 + 1 + estimate_text_tokens(message["content"])
    named = {**message, "name": "alice"}
    assert estimate_message_tokens(named) == estimate_message_tokens(message) + 2
    # real o200k count of this conversation with OpenAI's formula (3 per message + role + content, 3 priming): 169
    messages = [
        {"role": "system", "content": "Explain this model in three practical bullet points."},
        {"role": "user", "content": PROSE},
        {"role": "assistant", "content": PYTHON},
    ]
    assert abs(estimate_chat_input_tokens(messages) - 169) <= 0.15 * 169


def test_content_parts_images_and_files() -> None:
    def user(*parts: dict) -> list[dict]:
        return [{"role": "user", "content": list(parts)}]

    base = estimate_chat_input_tokens(user())
    text = {"type": "text", "text": PROSE}
    assert estimate_chat_input_tokens(user(text)) == base + estimate_text_tokens(PROSE)
    low = {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}}
    high = {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "high"}}
    auto = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    assert estimate_chat_input_tokens(user(low)) == base + IMAGE_TOKENS_LOW == base + 85
    assert estimate_chat_input_tokens(user(high)) == base + IMAGE_TOKENS_HIGH == base + 765
    assert estimate_chat_input_tokens(user(auto)) == base + IMAGE_TOKENS_HIGH
    # inline files by decoded size: text about 4 bytes a token, PDFs about 8
    text_file = base64.b64encode(b"x" * 40_000).decode()
    part = {"type": "file", "file": {"filename": "notes.txt", "file_data": f"data:text/plain;base64,{text_file}"}}
    assert estimate_chat_input_tokens(user(part)) == base + 10_000
    pdf = {"type": "file", "file": {"filename": "a.pdf", "file_data": f"data:application/pdf;base64,{text_file}"}}
    assert estimate_chat_input_tokens(user(pdf)) == base + 5_000
    by_id = {"type": "file", "file": {"file_id": "file-abc"}}
    assert estimate_chat_input_tokens(user(by_id)) > base


def test_tool_schemas_and_tool_calls_are_counted() -> None:
    tools = REFERENCE_PAYLOAD["tools"]
    messages = [{"role": "user", "content": "Where is order A-10293?"}]
    with_tools = estimate_chat_input_tokens(messages, tools)
    assert abs(with_tools - estimate_chat_input_tokens(messages) - estimate_tools_tokens(tools)) <= 1
    # OpenAI bills roughly 40-60 tokens for this one small function; stay in that neighbourhood
    assert 25 <= estimate_tools_tokens(tools) <= 80
    assert estimate_tools_tokens(None) == estimate_tools_tokens([]) == 0
    call = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "lookup_order", "arguments": '{"order_id":"A-1"}'},
            }
        ],
    }
    assert estimate_message_tokens(call) > estimate_message_tokens({"role": "assistant", "content": None})


def test_fast_enough_for_the_hot_path() -> None:
    text = PROSE * 250  # ~100 KB
    start = time.perf_counter()
    for _ in range(10):
        estimate_text_tokens(text)
    per_call = (time.perf_counter() - start) / 10
    assert per_call < 0.05, per_call  # ~2 ms measured; generous for a busy CI machine
