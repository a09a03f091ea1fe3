"""The model docs pages: public (no sign-in), like the product's own pages. Thin: read, render."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_safe

from modeldocs import markdown, texts
from modeldocs.selectors import ModelDoc, catalog, model_doc


def _doc_or_404(request: HttpRequest, slug: str) -> ModelDoc:
    doc = model_doc(slug=slug, at=timezone.now(), base_url=request.build_absolute_uri("/"))
    if doc is None:
        raise Http404(f"No model named {slug!r}")
    return doc


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
    doc = _doc_or_404(request, slug)
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
    doc = _doc_or_404(request, slug)
    return HttpResponse(markdown.render(doc), content_type="text/markdown; charset=utf-8")
