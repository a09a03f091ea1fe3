from django.urls import path, re_path

from gateway import views

urlpatterns = [
    path("chat/completions", views.chat_completions, name="chat-completions"),
    path("responses", views.responses, name="responses"),
    path("models", views.models_list, name="models"),
    path("models/<path:model_id>", views.model_detail, name="model-detail"),
    re_path(r"^(?P<path>(chat|models|responses).*)$", views.not_found),
]
