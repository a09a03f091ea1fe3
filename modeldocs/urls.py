app_name = "modeldocs"
urlpatterns: list = []
