"""`openai_responses`: POST {base}/v1/responses with `Authorization: Bearer <route secret>`.

For models or accounts served through the Responses API; chat requests are translated both ways
(gateway/providers/_responses_family.py).
"""

from __future__ import annotations

from gateway.providers import register
from gateway.providers._responses_family import ResponsesFamilyAdapter

adapter = register(ResponsesFamilyAdapter("openai_responses", azure=False))
