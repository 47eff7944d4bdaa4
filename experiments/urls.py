from django.urls import path

from experiments import apis

urlpatterns = [
    path("experiments", apis.ExperimentListApi.as_view(), name="experiment-list"),
    path("experiments/<str:key>", apis.ExperimentDetailApi.as_view(), name="experiment-detail"),
    *[
        path(
            f"experiments/<str:key>/{action}",
            apis.STATUS_APIS[action].as_view(move=action),
            name=f"experiment-{action}",
        )
        for action in ("start", "pause", "stop")
    ],
    path(
        "experiments/<str:key>/archive",
        apis.ExperimentArchiveApi.as_view(),
        name="experiment-archive",
    ),
    path(
        "experiments/<str:key>/variants/<str:variant>/rollback",
        apis.VariantRollbackApi.as_view(),
        name="variant-rollback",
    ),
    path("metrics", apis.MetricListApi.as_view(), name="metric-list"),
    path("metrics/<str:key>", apis.MetricDetailApi.as_view(), name="metric-detail"),
    path("layers", apis.LayerListApi.as_view(), name="layer-list"),
    path("layers/<str:key>", apis.LayerDetailApi.as_view(), name="layer-detail"),
]
