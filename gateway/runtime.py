"""Process-wide gateway state: started once per worker process by the ASGI lifespan."""

from __future__ import annotations


async def startup() -> None:
    return None


async def shutdown() -> None:
    return None
