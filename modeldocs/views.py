"""The model docs pages: public (no sign-in), like the product's own pages. Thin: read, render."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_safe

from modeldocs import markdown, texts
from modeldocs.selectors import ModelDoc, catalog, model_doc


def _doc(request: HttpRequest, slug: str) -> ModelDoc | None:
    return model_doc(slug=slug, at=timezone.now(), base_url=request.build_absolute_uri("/"))


def _not_found(request: HttpRequest, slug: str) -> HttpResponse:
    """A 404 that says which models exist, so a mistyped slug is one click from the right page."""
    entries = catalog(at=timezone.now())
    return render(request, "modeldocs/not_found.html", {"slug": slug, "entries": entries, "texts": texts}, status=404)


@require_safe
def model_index(request: HttpRequest) -> HttpResponse:
    entries = catalog(at=timezone.now())
    return render(
        request,
        "modeldocs/index.html",
        {"entries": entries, "endpoint": request.build_absolute_uri("/api/v1/chat/completions"), "texts": texts},
    )


@require_safe
def model_page(request: HttpRequest, slug: str) -> HttpResponse:
    doc = _doc(request, slug)
    if doc is None:
        return _not_found(request, slug)
    return render(
        request,
        "modeldocs/model.html",
        {
            "doc": doc,
            "texts": texts,
            "prices_note": texts.prices_note(doc.card),
            "operational_notes": texts.operational_notes(doc.api_key_placeholder),
        },
    )


@require_safe
def model_markdown(request: HttpRequest, slug: str) -> HttpResponse:
    doc = _doc(request, slug)
    if doc is None:
        return HttpResponse(
            f"# Not found\n\nNo model is named `{slug}`. The catalog: /docs/models/\n",
            content_type="text/markdown; charset=utf-8",
            status=404,
        )
    return HttpResponse(markdown.render(doc), content_type="text/markdown; charset=utf-8")
