"""Offline token estimates for chat requests and answers (no tokenizer data, no downloads).

Why not count exactly: tiktoken fetches its BPE files on first use, which the gateway cannot rely on
(DESIGN.md), and an exact count only matters for the context-window check and for usage when an upstream
sends none. An honest estimate (a few per cent off OpenAI's o200k/cl100k counts on English prose and
code, within about ±20 % on other languages) serves both, and it never pads: it is also billed.

The heuristic mirrors how GPT tokenizers work. They first split text into "pre-tokens" with a regex
(a word with the one space before it, a group of up to three digits, a run of punctuation, a run of
whitespace) and then merge each pre-token's bytes with BPE. Common English words and identifier pieces
become one token each, so the number of pre-tokens is the bulk of the count; only long or rare words split
further. The estimate is therefore a weighted count of pre-token-like runs:

- runs of ASCII letters (0.89 each) plus 1.34 per nine letters inside a run (long words split);
- groups of up to three digits (1.62 each: numbers rarely merge with their neighbours);
- runs of punctuation (0.9 each: a lone mark often merges with the next word, ".append", and o200k has
  single tokens for long runs such as "=====");
- newline runs with their indentation (0.87 each), and runs of two or more spaces after text (1.66:
  alignment); a single space is free, it belongs to the word after it;
- other scripts per character: 0.4 for two-byte UTF-8 letters (accents, Greek, Cyrillic, Arabic, Hebrew),
  0.8 for three-byte characters (CJK, kana, Hangul, typographic quotes and dashes), 1.5 for emoji.

The weights were fitted by least squares to o200k_base counts of English prose (licences, design docs,
docstrings) and code (Python, JavaScript, JSON, C headers), 4,000-character chunks; fitted on half the
documents, the other half came out within ±5 % per document (German/French about -13 %, Russian/Japanese
about +15 %). Each run class is counted with one `bytes.translate` into class letters and `bytes.count`,
all in C: about 2 µs for a short message and 15 µs per KB of text.

Chat framing follows OpenAI's published counting recipe (3 tokens per message plus the role, 1 more for a
`name`, 3 to prime the reply); images use OpenAI's tile arithmetic for an unknown size (85 for `low`, 765
for a 1024x1024 image otherwise); inline files are estimated from their decoded size (text about 4 bytes a
token, PDFs and other binaries about 8); tool schemas are counted from their names, descriptions and
parameter schemas as the model sees them rendered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# --- text ----------------------------------------------------------------------------------------


def _class_table(classes: dict[str, str], default: str = " ") -> bytes:
    table = bytearray(default.encode() * 256)
    for chars, cls in classes.items():
        for ch in chars:
            table[ord(ch)] = ord(cls)
    return bytes(table)


_LOWER = "abcdefghijklmnopqrstuvwxyz"
_UPPER = _LOWER.upper()
_DIGIT = "0123456789"
_PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
# each maps a UTF-8 byte to a class letter so that runs can be counted with bytes.count (C speed)
_LETTERS = _class_table({_LOWER + _UPPER: "a"})
_DIGITS = _class_table({_DIGIT: "0"})
_PUNCTS = _class_table({_PUNCTUATION: "."})
_LAYOUT = _class_table({" \t": " ", "\r\n": "n"}, default="x")
_LEADS = bytes(
    ord("2") if 0xC2 <= b <= 0xDF else ord("3") if 0xE0 <= b <= 0xEF else ord("4") if 0xF0 <= b <= 0xF4 else ord(" ")
    for b in range(256)
)

# weights fitted (least squares) against o200k_base counts of English prose and code; see the docstring
_W_WORD = 0.89  # per run of ASCII letters: most words and identifier pieces are one token
_W_LONG = 1.34  # per 9 letters inside a run: long or rare words split into pieces
_W_NUMBER = 1.62  # per group of up to three digits
_W_PUNCT_RUN = 0.9  # per run of punctuation: a lone mark often merges with its neighbour, runs are tokens
_W_NEWLINE = 0.87  # per newline run, with the indentation after it
_W_SPACES = 1.66  # per run of two or more spaces or tabs after text (alignment)
_W_2BYTE = 0.4  # accented Latin, Greek, Cyrillic, Arabic, Hebrew ... characters
_W_3BYTE = 0.8  # CJK, kana, Hangul, typographic punctuation
_W_4BYTE = 1.5  # emoji and other astral symbols


def estimate_text_tokens(text: str) -> int:
    """Estimated BPE tokens of `text` (see the module docstring for the heuristic)."""
    if not text:
        return 0
    raw = text.encode("utf-8", "surrogatepass")
    letters = raw.translate(_LETTERS)
    total = _W_WORD * (letters.count(b" a") + (letters[0] == 97)) + _W_LONG * letters.count(b"aaaaaaaaa")
    digits = raw.translate(_DIGITS)
    numbers = digits.count(b" 0") + (digits[0] == 48)
    if numbers:
        total += _W_NUMBER * (numbers + (digits.count(b"0") - numbers) / 3)
    puncts = raw.translate(_PUNCTS)
    total += _W_PUNCT_RUN * (puncts.count(b" .") + (puncts[0] == 46))
    layout = raw.translate(_LAYOUT)
    total += _W_NEWLINE * (layout.count(b"n") - layout.count(b"nn")) + _W_SPACES * layout.count(b"x  ")
    if len(raw) != len(text):
        leads = raw.translate(_LEADS)
        total += _W_2BYTE * leads.count(b"2") + _W_3BYTE * leads.count(b"3") + _W_4BYTE * leads.count(b"4")
    return max(1, round(total))


def estimate_output_tokens(text: str) -> int:
    """Estimated tokens of generated text (an answer, or its reasoning summary) when no usage arrived."""
    return estimate_text_tokens(text) if text else 0


# --- chat framing --------------------------------------------------------------------------------

TOKENS_PER_MESSAGE = 3  # <|start|>{role}...<|end|> framing around each message
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3  # <|start|>assistant<|message|> that every reply is primed with
IMAGE_TOKENS_LOW = 85
IMAGE_TOKENS_HIGH = 765  # 85 + 170 x 4 tiles: a 1024x1024 image at `high`/`auto`, size unknown
FILE_ID_TOKENS = 256  # an uploaded file referenced by id: its size is unknown here
TOOLS_OVERHEAD = 12  # the namespace wrapper the tool definitions are rendered in
TOOL_OVERHEAD = 8  # per function: "type name = (_: {...}) => any;" framing
TOOL_CALL_OVERHEAD = 4  # per assistant tool call: id, name, arguments framing

_TEXT_MIME = ("text/", "application/json", "application/xml", "application/javascript", "application/x-")


def _data_url_parts(data: str) -> tuple[str, int]:
    """(mime type, base64 payload length) of a `data:` URL or a bare base64 string."""
    if data.startswith("data:"):
        head, sep, payload = data.partition(",")
        mime = head[5:].split(";", 1)[0].lower()
        return mime, len(payload) if sep else 0
    return "", len(data)


def _file_tokens(file: Mapping[str, Any]) -> int:
    data = file.get("file_data")
    if isinstance(data, str) and data:
        mime, b64_len = _data_url_parts(data)
        size = b64_len * 3 // 4
        if not mime:
            name = file.get("filename")
            if isinstance(name, str) and name.lower().endswith((".txt", ".md", ".csv", ".json", ".py", ".html")):
                mime = "text/plain"
        # plain text: ~4 bytes a token; PDFs and other binaries: extracted text plus a page image for
        # each page, which comes to roughly one token per 8 bytes of file for typical documents
        return max(IMAGE_TOKENS_LOW, size // 4 if mime.startswith(_TEXT_MIME) else size // 8)
    return FILE_ID_TOKENS


def _part_tokens(part: Any, texts: list[str]) -> int:
    """Fixed tokens of a content part; its text goes to `texts`."""
    if not isinstance(part, Mapping):
        return 0
    kind = part.get("type")
    if kind == "image_url":
        image = part.get("image_url")
        detail = image.get("detail") if isinstance(image, Mapping) else None
        return IMAGE_TOKENS_LOW if detail == "low" else IMAGE_TOKENS_HIGH
    if kind == "file":
        file = part.get("file")
        return _file_tokens(file) if isinstance(file, Mapping) else 0
    if kind == "input_audio":
        audio = part.get("input_audio")
        data = audio.get("data") if isinstance(audio, Mapping) else None
        # ~10 tokens a second; compressed speech runs around 4 KB a second
        return max(10, len(data) * 3 // 4 // 400) if isinstance(data, str) else 0
    text = part.get("text") if kind == "text" else part.get("text") or part.get("refusal")
    if isinstance(text, str):
        texts.append(text)
    return 0


def _schema_tokens(value: Any, texts: list[str]) -> int:
    """Structure tokens of a JSON schema as rendered for the model; its keys and strings go to `texts`."""
    if isinstance(value, str):
        texts.append(value)
        return 0
    if isinstance(value, Mapping):
        total = 1
        for key, item in value.items():
            if isinstance(key, str):
                texts.append(key)
            total += 1 + _schema_tokens(item, texts)
        return total
    if isinstance(value, list | tuple):
        return 1 + sum(_schema_tokens(item, texts) + 1 for item in value)
    if value is None or isinstance(value, bool | int | float):
        return 1
    return 0


def _tools_tokens(tools: Iterable[Any] | None, texts: list[str]) -> int:
    if not tools:
        return 0
    total = TOOLS_OVERHEAD
    for tool in tools:
        if not isinstance(tool, Mapping):
            continue
        fn = tool.get("function")
        if not isinstance(fn, Mapping):
            total += _schema_tokens(tool, texts)
            continue
        total += TOOL_OVERHEAD
        for key in ("name", "description"):
            value = fn.get(key)
            if isinstance(value, str):
                texts.append(value)
        params = fn.get("parameters")
        if params is not None:
            total += _schema_tokens(params, texts)
    return total


def _message_tokens(message: Any, texts: list[str]) -> int:
    if not isinstance(message, Mapping):
        return 0
    total = TOKENS_PER_MESSAGE
    if isinstance(message.get("role"), str):
        total += 1
    name = message.get("name")
    if isinstance(name, str):
        total += TOKENS_PER_NAME
        texts.append(name)
    content = message.get("content")
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for part in content:
            total += _part_tokens(part, texts)
    tool_calls = message.get("tool_calls")
    if isinstance(tool_calls, list):
        for call in tool_calls:
            fn = call.get("function") if isinstance(call, Mapping) else None
            if isinstance(fn, Mapping):
                total += TOOL_CALL_OVERHEAD
                for key in ("name", "arguments"):
                    value = fn.get(key)
                    if isinstance(value, str):
                        texts.append(value)
    return total


def _texts_tokens(texts: list[str]) -> int:
    # one pass over all the text (joined by spaces, which cost nothing before a word) instead of one per string
    if not texts:
        return 0
    return estimate_text_tokens(texts[0] if len(texts) == 1 else " ".join(texts))


def estimate_tools_tokens(tools: Iterable[Any] | None) -> int:
    """Tokens the tool declarations add to the prompt."""
    texts: list[str] = []
    total = _tools_tokens(tools, texts)
    return total + _texts_tokens(texts)


def estimate_message_tokens(message: Any) -> int:
    """Tokens of one chat message, framing included (without the reply priming)."""
    texts: list[str] = []
    total = _message_tokens(message, texts)
    return total + _texts_tokens(texts)


def estimate_chat_input_tokens(messages: Iterable[Any], tools: Iterable[Any] | None = None) -> int:
    """Estimated prompt tokens of a chat request: messages with their framing, plus tool declarations."""
    texts: list[str] = []
    total = REPLY_PRIMING
    for message in messages:
        total += _message_tokens(message, texts)
    total += _tools_tokens(tools, texts)
    return total + _texts_tokens(texts)
