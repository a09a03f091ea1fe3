from django.urls import re_path
from django.views.generic import RedirectView

from modeldocs import views

app_name = "modeldocs"
# Catalog slugs may hold dots (gpt-4.1-mini), so the `.md` suffix is matched first, non-greedily.
_SLUG = r"(?P<slug>[A-Za-z0-9][A-Za-z0-9._-]*?)"
urlpatterns = [
    re_path(r"^$", RedirectView.as_view(pattern_name="modeldocs:index", permanent=False)),
    re_path(r"^models/$", views.model_index, name="index"),
    re_path(rf"^models/{_SLUG}\.md$", views.model_markdown, name="markdown"),
    re_path(rf"^models/{_SLUG}$", views.model_page, name="model"),
]
