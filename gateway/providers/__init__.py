"""Provider adapters, one module per endpoint type, looked up by endpoint type."""

from __future__ import annotations

from gateway.providers.base import Adapter

_REGISTRY: dict[str, Adapter] = {}
_loaded = False


def register(adapter: Adapter) -> Adapter:
    _REGISTRY[adapter.endpoint_type] = adapter
    return adapter


def get_adapter(endpoint_type: str) -> Adapter | None:
    if not _loaded:
        _load()
    return _REGISTRY.get(endpoint_type)


def supported_endpoint_types() -> list[str]:
    if not _loaded:
        _load()
    return sorted(_REGISTRY)


def _load() -> None:
    """Import every adapter module of this package; importing one registers its adapter. Adding a
    family is one new module here (private helpers start with `_`)."""
    global _loaded
    import importlib
    import pkgutil

    _loaded = True
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_") and module.name != "base":
            importlib.import_module(f"{__name__}.{module.name}")
