from django.urls import path

from assignment.apis import AssignApi, ConfigApi, FeaturesApi, features_by_client_key

urlpatterns = [
    path("assign", AssignApi.as_view(), name="assign"),
    path("config", ConfigApi.as_view(), name="config"),
    path("features", FeaturesApi.as_view(), name="features"),
]

# Mounted at /api/features/ (config/urls.py), the path GrowthBook's SDKs fetch.
sdk_urlpatterns = [
    path("<str:client_key>", features_by_client_key, name="features-by-client-key"),
]
