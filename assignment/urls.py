from django.urls import path

from assignment.apis import AssignApi, ConfigApi

urlpatterns = [
    path("assign", AssignApi.as_view(), name="assign"),
    path("config", ConfigApi.as_view(), name="config"),
]
