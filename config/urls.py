from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from assignment.urls import urlpatterns as assignment_urlpatterns
from config.health import healthz, readyz
from events.urls import urlpatterns as events_urlpatterns

# The machine API (settings.MACHINE_API_PATHS), flat and first: it resolves in one step.
machine_api_urlpatterns = [*assignment_urlpatterns, *events_urlpatterns]

api_v1 = [
    path("", include("experiments.urls")),
    path("", include("analysis.urls")),
    path("", include("audit.urls")),
]

urlpatterns = [
    *machine_api_urlpatterns,
    # The landing page is the results dashboard (the admin asks for a login first).
    path(
        "",
        RedirectView.as_view(pattern_name="admin:experiments_experiment_dashboard"),
        name="home",
    ),
    path("admin/experiments/experiment/", include("analysis.export_views")),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
]
