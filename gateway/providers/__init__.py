"""Provider adapters, one module per endpoint type, looked up by endpoint type."""

from __future__ import annotations

from gateway.providers.base import Adapter

_REGISTRY: dict[str, Adapter] = {}


def register(adapter: Adapter) -> Adapter:
    _REGISTRY[adapter.endpoint_type] = adapter
    return adapter


def get_adapter(endpoint_type: str) -> Adapter | None:
    if not _REGISTRY:
        _load()
    return _REGISTRY.get(endpoint_type)


def supported_endpoint_types() -> list[str]:
    if not _REGISTRY:
        _load()
    return sorted(_REGISTRY)


def _load() -> None:
    # Importing a module registers its adapter.
    from gateway.providers import azure_openai_v1_chat, openai_chat  # noqa: F401
