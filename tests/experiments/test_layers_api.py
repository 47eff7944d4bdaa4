"""Layers over REST (docs/api.md §11): GET|POST /layers, GET|PATCH /layers/{key}."""

from __future__ import annotations

import pytest

from audit.models import AuditEntry
from experiments.models import Layer
from tests.factories import LayerFactory

pytestmark = pytest.mark.django_db


def test_layers__create_list_get_patch__contract_shape(api) -> None:
    # Create
    created = api.post(
        "/api/v1/layers",
        {"key": "search", "name": "Search", "description": "ranking"},
        format="json",
    )
    assert created.status_code == 201
    assert created.json() == {"key": "search", "name": "Search", "description": "ranking"}
    # List and get
    assert api.get("/api/v1/layers").json() == [created.json()]
    assert api.get("/api/v1/layers/search").json() == created.json()
    # Patch one field; the others stay
    patched = api.patch("/api/v1/layers/search", {"description": "ranking v2"}, format="json")
    assert patched.status_code == 200
    assert patched.json() == {"key": "search", "name": "Search", "description": "ranking v2"}
    assert Layer.objects.get(key="search").description == "ranking v2"
    # Audited, once per change
    actions = list(AuditEntry.objects.filter(object_type="layer").values_list("action", "changes"))
    assert actions[0] == ("update", {"description": ["ranking", "ranking v2"]})
    assert actions[1][0] == "create"


def test_layers__duplicate_key__409(api) -> None:
    LayerFactory(key="search")
    response = api.post("/api/v1/layers", {"key": "search"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["fields"] == {"key": "already exists"}


@pytest.mark.parametrize(
    ("body", "field"),
    [({"key": "bad key"}, "key"), ({"name": "x" * 201, "key": "k"}, "name"), ({}, "key")],
)
def test_layers__bad_input__400_naming_field(api, body, field) -> None:
    response = api.post("/api/v1/layers", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_layers__patch_key__refused_and_unknown__404(api) -> None:
    LayerFactory(key="search")
    response = api.patch("/api/v1/layers/search", {"key": "other"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["fields"] == {
        "key": "immutable"
    }
    assert api.get("/api/v1/layers/nope").status_code == 404


def test_layers__scopes__read_and_write(make_api_client) -> None:
    reader = make_api_client("read")
    assert reader.get("/api/v1/layers").status_code == 200
    assert reader.post("/api/v1/layers", {"key": "x"}, format="json").status_code == 403
    assert make_api_client("assign").get("/api/v1/layers").status_code == 403
    assert (
        make_api_client("write").post("/api/v1/layers", {"key": "x"}, format="json").status_code
        == 201
    )
