"""The three ways to export: the API (scopes, refusals, streaming), the admin view, the command."""

from __future__ import annotations

import datetime as dt
import io
import json

import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from django.http import StreamingHttpResponse
from django.urls import reverse

from events.models import Exposure
from tests.analysis.exports.test_exports_content import comparison, make_snapshot
from tests.factories import make_experiment

pytestmark = pytest.mark.django_db

URL = "/api/v1/experiments/{key}/export"


@pytest.fixture
def experiment():
    experiment = make_experiment("checkout")
    Exposure.objects.bulk_create(
        Exposure(
            experiment=experiment,
            unit_id=f"u{i}",
            variant=("control", "treatment")[i % 2],
            first_exposed_at=dt.datetime(2024, 6, 1, 12, i, tzinfo=dt.UTC),
        )
        for i in range(10)
    )
    return experiment


def body(response) -> bytes:
    assert isinstance(response, StreamingHttpResponse)
    return b"".join(response.streaming_content)


# --- API -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [
        ("csv", "text/csv; charset=utf-8"),
        ("json", "application/json"),
        ("parquet", "application/vnd.apache.parquet"),
    ],
)
def test_export_api__read_key__streams_file_with_name(
    make_api_client, experiment, fmt, content_type
):
    # Given a key with the read scope
    client = make_api_client("read")
    # When
    response = client.get(URL.format(key="checkout"), {"format": fmt, "level": "units"})
    # Then a streamed attachment named after the experiment and level
    assert response.status_code == 200
    assert response["Content-Type"] == content_type
    assert response["Content-Disposition"] == f'attachment; filename="checkout-units.{fmt}"'
    content = body(response)
    if fmt == "parquet":
        frame = pd.read_parquet(io.BytesIO(content))
    elif fmt == "csv":
        frame = pd.read_csv(io.BytesIO(content))
    else:
        frame = pd.DataFrame(json.loads(content))
    assert sorted(frame["unit_id"]) == sorted(f"u{i}" for i in range(10))


def test_export_api__url_name__reverses_to_contract_path(experiment) -> None:
    assert reverse("experiment-export", kwargs={"key": "checkout"}) == (
        "/api/v1/experiments/checkout/export"
    )


@pytest.mark.parametrize(
    ("params", "fields"),
    [
        ({"format": "xlsx", "level": "units"}, {"format"}),
        ({"format": "csv", "level": "rows"}, {"level"}),
        ({"level": "units"}, {"format"}),
        ({}, {"format", "level"}),
    ],
)
def test_export_api__bad_format_or_level__400_naming_the_field(api, experiment, params, fields):
    # Given / When
    response = api.get(URL.format(key="checkout"), params)
    # Then a JSON error naming each bad field, its message listing the choices
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error["fields"]) == fields
    assert error["message"].startswith(sorted(fields)[0] + ":")
    choices = {"format": "csv, json, parquet", "level": "summary, units, events"}
    assert all(choices[field] in error["fields"][field] for field in fields)


