"""What every management API view shares: JSON in and out, the caller's workspace access, and the
error answers each operation documents."""

from __future__ import annotations

from typing import ClassVar

from rest_framework.generics import GenericAPIView
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer

from api.access import WorkspaceAccess, workspace_access


# A view under /api/v1/workspaces/{slug}/; `capabilities` maps each method to what it needs. (A comment,
# not a docstring: drf-spectacular would copy a docstring into every operation's description.)
class WorkspaceView(GenericAPIView):
    renderer_classes = [JSONRenderer]
    parser_classes = [JSONParser]
    capabilities: ClassVar[dict[str, str | None]] = {}

    def workspace_access(self) -> WorkspaceAccess:
        cached = getattr(self, "_access", None)
        if cached is None:
            capability = self.capabilities.get(self.request.method, self.capabilities.get("*"))
            cached = self._access = workspace_access(self.request, self.kwargs["slug"], capability)
        return cached

    def initial(self, request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        # Before anything else: a stranger learns nothing (404), a member without the right gets 403.
        self.workspace_access()
