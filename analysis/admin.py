"""The results dashboard's pages, registered under the experiment admin's URLs.

`experiments` sits below `analysis`, so the experiment admin does not import the dashboard: it
takes URL providers, and this module (loaded by the admin's autodiscovery) adds the dashboard's.
The paths and names are the admin's own (`admin:experiments_experiment_results`, …).
"""

from __future__ import annotations

from django.urls import URLPattern, path

from analysis import dashboard
from experiments.admin import ExperimentAdmin


def dashboard_urls(model_admin: ExperimentAdmin) -> list[URLPattern]:
    view = model_admin.page_view
    return [
        path("dashboard/", view(dashboard.overview_view), name="experiments_experiment_dashboard"),
        path(
            "<int:object_id>/results/",
            view(dashboard.results_view),
            name="experiments_experiment_results",
        ),
        path(
            "<int:object_id>/analyze/",
            view(dashboard.analyze_view),
            name="experiments_experiment_analyze",
        ),
        path(
            "<int:object_id>/plan/", view(dashboard.plan_view), name="experiments_experiment_plan"
        ),
    ]


ExperimentAdmin.url_providers.append(dashboard_urls)