def test_export_api__unknown_experiment__404(api) -> None:
    response = api.get(URL.format(key="nope"), {"format": "csv", "level": "units"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_export_api__summary_without_snapshot__404_no_results(api, experiment) -> None:
    response = api.get(URL.format(key="checkout"), {"format": "csv", "level": "summary"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "no_results"


def test_export_api__summary_with_snapshot__rows(api, experiment) -> None:
    # Given a finished snapshot with one comparison
    arms = [{"variant": "control", "units": 5}, {"variant": "treatment", "units": 5}]
    won = comparison(
        "treatment",
        absolute_effect=0.5,
        absolute_ci=[0.25, 0.75],
        relative_effect=1.0,
        relative_ci=[0.5, 1.5],
        p_value=0.01,
        adjusted_p_value=0.01,
    )
    make_snapshot(
        experiment,
        [{"metric": "m", "role": "primary", "variants": arms, "comparisons": [won]}],
    )
    # When
    response = api.get(URL.format(key="checkout"), {"format": "json", "level": "summary"})
    # Then
    (row,) = json.loads(body(response))
    assert (row["absolute_ci_low"], row["absolute_ci_high"]) == (0.25, 0.75)
    assert row["metric"] == "m"


def test_export_api__no_key__401(client, experiment) -> None:
    response = client.get(URL.format(key="checkout"), {"format": "csv", "level": "units"})
    assert response.status_code == 401
    assert "error" in response.json()


@pytest.mark.parametrize("scope", ["assign", "events", "write"])
def test_export_api__key_without_read__403(make_api_client, experiment, scope) -> None:
    response = make_api_client(scope).get(
        URL.format(key="checkout"), {"format": "csv", "level": "units"}
    )
    assert response.status_code == 403
    assert "read" in response.json()["error"]["message"]


# --- admin -----------------------------------------------------------------------------------


def admin_url(experiment, **params) -> str:
    url = reverse("experiment-export-admin", kwargs={"pk": experiment.pk})
    return url + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")


@pytest.fixture
def staff(client, django_user_model):
    user = django_user_model.objects.create_superuser("boss", "boss@example.com", "pw-123456")
    client.force_login(user)
    return client


def test_export_admin__url__under_the_experiment_admin(experiment) -> None:
    assert admin_url(experiment) == f"/admin/experiments/experiment/{experiment.pk}/export/"


def test_export_admin__staff_download__streams_csv(staff, experiment) -> None:
    # Given a staff user / When
    response = staff.get(admin_url(experiment, level="units", format="csv"))
    # Then
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="checkout-units.csv"'
    assert body(response).decode().splitlines()[0] == "unit_id,variant,first_exposed_at"


def test_export_admin__staff_without_parameters__page_of_nine_links(staff, experiment) -> None:
    response = staff.get(admin_url(experiment))
    assert response.status_code == 200
    page = response.content.decode()
    for level in ("summary", "units", "events"):
        for fmt in ("csv", "json", "parquet"):
            assert admin_url(experiment, level=level, format=fmt).replace("&", "&amp;") in page


def test_export_admin__bad_format__400_naming_it(staff, experiment) -> None:
    response = staff.get(admin_url(experiment, level="units", format="xml"))
    assert response.status_code == 400
    # The API's error shape, as every other error (it was plain text before #13)
    error = response.json()["error"]
    assert error["code"] == "invalid" and error["message"].startswith("format:")
    assert set(error["fields"]) == {"format"}


def test_export_admin__summary_without_snapshot__back_to_the_experiment(staff, experiment):
    response = staff.get(admin_url(experiment, level="summary", format="csv"))
    assert response.status_code == 302
    assert response["Location"] == f"/admin/experiments/experiment/{experiment.pk}/change/"


def test_export_admin__anonymous__redirected_to_login(client, experiment) -> None:
    response = client.get(admin_url(experiment, level="units", format="csv"))
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=")


def test_export_admin__staff_without_view_permission__403(client, django_user_model, experiment):
    user = django_user_model.objects.create_user("intern", password="pw-123456", is_staff=True)
    client.force_login(user)
    response = client.get(admin_url(experiment, level="units", format="csv"))
    assert response.status_code == 403


# --- command ---------------------------------------------------------------------------------


def test_export_command__file_output__parquet_written(experiment, tmp_path) -> None:
    # Given / When
    target = tmp_path / "units.parquet"
    call_command(
        "export_experiment", "checkout", "--format", "parquet", "--level", "units",
        "--output", str(target), stderr=io.StringIO(),
    )  # fmt: skip
    # Then the file is complete and no partial file is left
    assert len(pd.read_parquet(target)) == 10
    assert [p.name for p in tmp_path.iterdir()] == ["units.parquet"]


def test_export_command__stdout__csv_printed(experiment) -> None:
    out = io.StringIO()
    call_command(
        "export_experiment", "checkout", "--format", "csv", "--level", "units", stdout=out
    )
    lines = out.getvalue().splitlines()
    assert lines[0] == "unit_id,variant,first_exposed_at"
    assert len(lines) == 11


def test_export_command__parquet_to_stdout__refused(experiment) -> None:
    with pytest.raises(CommandError, match="--output"):
        call_command("export_experiment", "checkout", "--format", "parquet", "--level", "units")


def test_export_command__unknown_experiment__error(db) -> None:
    with pytest.raises(CommandError, match="No experiment 'nope'"):
        call_command("export_experiment", "nope", "--format", "csv", "--level", "units")


def test_export_command__summary_without_snapshot__error(experiment, tmp_path) -> None:
    target = tmp_path / "summary.csv"
    with pytest.raises(CommandError, match="No finished snapshot"):
        call_command(
            "export_experiment", "checkout", "--format", "csv", "--level", "summary",
            "--output", str(target),
        )  # fmt: skip
    assert not target.exists()


def test_export_command__bad_level__usage_error(experiment) -> None:
    with pytest.raises(CommandError, match="--level"):
        call_command("export_experiment", "checkout", "--format", "csv", "--level", "rows")
