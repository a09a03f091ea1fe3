from django.contrib.auth import views as auth_views
from django.urls import path

from console import views

app_name = "console"

urlpatterns = [
    path(
        "login/",
        auth_views.LoginView.as_view(template_name="console/login.html", redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(next_page="console:login"), name="logout"),
    path("", views.home, name="home"),
    path("switch/", views.switch, name="switch"),
    path("w/<slug:slug>/", views.dashboard, name="dashboard"),
    path("w/<slug:slug>/keys/", views.keys, name="keys"),
    path("w/<slug:slug>/keys/new/", views.key_create, name="key_create"),
    path("w/<slug:slug>/keys/<int:key_id>/revoke/", views.key_revoke, name="key_revoke"),
    path("w/<slug:slug>/usage/", views.usage, name="usage"),
    path("w/<slug:slug>/invoices/", views.invoices, name="invoices"),
    path("w/<slug:slug>/invoices/<int:invoice_id>/", views.invoice_detail, name="invoice"),
    path("w/<slug:slug>/invoices/<int:invoice_id>.csv", views.invoice_csv_download, name="invoice_csv"),
]
