"""`azure_openai_v1_responses`: POST {base}/openai/v1/responses with header `api-key`.

For Responses-only Azure deployments (codex-mini, the gpt-5-codex family, gpt-5-pro per Azure's reasoning
models table). `model` is the deployment name; `?api-version=` only when the route sets one (v1 needs none).
Chat requests are translated both ways (gateway/providers/_responses_family.py).
"""

from __future__ import annotations

from gateway.providers import register
from gateway.providers._responses_family import ResponsesFamilyAdapter

adapter = register(ResponsesFamilyAdapter("azure_openai_v1_responses", azure=True))
