from io import StringIO
from unittest import mock

import pytest
from django.core.management import CommandError, call_command
from variantlab_client import Client

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
    with mock.patch.object(Client, "assign", autospec=True, side_effect=Client.assign) as calls:
        call_command("demo", "--units", "1400", stdout=out)
    text = out.getvalue()
    assert "user admin, password variantlab-demo" in text
    # Quiet: what the user needs, ending with the real key in a ready-to-paste curl
    key = next(line.split()[2] for line in text.splitlines() if line.startswith("API key:"))
    assert key.startswith("vl_")
    assert text.rstrip().splitlines()[-1].startswith(f"  curl -s -H 'Authorization: Bearer {key}'")
    for noise in ("<key>", "Task ", "No hostname", "Content-Type: text/plain", "Subject:"):
        assert noise not in text
    assert len(text.splitlines()) <= 12
    # The simulated app assigned each of its users through variantlab_client.Client, which
    # had loaded the week's three experiments from /api/v1/config over HTTP
    assert calls.call_count == 1400
    app = calls.call_args.args[0]
    week = Experiment.objects.exclude(key="chat-model-v2")
    assert sorted(app._config.experiments) == sorted(e.key for e in week)
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
    # The week is stamped on simulated days: a start a week ago, one snapshot a day, exposures
    # spread over the seven days, the winner shipped at the end
    days = sorted(s.computed_at.date() for s in spellcheck.snapshots.all())
    assert len(set(days)) == 7 and (days[-1] - days[0]).days == 6
    assert (ranker.stopped_at - ranker.started_at).days == 7
    first = {e.first_exposed_at.date() for e in Exposure.objects.filter(experiment=spellcheck)}
    assert len(first) == 7
    # Running it again is harmless
    call_command("demo", "--units", "10", stdout=StringIO())
    assert Experiment.objects.filter(key="search-ranker-v2").count() == 1
