from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from events.models import Exposure
from experiments.models import ApiKey, Experiment

pytestmark = pytest.mark.django_db


def test_create_api_key__scopes__prints_only_the_key(client) -> None:
    out = StringIO()
    call_command("create_api_key", "--name", "ci", "--scopes", "read,write", stdout=out)
    raw_key = out.getvalue().strip()
    assert "\n" not in raw_key and raw_key.startswith("vl_")
    stored = ApiKey.objects.get(name="ci")
    assert stored.scopes == ["read", "write"] and stored.hashed_key == ApiKey.hash(raw_key)
    ok = client.get("/api/v1/experiments", HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    assert ok.status_code == 200


def test_create_api_key__unknown_scope__command_error() -> None:
    with pytest.raises(CommandError, match="Unknown scope"):
        call_command("create_api_key", "--name", "x", "--scopes", "admin", stdout=StringIO())


def test_demo__fresh_database__finished_running_and_srm_experiments(transactional_db) -> None:
    out = StringIO()
    call_command("demo", "--units", "1400", stdout=out)
    assert "admin / variantlab-demo" in out.getvalue()
    assert Exposure.objects.count() > 500
    # One finished with its winner shipped, running ones, and an SRM made by dropped exposures
    ranker = Experiment.objects.get(key="search-ranker-v2")
    assert ranker.status == "stopped" and ranker.shipped_variant == "ltr-v2"
    # (the model experiment keeps running: only its harmful arm is rolled back)
    assert Experiment.objects.filter(status="running").count() == 3
    model = Experiment.objects.get(key="chat-model-v2")
    assert [v.key for v in model.variants.filter(rolled_back_at__isnull=False)] == ["v2"]
    spellcheck = Experiment.objects.get(key="search-spellcheck")
    assert spellcheck.snapshots.filter(state="done").count() == 7
    # Running it again is harmless
    call_command("demo", "--units", "10", stdout=StringIO())
    assert Experiment.objects.filter(key="search-ranker-v2").count() == 1
