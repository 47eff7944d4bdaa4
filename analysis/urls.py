from django.urls import path

from analysis.apis import BoundariesApi, StatsApi

urlpatterns = [
    path("stats", StatsApi.as_view(), name="stats"),
    path("stats/boundaries", BoundariesApi.as_view(), name="stats-boundaries"),
]
