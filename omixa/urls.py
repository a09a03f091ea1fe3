from django.conf import settings
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("gateway.urls")),
]

if settings.OMIXA_SIMULATOR:
    urlpatterns.append(path("simulator/", include("gateway.simulator_urls")))
