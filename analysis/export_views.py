"""Export downloads: the API view (``read`` scope) and the admin's staff-only view.

Both validate ``format`` and ``level`` and build the table (`analysis.exports`) before the first
byte, so every refusal is a proper 400/404; the body is then streamed.

URL names, for links:

- ``experiment-export`` (key): ``GET /api/v1/experiments/{key}/export?format=F&level=L``;
- ``experiment-export-admin`` (pk): ``/admin/experiments/experiment/{pk}/export/``, with
  ``?format=F&level=L`` a download, without them a page of links to every level × format.

The admin route is declared in this module's `urlpatterns`, which `config/urls.py` includes
ahead of ``admin/`` so the admin's catch-all does not take it.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from analysis.exports import (
    CONTENT_TYPES,
    FORMATS,
    LEVELS,
    export_filename,
    export_stream,
    export_table,
)
from core.errors import NotFoundError, ServiceError
from experiments.models import Experiment

CHOICES = {"format": FORMATS, "level": LEVELS}


def export_choice_errors(params: Mapping[str, str]) -> dict[str, str]:
    """Field → message for a missing or unknown ``format`` / ``level``."""
    errors = {}
    for field, choices in CHOICES.items():
        value = params.get(field)
        if value not in choices:
            told = "is required" if not value else f"'{value}' is not one of them"
            errors[field] = f"One of {', '.join(choices)}; {told}."
    return errors


def export_response(*, experiment: Experiment, fmt: str, level: str) -> StreamingHttpResponse:
    """The streamed download. NotFoundError: a summary with no finished snapshot."""
    table = export_table(experiment=experiment, level=level)
    response = StreamingHttpResponse(export_stream(table, fmt), content_type=CONTENT_TYPES[fmt])
    filename = export_filename(experiment=experiment, level=level, fmt=fmt)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    # Lets a buffering proxy (nginx) pass the chunks on as they come.
    response["X-Accel-Buffering"] = "no"
    return response


class ExperimentExportApi(APIView):
    """Download an experiment's data, streamed: `level=summary` (one row per metric ×
    treatment comparison of the latest snapshot), `units` (one row per exposed unit with its
    metric values) or `events` (the raw events), as CSV, JSON or Parquet (docs/api.md §5)."""

    required_scopes = "read"

    def perform_content_negotiation(
        self, request: Request, force: bool = False
    ) -> tuple[BaseRenderer, str]:
        # `?format=` names the file format here, not a DRF renderer (DRF would answer 404 for
        # ?format=csv); errors are always JSON.
        renderer = JSONRenderer()
        return renderer, renderer.media_type

    @extend_schema(
        parameters=[
            OpenApiParameter("format", str, enum=list(FORMATS), required=True),
            OpenApiParameter("level", str, enum=list(LEVELS), required=True),
        ],
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.BINARY),
            (200, "application/json"): OpenApiResponse(
                {"type": "array", "items": {"type": "object"}},
                description="An array of objects, one per row.",
            ),
            (200, "application/vnd.apache.parquet"): OpenApiResponse(OpenApiTypes.BINARY),
        },
    )
    def get(self, request: Request, key: str) -> StreamingHttpResponse:
        errors = export_choice_errors(request.query_params)
        if errors:
            raise ServiceError.from_fields(errors)
        experiment = get_object_or_404(Experiment, key=key)
        return export_response(
            experiment=experiment,
            fmt=request.query_params["format"],
            level=request.query_params["level"],
        )


LEVEL_TEXT = {
    "summary": "one row per metric × treatment of the latest analysis: units, means, "
    "variances, effects, intervals and verdicts",
    "units": "one row per analysed unit: its variant and its value of every metric (ratio "
    "metrics with numerator and denominator; capped metrics raw and winsorized)",
    "events": "every raw exposure and outcome of the experiment's units, in time order",
}


@staff_member_required
def experiment_export_admin(request: HttpRequest, pk: int) -> HttpResponseBase:
    """Staff download of an experiment's export; without parameters, a page of links."""
    if not request.user.has_perm("experiments.view_experiment"):
        raise PermissionDenied
    experiment = get_object_or_404(Experiment, pk=pk)
    here = reverse("experiment-export-admin", kwargs={"pk": experiment.pk})
    if "format" not in request.GET and "level" not in request.GET:
        rows = [
            (level, LEVEL_TEXT[level], [(f, f"{here}?level={level}&format={f}") for f in FORMATS])
            for level in LEVELS
        ]
        context = {
            **admin.site.each_context(request),
            "title": f"Export {experiment.key}",
            "opts": Experiment._meta,
            "experiment": experiment,
            "formats": FORMATS,
            "rows": rows,
        }
        return TemplateResponse(request, "admin/analysis/export.html", context)
    errors = export_choice_errors(request.GET)
    if errors:
        # The API's error shape, as everywhere else (docs/api.md §4).
        return JsonResponse(ServiceError.from_fields(errors).body(), status=400)
    try:
        return export_response(
            experiment=experiment, fmt=request.GET["format"], level=request.GET["level"]
        )
    except NotFoundError as error:
        messages.error(request, error.message)
        return redirect("admin:experiments_experiment_change", experiment.pk)


urlpatterns = [
    path("<int:pk>/export/", experiment_export_admin, name="experiment-export-admin"),
]
