from django.urls import path

from assignment.apis import AssignApi, ConfigApi, FeaturesApi, features_by_client_key

# Full paths, mounted first in config/urls.py: apps call these on their own request path, and
# one flat list resolves them in one step instead of four nested includes.
urlpatterns = [
    path("api/v1/assign", AssignApi.as_view(), name="assign"),
    path("api/v1/config", ConfigApi.as_view(), name="config"),
    path("api/v1/features", FeaturesApi.as_view(), name="features"),
    # Where GrowthBook's SDKs fetch their features, the key in the path.
    path("api/features/<str:client_key>", features_by_client_key, name="features-by-client-key"),
]
