"""`openai_chat`: POST {base}/v1/chat/completions with `Authorization: Bearer <route secret>`.

`max_completion_tokens` always (OpenAI deprecated `max_tokens`, and reasoning models reject it);
`stream_options.include_usage` always asked upstream when streaming.
"""

from __future__ import annotations

from gateway.providers import register
from gateway.providers._openai_family import OpenAIFamilyAdapter

adapter = register(OpenAIFamilyAdapter("openai_chat", azure=False))
