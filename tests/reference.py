"""What the reference product page (shared/reference/codex-mini-model-page.txt) publishes, copied
verbatim once for every test that holds Omixa to it."""

from __future__ import annotations

import json

# The page's "Example JSON payload", verbatim.
REFERENCE_PAYLOAD = json.loads(
    """
{
    "model": "codex-mini",
    "messages": [
        {
            "role": "system",
            "content": "You are a concise API assistant."
        },
        {
            "role": "user",
            "content": "Explain this model in three practical bullet points."
        }
    ],
    "stream": true,
    "max_tokens": 2048,
    "reasoning_effort": "low",
    "show_thinking": true,
    "service_tier": "priority",
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "lookup_order",
                "description": "Return order status by ID.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "order_id": {
                            "type": "string"
                        }
                    },
                    "required": [
                        "order_id"
                    ]
                }
            }
        }
    ],
    "tool_choice": "auto"
}
"""
)
