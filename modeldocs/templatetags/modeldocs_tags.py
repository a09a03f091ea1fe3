"""Filters for the model docs pages."""

from __future__ import annotations

import re

from django import template
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

_CODE_SPAN = re.compile(r"`([^`]+)`")


@register.filter
def codespans(text: str) -> SafeString:
    """Escape, then show Markdown `code` spans (as the catalog's descriptions use them) as <code>."""
    return mark_safe(_CODE_SPAN.sub(r"<code>\1</code>", escape(text)))  # noqa: S308 (escaped first)


@register.filter
def thousands(value: int) -> str:
    return f"{int(value):,}"
