"""`azure_openai_v1_chat`: POST {base}/openai/v1/chat/completions with header `api-key`.

`model` is the deployment name. `?api-version=` only when the route sets one (v1 GA needs none).
Reasoning deployments take `max_completion_tokens` and reject the sampling fields (providers.md §1);
non-reasoning deployments take `max_tokens`. Azure's content-filter annotations are dropped on the way out.
"""

from __future__ import annotations

from gateway.providers import register
from gateway.providers._openai_family import OpenAIFamilyAdapter

adapter = register(OpenAIFamilyAdapter("azure_openai_v1_chat", azure=True))
