"""ASGI lifespan: start the gateway's background work at start-up and flush it at shut-down."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


class GatewayLifespan:
    async def __call__(self, scope, receive, send) -> None:
        from gateway import runtime

        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await runtime.startup()
                except Exception as exc:
                    logger.exception("gateway start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await runtime.shutdown()
                finally:
                    await send({"type": "lifespan.shutdown.complete"})
                return
