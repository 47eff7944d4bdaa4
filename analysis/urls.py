from django.urls import path

from analysis import apis, export_views

urlpatterns = [
    path("stats", apis.StatsApi.as_view(), name="stats"),
    path("stats/boundaries", apis.BoundariesApi.as_view(), name="stats-boundaries"),
    path("experiments/<str:key>/results", apis.ResultsApi.as_view(), name="experiment-results"),
    path("experiments/<str:key>/analyze", apis.AnalyzeApi.as_view(), name="experiment-analyze"),
    path(
        "experiments/<str:key>/snapshots",
        apis.SnapshotListApi.as_view(),
        name="experiment-snapshots",
    ),
    path(
        "experiments/<str:key>/export",
        export_views.ExperimentExportApi.as_view(),
        name="experiment-export",
    ),
]
