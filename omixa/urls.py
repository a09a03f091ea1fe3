from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt

from gateway.views import not_found

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("gateway.urls")),
    path("", include("api.urls")),  # the management API (api/v1/...) and its schema (api/schema/)
    path("docs/", include("modeldocs.urls")),
    path("", include("omixa.ops_urls")),
    path("", include("console.urls")),
]

if settings.OMIXA_SIMULATOR:
    urlpatterns.append(path("simulator/", include("gateway.simulator_urls")))

# Last: any other API path is an OpenAI-shaped 404, never Django's HTML page.
urlpatterns.append(re_path(r"^api/", csrf_exempt(not_found)))
